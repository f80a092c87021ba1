"""Pure IRDIS scene and detector models (hcdc.science.simulation.irdis) against known answers."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.instruments.sphere import constants as sc
from hcdc.science import geometry
from hcdc.science.simulation import irdis as sim

H2 = sim.BandOptics(1593.0, 52.0, sc.IRDIS_PIXEL_SCALE_MAS, sc.TELESCOPE_DIAMETER_M)
H3 = sim.BandOptics(1667.0, 54.0, sc.IRDIS_PIXEL_SCALE_MAS, sc.TELESCOPE_DIAMETER_M)


def _centroid(image: np.ndarray, x: float, y: float, half: int = 4) -> tuple[float, float]:
    """Intensity-weighted centroid in a (2 half + 1)^2 box around the nearest pixel to (x, y)."""
    xi, yi = int(round(x)), int(round(y))
    box = image[yi - half : yi + half + 1, xi - half : xi + half + 1]
    box = box - np.median(box)
    box = np.clip(box, 0.0, None)
    yy, xx = np.mgrid[yi - half : yi + half + 1, xi - half : xi + half + 1]
    return float((box * xx).sum() / box.sum()), float((box * yy).sum() / box.sum())


def test_lambda_over_d_in_pixels_matches_sphere_md() -> None:
    # sphere.md: waffle radius IRDIS H2 46.0 px at 13.72 lambda/D.
    assert H2.lambda_over_d_px() == pytest.approx(3.3515, abs=1e-3)
    assert sc.WAFFLE_DISTANCE_LD * H2.lambda_over_d_px() == pytest.approx(46.0, abs=0.05)


def test_airy_profile_zero_and_encircled_energy() -> None:
    # First dark ring of the Airy pattern at 1.2197 lambda/D; 83.8 % of the flux inside it.
    assert sim.airy_profile(np.array([1.2197]))[0] < 1e-6
    assert sim.airy_encircled_energy(1.2197) == pytest.approx(0.8378, abs=1e-3)


def test_add_airy_conserves_flux() -> None:
    image = np.zeros((301, 301))
    lod = H2.lambda_over_d_px()
    sim.add_airy(image, 150.3, 149.6, 1000.0, lod, 40 * lod)
    # Sampling at pixel centres of a ~3.4 px lambda/D pattern integrates to 0.2 %.
    assert image.sum() == pytest.approx(1000.0 * sim.airy_encircled_energy(40.0), rel=2e-3)
    peak_y, peak_x = np.unravel_index(np.argmax(image), image.shape)
    assert (peak_x, peak_y) == (150, 150)


def test_companion_turns_with_derotation_angle_like_geometry_derotate() -> None:
    """A companion drawn at detector PA = PA + derot comes back to PA after geometry.derotate."""
    n = 121
    star = geometry.frame_center((n, n))[::-1]  # (x, y)
    sep_px, pa = 30.0, 63.0
    expected = geometry.polar_to_pixel(sep_px, pa, (n, n))
    derots = np.array([0.0, 37.5, 134.24, 301.0])
    cube = np.zeros((derots.size, n, n))
    for k, derot in enumerate(derots):
        x, y = sim.companion_detector_xy(star, sep_px, pa, derot)
        sim.add_airy(cube[k], x, y, 1e4, H2.lambda_over_d_px(), 12 * H2.lambda_over_d_px())
    for k in range(derots.size):  # the raw frames do differ: the companion turns on the detector
        x, y = sim.companion_detector_xy(star, sep_px, pa, derots[k])
        assert np.hypot(x - star[0], y - star[1]) == pytest.approx(sep_px)
    derotated = geometry.derotate(cube, derots, fill_value=0.0)
    for k in range(derots.size):
        cx, cy = _centroid(derotated[k], *expected)
        assert cx == pytest.approx(expected[0], abs=0.05)
        assert cy == pytest.approx(expected[1], abs=0.05)


def test_anamorphism_compresses_y_offsets() -> None:
    dx, dy = sim.sky_to_detector_offset(40.0, 0.0, 0.0, (1.0, 1.0062))
    assert dx == pytest.approx(0.0, abs=1e-12)
    assert dy == pytest.approx(40.0 / 1.0062)


@pytest.mark.parametrize(("orient", "angles"), [("+", (0, 90, 180, 270)), ("x", (45, 135, 225, 315))])
def test_waffle_spots_radius_and_orientation(orient: str, angles: tuple[int, ...]) -> None:
    n = 161
    star = (80.3, 79.8)
    radius = sc.waffle_radius_px(H2.wavelength_nm)
    scene = sim.StarScene(
        kind="center",
        star_xy=star,
        star_flux=1e6,
        optics=H2,
        speckles=sim.make_speckles(np.random.default_rng(0), n=0),
        time_s=0.0,
        waffle_radius_px=radius,
        waffle_orientation_deg=sc.waffle_orientation_deg(orient),
        halo_fraction=0.0,
    )
    image = sim.render_star_field((n, n), scene)
    measured = []
    for ang in angles:
        guess = (star[0] + radius * np.cos(np.radians(ang)), star[1] + radius * np.sin(np.radians(ang)))
        cx, cy = _centroid(image, *guess, half=5)
        measured.append((cx, cy))
        assert np.hypot(cx - star[0], cy - star[1]) == pytest.approx(radius, abs=0.1)
        assert np.degrees(np.arctan2(cy - star[1], cx - star[0])) % 360 == pytest.approx(ang, abs=0.2)
    # The intersection of the lines joining opposite spots is the star (vlt-sphere's method).
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = measured
    a = np.array([[x2 - x0, -(x3 - x1)], [y2 - y0, -(y3 - y1)]])
    t, _ = np.linalg.solve(a, np.array([x1 - x0, y1 - y0]))
    assert x0 + t * (x2 - x0) == pytest.approx(star[0], abs=0.02)
    assert y0 + t * (y2 - y0) == pytest.approx(star[1], abs=0.02)


def test_speckles_scale_with_wavelength_and_stay_on_the_detector() -> None:
    one = sim.SpeckleModel(
        radius_ld=np.array([10.0]),
        angle_deg=np.array([30.0]),
        fraction=np.array([1e-2]),
        period_s=np.array([3600.0]),
        phase=np.array([0.0]),
        modulation=0.0,
    )
    star = (100.0, 100.0)
    positions = []
    for optics in (H2, H3):
        image = np.zeros((201, 201))
        sim.add_speckles(image, star, 1e6, one, optics, time_s=0.0, n_sub=1)
        positions.append(_centroid(image, *np.unravel_index(np.argmax(image), image.shape)[::-1]))
    r2 = np.hypot(positions[0][0] - 100.0, positions[0][1] - 100.0)
    r3 = np.hypot(positions[1][0] - 100.0, positions[1][1] - 100.0)
    assert r2 == pytest.approx(10.0 * H2.lambda_over_d_px(), abs=0.05)
    assert r3 / r2 == pytest.approx(1667.0 / 1593.0, rel=3e-3)


def test_speckles_are_quasi_static() -> None:
    speckles = sim.make_speckles(np.random.default_rng(1), n=50, total_fraction=2e-3, modulation=0.1)
    assert speckles.fraction.sum() == pytest.approx(2e-3)
    f0, f1 = speckles.fractions_at(0.0), speckles.fractions_at(600.0)
    change = np.abs(f1 - f0) / f0
    assert change.max() <= 0.2 + 1e-12  # at most twice the modulation
    assert change.mean() > 0.0


def test_coronagraph_attenuates_star_not_far_companions() -> None:
    assert sim.coronagraph_transmission(0.0, 7.5) == pytest.approx(0.0)
    assert sim.coronagraph_transmission(20.0, 7.5) > 0.999
    common = dict(
        star_xy=(60.0, 60.0),
        star_flux=1e6,
        optics=H2,
        speckles=sim.make_speckles(np.random.default_rng(0), n=0),
        time_s=0.0,
        halo_fraction=0.0,
    )
    flux = sim.render_star_field((121, 121), sim.StarScene(kind="flux", **common))
    coro = sim.render_star_field(
        (121, 121), sim.StarScene(kind="coronagraphic", coronagraph_leak=3e-3, **common)
    )
    assert coro.max() / flux.max() == pytest.approx(3e-3, rel=1e-6)


def test_detector_expectation_and_bad_pixels() -> None:
    rng = np.random.default_rng(5)
    det = sim.make_detector((64, 128), rng, field_width=64, gain=1.75, dark_current_adu_s=0.05)
    assert np.count_nonzero(det.bad_pixels & det.HOT) == round(2e-3 * 64 * 128)
    assert np.count_nonzero(det.bad_pixels & det.DEAD) == round(1e-3 * 64 * 128)
    good = det.bad_pixels == 0
    assert np.median(det.flat[:, :64][good[:, :64]]) == pytest.approx(1.0, abs=0.01)
    dark = det.readout(np.zeros((64, 128)), 10.0, None, noise=False)
    np.testing.assert_allclose(dark, det.bias + 10.0 * det.dark_current, rtol=1e-5)
    lamp = det.readout(np.full((64, 128), 500.0), 10.0, None, noise=False) - dark
    linear = good
    np.testing.assert_allclose(lamp[linear], 5000.0 * det.flat[linear], rtol=1e-4)
    nonlin = (det.bad_pixels & det.NONLINEAR) > 0
    assert np.all(lamp[nonlin] < 0.9 * 5000.0 * det.flat[nonlin])  # compressed above the knee


def test_detector_noise_statistics() -> None:
    det = sim.make_detector(
        (100, 200),
        np.random.default_rng(2),
        field_width=100,
        gain=1.75,
        read_noise_e=10.0,
        hot_fraction=0.0,
        dead_fraction=0.0,
        nonlinear_fraction=0.0,
    )
    rng = np.random.default_rng(3)
    frames = np.stack([det.readout(np.full((100, 200), 100.0), 10.0, rng) for _ in range(2)]).astype(
        np.float64
    )
    # Difference of two frames: variance 2 (signal / gain + (RON / gain)^2) per pixel, in ADU^2.
    signal = 1000.0 * det.flat + 10.0 * det.dark_current
    expected = 2.0 * (signal / 1.75 + (10.0 / 1.75) ** 2)
    ratio = np.var(frames[1] - frames[0]) / expected.mean()
    assert ratio == pytest.approx(1.0, abs=0.03)


def test_illumination_mask() -> None:
    mask = sim.illumination_mask((16, 32), ((0, 2),), ((0, 3), (15, 17)))
    assert mask[:2].sum() == 0 and mask[:, :3].sum() == 0 and mask[:, 15:17].sum() == 0
    assert mask.sum() == 14 * (32 - 5)
