"""SPHERE/ZIMPOL: raw layout, classification, and simulated nights reduced with known answers.

* the stripe-mask re-ordering (:mod:`hcdc.instruments.sphere.zimpol.raw`) inverts the layout the
  simulator writes, frame phase by frame phase;
* a simulated polarimetric night (ring disc of known polarised brightness, instrumental
  polarisation, dithers, field orientation) through ``zimpol-polarimetry``: Q_phi within 5 % of the
  injected ring (rings of 2 px), U_phi consistent with zero, AoLP azimuthal within 1 deg, the
  instrumental polarisation measured and removed below 0.1 % of I;
* a simulated imaging night (coronagraphic, pupil tracking, one companion) through
  ``level1-zimpol`` then ``l2-postprocess`` (classical ADI): the companion is found where it was
  injected, at its contrast.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.registry import read_file
from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.zimpol import constants as zc
from hcdc.instruments.sphere.zimpol import level1, raw
from hcdc.instruments.sphere.zimpol.simulate import simulate_zimpol_night, true_polarised_map
from hcdc.pipeline.provenance import sha256_file
from hcdc.pipeline.workflow import run_workflow, select_workflow
from hcdc.science.geometry import frame_center
from hcdc.science.orientation import rotation_from_derotation
from hcdc.science.polarimetry import position_angle_from_star


def test_raw_layout_of_the_real_detector_and_round_trips() -> None:
    layout = raw.layout_for_shape((zc.RAW_ROWS, zc.RAW_COLUMNS))
    assert (layout.columns, layout.data_per_adc, layout.data_shape) == (1156, 512, (1024, 1024))
    assert (layout.left_data.start, layout.left_data.stop) == (25, 537)  # 25 prescan, 512 data
    assert (layout.right_data.start, layout.right_data.stop) == (619, 1131)  # 41 + 41 overscan
    rng = np.random.default_rng(0)
    small = raw.RawLayout(rows=8, data_per_adc=6)
    data = rng.normal(size=small.data_shape)
    full = raw.insert_data(data, small, fill=-1.0)
    assert full.shape == small.shape and np.all(full[:, small.left_overscan] == -1.0)
    np.testing.assert_array_equal(raw.data_region(full), data)
    a, b = rng.normal(size=(4, 12)), rng.normal(size=(4, 12))
    a0, b0 = raw.deinterleave_polarimetry(raw.interleave_polarimetry(a, b, 0), 0)
    np.testing.assert_array_equal((a0, b0), (a, b))
    a1, b1 = raw.deinterleave_polarimetry(raw.interleave_polarimetry(a, b, 1), 1)
    np.testing.assert_array_equal(b1, b)
    assert np.all(np.isnan(a1[0])) and np.array_equal(a1[1:], a[1:])  # row 0 of A has no source in pi
    # the two phases put each state on different physical rows (the ZIMPOL principle)
    assert not np.array_equal(raw.interleave_polarimetry(a, b, 0), raw.interleave_polarimetry(a, b, 1))
    np.testing.assert_array_equal(raw.deinterleave_imaging(raw.interleave_imaging(a)), a)
    np.testing.assert_array_equal(raw.bin_columns(np.array([[1.0, 3.0, 5.0, 7.0]])), [[2.0, 6.0]])
    with pytest.raises(ValueError, match="not a ZIMPOL raw frame: 256 x 100"):
        raw.layout_for_shape((256, 100))


@pytest.fixture(scope="module")
def polarimetry(tmp_path_factory):
    """The simulated night through the workflow ``hcdc reduce`` chooses from the classification."""
    night = simulate_zimpol_night(tmp_path_factory.mktemp("zpl_pol"), mode="polarimetry", seed=5)
    raw_files = [f.path for f in night.files]
    workflow = select_workflow([read_file(p)[0] for p in raw_files])
    assert workflow.name == "zimpol-polarimetry-l2"
    result = run_workflow(workflow, {"raw": raw_files}, work_dir=tmp_path_factory.mktemp("w"))
    assert result.status == "done", {n: r.error for n, r in result.nodes.items()}
    assert {f.sha256 for f in result.provenance["stokes"].input("raw").files} == {
        sha256_file(p) for p in raw_files
    }
    return night, result


def test_simulated_files_are_classified_like_real_zimpol(polarimetry) -> None:
    night, _ = polarimetry
    for f in night.files:
        meta, _ = read_file(f.path)
        want = {"OBJECT": "SCIENCE", "BIAS": "BIAS", "DARK": "DARK", "FLAT,LAMP": "FLAT"}[f.dpr_type]
        assert (meta.arm, meta.mode, meta.file_class) == ("ZIMPOL", "ZIMPOL-POL", want), f.path.name
        assert (meta.readout_mode, meta.filter, meta.dit) == ("FastPolarimetry", "VBB/VBB", f.dit)
        if f.dpr_type == "OBJECT":
            assert meta.extra["zimpol_science_type"] == "ZPL_SCI_P1"  # field stabilised (SKY)
            assert meta.extra["zimpol_stokes"] == f.stokes
            assert meta.extra["zimpol_dither_cam2_x"] == f.dither_px[0]
    with fits.open(night.files[0].path) as hdul:
        assert [h.header.get("HIERARCH ESO DET CHIP NAME") for h in hdul[1:]] == ["Callas", "Bartoli"]
        assert hdul[1].data.shape == (2, 256, 388) and hdul[1].data.dtype.kind in "ui"


def _rings(image: np.ndarray, radii: np.ndarray, width: float = 2.0) -> np.ndarray:
    cy, cx = frame_center(image.shape)
    y, x = np.indices(image.shape)
    r = np.hypot(y - cy, x - cx)
    return np.array([np.nanmean(image[(r >= r0) & (r < r0 + width)]) for r0 in radii])


def test_polarimetry_recovers_the_disc(polarimetry) -> None:
    night, result = polarimetry
    assert result.outputs["summary"]["cycles"] == 2 and result.outputs["summary"]["dropped_files"] == []
    previews = sorted(p.name for p in result.outputs["level2"].glob("*.png"))
    assert previews == [f"zimpol_pol_cam{c}_{m}.png" for c in (1, 2) for m in ("pi", "q_phi", "u_phi")]
    disc = night.disc_truth()
    for camera in zc.CAMERAS:
        with fits.open(result.outputs["level2"] / f"zimpol_pol_cam{camera}.fits") as hdul:
            maps = {h.name: h.data.astype(float) for h in hdul[1:] if h.is_image}
            header, wcs = hdul[0].header, hdul["Q_PHI"].header
        assert wcs["CTYPE1"] == "RA---TAN" and wcs["CDELT2"] == pytest.approx(7.2 / 3.6e6)
        truth = true_polarised_map(night.disc, maps["Q_PHI"].shape)
        # rings of 2 px where the disc is bright (> 30 % of its peak): Q_phi within 5 %
        radii = np.arange(disc["radius_px"] - 5.0, disc["radius_px"] + 4.0, 2.0)
        ratio = _rings(maps["Q_PHI"], radii) / _rings(truth, radii)
        assert np.all(np.abs(ratio - 1.0) < 0.05), ratio
        # U_phi consistent with zero: its ring means are < 2 % of Q_phi's
        assert np.all(np.abs(_rings(maps["U_PHI"], radii)) < 0.02 * _rings(truth, radii))
        # AoLP azimuthal (perpendicular to the star direction) within 1 deg where the disc is bright
        bright = truth > 0.5 * truth.max()
        phi = position_angle_from_star(truth.shape)
        delta = (maps["AOLP"] - (phi + 90.0) + 90.0) % 180.0 - 90.0
        assert abs(np.median(delta[bright])) < 1.0 and np.percentile(np.abs(delta[bright]), 90) < 5.0
        # instrumental polarisation: found (turned with the field, by -2 x True North on the
        # detector: the sky turns clockwise by DEROT = True North, docs/conventions.md) and removed
        two_tn = np.radians(2.0 * float(rotation_from_derotation(sc.TRUE_NORTH_DEG)))
        ip_q = np.cos(two_tn) * disc["ip_q"] - np.sin(two_tn) * disc["ip_u"]
        ip_u = np.sin(two_tn) * disc["ip_q"] + np.cos(two_tn) * disc["ip_u"]
        assert header["HIERARCH HCDC IP Q"] == pytest.approx(ip_q, abs=1e-3)
        assert header["HIERARCH HCDC IP U"] == pytest.approx(ip_u, abs=1e-3)
        cy, cx = frame_center(truth.shape)
        y, x = np.indices(truth.shape)
        annulus = (np.hypot(y - cy, x - cx) >= 3) & (np.hypot(y - cy, x - cx) < 15)
        for stokes in ("Q", "U"):
            residual = np.median(maps[stokes][annulus] / maps["I"][annulus])
            assert abs(residual) < 1e-3, (camera, stokes, residual)
        # the star was found where the simulator put it: physical (x, y) -> reduced ((v - 0.5) / 2)
        star = night.select("OBJECT")[0].star_xy_px
        dither = night.select("OBJECT")[0].dither_px
        assert header["HIERARCH HCDC CENTER X"] == pytest.approx((star[0] - dither[0] - 0.5) / 2, abs=0.05)
        assert header["HIERARCH HCDC CENTER Y"] == pytest.approx((star[1] - dither[1] - 0.5) / 2, abs=0.05)


@pytest.mark.slow
def test_imaging_companion_through_level1_and_level2(tmp_path_factory) -> None:
    night = simulate_zimpol_night(tmp_path_factory.mktemp("zpl_img"), mode="imaging", seed=2)
    raw_files = [f.path for f in night.files]
    workflow = select_workflow([read_file(p)[0] for p in raw_files])
    assert workflow.name == "zimpol-l1-l2"
    overrides = ["previews=false", "compute_contrast=false"]
    result = run_workflow(workflow, {"raw": raw_files}, overrides, work_dir=tmp_path_factory.mktemp("w"))
    assert result.status == "done", {n: r.error for n, r in result.nodes.items()}
    product = level1.read_level1_zimpol(result.outputs["level1"])
    objects = night.select("OBJECT")
    assert product.cube.shape == (2, sum(f.ndit for f in objects), 128, 128)
    np.testing.assert_allclose(product.derot, np.concatenate([f.derot for f in objects]), atol=1e-6)
    assert product.derot.max() - product.derot.min() > 10.0  # field rotation for ADI
    assert result.provenance["level2"].parents == [result.provenance["level1"].id]
    summary = result.outputs["summary"]
    assert summary["pixel_scale_mas"] == zc.REDUCED_PIXEL_SCALE_MAS and summary["algorithm"] == "cadi"
    truth = night.companion_truth()[0]
    found = [d for d in summary["detections"] if abs(d["separation_mas"] - truth["separation_mas"]) < 10]
    assert len(found) == 1, summary["detections"]
    d = found[0]
    assert d["separation_mas"] == pytest.approx(truth["separation_mas"], abs=2.0)
    assert d["pa_deg"] == pytest.approx(truth["pa_deg"], abs=1.0)
    assert d["contrast"] == pytest.approx(truth["contrast"], rel=0.25)


def test_bad_inputs_are_named(polarimetry, tmp_path) -> None:
    night, _ = polarimetry
    science = [f.path for f in night.files if f.dpr_catg == "SCIENCE"]
    with pytest.raises(level1.ZimpolError, match="no ZIMPOL BIAS in read-out mode 'FastPolarimetry'"):
        level1.reduce_polarimetry(science, tmp_path)
    with pytest.raises(level1.ZimpolError, match="is polarimetric: use the zimpol-polarimetry recipe"):
        level1.reduce_imaging([f.path for f in night.files], tmp_path)
    broken = tmp_path / "one_camera.fits"
    with fits.open(science[0]) as hdul:
        fits.HDUList([hdul[0].copy(), hdul[1].copy()]).writeto(broken)
    with pytest.raises(
        level1.ZimpolError, match="one_camera.fits: a raw ZIMPOL file has one image extension"
    ):
        level1.read_raw(broken)


def test_simulate_zimpol_cli_json(tmp_path) -> None:
    from typer.testing import CliRunner

    from hcdc.cli import app

    result = CliRunner().invoke(
        app, ["simulate", "zimpol", str(tmp_path), "--polarimetry", "--json", "--seed", "1"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["mode"] == "polarimetry" and out["disc"]["radius_mas"] == pytest.approx(300.0)
    assert [f["stokes"] for f in out["files"][:4]] == list(zc.STOKES_VALUES)
    bad = CliRunner().invoke(app, ["simulate", "zimpol", str(tmp_path / "x"), "--mode", "spectro"])
    assert bad.exit_code == 2 and "unknown ZIMPOL mode 'spectro'" in bad.output
