"""One call from a Level 1 cube to every Level 2 output: :func:`postprocess`.

The orchestrator runs one registered algorithm (``hcdc.science.postprocessing.base`` registry) and
derives the outputs every algorithm shares: final image, throughput-corrected image,
per-wavelength cube, S/N map (Mawet et al. 2014), N-sigma contrast curves per wavelength and
detections, returned as a :class:`~hcdc.science.postprocessing.products.PostprocessResult`.

Memory
------
SPHERE-sized inputs (IRDIS 2 x 300 x 1024², 2.5 GB; IFS 39 x 100 x 290², 1.3 GB in float32) are
processed in bounded memory:

* ADI/RDI algorithms run **wavelength by wavelength**: only one (frames, y, x) plane of the input
  is converted to float32 at a time; a memory-mapped input (``astropy.io.fits.open(memmap=True)``)
  is therefore never loaded whole. Per-wavelength outputs are (y, x) images.
* ``crop_radius`` (px) keeps only the central ``2 * ceil(crop_radius) + 1`` pixels square around
  the star before anything is converted (the star stays on ``(n//2, n//2)``). An IRDIS plane of
  300 x 1024² (1.26 GB) cropped to a 400 px radius is 193 MB.
* Spectral algorithms (SDI/ASDI) need every wavelength of a frame at once; they receive the whole
  (cropped) cube, so cropping is the memory lever for them.

Throughput
----------
Throughput is measured by fake-companion injection (
:func:`~hcdc.science.postprocessing.throughput.throughput_curve`, cached on the algorithm, its
parameters and the data), once per wavelength plane, on the plane with the detected companions
removed, and used twice: for the throughput-corrected image and for the contrast curve.
Detections get their own injection-recovery photometry (fakes as bright as them at their
separation), see :func:`_measure_detections`.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize
from scipy.signal import savgol_filter

from hcdc.science import geometry
from hcdc.science.characterization.detection import GAUSSIAN_5SIGMA_FPF, detect_candidates
from hcdc.science.characterization.negfc import negfc_fit, remove_companion
from hcdc.science.postprocessing.base import AlgorithmSpec, get_algorithm
from hcdc.science.postprocessing.contrast import ContrastCurve, contrast_curve, student_factor
from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.photometry import aperture_sums, normalize_psf
from hcdc.science.postprocessing.products import ContrastCurves, Detection, PostprocessResult
from hcdc.science.postprocessing.snr import snr_at, snr_map, snr_map_region
from hcdc.science.postprocessing.throughput import (
    ThroughputCurve,
    default_separations,
    noise_per_annulus,
    run_algorithm,
    throughput_curve,
)

__all__ = [
    "DEFAULT_FC_SNR",
    "ProgressCallback",
    "crop_slices",
    "estimate_fwhm",
    "postprocess",
    "snr_map_bounded",
    "star_flux_from_psf",
]

#: progress(stage, done, total): called as work advances (the CLI turns it into progress bars).
ProgressCallback = Callable[[str, int, int], None]

#: Brightness of throughput fakes in units of the aperture noise at their separation.
DEFAULT_FC_SNR = 10.0

_SIGMA_TO_FWHM = 2.0 * math.sqrt(2.0 * math.log(2.0))


# ----------------------------------------------------------------------------------------- inputs


def estimate_fwhm(psf: np.ndarray) -> float:
    """FWHM (px) of a PSF image from a 2-D elliptical Gaussian fit around its brightest pixel.

    Returns the mean of the two axes' FWHM (``2 sqrt(2 ln 2) sigma``). Used when no ``fwhm`` is given.
    """
    psf = np.nan_to_num(np.asarray(psf, dtype=np.float64))
    if psf.ndim != 2 or min(psf.shape) < 5:
        raise ValueError(f"PSF must be a 2-D image of at least 5x5 px to measure its FWHM; got {psf.shape}")
    py, px = np.unravel_index(np.argmax(psf), psf.shape)
    half = min(py, px, psf.shape[0] - 1 - py, psf.shape[1] - 1 - px, 12)
    if half < 2:
        raise ValueError("PSF peak lies on the image edge; cannot measure its FWHM")
    stamp = psf[py - half : py + half + 1, px - half : px + half + 1]
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)

    def residual(p: np.ndarray) -> np.ndarray:
        amp, x0, y0, sx, sy, bkg = p
        model = amp * np.exp(-0.5 * (((xx - x0) / sx) ** 2 + ((yy - y0) / sy) ** 2)) + bkg
        return (model - stamp).ravel()

    background = float(np.median(stamp))
    start = np.array([stamp.max() - background, 0.0, 0.0, 1.5, 1.5, background])
    bounds = ([0.0, -half, -half, 0.3, 0.3, -np.inf], [np.inf, half, half, 2.0 * half, 2.0 * half, np.inf])
    fit = optimize.least_squares(residual, start, bounds=bounds)
    if not fit.success:
        raise ValueError(f"Gaussian fit of the PSF failed: {fit.message}")
    return float(_SIGMA_TO_FWHM * 0.5 * (fit.x[3] + fit.x[4]))


def star_flux_from_psf(psf: np.ndarray, fwhm: float) -> float:
    """Flux of an (unsaturated, off-axis) PSF in a 1-FWHM-diameter aperture on its central pixel.

    This is the star flux used for contrasts when none is given, assuming the PSF is in the cube's
    units and exposure (the convention of :func:`~hcdc.science.postprocessing.photometry.normalize_psf`).
    """
    psf = np.asarray(psf, dtype=np.float64)
    cy, cx = psf.shape[0] // 2, psf.shape[1] // 2
    return float(aperture_sums(psf, np.array([cx]), np.array([cy]), fwhm / 2.0)[0])


def crop_slices(shape: tuple[int, ...], radius: float | None) -> tuple[slice, slice]:
    """Slices (y, x) of the square of half-size ``ceil(radius)`` around :func:`frame_center`.

    The crop keeps the star on the new frame's ``(n//2, n//2)``. ``None`` (or a radius reaching past
    the frame) keeps the whole frame.
    """
    ny, nx = shape[-2:]
    if radius is None:
        return slice(0, ny), slice(0, nx)
    if not radius > 0:
        raise ValueError(f"crop radius must be positive (px); got {radius}")
    cy, cx = geometry.frame_center(shape)
    half = math.ceil(radius)
    if half > min(cy, cx, ny - 1 - cy, nx - 1 - cx):
        return slice(0, ny), slice(0, nx)
    return slice(cy - half, cy + half + 1), slice(cx - half, cx + half + 1)


def _per_wavelength(value: Any, n_wl: int, name: str) -> list[Any]:
    """Broadcast a scalar (or None) to ``n_wl`` values, or check a sequence has ``n_wl`` values."""
    if value is None or np.ndim(value) == 0:
        return [value] * n_wl
    values = list(np.asarray(value, dtype=np.float64).ravel())
    if len(values) != n_wl:
        raise ValueError(f"{name} has {len(values)} values for {n_wl} wavelengths")
    return values


def _check_params(spec: AlgorithmSpec, params: Mapping[str, Any]) -> None:
    """Reject parameters the algorithm does not take (a typo must not be silently ignored)."""
    signature = inspect.signature(spec.function)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    reserved = {"cube", "angles", "fwhm", "wavelengths", "reference"}
    known = set(signature.parameters) - reserved
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(
            f"algorithm {spec.name!r} has no parameter(s) {', '.join(unknown)}; "
            f"its parameters are: {', '.join(sorted(known)) or '(none)'}"
        )
    clash = sorted(set(params) & reserved)
    if clash:
        raise ValueError(
            f"parameter(s) {', '.join(clash)} are inputs of postprocess(), not algorithm parameters"
        )


# ------------------------------------------------------------------------------------ orchestrator


def _report(progress: ProgressCallback | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _prepare_psfs(
    psf: np.ndarray | None, n_wl: int, fwhm: list[float | None]
) -> tuple[list[np.ndarray | None], list[float], list[float | None]]:
    """Per wavelength: normalised PSF (odd square, unit 1-FWHM aperture flux), FWHM (px) and the
    PSF's own 1-FWHM aperture flux (the default star flux)."""
    if psf is None:
        if any(f is None for f in fwhm):
            raise ValueError("give fwhm (px) or a PSF to measure it on")
        return [None] * n_wl, [float(f) for f in fwhm], [None] * n_wl
    psf = np.asarray(psf, dtype=np.float64)
    if psf.ndim == 2:
        planes = [psf] * n_wl
    elif psf.ndim == 3 and psf.shape[0] == n_wl:
        planes = list(psf)
    else:
        raise ValueError(f"PSF must be (y, x) or (wavelengths={n_wl}, y, x); got shape {psf.shape}")
    if not np.all(np.isfinite(psf)):
        raise ValueError("PSF contains NaN or infinite pixels")
    normalised, fwhms, fluxes = [], [], []
    for plane, f in zip(planes, fwhm, strict=True):
        f = estimate_fwhm(plane) if f is None else float(f)
        # An odd square centred on the brightest pixel: fake injection assumes the PSF is centred.
        py, px = np.unravel_index(np.argmax(plane), plane.shape)
        half = min(py, px, plane.shape[0] - 1 - py, plane.shape[1] - 1 - px)
        if half < f:
            raise ValueError(f"PSF peak at ({px}, {py}) is closer than 1 FWHM to the PSF image edge")
        square = plane[py - half : py + half + 1, px - half : px + half + 1]
        fluxes.append(star_flux_from_psf(square, f))
        normalised.append(normalize_psf(square, f))
        fwhms.append(f)
    return normalised, fwhms, fluxes


def _plane(cube: np.ndarray, w: int | None, crop: tuple[slice, slice]) -> np.ndarray:
    """One (frames, y, x) plane, cropped, as native float32 (the only full-resolution copy made)."""
    plane = cube[w] if w is not None else cube
    return np.ascontiguousarray(plane[:, crop[0], crop[1]], dtype=np.float32)


#: Upper bound on the apertures one S/N-map call evaluates (each holds ~50 float32 weights plus
#: float64 temporaries): it bounds the S/N map's memory whatever the frame size.
SNR_MAP_MAX_APERTURES = 10_000


def snr_map_bounded(
    image: np.ndarray,
    fwhm: float,
    max_apertures: int = SNR_MAP_MAX_APERTURES,
    progress: ProgressCallback | None = None,
) -> np.ndarray:
    """The exact Mawet (2014) S/N map of :func:`~hcdc.science.postprocessing.snr.snr_map`, computed
    ring by ring so that no call evaluates more than about ``max_apertures`` apertures.

    A pixel at separation ``r`` needs ``~2 pi r / fwhm`` apertures and the quadrant the map computes
    holds ``~pi r dr / 2`` pixels between ``r`` and ``r + dr``, so the ring ``[a, b)`` needs
    ``~pi^2 (b^3 - a^3) / (3 fwhm)`` apertures; ``b`` is chosen to keep that below
    ``max_apertures``. The values are identical to one whole-frame call; the peak memory of a
    290 x 290 map drops from ~1.7 GB to a few tens of MB.
    """
    r_min, r_max = snr_map_region(image.shape, fwhm)
    edges = [r_min]
    while edges[-1] < r_max:
        a = edges[-1]
        b = (a**3 + 3.0 * max_apertures * fwhm / math.pi**2) ** (1.0 / 3.0)
        edges.append(min(max(b, a + 0.5), r_max))
    out = np.full(image.shape, np.nan, dtype=np.float32)
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        ring = snr_map(image, fwhm, r_min=a, r_max=b)
        inside = np.isfinite(ring)
        out[inside] = ring[inside]
        _report(progress, "S/N map", i + 1, len(edges) - 1)
    return out


def _find_candidates(
    snr: np.ndarray,
    image: np.ndarray,
    *,
    fwhm: float,
    threshold: float | None,
    fpf: float,
    pixel_scale_mas: float | None,
) -> list[Detection]:
    """S/N peaks above the criterion (positions refined on ``image``), not yet measured."""
    return [
        Detection(
            x=c.x,
            y=c.y,
            separation_px=c.separation,
            pa_deg=c.pa,
            snr=c.snr,
            separation_mas=c.separation * pixel_scale_mas if pixel_scale_mas else math.nan,
            fpf=c.fpf,
            photometry="none",
        )
        for c in detect_candidates(snr, fwhm, fpf=fpf, threshold=threshold, image=image)
    ]


def _local_throughput(
    plane: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    det: Detection,
    *,
    fwhm: float,
    algorithm: str,
    params: Mapping[str, Any],
    n_fakes: int,
) -> np.ndarray:
    """Throughputs of ``n_fakes`` fakes as bright as ``det`` at its separation, at PAs between it."""
    tp = throughput_curve(
        plane,
        angles,
        psf,
        fwhm=fwhm,
        algorithm=algorithm,
        params=dict(params),
        separations=[det.separation_px],
        nbranch=n_fakes,
        pa=det.pa_deg + 180.0 / n_fakes,
        fc_snr=float(np.clip(det.snr, 3.0, 50.0)),
        fc_rad_sep=1,
    )
    return tp.branches[:, 0]


def _measure_detections(
    detections: list[Detection],
    image: np.ndarray,
    plane: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    algorithm: str,
    params: Mapping[str, Any],
    n_fakes: int = 6,
) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Injection-recovery photometry of every detection on one wavelength plane.

    Returns ``[(flux, flux_err)]`` (cube units, 1-FWHM aperture) and the plane with the detections
    removed. The background-subtracted aperture signal of a detection (Mawet 2014 ``f0 - mean(f_i)``)
    is divided by the throughput of fakes injected at its separation (other PAs) with its brightness.
    PCA's throughput depends on what else is in the cube (bright fakes, real companions are partly
    absorbed into the components), so it is measured twice: a first estimate with the companions in
    place, then again on the cube with every companion removed at its first-estimate flux.
    """
    signals = [snr_at(image, d.x, d.y, fwhm).signal for d in detections]
    first = []
    for det, signal in zip(detections, signals, strict=True):
        tp = float(
            np.mean(
                _local_throughput(
                    plane, angles, psf, det, fwhm=fwhm, algorithm=algorithm, params=params, n_fakes=n_fakes
                )
            )
        )
        first.append(signal / tp if tp > 0 else 0.0)
    clean = plane
    for det, flux in zip(detections, first, strict=True):
        if flux > 0:
            clean = remove_companion(clean, angles, psf, det.separation_px, det.pa_deg, flux)
    results = []
    for det, signal in zip(detections, signals, strict=True):
        tps = _local_throughput(
            clean, angles, psf, det, fwhm=fwhm, algorithm=algorithm, params=params, n_fakes=n_fakes
        )
        tp = float(np.mean(tps))
        if not tp > 0:
            results.append((math.nan, math.nan))
            continue
        flux = signal / tp
        # The fakes' spread is the throughput's uncertainty at this separation (1 sigma of one position).
        results.append((flux, abs(flux) * float(np.std(tps, ddof=1)) / tp))
    return results, np.asarray(clean, dtype=np.float32)


def _negfc_measure(
    detections: list[Detection],
    plane: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    star_flux: float | None,
    ncomp: int,
    pixel_scale_mas: float | None,
) -> tuple[list[Detection], np.ndarray]:
    """Detections re-measured by negative-fake-companion fits, and the plane with them removed."""
    out = []
    for det in detections:
        try:
            fit = negfc_fit(
                plane,
                angles,
                psf,
                fwhm=fwhm,
                separation=det.separation_px,
                pa=det.pa_deg,
                flux_guess=det.flux if np.isfinite(det.flux) and det.flux > 0 else None,
                star_flux=star_flux,
                ncomp=ncomp,
            )
        except ValueError:
            out.append(det)  # within 1 FWHM of the star or the edge: keep the injection photometry
            continue
        plane = remove_companion(plane, angles, psf, fit.separation, fit.pa, fit.flux)
        out.append(
            Detection(
                x=fit.x,
                y=fit.y,
                separation_px=fit.separation,
                pa_deg=fit.pa,
                snr=det.snr,
                separation_mas=fit.separation * pixel_scale_mas if pixel_scale_mas else math.nan,
                flux=fit.flux,
                contrast=fit.contrast,
                fpf=det.fpf,
                flux_err=fit.flux_err,
                contrast_err=fit.contrast_err,
                photometry="negfc",
            )
        )
    return out, np.asarray(plane, dtype=np.float32)


def _with_photometry(
    det: Detection, fluxes: list[tuple[float, float]], star_fluxes: list[float | None]
) -> Detection:
    """``det`` with the mean flux over wavelengths (and its error) and the mean contrast."""
    values = np.array([f for f, _ in fluxes], dtype=np.float64)
    errors = np.array([e for _, e in fluxes], dtype=np.float64)
    n = max(int(np.isfinite(values).sum()), 1)
    flux = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    flux_err = float(np.sqrt(np.nansum(errors**2)) / n) if np.isfinite(errors).any() else math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = [f / s for (f, _), s in zip(fluxes, star_fluxes, strict=True) if s]
        ratio_errs = [e / s for (_, e), s in zip(fluxes, star_fluxes, strict=True) if s]
    contrast = float(np.nanmean(ratios)) if ratios and np.isfinite(ratios).any() else math.nan
    contrast_err = float(np.sqrt(np.nansum(np.square(ratio_errs))) / n) if ratio_errs else math.nan
    return Detection(
        x=det.x,
        y=det.y,
        separation_px=det.separation_px,
        pa_deg=det.pa_deg,
        snr=det.snr,
        separation_mas=det.separation_mas,
        flux=flux,
        contrast=contrast,
        fpf=det.fpf,
        flux_err=flux_err,
        contrast_err=contrast_err,
        photometry="injection",
    )


def _throughput_photometry(
    det: Detection, image: np.ndarray, throughput: ThroughputCurve, fwhm: float, star_flux: float | None
) -> Detection:
    """Background-subtracted aperture signal divided by the throughput curve at the detection's
    separation (spectral algorithms: no per-detection injection, no companion removal)."""
    aperture_signal = snr_at(image, det.x, det.y, fwhm).signal
    tp = float(throughput.at(det.separation_px))
    flux = aperture_signal / tp if tp > 0 else math.nan
    return Detection(
        x=det.x,
        y=det.y,
        separation_px=det.separation_px,
        pa_deg=det.pa_deg,
        snr=det.snr,
        separation_mas=det.separation_mas,
        flux=flux,
        contrast=flux / star_flux if star_flux and np.isfinite(flux) else math.nan,
        fpf=det.fpf,
        photometry="curve",
    )


def _aperture_photometry(det: Detection, image: np.ndarray, fwhm: float) -> Detection:
    """Fallback when no throughput can be measured (no PSF, spectral algorithm): the raw 1-FWHM
    aperture signal, not corrected for self-subtraction, and no contrast."""
    signal = snr_at(image, det.x, det.y, fwhm).signal
    return Detection(
        x=det.x,
        y=det.y,
        separation_px=det.separation_px,
        pa_deg=det.pa_deg,
        snr=det.snr,
        separation_mas=det.separation_mas,
        flux=signal,
        fpf=det.fpf,
        photometry="aperture",
    )


def _common_psf_stack(psfs: list[np.ndarray]) -> np.ndarray:
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


def _radial_map(shape: tuple[int, ...], separations: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each pixel gets ``values`` interpolated at its separation (NaN outside the sampled range)."""
    r = geometry.distance_map(shape)
    out = np.interp(r, separations, values)
    out[(r < separations[0]) | (r > separations[-1])] = np.nan
    return out.astype(np.float32)


def _divide_by_throughput(image: np.ndarray, throughput_map: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """``image / throughput`` where the throughput is at least ``floor`` (NaN elsewhere)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(throughput_map >= floor, image / throughput_map, np.nan).astype(np.float32)


def _spectral_throughput(
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
    fc_snr: float = DEFAULT_FC_SNR,
    fc_rad_sep: int = 3,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Throughput of a spectral algorithm from fakes injected at every wavelength (flat spectrum).

    The same fake-companion scheme as :func:`~hcdc.science.postprocessing.throughput.throughput_curve`
    (which runs ADI algorithms only): fakes ``fc_rad_sep`` samples apart per pass along ``nbranch``
    branches from position angle ``pa``, each with an aperture flux of ``fc_snr`` x the aperture
    noise of the final image at its separation, in every wavelength (a flat spectrum in cube units).
    Returns the throughput of each per-wavelength image (wavelengths, n_sep) and of the final image
    (n_sep,), set to 0 where negative, and the fake fluxes.
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


def _smooth(values: np.ndarray, fwhm: float) -> np.ndarray:
    """Savitzky-Golay smoothing over ~2 FWHM samples (as the ADI contrast curves are smoothed)."""
    window = min(values.size - 2, int(2 * fwhm))
    window += 1 - window % 2
    if window < 3:
        return values
    return savgol_filter(values, window_length=window, polyorder=2, mode="nearest")


def _spectral_contrast(
    image: np.ndarray,
    throughput: ThroughputCurve,
    *,
    fwhm: float,
    star_flux: float,
    sigma: float = 5.0,
    student: bool = True,
    step: float = 1.0,
) -> ContrastCurve:
    """N-sigma contrast of one per-wavelength image of a spectral algorithm, built exactly as
    :func:`~hcdc.science.postprocessing.contrast.contrast_curve` builds it for ADI algorithms."""
    separations = default_separations(image.shape, fwhm, step)
    noise, mean = noise_per_annulus(image, fwhm, separations)
    noise_s, mean_s = _smooth(noise, fwhm), _smooth(mean, fwhm)
    tp = throughput.at(separations)
    factor = student_factor(separations, fwhm, sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = tp > 0
        contrast_t = np.where(good, (factor * noise_s + mean_s) / tp / star_flux, np.nan)
        contrast_g = np.where(good, (sigma * noise_s + mean_s) / tp / star_flux, np.nan)
    return ContrastCurve(
        separation=separations,
        contrast=contrast_t if student else contrast_g,
        contrast_gaussian=contrast_g,
        throughput=tp,
        noise=noise_s,
        residual_level=mean_s,
        sigma=float(sigma),
        fwhm=float(fwhm),
        star_flux=float(star_flux),
        throughput_curve=throughput,
    )


def postprocess(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    algorithm: str,
    psf: np.ndarray | None = None,
    wavelengths: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    fwhm: float | np.ndarray | None = None,
    pixel_scale_mas: float | None = None,
    star_flux: float | np.ndarray | None = None,
    params: Mapping[str, Any] | None = None,
    crop_radius: float | None = None,
    compute_contrast: bool = True,
    detection_threshold: float | None = None,
    detection_fpf: float | None = None,
    negfc: bool = False,
    contrast_options: Mapping[str, Any] | None = None,
    image_unit: str = "",
    inputs: Mapping[str, str | None] | None = None,
    progress: ProgressCallback | None = None,
) -> PostprocessResult:
    """Run ``algorithm`` on a Level 1 cube and derive every Level 2 output.

    Inputs (arrays; a memory-mapped FITS cube is fine: it is read one wavelength plane at a time):

    * ``cube``: (frames, y, x) or (wavelengths, frames, y, x), star on ``(n//2, n//2)``.
    * ``angles``: derotation angles in degrees, one per frame (:func:`hcdc.science.geometry.derotate`).
    * ``psf``: off-axis PSF (y, x) or (wavelengths, y, x) in the cube's units; needed for throughput,
      the throughput-corrected image, contrast curves and detection photometry. Its 1-FWHM
      aperture flux is the star flux when ``star_flux`` is not given.
    * ``wavelengths`` (µm), required by spectral algorithms; ``reference`` (frames_ref, y, x) or
      (wavelengths, frames_ref, y, x) for RDI algorithms.
    * ``fwhm`` (px, scalar or per wavelength; measured on the PSF when None), ``pixel_scale_mas``
      (mas/px), ``star_flux`` (cube units in a 1-FWHM aperture; scalar or per wavelength).
    * ``params``: algorithm parameters (checked against the algorithm's signature).
    * ``crop_radius`` (px): process only the central square of half-size ``ceil(crop_radius)``.
    * Detections: S/N peaks above ``detection_threshold`` (a fixed S/N) or, by default, above the
      separation-dependent Student threshold of false-positive fraction ``detection_fpf``
      (default: the Gaussian 5-sigma tail, 2.87e-7). Their flux is measured by injection-recovery
      (see :func:`_measure_detections`), or with ``negfc=True`` by negative-fake-companion fits
      (single-wavelength cubes; PCA inside, with the reduction's ``ncomp``).
    * ``contrast_options``: passed to :func:`hcdc.science.postprocessing.contrast.contrast_curve`
      (``sigma``, ``nbranch``, ``fc_snr`` (default :data:`DEFAULT_FC_SNR`), ``step``, ...); the
      throughput map of the corrected image is the same measurement (computed once, reused).
    * ``progress(stage, done, total)``: progress callback.

    Throughput and contrast curves are measured on the cube with the detected companions removed
    (VIP/SpeCal practice), per wavelength. The final image is the mean of the per-wavelength
    images; the throughput-corrected image divides each wavelength's image by its throughput map
    first. Spectral algorithms (SDI/ASDI) get the same outputs from fakes injected in every
    wavelength (flat spectrum, :func:`_spectral_throughput`); their detections are corrected with
    the final image's throughput curve (``photometry='curve'``) and the cube is not cleaned of
    them first. Without a PSF there is no throughput: detections carry the raw aperture signal.
    """
    plan = _make_plan(
        cube,
        angles,
        algorithm=algorithm,
        psf=psf,
        wavelengths=wavelengths,
        reference=reference,
        fwhm=fwhm,
        star_flux=star_flux,
        params=params,
        crop_radius=crop_radius,
        contrast_options=contrast_options,
    )
    fpf = GAUSSIAN_5SIGMA_FPF if detection_fpf is None else float(detection_fpf)

    images, final, kept, full = _first_pass(plan, progress)

    fwhm_final = float(np.mean(plan.fwhms))
    snr = snr_map_bounded(final, fwhm_final, progress=progress)
    candidates = _find_candidates(
        snr, final, fwhm=fwhm_final, threshold=detection_threshold, fpf=fpf, pixel_scale_mas=pixel_scale_mas
    )

    if plan.psfs[0] is None:
        measured = _Measured(detections=[_aperture_photometry(c, final, fwhm_final) for c in candidates])
    elif plan.spec.spectral:
        measured = _spectral_pass(plan, full, images, final, candidates, compute_contrast, progress)
    else:
        measured = _adi_pass(
            plan, images, kept, candidates, compute_contrast, negfc, pixel_scale_mas, progress
        )
    del full, kept

    present_flux = [s for s in plan.star_fluxes if s]
    return PostprocessResult(
        image=final,
        algorithm=algorithm,
        params=plan.params,
        image_throughput_corrected=measured.final_tc,
        cube=images if plan.spectral_input else None,
        wavelengths=plan.wavelengths,
        snr_map=snr,
        contrast=_merge_curves(measured.curves, student=bool(plan.contrast_options.get("student", True))),
        detections=measured.detections,
        throughput_map=_mean_map(measured.throughput_maps),
        image_unit=image_unit,
        pixel_scale_mas=pixel_scale_mas,
        fwhm=fwhm_final,
        star_flux=float(np.mean(present_flux)) if present_flux else None,
        detection_threshold=detection_threshold,
        detection_fpf=None if detection_threshold is not None else fpf,
        inputs=dict(inputs or {}),
    )


@dataclass
class _Plan:
    """Validated inputs of one :func:`postprocess` call, per wavelength where it matters."""

    cube: np.ndarray  # as given (possibly memory-mapped, big-endian); read plane by plane
    angles: np.ndarray
    spec: AlgorithmSpec
    params: dict[str, Any]
    wavelengths: np.ndarray | None
    reference: np.ndarray | None
    psfs: list[np.ndarray | None]  # normalised, per wavelength
    fwhms: list[float]
    star_fluxes: list[float | None]
    crop: tuple[slice, slice]
    contrast_options: dict[str, Any]

    @property
    def spectral_input(self) -> bool:
        return self.cube.ndim == 4

    @property
    def n_wl(self) -> int:
        return self.cube.shape[0] if self.spectral_input else 1

    @property
    def shape(self) -> tuple[int, int]:
        return (self.crop[0].stop - self.crop[0].start, self.crop[1].stop - self.crop[1].start)

    @property
    def throughput_options(self) -> dict[str, Any]:
        """The contrast options that define a throughput measurement."""
        return {k: v for k, v in self.contrast_options.items() if k in _THROUGHPUT_KEYS}

    def plane_and_params(self, w: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Wavelength plane ``w`` (cropped, float32) and its algorithm parameters (with its reference)."""
        run_params = dict(self.params)
        if self.reference is not None:
            ref = self.reference[w] if self.reference.ndim == 4 else self.reference
            run_params["reference"] = np.ascontiguousarray(
                ref[:, self.crop[0], self.crop[1]], dtype=np.float32
            )
        return _plane(self.cube, w if self.spectral_input else None, self.crop), run_params

    def throughput_separations(self, fwhm: float) -> np.ndarray:
        """The throughput sampling of contrast_curve: every ``throughput_step`` px (default 1 FWHM)."""
        return default_separations(self.shape, fwhm, self.contrast_options.get("throughput_step") or fwhm)


def _make_plan(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    algorithm: str,
    psf: np.ndarray | None,
    wavelengths: np.ndarray | None,
    reference: np.ndarray | None,
    fwhm: float | np.ndarray | None,
    star_flux: float | np.ndarray | None,
    params: Mapping[str, Any] | None,
    crop_radius: float | None,
    contrast_options: Mapping[str, Any] | None,
) -> _Plan:
    """Check every input against the cube and the algorithm; raise ``ValueError`` naming the problem."""
    spec = get_algorithm(algorithm)
    params = dict(params or {})
    _check_params(spec, params)
    if np.ndim(cube) not in (3, 4):
        raise ValueError(
            f"cube must be (frames, y, x) or (wavelengths, frames, y, x); got shape {np.shape(cube)}"
        )
    n_wl = cube.shape[0] if cube.ndim == 4 else 1
    n_frames = cube.shape[-3]
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if angles.size != n_frames:
        raise ValueError(f"cube has {n_frames} frames but {angles.size} derotation angles were given")
    if not np.all(np.isfinite(angles)):
        raise ValueError("derotation angles contain NaN or infinite values")
    if wavelengths is not None:
        wavelengths = np.asarray(wavelengths, dtype=np.float64).ravel()
        if wavelengths.size != n_wl:
            raise ValueError(f"{wavelengths.size} wavelengths for a cube with {n_wl} wavelength plane(s)")
    if spec.spectral and (cube.ndim != 4 or wavelengths is None):
        raise ValueError(
            f"algorithm {algorithm!r} is spectral: it needs a (wavelengths, frames, y, x) cube "
            "and the wavelengths"
        )
    if spec.needs_reference and reference is None:
        raise ValueError(f"algorithm {algorithm!r} needs a reference cube (RDI)")
    if reference is not None:
        if not spec.needs_reference:
            raise ValueError(f"algorithm {algorithm!r} does not use a reference cube")
        if (
            reference.ndim not in (3, 4)
            or reference.shape[-2:] != cube.shape[-2:]
            or (reference.ndim == 4 and reference.shape[0] != n_wl)
        ):
            raise ValueError(f"reference cube of shape {reference.shape} does not match cube {cube.shape}")
    psfs, fwhms, psf_fluxes = _prepare_psfs(psf, n_wl, _per_wavelength(fwhm, n_wl, "fwhm"))
    star_fluxes = [
        s if s is not None else p
        for s, p in zip(_per_wavelength(star_flux, n_wl, "star_flux"), psf_fluxes, strict=True)
    ]
    # Fakes 10x the noise (VIP uses 100x): PCA absorbs bright fakes into its components, so their
    # throughput is lower than that of the faint companions a 5-sigma curve is about.
    options = {"fc_snr": DEFAULT_FC_SNR, **dict(contrast_options or {})}
    return _Plan(
        cube,
        angles,
        spec,
        params,
        wavelengths,
        reference,
        psfs,
        fwhms,
        star_fluxes,
        crop_slices(cube.shape, crop_radius),
        options,
    )


def _first_pass(
    plan: _Plan, progress: ProgressCallback | None
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, dict[str, Any]] | None, np.ndarray | None]:
    """Run the algorithm: one wavelength plane at a time (ADI/RDI) or on the whole cropped cube
    (spectral). Returns per-wavelength images, the final image, the plane of a single-wavelength
    cube (kept for pass 2) and the whole cropped cube of a spectral algorithm with a PSF (idem)."""
    n_wl = plan.n_wl
    images = np.empty((n_wl, *plan.shape), dtype=np.float32)
    _report(progress, "post-processing", 0, n_wl)
    if plan.spec.spectral:
        full = np.ascontiguousarray(plan.cube[:, :, plan.crop[0], plan.crop[1]], dtype=np.float32)
        fwhm_arg = np.asarray(plan.fwhms) if n_wl > 1 else plan.fwhms[0]
        final, per_wl = plan.spec.function(
            full, plan.angles, fwhm=fwhm_arg, wavelengths=plan.wavelengths, **plan.params
        )
        images[:] = np.asarray(per_wl, dtype=np.float32)
        _report(progress, "post-processing", n_wl, n_wl)
        return images, np.asarray(final, dtype=np.float32), None, full if plan.psfs[0] is not None else None
    kept = None
    for w in range(n_wl):
        plane, run_params = plan.plane_and_params(w)
        images[w] = run_algorithm(plan.spec.name, plane, plan.angles, fwhm=plan.fwhms[w], **run_params)
        if n_wl == 1:
            kept = (plane, run_params)
        del plane
        _report(progress, "post-processing", w + 1, n_wl)
    final = images.mean(axis=0) if n_wl > 1 else images[0].copy()
    return images, final, kept, None


@dataclass
class _Measured:
    """What pass 2 adds to the images: measured detections, throughput, contrast."""

    detections: list[Detection]
    final_tc: np.ndarray | None = None
    throughput_maps: list[np.ndarray] = field(default_factory=list)
    curves: list[Any] = field(default_factory=list)


def _adi_pass(
    plan: _Plan,
    images: np.ndarray,
    kept: tuple[np.ndarray, dict[str, Any]] | None,
    candidates: list[Detection],
    compute_contrast: bool,
    negfc: bool,
    pixel_scale_mas: float | None,
    progress: ProgressCallback | None,
) -> _Measured:
    """Per wavelength plane: photometry of the detections and their removal, then one throughput
    measurement (the contrast curve's own) for the corrected image and the contrast curve."""
    n_wl = plan.n_wl
    corrected = np.full((n_wl, *plan.shape), np.nan, dtype=np.float32)
    maps: list[np.ndarray] = []
    curves: list[Any] = [None] * n_wl
    fluxes: list[list[tuple[float, float]]] = [[] for _ in candidates]
    refined: list[Detection] | None = None
    for w in range(n_wl):
        _report(progress, "throughput and contrast", w, n_wl)
        plane, run_params = kept if kept is not None else plan.plane_and_params(w)
        psf, fwhm, star = plan.psfs[w], plan.fwhms[w], plan.star_fluxes[w]
        clean = plane
        if candidates:
            measured, clean = _measure_detections(
                candidates,
                images[w],
                plane,
                plan.angles,
                psf,
                fwhm=fwhm,
                algorithm=plan.spec.name,
                params=run_params,
            )
            for i, value in enumerate(measured):
                fluxes[i].append(value)
        if negfc and n_wl == 1 and candidates:
            ncomp = plan.params.get("ncomp", 10)
            refined, clean = _negfc_measure(
                [_with_photometry(c, f, plan.star_fluxes) for c, f in zip(candidates, fluxes, strict=True)],
                plane,
                plan.angles,
                psf,
                fwhm=fwhm,
                star_flux=star,
                ncomp=int(ncomp) if np.ndim(ncomp) == 0 else 10,
                pixel_scale_mas=pixel_scale_mas,
            )
        # One throughput measurement per (algorithm, parameters, data) serves both outputs: the
        # contrast curve's own or, when no contrast is wanted, the same measurement made directly.
        if compute_contrast and star:
            curves[w] = contrast_curve(
                clean,
                plan.angles,
                psf,
                fwhm=fwhm,
                star_flux=star,
                algorithm=plan.spec.name,
                params=run_params,
                **plan.contrast_options,
            )
            tp = curves[w].throughput_curve
        else:
            tp = throughput_curve(
                clean,
                plan.angles,
                psf,
                fwhm=fwhm,
                algorithm=plan.spec.name,
                params=run_params,
                separations=plan.throughput_separations(fwhm),
                **plan.throughput_options,
            )
        maps.append(tp.map(plan.shape).astype(np.float32))
        corrected[w] = tp.correct(images[w])
        del plane, clean
        _report(progress, "throughput and contrast", w + 1, n_wl)
    if refined is not None:
        detections = refined
    else:
        detections = [
            _with_photometry(c, f, plan.star_fluxes) for c, f in zip(candidates, fluxes, strict=True)
        ]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels (no throughput) stay NaN
        final_tc = np.nanmean(corrected, axis=0) if n_wl > 1 else corrected[0]
    return _Measured(detections, final_tc, maps, curves)


def _spectral_pass(
    plan: _Plan,
    full: np.ndarray,
    images: np.ndarray,
    final: np.ndarray,
    candidates: list[Detection],
    compute_contrast: bool,
    progress: ProgressCallback | None,
) -> _Measured:
    """Spectral algorithms: fakes in every wavelength of the whole (cropped) cube give throughput
    maps per wavelength and for the final image, the corrected images and contrast curves."""
    _report(progress, "throughput and contrast", 0, 1)
    fwhm_final = float(np.mean(plan.fwhms))
    seps = plan.throughput_separations(fwhm_final)
    per_tp, final_tp, fake_fluxes = _spectral_throughput(
        full,
        plan.angles,
        _common_psf_stack(plan.psfs),
        final=final,
        per_wl=images,
        fwhms=plan.fwhms,
        wavelengths=plan.wavelengths,
        spec=plan.spec,
        params=plan.params,
        separations=seps,
        **{k: v for k, v in plan.throughput_options.items() if k != "cache"},
    )
    options = plan.contrast_options
    branch_pas = np.array([float(options.get("pa", 270.0))])
    maps, curves = [], [None] * plan.n_wl
    for w in range(plan.n_wl):
        maps.append(_radial_map(plan.shape, seps, per_tp[w]))
        if compute_contrast and plan.star_fluxes[w]:
            curves[w] = _spectral_contrast(
                images[w],
                ThroughputCurve(seps, per_tp[w][None, :], branch_pas, fake_fluxes),
                fwhm=plan.fwhms[w],
                star_flux=plan.star_fluxes[w],
                sigma=float(options.get("sigma", 5.0)),
                student=bool(options.get("student", True)),
                step=float(options.get("step", 1.0)),
            )
    final_curve = ThroughputCurve(seps, final_tp[None, :], branch_pas, fake_fluxes)
    present = [s for s in plan.star_fluxes if s]
    mean_star = float(np.mean(present)) if present else None
    detections = [_throughput_photometry(c, final, final_curve, fwhm_final, mean_star) for c in candidates]
    _report(progress, "throughput and contrast", 1, 1)
    return _Measured(
        detections, _divide_by_throughput(final, _radial_map(plan.shape, seps, final_tp)), maps, curves
    )


_THROUGHPUT_KEYS = ("nbranch", "pa", "fc_snr", "fc_rad_sep", "cache")


def _mean_map(maps: list[np.ndarray]) -> np.ndarray | None:
    if not maps:
        return None
    if len(maps) == 1:
        return maps[0]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.stack(maps), axis=0).astype(np.float32)


def _merge_curves(curves: list[Any], student: bool = True) -> ContrastCurves | None:
    """Per-wavelength :class:`~hcdc.science.postprocessing.contrast.ContrastCurve` objects on one
    separation grid: the longest curve's separations; the others (which start at their own FWHM)
    are interpolated onto it (contrast log-linearly) and NaN outside their own range."""
    present = [c for c in curves if c is not None]
    if not present:
        return None
    grid = max((c.separation for c in present), key=len)
    n = len(curves)
    contrast, throughput, noise = (np.full((n, grid.size), np.nan) for _ in range(3))
    for k, c in enumerate(curves):
        if c is None:
            continue
        inside = (grid >= c.separation[0] - 1e-9) & (grid <= c.separation[-1] + 1e-9)
        with np.errstate(divide="ignore", invalid="ignore"):
            contrast[k, inside] = np.exp(np.interp(grid[inside], c.separation, np.log(c.contrast)))
        throughput[k, inside] = np.interp(grid[inside], c.separation, c.throughput)
        noise[k, inside] = np.interp(grid[inside], c.separation, c.noise)
    return ContrastCurves(
        separation_px=grid,
        contrast=contrast,
        throughput=throughput,
        noise=noise,
        nsigma=present[0].sigma,
        student=student,
    )
