"""``l2-postprocess`` 1.6 against 1.5: photometry fakes at the flux estimate (iterated, said in the
product) and ``SPECRES`` cards written without a VerifyWarning; everything else as 1.5.

Known truth for the photometry: tests/science/postprocessing/test_photometry_fakes_at_flux.py
(simulated cubes). Here: the 1.2 fixture's user cube (what 1.6 changes and what it keeps) and
the simulated IFS-like sequence of test_postprocess_spectral_residuals.py (a companion at 28 px
whose spectral residual 1.4+ leaves out and names in SPECRES).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.io.fits.verify import VerifyWarning
from helpers.spectral_files import write_spectral_user_files

from hcdc.pipeline.registry import get_recipe, run_recipe
from hcdc.science.postprocessing.products import read_product

FIXTURE_1_2 = Path(__file__).resolve().parents[1] / "data" / "l2_postprocess_1_2"


def test_1_6_is_the_default_and_1_5_stays_as_it_was() -> None:
    new, old = get_recipe("l2-postprocess"), get_recipe("l2-postprocess", "1.5")
    assert new.version == "1.6" and new.photometry_fakes_at_flux and new.whole_card_comments
    assert old.version == "1.5" and old.null_threshold
    assert not old.photometry_fakes_at_flux and not old.whole_card_comments
    for version in ("1.1", "1.2", "1.3", "1.4"):
        assert not get_recipe("l2-postprocess", version).photometry_fakes_at_flux
    for version in ("1.0", "1.1"):  # l2-rdi pins l2-postprocess 1.3 / 1.4 behaviour
        rdi = get_recipe("l2-rdi", version)
        assert not rdi.photometry_fakes_at_flux and not rdi.whole_card_comments


def _fixture_inputs(tmp_path: Path) -> tuple[dict[str, Path], dict]:
    folder = tmp_path / "inputs"
    shutil.copytree(FIXTURE_1_2, folder)
    record = json.loads((FIXTURE_1_2 / "with_psf_provenance.json").read_text())
    inputs = {item["name"]: folder / Path(item["files"][0]["path"]).name for item in record["inputs"]}
    return inputs, record["parameters"]


@pytest.mark.parametrize(
    ("old_version", "calibrated"),
    [("1.4", False), ("1.5", True)],
    ids=["student-threshold-vs-1.4", "calibrated-threshold-vs-1.5"],
)
def test_1_6_changes_only_the_photometry_and_says_how(
    tmp_path: Path, old_version: str, calibrated: bool
) -> None:
    """1.6 with the Student threshold (its default) against 1.4, and with ``calibrated_threshold``
    against 1.5: the same image, S/N map and detections; only the photometry differs."""
    inputs, params = _fixture_inputs(tmp_path)
    runs = {
        "old": run_recipe("l2-postprocess", inputs, params, work_dir=tmp_path / "old", version=old_version),
        "1.6": run_recipe(
            "l2-postprocess",
            inputs,
            {**params, "calibrated_threshold": calibrated},
            work_dir=tmp_path / "new",
            version="1.6",
        ),
    }
    assert all(r.status == "done" for r in runs.values()), [r.error for r in runs.values()]
    null = runs["1.6"].outputs["summary"].get("detection_null")
    assert (null is not None) if calibrated else (null is None)
    with fits.open(runs["old"].outputs["product"]) as old, fits.open(runs["1.6"].outputs["product"]) as new:
        assert np.array_equal(new["IMAGE"].data, old["IMAGE"].data)
        assert np.array_equal(new["SNR_MAP"].data, old["SNR_MAP"].data, equal_nan=True)
        o, n = old["DETECTIONS"].data, new["DETECTIONS"].data
        assert len(n) == len(o) >= 1
        for column in ("X", "Y", "SNR", "FPF"):  # detection untouched
            assert np.array_equal(n[column], o[column])
        assert not np.array_equal(n["FLUX"], o["FLUX"])  # the photometry is what changes
        header = new["DETECTIONS"].header
        assert header["PHOTFAKE"] == "FLUX" and "PHOTFAKE" not in old["DETECTIONS"].header
        assert "FAKEFLUX" not in old["DETECTIONS"].columns.names
        assert np.all(n["FAKEITER"] >= 1) and np.all(n["FAKEITER"] <= header["PHOTFMAX"])
        # converged: the last fakes' flux is within the flux's own error of the result
        done = n["FAKECONV"]
        assert np.all(np.abs(n["FLUX"] - n["FAKEFLUX"])[done] < n["FLUX_ERR"][done])
        # fakes at the flux, not at the reduced signal: as bright as the detection's flux
        assert np.all(np.abs(n["FAKEFLUX"] / n["FLUX"] - 1) < 0.5)
    summary = runs["1.6"].outputs["summary"]
    det = summary["detections"][0]
    assert det["photometry_iterations"] == int(n["FAKEITER"][0])
    assert det["photometry_fake_flux"] == pytest.approx(float(n["FAKEFLUX"][0]))
    assert "photometry_iterations" not in runs["old"].outputs["summary"]["detections"][0]
    assert read_product(runs["1.6"].outputs["product"]).photometry_fakes[0]["iterations"] >= 1
    assert read_product(runs["old"].outputs["product"]).photometry_fakes is None


def _spectral_inputs(folder: Path) -> dict[str, Path]:
    """The IFS-like sequence of test_postprocess_spectral_residuals.py (seed 0): a companion at
    28 px whose spectral residual at ~37.8 px 1.4+ leaves out."""
    return write_spectral_user_files(folder, [(28.0, 60.0, 0.01)])[0]


def test_1_6_spectral_product_is_written_without_verify_warning(tmp_path: Path) -> None:
    """Warnings as errors: the SPECRES/SPECRnnn cards fit (1.6: whole comments, long-string
    cards); 1.5 writes the bytes astropy cut before, without the warning; both read back."""
    files = _spectral_inputs(tmp_path / "in")
    params = {
        "algorithm": "asdi",
        "ncomp": 5,
        "algorithm_params": {"mode": "single", "mask_center_px": 9},
        "compute_contrast": False,
        "previews": False,
        # a fixed threshold (the residual has S/N ~11; 1.5's calibrated one is above it here)
        "detection_threshold": 5.0,
    }
    runs = {}
    for version in ("1.5", "1.6"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs[version] = run_recipe(
                "l2-postprocess", files, params, work_dir=tmp_path / version, version=version
            )
        assert runs[version].status == "done", runs[version].error
        assert not [w for w in caught if issubclass(w.category, VerifyWarning)], version
    for version, comment in (("1.6", "left-out spectral residual"), ("1.5", "left-out spectr")):
        (residual,) = runs[version].outputs["summary"]["spectral_residuals"]
        with fits.open(runs[version].outputs["product"]) as hdul:
            header = hdul["DETECTIONS"].header
            assert header["SPECRES"] == 1 and header.comments["SPECR001"].startswith(comment[:15])
            assert "PHOTFAKE" not in header  # 'curve' photometry: no photometry fakes
        (back,) = read_product(runs[version].outputs["product"]).spectral_residuals
        for key in ("separation_px", "pa_deg", "snr", "of_separation_px", "of_pa_deg"):
            assert back[key] == pytest.approx(residual[key], abs=0.006)
    with fits.open(runs["1.6"].outputs["product"]) as hdul:
        assert hdul["DETECTIONS"].header.comments["SPECR001"] == "left-out spectral residual"
