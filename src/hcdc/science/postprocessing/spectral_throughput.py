"""Throughput of spectral (SDI/ASDI) algorithms from fakes injected in every wavelength.

:func:`~hcdc.science.postprocessing.throughput.throughput_curve` runs ADI algorithms on one
(frames, y, x) plane. A spectral algorithm needs the whole (wavelengths, frames, y, x) cube and
returns a final image plus one image per wavelength, so its throughput is measured here with the
same fake-companion scheme on both outputs at once (a flat spectrum in cube units).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hcdc.science import geometry
from hcdc.science.postprocessing.base import AlgorithmSpec
from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.photometry import aperture_sums
from hcdc.science.postprocessing.throughput import noise_per_annulus

__all__ = ["common_psf_stack", "spectral_throughput"]


def common_psf_stack(psfs: list[np.ndarray]) -> np.ndarray:
    """Per-wavelength PSFs cropped to one common odd size (a spectral injection needs a stack)."""
    half = min(p.shape[0] for p in psfs) // 2
    return np.stack(
        [
            p[
                p.shape[0] // 2 - half : p.shape[0] // 2 + half + 1,
                p.shape[1] // 2 - half : p.shape[1] // 2 + half + 1,
            ]
            for p in psfs
        ]
    )


def spectral_throughput(
    cube: np.ndarray,
    angles: np.ndarray,
    psf_stack: np.ndarray,
    *,
    final: np.ndarray,
    per_wl: np.ndarray,
    fwhms: list[float],
    wavelengths: np.ndarray,
    spec: AlgorithmSpec,
    params: Mapping[str, Any],
    separations: np.ndarray,
    nbranch: int = 1,
    pa: float = 270.0,
    fc_snr: float,
    fc_rad_sep: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Throughput of a spectral algorithm from fakes injected at every wavelength (flat spectrum).

    The same fake-companion scheme as :func:`~hcdc.science.postprocessing.throughput.throughput_curve`:
    fakes ``fc_rad_sep`` samples apart per pass along ``nbranch`` branches from position angle
    ``pa`` (deg), each with an aperture flux of ``fc_snr`` x the aperture noise of the fake-free
    ``final`` image at its separation (px), in every wavelength. ``per_wl`` are the fake-free
    per-wavelength images and ``fwhms`` their FWHM (px). Returns the throughput of each
    per-wavelength image (wavelengths, n_sep) and of the final image (n_sep,), set to 0 where
    negative, and the fake fluxes.
    """
    fwhm_mean = float(np.mean(fwhms))
    noise, _ = noise_per_annulus(final, fwhm_mean, separations)
    fluxes = fc_snr * noise
    fwhm_arg = np.asarray(fwhms) if len(fwhms) > 1 else fwhms[0]
    per = np.zeros((per_wl.shape[0], separations.size))
    fin = np.zeros(separations.size)
    for b in range(nbranch):
        branch_pa = (pa + 360.0 * b / nbranch) % 360.0
        for start in range(fc_rad_sep):
            idx = np.arange(start, separations.size, fc_rad_sep)
            if idx.size == 0:
                continue
            cube_fc = inject_companions(cube, angles, psf_stack, separations[idx], branch_pa, fluxes[idx])
            final_fc, per_fc = spec.function(
                cube_fc, angles, fwhm=fwhm_arg, wavelengths=wavelengths, **params
            )
            del cube_fc
            xy = [geometry.polar_to_pixel(r, branch_pa, final.shape) for r in separations[idx]]
            xs, ys = np.array([p[0] for p in xy]), np.array([p[1] for p in xy])
            fin[idx] += aperture_sums(np.asarray(final_fc) - final, xs, ys, fwhm_mean / 2.0) / fluxes[idx]
            for w in range(per.shape[0]):
                per[w, idx] += (
                    aperture_sums(np.asarray(per_fc[w]) - per_wl[w], xs, ys, fwhms[w] / 2.0) / fluxes[idx]
                )
    return np.maximum(per / nbranch, 0.0), np.maximum(fin / nbranch, 0.0), fluxes
