"""Candidate detection in S/N maps with a stated false-alarm criterion, and 2-D Gaussian centroids.

False-alarm criterion: at separation ``r`` the Mawet et al. (2014) S/N of a pixel follows a
Student t distribution with ``n - 2`` degrees of freedom under the noise-only hypothesis, where
``n = floor(2 pi r / fwhm)`` is the number of independent resolution elements at that radius
(one holds the candidate, ``n - 1`` the background). The threshold for a false-positive fraction
``fpf`` is ``t.isf(fpf, n - 2)``; the default ``fpf = 2.87e-7`` is the Gaussian 5-sigma tail, so
a "5-sigma" detection has the same false-alarm probability at every separation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage, optimize, stats

from hcdc.science import geometry
from hcdc.science.postprocessing.snr import aperture_positions, snr_at

__all__ = [
    "Candidate",
    "GaussianFit",
    "ThresholdProfile",
    "fit_gaussian_2d",
    "gaussian_fit_x_scale",
    "detect_candidates",
    "student_threshold",
    "GAUSSIAN_5SIGMA_FPF",
    "MIN_SEPARATION_FWHM",
    "SEARCH_RADIUS_FWHM",
    "SIDE_LOBE_RATIO",
    "refine_position",
    "temporal_std",
    "empty_pixels",
    "valid_detection_area",
    "EMPTY_STD_RATIO",
]

GAUSSIAN_5SIGMA_FPF = float(stats.norm.sf(5.0))  # 2.87e-7
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class GaussianFit:
    """Result of a 2-D elliptical Gaussian fit (pixels; amplitude in image units, negative for a hole)."""

    x: float
    y: float
    amplitude: float
    fwhm_x: float
    fwhm_y: float
    offset: float


#: ``x_scale`` of :func:`fit_gaussian_2d`'s ``least_squares`` when the call does not give one
#: (:func:`gaussian_fit_x_scale`); None: scipy's default.
_FIT_X_SCALE: ContextVar[float | str | None] = ContextVar("hcdc_gaussian_fit_x_scale", default=None)


@contextmanager
def gaussian_fit_x_scale(x_scale: float | str | None) -> Iterator[None]:
    """Within the block, :func:`fit_gaussian_2d` calls that give no ``x_scale`` use this one (None:
    scipy's default). A versioned choice of a Level 2 recipe (``l2-postprocess`` 1.4 on: 1.0),
    set once around :func:`~hcdc.science.postprocessing.run.postprocess` instead of being passed
    through every function that refines a position (detection, fake astrometry, completeness)."""
    token = _FIT_X_SCALE.set(x_scale)
    try:
        yield
    finally:
        _FIT_X_SCALE.reset(token)


def fit_gaussian_2d(
    image: np.ndarray,
    x: float,
    y: float,
    box: int = 9,
    fwhm: float = 4.0,
    negative: bool = False,
    x_scale: float | str | None = None,
) -> GaussianFit:
    """Least-squares fit of an axis-aligned 2-D Gaussian plus constant in a ``box`` x ``box`` cut-out.

    ``(x, y)``: initial guess (pixel coordinates of ``image``); ``negative=True`` fits a dip (e.g. a
    coronagraphic dark hole). Returns the centre in the coordinates of ``image``.

    ``x_scale``: ``least_squares``' parameter scaling (default: :func:`gaussian_fit_x_scale`'s,
    else scipy's own default). ``1.0`` (MINPACK's ``diag = 1``, scipy's default before 1.16) makes
    the fit deterministic: with scipy >= 1.16's default ``x_scale='jac'`` (``diag=None``, MINPACK
    mode 1) scipy 1.17.1's ``lmder`` gave two different results for the same box depending on
    earlier heap contents (measured: 36/24 over 60 calls on one reduced image, ~1e-11 px apart),
    which made product reruns differ in DETECTIONS; with ``x_scale=1.0`` every call gives the same
    result (60/60). Used from ``l2-postprocess`` 1.4 on; earlier versions, Level 1 recentring and
    other callers keep scipy's default so that their products rerun bit for bit.
    """
    if x_scale is None:
        x_scale = _FIT_X_SCALE.get()
    scaling = {} if x_scale is None else {"x_scale": x_scale}
    image = np.asarray(image, dtype=np.float64)
    h = box // 2
    ix, iy = int(round(x)), int(round(y))
    if iy - h < 0 or ix - h < 0 or iy + h >= image.shape[0] or ix + h >= image.shape[1]:
        raise ValueError(f"fit box of {box} px around ({x:.1f}, {y:.1f}) leaves the {image.shape} image")
    sub = image[iy - h : iy + h + 1, ix - h : ix + h + 1]
    finite = np.isfinite(sub)
    yy, xx = np.mgrid[iy - h : iy + h + 1, ix - h : ix + h + 1].astype(np.float64)
    sign = -1.0 if negative else 1.0
    offset0 = float(np.nanmedian(sub))
    amp0 = sign * max(sign * (np.nanmin(sub) if negative else np.nanmax(sub)) - sign * offset0, 1e-12)
    s0 = fwhm * FWHM_TO_SIGMA

    def residual(p: np.ndarray) -> np.ndarray:
        x0, y0, amp, sx, sy, off = p
        model = off + amp * np.exp(-0.5 * (((xx - x0) / sx) ** 2 + ((yy - y0) / sy) ** 2))
        return (model - sub)[finite]

    fit = optimize.least_squares(
        residual, [float(x), float(y), amp0, s0, s0, offset0], method="lm", **scaling
    )
    x0, y0, amp, sx, sy, off = fit.x
    return GaussianFit(
        float(x0), float(y0), float(amp), abs(sx) / FWHM_TO_SIGMA, abs(sy) / FWHM_TO_SIGMA, float(off)
    )


@dataclass(frozen=True)
class Candidate:
    """A point source whose S/N exceeds the separation-dependent threshold."""

    x: float  # pixel (sub-pixel if refined on the image)
    y: float
    separation: float  # px
    pa: float  # deg east of north (north-up image)
    snr: float  # S/N map value at the peak pixel
    threshold: float  # S/N threshold at that separation
    fpf: float  # false-positive fraction of the S/N value under the null hypothesis


class ThresholdProfile(Protocol):
    """A separation-dependent S/N threshold and the false-positive fraction of an S/N value under
    its null law, e.g. :class:`hcdc.science.postprocessing.null_threshold.EmpiricalThreshold`."""

    def at(self, separation: np.ndarray | float) -> np.ndarray: ...

    def fpf_of(self, snr: np.ndarray | float, separation: np.ndarray | float) -> np.ndarray: ...


def _dof(separation: np.ndarray, fwhm: float) -> np.ndarray:
    """Degrees of freedom ``n - 2`` of the Mawet S/N at ``separation`` (n apertures on the circle)."""
    alpha = 2.0 * np.arcsin(np.minimum(fwhm / 2.0 / np.maximum(separation, 1e-9), 1.0))
    n = np.floor(2.0 * np.pi / alpha)
    return np.maximum(n - 2.0, 1.0)


def student_threshold(
    separation: np.ndarray | float, fwhm: float, fpf: float = GAUSSIAN_5SIGMA_FPF
) -> np.ndarray:
    """S/N threshold at ``separation`` px for a false-positive fraction ``fpf`` (Student t, n-2 dof)."""
    if not 0 < fpf < 0.5:
        raise ValueError(f"fpf must be in (0, 0.5); got {fpf}")
    return stats.t.isf(fpf, _dof(np.asarray(separation, dtype=np.float64), fwhm))


#: Default minimum separation between two reported candidates (FWHM), measured between refined
#: positions: a companion's own S/N maxima and its ADI side lobes (positive residuals ~1.4 FWHM
#: along the arc next to the negative self-subtraction lobes) refine to the same image maximum and
#: are reported once; real sources closer than this are reported as one.
MIN_SEPARATION_FWHM = 1.5
#: Default radius (FWHM) around an S/N peak where the source's image maximum is searched.
SEARCH_RADIUS_FWHM = 1.5
#: A fainter candidate at a brighter one's separation, within the arc it swept, whose image peak is
#: below this fraction of the brighter one's is taken for an ADI side lobe (see detect_candidates).
#: Measured: the positive lobes beside a self-subtracted companion have 18-33 % of its peak.
SIDE_LOBE_RATIO = 0.4


def _image_anchor(image: np.ndarray, x: int, y: int, radius: float) -> tuple[int, int]:
    """Brightest local maximum (3 x 3 neighbourhood) of ``image`` within ``radius`` px of ``(x, y)``.

    Falls back on ``(x, y)`` when the disc holds no finite local maximum.
    """
    h = int(np.ceil(radius)) + 1
    y0, y1 = max(y - h, 0), min(y + h + 1, image.shape[0])
    x0, x1 = max(x - h, 0), min(x + h + 1, image.shape[1])
    sub = np.asarray(image[y0:y1, x0:x1], dtype=np.float64)
    sub = np.where(np.isfinite(sub), sub, -np.inf)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    local_max = sub == ndimage.maximum_filter(sub, size=3, mode="nearest")
    allowed = local_max & np.isfinite(sub) & (np.hypot(xx - x, yy - y) <= radius)
    if not allowed.any():
        return x, y
    k = int(np.argmax(np.where(allowed, sub, -np.inf)))
    return int(xx.flat[k]), int(yy.flat[k])


def refine_position(
    image: np.ndarray, x: int, y: int, fwhm: float, search_radius: float | None = None
) -> tuple[float, float]:
    """Sub-pixel position ``(x, y)`` (px) of the source whose S/N-map peak is pixel ``(x, y)``.

    The S/N peak is not the source's position: the Mawet noise apertures move with the test
    position, and after ADI self-subtraction the negative lobes along the arc lower the ring's
    mean and raise its scatter, so S/N maxima sit up to ~1 FWHM off a companion, often one on
    each flank. The source is the brightest local maximum of ``image`` within ``search_radius``
    px (default :data:`SEARCH_RADIUS_FWHM` FWHM) of the S/N peak; a 2-D Gaussian fit in a
    2-FWHM box around it refines it and is kept if it stays within 0.5 FWHM of that maximum
    (otherwise the maximum pixel is returned: fit box off the edge, or the fit ran away).
    """
    image = np.asarray(image)
    radius = SEARCH_RADIUS_FWHM * fwhm if search_radius is None else float(search_radius)
    px, py = _image_anchor(image, int(x), int(y), radius)
    try:
        fit = fit_gaussian_2d(image, px, py, box=int(2 * np.ceil(fwhm)) | 1, fwhm=fwhm)
    except (ValueError, RuntimeError):
        return float(px), float(py)
    if fit.amplitude > 0 and np.hypot(fit.x - px, fit.y - py) <= 0.5 * fwhm:
        return fit.x, fit.y
    return float(px), float(py)


def _ring_fits(shape: tuple[int, ...], x: float, y: float, fwhm: float) -> bool:
    """Whether the Mawet test (a source aperture and at least two noise apertures on its circle)
    can be made at ``(x, y)``, as photometry and :func:`snr_at` need."""
    try:
        xs, _ = aperture_positions(x, y, fwhm, shape)
    except ValueError:  # within fwhm/2 + 1 px of the star
        return False
    return xs.size >= 3


def _positive_source(image: np.ndarray, x: float, y: float, fwhm: float) -> bool:
    """Whether the Mawet signal ``f0 - mean(f_i)`` of ``image`` at ``(x, y)`` is positive."""
    try:
        return snr_at(np.asarray(image, dtype=np.float64), x, y, fwhm).signal > 0
    except ValueError:
        return True  # too close to the star for the ring test: keep the S/N map's verdict


def _peak_value(image: np.ndarray, x: float, y: float) -> float:
    """``image`` at the pixel nearest to ``(x, y)``."""
    return float(np.asarray(image)[int(round(y)), int(round(x))])


def _is_side_lobe(
    sep: float,
    pa: float,
    peak: float,
    kept: list[Candidate],
    peak_values: list[float],
    fwhm: float,
    rotation: float,
) -> bool:
    """Whether a candidate at ``(sep, pa)`` with image peak ``peak`` is an ADI side lobe of one of
    the brighter ``kept`` candidates (see :func:`detect_candidates`)."""
    for c, c_peak in zip(kept, peak_values, strict=True):
        if abs(c.separation - sep) > 0.5 * fwhm or not c_peak > 0:
            continue
        d_pa = abs((pa - c.pa + 180.0) % 360.0 - 180.0)
        arc = abs(rotation) + np.degrees(fwhm / max(c.separation, 1e-9))
        if d_pa <= arc and peak < SIDE_LOBE_RATIO * c_peak:
            return True
    return False


def detect_candidates(
    snr_map: np.ndarray,
    fwhm: float,
    *,
    fpf: float = GAUSSIAN_5SIGMA_FPF,
    threshold: float | None = None,
    image: np.ndarray | None = None,
    max_candidates: int = 50,
    min_separation: float | None = None,
    valid: np.ndarray | None = None,
    rotation: float | None = None,
    profile: ThresholdProfile | None = None,
) -> list[Candidate]:
    """Local maxima of ``snr_map`` above the false-alarm threshold, one per source, brightest first.

    By default the threshold at each separation is :func:`student_threshold` for ``fpf``
    (5-sigma-Gaussian equivalent); ``threshold`` gives a fixed S/N instead, ``profile`` a
    threshold per separation (``profile.at(r)``, e.g. calibrated on a null map:
    :mod:`~hcdc.science.postprocessing.null_threshold`; the candidates' ``fpf`` is then
    ``profile.fpf_of(snr, r)``; ``fpf`` is not used). ``valid`` (bool, the
    map's shape) restricts the S/N peaks to where it is True (e.g. :func:`valid_detection_area`).

    With ``image`` (the final image) each S/N peak is moved to its source with
    :func:`refine_position` (image maximum near the peak, Gaussian fit); without it the position is
    the S/N-peak pixel. Peaks are taken in decreasing S/N and one whose (refined) position lies
    within ``min_separation`` px (default :data:`MIN_SEPARATION_FWHM` FWHM) of an already kept
    candidate is dropped: a companion's several S/N maxima and its ADI side lobes give one
    candidate, and two sources closer than ``min_separation`` are reported as one. The reported
    ``snr`` is the S/N-map value of the candidate's highest peak.

    With ``image``, two more checks make a candidate a point source of the image:

    * its background-subtracted aperture flux at the refined position (the Mawet numerator
      ``f0 - mean(f_i)``) must be positive: next to a bright self-subtracted companion the S/N map
      has peaks where the image holds only the companion's negative lobes;
    * with ``rotation`` (the sequence's field rotation, deg), a candidate within 0.5 FWHM in
      separation of a brighter kept one, less than ``rotation`` + 1 FWHM away from it in PA and
      whose image peak is below :data:`SIDE_LOBE_RATIO` times the brighter one's is dropped as an
      ADI side lobe (positive residuals beyond the negative lobes along the arc). A real
      companion that faint, that close on the same arc is dropped too: the ADI residual of the
      brighter one dominates there.
    """
    snr_map = np.asarray(snr_map, dtype=np.float64)
    if snr_map.ndim != 2:
        raise ValueError(f"S/N map must be 2-D; got shape {snr_map.shape}")
    if image is not None and np.shape(image) != snr_map.shape:
        raise ValueError(f"image of shape {np.shape(image)} does not match the S/N map {snr_map.shape}")
    if valid is not None and np.shape(valid) != snr_map.shape:
        raise ValueError(f"valid mask of shape {np.shape(valid)} does not match the S/N map {snr_map.shape}")
    min_sep = MIN_SEPARATION_FWHM * fwhm if min_separation is None else float(min_separation)
    finite = np.where(np.isfinite(snr_map), snr_map, -np.inf)
    r = geometry.distance_map(snr_map.shape)
    if threshold is not None and profile is not None:
        raise ValueError("give a fixed threshold or a threshold profile, not both")
    if profile is not None:
        limit = np.asarray(profile.at(r), dtype=np.float64)
    elif threshold is not None:
        limit = np.full(snr_map.shape, float(threshold))
    else:
        limit = student_threshold(r, fwhm, fpf)
    size = max(3, int(np.ceil(fwhm)) | 1)
    peaks = (finite == ndimage.maximum_filter(finite, size=size, mode="constant", cval=-np.inf)) & (
        finite > limit
    )
    if valid is not None:
        peaks &= np.asarray(valid, dtype=bool)
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-finite[ys, xs], kind="stable")
    kept: list[Candidate] = []
    peak_values: list[float] = []
    for i in order:
        y, x = int(ys[i]), int(xs[i])
        fx, fy = (float(x), float(y)) if image is None else refine_position(image, x, y, fwhm)
        if not _ring_fits(snr_map.shape, fx, fy, fwhm):
            # refined onto the star's residual, where no noise ring fits (photometry would fail):
            # the S/N peak itself lies in the S/N map's region, so keep it
            fx, fy = float(x), float(y)
        # Merge in refined coordinates: the raw S/N peaks of one companion can be 1-2 FWHM apart.
        if any(np.hypot(c.x - fx, c.y - fy) < min_sep for c in kept):
            continue
        sep, pa = geometry.pixel_to_polar(fx, fy, snr_map.shape)
        if image is not None:
            if not _positive_source(image, fx, fy, fwhm):
                continue
            peak = _peak_value(image, fx, fy)
            if rotation is not None and _is_side_lobe(sep, pa, peak, kept, peak_values, fwhm, rotation):
                continue
            peak_values.append(peak)
        value = float(snr_map[y, x])
        chance = (
            profile.fpf_of(value, r[y, x])
            if profile is not None
            else stats.t.sf(value, _dof(np.array(r[y, x]), fwhm))
        )
        kept.append(
            Candidate(
                fx,
                fy,
                sep,
                pa,
                value,
                float(limit[y, x]),
                float(chance),
            )
        )
        if len(kept) >= max_candidates:
            break
    return kept


#: A pixel holds no data when its temporal standard deviation is below this fraction of the data's
#: at its separation (see :func:`empty_pixels`).
EMPTY_STD_RATIO = 0.25


def temporal_std(cube: np.ndarray, block_rows: int = 16) -> np.ndarray:
    """Standard deviation over frames of an ADI cube ``(frames, y, x)`` (float64, NaN where a frame
    is NaN), computed on bands of ``block_rows`` rows so that memory stays bounded."""
    cube = np.asarray(cube)
    if cube.ndim != 3:
        raise ValueError(f"an ADI cube must be (frames, y, x); got shape {cube.shape}")
    out = np.empty(cube.shape[1:], dtype=np.float64)
    for y0 in range(0, cube.shape[1], block_rows):
        band = np.asarray(cube[:, y0 : y0 + block_rows], dtype=np.float64)
        out[y0 : y0 + block_rows] = band.std(axis=0)
    return out


def _ring_percentile(values: np.ndarray, rings: np.ndarray, percentile: float) -> np.ndarray:
    """``percentile`` of ``values`` on each integer ring label (0 where a ring is empty)."""
    order = np.lexsort((values, rings))
    counts = np.bincount(rings, minlength=int(rings.max()) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = starts + np.floor(percentile / 100.0 * np.maximum(counts - 1, 0)).astype(np.intp)
    out = np.zeros(counts.size)
    present = counts > 0
    out[present] = values[order][pick[present]]
    return out


def empty_pixels(std_map: np.ndarray, ratio: float = EMPTY_STD_RATIO) -> np.ndarray:
    """Pixels that hold no light in (some) frames, from the cube's temporal standard deviation.

    Level 1 fills what the detector does not cover (crop beyond the detector, dead zones) with
    zeros; recentring by a Fourier shift turns them into a faint ringing, so they are found by their
    noise, not by an exact value: a pixel is empty where ``std_map`` is NaN or below ``ratio`` times
    the data's noise at its separation, taken as the larger of the median of ``std_map`` on its
    1-px ring and over the whole frame (a ring mostly in empty zones, near the frame edge, has an
    empty median; the frame's median is the data's background noise as long as most of the frame
    holds data). In the demo's Level 1 cubes empty pixels have 0.06-0.2 times the data's median,
    the data 0.7-1.2 times. Empty zones narrower than 3 px are ignored (binary opening): isolated
    interpolated bad pixels, whose noise is lower too, are data.
    """
    std_map = np.asarray(std_map, dtype=np.float64)
    rings = np.rint(geometry.distance_map(std_map.shape)).astype(np.intp).ravel()
    finite = np.isfinite(std_map)
    if not finite.any():
        return np.ones(std_map.shape, dtype=bool)
    values = np.where(finite, std_map, -np.inf).ravel()
    reference = np.maximum(_ring_percentile(values, rings, 50.0), float(np.median(std_map[finite])))
    low = ~finite | (std_map < ratio * reference[rings].reshape(std_map.shape))
    return ndimage.binary_opening(low, structure=np.ones((3, 3), dtype=bool))


def valid_detection_area(empty: np.ndarray, fwhm: float) -> np.ndarray:
    """Pixels where the S/N test sees only data: no ``empty`` pixel in their ring.

    The Mawet S/N at separation ``r`` uses apertures of diameter 1 FWHM all around the circle of
    radius ``r``; a ring that crosses an empty zone has a noise estimate that is too low (empty
    pixels hardly vary), and its peaks pass the threshold without a source (e.g. at the frame edge
    after derotation). A pixel at separation ``r`` is valid if no empty pixel lies between
    ``r - fwhm/2 - 1`` and ``r + fwhm/2 + 1`` px from the star. ``empty`` is in the detector frame;
    rotation about the star keeps separations, so the mask holds for every derotated frame.
    """
    empty = np.asarray(empty, dtype=bool)
    r = geometry.distance_map(empty.shape)
    hole = np.sort(r[empty])
    half = fwhm / 2.0 + 1.0
    n_in_ring = np.searchsorted(hole, r + half, side="right") - np.searchsorted(hole, r - half, side="left")
    return n_in_ring == 0
