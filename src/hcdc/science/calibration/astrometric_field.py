"""Plate scale and True North measured on an astrometric calibration field (pure functions).

The SPHERE Data Center measures the IRDIS plate scale and True North on fields with reference
positions (47 Tuc, NGC 3603, NGC 6380; Maire et al. 2016): detect the stars, centroid them,
match them to the reference list and fit the transformation from detector to sky. This module
does the same on one image:

* :func:`detect_stars` - local maxima above ``nsigma`` times the robust noise of a background
  subtracted image;
* :func:`centroid_gaussian` - a 2-D Gaussian plus constant fitted on a box around each maximum;
* :func:`tangent_offsets` - gnomonic offsets (mas, east and north) of reference positions;
* :func:`match_stars` - pairs detected/reference by voting on the translation, for a grid of
  trial rotations around the expected one, then nearest neighbours;
* :func:`fit_similarity` - least-squares scale, rotation and offset with errors **measured**
  from the residuals (formal covariance scaled by the residual variance) and by a bootstrap
  over the matched stars; iterative rejection of outliers (mismatches, blends);
* :func:`measure_field` - all of it.

Conventions. Detector offsets ``(x, y)`` in pixels from a reference pixel, x to the right
(increasing column), y up (increasing row). Position angles are east of north; on the detector,
``PA_det = atan2(-x, y)`` (a north-up / east-left image has ``PA_det = PA_sky``). The fitted
``rotation_deg`` is the angle added to a detector position angle to give the sky's:
``PA_sky = PA_det + rotation``; ``scale_mas`` maps pixels to mas. Written with complex numbers,
``N + iE = scale * exp(i rotation) * (y - i x) + t``. The anamorphism correction (vlt-sphere's
stretch of (x, y), e.g. IRDIS (1.0000, 1.0062)) is applied to the detected offsets before the
fit, so the scale is that of the corrected images (the pipeline's convention).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.optimize import least_squares

__all__ = [
    "AstrometryError",
    "AstrometricSolution",
    "centroid_gaussian",
    "detect_stars",
    "fit_affine",
    "fit_similarity",
    "match_stars",
    "measure_field",
    "tangent_offsets",
]

MAS_PER_DEG = 3.6e6
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))


class AstrometryError(ValueError):
    """The field cannot be measured (too few stars detected or matched; the message says why)."""


# ---------------------------------------------------------------------------------------------
# detection and centroiding


def _robust_sigma(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(values - np.median(values))))


def detect_stars(
    image: np.ndarray,
    nsigma: float = 8.0,
    fwhm_px: float = 3.3,
    border_px: int | None = None,
    max_stars: int = 2000,
) -> np.ndarray:
    """Pixel positions ``(x, y)`` (column, row) of the local maxima of ``image`` (smoothed by a
    Gaussian of the PSF's width) that stand more than ``nsigma`` robust standard deviations of
    the smoothed image above its median, brightest first, at most ``max_stars``; maxima within
    ``border_px`` (default 2 FWHM) of the edge are left out (their centroid box is cut). NaN
    pixels count as background."""
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 2:
        raise AstrometryError(f"detection needs a 2-D image; got shape {data.shape}")
    filled = np.where(np.isfinite(data), data, np.nanmedian(data))
    smooth = ndimage.gaussian_filter(filled, fwhm_px * FWHM_TO_SIGMA)
    smooth -= np.median(smooth)
    noise = _robust_sigma(smooth)
    if not noise > 0:
        raise AstrometryError("the image has no noise to measure a detection threshold on (constant image)")
    size = max(3, int(round(2 * fwhm_px)) | 1)
    peaks = (smooth == ndimage.maximum_filter(smooth, size=size)) & (smooth > nsigma * noise)
    border = int(np.ceil(2 * fwhm_px)) if border_px is None else int(border_px)
    if border > 0:
        peaks[:border, :] = peaks[-border:, :] = False
        peaks[:, :border] = peaks[:, -border:] = False
    rows, cols = np.nonzero(peaks)
    order = np.argsort(smooth[rows, cols])[::-1][:max_stars]
    return np.column_stack([cols[order], rows[order]]).astype(np.float64)


def centroid_gaussian(
    image: np.ndarray, x0: float, y0: float, fwhm_px: float = 3.3, half_box: int | None = None
) -> dict[str, float]:
    """Fit ``A exp(-r^2 / 2 s^2) + c`` (circular Gaussian plus constant) on a box of half-width
    ``half_box`` (default 1.5 FWHM, at least 3 px) around ``(x0, y0)``. Returns ``x, y`` (px),
    ``fwhm`` (px), ``amplitude``, ``background``, ``flux`` (``2 pi A s^2``) and the formal
    errors ``x_err, y_err`` (px, from the Jacobian scaled by the fit's residual variance).
    Raises AstrometryError when the box leaves the image or the fit does not converge."""
    half = max(3, int(round(1.5 * fwhm_px))) if half_box is None else int(half_box)
    ix, iy = int(round(x0)), int(round(y0))
    ny, nx = image.shape
    if ix - half < 0 or iy - half < 0 or ix + half >= nx or iy + half >= ny:
        raise AstrometryError(f"star at ({x0:.1f}, {y0:.1f}) too close to the edge for its centroid box")
    box = np.asarray(image[iy - half : iy + half + 1, ix - half : ix + half + 1], dtype=np.float64)
    good = np.isfinite(box)
    yy, xx = np.mgrid[iy - half : iy + half + 1, ix - half : ix + half + 1]
    xx, yy, values = xx[good].astype(float), yy[good].astype(float), box[good]
    background0 = float(np.median(np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]])))
    amplitude0 = float(box[half, half] - background0)
    sigma0 = fwhm_px * FWHM_TO_SIGMA

    def residuals(p: np.ndarray) -> np.ndarray:
        a, x, y, s, c = p
        return a * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s)) + c - values

    start = np.array([amplitude0, float(ix), float(iy), sigma0, background0])
    lower = [0.0, ix - half, iy - half, 0.3, -np.inf]
    upper = [np.inf, ix + half, iy + half, 3 * half, np.inf]
    start = np.clip(start, np.array(lower) + 1e-9, np.array(upper) - 1e-9)
    fit = least_squares(residuals, start, bounds=(lower, upper), x_scale="jac")
    if not fit.success:
        raise AstrometryError(f"centroid fit failed at ({x0:.1f}, {y0:.1f}): {fit.message}")
    a, x, y, s, c = fit.x
    dof = max(1, values.size - 5)
    variance = float(np.sum(fit.fun**2) / dof)
    try:
        covariance = np.linalg.inv(fit.jac.T @ fit.jac) * variance
        x_err, y_err = float(np.sqrt(covariance[1, 1])), float(np.sqrt(covariance[2, 2]))
    except np.linalg.LinAlgError:
        x_err = y_err = float("nan")
    return {
        "x": float(x),
        "y": float(y),
        "x_err": x_err,
        "y_err": y_err,
        "fwhm": float(s / FWHM_TO_SIGMA),
        "amplitude": float(a),
        "background": float(c),
        "flux": float(2 * np.pi * a * s * s),
    }


# ---------------------------------------------------------------------------------------------
# sky offsets and matching


def tangent_offsets(
    ra_deg: np.ndarray, dec_deg: np.ndarray, ra0_deg: float, dec0_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gnomonic (tangent-plane) offsets ``(east, north)`` in mas of positions ``(ra, dec)`` (deg)
    about ``(ra0, dec0)``."""
    ra, dec = np.radians(np.asarray(ra_deg, float)), np.radians(np.asarray(dec_deg, float))
    ra0, dec0 = np.radians(ra0_deg), np.radians(dec0_deg)
    cos_c = np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    xi = np.cos(dec) * np.sin(ra - ra0) / cos_c
    eta = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    return np.degrees(xi) * MAS_PER_DEG, np.degrees(eta) * MAS_PER_DEG


def _to_complex_detector(xy: np.ndarray) -> np.ndarray:
    """``y - i x``: the detector offset as a complex number whose argument is ``PA_det``, so
    that ``N + iE = k (y - i x) + t`` with ``k = scale exp(i rotation)``."""
    return xy[:, 1] - 1j * xy[:, 0]


def _to_complex_sky(en: np.ndarray) -> np.ndarray:
    return en[:, 1] + 1j * en[:, 0]


def _sky_to_detector(en: np.ndarray, scale_mas: float, rotation_deg: float) -> np.ndarray:
    z = _to_complex_sky(en) / (scale_mas * np.exp(1j * np.radians(rotation_deg)))
    return np.column_stack([-z.imag, z.real])


def _nearest_pairs(a: np.ndarray, b: np.ndarray, tolerance: float) -> list[tuple[int, int]]:
    """Mutual nearest neighbours between point sets ``a`` and ``b`` closer than ``tolerance``."""
    if len(a) == 0 or len(b) == 0:
        return []
    d = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    best_b = np.argmin(d, axis=1)
    best_a = np.argmin(d, axis=0)
    return [(i, int(j)) for i, j in enumerate(best_b) if best_a[j] == i and d[i, j] <= tolerance]


def _similarity_coefficients(det: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """``(a, b, tE, tN)`` of the least-squares similarity (see :func:`_solve`)."""
    coef, _, _ = _solve(det, sky)
    return coef


def match_stars(
    detected_xy: np.ndarray,
    reference_en: np.ndarray,
    scale_mas: float,
    rotation_deg: float,
    tolerance_px: float = 3.0,
    rotation_search_deg: float = 3.0,
    rotation_step_deg: float = 0.25,
    max_shift_px: float = 400.0,
) -> list[tuple[int, int]]:
    """Pairs ``(detected index, reference index)``. The translation between the detector and the
    reference offsets is unknown (pointing, up to ``max_shift_px``): for each trial rotation
    within ``rotation_search_deg`` of ``rotation_deg`` (step ``rotation_step_deg``), every pair
    votes for the translation it implies, in cells of ``tolerance_px``; the trial with the most
    votes in one 3 x 3-cell neighbourhood (ties: the tighter cluster) gives the translation;
    mutual nearest neighbours within ``1.5 tolerance_px`` are first pairs, a similarity fitted on
    them predicts every reference star, and mutual nearest neighbours within ``tolerance_px``
    of those predictions are the pairs. ``scale_mas`` and ``rotation_deg`` are the expected
    values (the pipeline's constants)."""
    detected_xy = np.asarray(detected_xy, float)
    reference_en = np.asarray(reference_en, float)
    if len(detected_xy) == 0 or len(reference_en) == 0:
        return []
    best: tuple[tuple[int, float], float, np.ndarray] | None = None
    trials = np.arange(-rotation_search_deg, rotation_search_deg + 1e-9, rotation_step_deg) + rotation_deg
    for trial in trials:
        predicted = _sky_to_detector(reference_en, scale_mas, float(trial))
        dx = (detected_xy[:, None, 0] - predicted[None, :, 0]).ravel()
        dy = (detected_xy[:, None, 1] - predicted[None, :, 1]).ravel()
        inside = np.hypot(dx, dy) <= max_shift_px
        dx, dy = dx[inside], dy[inside]
        if dx.size == 0:
            continue
        cells = np.stack([np.floor(dx / tolerance_px), np.floor(dy / tolerance_px)], axis=1).astype(np.int64)
        keys, counts = np.unique(cells, axis=0, return_counts=True)
        index = {tuple(k): c for k, c in zip(keys.tolist(), counts.tolist(), strict=True)}
        for k in np.argsort(counts)[::-1][:10]:
            cx, cy = keys[k]
            total = sum(index.get((cx + i, cy + j), 0) for i in (-1, 0, 1) for j in (-1, 0, 1))
            near = (np.abs(dx - (cx + 0.5) * tolerance_px) <= 1.5 * tolerance_px) & (
                np.abs(dy - (cy + 0.5) * tolerance_px) <= 1.5 * tolerance_px
            )
            shift = np.array([np.median(dx[near]), np.median(dy[near])])
            spread = float(np.median(np.hypot(dx[near] - shift[0], dy[near] - shift[1])))
            score = (int(total), -spread)
            if best is None or score > best[0]:
                best = (score, float(trial), shift)
    if best is None:
        return []
    _, trial, shift = best
    predicted = _sky_to_detector(reference_en, scale_mas, trial) + shift
    pairs = _nearest_pairs(detected_xy, predicted, 1.5 * tolerance_px)
    if len(pairs) >= 3:
        coef = _similarity_coefficients(
            detected_xy[[i for i, _ in pairs]], reference_en[[j for _, j in pairs]]
        )
        fitted_scale, fitted_rotation = _scale_rotation(coef)
        predicted = _sky_to_detector(reference_en - coef[2:4], fitted_scale, fitted_rotation)
        pairs = _nearest_pairs(detected_xy, predicted, tolerance_px)
    return pairs


# ---------------------------------------------------------------------------------------------
# the fit


@dataclass
class AstrometricSolution:
    """The fitted transformation (module conventions) and its measured errors.

    ``scale_err_mas`` / ``rotation_err_deg`` are the larger of the formal error (covariance
    scaled by the residual variance) and the bootstrap error (standard deviation over
    ``bootstrap`` resamplings of the matched stars); both are kept. ``residual_rms_mas``: rms of
    the sky residuals of the stars kept (per coordinate). ``offset_mas``: sky offset ``(east,
    north)`` of the detector's reference pixel from the reference position."""

    scale_mas: float
    scale_err_mas: float
    rotation_deg: float
    rotation_err_deg: float
    offset_mas: tuple[float, float]
    offset_err_mas: tuple[float, float]
    matched: int
    used: int
    rejected: int
    residual_rms_mas: float
    formal: dict[str, float]
    bootstrap: dict[str, float]
    residuals_mas: list[tuple[float, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _solve(det: np.ndarray, sky: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear least squares for ``(a, b, tE, tN)`` with ``N = a y + b x + tN``,
    ``E = -a x + b y + tE``; returns coefficients, design matrix and residual vector."""
    n = len(det)
    x, y = det[:, 0], det[:, 1]
    design = np.zeros((2 * n, 4))
    design[:n, 0], design[:n, 1], design[:n, 2] = -x, y, 1.0  # east rows
    design[n:, 0], design[n:, 1], design[n:, 3] = y, x, 1.0  # north rows
    target = np.concatenate([sky[:, 0], sky[:, 1]])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    return coef, design, target - design @ coef


def _scale_rotation(coef: np.ndarray) -> tuple[float, float]:
    a, b = coef[0], coef[1]
    return float(np.hypot(a, b)), float(np.degrees(np.arctan2(b, a)))


def fit_similarity(
    detected_xy: np.ndarray,
    reference_en: np.ndarray,
    min_stars: int = 6,
    clip_sigma: float = 5.0,
    bootstrap: int = 300,
    seed: int = 0,
) -> tuple[AstrometricSolution, np.ndarray]:
    """Fit scale, rotation and offset between matched detector offsets (px) and sky offsets
    ``(east, north)`` (mas), rejecting iteratively the stars whose residual exceeds
    ``clip_sigma`` robust standard deviations. Returns the solution and the mask of stars kept.
    Raises AstrometryError with fewer than ``min_stars`` (at least 4: 4 unknowns, and enough
    degrees of freedom to measure the scatter) stars before or after the rejection."""
    det, sky = np.asarray(detected_xy, float), np.asarray(reference_en, float)
    min_stars = max(4, int(min_stars))
    if len(det) < min_stars:
        raise AstrometryError(
            f"only {len(det)} star(s) matched the reference list; at least {min_stars} are needed "
            "to fit scale, rotation and offset and measure their errors"
        )
    keep = np.ones(len(det), bool)
    for _ in range(10):
        coef, _, resid = _solve(det[keep], sky[keep])
        n = int(keep.sum())
        # residuals of every star (also the rejected ones) under the current fit
        x, y = det[:, 0], det[:, 1]
        e_all = sky[:, 0] - (-coef[0] * x + coef[1] * y + coef[2])
        n_all = sky[:, 1] - (coef[0] * y + coef[1] * x + coef[3])
        distance = np.hypot(e_all, n_all)
        sigma = max(_robust_sigma(np.concatenate([e_all[keep], n_all[keep]])), 1e-12)
        new_keep = distance <= clip_sigma * sigma * np.sqrt(2)
        if new_keep.sum() < min_stars or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    n = int(keep.sum())
    if n < min_stars:
        raise AstrometryError(
            f"only {n} matched star(s) left after rejecting outliers; at least {min_stars} are needed"
        )
    coef, design, resid = _solve(det[keep], sky[keep])
    dof = 2 * n - 4
    variance = float(np.sum(resid**2) / dof) if dof > 0 else float("nan")
    covariance = np.linalg.inv(design.T @ design) * variance
    a, b = coef[0], coef[1]
    scale, rotation = _scale_rotation(coef)
    # Jacobians of s = hypot(a, b) and rho = atan2(b, a)
    j_s = np.array([a / scale, b / scale, 0, 0])
    j_r = np.array([-b / scale**2, a / scale**2, 0, 0])
    formal = {
        "scale_err_mas": float(np.sqrt(j_s @ covariance @ j_s)),
        "rotation_err_deg": float(np.degrees(np.sqrt(j_r @ covariance @ j_r))),
        "offset_east_err_mas": float(np.sqrt(covariance[2, 2])),
        "offset_north_err_mas": float(np.sqrt(covariance[3, 3])),
    }
    rng = np.random.default_rng(seed)
    kept_det, kept_sky = det[keep], sky[keep]
    scales, rotations, east, north = [], [], [], []
    for _ in range(int(bootstrap)):
        pick = rng.integers(0, n, n)
        if len(np.unique(pick)) < 3:
            continue
        c, *_ = _solve(kept_det[pick], kept_sky[pick])
        s, r = _scale_rotation(c)
        scales.append(s)
        rotations.append(r)
        east.append(c[2])
        north.append(c[3])
    boot = (
        {
            "scale_err_mas": float(np.std(scales, ddof=1)),
            "rotation_err_deg": float(np.std(rotations, ddof=1)),
            "offset_east_err_mas": float(np.std(east, ddof=1)),
            "offset_north_err_mas": float(np.std(north, ddof=1)),
            "resamplings": len(scales),
        }
        if len(scales) > 2
        else {}
    )

    def larger(key: str) -> float:
        return float(max(formal[key], boot.get(key, 0.0)))

    half = n
    solution = AstrometricSolution(
        scale_mas=scale,
        scale_err_mas=larger("scale_err_mas"),
        rotation_deg=rotation,
        rotation_err_deg=larger("rotation_err_deg"),
        offset_mas=(float(coef[2]), float(coef[3])),
        offset_err_mas=(larger("offset_east_err_mas"), larger("offset_north_err_mas")),
        matched=len(det),
        used=n,
        rejected=len(det) - n,
        residual_rms_mas=float(np.sqrt(np.mean(resid**2))),
        formal=formal,
        bootstrap=boot,
        residuals_mas=[(float(e), float(nn)) for e, nn in zip(resid[:half], resid[half:], strict=True)],
    )
    return solution, keep


def _solve_affine(det: np.ndarray, sky: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear least squares for ``(m_ex, m_ey, t_e, m_nx, m_ny, t_n)`` with
    ``E = m_ex x + m_ey y + t_e`` and ``N = m_nx x + m_ny y + t_n``; returns coefficients,
    design matrix and residual vector (east rows first)."""
    n = len(det)
    design = np.zeros((2 * n, 6))
    design[:n, 0], design[:n, 1], design[:n, 2] = det[:, 0], det[:, 1], 1.0
    design[n:, 3], design[n:, 4], design[n:, 5] = det[:, 0], det[:, 1], 1.0
    target = np.concatenate([sky[:, 0], sky[:, 1]])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    return coef, design, target - design @ coef


def _affine_terms(coef: np.ndarray) -> np.ndarray:
    """``scale_x``, ``scale_y`` (mas per px along the detector x and y axes), the anamorphism
    ``scale_y / scale_x - 1`` and the skew (deg: the angle between the sky images of the x and y
    axes minus 90) of affine coefficients."""
    col_x = np.array([coef[0], coef[3]])  # (E, N) of one pixel along x
    col_y = np.array([coef[1], coef[4]])
    scale_x, scale_y = float(np.hypot(*col_x)), float(np.hypot(*col_y))
    cos_angle = float(col_x @ col_y) / (scale_x * scale_y)
    skew = float(np.degrees(np.arccos(np.clip(cos_angle, -1.0, 1.0)))) - 90.0
    return np.array([scale_x, scale_y, scale_y / scale_x - 1.0, skew])


def fit_affine(
    detected_xy: np.ndarray, reference_en: np.ndarray, bootstrap: int = 300, seed: int = 0
) -> dict[str, Any]:
    """A general linear (6-parameter) fit of sky offsets ``(east, north)`` (mas) on detector
    offsets ``(x, y)`` (px), for the distortion the similarity fit leaves out: the scales along
    x and y (mas/px), the **anamorphism** ``scale_y / scale_x - 1`` (fraction; IRDIS raw pixels:
    +0.0062 by vlt-sphere's correction, 0.60 +- 0.02 % measured by Maire et al. 2016) and the
    skew (deg, non-orthogonality of the axes on the sky). Errors: the larger of the formal ones
    (residual-scaled covariance, Jacobian by finite differences) and a bootstrap over the stars.
    Give it the stars the similarity fit kept (outliers rejected). Raises AstrometryError with
    fewer than 5 stars (6 unknowns; 2 equations per star)."""
    det, sky = np.asarray(detected_xy, float), np.asarray(reference_en, float)
    n = len(det)
    if n < 5:
        raise AstrometryError(f"only {n} star(s) for an affine fit; at least 5 are needed")
    coef, design, resid = _solve_affine(det, sky)
    dof = 2 * n - 6
    variance = float(np.sum(resid**2) / dof)
    covariance = np.linalg.inv(design.T @ design) * variance
    terms = _affine_terms(coef)
    jacobian = np.zeros((4, 6))
    for k in range(6):
        step = np.zeros(6)
        step[k] = 1e-6 * max(abs(coef[k]), 1.0)
        jacobian[:, k] = (_affine_terms(coef + step) - _affine_terms(coef - step)) / (2 * step[k])
    formal = np.sqrt(np.diag(jacobian @ covariance @ jacobian.T))
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(int(bootstrap)):
        pick = rng.integers(0, n, n)
        if len(np.unique(pick)) < 4:
            continue
        c, *_ = _solve_affine(det[pick], sky[pick])
        samples.append(_affine_terms(c))
    boot = np.std(samples, axis=0, ddof=1) if len(samples) > 2 else np.zeros(4)
    error = np.maximum(formal, boot)
    names = ("scale_x_mas", "scale_y_mas", "anamorphism", "skew_deg")
    return {
        **{name: float(v) for name, v in zip(names, terms, strict=True)},
        **{f"{name}_err": float(e) for name, e in zip(names, error, strict=True)},
        "formal": {f"{name}_err": float(e) for name, e in zip(names, formal, strict=True)},
        "bootstrap": {f"{name}_err": float(e) for name, e in zip(names, boot, strict=True)},
        "stars": n,
        "residual_rms_mas": float(np.sqrt(np.mean(resid**2))),
    }


def measure_field(
    image: np.ndarray,
    reference_en: np.ndarray,
    *,
    expected_scale_mas: float,
    expected_rotation_deg: float,
    reference_pixel: tuple[float, float] | None = None,
    anamorphism_xy: Sequence[float] = (1.0, 1.0),
    fwhm_px: float = 3.3,
    nsigma: float = 8.0,
    tolerance_px: float = 3.0,
    rotation_search_deg: float = 3.0,
    max_shift_px: float = 400.0,
    min_stars: int = 6,
    bootstrap: int = 300,
    seed: int = 0,
    affine: bool = False,
) -> dict[str, Any]:
    """Detect, centroid, match and fit (module doc). ``affine``: also fit a general linear map
    on the stars the similarity fit kept (:func:`fit_affine`), returned under ``"affine"``.
    ``reference_en``: reference offsets ``(east, north)`` in mas (:func:`tangent_offsets`);
    ``reference_pixel`` ``(x, y)``: the detector pixel offsets are taken from (default the
    image centre ``(nx/2, ny/2)``);
    ``anamorphism_xy``: stretch applied to the offsets before the fit; ``max_shift_px``: largest
    pointing error searched (px, :func:`match_stars`). Returns ``{"solution":
    AstrometricSolution, "detected", "centroided", "stars": [{x, y, x_err, y_err, flux,
    reference, used, residual_east_mas, residual_north_mas}]}``. Raises AstrometryError when
    fewer than ``min_stars`` stars are matched (the message gives the counts)."""
    data = np.asarray(image, dtype=np.float64)
    ny, nx = data.shape
    ref_x, ref_y = reference_pixel if reference_pixel is not None else (nx / 2.0, ny / 2.0)
    peaks = detect_stars(data, nsigma=nsigma, fwhm_px=fwhm_px)
    stars = []
    for x0, y0 in peaks:
        try:
            stars.append(centroid_gaussian(data, x0, y0, fwhm_px))
        except AstrometryError:
            continue
    if len(stars) < min_stars:
        raise AstrometryError(
            f"only {len(stars)} star(s) detected above {nsigma} sigma (of {len(peaks)} maxima); "
            f"at least {min_stars} are needed"
        )
    ax, ay = float(anamorphism_xy[0]), float(anamorphism_xy[1])
    xy = np.array([[(s["x"] - ref_x) * ax, (s["y"] - ref_y) * ay] for s in stars])
    reference_en = np.asarray(reference_en, float)
    pairs = match_stars(
        xy,
        reference_en,
        expected_scale_mas,
        expected_rotation_deg,
        tolerance_px,
        rotation_search_deg,
        max_shift_px=max_shift_px,
    )
    if len(pairs) < min_stars:
        raise AstrometryError(
            f"only {len(pairs)} of {len(stars)} detected star(s) matched the {len(reference_en)} "
            f"reference position(s); at least {min_stars} are needed (check the reference list covers "
            "the field, the expected plate scale and rotation)"
        )
    det_idx = [i for i, _ in pairs]
    ref_idx = [j for _, j in pairs]
    solution, keep = fit_similarity(
        xy[det_idx], reference_en[ref_idx], min_stars, bootstrap=bootstrap, seed=seed
    )
    k = solution.scale_mas * np.exp(1j * np.radians(solution.rotation_deg))
    model = k * _to_complex_detector(xy[det_idx]) + (solution.offset_mas[1] + 1j * solution.offset_mas[0])
    sky = _to_complex_sky(reference_en[ref_idx])
    table = []
    for n, (i, j) in enumerate(pairs):
        residual = sky[n] - model[n]
        table.append(
            {
                **{key: stars[i][key] for key in ("x", "y", "x_err", "y_err", "flux", "fwhm")},
                "reference": int(j),
                "used": bool(keep[n]),
                "residual_east_mas": float(residual.imag),
                "residual_north_mas": float(residual.real),
            }
        )
    out = {"solution": solution, "detected": len(peaks), "centroided": len(stars), "stars": table}
    if affine:
        out["affine"] = fit_affine(
            xy[det_idx][keep], reference_en[ref_idx][keep], bootstrap=bootstrap, seed=seed
        )
    return out
