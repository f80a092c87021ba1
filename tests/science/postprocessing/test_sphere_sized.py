"""SPHERE-sized Level 2: the tiled full-frame PCA route and the compiled exact S/N map give the
numbers of the in-memory / array routes (simulations with known truth and the real NACO cube),
and the tiled route reads a memory-mapped cube without copying it."""

from __future__ import annotations

import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hcdc.science import geometry
from hcdc.science.postprocessing import base, fakes, pca, snr, throughput, tiles


def _speckle_cube(nfr: int, n: int, seed: int = 0) -> np.ndarray:
    """Speckle-like cube: fixed pattern x envelope, slow drift, white noise (float32)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:n, 0:n] - n // 2
    env = (1e3 / (1 + (x * x + y * y) / 100.0)).astype(np.float32)
    pattern = rng.standard_normal((n, n)).astype(np.float32)
    drift = rng.standard_normal((n, n)).astype(np.float32)
    return np.stack(
        [
            env * (pattern + 0.3 * (k / nfr) * drift) + rng.standard_normal((n, n), dtype=np.float32)
            for k in range(nfr)
        ]
    )


@pytest.mark.parametrize("shape", [(101, 101), (64, 80), (100, 100)])
@pytest.mark.parametrize("collapse", ["median", "mean"])
def test_tiled_derotation_matches_derotate_and_collapse(shape, collapse):
    rng = np.random.default_rng(1)
    nfr = 23
    cube = rng.standard_normal((nfr, *shape)).astype(np.float32)
    angles = rng.uniform(-70, 70, nfr)
    angles[0] = 0.0
    angles[1] = angles[2]  # repeated angles, as in real sequences
    reference = base.derotate_and_collapse(cube, angles, collapse, "bilinear")
    # Small buffers: many tiles and frame groups, edges and corners included.
    out = tiles.derotate_collapse_tiled(
        lambda f, y0, y1, x0, x1: cube[f, y0:y1, x0:x1],
        nfr,
        shape,
        angles,
        collapse,
        buffer_bytes=4 * nfr * 30 * 30,
        block_bytes=4 * 2 * 30 * 30 * 5,
    )
    # The interpolation coordinates are computed in another order (1-ulp differences in a few
    # interpolated values); the median / mean of the same values otherwise.
    np.testing.assert_array_equal(np.isnan(out), np.isnan(reference))
    np.testing.assert_allclose(out, reference, rtol=0, atol=1e-6)
    if collapse == "median":
        assert np.mean(out == reference) > 0.99


def test_tiled_derotation_output_mask_and_bad_input():
    rng = np.random.default_rng(2)
    cube = rng.standard_normal((12, 90, 90)).astype(np.float32)
    angles = np.linspace(0, 50, 12)
    mask = np.zeros((90, 90), bool)
    mask[10:20, 60:75] = True
    block = lambda f, y0, y1, x0, x1: cube[f, y0:y1, x0:x1]  # noqa: E731
    full = tiles.derotate_collapse_tiled(block, 12, (90, 90), angles, buffer_bytes=4 * 12 * 32 * 32)
    part = tiles.derotate_collapse_tiled(block, 12, (90, 90), angles, output_mask=mask)
    np.testing.assert_array_equal(part[mask], full[mask])
    assert not part[~mask].any()
    with pytest.raises(ValueError, match="collapse"):
        tiles.derotate_collapse_tiled(block, 12, (90, 90), angles, "max")
    with pytest.raises(ValueError, match="12 frames but 3"):
        tiles.derotate_collapse_tiled(block, 12, (90, 90), angles[:3])


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"mask_center_px": 6.0}, {"scaling": None}, {"collapse": "mean"}],
)
def test_tiled_pca_matches_in_memory_pca(kwargs):
    cube = _speckle_cube(40, 101)
    angles = np.linspace(-40, 40, 40)
    reference = pca.pca(cube, angles, fwhm=4.0, ncomp=[3, 8], **kwargs)  # small: in-memory route
    ks = [3, 8]
    images = pca._pca_tiled(
        cube,
        angles,
        ks,
        kwargs.get("collapse", "median"),
        kwargs.get("scaling", "temp-mean"),
        kwargs.get("mask_center_px"),
        None,
    )
    tiled = np.stack([images[k] for k in ks])
    # float32 rounding of the residuals: relative to the data (up to 1e3 here), not to the residuals
    tolerance = 2e-7 * float(np.abs(cube).max())
    assert np.abs(tiled - reference).max() < tolerance
    assert np.abs(reference).max() > 1000 * tolerance  # not a comparison of two empty images


def test_tiled_pca_recovers_injected_companion(monkeypatch):
    """Known truth: a companion injected in the pupil frame comes out at its sky position."""
    nfr, n = 40, 101
    cube = _speckle_cube(nfr, n, seed=5) * 0.01
    angles = np.linspace(0, 60, nfr)
    cy, cx = geometry.frame_center(cube.shape)
    sep, flux = 20.0, 30.0
    yy, xx = np.mgrid[0:n, 0:n]
    for k in range(nfr):  # pupil frame = sky turned counter-clockwise by angles[k]; source at PA 0
        a = np.radians(angles[k])
        x0, y0 = cx - sep * np.sin(a), cy + sep * np.cos(a)
        cube[k] += flux * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.7**2))
    monkeypatch.setattr(pca, "TILED_ELEMENTS", 0)  # this small cube takes the tiled route
    image = pca.pca(cube, angles, fwhm=4.0, ncomp=3)
    peak = np.unravel_index(np.argmax(image), image.shape)
    assert abs(peak[0] - (cy + sep)) <= 1 and abs(peak[1] - cx) <= 1
    assert snr.snr_at(image, cx, cy + sep, 4.0).snr > 5


def test_pca_reads_a_memory_mapped_fits_cube_without_copying_it(tmp_path):
    nfr, n = 120, 256
    cube = _speckle_cube(nfr, n)
    path = tmp_path / "cube.fits"
    fits.writeto(path, cube)
    angles = np.linspace(-40, 40, nfr)
    reference = pca._pca_tiled(cube, angles, [5], "median", "temp-mean", None, None)[5]
    with fits.open(path, memmap=True) as hdul:
        mapped = hdul[0].data
        assert mapped.dtype.byteorder == ">"  # FITS big-endian: a float32 copy would be made
        tracemalloc.start()
        try:
            image = pca.pca(mapped, angles, fwhm=4.0, ncomp=5)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    np.testing.assert_array_equal(image, reference)
    # Allocated memory: a few buffers of 1/32 of the cube per worker plus frame-sized arrays.
    assert peak < 0.4 * cube.nbytes, f"peak {peak / cube.nbytes:.2f} x the cube"


def test_pca_rejects_non_numeric_cube():
    with pytest.raises(ValueError, match="real numbers"):
        pca.pca(np.zeros((4, 8, 8), dtype=complex), np.zeros(4), fwhm=2.0)


@pytest.mark.parametrize(("shape", "fwhm"), [((101, 101), 4.6), ((64, 80), 3.0), ((121, 120), 5.3)])
def test_compiled_snr_map_equals_array_route(shape, fwhm):
    rng = np.random.default_rng(3)
    image = rng.standard_normal(shape).astype(np.float32)
    image[shape[0] // 2 + 15, shape[1] // 2 - 10] += 8.0
    image[3, 4] = np.nan  # counts as 0 in both
    array_route = snr.snr_map(image, fwhm, method="numpy")
    compiled = snr.snr_map(image, fwhm, method="compiled")
    np.testing.assert_array_equal(np.isnan(compiled), np.isnan(array_route))
    np.testing.assert_allclose(compiled, array_route, rtol=1e-10, atol=1e-12)
    # 'auto' keeps the array route (and its cache) for frames this small: the same bits.
    np.testing.assert_array_equal(snr.snr_map(image, fwhm), array_route)


def test_compiled_snr_map_is_the_same_on_any_number_of_threads(monkeypatch):
    """The pixels are dealt out to task_threads() threads; each is computed alone: same bits."""
    image = np.random.default_rng(5).standard_normal((97, 97)).astype(np.float32)
    maps = []
    for threads in ("1", "2", "5"):
        monkeypatch.setenv("HCDC_TASK_THREADS", threads)
        maps.append(snr.snr_map(image, 4.0, method="compiled"))
    for other in maps[1:]:
        np.testing.assert_array_equal(other, maps[0])


def test_compiled_snr_map_has_the_bits_of_the_scalar_sum_kernel():
    """The vectorised weighted sums (``_block_sums4``, issue 8 item 6) give the maps of the
    kernel they replaced bit for bit: maps computed by commit f8655c6's compiled route (scalar
    sums; benchmarks/snr_map_kernels.py --against f8655c6 loads it) on two frames, stored with
    the frames, one with a NaN pixel and an odd FWHM."""
    ref = np.load(Path(__file__).resolve().parents[2] / "data" / "snr_map_reference" / "kernel_f8655c6.npz")
    for frame, fwhm in (("a", 4.0), ("b", 5.3)):
        new = snr.snr_map(ref[f"frame_{frame}"], fwhm, method="compiled")
        assert np.isfinite(new).sum() > 6000
        np.testing.assert_array_equal(new, ref[f"snr_{frame}"])


def test_compiled_snr_map_region_progress_and_snr_at():
    rng = np.random.default_rng(4)
    image = rng.standard_normal((90, 90))
    calls = []
    m = snr.snr_map(
        image, 4.0, r_min=10, r_max=30, method="compiled", progress=lambda d, t: calls.append((d, t))
    )
    r = geometry.distance_map(image.shape)
    assert np.isnan(m[(r < 10) | (r >= 30)]).all() and np.isfinite(m[(r >= 10) & (r < 30)]).all()
    assert calls and calls[-1][0] == calls[-1][1]
    for y, x in [(45, 70), (20, 50), (60, 30)]:
        # snr_at's weights are float64, the map's float32 (as the array route): ~1e-8 apart
        assert m[y, x] == pytest.approx(snr.snr_at(image, x, y, 4.0).snr, abs=1e-6)
    with pytest.raises(ValueError, match="unknown S/N map method"):
        snr.snr_map(image, 4.0, method="fast")


@pytest.mark.shared_data
def test_real_naco_cube_tiled_pca_and_compiled_snr_map(shared_data, monkeypatch):
    folder = shared_data / "naco_betapic"
    cube = fits.getdata(folder / "naco_betapic_cube.fits").astype(np.float32)
    pa = fits.getdata(folder / "naco_betapic_pa.fits").astype(np.float64).ravel()
    angles = -pa  # derotation angles (see test_naco_betapic)
    in_memory = pca.pca(cube, angles, fwhm=4.6, ncomp=10)
    monkeypatch.setattr(pca, "TILED_ELEMENTS", 0)
    tiled = pca.pca(cube, angles, fwhm=4.6, ncomp=10)
    assert np.abs(tiled - in_memory).max() < 2e-7 * float(np.abs(cube).max())
    array_route = snr.snr_map(in_memory, 4.6, method="numpy")
    compiled = snr.snr_map(in_memory, 4.6, method="compiled")
    np.testing.assert_allclose(compiled, array_route, rtol=1e-10, atol=1e-12)
    # beta Pic b stands out in both (S/N > 5 near (62, 62), as in test_naco_betapic).
    assert np.nanmax(compiled[58:67, 58:67]) > 5


def _gaussian_psf(size: int = 15, sigma: float = 1.7) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] - size // 2
    return np.exp(-(x * x + y * y) / (2 * sigma**2))


def test_injected_cube_reads_equal_inject_companions():
    rng = np.random.default_rng(6)
    cube = rng.standard_normal((9, 48, 50)).astype(np.float32)
    before = cube.copy()
    angles = np.linspace(-30, 30, 9)
    seps, pas, fluxes = [5.0, 12.0, 21.0], 40.0, [3.0, 2.0, 50.0]  # the last one partly off the frame
    full = fakes.inject_companions(cube, angles, _gaussian_psf(), seps, pas, fluxes)
    lazy = fakes.InjectedCube(cube, angles, _gaussian_psf(), seps, pas, fluxes)
    np.testing.assert_array_equal(np.asarray(lazy), full)
    frames = np.array([7, 2, 3])
    np.testing.assert_array_equal(lazy.read(frames, 10, 31, 3, 44), full[frames, 10:31, 3:44])
    assert lazy.shape == cube.shape and lazy.dtype == np.float32
    np.testing.assert_array_equal(cube, before)  # the cube itself is untouched
    with pytest.raises(ValueError, match="one angle per frame"):
        fakes.InjectedCube(cube, angles[:3], _gaussian_psf(), 5.0, 0.0, 1.0)


def test_throughput_of_memory_mapped_cube_without_copy(tmp_path):
    """Throughput (fakes through the tiled PCA) of a memory-mapped cube equals that of the cube
    in memory, and the fakes are never injected into a full copy."""
    nfr, n = 40, 101
    cube = _speckle_cube(nfr, n, seed=7) * 0.01
    angles = np.linspace(0, 70, nfr)
    psf = _gaussian_psf()
    seps = [10.0, 18.0, 26.0, 34.0]
    path = tmp_path / "cube.npy"
    np.save(path, cube)
    mapped = np.load(path, mmap_mode="r")  # native float32, read-only map
    params = {"ncomp": 5}
    reference = throughput.throughput_curve(
        cube, angles, psf, fwhm=4.0, params=params, separations=seps, cache=False
    )
    calls = []
    original = fakes.inject_companions
    try:
        throughput.inject_companions = lambda *a, **k: calls.append(1) or original(*a, **k)
        lazy = throughput.throughput_curve(
            mapped, angles, psf, fwhm=4.0, params=params, separations=seps, cache=False
        )
    finally:
        throughput.inject_companions = original
    assert calls == []  # no materialised copy with fakes
    np.testing.assert_allclose(lazy.throughput, reference.throughput, rtol=1e-3, atol=1e-4)
    assert 0.2 < float(reference.throughput.max()) <= 1.0  # fakes are found, not all absorbed


def test_is_memory_mapped(tmp_path):
    array = np.zeros((3, 4, 5), dtype=np.float32)
    np.save(tmp_path / "a.npy", array)
    fits.writeto(tmp_path / "a.fits", array)
    assert not base.is_memory_mapped(array) and not base.is_memory_mapped(array[1:])
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert base.is_memory_mapped(mapped) and base.is_memory_mapped(np.asarray(mapped)[1:, :2])
    with fits.open(tmp_path / "a.fits", memmap=True) as hdul:
        assert base.is_memory_mapped(hdul[0].data)
    with fits.open(tmp_path / "a.fits", memmap=False) as hdul:
        assert not base.is_memory_mapped(hdul[0].data)


def test_fake_map_equals_sum_of_single_fake_maps():
    """The throughput's injected-flux map is built fake by fake (no (fakes, y, x) stack): the same
    numbers as summing one map per fake, overlapping and off-edge fakes included."""
    rng = np.random.default_rng(8)
    psf = _gaussian_psf(19, 2.0)
    xs = np.cumsum(rng.uniform(0, 3, 30)) - 5  # overlapping, the first ones partly off the frame
    ys = rng.uniform(-3, 103, 30)
    fluxes = rng.uniform(0.1, 100, 30)
    single = [
        throughput._fake_map((101, 101), psf, xs[i : i + 1], ys[i : i + 1], fluxes[i : i + 1])
        for i in range(30)
    ]
    np.testing.assert_array_equal(
        throughput._fake_map((101, 101), psf, xs, ys, fluxes), np.sum(single, axis=0)
    )


# An S/N map written out plainly for the tests below, independent of hcdc's code: the Mawet
# 2014 test at each pixel with apertures placed by hand and exact disk-pixel overlaps from the
# area of the disk below and left of a point (one closed form, math.asin from the C library).


def _corner_area(u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Area of the disk (radius ``radius``, centre 0) inside ``0 <= x <= |u|, 0 <= y <= |v|``,
    signed as ``sign(u) sign(v)``."""
    a, b = np.minimum(np.abs(u), radius), np.minimum(np.abs(v), radius)
    x_cut = np.sqrt(radius * radius - b * b)  # where the circle's height equals b

    def under_circle(x):  # integral of sqrt(R^2 - t^2) from 0 to x
        return 0.5 * (
            x * np.sqrt(np.maximum(radius * radius - x * x, 0.0)) + radius * radius * np.arcsin(x / radius)
        )

    area = np.where(a <= x_cut, a * b, b * x_cut + under_circle(a) - under_circle(x_cut))
    return np.sign(u) * np.sign(v) * area


def _plain_aperture_flux(image: np.ndarray, x: float, y: float, radius: float) -> float:
    rows = np.arange(int(math.floor(y - radius - 1)), int(math.ceil(y + radius + 1)) + 1)[:, None]
    cols = np.arange(int(math.floor(x - radius - 1)), int(math.ceil(x + radius + 1)) + 1)[None, :]
    x0, x1, y0, y1 = cols - 0.5 - x, cols + 0.5 - x, rows - 0.5 - y, rows + 0.5 - y
    overlap = (
        _corner_area(x1, y1, radius) - _corner_area(x0, y1, radius)
        - _corner_area(x1, y0, radius) + _corner_area(x0, y0, radius)
    )  # fmt: skip
    inside = (rows >= 0) & (rows < image.shape[0]) & (cols >= 0) & (cols < image.shape[1])
    values = image[np.clip(rows, 0, image.shape[0] - 1), np.clip(cols, 0, image.shape[1] - 1)]
    return float(np.sum(np.where(inside & (overlap > 0), overlap * values, 0.0)))


def _plain_snr(image: np.ndarray, x: int, y: int, fwhm: float) -> float:
    cy, cx = image.shape[0] // 2, image.shape[1] // 2  # the star's pixel (hcdc's convention)
    r = math.hypot(x - cx, y - cy)
    alpha = 2 * math.asin(fwhm / 2 / r)
    n = int(2 * math.pi // alpha)
    theta = math.atan2(y - cy, x - cx)
    fluxes = [
        _plain_aperture_flux(
            image, cx + r * math.cos(theta - k * alpha), cy + r * math.sin(theta - k * alpha), fwhm / 2
        )
        for k in range(n)
    ]
    background = np.array(fluxes[1:])
    return (fluxes[0] - background.mean()) / (background.std(ddof=1) * math.sqrt(1 + 1 / background.size))


@pytest.mark.parametrize(("shape", "fwhm"), [((41, 41), 4.0), ((36, 40), 3.3)])
def test_compiled_snr_map_equals_a_plain_implementation(shape, fwhm):
    """80 pixels of the compiled map (the first and last separations among them) against the
    plain loop above (the map's image and weights are float32, the loop's float64: ~1e-7
    relative apart); the region is the one of VIP's snrmap."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    source = np.exp(
        -((yy - shape[0] // 2 + 9) ** 2 + (xx - shape[1] // 2 - 6) ** 2) / (2 * (fwhm / 2.355) ** 2)
    )
    image = (np.random.default_rng(11).standard_normal(shape) + 4.0 * source).astype(np.float32)
    fast = snr.snr_map(image, fwhm, method="compiled")
    r = geometry.distance_map(shape)
    r_min, r_max = snr.snr_map_region(shape, fwhm)
    np.testing.assert_array_equal(np.isfinite(fast), (r >= r_min) & (r < r_max))
    ys, xs = np.nonzero(np.isfinite(fast))
    order = np.argsort(r[ys, xs])
    pick = np.concatenate([order[:4], order[-4:], np.random.default_rng(3).choice(order, 72, replace=False)])
    for y, x in zip(ys[pick], xs[pick], strict=True):
        assert fast[y, x] == pytest.approx(_plain_snr(image, int(x), int(y), fwhm), rel=1e-5, abs=1e-5), (
            y,
            x,
        )
    assert fast[shape[0] // 2 - 9, shape[1] // 2 + 6] > 5  # the source


@pytest.mark.shared_data
def test_compiled_snr_map_of_real_naco_image_equals_a_plain_implementation(shared_data):
    """The real NACO beta Pic PCA image: 40 pixels (around b and elsewhere)."""
    folder = shared_data / "naco_betapic"
    cube = fits.getdata(folder / "naco_betapic_cube.fits").astype(np.float32)
    pa = fits.getdata(folder / "naco_betapic_pa.fits").astype(np.float64).ravel()
    image = pca.pca(cube, -pa, fwhm=4.6, ncomp=10).astype(np.float32)
    fast = snr.snr_map(image, 4.6, method="compiled")
    rng = np.random.default_rng(2)
    ys, xs = np.nonzero(np.isfinite(fast))
    pick = rng.choice(ys.size, 30, replace=False)
    points = list(zip(ys[pick], xs[pick], strict=True)) + [
        (y, x) for y in range(60, 65) for x in range(60, 62)
    ]
    for y, x in points:
        assert fast[y, x] == pytest.approx(_plain_snr(image, int(x), int(y), 4.6), rel=1e-5, abs=1e-5), (y, x)
    assert np.nanmax(fast[58:67, 58:67]) > 5
