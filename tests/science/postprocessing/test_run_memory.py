"""Bounded memory on a SPHERE-IFS-sized cube (39 wavelengths x 290 x 290 px, fewer frames).

The cube is written to a FITS file plane by plane and opened memory-mapped, as the CLI does; the
orchestrator must then hold about one wavelength plane at a time. Python-side allocations (numpy
reports its buffers to tracemalloc) are measured; the memory map itself is not an allocation.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from astropy.io import fits

from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.run import postprocess
from hcdc.science.simulation.adi import gaussian_psf

N_WL, N_FRAMES, SIZE = 39, 16, 290  # SPHERE IFS: 39 channels, 290 px frames
FWHM = 4.5
SEPARATION, PA = 60.0, 300.0


def _write_ifs_like_cube(path, angles):
    """Write (39, 16, 290, 290) float32 white noise + a companion, one wavelength plane at a time."""
    header = fits.Header()
    header["SIMPLE"] = True
    header["BITPIX"] = -32
    header["NAXIS"] = 4
    for axis, n in enumerate((SIZE, SIZE, N_FRAMES, N_WL), start=1):
        header[f"NAXIS{axis}"] = n
    rng = np.random.default_rng(11)
    psf = gaussian_psf(FWHM, size=21)
    stream = fits.StreamingHDU(path, header)
    for _ in range(N_WL):
        plane = rng.standard_normal((N_FRAMES, SIZE, SIZE)).astype(np.float32)
        plane = inject_companions(plane, angles, psf, SEPARATION, PA, 40.0)
        stream.write(np.asarray(plane, dtype=">f4"))
    stream.close()


@pytest.mark.slow
def test_ifs_sized_cube_runs_in_bounded_memory(tmp_path):
    angles = np.linspace(0.0, 60.0, N_FRAMES)
    path = tmp_path / "ifs_like.fits"
    _write_ifs_like_cube(path, angles)
    cube_bytes = N_WL * N_FRAMES * SIZE * SIZE * 4  # 210 MB
    with fits.open(path, memmap=True) as hdul:
        cube = hdul[0].data
        assert cube.shape == (N_WL, N_FRAMES, SIZE, SIZE)
        wavelengths = np.linspace(0.95, 1.35, N_WL)
        tracemalloc.start()
        try:
            result = postprocess(
                cube,
                angles,
                algorithm="pca",
                params={"ncomp": 2},
                fwhm=FWHM,
                wavelengths=wavelengths,
                compute_contrast=False,
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        del cube
    # Budget: one wavelength plane (5.4 MB) and the algorithm's copies of it, the per-wavelength
    # outputs (39 x 290 x 290 float32 = 13 MB) and the ring-by-ring S/N map (~50 MB): < 100 MB,
    # less than half of the 210 MB cube, which is never loaded whole.
    assert peak < 100e6, f"peak {peak / 1e6:.0f} MB for a {cube_bytes / 1e6:.0f} MB cube"
    assert result.cube.shape == (N_WL, SIZE, SIZE) and result.image.shape == (SIZE, SIZE)
    # And the science is intact: the companion is found where it was put.
    cx = cy = SIZE // 2
    x = cx - SEPARATION * math.sin(math.radians(PA))
    y = cy + SEPARATION * math.cos(math.radians(PA))
    assert any(math.hypot(d.x - x, d.y - y) < 0.5 for d in result.detections), result.detections


@pytest.mark.slow
def test_memory_mapped_plane_is_not_copied(tmp_path, monkeypatch):
    """An uncropped memory-mapped FITS cube (big-endian float32, as the CLI opens it) large enough
    for the tiled PCA is passed to the algorithm and the throughput fakes as it is: postprocess
    allocates a fraction of the cube, where the float32 copy it used to make is the whole cube;
    the numbers are those of the in-memory cube. (Many frames, small frames: the fixed costs of
    the S/N map and the tile buffers scale with the frame, the cube with the frames.)"""
    from hcdc.science.postprocessing import base, pca, run, throughput

    n_frames, size, fwhm = 500, 128, 4.0
    angles = np.linspace(0.0, 80.0, n_frames)
    psf = gaussian_psf(fwhm, size=21)
    path = tmp_path / "cube.fits"
    fits.writeto(path, np.random.default_rng(5).standard_normal((n_frames, size, size)).astype(np.float32))
    cube_bytes = n_frames * size * size * 4  # 33 MB
    # The tiled route starts at TILED_ELEMENTS (32 M elements, 128 MB); lower it for a small file.
    for module in (pca, throughput):
        monkeypatch.setattr(module, "TILED_ELEMENTS", 1 << 16)
    args = {"algorithm": "pca", "params": {"ncomp": 3}, "fwhm": fwhm, "psf": psf, "star_flux": 1e4}
    args["contrast_options"] = {"fc_snr": 10.0, "nbranch": 1}  # fixed fakes: a quick throughput
    # In memory first (also compiles the numba kernels, whose compilation tracemalloc would count).
    reference = postprocess(fits.getdata(path).astype(np.float32), angles, **args)
    throughput.clear_cache()

    def measure() -> tuple[object, int]:
        throughput.clear_cache()
        with fits.open(path, memmap=True) as hdul:
            mapped = hdul[0].data
            assert mapped.dtype.byteorder == ">" and base.is_memory_mapped(mapped)
            tracemalloc.start()
            try:
                result = postprocess(mapped, angles, **args)
                return result, tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
                del mapped

    result, peak = measure()
    # As before this change: the plane copied to float32 (monkeypatched test of memory mapping).
    with monkeypatch.context() as patch:
        patch.setattr(run, "is_memory_mapped", lambda array: False)
        copied, peak_copy = measure()
    # Measured: 30 MB with the map passed through (the tiled PCA's and the lazily injected fakes'
    # buffers), 63 MB with the copy: the difference is the cube.
    assert peak < cube_bytes, f"peak {peak / 1e6:.1f} MB for a {cube_bytes / 1e6:.1f} MB cube"
    assert peak_copy - peak > 0.8 * cube_bytes, (peak_copy / 1e6, peak / 1e6)
    np.testing.assert_array_equal(copied.image, result.image)
    np.testing.assert_allclose(result.image, reference.image, atol=1e-5 * np.nanmax(np.abs(reference.image)))
    np.testing.assert_allclose(result.contrast.contrast, reference.contrast.contrast, rtol=1e-3)
    assert result.detections == [] == reference.detections


@pytest.mark.slow
def test_detections_are_removed_without_copying_a_memory_mapped_plane(tmp_path, monkeypatch):
    """With a companion detected, pass 2 measures it by injection-recovery, removes it and measures
    its astrometric errors and the contrast curve on the cleaned plane. On a memory-mapped plane
    under tiled PCA the removal and every fake are added as the plane is read
    (:class:`~hcdc.science.postprocessing.fakes.InjectedCube`): the same numbers as the in-memory
    run, and a whole cube less allocated than when the cleaned plane and the fake cubes were
    copied (as before)."""
    from hcdc.science.postprocessing import detection_photometry, pca, run, throughput

    n_frames, size, fwhm, sep, pa = 700, 128, 4.0, 30.0, 120.0
    angles = np.linspace(0.0, 80.0, n_frames)
    psf = gaussian_psf(fwhm, size=21)
    rng = np.random.default_rng(8)
    data = rng.standard_normal((n_frames, size, size)).astype(np.float32)
    data = inject_companions(data, angles, psf, sep, pa, 30.0)
    path = tmp_path / "cube.fits"
    fits.writeto(path, data)
    cube_bytes = data.nbytes  # 46 MB
    for module in (pca, throughput):
        monkeypatch.setattr(module, "TILED_ELEMENTS", 1 << 16)
    args = {"algorithm": "pca", "params": {"ncomp": 3}, "fwhm": fwhm, "psf": psf, "star_flux": 1e4}
    args["contrast_options"] = {"fc_snr": 10.0, "nbranch": 1}  # fixed fakes: a quick throughput
    reference = postprocess(data, angles, **args)  # in memory (also compiles the numba kernels)
    del data

    def measure() -> tuple[object, int]:
        throughput.clear_cache()
        with fits.open(path, memmap=True) as hdul:
            mapped = hdul[0].data
            tracemalloc.start()
            try:
                return postprocess(mapped, angles, **args), tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
                del mapped

    result, peak = measure()
    with monkeypatch.context() as patch:  # before: the cleaned plane and each fake cube copied
        for module in (detection_photometry, run):
            patch.setattr(module, "lazy_injection", lambda cube, algorithm: False)
        copied, peak_copy = measure()
    assert len(result.detections) == 1, result.detections
    det = result.detections[0]
    assert abs(det.separation_px - sep) < 0.5 and np.isfinite(det.separation_err_px)
    for other in (reference, copied):  # identical numbers, whatever the route
        assert other.detections == result.detections
        np.testing.assert_array_equal(other.image, result.image)
        np.testing.assert_array_equal(other.contrast.contrast, result.contrast.contrast)
    # Measured (700 x 128^2, 46 MB): 57 MB allocated with the removal done on reading, 114 MB with
    # the copies (before). What remains grows with the frames, not the pixels: the fakes' stamps
    # (frames x PSF^2 float64 per fake, 2.5 MB here each) and the tiled PCA's buffers.
    assert peak_copy - peak > 0.8 * cube_bytes, (peak_copy / 1e6, peak / 1e6)
    assert peak < 0.6 * peak_copy, (peak_copy / 1e6, peak / 1e6)
