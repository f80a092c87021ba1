"""Synthetic ADI and spectral (IFS/DBI-like) cubes with injected companions of known truth.

Pure and seeded: the same arguments give the same arrays. Used by tests and benchmarks.

Model of one frame (detector/pupil frame, star on :func:`hcdc.science.geometry.frame_center`):

* a smooth stellar halo plus **quasi-static speckles**: a random field smoothed to the PSF size,
  fixed in the pupil frame (they do not rotate with the sky), slowly decorrelating over the
  sequence (the pattern drifts from one random field to another), with a radial envelope that
  falls as ``r^-2`` outside ~2 FWHM;
* **white noise** (photon + read noise) per frame;
* **companions** at fixed sky separation/PA: in frame ``k`` a companion at position angle ``PA``
  on the north-up sky lies at ``PA + angles[k]`` (``angles`` are the derotation angles of
  :func:`hcdc.science.geometry.derotate`: turning frame ``k`` clockwise by ``angles[k]`` puts
  north up).

Fluxes: the returned PSF has unit flux in a 1-FWHM-diameter aperture (VIP convention) and
``star_flux`` is the star's flux in that aperture, so a companion of contrast ``c`` has aperture
flux ``c * star_flux`` and is injected as ``c * star_flux * psf``.

Spectral cubes: speckles scale radially with wavelength (pattern at ``lambda`` = pattern at
``lambda_ref`` magnified by ``lambda / lambda_ref``), the PSF FWHM scales with wavelength and
companions stay put, with a per-wavelength contrast (their spectrum).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from hcdc.science import geometry
from hcdc.science.postprocessing.photometry import gaussian_psf

__all__ = [
    "Companion",
    "SimulatedADI",
    "SimulatedSpectral",
    "gaussian_psf",
    "simulate_adi_cube",
    "simulate_spectral_cube",
]

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class Companion:
    """Truth of one injected companion: separation (px), PA (deg east of north), contrast.

    ``x``, ``y``: its pixel position on the final north-up image. ``flux``: aperture flux (same
    units as the cube) = contrast x star_flux. For spectral cubes ``contrast``/``flux`` are the
    values at the reference wavelength and ``spectrum`` holds the per-wavelength contrasts.
    """

    separation: float
    pa: float
    contrast: float
    flux: float
    x: float
    y: float
    spectrum: tuple[float, ...] | None = None


@dataclass
class SimulatedADI:
    """A synthetic ADI sequence and its truth."""

    cube: np.ndarray  # (frames, y, x) float32
    angles: np.ndarray  # derotation angles, deg
    psf: np.ndarray  # (size, size) float32, unit flux in a 1-FWHM aperture
    fwhm: float  # px
    star_flux: float  # star flux in a 1-FWHM aperture (cube units)
    companions: list[Companion] = field(default_factory=list)
    noise_only: np.ndarray | None = None  # the same cube without companions


@dataclass
class SimulatedSpectral:
    """A synthetic spectral ADI sequence (wavelengths, frames, y, x) and its truth."""

    cube: np.ndarray
    angles: np.ndarray
    wavelengths: np.ndarray  # µm
    psf: np.ndarray  # (wavelengths, size, size), unit flux in a 1-FWHM(lambda) aperture each
    fwhm: np.ndarray  # px per wavelength
    star_flux: np.ndarray  # per wavelength
    companions: list[Companion] = field(default_factory=list)
    noise_only: np.ndarray | None = None


def _place_psf(frame: np.ndarray, psf_fwhm: float, x: float, y: float, amplitude: float) -> None:
    """Add ``amplitude`` x unit-aperture-flux Gaussian PSF centred on ``(x, y)`` to ``frame`` in place."""
    ix, iy = int(np.rint(x)), int(np.rint(y))
    stamp = gaussian_psf(psf_fwhm, dx=x - ix, dy=y - iy)
    h = stamp.shape[0] // 2
    ny, nx = frame.shape
    y0, y1 = max(iy - h, 0), min(iy + h + 1, ny)
    x0, x1 = max(ix - h, 0), min(ix + h + 1, nx)
    if y0 >= y1 or x0 >= x1:
        return
    frame[y0:y1, x0:x1] += amplitude * stamp[y0 - (iy - h) : y1 - (iy - h), x0 - (ix - h) : x1 - (ix - h)]


def _speckle_field(rng: np.random.Generator, size: int, fwhm: float) -> np.ndarray:
    """Zero-mean random field with speckle-sized (~1 FWHM) correlation, unit standard deviation."""
    field_ = ndimage.gaussian_filter(rng.standard_normal((size, size)), fwhm * FWHM_TO_SIGMA, mode="wrap")
    return field_ / field_.std()


def _envelope(shape: tuple[int, int], fwhm: float, scale: float) -> np.ndarray:
    """Radial speckle amplitude: flat inside 2 FWHM, falling as r^-2 beyond."""
    r = geometry.distance_map(shape)
    r0 = 2.0 * fwhm
    return scale / (1.0 + (r / r0) ** 2)


def _parallactic_sequence(n_frames: int, rotation: float, start: float) -> np.ndarray:
    """Derotation angles of a transit-like sequence: faster rotation mid-sequence."""
    t = np.linspace(-1.0, 1.0, n_frames)
    return start + rotation * (np.arctan(2.0 * t) / np.arctan(2.0) + 1.0) / 2.0


def _companion_truth(
    companions: Sequence[tuple[float, float, float]], star_flux: float, shape: tuple[int, int]
) -> list[Companion]:
    truth = []
    for separation, pa, contrast in companions:
        if separation <= 0:
            raise ValueError(f"companion separation must be positive; got {separation}")
        x, y = geometry.polar_to_pixel(separation, pa, shape)
        truth.append(
            Companion(
                float(separation), float(pa) % 360.0, float(contrast), float(contrast * star_flux), x, y
            )
        )
    return truth


def simulate_adi_cube(
    *,
    n_frames: int = 40,
    size: int = 101,
    fwhm: float = 4.0,
    rotation: float = 80.0,
    start_angle: float = -20.0,
    companions: Sequence[tuple[float, float, float]] = (),
    star_flux: float = 1.0e6,
    speckle_contrast: float = 2.0e-3,
    speckle_decorrelation: float = 0.3,
    noise_contrast: float = 2.0e-5,
    seed: int = 0,
) -> SimulatedADI:
    """Synthetic pupil-tracking ADI cube with companions ``(separation_px, pa_deg, contrast)``.

    ``speckle_contrast``: speckle amplitude at the star (aperture-flux contrast per pixel, i.e.
    pixel values ~ ``speckle_contrast * star_flux``); ``speckle_decorrelation`` in [0, 1]: how far
    the pattern drifts over the sequence; ``noise_contrast``: white-noise standard deviation per
    pixel relative to ``star_flux``. Field rotation ``rotation`` degrees from ``start_angle``.
    """
    if n_frames < 2:
        raise ValueError(f"an ADI sequence needs at least 2 frames; got {n_frames}")
    if size < 8 * fwhm:
        raise ValueError(f"frame size {size} px is too small for FWHM {fwhm} px (need >= 8 FWHM)")
    rng = np.random.default_rng(seed)
    shape = (size, size)
    angles = _parallactic_sequence(n_frames, rotation, start_angle)
    envelope = _envelope(shape, fwhm, speckle_contrast * star_flux)
    pattern_a = _speckle_field(rng, size, fwhm)
    pattern_b = _speckle_field(rng, size, fwhm)
    halo = 0.5 * envelope
    t = np.linspace(0.0, 1.0, n_frames) * speckle_decorrelation * np.pi / 2
    noise = rng.standard_normal((n_frames, size, size)) * (noise_contrast * star_flux)
    cube = np.empty((n_frames, size, size), dtype=np.float32)
    for k in range(n_frames):
        speckles = np.cos(t[k]) * pattern_a + np.sin(t[k]) * pattern_b
        cube[k] = halo + envelope * speckles + noise[k]
    noise_only = cube.copy()
    truth = _companion_truth(companions, star_flux, shape)
    for comp in truth:
        for k in range(n_frames):
            x, y = geometry.polar_to_pixel(comp.separation, comp.pa + angles[k], shape)
            _place_psf(cube[k], fwhm, x, y, comp.flux)
    return SimulatedADI(
        cube=cube,
        angles=angles,
        psf=gaussian_psf(fwhm),
        fwhm=float(fwhm),
        star_flux=float(star_flux),
        companions=truth,
        noise_only=noise_only,
    )


def simulate_spectral_cube(
    *,
    wavelengths: Sequence[float] = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6),
    n_frames: int = 20,
    size: int = 101,
    fwhm_ref: float = 3.5,
    rotation: float = 40.0,
    start_angle: float = -10.0,
    companions: Sequence[tuple[float, float, float]] = (),
    spectra: Sequence[Sequence[float]] | None = None,
    star_flux: float = 1.0e6,
    speckle_contrast: float = 2.0e-3,
    speckle_decorrelation: float = 0.2,
    noise_contrast: float = 2.0e-5,
    seed: int = 0,
) -> SimulatedSpectral:
    """Synthetic spectral ADI cube (wavelengths, frames, y, x) with radially scaling speckles.

    ``fwhm_ref`` is the FWHM at the first (reference) wavelength; the FWHM at ``lambda`` is
    ``fwhm_ref * lambda / wavelengths[0]`` and the speckle pattern is magnified by the same factor.
    ``companions``: ``(separation_px, pa_deg, contrast_at_reference)``; ``spectra`` (optional, one
    sequence per companion, same length as ``wavelengths``): contrast per wavelength (default:
    flat, equal to the reference contrast). The star flux is the same at every wavelength.
    """
    wl = np.asarray(wavelengths, dtype=np.float64)
    if wl.ndim != 1 or wl.size < 2 or np.any(wl <= 0):
        raise ValueError(f"wavelengths must be >= 2 positive values in µm; got {wavelengths}")
    if spectra is not None and len(spectra) != len(companions):
        raise ValueError("give one spectrum per companion")
    rng = np.random.default_rng(seed)
    shape = (size, size)
    scale = wl / wl[0]
    fwhm = fwhm_ref * scale
    if size < 8 * fwhm.max():
        raise ValueError(f"frame size {size} px is too small for FWHM {fwhm.max():.1f} px")
    angles = _parallactic_sequence(n_frames, rotation, start_angle)
    pattern_a = _speckle_field(rng, size, fwhm_ref)
    pattern_b = _speckle_field(rng, size, fwhm_ref)
    dy, dx = geometry.offsets_from_center(shape)
    cy, cx = geometry.frame_center(shape)
    t = np.linspace(0.0, 1.0, n_frames) * speckle_decorrelation * np.pi / 2
    cube = np.empty((wl.size, n_frames, size, size), dtype=np.float32)
    for i, sc in enumerate(scale):
        # Magnify the reference pattern by sc: the value at offset d comes from offset d / sc.
        coords = np.array([cy + dy / sc, cx + dx / sc])
        a = ndimage.map_coordinates(pattern_a, coords, order=3, mode="wrap")
        b = ndimage.map_coordinates(pattern_b, coords, order=3, mode="wrap")
        envelope = _envelope(shape, fwhm[i], speckle_contrast * star_flux)
        noise = rng.standard_normal((n_frames, size, size)) * (noise_contrast * star_flux)
        for k in range(n_frames):
            cube[i, k] = 0.5 * envelope + envelope * (np.cos(t[k]) * a + np.sin(t[k]) * b) + noise[k]
    noise_only = cube.copy()
    truth = []
    for j, (separation, pa, contrast) in enumerate(companions):
        spec = np.full(wl.size, contrast) if spectra is None else np.asarray(spectra[j], dtype=np.float64)
        if spec.size != wl.size:
            raise ValueError(f"spectrum {j} has {spec.size} values for {wl.size} wavelengths")
        x, y = geometry.polar_to_pixel(separation, pa, shape)
        truth.append(
            Companion(
                float(separation),
                float(pa) % 360.0,
                float(spec[0]),
                float(spec[0] * star_flux),
                x,
                y,
                tuple(float(v) for v in spec),
            )
        )
        for i in range(wl.size):
            for k in range(n_frames):
                xk, yk = geometry.polar_to_pixel(separation, pa + angles[k], shape)
                _place_psf(cube[i, k], fwhm[i], xk, yk, spec[i] * star_flux)
    psf = np.stack([gaussian_psf(f, size=int(2 * np.ceil(2.5 * fwhm.max()) + 1)) for f in fwhm])
    return SimulatedSpectral(
        cube=cube,
        angles=angles,
        wavelengths=wl,
        psf=psf,
        fwhm=fwhm,
        star_flux=np.full(wl.size, float(star_flux)),
        companions=truth,
        noise_only=noise_only,
    )
