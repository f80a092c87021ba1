"""Speckle statistics (hcdc.science.simulation.statistics) and the evolving speckle field.

Known truth on synthetic cubes; on the real NACO beta Pic cube (b removed), the statistics the
simulator is tuned to, and the simulator's match to them (benchmarks/speckle_statistics.py,
docs/simulation.md).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from hcdc.science.simulation import statistics
from hcdc.science.simulation.speckles import EvolvingSpeckles, make_evolving_speckles, speckle_intensity

ROOT = Path(__file__).resolve().parents[3]


def _cube_with_shared_pattern(noise_sigma: float, n: int = 12, size: int = 61, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pattern = rng.standard_normal((size, size))
    return pattern[None] + noise_sigma * rng.standard_normal((n, size, size))


def test_correlation_of_a_fixed_pattern_plus_white_noise():
    # Pattern of unit variance + independent noise of variance s^2: corr = 1 / (1 + s^2) at any lag.
    cube = _cube_with_shared_pattern(0.5)
    corr = statistics.speckle_correlation(cube, [10.0, 20.0], 4.0)
    assert corr.lags.tolist() == list(range(12))
    np.testing.assert_allclose(corr.correlation[:, 0], 1.0)
    np.testing.assert_allclose(corr.correlation[:, 1:], 1 / 1.25, atol=0.03)
    assert corr.n_pixels[1] > corr.n_pixels[0]


def test_correlation_of_independent_frames_is_zero_and_masks_apply():
    rng = np.random.default_rng(1)
    cube = rng.standard_normal((8, 61, 61))
    mask = np.zeros((61, 61), bool)
    mask[:, :30] = True
    corr = statistics.speckle_correlation(cube, [20.0], 8.0, lags=[1, 3], mask=mask)
    assert np.all(np.abs(corr.correlation) < 3.0 / np.sqrt(corr.n_pixels[0] * 5))  # 3 sigma, >= 5 pairs
    full = statistics.speckle_correlation(cube, [20.0], 8.0, lags=[1])
    assert corr.n_pixels[0] < 0.6 * full.n_pixels[0]


def test_correlation_rejects_bad_input():
    with pytest.raises(ValueError, match="at least 2 frames"):
        statistics.speckle_correlation(np.zeros((1, 10, 10)), [3.0], 2.0)
    with pytest.raises(ValueError, match="lags"):
        statistics.speckle_correlation(np.zeros((3, 10, 10)), [3.0], 2.0, lags=[5])


def test_radial_noise_profile_of_white_noise():
    # Aperture sums of white noise of sigma per pixel have std sigma * sqrt(pixels in the aperture).
    rng = np.random.default_rng(2)
    sigma, fwhm, star = 3.0, 4.0, 1000.0
    image = rng.normal(0.0, sigma, (201, 201))
    expected = sigma * np.sqrt(statistics.aperture_kernel(fwhm).sum()) / star
    profile = statistics.radial_noise_profile(image, [20.0, 40.0, 80.0], fwhm, star)
    np.testing.assert_allclose(profile, expected, rtol=0.08)
    # A radial trend (a halo) is not noise at a given separation.
    r = np.hypot(*np.mgrid[-100:101, -100:101])
    with_halo = statistics.radial_noise_profile(image + 5e3 / (1 + r), [20.0, 40.0, 80.0], fwhm, star)
    np.testing.assert_allclose(with_halo, profile, rtol=0.05)
    # A cube gives the median of the per-frame profiles.
    cube = np.stack([image, 2 * image, 3 * image])
    np.testing.assert_allclose(statistics.radial_noise_profile(cube, [40.0], fwhm, star), 2 * profile[1])
    with pytest.raises(ValueError, match="star_flux"):
        statistics.radial_noise_profile(image, [20.0], fwhm, 0.0)


def _speckles(**kw) -> EvolvingSpeckles:
    return make_evolving_speckles(np.random.default_rng(5), **kw)


def test_evolving_speckles_are_deterministic_and_follow_the_envelope():
    a, b = _speckles(), _speckles()
    img_a = speckle_intensity(a, (121, 121), (60.0, 60.0), 3.3, 100.0)
    np.testing.assert_array_equal(img_a, speckle_intensity(b, (121, 121), (60.0, 60.0), 3.3, 100.0))
    # Averaged over many independent times, the intensity is the envelope (per pixel: / lod^2).
    lod = 3.3
    times = np.arange(40) * 1.0e5
    mean = np.mean([speckle_intensity(a, (121, 121), (60.0, 60.0), lod, t) for t in times], axis=0)
    r = np.hypot(*np.mgrid[-60:61, -60:61]) / lod
    for lo, hi in ((3.0, 5.0), (6.0, 9.0), (10.0, 14.0)):
        ring = (r >= lo) & (r < hi)
        assert mean[ring].mean() == pytest.approx((a.envelope(r[ring]) / lod**2).mean(), rel=0.2)
    assert np.all(speckle_intensity(a, (121, 121), (60.0, 60.0), lod, 0.0)[r > a.control_ld + 2] == 0)


def test_evolving_speckles_decorrelate_down_to_the_static_share():
    # Static share 0.5, no fast part: the amplitude correlation tends to 0.5, the intensity one
    # (|rho|^2 for Gaussian fields) to 0.25 at lags much longer than the quasi-static timescale.
    shares = ((1.0, 30.0), (0.5, 0.5), (0.0, 0.0))
    sp = _speckles(shares=shares, timescale_s=100.0, n_modes=32, brightness_rms=0.0)

    def corr(t0: float, t1: float) -> np.ndarray:
        frames = np.stack([speckle_intensity(sp, (121, 121), (60.0, 60.0), 3.3, t) for t in (t0, t1)])
        return statistics.speckle_correlation(frames, [20.0, 30.0], 4.0, lags=[1]).correlation[:, 0]

    assert np.all(corr(0.0, 1.0) > 0.95)  # 1 s apart, timescale 100 s
    far = np.concatenate([corr(k * 1e5, (k + 1) * 1e5) for k in range(6)])
    assert abs(far.mean() - 0.25) < 0.1


def test_make_evolving_speckles_rejects_bad_shares():
    with pytest.raises(ValueError, match="sum <= 1"):
        _speckles(shares=((1.0, 2.0), (0.8, 0.8), (0.3, 0.3)))
    with pytest.raises(ValueError, match="envelope"):
        _speckles(envelope=((2.0, 1.0), (1e-3, 1e-4)))


# --- the real cube and the simulator against it ----------------------------------------------


def _benchmark():
    path = ROOT / "benchmarks" / "speckle_statistics.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("speckle_statistics", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def measured(shared_data):
    bench = _benchmark()
    if not (bench.load_naco.__globals__["DATA"] / "naco_betapic_cube.fits").is_file():
        pytest.skip("the NACO cube is not where benchmarks/postprocessing_vs_vip.py looks (HCDC_SHARED_DATA)")
    return bench.measure_all((1, 2, 3))


@pytest.mark.shared_data
def test_naco_speckle_statistics(measured):
    naco = measured["naco"]
    corr = naco.correlation
    # Real speckles: ~0.9-0.97 one frame apart, decorrelating over the 3.3 h sequence.
    assert np.all((corr[:, 0] > 0.85) & (corr[:, 0] < 0.995))
    assert np.all(corr[:, -1] < corr[:, 0] - 0.05)
    # Noise falls with separation; ADI helps, PCA more than cADI at every separation.
    assert np.all(np.diff(naco.raw_profile) < 0)
    assert np.all(naco.pca_profile < naco.cadi_profile) and np.all(naco.cadi_profile < naco.raw_profile)
    assert np.all(naco.snr_ratio < 0.6)  # cADI finds fakes at < 0.6 of PCA-10's S/N


@pytest.mark.shared_data
def test_simulator_matches_the_sky_within_the_documented_factors(measured):
    bench = _benchmark()
    naco, new, old = measured["naco"], measured["new"], measured["old"]

    def worst(q: np.ndarray) -> float:
        return float(np.nanmax(np.maximum(q, 1 / q)))

    r_new, r_old = bench.ratios(new, naco), bench.ratios(old, naco)
    # Issue 8's goal is a factor 1.5. Met for the raw noise profile at every separation and for
    # every statistic at the median separation; at worst within 1.8 (correlation 1.54 at 15-30
    # frames and 5-6 lambda/D, cADI 1.74 and PCA-10 1.67 at 4 and 12 lambda/D, S/N ratio 1.67 at
    # 5-6 lambda/D; docs/simulation.md). Bounded here so that a change shows.
    assert worst(r_new["raw_profile"]) < 1.5
    for name in ("correlation", "cadi_profile", "pca_profile", "snr_ratio"):
        q = r_new[name]
        assert float(np.nanmedian(np.maximum(q, 1 / q))) < 1.5, name
        assert worst(q) < 1.9, name
    # The old model was ~100 times too faint and too stable.
    assert worst(r_old["raw_profile"]) > 20 and worst(r_old["cadi_profile"]) > 100


def test_low_order_field_keeps_the_mean_and_adds_large_blobs():
    # Half of the light in the low-order field: the time-averaged intensity is still the
    # envelope, and the pattern is smoother (a larger share of its variance survives a
    # 2-lambda/D box filter) than without it.
    from scipy import ndimage

    lod = 3.3
    plain = _speckles(brightness_rms=0.0)
    low = _speckles(brightness_rms=0.0, low_order_share=0.5, low_order_pupil=0.1)
    times = np.arange(40) * 1.0e5
    mean = np.mean([speckle_intensity(low, (121, 121), (60.0, 60.0), lod, t) for t in times], axis=0)
    r = np.hypot(*np.mgrid[-60:61, -60:61]) / lod
    ring = (r >= 6.0) & (r < 12.0)
    assert mean[ring].mean() == pytest.approx((low.envelope(r[ring]) / lod**2).mean(), rel=0.2)

    def smooth_fraction(sp: EvolvingSpeckles) -> float:
        img = speckle_intensity(sp, (121, 121), (60.0, 60.0), lod, 0.0) / (sp.envelope(r) + 1e-30)
        sel = (r >= 4.0) & (r < 14.0)
        return float(ndimage.uniform_filter(img, 7)[sel].var() / img[sel].var())

    assert smooth_fraction(low) > 1.5 * smooth_fraction(plain)
    with pytest.raises(ValueError, match="low_order_share"):
        _speckles(low_order_share=1.0)
