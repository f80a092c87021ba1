"""IFS calibration and extraction on simulated raw frames with known truth
(hcdc.instruments.sphere.ifs.extraction, hcdc.science.calibration.ifs).

Tolerances were measured on these simulations (small detector, seed 5; docs/ifs.md): wavelengths
~5e-5 relative, trace columns ~0.01 px, lenslet response ~0.5 %, the star's spectrum in a
100 mas aperture within ~5 % per channel (photon noise of one 4 s DIT) except the first and last
channels, which lose 12-18 % to the order-sorting filter edge one pixel away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.time import Time
from scipy.spatial import cKDTree

from hcdc.instruments.sphere.ifs import geometry as geo
from hcdc.instruments.sphere.ifs.extraction import (
    IfsCalibration,
    bad_pixel_map,
    calibrate_frame,
    calibrate_ifs,
    detector_flat,
    extract_cube,
    mean_frame,
)
from hcdc.instruments.sphere.ifs.simulate import (
    LENSLET_RESPONSE_RMS,
    WHITE_LAMP_ADU_S_NM,
    SimulatedIfsNight,
    science_scene,
    simulate_ifs_night,
)
from hcdc.science.calibration import ifs as cal
from hcdc.science.simulation import ifs as ifsim
from hcdc.science.simulation.speckles import NACO_LIKE_ENVELOPE, make_evolving_speckles


@pytest.fixture(scope="module", params=["YJ", "YJH"])
def calibrated(request, tmp_path_factory) -> tuple[SimulatedIfsNight, IfsCalibration, np.ndarray, np.ndarray]:
    night = simulate_ifs_night(
        tmp_path_factory.mktemp(f"ifs_{request.param}"), mode=request.param, seed=5, crosstalk=False
    )
    dark = mean_frame(night.select("DARK")[0].path)
    flat, bad = detector_flat(
        mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=10.0)[0].path),
        mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=1.65)[0].path),
    )

    def calibrated_frame(path: Path, background: np.ndarray) -> np.ndarray:
        return (mean_frame(path) - background) / flat

    ifu = next(f for f in night.files if f.dpr_type == "FLAT,LAMP" and f.dpr_tech == "IFU")
    calibration = calibrate_ifs(
        calibrated_frame(night.select("SPECPOS,LAMP")[0].path, dark),
        calibrated_frame(night.select("WAVE,LAMP")[0].path, dark),
        calibrated_frame(ifu.path, dark),
        request.param,
    )
    # our lenslets -> the simulator's (same lattice indices once the grid is registered)
    distance, index = cKDTree(night.grid.trace_xy).query(calibration.trace_xy)
    return night, calibration, np.where(distance < 1.0, index, -1), flat


def test_grid_registered_and_spectra_at_the_right_places(calibrated) -> None:
    night, calibration, index, _ = calibrated
    matched = index >= 0
    assert matched.sum() >= len(night.grid) - 30  # all but a few partly off-detector ones
    truth = night.grid.trace_xy[index[matched]]
    dx = calibration.trace_xy[matched, 0] - truth[:, 0]
    assert np.abs(np.median(dx)) < 0.03 and np.percentile(np.abs(dx), 99) < 0.05
    # rows: the trace centre plus the per-lenslet zero point of the wavelength solution
    mid = 0.5 * (night.mode.wave_min_nm + night.mode.wave_max_nm)
    rows = calibration.trace_xy[matched, 1] + calibration.solution.offset(mid)[matched]
    true_rows = truth[:, 1] + night.mode.trace_offset_px(mid)
    assert np.percentile(np.abs(rows - true_rows), 99) < 0.05
    # residual map of the white-lamp measurements around the grid model (documented in docs/ifs.md)
    res = calibration.residual_xy[matched]
    assert np.std(res[:, 0]) < 0.05 and np.median(np.abs(res[:, 1])) < 0.8


def test_wavelengths_within_half_a_percent_for_every_channel(calibrated) -> None:
    night, calibration, index, _ = calibrated
    matched = index >= 0
    waves = calibration.wavelengths_nm
    rows = calibration.channel_rows()[matched]
    # the wavelength the simulator put on those rows, for every lenslet and channel
    truth_offsets = rows - night.grid.trace_xy[index[matched], 1:2]
    true_waves = night.mode.wavelength_at_offset(truth_offsets)
    relative = np.abs(true_waves / waves[None, :] - 1.0)
    assert relative.shape[1] == 39
    assert relative.max(axis=0).max() < 5e-3  # the bound, every channel, every lenslet
    assert np.median(relative) < 2e-4  # what we measure: ~5e-5


def test_ifu_flat_recovers_the_lenslet_response(calibrated) -> None:
    night, calibration, index, _ = calibrated
    matched = index >= 0
    measured = np.nanmedian(calibration.response[matched], axis=1)
    truth = night.lenslet_response[index[matched]]
    ratio = measured / truth
    ok = np.isfinite(ratio)
    assert ok.mean() > 0.99
    assert np.median(np.abs(ratio[ok] - np.median(ratio[ok]))) < 0.01  # truth rms is 4 %
    assert np.std(truth) == pytest.approx(LENSLET_RESPONSE_RMS, rel=0.2)


def _truth_scene_spectra(night: SimulatedIfsNight, f, waves, xy_mas):
    speckles = make_evolving_speckles(
        np.random.default_rng(night.extra["speckle_seed"]), envelope=NACO_LIKE_ENVELOPE
    )
    t_s = (Time(f.mjd_mid[0], format="mjd") - Time(night.files[0].date_obs)).to_value("s")
    scene = science_scene(
        "flux", night.companions, tuple(f.star_xy_mas[0]), float(f.derot[0]), t_s, f.nd, speckles
    )
    area = geo.LENSLET_PITCH_SKY_MAS**2 * np.sqrt(3.0) / 2.0
    return ifsim.lenslet_spectra(scene, xy_mas, waves, area), scene


def test_extracted_star_spectrum_and_cube_match_the_input(calibrated) -> None:
    night, calibration, index, flat = calibrated
    flux = night.select("OBJECT,FLUX")[0]
    background = mean_frame(night.select("DARK,BACKGROUND", dit=flux.dit)[0].path)
    image = (mean_frame(flux.path) - background) / flat / flux.dit
    waves = calibration.wavelengths_nm
    matched = index >= 0
    spectra = cal.extract_spectra(image, calibration.trace_xy, calibration.solution, waves)
    spectra = (spectra / calibration.response)[matched]
    xy_mas = night.grid.sky_xy_mas[index[matched]]
    truth, scene = _truth_scene_spectra(night, flux, waves, xy_mas)
    r = np.hypot(*(xy_mas - np.asarray(scene.star_xy_mas)).T)
    aperture = (r < 100.0) & np.all(np.isfinite(spectra), axis=1)
    ratio = spectra[aperture].sum(axis=0) / truth[aperture].sum(axis=0)
    assert np.all(np.abs(ratio[1:-1] - 1.0) < 0.08), np.round(ratio, 3)
    assert abs(np.median(ratio[1:-1]) - 1.0) < 0.02
    assert 0.7 < ratio[0] < 0.95 and 0.7 < ratio[-1] < 0.95  # the order-sorting filter edges
    # the resampled (39, y, x) cube holds the same star flux as the input cube at 7.46 mas/px
    cube = extract_cube(image, calibration)
    assert cube.shape == (39, 145, 145)
    size = cube.shape[1]
    grid = (np.arange(size) - size // 2) * 7.46
    gx, gy = np.meshgrid(grid, grid)
    pix = np.column_stack((gx.ravel(), gy.ravel()))
    truth_cube = ifsim.lenslet_spectra(scene, pix, waves, 7.46**2).T.reshape(39, size, size)
    inside = np.hypot(gx - scene.star_xy_mas[0], gy - scene.star_xy_mas[1]) < 100.0
    cube_ratio = np.nansum(cube[:, inside], axis=1) / truth_cube[:, inside].sum(axis=1)
    assert np.all(np.abs(cube_ratio[1:-1] - 1.0) < 0.10), np.round(cube_ratio, 3)
    # the star sits where the truth puts it (flux-weighted centre in the middle channel, mas)
    mid = cube[19]
    w = np.where(inside & np.isfinite(mid), mid, 0.0)
    centre = np.array([(w * gx).sum(), (w * gy).sum()]) / w.sum()
    assert np.hypot(*(centre - np.asarray(scene.star_xy_mas))) < 3.0


def test_affine_fit_and_errors() -> None:
    rng = np.random.default_rng(1)
    predicted = rng.uniform(0, 1000, (500, 2))
    angle = np.radians(0.2)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    measured = predicted @ rot.T * 1.001 + [1.3, -0.7]
    measured[:5] += 4.0  # outliers are clipped
    model, residual = cal.fit_affine(predicted, measured)
    np.testing.assert_allclose(residual[5:], 0.0, atol=1e-9)
    assert np.all(np.abs(residual[:5]) > 3.9)
    with pytest.raises(ValueError, match="needs >= 3 laser lines, got 2"):
        cal.fit_wavelength_solution(np.zeros((64, 64)), predicted[:3], (1000.0, 1100.0), np.zeros(2))
    with pytest.raises(ValueError, match="calibration frames differ in shape"):
        calibrate_ifs(np.zeros((64, 64)), np.zeros((64, 64)), np.zeros((32, 32)), "YJ")


def test_mean_frame_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.fits"
    bad.write_bytes(b"not a FITS file")
    with pytest.raises(ValueError, match="broken.fits: cannot read the IFS frame"):
        mean_frame(bad)


def test_cube_resampler_is_linear_interpolation_on_the_lenslet_triangles() -> None:
    from scipy.interpolate import LinearNDInterpolator

    grid = geo.lenslet_grid((512, 512))
    values = np.random.default_rng(2).normal(size=(len(grid), 3))
    cube = cal.lenslets_to_cube(values, grid.sky_xy_mas, 71, 7.46)
    axis = (np.arange(71) - 35) * 7.46
    gx, gy = np.meshgrid(axis, axis)
    ref = LinearNDInterpolator(grid.sky_xy_mas, values)(np.column_stack((gx.ravel(), gy.ravel())))
    np.testing.assert_allclose(cube, ref.T.reshape(3, 71, 71), atol=1e-12)
    assert np.isnan(cube[:, 0, 0]).all() == np.isnan(ref[0]).all()


def test_bad_pixels_interpolated_along_the_spectra(calibrated) -> None:
    """Hot and dead pixels (found in the background and the detector flat, not taken from the
    truth) spoil the spectra that cross them; interpolating them along the columns repairs them."""
    night, calibration, index, flat = calibrated
    _, flat_bad = detector_flat(
        mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=10.0)[0].path),
        mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=1.65)[0].path),
    )
    background = mean_frame(night.select("DARK,BACKGROUND", dit=4.0)[0].path)
    bad = bad_pixel_map(background, flat_bad)
    truth_bad = night.detector.bad_pixels > 0  # hot, dead or non-linear (the long flat shows them)
    found = bad & truth_bad
    lit = np.zeros_like(bad)
    lit[4:-4, 4:-4] = True  # the unlit reference-pixel border is flagged as a whole
    # most bad pixels are found (hot ones > 5 sigma in one 4 s DIT); few good ones flagged (the
    # vlt-sphere flat rule [0.9, 1.1] also takes the 2 % response tails: ~6 % of the flags)
    assert found.sum() > 0.8 * truth_bad.sum()
    assert (bad & ~truth_bad & lit).sum() < 0.1 * (bad & lit).sum()
    # the white-lamp SPECPOS frame: every spectrum bright, input known (lamp x lenslet response)
    white = night.select("SPECPOS,LAMP")[0]
    dark = mean_frame(night.select("DARK")[0].path)
    raw = mean_frame(white.path)
    plain = calibrate_frame(raw, dark, flat) / white.dit
    repaired = calibrate_frame(raw, dark, flat, bad) / white.dit
    waves = calibration.wavelengths_nm
    matched = index >= 0
    truth = WHITE_LAMP_ADU_S_NM * night.lenslet_response[index[matched]]
    # lenslets with a dead pixel (response 0-5 %; found in the flat) on their trace's central
    # columns: in a bright frame they matter (a hot pixel's few ADU do not)
    dead = found & ((night.detector.bad_pixels & 2) > 0)
    rows = calibration.channel_rows()[matched]
    cols = np.rint(calibration.trace_xy[matched, 0]).astype(int)
    r0, r1 = np.floor(rows.min(axis=1)).astype(int), np.ceil(rows.max(axis=1)).astype(int)
    hit = np.array([dead[r0[k] : r1[k] + 1, cols[k] - 1 : cols[k] + 2].any() for k in range(len(cols))])
    assert hit.sum() > 50

    def error(image: np.ndarray) -> float:
        spectra = cal.extract_spectra(image, calibration.trace_xy, calibration.solution, waves)[matched]
        # the worst channel of each lenslet (a bad pixel spoils one or two), median over lenslets
        worst = np.max(np.abs(spectra[hit][:, 3:-3] / truth[hit, None] - 1.0), axis=1)
        return float(np.median(worst))

    # measured (seed 5): 20 % -> 1.5-1.8 % (the noise of one 1.65 s white-lamp DIT)
    assert error(repaired) < 0.03
    assert error(repaired) < 0.5 * error(plain)


def test_interpolation_along_columns_only() -> None:
    image = np.tile(np.arange(20.0)[:, None], (1, 5))  # a ramp along y, constant along x
    image[:, 2] *= 3.0
    bad = np.zeros_like(image, dtype=bool)
    bad[7:9, 2] = True
    spoiled = image.copy()
    spoiled[bad] = 1e6
    fixed = cal.interpolate_along_columns(spoiled, bad)
    np.testing.assert_allclose(fixed, image)  # the neighbouring columns played no part
    far = np.zeros_like(bad)
    far[0:15, 4] = True  # rows 0-14 bad: rows 0-4 are > 10 px from the first good row
    fixed = cal.interpolate_along_columns(spoiled, far)
    assert np.all(fixed[0:5, 4] == spoiled[0:5, 4]) and np.allclose(fixed[5:15, 4], 15.0)
