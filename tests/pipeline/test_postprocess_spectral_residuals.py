"""``l2-postprocess`` 1.4 leaves out a spectral (ASDI) reduction's detections that are a brighter
companion's own radial spectral residual
(:func:`hcdc.science.postprocessing.spectral_lobes.spectral_residuals`) and names them; 1.3 keeps
them. Known truth: a simulated IFS-like sequence (39 channels 0.96-1.35 um, 4 frames, 2 deg of
field rotation, ASDI single PCA as the IFS workflow runs it).

Measured (seed 0): the companion at 28 px (contrast 1e-2) is detected at S/N ~24 and its positive
residual at 1.35 x its separation (37.8 px, ~2 deg off in PA, S/N ~11, image peak < 0.15 x the
companion's); 28 px seeds 0-4 all show that residual at 1.34-1.36 x, and 1.4 flags it in each.
A second companion in that radial wedge whose image peak is 0.54 x the first one's is kept.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits
from helpers.spectral_files import write_spectral_user_files

from hcdc.pipeline.registry import run_recipe

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PARAMS = {
    "algorithm": "asdi",
    "ncomp": 5,
    "algorithm_params": {"mode": "single", "mask_center_px": 9},
    "compute_contrast": False,
    "previews": False,
}


def _run(files: dict[str, Path], tmp_path: Path, version: str) -> dict:
    result = run_recipe("l2-postprocess", files, PARAMS, work_dir=tmp_path / version, version=version)
    assert result.status == "done", result.error
    return result


def _near(dets: list[dict], sep: float, pa: float) -> list[dict]:
    return [
        d
        for d in dets
        if abs(d["separation_px"] - sep) < 2.0 and abs((d["pa_deg"] - pa + 180) % 360 - 180) < 6.0
    ]


def test_1_4_drops_a_companions_spectral_residual_that_1_3_keeps(tmp_path: Path) -> None:
    files, _ = write_spectral_user_files(tmp_path / "in", [(28.0, 60.0, 0.01)])
    old, new = _run(files, tmp_path, "1.3"), _run(files, tmp_path, "1.4")
    lobe_sep = 28.0 * 1.35
    old_dets, new_dets = old.outputs["summary"]["detections"], new.outputs["summary"]["detections"]
    # both find the companion; 1.3 also reports its residual, 1.4 only the companion
    assert len(_near(old_dets, 28.0, 60.0)) == 1 and len(_near(new_dets, 28.0, 60.0)) == 1
    (lobe,) = _near(old_dets, lobe_sep, 60.0)
    assert lobe["snr"] < _near(old_dets, 28.0, 60.0)[0]["snr"]
    assert len(old_dets) == 2 and len(new_dets) == 1, (old_dets, new_dets)
    assert "spectral_residuals" not in old.outputs["summary"]
    # nothing disappears silently: the summary, the log and the product's DETECTIONS header name it
    (residual,) = new.outputs["summary"]["spectral_residuals"]
    assert abs(residual["separation_px"] - lobe["separation_px"]) < 0.5
    assert abs(residual["of_separation_px"] - 28.0) < 1.0 and residual["snr"] == pytest.approx(lobe["snr"])
    assert any("spectral residual of the one at" in line for line in new.log)
    with fits.open(new.outputs["product"]) as hdul:
        header = hdul["DETECTIONS"].header
        assert header["SPECRES"] == 1
        assert header["SPECR001"].startswith(f"{residual['separation_px']:.2f} px PA")
        assert len(hdul["DETECTIONS"].data) == 1
    with fits.open(old.outputs["product"]) as hdul:
        assert "SPECRES" not in hdul["DETECTIONS"].header and len(hdul["DETECTIONS"].data) == 2
        assert "PHOTERR" not in hdul["DETECTIONS"].header
    # photometric errors: 1.3's 'curve' photometry (spectral) has none; 1.4's is the aperture
    # noise, contrast / S/N (docs/postprocessing.md)
    (old_companion,) = _near(old_dets, 28.0, 60.0)
    (new_companion,) = _near(new_dets, 28.0, 60.0)
    assert old_companion["photometry"] == new_companion["photometry"] == "curve"
    assert old_companion["contrast_err"] is None
    assert new_companion["contrast_err"] == pytest.approx(new_companion["contrast"] / new_companion["snr"])
    with fits.open(new.outputs["product"]) as hdul:
        header = hdul["DETECTIONS"].header
        assert header["PHOTERR"] == "APERTURE+THROUGHPUT"
        k = hdul["DETECTIONS"].columns.names.index("CONTRAST_ERR") + 1
        assert "aperture noise" in header.comments[f"TTYPE{k}"]
    from hcdc.science.postprocessing.products import read_product

    assert read_product(new.outputs["product"]).photometric_errors == "APERTURE+THROUGHPUT"
    assert read_product(old.outputs["product"]).photometric_errors is None


def test_1_4_keeps_a_real_companion_in_the_wedge_brighter_than_the_ratio(tmp_path: Path) -> None:
    """A second companion at 22 px, 4 deg from the 28 px one: each lies in the other's radial wedge
    ([r/1.41 - 1 FWHM, r x 1.41 + 1 FWHM]) and PA arc; the 22 px one's image peak is 0.54 x the
    28 px one's, and the one of lower S/N (measured: the 28 px one, S/N 33.9 vs 34.5; the order
    flips with the contrasts) has an image peak above 0.4 x the other's: both are sources, neither
    is flagged (the ratio's other side, a real
    companion fainter than 0.4 x dropped, is the rule's documented limit, tests/science/
    postprocessing/test_spectral_lobes.py)."""
    files, _ = write_spectral_user_files(tmp_path / "in", [(28.0, 60.0, 0.01), (22.0, 64.0, 0.015)])
    new = _run(files, tmp_path, "1.4")
    dets = new.outputs["summary"]["detections"]
    (a,) = _near(dets, 28.0, 60.0)
    (b,) = _near(dets, 22.0, 64.0)
    with fits.open(new.outputs["product"]) as hdul:
        image = hdul["IMAGE"].data

    def peak(d: dict) -> float:
        return float(image[int(round(d["y"])), int(round(d["x"]))])

    assert 0.4 < peak(b) / peak(a) < 0.8  # measured 0.54: fainter than a, above the ratio
    fainter, brighter = sorted((a, b), key=lambda d: d["snr"])
    assert peak(fainter) > 0.4 * peak(brighter)
    # the 28 px companion's own residual beyond it is still left out, nothing else
    residuals = new.outputs["summary"]["spectral_residuals"]
    (residual,) = residuals
    assert abs(residual["of_separation_px"] - 28.0) < 1.0 and residual["separation_px"] > 35.0
