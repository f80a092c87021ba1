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
separation), see :mod:`~hcdc.science.postprocessing.detection_photometry`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy import optimize

from hcdc.science import geometry
from hcdc.science.orientation import Orientation
from hcdc.science.postprocessing import pca
from hcdc.science.postprocessing.base import AlgorithmSpec, get_algorithm, is_memory_mapped
from hcdc.science.postprocessing.completeness import CompletenessCurve, completeness_curve
from hcdc.science.postprocessing.contrast import (
    MIN_THROUGHPUT,
    ContrastCurve,
    contrast_curve,
    image_contrast_curve,
)
from hcdc.science.postprocessing.detection import (
    GAUSSIAN_5SIGMA_FPF,
    empty_pixels,
    temporal_std,
    valid_detection_area,
)
from hcdc.science.postprocessing.detection_photometry import (
    PHOTOMETRY_FAKES,
    FakeFlux,
    adi_fake_reduction,
    aperture_photometry,
    calibrated_flux,
    combine_astrometry,
    combine_photometry,
    curve_photometry,
    fake_astrometry,
    find_candidates,
    measure_astrometry,
    measure_detections,
    negfc_measure,
    spectral_fake_reduction,
)
from hcdc.science.postprocessing.fakes import InjectedCube
from hcdc.science.postprocessing.negfc import remove_companion
from hcdc.science.postprocessing.null_threshold import (
    EmpiricalThreshold,
    calibrate_threshold,
    inverted_angles,
    without_rings,
)
from hcdc.science.postprocessing.photometry import aperture_sums, gaussian_psf, normalize_psf
from hcdc.science.postprocessing.products import ContrastCurves, Detection, PostprocessResult
from hcdc.science.postprocessing.sanity import check_positive, contrast_warnings, star_flux_warning
from hcdc.science.postprocessing.search_threshold import search_threshold
from hcdc.science.postprocessing.snr import snr_at, snr_map
from hcdc.science.postprocessing.spectral_lobes import spectral_residuals
from hcdc.science.postprocessing.spectral_throughput import (
    common_psf_stack,
    spectral_limit_throughput,
    spectral_throughput,
)
from hcdc.science.postprocessing.throughput import (
    ThroughputCurve,
    default_separations,
    lazy_injection,
    run_algorithm,
    throughput_curve,
)

__all__ = [
    "DEFAULT_FC_SNR",
    "FIXED_FC_SNR",
    "ProgressCallback",
    "crop_slices",
    "estimate_fwhm",
    "prepare_psfs",
    "spectral_empty_pixels",
    "postprocess",
    "star_flux_from_psf",
]

#: progress(stage, done, total): called as work advances (the CLI turns it into progress bars).
ProgressCallback = Callable[[str, int, int], None]

#: Brightness of throughput fakes in units of the aperture noise at their separation; None: fakes at
#: the contrast being reported (``contrast.limit_throughput``), so that the curve means what it says.
DEFAULT_FC_SNR: float | None = None
#: Brightness (noise units) of the throughput fakes when no contrast curve is computed (and of
#: spectral algorithms without a star flux per wavelength): fixed, not at the limit
#: (see docs/postprocessing.md).
FIXED_FC_SNR = 10.0

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


def spectral_empty_pixels(cube: np.ndarray, majority: bool = True) -> np.ndarray:
    """Pixels of a spectral cube (wavelengths, frames, y, x) that hold no data (detection area).

    With up to 2 wavelengths (IRDIS DBI) a pixel empty in any channel
    (:func:`~hcdc.science.postprocessing.detection.empty_pixels`) is empty. With more (IFS, 39
    channels) a pixel is empty when it is empty in more than half of them: zones outside the
    detector or the lenslet field are empty in every channel, while a short sequence's noisy
    temporal deviation leaves, by chance, a low 3x3 patch in one channel or another (on the 4-frame
    'small' IFS simulation, one channel out of 39 had one at 24 px, which took the whole 20-27 px
    ring, and an injected companion in it, out of detection). ``majority=False``: empty in any
    channel whatever their number (``l2-postprocess`` before 1.3).
    """
    counts = np.zeros(cube.shape[-2:], dtype=np.int32)
    for w in range(cube.shape[0]):
        counts += empty_pixels(temporal_std(cube[w]))
    return counts > (cube.shape[0] // 2 if majority and cube.shape[0] > 2 else 0)


def prepare_psfs(
    psf: np.ndarray, n_wl: int, fwhm: float | np.ndarray | None = None
) -> tuple[list[np.ndarray], list[float], list[float]]:
    """Per wavelength, as :func:`postprocess` prepares them: the PSF normalised to unit
    1-FWHM-aperture flux (odd square centred on its peak), its FWHM (px; measured when ``fwhm`` is
    None) and its own 1-FWHM-aperture flux (the star flux of contrasts)."""
    normalised, fwhms, fluxes = _prepare_psfs(psf, n_wl, _per_wavelength(fwhm, n_wl, "fwhm"))
    return normalised, fwhms, fluxes  # type: ignore[return-value]


def _plane(cube: np.ndarray, w: int | None, crop: tuple[slice, slice]) -> np.ndarray:
    """One (frames, y, x) plane, cropped, as native float32 (the only full-resolution copy made).

    A memory-mapped floating-point plane that is not cropped and is large enough for the tiled
    PCA route (above :data:`~hcdc.science.postprocessing.pca.TILED_ELEMENTS` elements) is passed
    through as it is, big-endian FITS data included: the tiled PCA and its throughput fakes
    (:class:`~hcdc.science.postprocessing.fakes.InjectedCube`) read it block by block, so the
    command stays memory-bounded. Smaller planes are copied (the in-memory routes are faster and
    the copy is small), so their results do not change."""
    plane = cube[w] if w is not None else cube
    whole = all(s.start == 0 and s.stop == n for s, n in zip(crop, plane.shape[-2:], strict=True))
    if whole and plane.dtype.kind == "f" and plane.size > pca.TILED_ELEMENTS and is_memory_mapped(plane):
        return plane
    return np.ascontiguousarray(plane[:, crop[0], crop[1]], dtype=np.float32)


def _divide_by_throughput(image: np.ndarray, throughput_map: np.ndarray, floor: float = 0.05) -> np.ndarray:
    """``image / throughput`` where the throughput is at least ``floor`` (NaN elsewhere)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(throughput_map >= floor, image / throughput_map, np.nan).astype(np.float32)


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
    astrometric_errors: bool | str = True,
    spectral_empty_majority: bool = True,
    contrast_options: Mapping[str, Any] | None = None,
    image_unit: str = "",
    inputs: Mapping[str, str | None] | None = None,
    progress: ProgressCallback | None = None,
    orientation: Orientation | None = None,
    completeness: float | None = None,
    completeness_options: Mapping[str, Any] | None = None,
    drop_spectral_residuals: bool = False,
    aperture_noise_errors: bool = False,
    null_threshold: bool = False,
    photometry_fakes_at_flux: bool = False,
    false_alarms_per_image: float | None = None,
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
      (default: the Gaussian 5-sigma tail, 2.87e-7), one per source (S/N maxima merged on the
      image, ADI side lobes of brighter ones dropped), and only at separations whose whole S/N
      ring holds data in every frame (zero-filled zones are found by their low temporal noise:
      :func:`~hcdc.science.postprocessing.detection.valid_detection_area`; the S/N map itself
      is not masked; with more than 2 wavelengths a pixel is out only when empty in most channels,
      ``spectral_empty_majority=False``: in any, as ``l2-postprocess`` before 1.3,
      :func:`spectral_empty_pixels`). Their flux is measured by injection-recovery
      (see :mod:`~hcdc.science.postprocessing.detection_photometry`), or with ``negfc=True`` by
      negative-fake-companion fits (single-wavelength cubes; PCA inside, with the reduction's ``ncomp``).
      With ``astrometric_errors=True`` (default) each detection also gets its 1-sigma separation
      and PA errors, measured by injecting fakes like it and reducing them as the data were
      (:func:`~hcdc.science.postprocessing.detection_photometry.fake_astrometry`): for ADI/RDI
      algorithms on the plane with the detections removed, for spectral algorithms in every
      wavelength of the whole cube (flat spectrum at the detection's flux), and without a PSF
      with a Gaussian of the FWHM as the fakes' PSF, at the flux whose reduced fakes have the
      detection's aperture signal (:func:`~.detection_photometry.calibrated_flux`); the product
      says which PSF (``result.astrometric_error_psf``, card ``ASTERPSF``).
      ``"adi-psf"`` measures them only for ADI/RDI algorithms with a PSF, without saying so
      (``l2-postprocess`` 1.2); ``False`` not at all (``l2-postprocess`` 1.1).
      With ``drop_spectral_residuals=True`` (``l2-postprocess`` 1.4) a spectral algorithm's
      candidates that are a brighter one's own radial spectral residual
      (:func:`~hcdc.science.postprocessing.spectral_lobes.spectral_residuals`, on the final image,
      with the sequence's field rotation and ``max / min`` of the wavelengths) are left out before
      any measurement and listed in ``result.spectral_residuals`` (the summary's
      ``spectral_residuals``, the DETECTIONS header's ``SPECRES`` cards); without it (default,
      before 1.4) and for ADI/RDI algorithms that list is None.
      A detection's ``flux_err``/``contrast_err`` are the spread (1 sigma) of the throughput of
      the fakes injected for it (``'injection'`` photometry; none for ``'curve'``); with
      ``aperture_noise_errors=True`` (``l2-postprocess`` 1.4) they are the detection's aperture
      noise (``flux / snr``: the Mawet noise, with its small-sample factor, over the throughput)
      in quadrature with the uncertainty of the fakes' mean throughput (spread / sqrt(fakes))
      (:func:`_with_aperture_noise`; not for ``'negfc'``, whose fit errors come from injection
      trials in the data's noise, nor ``'aperture'``, which has no contrast); the result says so
      (``result.photometric_errors``, card ``PHOTERR``).
    * ``null_threshold=True`` (``l2-postprocess`` 1.5; not with a fixed ``detection_threshold``):
      the detection threshold is calibrated on the data
      (:mod:`~hcdc.science.postprocessing.null_threshold`): the cube is reduced a second time
      with inverted angles (a companion is smeared, the speckle residuals keep their statistics:
      Pairet et al. 2019's inverse STIM map), the tail of that null S/N map gives the factor
      ``k >= 1`` by which the Student threshold of ``detection_fpf`` (per resolution element) is
      raised, and detections, their ``fpf`` and, by default, the contrast curve (its fakes aim at
      that threshold; ``result.contrast.threshold``) use it (``result.detection_null``). Costs one
      more reduction and S/N map. The completeness curve's detection uses it too.
    * ``false_alarms_per_image`` (e.g. 0.01; not with a fixed ``detection_threshold``): the
      detection threshold is the Student threshold of the per-pixel false-positive fraction at
      which this many false S/N peaks per image are expected for a Gaussian-noise S/N map as rough
      as this one, searched at every pixel as detection searches it
      (:mod:`~hcdc.science.postprocessing.search_threshold`: random-field theory; ``detection_fpf``
      is then not used); detections, their ``fpf`` and by default the contrast curve use it
      (``result.detection_search``). With ``null_threshold`` the null map's tail is calibrated at
      that false-positive fraction (the two compose: the search sets the ``fpf``, the null map
      the tail's factor).
    * ``photometry_fakes_at_flux=True`` (``l2-postprocess`` 1.6): the fakes that measure a
      detection's throughput (``'injection'`` photometry) are injected at its current flux
      estimate, iterated until the estimate changes by less than its error (at most
      :data:`~.detection_photometry.FAKE_FLUX_ITERATIONS` measurements), instead of at its S/N
      times the noise, several times fainter than the companion close to the star, which PCA
      absorbs less: ~16 % low photometry at 3.5 FWHM before
      (:func:`~.detection_photometry.measure_detections`). The flux of the last fakes, the number
      of measurements and whether they converged are in ``result.photometry_fakes``.
    * ``contrast_options``: passed to :func:`hcdc.science.postprocessing.contrast.contrast_curve`
      (``criterion``, ``sigma`` or ``fpf``, ``nbranch``, ``fc_snr``, ``step``, ...); the
      throughput map of the corrected image is the same measurement (computed once, reused). By
      default the curve is the limit of this call's own detection (its ``detection_fpf``), with
      throughput fakes at that limit (``fc_snr=None``, :data:`DEFAULT_FC_SNR`); for spectral
      algorithms that limit is the final image's, for a companion of flat contrast, reported in
      every wavelength's row; with the option ``per_wavelength=True`` each wavelength's row is
      instead that wavelength's own limit (the noise of its image, the throughput of the same
      fakes in it, its star flux: the contrast of a companion seen in that channel alone; IFS
      Level 2). The throughput map when no curve is computed (and spectral
      algorithms without a star flux per wavelength) uses fakes at :data:`FIXED_FC_SNR` x the noise.
    * ``completeness`` (e.g. 0.95): also measure the completeness curve, the contrast at which
      this fraction of fakes is recovered by this call's detection at the contrast curve's
      false-positive fraction (:func:`~hcdc.science.postprocessing.completeness.completeness_curve`,
      Jensen-Clem et al. 2018), per wavelength, on the cube with the companions removed, starting
      from the contrast curve; ``completeness_options`` go to that function (``n_fakes``,
      ``ladder``, ``max_levels``, ``separations``, ...). ADI/RDI algorithms with a PSF and
      contrast curves only; costs about ``n_fakes`` (default 20) x levels reductions.
    * ``progress(stage, done, total)``: progress callback.
    * ``orientation``: how the final image sits on the sky (:mod:`hcdc.science.orientation`);
      default: not known, position angles relative to the detector.

    Every numeric parameter is checked before any work (``ValueError`` naming it). Warnings for
    people go to ``result.warnings``: a star flux that cannot be in the cube's units (then no
    contrast is reported: :func:`~hcdc.science.postprocessing.sanity.star_flux_warning`) and
    contrasts above 1.

    Throughput and contrast curves are measured on the cube with the detected companions removed
    (VIP/SpeCal practice), per wavelength. The final image is the mean of the per-wavelength
    images; the throughput-corrected image divides each wavelength's image by its throughput map
    first. Spectral algorithms (SDI/ASDI) get the same outputs from fakes injected in every
    wavelength and reduced by the same algorithm
    (:mod:`~hcdc.science.postprocessing.spectral_throughput`); their
    detections are corrected with the final image's throughput curve (``photometry='curve'``) and
    the cube is not cleaned of them first. Without a PSF there is no throughput: detections carry
    the raw aperture signal.
    """
    contrast_options = dict(contrast_options or {})
    per_wavelength = contrast_options.pop("per_wavelength", False)
    if not isinstance(per_wavelength, bool):
        raise ValueError(f"contrast option per_wavelength must be true or false; got {per_wavelength!r}")
    _check_numbers(pixel_scale_mas, fwhm, star_flux, detection_threshold, detection_fpf, contrast_options)
    if astrometric_errors not in _ASTROMETRIC_ERROR_MODES:
        raise ValueError(f"astrometric_errors must be True, False or 'adi-psf'; got {astrometric_errors!r}")
    everywhere = astrometric_errors is True
    if false_alarms_per_image is not None and not 0 < false_alarms_per_image < 100:
        raise ValueError(f"false_alarms_per_image must be in (0, 100); got {false_alarms_per_image}")
    _check_completeness(completeness, completeness_options, algorithm, psf, compute_contrast)
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
    warnings_out = _star_flux_check(plan, image_unit, star_flux is None)
    own_limit = detection_threshold is None and not {"sigma", "fpf"} & set(plan.contrast_options)
    if own_limit:
        # The contrast curve is the limit of this call's own detection criterion.
        plan.contrast_options["fpf"] = fpf

    images, final, kept, full, empty = _first_pass(
        plan, progress, keep_full=everywhere, empty_majority=spectral_empty_majority
    )

    fwhm_final = float(np.mean(plan.fwhms))
    snr = snr_map(
        final, fwhm_final, progress=lambda done, total: _report(progress, "S/N map", done, total)
    ).astype(np.float32)
    valid = valid_detection_area(empty, fwhm_final)
    profile = search = None
    if false_alarms_per_image is not None and detection_threshold is None:
        search = search_threshold(snr, fwhm_final, false_alarms_per_image, valid=valid)
        fpf = search.fpf
        profile = search
        if own_limit:
            plan.contrast_options["fpf"] = fpf
    if null_threshold and detection_threshold is None:
        # Candidates at the Student threshold: their rings stay out of the null fit (a companion's
        # light smeared by the inverted angles is still there).
        student = find_candidates(
            snr, final, fwhm=fwhm_final, threshold=None, fpf=fpf, pixel_scale_mas=None, valid=valid
        )
        null_valid = without_rings(valid, [c.separation_px for c in student], fwhm_final)
        profile = _null_threshold(plan, full, fpf, null_valid, progress)
    if (
        profile is not None
        and own_limit
        and plan.contrast_options.get("criterion", "detection") == "detection"
    ):
        plan.contrast_options["profile"] = profile
    candidates = find_candidates(
        snr,
        final,
        fwhm=fwhm_final,
        threshold=detection_threshold,
        fpf=fpf,
        pixel_scale_mas=pixel_scale_mas,
        valid=valid,
        rotation=float(np.ptp(plan.angles)),
        profile=profile,
    )
    residuals = None
    if drop_spectral_residuals and plan.spec.spectral:
        candidates, residuals = _without_spectral_residuals(plan, candidates, final, fwhm_final)

    if plan.psfs[0] is None or plan.spec.spectral:
        if plan.psfs[0] is None:
            measured = _Measured(detections=[aperture_photometry(c, final, fwhm_final) for c in candidates])
        else:
            measured = _spectral_pass(
                plan, full, images, final, candidates, compute_contrast, progress, per_wavelength
            )
        if everywhere and candidates:
            _report(progress, "astrometric errors", 0, 1)
            measured.detections = (
                _spectral_astrometry(plan, full, final, measured.detections, pixel_scale_mas)
                if plan.spec.spectral
                else _psfless_adi_astrometry(plan, images, kept, measured.detections, pixel_scale_mas)
            )
            _report(progress, "astrometric errors", 1, 1)
    else:
        measured = _adi_pass(
            plan,
            images,
            kept,
            candidates,
            compute_contrast,
            negfc,
            pixel_scale_mas,
            progress,
            bool(astrometric_errors),
            (completeness, dict(completeness_options or {})) if completeness is not None else None,
            photometry_fakes_at_flux,
        )
    del full, kept
    if aperture_noise_errors:
        measured.detections = [_with_aperture_noise(d) for d in measured.detections]

    present_flux = [s for s in plan.star_fluxes if s]
    curves = _merge_curves(
        measured.curves,
        student=bool(plan.contrast_options.get("student", True)),
        # Spectral algorithms' fakes are of fixed brightness (FIXED_FC_SNR) unless at the limit.
        fc_snr=(
            plan.fixed_throughput_options
            if plan.spec.spectral and not _spectral_at_limit(plan, compute_contrast)
            else plan.contrast_options
        ).get("fc_snr"),
        completeness=measured.completeness,
        per_wavelength=per_wavelength and plan.spec.spectral,
    )
    warnings_out += contrast_warnings(
        [d.contrast for d in measured.detections],
        None if curves is None else curves.separation_px,
        None if curves is None else curves.contrast,
    )
    # incremental_fakes kept the plane's statistics and a reference to it (a memory-mapped file
    # would stay mapped, its disk space held if deleted): no longer needed.
    pca.clear_statistics()
    return PostprocessResult(
        image=final,
        algorithm=algorithm,
        params=plan.params,
        image_throughput_corrected=measured.final_tc,
        cube=images if plan.spectral_input else None,
        wavelengths=plan.wavelengths,
        snr_map=snr,
        contrast=curves,
        detections=measured.detections,
        throughput_map=_mean_map(measured.throughput_maps),
        image_unit=image_unit,
        pixel_scale_mas=pixel_scale_mas,
        fwhm=fwhm_final,
        star_flux=float(np.mean(present_flux)) if present_flux else None,
        detection_threshold=detection_threshold,
        detection_fpf=None if detection_threshold is not None else fpf,
        inputs=dict(inputs or {}),
        orientation=orientation if orientation is not None else Orientation(),
        warnings=warnings_out,
        astrometric_error_psf=(
            ("OFF-AXIS" if plan.psfs[0] is not None else "GAUSSIAN") if everywhere else None
        ),
        spectral_residuals=residuals,
        photometric_errors="APERTURE+THROUGHPUT" if aperture_noise_errors else None,
        detection_null=profile if isinstance(profile, EmpiricalThreshold) else None,
        detection_search=search,
        photometry_fakes=measured.photometry_fakes,
    )


def _null_threshold(
    plan: _Plan, full: np.ndarray | None, fpf: float, valid: np.ndarray, progress: ProgressCallback | None
) -> EmpiricalThreshold:
    """The detection threshold calibrated on the inverted-angle reduction's S/N map
    (:func:`~hcdc.science.postprocessing.null_threshold.calibrate_threshold`), reduced as
    :func:`_first_pass` reduces the data (per wavelength plane and averaged, or the whole cube of
    a spectral algorithm)."""
    _report(progress, "null map", 0, 1)
    angles = inverted_angles(plan.angles)
    fwhm_final = float(np.mean(plan.fwhms))
    if plan.spec.spectral:
        cube = full if full is not None else _spectral_cube(plan)
        fwhm_arg = np.asarray(plan.fwhms) if plan.n_wl > 1 else plan.fwhms[0]
        null, _ = plan.spec.function(cube, angles, fwhm=fwhm_arg, wavelengths=plan.wavelengths, **plan.params)
        null = np.asarray(null, dtype=np.float64)
    else:
        null = np.zeros(plan.shape)
        for w in range(plan.n_wl):
            plane, run_params = plan.plane_and_params(w)
            null += run_algorithm(plan.spec.name, plane, angles, fwhm=plan.fwhms[w], **run_params)
        null /= plan.n_wl
    profile = calibrate_threshold(snr_map(null, fwhm_final), fwhm_final, fpf=fpf, valid=valid)
    _report(progress, "null map", 1, 1)
    return profile


def _spectral_cube(plan: _Plan) -> np.ndarray:
    """The whole cropped cube of a spectral algorithm (float32), as :func:`_first_pass` reads it."""
    return np.ascontiguousarray(plan.cube[:, :, plan.crop[0], plan.crop[1]], dtype=np.float32)


def _without_spectral_residuals(
    plan: _Plan, candidates: list[Detection], final: np.ndarray, fwhm: float
) -> tuple[list[Detection], list[dict[str, float]]]:
    """``candidates`` less those that are a brighter one's spectral residual
    (:func:`~hcdc.science.postprocessing.spectral_lobes.spectral_residuals`), and those left out
    (position, S/N, and the position of the one they are the residual of)."""
    if not candidates or plan.wavelengths is None:
        return candidates, []
    flagged = spectral_residuals(
        candidates,
        final,
        fwhm=fwhm,
        rotation_deg=float(np.ptp(plan.angles)),
        wavelength_span=float(np.max(plan.wavelengths) / np.min(plan.wavelengths)),
    )
    left_out = [
        {
            "x": float(candidates[i].x),
            "y": float(candidates[i].y),
            "separation_px": float(candidates[i].separation_px),
            "separation_mas": _none_if_nan(candidates[i].separation_mas),
            "pa_deg": float(candidates[i].pa_deg),
            "snr": float(candidates[i].snr),
            "of_separation_px": float(candidates[parent].separation_px),
            "of_pa_deg": float(candidates[parent].pa_deg),
            "of_snr": float(candidates[parent].snr),
        }
        for i, parent in sorted(flagged.items())
    ]
    return [c for i, c in enumerate(candidates) if i not in flagged], left_out


def _with_aperture_noise(det: Detection) -> Detection:
    """``det`` with 1.4's photometric errors (``flux_err``, ``contrast_err``, 1 sigma):
    ``sqrt((spread / sqrt(n))**2 + (value / snr)**2)``.

    * ``value / snr``: the detection's own aperture noise over the throughput, like its flux
      (``snr`` is its Mawet S/N, whose noise holds the small-sample factor ``sqrt(1 + 1/n_ring)``);
    * ``spread / sqrt(n)``: the uncertainty of the mean throughput of the ``n``
      (:data:`~.detection_photometry.PHOTOMETRY_FAKES`) fakes injected for it. ``spread`` (the
      error before 1.4) is the scatter of one fake, i.e. of one aperture in the same noise at the
      same brightness: on its own it already stood for the detection's aperture noise, and added
      whole to ``value / snr`` it would count that noise twice (measured: pulls rms 0.70 instead
      of 1.05 where the photometry is unbiased, docs/postprocessing.md).

    A spread that is not known (NaN: ``'curve'`` photometry, whose throughput curve's own
    uncertainty is not measured) counts as 0. ``'negfc'`` and ``'aperture'`` photometry and
    detections without a positive S/N are returned as they are."""
    if det.photometry in ("negfc", "aperture") or not (math.isfinite(det.snr) and det.snr > 0):
        return det
    n = PHOTOMETRY_FAKES if det.photometry == "injection" else 1

    def total(value: float, spread: float) -> float:
        if not math.isfinite(value):
            return spread
        spread = spread / math.sqrt(n) if math.isfinite(spread) else 0.0
        return math.hypot(spread, abs(value) / det.snr)

    return replace(
        det, flux_err=total(det.flux, det.flux_err), contrast_err=total(det.contrast, det.contrast_err)
    )


def _none_if_nan(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def _check_numbers(
    pixel_scale_mas: float | None,
    fwhm: Any,
    star_flux: Any,
    detection_threshold: float | None,
    detection_fpf: float | None,
    contrast_options: Mapping[str, Any] | None,
) -> None:
    """Reject non-positive or non-finite numeric parameters before any work is done."""
    options = dict(contrast_options or {})
    check_positive(
        {
            "pixel scale (mas/px)": pixel_scale_mas,
            "FWHM (px)": fwhm,
            "star flux": star_flux,
            "detection threshold (S/N)": detection_threshold,
            "false-positive fraction": detection_fpf,
            **{f"contrast option {key}": options.get(key) for key in _POSITIVE_OPTIONS},
        }
    )
    if detection_fpf is not None and not detection_fpf < 0.5:
        raise ValueError(f"false-positive fraction must be below 0.5; got {detection_fpf}")


def _check_completeness(
    level: float | None,
    options: Mapping[str, Any] | None,
    algorithm: str,
    psf: np.ndarray | None,
    compute_contrast: bool,
) -> None:
    """Reject a completeness request that cannot be honoured, before any work is done."""
    if level is None:
        if options:
            raise ValueError("completeness options given without a completeness level")
        return
    if not 0 < level < 1:
        raise ValueError(f"completeness must be a fraction in (0, 1), e.g. 0.95; got {level}")
    if get_algorithm(algorithm).spectral:
        raise ValueError(f"completeness curves are measured for ADI/RDI algorithms, not {algorithm!r}")
    if psf is None or not compute_contrast:
        raise ValueError("a completeness curve needs a PSF and the contrast curve (its starting point)")
    unknown = sorted(set(options or {}) - _COMPLETENESS_OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown completeness option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_COMPLETENESS_OPTIONS))}"
        )
    check_positive(
        {f"completeness option {key}": (options or {}).get(key) for key in ("n_fakes", "max_levels")}
    )


#: Options of :func:`completeness_curve` that postprocess() passes through.
_COMPLETENESS_OPTIONS = frozenset(
    {"n_fakes", "ladder", "max_levels", "separations", "fc_rad_sep", "match_radius", "pa"}
)

#: Contrast options that must be > 0 when given.
_POSITIVE_OPTIONS = ("sigma", "fc_snr", "throughput_step", "step", "nbranch")


def _star_flux_check(plan: _Plan, unit: str, from_psf: bool) -> list[str]:
    """Warn, and drop the star flux (no contrasts), where it cannot be in the cube's units.

    Compared with the mean of up to 10 evenly spaced frames of each wavelength plane (cheap on a
    memory-mapped cube): :func:`~hcdc.science.postprocessing.sanity.star_flux_warning`.
    """
    out = []
    n_frames = plan.cube.shape[-3]
    picks = np.unique(np.linspace(0, n_frames - 1, min(n_frames, 10)).round().astype(int))
    for w in range(plan.n_wl):
        star = plan.star_fluxes[w]
        if star is None:
            continue
        planes = plan.cube[w] if plan.spectral_input else plan.cube
        mean = np.mean(np.asarray(planes[picks][:, plan.crop[0], plan.crop[1]], dtype=np.float64), axis=0)
        source = "1-FWHM flux of the PSF" if from_psf else "given"
        text = star_flux_warning(mean, star, plan.fwhms[w], unit, source)
        if text is not None:
            out.append(text if plan.n_wl == 1 else f"wavelength plane {w}: {text}")
            plan.star_fluxes[w] = None
    return out


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

    @property
    def fixed_throughput_options(self) -> dict[str, Any]:
        """:attr:`throughput_options` with fakes of fixed brightness (default :data:`FIXED_FC_SNR`)."""
        return {**self.throughput_options, "fc_snr": self.contrast_options.get("fc_snr") or FIXED_FC_SNR}

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
    plan: _Plan,
    progress: ProgressCallback | None,
    keep_full: bool = False,
    empty_majority: bool = True,
) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, dict[str, Any]] | None, np.ndarray | None, np.ndarray]:
    """Run the algorithm: one wavelength plane at a time (ADI/RDI) or on the whole cropped cube
    (spectral). Returns per-wavelength images, the final image, the plane of a single-wavelength
    cube (kept for pass 2), the whole cropped cube of a spectral algorithm with a PSF or with
    ``keep_full`` (idem), and the pixels that hold no data in some plane (detector frame,
    :func:`empty_pixels`, for a spectral algorithm :func:`spectral_empty_pixels` with
    ``majority=empty_majority``; detections are kept out of the rings that cross them)."""
    n_wl = plan.n_wl
    images = np.empty((n_wl, *plan.shape), dtype=np.float32)
    empty = np.zeros(plan.shape, dtype=bool)
    _report(progress, "post-processing", 0, n_wl)
    if plan.spec.spectral:
        full = np.ascontiguousarray(plan.cube[:, :, plan.crop[0], plan.crop[1]], dtype=np.float32)
        fwhm_arg = np.asarray(plan.fwhms) if n_wl > 1 else plan.fwhms[0]
        final, per_wl = plan.spec.function(
            full, plan.angles, fwhm=fwhm_arg, wavelengths=plan.wavelengths, **plan.params
        )
        images[:] = np.asarray(per_wl, dtype=np.float32)
        empty = spectral_empty_pixels(full, majority=empty_majority)
        _report(progress, "post-processing", n_wl, n_wl)
        final = np.asarray(final, dtype=np.float32)
        return images, final, None, full if plan.psfs[0] is not None or keep_full else None, empty
    kept = None
    for w in range(n_wl):
        plane, run_params = plan.plane_and_params(w)
        images[w] = run_algorithm(plan.spec.name, plane, plan.angles, fwhm=plan.fwhms[w], **run_params)
        empty |= empty_pixels(temporal_std(plane))
        if n_wl == 1:
            kept = (plane, run_params)
        del plane
        _report(progress, "post-processing", w + 1, n_wl)
    final = images.mean(axis=0) if n_wl > 1 else images[0].copy()
    return images, final, kept, None, empty


@dataclass
class _Measured:
    """What pass 2 adds to the images: measured detections, throughput, contrast."""

    detections: list[Detection]
    final_tc: np.ndarray | None = None
    throughput_maps: list[np.ndarray] = field(default_factory=list)
    curves: list[Any] = field(default_factory=list)
    completeness: list[CompletenessCurve | None] = field(default_factory=list)
    #: with fakes at the flux estimate (1.6): per detection, how its photometry fakes were set
    photometry_fakes: list[dict[str, Any]] | None = None


def _without_astrometric_errors(det: Detection) -> Detection:
    return replace(det, separation_err_px=math.nan, separation_err_mas=math.nan, pa_err_deg=math.nan)


#: values of postprocess(astrometric_errors=...): everywhere, ADI/RDI with a PSF only (1.2), none (1.1)
_ASTROMETRIC_ERROR_MODES = (True, "adi-psf", False)


def _psfless_adi_astrometry(
    plan: _Plan,
    images: np.ndarray,
    kept: tuple[np.ndarray, dict[str, Any]] | None,
    detections: list[Detection],
    pixel_scale_mas: float | None,
) -> list[Detection]:
    """Astrometric errors of an ADI/RDI reduction without a PSF, per wavelength plane: fakes of a
    Gaussian of the plane's FWHM (:func:`~.photometry.gaussian_psf`, unit 1-FWHM aperture flux),
    at the flux whose reduced fakes have the detection's aperture signal
    (:func:`~.detection_photometry.calibrated_flux`), injected into the plane with the detections
    removed (the same model at that flux); the planes' errors combined as with a PSF."""
    errors: list[list[tuple[float, float]]] = [[] for _ in detections]
    for w in range(plan.n_wl):
        plane, run_params = kept if kept is not None else plan.plane_and_params(w)
        fwhm = plan.fwhms[w]
        psf = gaussian_psf(fwhm)
        reduction = {"fwhm": fwhm, "algorithm": plan.spec.name, "params": run_params}
        reduce = adi_fake_reduction(plane, plan.angles, psf, **reduction)
        fluxes = [
            calibrated_flux(d, snr_at(images[w], d.x, d.y, fwhm).signal, reduce, images[w], fwhm=fwhm)
            for d in detections
        ]
        clean = plane
        # tiled PCA of a large plane: companions subtracted as it is read (no copy of the plane)
        lazy = lazy_injection(plane, plan.spec.name)
        for det, flux in zip(detections, fluxes, strict=True):
            if np.isfinite(flux) and flux > 0:
                remove = InjectedCube if lazy else remove_companion
                clean = remove(
                    clean, plan.angles, psf, det.separation_px, det.pa_deg, -flux if lazy else flux
                )
        if not lazy:
            clean = np.asarray(clean, dtype=np.float32)
        reduce = adi_fake_reduction(clean, plan.angles, psf, **reduction)
        for i, (det, flux) in enumerate(zip(detections, fluxes, strict=True)):
            errors[i].append(fake_astrometry(det, flux, reduce, fwhm=fwhm))
        del plane, clean
    return [combine_astrometry(d, e, pixel_scale_mas) for d, e in zip(detections, errors, strict=True)]


def _spectral_astrometry(
    plan: _Plan,
    full: np.ndarray | None,
    final: np.ndarray,
    detections: list[Detection],
    pixel_scale_mas: float | None,
) -> list[Detection]:
    """Astrometric errors of a spectral (SDI/ASDI) reduction: fakes in every wavelength of the
    whole cube (flat spectrum), reduced by the same algorithm and measured on the final image.
    With a PSF the fakes have the detection's (throughput-corrected) flux; without one they are
    Gaussians of each wavelength's FWHM at the flux whose reduced fakes have the detection's
    aperture signal (:func:`~.detection_photometry.calibrated_flux`). The cube is not cleaned of
    the detections (as for the spectral throughput)."""
    if full is None:
        raise AssertionError("the spectral cube was not kept for the astrometric errors")
    fwhm_final = float(np.mean(plan.fwhms))
    psfless = plan.psfs[0] is None
    if psfless:
        size = int(2 * np.ceil(2.5 * max(plan.fwhms)) + 1)
        stack = np.stack([gaussian_psf(f, size) for f in plan.fwhms])
    else:
        stack = common_psf_stack(plan.psfs)
    reduce = spectral_fake_reduction(
        full,
        plan.angles,
        stack,
        spec=plan.spec,
        fwhms=plan.fwhms,
        wavelengths=plan.wavelengths,
        params=plan.params,
    )
    out = []
    for det in detections:
        flux = calibrated_flux(det, det.flux, reduce, final, fwhm=fwhm_final) if psfless else det.flux
        errors = fake_astrometry(det, flux, reduce, fwhm=fwhm_final)
        out.append(combine_astrometry(det, [errors], pixel_scale_mas))
    return out


def _adi_pass(
    plan: _Plan,
    images: np.ndarray,
    kept: tuple[np.ndarray, dict[str, Any]] | None,
    candidates: list[Detection],
    compute_contrast: bool,
    negfc: bool,
    pixel_scale_mas: float | None,
    progress: ProgressCallback | None,
    astrometric_errors: bool = True,
    completeness: tuple[float, dict[str, Any]] | None = None,
    fakes_at_flux: bool = False,
) -> _Measured:
    """Per wavelength plane: photometry of the detections and their removal, then one throughput
    measurement (the contrast curve's own) for the corrected image and the contrast curve, and
    the completeness curve (from the contrast curve) when ``completeness`` = (level, options)."""
    n_wl = plan.n_wl
    complete: list[CompletenessCurve | None] = [None] * n_wl
    corrected = np.full((n_wl, *plan.shape), np.nan, dtype=np.float32)
    maps: list[np.ndarray] = []
    curves: list[Any] = [None] * n_wl
    fluxes: list[list[tuple[float, float]]] = [[] for _ in candidates]
    astrometry: list[list[tuple[float, float]]] = [[] for _ in candidates]
    refined: list[Detection] | None = None
    fake_fluxes: list[list[FakeFlux]] = [[] for _ in candidates]
    for w in range(n_wl):
        _report(progress, "throughput and contrast", w, n_wl)
        plane, run_params = kept if kept is not None else plan.plane_and_params(w)
        psf, fwhm, star = plan.psfs[w], plan.fwhms[w], plan.star_fluxes[w]
        # How this plane is reduced: every throughput measurement below runs the same reduction.
        reduction = {"fwhm": fwhm, "algorithm": plan.spec.name, "params": run_params}
        clean = plane
        if candidates:
            log: list[FakeFlux] = []
            measured, clean = measure_detections(
                candidates,
                images[w],
                plane,
                plan.angles,
                psf,
                **reduction,
                **({"fakes_at_flux": True, "fake_flux_log": log} if fakes_at_flux else {}),
            )
            for i, value in enumerate(measured):
                fluxes[i].append(value)
            for i, value in enumerate(log):
                fake_fluxes[i].append(value)
            if astrometric_errors:
                errors = measure_astrometry(
                    candidates, [f for f, _ in measured], clean, plan.angles, psf, **reduction
                )
                for i, value in enumerate(errors):
                    astrometry[i].append(value)
        if negfc and n_wl == 1 and candidates:
            ncomp = plan.params.get("ncomp", 10)
            refined, clean = negfc_measure(
                [
                    combine_astrometry(combine_photometry(c, f, plan.star_fluxes), a, pixel_scale_mas)
                    for c, f, a in zip(candidates, fluxes, astrometry, strict=True)
                ],
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
                clean, plan.angles, psf, star_flux=star, **reduction, **plan.contrast_options
            )
            tp = curves[w].throughput_curve
            if completeness is not None:
                level, options = completeness
                complete[w] = completeness_curve(
                    clean,
                    plan.angles,
                    psf,
                    fwhm=fwhm,
                    star_flux=star,
                    algorithm=plan.spec.name,
                    params=run_params,
                    completeness=level,
                    fpf=curves[w].fpf,
                    start=curves[w],
                    profile=plan.contrast_options.get("profile"),
                    **options,
                )
        else:
            # No curve: the throughput map alone, from fakes of fixed brightness (the limit needs
            # many more reductions and would only serve the map).
            tp = throughput_curve(
                clean,
                plan.angles,
                psf,
                separations=plan.throughput_separations(fwhm),
                **reduction,
                **plan.fixed_throughput_options,
            )
        maps.append(tp.map(plan.shape).astype(np.float32))
        corrected[w] = tp.correct(images[w])
        del plane, clean
        _report(progress, "throughput and contrast", w + 1, n_wl)
    if refined is not None:
        # the NEGFC fit measures position errors from its own trials: dropped when not asked for
        detections = refined if astrometric_errors else [_without_astrometric_errors(d) for d in refined]
    else:
        detections = [
            combine_astrometry(combine_photometry(c, f, plan.star_fluxes), a, pixel_scale_mas)
            for c, f, a in zip(candidates, fluxes, astrometry, strict=True)
        ]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels (no throughput) stay NaN
        final_tc = np.nanmean(corrected, axis=0) if n_wl > 1 else corrected[0]
    record = [_fake_flux_record(f) for f in fake_fluxes] if fakes_at_flux else None
    return _Measured(detections, final_tc, maps, curves, complete, record)


def _fake_flux_record(planes: list[FakeFlux]) -> dict[str, Any]:
    """How one detection's photometry fakes were set (1.6), over its wavelength planes: the mean
    flux of the last fakes (cube units, as ``Detection.flux``), the most measurements at the flux
    estimate, and whether every plane's estimate settled within its error."""
    fluxes = [f.flux for f in planes if math.isfinite(f.flux)]
    return {
        "fake_flux": float(np.mean(fluxes)) if fluxes else math.nan,
        "iterations": max((f.iterations for f in planes), default=0),
        "converged": bool(planes) and all(f.converged for f in planes),
    }


def _spectral_at_limit(plan: _Plan, compute_contrast: bool) -> bool:
    """Whether a spectral algorithm's throughput fakes sit at the contrast being reported (a
    curve is wanted, every wavelength has a star flux and ``fc_snr`` does not fix the fakes)."""
    return (
        compute_contrast
        and all(plan.star_fluxes)
        and plan.contrast_options.get("fc_snr", DEFAULT_FC_SNR) is None
    )


def _spectral_pass(
    plan: _Plan,
    full: np.ndarray,
    images: np.ndarray,
    final: np.ndarray,
    candidates: list[Detection],
    compute_contrast: bool,
    progress: ProgressCallback | None,
    per_wavelength: bool = False,
) -> _Measured:
    """Spectral algorithms: fakes in every wavelength of the whole (cropped) cube give throughput
    maps per wavelength and for the final image, the corrected images and contrast curves.

    By default (:func:`_spectral_at_limit`) the fakes have a flat contrast spectrum and sit at the
    detection limit of the final image, where hcdc detects
    (:func:`~hcdc.science.postprocessing.spectral_throughput.spectral_limit_throughput`); every
    wavelength's curve is then that limit (the contrast of a flat-contrast companion found about
    half the time), with the throughput of its own image; with ``per_wavelength`` every
    wavelength's curve is its own image's limit instead (:func:`~hcdc.science.postprocessing.
    contrast.image_contrast_curve` on that image with the photometric throughput of the same
    fakes in it and that wavelength's star flux). Otherwise fakes of fixed brightness
    (:data:`FIXED_FC_SNR`) and one curve per wavelength image."""
    _report(progress, "throughput and contrast", 0, 1)
    fwhm_final = float(np.mean(plan.fwhms))
    seps = plan.throughput_separations(fwhm_final)
    options = plan.contrast_options
    spectral = {
        "final": final,
        "per_wl": images,
        "fwhms": plan.fwhms,
        "wavelengths": plan.wavelengths,
        "spec": plan.spec,
        "params": plan.params,
        "separations": seps,
    }
    criterion = {
        "sigma": float(options.get("sigma", 5.0)),
        "fpf": options.get("fpf"),
        "criterion": str(options.get("criterion", "detection")),
        "student": bool(options.get("student", True)),
        "step": float(options.get("step", 1.0)),
        "profile": options.get("profile"),
    }
    present = [s for s in plan.star_fluxes if s]
    mean_star = float(np.mean(present)) if present else None
    at_limit = _spectral_at_limit(plan, compute_contrast)
    if at_limit:
        final_curve, *per_curves = spectral_limit_throughput(
            full,
            plan.angles,
            common_psf_stack(plan.psfs),
            **spectral,
            **criterion,
            spectrum=np.asarray(plan.star_fluxes, dtype=np.float64),
            nbranch=int(options.get("nbranch") or 12),
            pa=float(options.get("pa", 270.0)),
            fc_rad_sep=int(options.get("fc_rad_sep") or 3),
            max_iter=int(options.get("max_iter", 5)),
            rtol=float(options.get("rtol", 0.05)),
        )
    else:
        per_tp, final_tp, fake_fluxes = spectral_throughput(
            full,
            plan.angles,
            common_psf_stack(plan.psfs),
            **spectral,
            **{k: v for k, v in plan.fixed_throughput_options.items() if k != "cache"},
        )
        branch_pas = np.array([float(options.get("pa", 270.0))])
        per_curves = [ThroughputCurve(seps, tp[None, :], branch_pas, fake_fluxes) for tp in per_tp]
        final_curve = ThroughputCurve(seps, final_tp[None, :], branch_pas, fake_fluxes)
    maps = [curve.map(plan.shape).astype(np.float32) for curve in per_curves]
    curves: list[Any] = [None] * plan.n_wl
    if at_limit and per_wavelength:
        # Each wavelength's own limit: a companion seen in that channel's image alone, with the
        # photometric throughput of the same fakes in it (the fakes' S/N was measured on the final
        # image, not on this channel's: dropped).
        curves = [
            _throughput_floor(
                image_contrast_curve(
                    images[w],
                    dataclasses.replace(per_curves[w], snr_per_flux=None),
                    fwhm=plan.fwhms[w],
                    star_flux=plan.star_fluxes[w],
                    **criterion,
                )
            )
            for w in range(plan.n_wl)
        ]
    elif at_limit and mean_star:
        # The final image's limit; a flat-contrast companion has it in every wavelength.
        limit = image_contrast_curve(final, final_curve, fwhm=fwhm_final, star_flux=mean_star, **criterion)
        curves = [
            dataclasses.replace(limit, throughput=curve.at(limit.separation), throughput_curve=curve)
            for curve in per_curves
        ]
    elif compute_contrast:
        for w in range(plan.n_wl):
            if plan.star_fluxes[w]:
                # Built exactly as contrast_curve builds the ADI curves, from this throughput.
                curves[w] = image_contrast_curve(
                    images[w], per_curves[w], fwhm=plan.fwhms[w], star_flux=plan.star_fluxes[w], **criterion
                )
    detections = [curve_photometry(c, final, final_curve, fwhm_final, mean_star) for c in candidates]
    _report(progress, "throughput and contrast", 1, 1)
    final_map = final_curve.map(plan.shape).astype(np.float32)
    return _Measured(detections, _divide_by_throughput(final, final_map), maps, curves)


def _throughput_floor(curve: ContrastCurve) -> ContrastCurve:
    """NaN contrast where the throughput is below :data:`~hcdc.science.postprocessing.contrast.
    MIN_THROUGHPUT` (a fake there is taken as destroyed: no limit, not an absurd one)."""
    low = ~(np.nan_to_num(curve.throughput) >= MIN_THROUGHPUT)
    return dataclasses.replace(
        curve,
        contrast=np.where(low, np.nan, curve.contrast),
        contrast_gaussian=np.where(low, np.nan, curve.contrast_gaussian),
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


def _on_grid(grid: np.ndarray, separation: np.ndarray, values: np.ndarray, log: bool = False) -> np.ndarray:
    """``values`` sampled at ``separation`` interpolated onto ``grid`` (log-linearly with ``log``;
    a NaN sample makes its neighbourhood NaN), NaN outside ``separation``'s range."""
    out = np.full(grid.size, np.nan)
    inside = (grid >= separation[0] - 1e-9) & (grid <= separation[-1] + 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(values) if log else values
        out[inside] = np.interp(grid[inside], separation, y)
    return np.exp(out) if log else out


def _merge_curves(
    curves: list[Any],
    student: bool = True,
    fc_snr: float | None = None,
    completeness: list[CompletenessCurve | None] | None = None,
    per_wavelength: bool = False,
) -> ContrastCurves | None:
    """Per-wavelength :class:`~hcdc.science.postprocessing.contrast.ContrastCurve` objects on one
    separation grid: the longest curve's separations; the others (which start at their own FWHM)
    are interpolated onto it (contrast log-linearly) and NaN outside their own range. The
    completeness curves (their own grid, from 2 FWHM) are interpolated onto it the same way.
    ``fc_snr``: the throughput fakes' brightness (None: at the limit), recorded with the curve."""
    present = [c for c in curves if c is not None]
    if not present:
        return None
    grid = max((c.separation for c in present), key=len)
    n = len(curves)
    contrast, throughput, noise = (np.full((n, grid.size), np.nan) for _ in range(3))
    # The detection threshold behind the curves when calibrated (the same for every wavelength).
    thresholds = [c for c in present if c.threshold is not None]
    threshold = _on_grid(grid, thresholds[0].separation, thresholds[0].threshold) if thresholds else None
    for k, c in enumerate(curves):
        if c is None:
            continue
        contrast[k] = _on_grid(grid, c.separation, c.contrast, log=True)
        throughput[k] = _on_grid(grid, c.separation, c.throughput)
        noise[k] = _on_grid(grid, c.separation, c.noise)
    complete = [c for c in (completeness or []) if c is not None]
    compl = None
    if complete:
        compl = np.full((n, grid.size), np.nan)
        for k, c in enumerate(completeness or []):
            if c is not None:
                compl[k] = _on_grid(grid, c.separation, c.contrast, log=True)
    return ContrastCurves(
        separation_px=grid,
        contrast=contrast,
        throughput=throughput,
        noise=noise,
        nsigma=present[0].sigma,
        student=student,
        criterion=present[0].criterion,
        fpf=float(present[0].fpf),
        fc_snr=None if fc_snr is None else float(fc_snr),
        completeness=compl,
        completeness_level=complete[0].completeness if complete else None,
        completeness_fakes=complete[0].n_fakes if complete else None,
        per_wavelength=per_wavelength,
        threshold=threshold,
    )
