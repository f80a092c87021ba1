"""The spectrum of a detected companion in a spectral (IFS) cube: its contrast in every
wavelength with errors, by fake companions reduced like it.

Inputs: the Level 1 cube (wavelengths, frames, y, x) with its derotation angles, wavelengths (µm)
and per-wavelength off-axis PSF, the spectral algorithm and parameters of the Level 2 reduction,
and the companion's position on the Level 2 (north-up) image.

Method (injection–recovery per wavelength)
------------------------------------------
A spectral algorithm (SDI/ASDI) distorts a companion differently in every channel (rescaling,
self-subtraction by the PCA library), so the companion's aperture signal in each per-wavelength
image must be calibrated by the same reduction. ``n_fakes`` fakes of a flat contrast ``c0`` (the
first-guess contrast of the companion, so that the reduction's non-linearity acts on them as on
it) are injected at the companion's separation, at position angles at least ``3 FWHM`` from it
and from each other, in every wavelength with that wavelength's PSF
(:func:`~hcdc.science.postprocessing.fakes.inject_companions`); the cube is reduced with the same
algorithm and parameters, and each fake's signal is read in the same aperture (diameter 1 FWHM
of the channel, :func:`~hcdc.science.postprocessing.photometry.aperture_sums`) on each
per-wavelength image of the difference (reduction with fakes − reduction without), which isolates
each fake's own signal ``r[k, w]`` from the speckles. With ``a[w]`` the companion's signal on the
reduction without fakes and ``n[k, w]`` that reduction's signal in the fakes' apertures (empty sky
at the companion's separation, ``N`` of them):

* throughput ``t[w] = mean_k r[k, w] / (c0 · S[w])`` (``S`` the star's aperture flux, from the PSF);
* contrast ``c[w] = (a[w] − mean_k n[k, w]) / (t[w] · S[w])`` (companion / star flux in the same
  aperture, above the mean residual level at that separation);
* error ``σ[w]² = (std_k n[k, w] · sqrt(1 + 1/N) / (t[w] S[w]))² + (c[w] · std_k r[k, w] /
  mean_k r[k, w])²``: the noise of the residual speckles at that separation and channel, and the
  throughput's change with position angle, both measured on this reduction rather than assumed.

The fakes have a flat contrast spectrum. Using the measured spectrum for a second round of fakes
was tried and rejected: on the 'small' IFS night it made the fainter (flat, S/N 16) companion's
spectrum worse (noisy channels feed noisy fakes).

Fakes are placed in passes of fakes at least 3 FWHM apart (one reduction per pass). This is
not a negative-fake-companion fit; for ASDI single, where the companion sits in the PCA basis and
fakes do not calibrate it channel by channel (ratio to the truth rms 0.2–0.5 on the simulated IFS
nights), :mod:`hcdc.science.postprocessing.spectrum_negfc` fits one (``l3-companion-spectra``
1.2; docs/ifs.md §4).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hcdc.science import geometry
from hcdc.science.postprocessing.base import get_algorithm
from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.photometry import aperture_sums

__all__ = ["CompanionSpectrum", "companion_spectrum", "fake_position_angles"]


@dataclass
class CompanionSpectrum:
    """A companion's spectrum: per wavelength (µm) the contrast (companion / star flux in a
    1-FWHM aperture) and its 1-sigma error; where it was measured (px from the star, deg east of
    north), the first-guess contrast ``c0`` of the fakes, their number and position angles."""

    wavelengths_um: np.ndarray
    contrast: np.ndarray
    contrast_err: np.ndarray
    separation_px: float
    pa_deg: float
    c0: float
    fake_pas_deg: np.ndarray
    signal: np.ndarray  # companion aperture signal per wavelength (cube units)
    throughput: np.ndarray  # mean recovered / injected fake signal per wavelength

    @property
    def snr(self) -> np.ndarray:
        """Contrast / error per wavelength."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.contrast / self.contrast_err


def fake_position_angles(
    separation_px: float, pa_deg: float, fwhm_px: float, n_fakes: int, spacing_fwhm: float = 3.0
) -> list[np.ndarray]:
    """Position angles (deg) of ``n_fakes`` fakes at ``separation_px`` around a companion at
    ``pa_deg``, in passes: every fake at least ``spacing_fwhm`` FWHM from the companion and from
    the others of its pass. Raises ``ValueError`` when the ring cannot hold one fake."""
    if separation_px <= 0 or fwhm_px <= 0 or n_fakes < 2:
        raise ValueError(
            f"need a positive separation and FWHM and >= 2 fakes; got {separation_px} px, "
            f"{fwhm_px} px, {n_fakes}"
        )
    half_chord = spacing_fwhm * fwhm_px / (2.0 * separation_px)
    slots = int(360.0 // math.degrees(2.0 * math.asin(half_chord))) - 1 if half_chord <= 1.0 else 0
    if slots < 1:  # positions per pass, the companion's slot left free
        raise ValueError(
            f"separation {separation_px:.1f} px is too small for fakes {spacing_fwhm} FWHM "
            f"({fwhm_px:.1f} px) from the companion"
        )
    spacing = 360.0 / (slots + 1)
    passes, done, offset = [], 0, 0.0
    while done < n_fakes:
        count = min(slots, n_fakes - done)
        pas = pa_deg + offset + spacing * (1 + np.arange(count) * slots / count)
        passes.append(np.mod(pas, 360.0))
        done += count
        offset += spacing / (1 + len(passes))  # next pass between the previous slots
    return passes


def _reduce(
    cube: np.ndarray,
    angles: np.ndarray,
    wavelengths: np.ndarray,
    fwhm: np.ndarray,
    algorithm: str,
    params: Mapping[str, Any],
) -> np.ndarray:
    spec = get_algorithm(algorithm)
    if not spec.spectral:
        raise ValueError(f"algorithm {algorithm!r} is not spectral: a companion spectrum needs SDI/ASDI")
    _, per_wl = spec.function(cube, angles, fwhm=fwhm, wavelengths=wavelengths, **dict(params))
    return np.asarray(per_wl, dtype=np.float64)


def _signals(images: np.ndarray, x: np.ndarray, y: np.ndarray, fwhm: np.ndarray) -> np.ndarray:
    """Aperture sums (1-FWHM diameter) at ``(x, y)`` in every per-wavelength image: (points, wl)."""
    return np.stack([aperture_sums(images[w], x, y, fwhm[w] / 2.0) for w in range(images.shape[0])], axis=1)


def _calibrate(
    cube: np.ndarray,
    angles: np.ndarray,
    wl: np.ndarray,
    psfs: np.ndarray,
    star: np.ndarray,
    fwhm: np.ndarray,
    algorithm: str,
    params: Mapping[str, Any],
    images: np.ndarray,
    signal: np.ndarray,
    sep: float,
    passes: list[np.ndarray],
    fake_contrast: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One calibration by fakes of contrast ``fake_contrast`` per wavelength: (contrast, error,
    throughput) per wavelength (module doc)."""
    recovered, empty = [], []
    for pas in passes:
        flux = np.broadcast_to(fake_contrast * star, (pas.size, wl.size))
        injected = inject_companions(cube, angles, psfs, np.full(pas.size, sep), pas, flux)
        reduced = _reduce(injected, angles, wl, fwhm, algorithm, params)
        points = np.array([geometry.polar_to_pixel(sep, p, cube.shape) for p in pas], dtype=np.float64)
        recovered.append(_signals(reduced - images, points[:, 0], points[:, 1], fwhm))
        empty.append(_signals(np.asarray(images, dtype=np.float64), points[:, 0], points[:, 1], fwhm))
    r, noise = np.concatenate(recovered), np.concatenate(empty)  # (fakes, wl)
    with np.errstate(divide="ignore", invalid="ignore"):
        throughput = r.mean(axis=0) / (fake_contrast * star)
        unit = np.where(throughput > 0, throughput * star, np.nan)  # companion signal per unit contrast
        # the companion's signal above the mean residual of the empty apertures at its separation
        contrast = (signal - noise.mean(axis=0)) / unit
        spread = r.std(axis=0, ddof=1) / r.mean(axis=0)
        background = noise.std(axis=0, ddof=1) * math.sqrt(1.0 + 1.0 / noise.shape[0])
        err = np.hypot(background / unit, contrast * spread)
    return contrast, err, throughput


def companion_spectrum(
    cube: np.ndarray,
    angles: np.ndarray,
    wavelengths_um: np.ndarray,
    psfs: np.ndarray,
    star_fluxes: np.ndarray,
    fwhm: np.ndarray,
    *,
    algorithm: str,
    params: Mapping[str, Any] | None = None,
    x: float,
    y: float,
    c0: float | None = None,
    n_fakes: int = 8,
    per_wavelength: np.ndarray | None = None,
) -> CompanionSpectrum:
    """Contrast spectrum of the companion at ``(x, y)`` (px on the north-up Level 2 image of
    ``cube``'s frame size; star at ``(n//2, n//2)``), see the module doc.

    ``psfs`` (wavelengths, s, s) normalised to unit 1-FWHM-aperture flux, ``star_fluxes`` the
    star's 1-FWHM-aperture flux per wavelength (cube units), ``fwhm`` per wavelength (px);
    ``algorithm``/``params`` those of the Level 2 reduction; ``per_wavelength`` its
    per-wavelength images when already made (recomputed otherwise); ``c0`` the fakes' contrast
    (default: the companion's mean aperture contrast without throughput correction, times 2).
    """
    cube = np.asarray(cube, dtype=np.float32)
    wl = np.asarray(wavelengths_um, dtype=np.float64)
    fwhm = np.broadcast_to(np.asarray(fwhm, dtype=np.float64), wl.shape).copy()
    star = np.asarray(star_fluxes, dtype=np.float64)
    if cube.ndim != 4 or cube.shape[0] != wl.size or psfs.shape[0] != wl.size or star.size != wl.size:
        raise ValueError(
            f"need a (wavelengths, frames, y, x) cube with one PSF, star flux and wavelength per "
            f"channel; got cube {cube.shape}, PSF {np.shape(psfs)}, {star.size} fluxes, {wl.size} wavelengths"
        )
    params = dict(params or {})
    cy, cx = geometry.frame_center(cube.shape)
    sep = float(math.hypot(x - cx, y - cy))
    pa = float(geometry.pixel_to_polar(x, y, cube.shape)[1])
    images = (
        per_wavelength if per_wavelength is not None else _reduce(cube, angles, wl, fwhm, algorithm, params)
    )
    signal = _signals(np.asarray(images, dtype=np.float64), np.array([x]), np.array([y]), fwhm)[0]
    if c0 is None:
        # the raw aperture contrast underestimates the companion (self-subtraction): start above
        guess = float(np.nanmean(signal / star))
        c0 = 2.0 * guess if guess > 0 else float(np.nanmax(np.abs(signal / star)))
    if not (np.isfinite(c0) and c0 > 0):
        raise ValueError(f"no positive signal at ({x:.1f}, {y:.1f}): cannot scale the fakes (c0={c0})")
    passes = fake_position_angles(sep, pa, float(fwhm.max()), n_fakes)
    contrast, err, throughput = _calibrate(
        cube,
        angles,
        wl,
        psfs,
        star,
        fwhm,
        algorithm,
        params,
        images,
        signal,
        sep,
        passes,
        np.full(wl.size, c0),
    )
    return CompanionSpectrum(
        wavelengths_um=wl,
        contrast=contrast,
        contrast_err=err,
        separation_px=sep,
        pa_deg=pa,
        c0=float(c0),
        fake_pas_deg=np.concatenate(passes),
        signal=signal,
        throughput=throughput,
    )
