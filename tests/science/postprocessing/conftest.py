"""Shared helpers of the post-processing tests.

``count_recoveries`` injects fake companions with code written here, independent of
``hcdc.science.postprocessing.fakes`` and of the throughput code (a cubic-spline
``scipy.ndimage.shift`` of the PSF stamp in every frame, at the position the field rotation gives
that frame), reduces the cube and counts how often hcdc's own detection finds each fake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import ndimage

from hcdc.science.postprocessing import snr
from hcdc.science.postprocessing.detection import GAUSSIAN_5SIGMA_FPF, detect_candidates


def _inject(
    cube: np.ndarray, angles: np.ndarray, psf: np.ndarray, separation: float, pa: float, flux: float
) -> np.ndarray:
    """A copy of ``cube`` with ``flux x psf`` at (``separation`` px, ``pa`` deg east of north) on the
    final image. The star is on pixel (n//2, n//2); hcdc's derotation angles turn frame k clockwise by
    ``angles[k]``, so the companion sits at position angle ``pa + angles[k]`` in frame k, i.e. at
    x = c - r sin(pa + angle), y = c + r cos(pa + angle) (north up, east left). A spectral cube
    (wavelengths, frames, y, x) takes one PSF (wavelengths, size, size) and one flux per wavelength."""
    if np.ndim(cube) == 4:
        fluxes = np.broadcast_to(np.asarray(flux, dtype=np.float64).ravel(), (len(cube),))
        return np.stack(
            [_inject(cube[w], angles, psf[w], separation, pa, fluxes[w]) for w in range(len(cube))]
        )
    out = np.array(cube, dtype=np.float64)
    c = cube.shape[-1] // 2
    pad = 3  # room for the spline shift
    half = psf.shape[0] // 2 + pad
    stamp = np.zeros((2 * half + 1, 2 * half + 1))
    stamp[pad:-pad, pad:-pad] = psf
    n = cube.shape[-1]
    for k, angle in enumerate(np.asarray(angles, dtype=np.float64)):
        phi = np.radians(pa + angle)
        x, y = c - separation * np.sin(phi), c + separation * np.cos(phi)
        ix, iy = int(round(x)), int(round(y))
        moved = ndimage.shift(stamp, (y - iy, x - ix), order=3, mode="constant") * flux
        ya, yb = max(iy - half, 0), min(iy + half + 1, n)
        xa, xb = max(ix - half, 0), min(ix + half + 1, n)
        out[k, ya:yb, xa:xb] += moved[ya - iy + half : yb - iy + half, xa - ix + half : xb - ix + half]
    return out.astype(np.float32)


def _count_recoveries(
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    reduce: Callable[[np.ndarray], np.ndarray],
    *,
    fwhm: float,
    separations: np.ndarray,
    fluxes: np.ndarray,
    n_pa: int,
    fpf: float = GAUSSIAN_5SIGMA_FPF,
    pa0: float = 11.0,
    profile: Any = None,
) -> np.ndarray:
    """Recovered count per separation of ``n_pa`` fakes (one per reduction, PAs spread over the
    circle and turned by the golden angle from one separation to the next) of aperture flux
    ``fluxes``: a fake is recovered when hcdc's detection (S/N map, Student threshold of ``fpf``,
    positions refined on the image, ADI side lobes dropped) reports a candidate within 1 FWHM.
    Spectral cubes: one flux per (separation, wavelength), ``reduce`` returns the final image.
    ``profile``: the detection's threshold per separation instead of the Student one of ``fpf``
    (e.g. calibrated on a null map, ``null_threshold``)."""
    hits = np.zeros(len(separations), dtype=int)
    rotation = float(np.ptp(angles))
    c = cube.shape[-1] // 2
    for i, (sep, flux) in enumerate(zip(separations, fluxes, strict=True)):
        for j in range(n_pa):
            pa = (pa0 + 360.0 * j / n_pa + 137.5 * i) % 360.0
            image = reduce(_inject(cube, angles, psf, sep, pa, flux))
            found = detect_candidates(
                snr.snr_map(image, fwhm), fwhm, fpf=fpf, image=image, rotation=rotation, profile=profile
            )
            x, y = c - sep * np.sin(np.radians(pa)), c + sep * np.cos(np.radians(pa))
            hits[i] += any(np.hypot(d.x - x, d.y - y) <= fwhm for d in found)
    return hits


@pytest.fixture(scope="session")
def count_recoveries() -> Callable[..., np.ndarray]:
    """The independent injection-recovery counter (module docstring)."""
    return _count_recoveries
