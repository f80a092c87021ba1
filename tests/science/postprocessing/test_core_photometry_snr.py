"""Exact aperture photometry and the Mawet 2014 S/N (at a position and as an exact map)."""

import numpy as np
import pytest
from scipy import stats

from hcdc.science.postprocessing.photometry import aperture_sums, aperture_weights, normalize_psf
from hcdc.science.postprocessing.snr import aperture_positions, snr_at, snr_map
from hcdc.science.simulation.adi import gaussian_psf


@pytest.mark.parametrize("radius", [0.7, 1.0, 2.3, 3.5])
def test_aperture_weights_are_exact_areas(radius):
    rng = np.random.default_rng(0)
    x, y = rng.uniform(10, 20, 50), rng.uniform(10, 20, 50)
    _, _, w = aperture_weights(x, y, radius)
    assert np.allclose(w.sum(axis=(1, 2)), np.pi * radius**2, rtol=0, atol=1e-9)
    assert w.min() >= -1e-12 and w.max() <= 1 + 1e-12


def test_aperture_sum_matches_brute_force_supersampling():
    rng = np.random.default_rng(1)
    image = rng.normal(size=(30, 30))
    x, y, r = 14.37, 15.81, 2.3
    n = 400  # sub-pixels per pixel side
    sub = (np.arange(n) + 0.5) / n - 0.5
    total = 0.0
    for j in range(10, 21):
        for i in range(9, 21):
            yy, xx = np.meshgrid(j + sub, i + sub, indexing="ij")
            total += image[j, i] * np.mean((xx - x) ** 2 + (yy - y) ** 2 < r * r)
    assert aperture_sums(image, [x], [y], r)[0] == pytest.approx(total, abs=2e-3)


def test_normalize_psf_gives_unit_aperture_flux():
    psf = 37.0 * gaussian_psf(4.0, size=21)
    norm = normalize_psf(psf, 4.0, size=15)
    assert norm.shape == (15, 15)
    assert aperture_sums(norm, [7], [7], 2.0)[0] == pytest.approx(1.0, rel=1e-6)
    with pytest.raises(ValueError, match="odd"):
        normalize_psf(psf, 4.0, size=14)


def test_snr_at_follows_the_definition():
    rng = np.random.default_rng(2)
    image = rng.normal(size=(61, 61))
    fwhm, x, y = 4.0, 45.3, 38.1
    result = snr_at(image, x, y, fwhm)
    xs, ys = aperture_positions(x, y, fwhm, image.shape)
    assert (xs[0], ys[0]) == (x, y)
    sep = np.hypot(x - 30, y - 30)
    assert result.n_apertures == int(np.floor(2 * np.pi / (2 * np.arcsin(fwhm / 2 / sep))))
    # Neighbouring apertures are 1 FWHM apart (chord), all on the same circle.
    assert np.hypot(xs[1] - xs[0], ys[1] - ys[0]) == pytest.approx(fwhm)
    assert np.allclose(np.hypot(xs - 30, ys - 30), sep)
    fluxes = aperture_sums(image, xs, ys, fwhm / 2)
    bg = fluxes[1:]
    expected = (fluxes[0] - bg.mean()) / (bg.std(ddof=1) * np.sqrt(1 + 1 / bg.size))
    assert result.snr == pytest.approx(expected)
    with pytest.raises(ValueError, match="fwhm/2"):
        snr_at(image, 31.0, 31.0, fwhm)


@pytest.mark.parametrize("size", [64, 65])
def test_snr_map_equals_snr_at_everywhere(size):
    rng = np.random.default_rng(size)
    image = rng.normal(size=(size, size))
    fwhm = 4.0
    m = snr_map(image, fwhm)
    ys, xs = np.nonzero(np.isfinite(m))
    assert xs.size > 0.5 * size * size
    for i in rng.choice(xs.size, 150, replace=False):
        assert m[ys[i], xs[i]] == pytest.approx(snr_at(image, xs[i], ys[i], fwhm).snr, abs=1e-6)
    assert np.isnan(m[size // 2, size // 2])  # too close to the star


def test_snr_of_white_noise_follows_student_statistics():
    # Under the null hypothesis S/N ~ Student t with n - 2 dof: its false-alarm rate at a t
    # threshold matches the nominal one (pixels of a map are correlated, so use many images).
    rng = np.random.default_rng(5)
    fwhm = 3.0
    values = []
    for _ in range(30):
        image = rng.normal(size=(41, 41))
        values.append(snr_at(image, 20 + 12.0, 20.0, fwhm).snr)
        values.append(snr_at(image, 20.0, 20 - 9.0, fwhm).snr)
    values = np.array(values)
    assert abs(np.mean(values)) < 0.4
    n_ap = int(np.floor(2 * np.pi / (2 * np.arcsin(fwhm / 2 / 12.0))))
    assert np.std(values) == pytest.approx(stats.t.std(n_ap - 2), rel=0.3)


def test_injected_point_source_has_high_snr():
    rng = np.random.default_rng(7)
    image = rng.normal(size=(61, 61))
    psf = gaussian_psf(4.0, size=15)
    image[38:53, 35:50] += 50 * psf  # centred on (42, 45)
    assert snr_at(image, 42, 45, 4.0).snr > 10
    m = snr_map(image, 4.0)
    assert np.unravel_index(np.nanargmax(m), m.shape) == (45, 42)


def test_snr_map_in_small_uncached_chunks_is_identical(monkeypatch):
    from hcdc.science.postprocessing import snr as snr_module

    rng = np.random.default_rng(9)
    image = rng.normal(size=(45, 45))
    reference = snr_map(image, 3.0)
    monkeypatch.setattr(snr_module, "_CHUNK_QUERIES", 500)
    monkeypatch.setattr(snr_module, "_CACHE_BYTES", 0)
    snr_module._CACHE.clear()
    chunked = snr_map(image, 3.0)
    np.testing.assert_array_equal(np.isnan(chunked), np.isnan(reference))
    np.testing.assert_allclose(chunked[np.isfinite(chunked)], reference[np.isfinite(reference)], atol=1e-9)
    assert not snr_module._CACHE  # too big to keep: recomputed each call


def test_snr_map_in_bounded_chunks_reports_progress_and_matches_one_shot(monkeypatch):
    from hcdc.science.postprocessing import snr as snr_module

    rng = np.random.default_rng(11)
    image = rng.normal(size=(41, 41))
    snr_module._CACHE.clear()
    monkeypatch.setattr(snr_module, "_CHUNK_QUERIES", 10**9)  # one chunk: the whole map at once
    monkeypatch.setattr(snr_module, "_CHUNK_WEIGHTS", 10**12)
    calls: list[tuple[int, int]] = []
    one_shot = snr_map(image, 3.0, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 1)]
    monkeypatch.setattr(snr_module, "_CHUNK_WEIGHTS", 300 * 25)  # 300 apertures of 5x5 px a chunk
    snr_module._CACHE.clear()
    calls.clear()
    chunked = snr_map(image, 3.0, progress=lambda done, total: calls.append((done, total)))
    n = calls[-1][1]
    assert n > 10 and calls == [(i, n) for i in range(1, n + 1)]
    np.testing.assert_array_equal(np.isnan(chunked), np.isnan(one_shot))
    np.testing.assert_allclose(chunked[np.isfinite(chunked)], one_shot[np.isfinite(one_shot)], atol=1e-9)
    # Spot check against the definition (the map sums float32 pixels with float32 weights).
    assert chunked[20, 31] == pytest.approx(snr_at(image, 31, 20, 3.0).snr, rel=1e-6)


def test_snr_map_geometry_cache_is_bounded_in_bytes(monkeypatch):
    from hcdc.science.postprocessing import snr as snr_module

    image = np.random.default_rng(12).normal(size=(41, 41))
    snr_module._CACHE.clear()
    first = snr_map(image, 3.0)
    one_geometry = snr_module._cached_bytes()
    assert one_geometry > 0
    monkeypatch.setattr(snr_module, "_CACHE_BYTES", int(1.5 * one_geometry))
    snr_map(image, 3.2)  # a second geometry of similar size: the oldest is evicted
    assert len(snr_module._CACHE) == 1
    assert snr_module._cached_bytes() <= snr_module._CACHE_BYTES
    np.testing.assert_array_equal(snr_map(image, 3.0), first)  # recomputed, same values
