"""``l2-postprocess`` 1.6's ``false_alarms_per_image``: a detection threshold for a stated number of
false S/N peaks per image (:mod:`hcdc.science.postprocessing.search_threshold`), used by the
detection and the contrast curve, and written in the product; absent, 1.6 is as it was (the
Student threshold, no such card). On the 1.2 fixture's user cube (PCA 3, one companion)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hcdc.pipeline.errors import ParameterError
from hcdc.pipeline.registry import get_recipe, run_recipe
from hcdc.science.postprocessing.detection import GAUSSIAN_5SIGMA_FPF, student_threshold
from hcdc.science.postprocessing.products import read_product

FIXTURE_1_2 = Path(__file__).resolve().parents[1] / "data" / "l2_postprocess_1_2"


def _fixture_inputs(tmp_path: Path) -> tuple[dict[str, Path], dict]:
    folder = tmp_path / "inputs"
    shutil.copytree(FIXTURE_1_2, folder)
    record = json.loads((FIXTURE_1_2 / "with_psf_provenance.json").read_text())
    inputs = {item["name"]: folder / Path(item["files"][0]["path"]).name for item in record["inputs"]}
    return inputs, record["parameters"]


def test_only_1_6_takes_the_parameter() -> None:
    assert get_recipe("l2-postprocess", "1.6").parse_params({"false_alarms_per_image": 0.01})
    for version in ("1.4", "1.5"):
        with pytest.raises(ParameterError, match="false_alarms_per_image"):
            get_recipe("l2-postprocess", version).parse_params({"false_alarms_per_image": 0.01})
    with pytest.raises(ParameterError):
        get_recipe("l2-postprocess", "1.6").parse_params({"false_alarms_per_image": 0})


def test_false_alarms_per_image_sets_detection_and_contrast_and_says_so(tmp_path: Path) -> None:
    inputs, params = _fixture_inputs(tmp_path)
    runs = {
        name: run_recipe(
            "l2-postprocess", inputs, {**params, **extra}, work_dir=tmp_path / name, version="1.6"
        )
        for name, extra in (("default", {}), ("search", {"false_alarms_per_image": 1e-3}))
    }
    assert all(r.status == "done" for r in runs.values()), [r.error for r in runs.values()]
    with (
        fits.open(runs["default"].outputs["product"]) as default,
        fits.open(runs["search"].outputs["product"]) as new,
    ):
        h0, h1 = default[0].header, new[0].header
        # default: the Student threshold of the Gaussian 5-sigma fpf, no search cards
        assert (
            h0["DETFPF"] == pytest.approx(GAUSSIAN_5SIGMA_FPF, rel=1e-12)
            and "DETSRCH" not in h0
            and "DETFAPI" not in h0
        )
        assert "SNR_THR" not in default["CONTRAST"].columns.names
        assert h1["DETSRCH"] == "RANDOM-FIELD"
        assert h1["DETFAPI"] == pytest.approx(1e-3, rel=1e-6)
        # 1e-3 expected false peaks is stricter than the Student 5-sigma threshold's own count
        assert h1["DETFA5S"] > h1["DETFAPI"] and h1["DETFPF"] < GAUSSIAN_5SIGMA_FPF
        assert 0.05 < h1["DETLAM"] < 0.2 and h1["DETSPIX"] > 1000
        assert np.array_equal(new["IMAGE"].data, default["IMAGE"].data)
        assert np.array_equal(new["SNR_MAP"].data, default["SNR_MAP"].data, equal_nan=True)
        # the contrast curve's fakes aim at the detection's threshold, recorded per separation
        contrast = new["CONTRAST"].data
        expected = student_threshold(np.asarray(contrast["SEP_PX"]), h1["FWHM"], h1["DETFPF"])
        assert np.allclose(contrast["SNR_THR"], expected)
        assert new["CONTRAST"].header["CURVEFPF"] == pytest.approx(h1["DETFPF"])
        raised = np.nanmedian(contrast["CONTRAST_0"] / default["CONTRAST"].data["CONTRAST_0"])
        assert 1.02 < raised < 1.3  # a higher threshold: a shallower limit
        # the companion is far above either threshold: the same detection
        d0, d1 = default["DETECTIONS"].data, new["DETECTIONS"].data
        assert len(d1) == len(d0) >= 1 and np.array_equal(d1["SNR"], d0["SNR"])
    summary = runs["search"].outputs["summary"]
    search = summary["detection_search"]
    assert search["expected_false_peaks_per_image"] == pytest.approx(1e-3, rel=1e-6)
    assert search["fpf_per_pixel"] == pytest.approx(h1["DETFPF"])
    assert summary["contrast_curve"]["threshold"].startswith("the detection's: 0.001 false peaks per image")
    assert "detection_search" not in runs["default"].outputs["summary"]
    product = read_product(runs["search"].outputs["product"])
    assert product.detection_search.false_alarms == pytest.approx(1e-3, rel=1e-6)
    assert product.detection_search.fpf == h1["DETFPF"]
    assert read_product(runs["default"].outputs["product"]).detection_search is None


def test_false_alarms_per_image_composes_with_the_calibrated_threshold(tmp_path: Path) -> None:
    """Both options: the search sets the fpf, the null map's tail is calibrated at it (``DETK`` at
    that fpf), and the curve's threshold is ``DETK`` x the Student threshold of that fpf."""
    inputs, params = _fixture_inputs(tmp_path)
    run = run_recipe(
        "l2-postprocess",
        inputs,
        {**params, "false_alarms_per_image": 1e-3, "calibrated_threshold": True},
        work_dir=tmp_path / "both",
        version="1.6",
    )
    assert run.status == "done", run.error
    with fits.open(run.outputs["product"]) as product:
        h = product[0].header
        assert h["DETSRCH"] == "RANDOM-FIELD" and h["DETNULL"] == "INVERTED-ANGLES"
        assert h["DETFAPI"] == pytest.approx(1e-3, rel=1e-6) and h["DETFPF"] < GAUSSIAN_5SIGMA_FPF
        assert h["DETK"] >= 1.0
        contrast = product["CONTRAST"].data
        expected = h["DETK"] * student_threshold(np.asarray(contrast["SEP_PX"]), h["FWHM"], h["DETFPF"])
        assert np.allclose(contrast["SNR_THR"], expected)
    summary = run.outputs["summary"]
    assert summary["detection_null"]["fpf_per_resolution_element"] == pytest.approx(h["DETFPF"])
    assert summary["contrast_curve"]["threshold"].endswith("tail calibrated on the data's null map")
    product = read_product(run.outputs["product"])
    assert product.detection_null.fpf == product.detection_search.fpf
