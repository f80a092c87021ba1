"""Photometry of the S/N-map detections of a reduction (used by :func:`~.run.postprocess`).

A detection's flux is its background-subtracted 1-FWHM aperture signal (the Mawet 2014 numerator
``f0 - mean(f_i)``, :func:`~hcdc.science.postprocessing.snr.snr_at`) corrected for the algorithm's
throughput, measured in one of four ways (``Detection.photometry``):

* ``'injection'``: fakes as bright as the detection injected at its separation (other PAs), on
  the cube first with and then without the detected companions (:func:`measure_detections`);
* ``'negfc'``: a negative-fake-companion fit (:func:`negfc_measure`);
* ``'curve'``: the throughput curve at its separation (spectral algorithms);
* ``'aperture'``: the raw aperture signal when no throughput can be measured (no PSF).

Astrometric errors (:func:`measure_astrometry`): fakes as bright as the detection are injected at
its separation at other position angles into the plane with the detections removed, the same
reduction is run, each fake's position is measured as the detection's was
(:func:`~hcdc.science.postprocessing.detection.refine_position` on the final image), and the
root-mean-square of (measured - injected) in separation and position angle is the detection's
1-sigma error: speckle noise, self-subtraction distortions and centroid bias at that separation and
brightness, measured rather than assumed. NEGFC fits report the same statistic from their own
injection trials.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from hcdc.science import geometry
from hcdc.science.postprocessing.base import AlgorithmSpec
from hcdc.science.postprocessing.detection import ThresholdProfile, detect_candidates, refine_position
from hcdc.science.postprocessing.fakes import InjectedCube, inject_companions
from hcdc.science.postprocessing.negfc import negfc_fit, remove_companion
from hcdc.science.postprocessing.photometry import FAKE_FLUX_ITERATIONS, aperture_sums
from hcdc.science.postprocessing.products import Detection
from hcdc.science.postprocessing.snr import snr_at
from hcdc.science.postprocessing.throughput import ThroughputCurve, lazy_injection, throughput_curve

__all__ = [
    "FAKE_FLUX_ITERATIONS",
    "FakeFlux",
    "FakeReduction",
    "adi_fake_reduction",
    "aperture_photometry",
    "calibrated_flux",
    "fake_astrometry",
    "combine_photometry",
    "curve_photometry",
    "find_candidates",
    "combine_astrometry",
    "measure_astrometry",
    "measure_detections",
    "negfc_measure",
    "spectral_fake_reduction",
]


def _separation_mas(separation_px: float, pixel_scale_mas: float | None) -> float:
    return separation_px * pixel_scale_mas if pixel_scale_mas else math.nan


def find_candidates(
    snr: np.ndarray,
    image: np.ndarray,
    *,
    fwhm: float,
    threshold: float | None,
    fpf: float,
    pixel_scale_mas: float | None,
    valid: np.ndarray | None = None,
    rotation: float | None = None,
    profile: ThresholdProfile | None = None,
) -> list[Detection]:
    """S/N peaks above the criterion (positions refined on ``image``), not yet measured; with
    ``valid`` (bool mask) only where it is True, with ``rotation`` (field rotation, deg) without
    ADI side lobes, with ``profile`` above its threshold per separation (see ``detect_candidates``)."""
    return [
        Detection(
            x=c.x,
            y=c.y,
            separation_px=c.separation,
            pa_deg=c.pa,
            snr=c.snr,
            separation_mas=_separation_mas(c.separation, pixel_scale_mas),
            fpf=c.fpf,
            photometry="none",
        )
        for c in detect_candidates(
            snr,
            fwhm,
            fpf=fpf,
            threshold=threshold,
            image=image,
            valid=valid,
            rotation=rotation,
            profile=profile,
        )
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
    fake_flux: float | None = None,
) -> np.ndarray:
    """Throughputs of ``n_fakes`` fakes at ``det``'s separation, at PAs between it: of the
    detection's S/N times the noise (its reduced signal), or of ``fake_flux`` (cube units, 1-FWHM
    aperture) when given."""
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
        fake_flux=fake_flux,
    )
    return tp.branches[:, 0]


#: fakes per detection (and wavelength) of :func:`measure_detections`' throughput
PHOTOMETRY_FAKES = 6

# FAKE_FLUX_ITERATIONS (most iterations with ``fakes_at_flux``) is defined in .photometry, which the
# product writer reads too (its PHOTFMAX card): products must not import this module (a circle)


@dataclass(frozen=True)
class FakeFlux:
    """How the photometry fakes of one detection (on one wavelength plane) were set with
    ``fakes_at_flux``: the flux of the fakes behind the reported throughput (cube units, 1-FWHM
    aperture; NaN when none at the flux estimate measured one), the number of measurements at the
    flux estimate, and whether the last one changed the estimate by less than its error (else
    the iteration stopped at its maximum, or at fakes without a positive throughput)."""

    flux: float
    iterations: int
    converged: bool


def measure_detections(
    detections: list[Detection],
    image: np.ndarray,
    plane: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    algorithm: str,
    params: Mapping[str, Any],
    n_fakes: int = PHOTOMETRY_FAKES,
    fakes_at_flux: bool = False,
    max_iterations: int = FAKE_FLUX_ITERATIONS,
    fake_flux_log: list[FakeFlux] | None = None,
) -> tuple[list[tuple[float, float]], np.ndarray]:
    """Injection-recovery photometry of every detection on one wavelength plane.

    Returns ``[(flux, flux_err)]`` (cube units, 1-FWHM aperture) and the plane with the detections
    removed. The background-subtracted aperture signal of a detection (Mawet 2014 ``f0 - mean(f_i)``)
    is divided by the throughput of fakes injected at its separation (other PAs) with its brightness.
    PCA's throughput depends on what else is in the cube (bright fakes, real companions are partly
    absorbed into the components), so it is measured twice: a first estimate with the companions in
    place, then again on the cube with every companion removed at its first-estimate flux.

    The fakes are as bright as the detection's *reduced* signal (its S/N times the noise), which
    is its flux times the throughput: close to the star (throughput ~0.15 at 3.5 FWHM) they are
    several times fainter than the companion, PCA absorbs them less, and the flux comes out low
    (~16 % at 14 px, docs/postprocessing.md). With ``fakes_at_flux`` (``l2-postprocess`` 1.6)
    more measurements follow those two, with the fakes at the current flux estimate, on the
    plane with every detection removed at its current estimate: each gives a new estimate, until
    it changes by less than its error (1 sigma: the fakes' spread over sqrt(``n_fakes``), in
    quadrature with the aperture noise ``flux / snr``) or after ``max_iterations`` of them. A
    detection whose estimate has settled keeps it (and the plane keeps it removed at that flux)
    while the others go on; one whose fakes at its flux have no positive throughput keeps its
    previous estimate (not converged). ``fake_flux_log`` (a list) receives one :class:`FakeFlux`
    per detection.
    """
    signals = [snr_at(image, d.x, d.y, fwhm).signal for d in detections]

    def throughputs(cube: np.ndarray, det: Detection, fake_flux: float | None = None) -> np.ndarray:
        return _local_throughput(
            cube,
            angles,
            psf,
            det,
            fwhm=fwhm,
            algorithm=algorithm,
            params=params,
            n_fakes=n_fakes,
            fake_flux=fake_flux,
        )

    first = []
    for det, signal in zip(detections, signals, strict=True):
        tp = float(np.mean(throughputs(plane, det)))
        first.append(signal / tp if tp > 0 else 0.0)
    # A memory-mapped or SPHERE-sized plane reduced by tiled PCA: the companions are subtracted as
    # the plane is read (same values as remove_companion's copy, which would be the whole plane).
    remove = _lazy_removal if lazy_injection(plane, algorithm) else remove_companion

    def without_detections(fluxes: list[float]) -> np.ndarray:
        clean = plane
        for det, flux in zip(detections, fluxes, strict=True):
            if flux > 0:
                clean = remove(clean, angles, psf, det.separation_px, det.pa_deg, flux)
        return clean

    def measured(tps: np.ndarray, signal: float) -> tuple[float, float]:
        tp = float(np.mean(tps))
        if not tp > 0:
            return math.nan, math.nan
        flux = signal / tp
        # The fakes' spread is the throughput's uncertainty at this separation (1 sigma of one position).
        return flux, abs(flux) * float(np.std(tps, ddof=1)) / tp

    clean = without_detections(first)
    results = [
        measured(throughputs(clean, det), signal) for det, signal in zip(detections, signals, strict=True)
    ]
    if fakes_at_flux:
        results, clean = _iterate_fake_flux(
            detections,
            signals,
            results,
            without_detections,
            throughputs,
            measured,
            n_fakes,
            max_iterations,
            fake_flux_log,
        )
    return results, clean if isinstance(clean, InjectedCube) else np.asarray(clean, dtype=np.float32)


def _iterate_fake_flux(
    detections: list[Detection],
    signals: list[float],
    results: list[tuple[float, float]],
    without_detections: Callable[[list[float]], np.ndarray],
    throughputs: Callable[..., np.ndarray],
    measured: Callable[[np.ndarray, float], tuple[float, float]],
    n_fakes: int,
    max_iterations: int,
    log: list[FakeFlux] | None,
) -> tuple[list[tuple[float, float]], np.ndarray]:
    """:func:`measure_detections`' measurements with the fakes at the flux estimate, from
    ``results`` (fakes at the detections' S/N on the cleaned plane)."""

    def positive(value: float) -> float:
        return value if np.isfinite(value) and value > 0 else 0.0

    results = list(results)
    n = len(detections)
    fake, count, converged = [math.nan] * n, [0] * n, [False] * n
    settled = [positive(f) == 0.0 for f, _ in results]  # no flux to inject: nothing to iterate
    for _ in range(max_iterations):
        if all(settled):
            break
        fluxes = [positive(f) for f, _ in results]
        clean = without_detections(fluxes)
        for i, (det, signal) in enumerate(zip(detections, signals, strict=True)):
            if settled[i]:
                continue
            count[i] += 1
            flux, spread = measured(throughputs(clean, det, fluxes[i]), signal)
            if positive(flux) == 0.0:  # no throughput at that brightness: the last estimate stays
                settled[i] = True
                continue
            results[i], fake[i] = (flux, spread), fluxes[i]
            # 1 sigma of the estimate: the mean throughput's uncertainty and the aperture noise
            noise = flux / det.snr if det.snr > 0 else math.inf
            error = math.hypot(spread / math.sqrt(n_fakes), noise) if np.isfinite(spread) else noise
            settled[i] = converged[i] = abs(flux - fluxes[i]) < error
    if log is not None:
        log.extend(FakeFlux(fake[i], count[i], converged[i]) for i in range(n))
    # the plane without the detections at their final estimates (what throughput and contrast use)
    return results, without_detections([positive(f) for f, _ in results])


def _lazy_removal(
    cube: np.ndarray | InjectedCube,
    angles: np.ndarray,
    psf: np.ndarray,
    separation: float,
    pa: float,
    flux: float,
) -> InjectedCube:
    """:func:`~hcdc.science.postprocessing.negfc.remove_companion` without the copy: the negative
    companion is added as the cube is read (:class:`InjectedCube`)."""
    return InjectedCube(cube, angles, psf, separation, pa, -flux)


#: fakes of one astrometry pass are at least this many FWHM apart along their circle
_FAKE_SPACING_FWHM = 3.0


def _fake_passes(separation: float, fwhm: float, n_fakes: int, pa0: float) -> list[np.ndarray]:
    """Position angles of ``n_fakes`` fakes between ``pa0`` and itself (never on it), split into
    passes whose fakes are >= 3 FWHM apart (close to the star one or two per pass)."""
    pas = (pa0 + 360.0 * (np.arange(n_fakes) + 0.5) / n_fakes) % 360.0
    arc = 2.0 * np.pi * separation / n_fakes  # px between neighbours
    stride = max(1, int(np.ceil(_FAKE_SPACING_FWHM * fwhm / arc))) if arc > 0 else n_fakes
    return [pas[start::stride] for start in range(min(stride, n_fakes))]


#: ``reduce(separation px, position angles deg, flux)``: the final image of the data with fakes
#: of ``flux`` (cube units, 1-FWHM aperture) injected at those positions and reduced as the data were
FakeReduction = Callable[[float, np.ndarray, float], np.ndarray]


def fake_astrometry(
    det: Detection, flux: float, reduce: FakeReduction, *, fwhm: float, n_fakes: int = 6
) -> tuple[float, float]:
    """1-sigma ``(separation error px, PA error deg)`` of ``det`` from ``n_fakes`` fakes of
    ``flux`` at its separation (other position angles) reduced by ``reduce``: the rms of
    (measured - injected), each fake measured as the detection was (the image maximum within
    1 FWHM, then a Gaussian fit). NaN for a flux that is not positive."""
    if not (np.isfinite(flux) and flux > 0):
        return math.nan, math.nan
    d_sep, d_pa = [], []
    for pas in _fake_passes(det.separation_px, fwhm, n_fakes, det.pa_deg):
        image = reduce(det.separation_px, pas, flux)
        for pa in pas:
            x0, y0 = geometry.polar_to_pixel(det.separation_px, float(pa), image.shape)
            # measured as the detection was, on the image with its speckles
            x, y = refine_position(image, round(x0), round(y0), fwhm, fwhm)
            sep, pa_found = geometry.pixel_to_polar(x, y, image.shape)
            d_sep.append(sep - det.separation_px)
            d_pa.append((pa_found - pa + 180.0) % 360.0 - 180.0)
    return float(np.sqrt(np.mean(np.square(d_sep)))), float(np.sqrt(np.mean(np.square(d_pa))))


def calibrated_flux(
    det: Detection,
    signal: float,
    reduce: FakeReduction,
    reference: np.ndarray,
    *,
    fwhm: float,
    n_fakes: int = 6,
) -> float:
    """The injected flux (cube units) whose fakes come out of ``reduce`` with the detection's
    background-subtracted aperture ``signal`` on the final image: fakes of flux ``signal`` on the
    first pass of :func:`fake_astrometry`'s positions, their mean throughput (aperture sum of the
    image minus the fake-free ``reference`` image, over ``signal``), and ``signal / throughput``.
    Used where no off-axis PSF measured the detection's throughput (its photometry is the raw
    aperture signal). NaN when the signal or the throughput is not positive."""
    if not (np.isfinite(signal) and signal > 0):
        return math.nan
    pas = _fake_passes(det.separation_px, fwhm, n_fakes, det.pa_deg)[0]
    image = reduce(det.separation_px, pas, signal)
    xy = [geometry.polar_to_pixel(det.separation_px, float(pa), image.shape) for pa in pas]
    xs, ys = np.array([p[0] for p in xy]), np.array([p[1] for p in xy])
    throughput = float(np.mean(aperture_sums(image - reference, xs, ys, fwhm / 2.0))) / signal
    return signal / throughput if throughput > 0 else math.nan


def measure_astrometry(
    detections: list[Detection],
    fluxes: list[float],
    clean: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    algorithm: str,
    params: Mapping[str, Any],
    n_fakes: int = 6,
) -> list[tuple[float, float]]:
    """1-sigma ``(separation error px, PA error deg)`` of each detection by fake injection (module
    docstring) on ``clean``, the (frames, y, x) plane with the detections removed, reduced by an
    ADI/RDI ``algorithm``; ``fluxes`` are their fluxes (cube units, 1-FWHM aperture). NaN for a
    detection without a positive flux."""
    reduce = adi_fake_reduction(clean, angles, psf, fwhm=fwhm, algorithm=algorithm, params=params)
    return [
        fake_astrometry(det, flux, reduce, fwhm=fwhm, n_fakes=n_fakes)
        for det, flux in zip(detections, fluxes, strict=True)
    ]


def adi_fake_reduction(
    plane: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    algorithm: str,
    params: Mapping[str, Any],
) -> FakeReduction:
    """:data:`FakeReduction` of an ADI/RDI algorithm on one (frames, y, x) plane."""
    from hcdc.science.postprocessing.throughput import run_algorithm

    params = dict(params)

    # Large or memory-mapped planes under tiled PCA: fakes added as the plane is read, no copy.
    inject = InjectedCube if lazy_injection(plane, algorithm) else inject_companions

    def reduce(separation: float, pas: np.ndarray, flux: float) -> np.ndarray:
        cube = inject(plane, angles, psf, separation, pas, flux)
        return run_algorithm(algorithm, cube, angles, fwhm=fwhm, cache=False, **params)

    return reduce


def spectral_fake_reduction(
    cube: np.ndarray,
    angles: np.ndarray,
    psf_stack: np.ndarray,
    *,
    spec: AlgorithmSpec,
    fwhms: list[float],
    wavelengths: np.ndarray,
    params: Mapping[str, Any],
) -> FakeReduction:
    """:data:`FakeReduction` of a spectral (SDI/ASDI) algorithm on the whole (wavelengths, frames,
    y, x) cube: each fake has ``flux`` in every wavelength (a flat spectrum in cube units, as the
    throughput fakes of :func:`~hcdc.science.postprocessing.spectral_throughput.spectral_throughput`),
    with that wavelength's PSF; returns the final (all-wavelength) image."""
    params = dict(params)
    fwhm_arg = np.asarray(fwhms) if len(fwhms) > 1 else fwhms[0]

    def reduce(separation: float, pas: np.ndarray, flux: float) -> np.ndarray:
        injected = inject_companions(cube, angles, psf_stack, separation, pas, flux)
        final, _ = spec.function(injected, angles, fwhm=fwhm_arg, wavelengths=wavelengths, **params)
        return np.asarray(final)

    return reduce


def combine_astrometry(
    det: Detection, errors: list[tuple[float, float]], pixel_scale_mas: float | None
) -> Detection:
    """``det`` with the astrometric errors of its planes: the rms over planes (not divided by
    sqrt(n): the planes' speckles are correlated, so averaging them is not assumed to help)."""
    seps = np.array([e for e, _ in errors], dtype=np.float64)
    pas = np.array([e for _, e in errors], dtype=np.float64)
    if not np.isfinite(seps).any():
        return det
    sep_err = float(np.sqrt(np.nanmean(seps**2)))
    return replace(
        det,
        separation_err_px=sep_err,
        separation_err_mas=_separation_mas(sep_err, pixel_scale_mas),
        pa_err_deg=float(np.sqrt(np.nanmean(pas**2))),
    )


def negfc_measure(
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
            replace(
                det,
                x=fit.x,
                y=fit.y,
                separation_px=fit.separation,
                pa_deg=fit.pa,
                separation_mas=_separation_mas(fit.separation, pixel_scale_mas),
                flux=fit.flux,
                contrast=fit.contrast,
                flux_err=fit.flux_err,
                contrast_err=fit.contrast_err,
                photometry="negfc",
                separation_err_px=fit.separation_err,
                separation_err_mas=_separation_mas(fit.separation_err, pixel_scale_mas),
                pa_err_deg=fit.pa_err,
            )
        )
    return out, np.asarray(plane, dtype=np.float32)


def combine_photometry(
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
    return replace(
        det,
        flux=flux,
        contrast=contrast,
        flux_err=flux_err,
        contrast_err=contrast_err,
        photometry="injection",
    )


def curve_photometry(
    det: Detection, image: np.ndarray, throughput: ThroughputCurve, fwhm: float, star_flux: float | None
) -> Detection:
    """Background-subtracted aperture signal divided by the throughput curve at the detection's
    separation (spectral algorithms: no per-detection injection, no companion removal)."""
    aperture_signal = snr_at(image, det.x, det.y, fwhm).signal
    tp = float(throughput.at(det.separation_px))
    flux = aperture_signal / tp if tp > 0 else math.nan
    contrast = flux / star_flux if star_flux and np.isfinite(flux) else math.nan
    return replace(det, flux=flux, contrast=contrast, photometry="curve")


def aperture_photometry(det: Detection, image: np.ndarray, fwhm: float) -> Detection:
    """Fallback when no throughput can be measured (no PSF): the raw 1-FWHM aperture signal, not
    corrected for self-subtraction, and no contrast."""
    return replace(det, flux=snr_at(image, det.x, det.y, fwhm).signal, photometry="aperture")
