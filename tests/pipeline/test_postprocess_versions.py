"""``l2-postprocess`` 1.1 and 1.2 stay registered: records written by 1.1 and 1.2 (fixtures made
with main's code of the time, tests/data/l2_postprocess_1_1|1_2/make_fixture.py) rerun with the
same data arrays (equal to float32 rounding across machines, see ``_same_arrays``); 1.3 measures
astrometric errors where 1.2 did not (no PSF) and says how."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hcdc.pipeline.errors import ParameterError
from hcdc.pipeline.registry import get_recipe, run_recipe
from hcdc.pipeline.replay import rerun

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "l2_postprocess_1_1"
FIXTURE_1_2 = FIXTURE.parent / "l2_postprocess_1_2"


@pytest.fixture
def record_1_1(tmp_path) -> Path:
    """The 1.1 record with its input paths moved to a copy of the fixture (checksums unchanged)."""
    folder = tmp_path / "inputs"
    shutil.copytree(FIXTURE, folder)
    record = json.loads((FIXTURE / "provenance.json").read_text())
    for item in record["inputs"]:
        for ref in item["files"] or []:
            ref["path"] = str(folder / Path(ref["path"]).name)
    path = tmp_path / "provenance.json"
    path.write_text(json.dumps(record))
    return path


def _arrays(path: Path) -> list[tuple[str, np.ndarray]]:
    with fits.open(path) as hdul:
        return [(hdu.name, np.array(hdu.data)) for hdu in hdul if hdu.data is not None]


#: DETECTIONS columns of the astrometric errors: measured by fake injection with Gaussian position
#: fits, whose least_squares x_scale l2-postprocess 1.4 sets to 1.0 (deterministic) where 1.3 used
#: scipy's default (measured: 1.4 - 1.3 = 2e-5 relative on the 1.2 fixture, nothing else changes)
ASTROMETRIC_ERRORS = ("SEP_ERR_PX", "SEP_ERR_MAS", "PA_ERR")


def _same_arrays(a: Path, b: Path, loose: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> bool:
    """Every HDU's data (images and tables) equal to float32 rounding; headers hold dates and versions.
    Table columns named in ``loose`` need only agree to 1e-3 (relative), those in ``skip`` are
    not compared.

    Bit-identity holds on one machine, not across CPUs: the fixture was written on another machine, and
    numpy/OpenBLAS pick different SIMD kernels per CPU, which moves the last float32 bit (measured:
    1.8e-4 on an image of peak ~1e3, 3e-7 relative in the noise column). A changed algorithm moves values
    by orders of magnitude more (see ``test_1_2_reads_the_fixture_differently``).
    """
    left, right = _arrays(a), _arrays(b)
    if [n for n, _ in left] != [n for n, _ in right]:
        return False
    for (_, x), (_, y) in zip(left, right, strict=True):
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.dtype.names:  # a table: compare column by column
            pairs = [
                (np.asarray(x[name]), np.asarray(y[name]), name in loose)
                for name in x.dtype.names
                if name not in skip
            ]
        else:
            pairs = [(x, y, False)]
        for u, v, is_loose in pairs:
            if u.dtype.kind not in "fc":
                if u.tobytes() != v.tobytes():
                    return False
                continue
            scale = float(np.nanmax(np.abs(v))) if np.isfinite(v).any() else 0.0
            if not np.array_equal(np.isnan(u), np.isnan(v)):
                return False
            rtol, atol = (1e-3, 0.0) if is_loose else (1e-5, 1e-6 * scale)
            if not np.allclose(u, v, rtol=rtol, atol=atol, equal_nan=True):
                return False
    return True


def test_both_versions_registered():
    assert get_recipe("l2-postprocess").version == "1.6"
    assert get_recipe("l2-postprocess", "1.5").version == "1.5"
    assert get_recipe("l2-postprocess", "1.4").version == "1.4"
    assert not get_recipe("l2-postprocess", "1.4").null_threshold
    assert get_recipe("l2-postprocess", "1.3").version == "1.3"
    with pytest.raises(ParameterError):  # 'hcdc-clockwise' is 1.4's name
        get_recipe("l2-postprocess", "1.3").parse_params({"angle_convention": "hcdc-clockwise"})
    assert get_recipe("l2-postprocess", "1.2").version == "1.2"
    old = get_recipe("l2-postprocess", "1.1")
    assert old.version == "1.1"
    with pytest.raises(ParameterError):  # 1.1 had no detection_fpf / output_stem
        old.parse_params({"detection_fpf": 1e-3})
    with pytest.raises(ParameterError):
        old.parse_params({"output_stem": "x"})


def test_1_1_record_reruns_with_identical_arrays(record_1_1, tmp_path):
    result = rerun(record_1_1, tmp_path / "rerun")
    assert result.status == "done", result.error
    assert result.version == "1.1"
    product = Path(result.outputs["product"])
    assert product.name == "level2_pca.fits"
    assert _same_arrays(product, FIXTURE / "level2_pca.fits")
    assert result.provenance.rerun_of == json.loads((FIXTURE / "provenance.json").read_text())["id"]


def test_1_2_reads_the_fixture_differently(record_1_1, tmp_path):
    """The fixture exercises what changed in 1.2 (cube header's angle convention, float64 cube),
    so the rerun test above could fail if 1.1 were replayed through 1.2's code."""
    record = json.loads(record_1_1.read_text())
    inputs = {item["name"]: Path(item["files"][0]["path"]) for item in record["inputs"]}
    result = run_recipe("l2-postprocess", inputs, record["parameters"], work_dir=tmp_path / "v12")
    assert result.status == "done", result.error
    assert not _same_arrays(Path(result.outputs["product"]), FIXTURE / "level2_pca.fits")


def _moved_record(name: str, tmp_path: Path) -> Path:
    """The 1.2 record ``name`` with its input paths moved to a copy of the fixture."""
    folder = tmp_path / "inputs"
    if not folder.exists():
        shutil.copytree(FIXTURE_1_2, folder)
    record = json.loads((FIXTURE_1_2 / f"{name}_provenance.json").read_text())
    for item in record["inputs"]:
        for ref in item["files"] or []:
            ref["path"] = str(folder / Path(ref["path"]).name)
    path = tmp_path / f"{name}_provenance.json"
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("name", ["with_psf", "no_psf"])
def test_1_2_records_rerun_with_identical_arrays(name, tmp_path):
    result = rerun(_moved_record(name, tmp_path), tmp_path / "rerun")
    assert result.status == "done", result.error
    assert result.version == "1.2"
    product = Path(result.outputs["product"])
    assert _same_arrays(product, FIXTURE_1_2 / f"{name}_L2.fits")
    with fits.open(product) as hdul:
        assert "ASTERPSF" not in hdul["DETECTIONS"].header


def test_1_3_measures_errors_without_a_psf_and_says_how(tmp_path):
    """What changed in 1.3 on the same inputs: the PSF-less product gains measured astrometric
    errors (Gaussian fakes, ASTERPSF = 'GAUSSIAN'); with a PSF the arrays stay 1.2's and the
    card says 'OFF-AXIS'."""
    for name, psf_kind in (("no_psf", "GAUSSIAN"), ("with_psf", "OFF-AXIS")):
        record = json.loads(_moved_record(name, tmp_path).read_text())
        inputs = {item["name"]: Path(item["files"][0]["path"]) for item in record["inputs"]}
        result = run_recipe(
            "l2-postprocess", inputs, record["parameters"], work_dir=tmp_path / name, version="1.3"
        )
        assert result.status == "done", result.error
        product = Path(result.outputs["product"])
        with fits.open(product) as hdul:
            dets = hdul["DETECTIONS"]
            assert dets.header["ASTERPSF"] == psf_kind
            assert len(dets.data) >= 1
            assert np.all(dets.data["SEP_ERR_PX"] > 0) and np.all(dets.data["PA_ERR"] > 0)
        assert _same_arrays(product, FIXTURE_1_2 / f"{name}_L2.fits") == (name == "with_psf")
        assert result.outputs["summary"]["astrometric_error_psf"] == psf_kind


def test_1_4_changes_only_the_astrometric_and_photometric_errors_of_a_user_cube(tmp_path):
    """1.4 on the 1.2 fixture's user cube (parallactic angles: no rotation-sense change): the same
    images, S/N map, curves and detections; only the astrometric errors move, by the Gaussian fits'
    x_scale=1.0 (measured 2e-5 relative), and the photometric errors are 1.4's: the aperture noise
    (value / SNR) in quadrature with the fakes' spread / sqrt(6) (docs/postprocessing.md)."""
    record = json.loads(_moved_record("with_psf", tmp_path).read_text())
    inputs = {item["name"]: Path(item["files"][0]["path"]) for item in record["inputs"]}
    result = run_recipe(
        "l2-postprocess", inputs, record["parameters"], work_dir=tmp_path / "v14", version="1.4"
    )
    assert result.status == "done", result.error
    product = Path(result.outputs["product"])
    fixture = FIXTURE_1_2 / "with_psf_L2.fits"
    errors = ("FLUX_ERR", "CONTRAST_ERR")
    assert _same_arrays(product, fixture, loose=ASTROMETRIC_ERRORS, skip=errors)
    assert not _same_arrays(product, fixture, loose=ASTROMETRIC_ERRORS)
    with fits.open(product) as new, fits.open(fixture) as old:
        n, o = new["DETECTIONS"].data, old["DETECTIONS"].data
        assert new["DETECTIONS"].header["PHOTERR"] == "APERTURE+THROUGHPUT"
        assert set(o["PHOTOMETRY"]) == {"injectio"}  # 8 characters
        for err, value in (("FLUX_ERR", "FLUX"), ("CONTRAST_ERR", "CONTRAST")):
            expected = np.hypot(o[err] / np.sqrt(6), np.abs(o[value]) / o["SNR"])
            np.testing.assert_allclose(n[err], expected, rtol=1e-4)


def test_1_5_calibrates_the_threshold_on_the_null_map_and_says_so(tmp_path):
    """1.5 on the 1.2 fixture's user cube: the same image and S/N map as 1.4; detections and the
    5-sigma curve at the Student threshold times DETK (>= 1), fitted on the inverted-angle null map
    (cards DETNULL/DETNU/DETK, column SNR_THR); the curve is deeper-or-equal nowhere than 1.4's
    by more than the throughput's scatter, and shallower by about DETK."""
    from hcdc.science.postprocessing.detection import student_threshold
    from hcdc.science.postprocessing.products import read_product

    record = json.loads(_moved_record("with_psf", tmp_path).read_text())
    inputs = {item["name"]: Path(item["files"][0]["path"]) for item in record["inputs"]}
    runs = {
        v: run_recipe("l2-postprocess", inputs, record["parameters"], work_dir=tmp_path / v, version=v)
        for v in ("1.4", "1.5")
    }
    assert all(r.status == "done" for r in runs.values()), [r.error for r in runs.values()]
    with fits.open(runs["1.4"].outputs["product"]) as old, fits.open(runs["1.5"].outputs["product"]) as new:
        assert np.array_equal(new["IMAGE"].data, old["IMAGE"].data)
        assert np.array_equal(new["SNR_MAP"].data, old["SNR_MAP"].data, equal_nan=True)
        h = new[0].header
        assert "DETNULL" not in old[0].header and "SNR_THR" not in old["CONTRAST"].columns.names
        assert h["DETNULL"] == "INVERTED-ANGLES" and h["DETK"] >= 1.0 and h["DETNU"] >= 3.0
        table = new["CONTRAST"].data
        expected = h["DETK"] * student_threshold(table["SEP_PX"], h["FWHM"], h["DETFPF"])
        np.testing.assert_allclose(table["SNR_THR"], expected, rtol=1e-9)
        ratio = table["CONTRAST_0"] / old["CONTRAST"].data["CONTRAST_0"]
        ratio = ratio[np.isfinite(ratio)]
        assert ratio.size > 5 and abs(np.median(ratio) / h["DETK"] - 1.0) < 0.15, (
            np.median(ratio),
            h["DETK"],
        )
        # every 1.5 detection is above its calibrated threshold and was a 1.4 detection
        for d in new["DETECTIONS"].data:
            assert d["SNR"] > h["DETK"] * student_threshold(d["SEP_PX"], h["FWHM"], h["DETFPF"])
            assert (
                np.min(np.hypot(old["DETECTIONS"].data["X"] - d["X"], old["DETECTIONS"].data["Y"] - d["Y"]))
                < 1.0
            )
    read = read_product(runs["1.5"].outputs["product"])
    assert read.detection_null.nu == pytest.approx(h["DETNU"]) and read.contrast.threshold is not None
    assert read_product(runs["1.4"].outputs["product"]).detection_null is None
    summary = runs["1.5"].outputs["summary"]
    assert summary["detection_null"]["method"] == "inverted-angles"
    assert summary["detection_null"]["threshold_factor"] == pytest.approx(h["DETK"])


def _angles_file(path: Path, values: np.ndarray, rotsense: str | None) -> Path:
    """Angles as an hcdc Level 1 DEROT HDU writes them: ANGCONV = 'derotation', offsets included,
    ROTSENSE = 'CCW' since the sense was fixed (absent before)."""
    header = fits.Header()
    header["ANGCONV"], header["ANGSKY"] = "derotation", True
    if rotsense is not None:
        header["ROTSENSE"] = rotsense
    fits.writeto(path, np.asarray(values, dtype=np.float64), header)
    return path


def test_1_4_derotation_sense_and_old_level1_angles(tmp_path):
    """1.4 turns 'derotation' angles counter-clockwise (vlt-sphere/VIP): angles declared with
    ROTSENSE = 'CCW' put the companion at its PA in 1.4, not in 1.3. Angles of a product written
    before (no ROTSENSE) are read by 1.4 exactly as 1.3 read them (same arrays)."""
    from hcdc.science.simulation.adi import simulate_adi_cube

    sim = simulate_adi_cube(n_frames=16, size=61, fwhm=4.0, companions=[(14.0, 130.0, 3.0e-3)], seed=6)
    fits.writeto(tmp_path / "cube.fits", sim.cube.astype(np.float32))
    params = {"algorithm": "pca", "ncomp": 3, "previews": False, "compute_contrast": False, "fwhm": 4.0}
    # sim.angles are hcdc (clockwise) angles: the vlt-sphere DEROT of these frames is -sim.angles.
    new = {"cube": tmp_path / "cube.fits", "angles": _angles_file(tmp_path / "ccw.fits", -sim.angles, "CCW")}
    old = {"cube": tmp_path / "cube.fits", "angles": _angles_file(tmp_path / "cw.fits", sim.angles, None)}

    def run(version: str, inputs: dict[str, Path], name: str) -> dict:
        result = run_recipe("l2-postprocess", inputs, params, work_dir=tmp_path / name, version=version)
        assert result.status == "done", result.error
        return result.outputs

    def pa_found(outputs: dict) -> list[float]:
        return [d["pa_deg"] for d in outputs["summary"]["detections"] if abs(d["separation_px"] - 14.0) < 1.5]

    assert any(abs((pa - 130.0 + 180) % 360 - 180) < 2.0 for pa in pa_found(run("1.4", new, "n14")))
    assert not any(abs((pa - 130.0 + 180) % 360 - 180) < 2.0 for pa in pa_found(run("1.3", new, "n13")))
    a, b = run("1.4", old, "o14"), run("1.3", old, "o13")
    assert _same_arrays(Path(a["product"]), Path(b["product"]), loose=ASTROMETRIC_ERRORS)
    assert any(abs((pa - 130.0 + 180) % 360 - 180) < 2.0 for pa in pa_found(a))
    # ... and 1.4 says so: such angles turn real pupil-tracking frames the wrong way
    warned = run_recipe("l2-postprocess", old, params, work_dir=tmp_path / "w14", version="1.4").log
    assert any("without ROTSENSE = 'CCW'" in w and "cw.fits" in w for w in warned)
    assert not any(
        "ROTSENSE" in w for w in run_recipe("l2-postprocess", new, params, work_dir=tmp_path / "w14n").log
    )
    assert not any(
        "ROTSENSE" in w
        for w in run_recipe("l2-postprocess", old, params, work_dir=tmp_path / "w13", version="1.3").log
    )


def test_l2_rdi_1_1_reads_the_rotation_sense_and_1_0_stays_as_it_was():
    """l2-rdi 1.1 follows l2-postprocess 1.4 (ROTSENSE, 'hcdc-clockwise', x_scale=1.0); 1.0, kept,
    reads Level 1 angles and fits positions as l2-postprocess 1.3 did."""
    new, old = get_recipe("l2-rdi"), get_recipe("l2-rdi", "1.0")
    assert (
        new.version == "1.1" and new.parse_params({"angle_convention": "hcdc-clockwise"}).algorithm == "rdi"
    )
    assert (new.legacy_derotation, new.fit_x_scale) == (False, 1.0)
    assert (old.legacy_derotation, old.fit_x_scale) == (True, None)
    assert (old.legacy_derotation, old.fit_x_scale) == (
        get_recipe("l2-postprocess", "1.3").legacy_derotation,
        get_recipe("l2-postprocess", "1.3").fit_x_scale,
    )
    with pytest.raises(ParameterError):
        old.parse_params({"angle_convention": "hcdc-clockwise"})
