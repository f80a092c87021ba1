"""Throughput of spectral (SDI/ASDI) algorithms from fakes injected in every wavelength.

:func:`~hcdc.science.postprocessing.throughput.throughput_curve` runs ADI algorithms on one
(frames, y, x) plane. A spectral algorithm needs the whole (wavelengths, frames, y, x) cube and
returns a final image plus one image per wavelength, so its throughput is measured here with the
same fake-companion scheme on both outputs at once: each fake is injected in every wavelength
with that wavelength's PSF (its size follows λ, so the spectral rescaling of SDI/ASDI moves it as
it moves a real companion), the cube is reduced by the same algorithm with the same parameters,
and the fake's flux is read on the final image and on each per-wavelength image.

Two uses:

* :func:`spectral_throughput`: fakes of fixed brightness (``fc_snr`` x the noise of the final
  image), flat in cube units; the throughput map and the photometry of detections.
* :func:`spectral_limit_throughput`: fakes at the detection limit they define (the fixed point of
  :func:`~hcdc.science.postprocessing.contrast.fixed_point_throughput`, as ADI's
  :func:`~hcdc.science.postprocessing.contrast.limit_throughput`) on the **final** image, the one
  hcdc's detection runs on: a companion injected at the reported contrast is found about half the
  time. Its fakes have a flat contrast spectrum (flux ``c x star_flux[w]`` in wavelength ``w``).

The passes (one branch's fakes reduced together) are independent and run on up to ``threads``
threads (:func:`hcdc.runtime.blas.map_tasks`) with the serial result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hcdc.runtime.blas import SMALL_PROBLEM, map_tasks
from hcdc.science import geometry
from hcdc.science.postprocessing.base import AlgorithmSpec
from hcdc.science.postprocessing.contrast import curve_fpf, fixed_point_throughput
from hcdc.science.postprocessing.detection import GAUSSIAN_5SIGMA_FPF, ThresholdProfile
from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.photometry import aperture_sums
from hcdc.science.postprocessing.throughput import (
    ThroughputCurve,
    fake_passes,
    fake_snr,
    noise_per_annulus,
)

__all__ = [
    "common_psf_stack",
    "spectral_limit_throughput",
    "spectral_throughput",
    "spectral_throughput_curves",
]


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


def _reduced_fakes(
    cube: np.ndarray,
    angles: np.ndarray,
    psf_stack: np.ndarray,
    fluxes: np.ndarray,
    separations: np.ndarray,
    branch_pa: float,
    *,
    spec: AlgorithmSpec,
    params: Mapping[str, Any],
    fwhms: list[float],
    wavelengths: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fakes of ``fluxes`` (per fake, or per (fake, wavelength)) at ``separations`` px along
    ``branch_pa`` deg injected in every wavelength and reduced by ``spec``: returns the fakes'
    pixel positions ``xs, ys`` on the final image, the final image and the per-wavelength images."""
    cube_fc = inject_companions(cube, angles, psf_stack, separations, branch_pa, fluxes)
    fwhm_arg = np.asarray(fwhms) if len(fwhms) > 1 else fwhms[0]
    final_fc, per_fc = spec.function(cube_fc, angles, fwhm=fwhm_arg, wavelengths=wavelengths, **params)
    del cube_fc
    xy = [geometry.polar_to_pixel(r, branch_pa, cube.shape) for r in separations]
    xs, ys = np.array([p[0] for p in xy]), np.array([p[1] for p in xy])
    return xs, ys, np.asarray(final_fc), np.asarray(per_fc)


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
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Throughput of a spectral algorithm from fakes injected at every wavelength (flat spectrum).

    The same fake-companion scheme as :func:`~hcdc.science.postprocessing.throughput.throughput_curve`:
    fakes ``fc_rad_sep`` samples apart per pass along ``nbranch`` branches from position angle
    ``pa`` (deg), each with an aperture flux of ``fc_snr`` x the aperture noise of the fake-free
    ``final`` image at its separation (px), in every wavelength. ``per_wl`` are the fake-free
    per-wavelength images and ``fwhms`` their FWHM (px). Returns the throughput of each
    per-wavelength image (wavelengths, n_sep) and of the final image (n_sep,), set to 0 where
    negative, and the fake fluxes. The passes run on up to ``threads`` threads (same result).
    """
    fwhm_mean = float(np.mean(fwhms))
    noise, _ = noise_per_annulus(final, fwhm_mean, separations)
    fluxes = fc_snr * noise
    reduction = {"spec": spec, "params": params, "fwhms": fwhms, "wavelengths": wavelengths}
    branch_pas = (pa + 360.0 * np.arange(nbranch) / nbranch) % 360.0
    passes = fake_passes(separations.size, branch_pas, fc_rad_sep)

    def one_pass(task: tuple[int, float, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        _, branch_pa, idx = task
        xs, ys, final_fc, per_fc = _reduced_fakes(
            cube, angles, psf_stack, fluxes[idx], separations[idx], branch_pa, **reduction
        )
        fin = aperture_sums(final_fc - final, xs, ys, fwhm_mean / 2.0) / fluxes[idx]
        per = [
            aperture_sums(per_fc[w] - per_wl[w], xs, ys, fwhms[w] / 2.0) / fluxes[idx]
            for w in range(per_wl.shape[0])
        ]
        return fin, np.array(per)

    per = np.zeros((per_wl.shape[0], separations.size))
    fin = np.zeros(separations.size)
    small = np.asarray(cube).size < SMALL_PROBLEM
    # Summed in the order of the serial loop (branch by branch), whatever thread ran each pass.
    for (_, _, idx), (f, p) in zip(passes, map_tasks(one_pass, passes, threads if small else 1), strict=True):
        fin[idx] += f
        per[:, idx] += p
    return np.maximum(per / nbranch, 0.0), np.maximum(fin / nbranch, 0.0), fluxes


def spectral_throughput_curves(
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
    fake_flux: np.ndarray,
    spectrum: Sequence[float] | np.ndarray | None = None,
    nbranch: int = 1,
    pa: float = 270.0,
    fc_rad_sep: int = 3,
    detection: bool = False,
    fpf: float = GAUSSIAN_5SIGMA_FPF,
    threads: int | None = None,
) -> list[ThroughputCurve]:
    """Throughput curves of fakes of final-image flux ``fake_flux`` (one per separation, px).

    Each fake has the flux ``fake_flux x spectrum[w]`` in wavelength ``w`` (``spectrum``: relative
    fluxes of mean 1, default flat), so that it has the flux ``fake_flux`` on average over the
    wavelengths, i.e. on a final image that averages them. Returns the curve of the final image
    (FWHM the mean of ``fwhms``; with ``detection``, the S/N hcdc's detection gives each fake per
    injected flux, :func:`~hcdc.science.postprocessing.throughput.fake_snr`) followed by one
    photometric curve per wavelength (throughput of that image: recovered / injected in ``w``).
    Branches, passes and threads as :func:`spectral_throughput`.
    """
    n_wl = per_wl.shape[0]
    weights = np.ones(n_wl) if spectrum is None else np.asarray(spectrum, dtype=np.float64).ravel()
    if weights.size != n_wl or not np.all(weights > 0):
        raise ValueError(f"spectrum needs {n_wl} positive relative fluxes; got {spectrum}")
    weights = weights / weights.mean()
    fluxes = np.broadcast_to(np.asarray(fake_flux, dtype=np.float64).ravel(), separations.shape)
    fwhm_mean = float(np.mean(fwhms))
    reduction = {"spec": spec, "params": params, "fwhms": fwhms, "wavelengths": wavelengths}
    branch_pas = (pa + 360.0 * np.arange(nbranch) / nbranch) % 360.0
    passes = fake_passes(separations.size, branch_pas, fc_rad_sep)

    def one_pass(task: tuple[int, float, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        _, branch_pa, idx = task
        injected = fluxes[idx][:, None] * weights[None, :]  # (fakes, wavelengths)
        xs, ys, final_fc, per_fc = _reduced_fakes(
            cube, angles, psf_stack, injected, separations[idx], branch_pa, **reduction
        )
        fin = aperture_sums(final_fc - final, xs, ys, fwhm_mean / 2.0) / fluxes[idx]
        per = np.array(
            [
                aperture_sums(per_fc[w] - per_wl[w], xs, ys, fwhms[w] / 2.0) / injected[:, w]
                for w in range(n_wl)
            ]
        )
        snrs = np.array(
            [
                fake_snr(final_fc, final, x, y, fwhm_mean, separations[i], fpf) / fluxes[i]
                for x, y, i in zip(xs, ys, idx, strict=True)
            ]
            if detection
            else []
        )
        return np.maximum(fin, 0.0), np.maximum(per, 0.0), snrs

    final_tp = np.zeros((nbranch, separations.size))
    per_tp = np.zeros((n_wl, nbranch, separations.size))
    seen = np.zeros((nbranch, separations.size)) if detection else None
    small = np.asarray(cube).size < SMALL_PROBLEM
    for (b, _, idx), (f, p, snrs) in zip(
        passes, map_tasks(one_pass, passes, threads if small else 1), strict=True
    ):
        final_tp[b, idx] = f
        per_tp[:, b, idx] = p
        if seen is not None:
            seen[b, idx] = snrs
    curves = [ThroughputCurve(separations, final_tp, branch_pas, fluxes.copy(), seen)]
    curves += [ThroughputCurve(separations, per_tp[w], branch_pas, fluxes * weights[w]) for w in range(n_wl)]
    return curves


def spectral_limit_throughput(
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
    spectrum: Sequence[float] | np.ndarray | None = None,
    sigma: float = 5.0,
    fpf: float | None = None,
    student: bool = True,
    criterion: str = "detection",
    step: float = 1.0,
    smooth: bool = True,
    nbranch: int = 12,
    pa: float = 270.0,
    fc_rad_sep: int = 3,
    max_iter: int = 5,
    rtol: float = 0.05,
    threads: int | None = None,
    profile: ThresholdProfile | None = None,
) -> list[ThroughputCurve]:
    """Throughput of a spectral algorithm's fakes at the detection limit of its final image.

    The fixed point of :func:`~hcdc.science.postprocessing.contrast.fixed_point_throughput`
    (criterion, ``sigma``/``fpf``, ``student``, branches, iterations: as ADI's
    :func:`~hcdc.science.postprocessing.contrast.limit_throughput`) on the fake-free ``final``
    image (FWHM the mean of ``fwhms``), with fakes of relative spectrum ``spectrum`` (default
    flat; give the star's fluxes per wavelength for a flat *contrast*) injected in every
    wavelength and reduced by ``spec`` with ``params`` (:func:`spectral_throughput_curves`).
    Returns the final image's curve (``fake_fluxes``: the limit flux on the final image,
    ``snr_per_flux`` with the detection criterion) and one photometric curve per wavelength of
    the same fakes. ``profile``: the detection's S/N threshold per separation instead of the
    Student one (e.g. calibrated on a null map, :mod:`~hcdc.science.postprocessing.null_threshold`).
    """
    reduction = {
        "final": final,
        "per_wl": per_wl,
        "fwhms": fwhms,
        "wavelengths": wavelengths,
        "spec": spec,
        "params": params,
        "spectrum": spectrum,
        "pa": pa,
        "fpf": curve_fpf(sigma, fpf),
        "threads": threads,
    }

    def measure(
        separations: np.ndarray, fluxes: np.ndarray, nbranch: int, fc_rad_sep: int, detection: bool
    ) -> list[ThroughputCurve]:
        return spectral_throughput_curves(
            cube,
            angles,
            psf_stack,
            **reduction,
            separations=separations,
            fake_flux=fluxes,
            nbranch=nbranch,
            fc_rad_sep=fc_rad_sep,
            detection=detection,
        )

    return fixed_point_throughput(
        measure,
        final,
        fwhm=float(np.mean(fwhms)),
        separations=np.asarray(separations, dtype=np.float64),
        sigma=sigma,
        fpf=fpf,
        student=student,
        criterion=criterion,
        step=step,
        smooth=smooth,
        nbranch=nbranch,
        pa=pa,
        fc_rad_sep=fc_rad_sep,
        max_iter=max_iter,
        rtol=rtol,
        profile=profile,
    )
