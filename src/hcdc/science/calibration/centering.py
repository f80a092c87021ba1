"""Star centring: waffle spots, PSF Gaussian fit, negative Gaussian (vortex dark hole), point symmetry.

Pure functions. Coordinates are pixel ``(x, y)`` of the image passed in (0-based, x = column,
y = row). Angles are counter-clockwise from +x on the detector, in degrees.

Waffle-spot centring (vlt-sphere ``star_centers_from_waffle_img_cube``, sphere.md section d):
the deformable-mirror waffle puts four satellite spots at ``13.72 lambda/D`` from the star,
at angles ``theta + k * 90 deg`` (theta from ``OCS WAFFLE ORIENT``). The pattern is found by a
minimum-of-four matched filter (robust to a central leak tens of times brighter than a spot,
:func:`waffle_pattern_score`), the leak and halo are modelled by their azimuthal median and
subtracted, each spot is fitted by a 2-D Gaussian plus a constant, and the star is the
intersection of the lines joining opposite spots (0-2 and 1-3). The fit is trusted only if the
spots form the expected square (:func:`check_waffle_geometry`).

Errors are measured, never fixed: for waffle centres the larger of the geometric disagreement
(distance between a diagonal's midpoint and the intersection) and the statistical error
propagated from the spot fits' covariances; for Gaussian fits the covariance scaled by the
residuals. A failed fit or a wrong geometry gives an infinite error. When it exceeds a threshold
(0.7 px = 8.6 mas for IRDIS by default) the caller falls back to another method and keeps the
one with the smallest error (:func:`choose_center`). :func:`center_image` runs any method by name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize

__all__ = [
    "CENTERING_ERROR_LIMIT_PX",
    "SpotFit",
    "CenterEstimate",
    "fit_gaussian_spot",
    "waffle_spot_guesses",
    "waffle_pattern_score",
    "waffle_pattern_candidates",
    "find_waffle_pattern",
    "subtract_radial_profile",
    "check_waffle_geometry",
    "line_intersection",
    "center_from_spots",
    "center_from_three_spots",
    "waffle_center",
    "center_psf",
    "center_negative_gaussian",
    "center_by_symmetry",
    "CENTER_METHODS",
    "center_image",
    "choose_center",
    "centers_at_times",
]

# vlt-sphere/issue 4: centring worse than 0.7 px (8.6 mas on IRDIS) triggers a fallback.
CENTERING_ERROR_LIMIT_PX = 0.7


@dataclass
class SpotFit:
    """Result of a 2-D Gaussian + constant fit: centre (px), width (px), amplitude, success."""

    x: float
    y: float
    sigma_x: float
    sigma_y: float
    amplitude: float
    background: float
    success: bool
    message: str = ""
    x_err: float = math.nan  # 1-sigma uncertainty of x (px) from the fit covariance scaled by the residuals
    y_err: float = math.nan


@dataclass
class CenterEstimate:
    """A star-centre estimate ``(x, y)`` in px with its error estimate (px) and the method used."""

    x: float
    y: float
    error: float
    method: str
    spots: np.ndarray | None = None  # (4, 2) fitted spot positions (x, y) for waffle methods
    details: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the error estimate is finite and within :data:`CENTERING_ERROR_LIMIT_PX`."""
        return bool(np.isfinite(self.error) and self.error <= CENTERING_ERROR_LIMIT_PX)


def _gaussian(params: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    amp, x0, y0, sx, sy, bkg = params[:6]
    model = amp * np.exp(-0.5 * (((xx - x0) / sx) ** 2 + ((yy - y0) / sy) ** 2)) + bkg
    if params.size == 8:  # tilted-plane background, slopes per px about the box centre
        model = model + params[6] * (xx - xx.mean()) + params[7] * (yy - yy.mean())
    return model


def _gaussian_residual(params: np.ndarray, yy: np.ndarray, xx: np.ndarray, data: np.ndarray) -> np.ndarray:
    return _gaussian(params, yy, xx) - data


def fit_gaussian_spot(
    image: np.ndarray,
    x0: float,
    y0: float,
    box: int = 16,
    sigma0: float = 1.5,
    max_offset: float | None = None,
    min_snr: float = 5.0,
    plane: bool = False,
) -> SpotFit:
    """Fit a 2-D Gaussian + constant (``plane=True``: + tilted plane) in a ``box`` x ``box`` window.

    The window is centred on the pixel nearest ``(x0, y0)``. The fitted centre must stay within
    ``max_offset`` px of it (default ``box / 2 - 1``) and the amplitude must exceed ``min_snr``
    times the robust noise of the residuals; otherwise ``success`` is False (with the reason in
    ``message``). NaN pixels are ignored. ``x_err``/``y_err`` (px) are the 1-sigma uncertainties of
    the centre from the fit covariance scaled by the residual variance, so that a model that fits
    badly (or a spot on speckles) reports a larger error than a clean one.
    """
    image = np.asarray(image, dtype=np.float64)
    ny, nx = image.shape
    half = box // 2
    ix, iy = int(round(x0)), int(round(y0))
    x_lo, x_hi = max(ix - half, 0), min(ix + half, nx)
    y_lo, y_hi = max(iy - half, 0), min(iy + half, ny)
    fail = SpotFit(float(x0), float(y0), math.nan, math.nan, math.nan, math.nan, False)
    if x_hi - x_lo < 5 or y_hi - y_lo < 5:
        fail.message = "fitting box outside the image"
        return fail
    sub = image[y_lo:y_hi, x_lo:x_hi]
    yy, xx = np.mgrid[y_lo:y_hi, x_lo:x_hi].astype(np.float64)
    good = np.isfinite(sub)
    n_par = 8 if plane else 6
    if good.sum() < max(10, 2 * n_par):
        fail.message = "too few valid pixels in the fitting box"
        return fail
    data, yy, xx = sub[good], yy[good], xx[good]
    bkg0 = float(np.median(data))
    peak = int(np.argmax(data))
    amp0 = max(float(data[peak]) - bkg0, 1e-12)
    start = np.array([amp0, xx[peak], yy[peak], sigma0, sigma0, bkg0] + [0.0, 0.0] * plane)
    limit = (box / 2 - 1) if max_offset is None else max_offset
    lower = [0.0, ix - limit, iy - limit, 0.4, 0.4, -np.inf] + [-np.inf, -np.inf] * plane
    upper = [np.inf, ix + limit, iy + limit, 4 * box, 4 * box, np.inf] + [np.inf, np.inf] * plane
    start[1] = np.clip(start[1], lower[1] + 1e-6, upper[1] - 1e-6)
    start[2] = np.clip(start[2], lower[2] + 1e-6, upper[2] - 1e-6)
    try:
        result = optimize.least_squares(
            lambda p: _gaussian(p, yy, xx) - data, start, bounds=(lower, upper), method="trf", x_scale="jac"
        )
    except (ValueError, np.linalg.LinAlgError) as exc:
        fail.message = f"fit failed: {exc}"
        return fail
    amp, xc, yc, sx, sy, bkg = result.x[:6]
    residual = result.fun
    noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    x_err, y_err = _centre_uncertainty(result.jac, residual, n_par)
    fit = SpotFit(float(xc), float(yc), float(sx), float(sy), float(amp), float(bkg), True, "", x_err, y_err)
    if not result.success:
        fit.success, fit.message = False, f"optimizer: {result.message}"
    elif abs(xc - ix) >= limit - 1e-3 or abs(yc - iy) >= limit - 1e-3:
        fit.success, fit.message = False, "fitted centre at the edge of the allowed region"
    elif noise > 0 and amp < min_snr * noise:
        fit.success, fit.message = False, f"spot too faint (S/N {amp / noise:.1f} < {min_snr})"
    elif sx > box or sy > box:
        fit.success, fit.message = False, "fitted width larger than the box"
    return fit


def _centre_uncertainty(jac: np.ndarray, residual: np.ndarray, n_par: int) -> tuple[float, float]:
    """1-sigma errors (px) of parameters 1 and 2 (x, y) of a least-squares fit.

    Covariance = (J^T J)^-1 * chi2 / (n - p): the residual variance stands in for the unknown
    pixel noise, so model mismatch (speckles under a spot, a non-Gaussian PSF) inflates it.
    """
    dof = residual.size - n_par
    if dof <= 0:
        return math.inf, math.inf
    jac = np.asarray(jac, dtype=np.float64)
    try:
        cov = np.linalg.pinv(jac.T @ jac) * float(residual @ residual) / dof
    except np.linalg.LinAlgError:
        return math.inf, math.inf
    var = np.diag(cov)
    if not (np.isfinite(var[1]) and np.isfinite(var[2])):
        return math.inf, math.inf
    return float(np.sqrt(max(var[1], 0.0))), float(np.sqrt(max(var[2], 0.0)))


def waffle_spot_guesses(center_xy: tuple[float, float], radius: float, orientation_deg: float) -> np.ndarray:
    """Expected (x, y) of the 4 waffle spots: ``center + radius * (cos, sin)(theta + k * 90 deg)``."""
    angles = np.radians(orientation_deg + 90.0 * np.arange(4))
    cx, cy = center_xy
    return np.column_stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)])


def _highpass(image: np.ndarray, sigma: float) -> np.ndarray:
    img = np.nan_to_num(np.asarray(image, dtype=np.float64))
    return img - ndimage.gaussian_filter(img, sigma)


#: Score given to star positions whose pattern leaves the image.
_OUTSIDE = -1e30


def waffle_pattern_score(
    image: np.ndarray,
    radius: float,
    orientation_deg: float,
    spot_sigma: float = 1.5,
    margin: float = 0.0,
) -> np.ndarray:
    """Map of how well a four-spot pattern centred on each pixel matches the image (S/N units).

    The image is cleaned of isolated bad pixels (3 x 3 median), high-passed (Gaussian of
    ``3 spot_sigma`` subtracted: removes the halo and the wings of the central leak) and
    matched-filtered with a Gaussian of ``spot_sigma``. The score of a star position is the
    *smallest* of the four filtered values at its expected spot positions, in units of the
    map's robust noise: a bright central leak (up to ~30 times a spot on sky) or a bright
    speckle can raise one of the four values but never all four, whereas a summed template is
    dominated by it and locks the pattern onto a spot. Positions whose spots fall within
    ``margin`` px of the edge get a score of -1e30.
    """
    img = np.asarray(image, dtype=np.float64)
    finite = np.isfinite(img)
    fill = float(np.median(img[finite])) if finite.any() else 0.0
    img = ndimage.median_filter(np.where(finite, img, fill), size=3)
    filtered = ndimage.gaussian_filter(img - ndimage.gaussian_filter(img, 3.0 * spot_sigma), spot_sigma)
    noise = 1.4826 * float(np.median(np.abs(filtered - np.median(filtered))))
    snr = filtered / noise if noise > 0 else filtered
    ny, nx = snr.shape
    score = np.full(snr.shape, np.inf)
    yy, xx = np.indices(snr.shape)
    for sx, sy in waffle_spot_guesses((0.0, 0.0), radius, orientation_deg):
        # Value at (x + sx, y + sy) for every star position (x, y), bilinear.
        moved = ndimage.shift(snr, (-sy, -sx), order=1, mode="constant", cval=_OUTSIDE)
        inside = (
            (xx + sx >= margin)
            & (xx + sx <= nx - 1 - margin)
            & (yy + sy >= margin)
            & (yy + sy <= ny - 1 - margin)
        )
        score = np.minimum(score, np.where(inside, moved, _OUTSIDE))
    return score


def waffle_pattern_candidates(
    image: np.ndarray,
    radius: float,
    orientation_deg: float,
    spot_sigma: float = 1.5,
    guess_xy: tuple[float, float] | None = None,
    search_radius: float | None = None,
    n: int = 5,
    margin: float = 0.0,
) -> list[tuple[float, float, float]]:
    """Up to ``n`` coarse star positions ``(x, y, score)`` (integer px), best first.

    Local maxima of :func:`waffle_pattern_score` at least 3 px apart, restricted to
    ``search_radius`` px of ``guess_xy`` when both are given (anywhere the whole pattern fits in
    the image otherwise).
    """
    score = waffle_pattern_score(image, radius, orientation_deg, spot_sigma, margin)
    if guess_xy is not None and search_radius is not None:
        yy, xx = np.indices(score.shape)
        far = np.hypot(xx - guess_xy[0], yy - guess_xy[1]) > search_radius
        score = np.where(far, _OUTSIDE, score)
    peaks = (score == ndimage.maximum_filter(score, size=7, mode="nearest")) & (score > 0.5 * _OUTSIDE)
    iy, ix = np.nonzero(peaks)
    order = np.argsort(score[iy, ix])[::-1]
    found: list[tuple[float, float, float]] = []
    for j in order:
        x, y = float(ix[j]), float(iy[j])
        if all(math.hypot(x - fx, y - fy) >= 3.0 for fx, fy, _ in found):
            found.append((x, y, float(score[iy[j], ix[j]])))
        if len(found) == n:
            break
    if not found:  # e.g. a flat image: fall back to the single best position
        k = int(np.argmax(score))
        found.append((float(k % score.shape[1]), float(k // score.shape[1]), float(score.flat[k])))
    return found


def find_waffle_pattern(
    image: np.ndarray,
    radius: float,
    orientation_deg: float,
    spot_sigma: float = 1.5,
    guess_xy: tuple[float, float] | None = None,
    search_radius: float | None = None,
) -> tuple[float, float]:
    """Coarse star position (integer px) where the four-spot pattern matches the image best.

    The best of :func:`waffle_pattern_candidates` (minimum-of-four matched filter, robust to a
    bright central leak), within ``search_radius`` of ``guess_xy`` (anywhere if not given).
    """
    x, y, _ = waffle_pattern_candidates(
        image, radius, orientation_deg, spot_sigma, guess_xy, search_radius, 1
    )[0]
    return x, y


def subtract_radial_profile(image: np.ndarray, center_xy: tuple[float, float], r_max: float) -> np.ndarray:
    """``image`` minus its azimuthal median profile about ``center_xy`` (1-px annuli up to ``r_max``).

    Models the coronagraphic leak and the halo, which are round to first order, so that spot
    fits see a flat background instead of the steep wings of a leak many times brighter than
    the spots. The spots fill a few per cent of each annulus and barely move the median.
    Pixels beyond ``r_max`` are returned unchanged; NaN pixels stay NaN.
    """
    image = np.asarray(image, dtype=np.float64)
    yy, xx = np.indices(image.shape)
    r = np.hypot(xx - center_xy[0], yy - center_xy[1])
    inside = (r <= r_max) & np.isfinite(image)
    ring = np.floor(r[inside]).astype(np.int64)
    n_ring = int(ring.max()) + 1 if ring.size else 0
    profile = np.nan_to_num(np.asarray(ndimage.median(image[inside], labels=ring, index=np.arange(n_ring))))
    out = image.copy()
    out[inside] = image[inside] - profile[np.floor(r[inside]).astype(np.int64)]
    return out


def line_intersection(p0: np.ndarray, p2: np.ndarray, p1: np.ndarray, p3: np.ndarray) -> np.ndarray:
    """Intersection (x, y) of line p0-p2 with line p1-p3 (NaN when parallel)."""
    d1, d2 = p2 - p0, p3 - p1
    denom = d1[0] * d2[1] - d1[1] * d2[0]
    if abs(denom) < 1e-12:
        return np.array([np.nan, np.nan])
    t = ((p1[0] - p0[0]) * d2[1] - (p1[1] - p0[1]) * d2[0]) / denom
    return p0 + t * d1


def center_from_spots(spots: np.ndarray) -> tuple[np.ndarray, float]:
    """Star centre from four spots ``(4, 2)`` (x, y): intersection of diagonals 0-2 and 1-3.

    Returns ``(centre, error)`` with ``error`` the larger distance (px) between a diagonal's
    midpoint and the intersection (0 for a perfect square or parallelogram-free geometry).
    """
    spots = np.asarray(spots, dtype=np.float64)
    centre = line_intersection(spots[0], spots[2], spots[1], spots[3])
    if not np.all(np.isfinite(centre)):
        return centre, math.inf
    mid02 = 0.5 * (spots[0] + spots[2])
    mid13 = 0.5 * (spots[1] + spots[3])
    error = max(np.hypot(*(mid02 - centre)), np.hypot(*(mid13 - centre)))
    return centre, float(error)


def center_from_three_spots(spots: np.ndarray, usable: np.ndarray | None = None) -> CenterEstimate:
    """Star centre from three of the four spots, leaving out the one that fits the square worst.

    For each candidate spot ``k`` left out, the centre is the midpoint of the opposite pair
    ``(k+1, k+3)``; the third spot ``k+2`` must then sit at that pair's half-diagonal,
    perpendicular to it. The error estimate is that spot's distance from its predicted position
    (px). ``usable`` (4 booleans) restricts which spots may be kept (failed fits are excluded).
    """
    spots = np.asarray(spots, dtype=np.float64)
    usable = np.ones(4, dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    best: CenterEstimate | None = None
    for k in range(4):
        a, b, c = (k + 1) % 4, (k + 3) % 4, (k + 2) % 4
        if not (usable[a] and usable[b] and usable[c]):
            continue
        mid = 0.5 * (spots[a] + spots[b])
        half = spots[a] - mid
        # Spot c is 90 deg after a going round (a = k+1, c = k+2).
        predicted = mid + np.array([-half[1], half[0]])
        error = float(np.hypot(*(spots[c] - predicted)))
        if best is None or error < best.error:
            best = CenterEstimate(
                float(mid[0]), float(mid[1]), error, "waffle-3spot", spots.copy(), {"left_out_spot": k}
            )
    if best is None:
        return CenterEstimate(math.nan, math.nan, math.inf, "waffle-3spot", spots.copy())
    return best


def check_waffle_geometry(
    spots: np.ndarray,
    center_xy: tuple[float, float],
    radius: float,
    orientation_deg: float,
    usable: np.ndarray | None = None,
    size_tolerance: float = 0.05,
    angle_tolerance_deg: float = 5.0,
) -> str:
    """Check that fitted spots form the expected pattern about ``center_xy``; '' if they do.

    Each usable spot ``k`` must lie ``radius`` px (within ``size_tolerance``, relative) from the
    centre at the angle ``orientation_deg + k * 90`` (within ``angle_tolerance_deg``). Otherwise
    the reason is returned: four Gaussian fits that each converged on *something* (a speckle, the
    leak's wings) are not trusted unless together they make the square of the right size.
    """
    spots = np.asarray(spots, dtype=np.float64)
    usable = np.ones(len(spots), dtype=bool) if usable is None else np.asarray(usable, dtype=bool)
    if not np.all(np.isfinite(center_xy)):
        return "no centre"
    problems = []
    for k in np.flatnonzero(usable):
        dx, dy = spots[k, 0] - center_xy[0], spots[k, 1] - center_xy[1]
        dist = math.hypot(dx, dy)
        if abs(dist / radius - 1.0) > size_tolerance:
            problems.append(f"spot {k} at {dist:.1f} px from the centre (expected {radius:.1f})")
        turn = (math.degrees(math.atan2(dy, dx)) - orientation_deg - 90.0 * k + 180.0) % 360.0 - 180.0
        if abs(turn) > angle_tolerance_deg:
            problems.append(f"spot {k} {turn:+.1f} deg off its expected angle")
    return "; ".join(problems)


def _spots_error(fits: list[SpotFit], use: list[int], weight: float) -> float:
    """Statistical centre error (px) of a centre = ``weight`` x the sum of the spots ``use``."""
    var = sum(fits[k].x_err ** 2 + fits[k].y_err ** 2 for k in use)
    return float(weight * math.sqrt(var)) if np.isfinite(var) else math.inf


def _waffle_at(
    image: np.ndarray,
    coarse: tuple[float, float],
    radius: float,
    orientation_deg: float,
    box: int,
    spot_sigma: float,
    error_limit: float,
    size_tolerance: float,
    angle_tolerance_deg: float,
) -> CenterEstimate:
    """Fit the four spots around one coarse star position; four-spot or three-spot estimate."""
    # The leak and the halo (round) are modelled by their azimuthal median and removed first.
    flat = subtract_radial_profile(image, coarse, radius + box)
    guesses = waffle_spot_guesses(coarse, radius, orientation_deg)
    fits = [fit_gaussian_spot(flat, gx, gy, box=box, sigma0=spot_sigma) for gx, gy in guesses]
    spots = np.array([[f.x, f.y] for f in fits])
    ok = np.array([f.success for f in fits])
    details: dict = {
        "coarse_xy": coarse,
        "spot_fit_ok": ok.tolist(),
        "spot_messages": [f.message for f in fits],
    }
    four = CenterEstimate(math.nan, math.nan, math.inf, "waffle", spots, dict(details))
    if not ok.all():
        four.details["message"] = "; ".join(f"spot {k}: {fits[k].message}" for k in np.flatnonzero(~ok))
    if ok.all():
        centre, geometric = center_from_spots(spots)
        # The intersection is about the mean of the four spots: error = sqrt(sum var) / 4.
        statistical = _spots_error(fits, [0, 1, 2, 3], 0.25)
        four = CenterEstimate(
            float(centre[0]), float(centre[1]), max(geometric, statistical), "waffle", spots, dict(details)
        )
        four.details.update(geometric_error=geometric, statistical_error=statistical)
        reason = check_waffle_geometry(
            spots, (four.x, four.y), radius, orientation_deg, None, size_tolerance, angle_tolerance_deg
        )
        if reason:
            four.details["geometry"] = reason
            four.error = math.inf
    if four.error <= error_limit or ok.sum() < 3:
        return four
    three = center_from_three_spots(spots, ok)
    three.details.update(details)
    three.details["four_spot_error"] = four.error
    if np.isfinite(three.error):
        k = three.details["left_out_spot"]
        kept = [(k + 1) % 4, (k + 2) % 4, (k + 3) % 4]
        # The centre is the midpoint of the pair (k+1, k+3): error = sqrt(var_a + var_b) / 2.
        three.error = max(three.error, _spots_error(fits, [kept[0], kept[2]], 0.5))
        usable = np.zeros(4, dtype=bool)
        usable[kept] = True
        reason = check_waffle_geometry(
            spots, (three.x, three.y), radius, orientation_deg, usable, size_tolerance, angle_tolerance_deg
        )
        if reason:
            three.details["geometry"] = reason
            three.error = math.inf
    return three if three.error < four.error else four


def waffle_center(
    image: np.ndarray,
    radius: float,
    orientation_deg: float,
    guess_xy: tuple[float, float] | None = None,
    box: int = 16,
    spot_sigma: float = 1.5,
    search_radius: float | None = None,
    mask_radius: float | None = None,
    error_limit: float = CENTERING_ERROR_LIMIT_PX,
    size_tolerance: float = 0.05,
    angle_tolerance_deg: float = 5.0,
    n_candidates: int = 5,
) -> CenterEstimate:
    """Star centre of a waffle (OBJECT,CENTER) image from its four satellite spots.

    ``radius`` is the spot distance (px, 13.72 lambda/D at the band's wavelength),
    ``orientation_deg`` the angle of spot 0; ``spot_sigma`` the expected spot width (px).

    Without ``guess_xy`` (Level 1's call on coronagraphic frames) the search uses only what is
    known: the spot distance and orientation, and that the star is in the window with its four
    spots (:func:`waffle_pattern_candidates`, whose minimum-of-four score ignores a central
    leak tens of times brighter than a spot). Up to ``n_candidates`` coarse positions are tried,
    best first; at each, the azimuthal median profile (leak and halo) is subtracted, the four
    spots are fitted, and the result is trusted only if the spots form the expected square
    (:func:`check_waffle_geometry`: ``size_tolerance`` relative, ``angle_tolerance_deg``).
    ``guess_xy`` with ``search_radius`` restricts the search; ``mask_radius`` (px) blanks a disc
    around ``guess_xy`` (used without coronagraph, vlt-sphere masks 5 lambda/D).

    The error (px) is the larger of the geometric disagreement (distance between a diagonal's
    midpoint and the intersection) and the statistical error propagated from the four fits'
    covariances. When the four-spot error exceeds ``error_limit`` the best three spots are tried
    (method ``waffle-3spot``). When no candidate gives the expected geometry the best attempt is
    returned with an infinite error and the reason in ``details['geometry']``, so that callers
    fall back to another method (:func:`choose_center`).
    """
    image = np.asarray(image, dtype=np.float64)
    work = image
    if mask_radius is not None and guess_xy is not None:
        yy, xx = np.indices(image.shape)
        work = np.where(np.hypot(xx - guess_xy[0], yy - guess_xy[1]) < mask_radius, np.nan, image)
    candidates = waffle_pattern_candidates(
        work, radius, orientation_deg, spot_sigma, guess_xy, search_radius, n_candidates, margin=box / 2
    )
    best: CenterEstimate | None = None
    tried = []
    for cx, cy, score in candidates:
        est = _waffle_at(
            work,
            (cx, cy),
            radius,
            orientation_deg,
            box,
            spot_sigma,
            error_limit,
            size_tolerance,
            angle_tolerance_deg,
        )
        est.details["pattern_score"] = score
        tried.append({"coarse_xy": (cx, cy), "score": score, "error": est.error, "method": est.method})
        if best is None or est.error < best.error:
            best = est
        if est.error <= error_limit:
            break
    assert best is not None  # waffle_pattern_candidates always returns at least one position
    best.details["candidates"] = tried
    return best


def center_psf(
    image: np.ndarray,
    guess_xy: tuple[float, float] | None = None,
    box: int = 16,
    sigma0: float = 1.5,
    border_fraction: float = 0.3,
) -> CenterEstimate:
    """Centre of an unsaturated PSF (OBJECT,FLUX) by a 2-D Gaussian fit of its peak.

    Without ``guess_xy`` the peak of the smoothed image is searched away from the borders
    (``border_fraction`` of each side excluded, vlt-sphere uses 30 % for IRDIS). The error
    (px) is the measured one, ``hypot(x_err, y_err)`` of the fit (covariance scaled by the
    residuals: a PSF that a Gaussian describes badly gets a larger error), infinite on failure.
    """
    image = np.asarray(image, dtype=np.float64)
    if guess_xy is None:
        smooth = ndimage.gaussian_filter(np.nan_to_num(image), sigma0)
        ny, nx = image.shape
        by, bx = int(ny * border_fraction), int(nx * border_fraction)
        inner = np.full(image.shape, -np.inf)
        inner[by : ny - by, bx : nx - bx] = smooth[by : ny - by, bx : nx - bx]
        iy, ix = np.unravel_index(int(np.argmax(inner)), inner.shape)
        guess_xy = (float(ix), float(iy))
    fit = fit_gaussian_spot(image, guess_xy[0], guess_xy[1], box=box, sigma0=sigma0)
    error = math.hypot(fit.x_err, fit.y_err) if fit.success else math.inf
    return CenterEstimate(
        fit.x,
        fit.y,
        error,
        "psf-gaussian",
        None,
        {"message": fit.message, "sigma_xy": (fit.sigma_x, fit.sigma_y)},
    )


def center_negative_gaussian(
    image: np.ndarray,
    guess_xy: tuple[float, float] | None = None,
    fwhm: float = 4.0,
    search_radius: float | None = None,
    fit_radius: float | None = None,
) -> CenterEstimate:
    """Star centre of a vortex / AGPM coronagraphic frame: its dark hole fitted by a negative Gaussian.

    A vortex removes the star's light in a small dark hole exactly at the star, surrounded by a
    ring of residual light about ``0.65 fwhm`` away (VIP re-centres such frames with a negative
    2-D Gaussian fit). Steps: (1) coarse position = where the mean of that ring exceeds the
    (1-px-smoothed) image the most, within ``search_radius`` px (default ``1.5 fwhm``) of
    ``guess_xy`` (default: the image centre ``((nx - 1) / 2, (ny - 1) / 2)``); (2) a 2-D Gaussian
    + constant is fitted to the negated image over the pixels within ``fit_radius`` (default
    ``0.75 fwhm``, inside the ring, so that the darker sky beyond the ring does not pull the
    fit) of the coarse position, then once more around the result. ``fwhm`` (px) is the PSF's.
    Error (px): ``hypot(x_err, y_err)`` from the fit covariance; infinite on failure.
    """
    image = np.asarray(image, dtype=np.float64)
    ny, nx = image.shape
    gx, gy = ((nx - 1) / 2.0, (ny - 1) / 2.0) if guess_xy is None else guess_xy
    search = 1.5 * fwhm if search_radius is None else search_radius
    r_fit = 0.75 * fwhm if fit_radius is None else fit_radius
    finite = np.isfinite(image)
    smooth = ndimage.gaussian_filter(np.where(finite, image, np.median(image[finite])), 1.0)
    r_ring = 0.65 * fwhm
    k = int(math.ceil(r_ring + 1))
    ky, kx = np.mgrid[-k : k + 1, -k : k + 1]
    ring = (np.abs(np.hypot(kx, ky) - r_ring) <= 0.75).astype(np.float64)
    depth = ndimage.correlate(smooth, ring / ring.sum(), mode="nearest") - smooth
    yy, xx = np.indices(image.shape)
    depth = np.where(np.hypot(xx - gx, yy - gy) <= search, depth, -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(depth)), depth.shape)
    x, y = float(ix), float(iy)
    fail = CenterEstimate(math.nan, math.nan, math.inf, "negative-gaussian", None, {"coarse_xy": (x, y)})
    result = None
    for _ in range(2):
        sel = finite & (np.hypot(xx - x, yy - y) <= r_fit)
        if sel.sum() < 10:
            fail.details["message"] = (
                f"fewer than 10 valid pixels within {r_fit:.1f} px of ({x:.1f}, {y:.1f})"
            )
            return fail
        data, sx, sy = -image[sel], xx[sel].astype(np.float64), yy[sel].astype(np.float64)
        start = np.array(
            [
                max(float(data.max() - data.min()), 1e-12),
                x,
                y,
                fwhm / 2.3548,
                fwhm / 2.3548,
                float(data.min()),
            ]
        )
        lower = [0.0, x - r_fit, y - r_fit, 0.3, 0.3, -np.inf]
        upper = [np.inf, x + r_fit, y + r_fit, 4.0 * fwhm, 4.0 * fwhm, np.inf]
        try:
            result = optimize.least_squares(
                _gaussian_residual,
                start,
                args=(sy, sx, data),
                bounds=(lower, upper),
                method="trf",
                x_scale="jac",
            )
        except (ValueError, np.linalg.LinAlgError) as exc:
            fail.details["message"] = f"fit failed: {exc}"
            return fail
        moved = math.hypot(result.x[1] - x, result.x[2] - y)
        x, y = float(result.x[1]), float(result.x[2])
        if moved < 0.25:
            break
    assert result is not None
    x_err, y_err = _centre_uncertainty(result.jac, result.fun, 6)
    details = {"coarse_xy": fail.details["coarse_xy"], "sigma_xy": (float(result.x[3]), float(result.x[4]))}
    if not result.success or math.hypot(
        x - fail.details["coarse_xy"][0], y - fail.details["coarse_xy"][1]
    ) >= 0.99 * r_fit * math.sqrt(2):
        details["message"] = "fit did not converge inside the dark hole"
        return CenterEstimate(x, y, math.inf, "negative-gaussian", None, details)
    return CenterEstimate(x, y, math.hypot(x_err, y_err), "negative-gaussian", None, details)


def _symmetry_offset(
    cutout: np.ndarray, weight: np.ndarray, start: tuple[float, float], iterations: int = 20
) -> tuple[float, float]:
    """Offset (dx, dy) of the point-symmetry centre from the centre pixel of an odd square ``cutout``.

    Minimises ``sum(weight * D**2)`` with ``D = S(-d) A - S(d) B`` (``A`` the cutout, ``B`` its
    point reflection, ``S`` a sub-pixel Fourier shift): ``D`` is the centred image minus its
    180-degree rotation. Gauss-Newton iterations with analytic Fourier derivatives; each step is
    limited to 1 px so that a start a few pixels off still converges.
    """
    ny, nx = cutout.shape
    fa = np.fft.fft2(cutout)
    fb = np.fft.fft2(cutout[::-1, ::-1])
    ky = 2.0 * np.pi * np.fft.fftfreq(ny)[:, None]
    kx = 2.0 * np.pi * np.fft.fftfreq(nx)[None, :]
    dx, dy = start
    sw = np.sqrt(weight)
    for _ in range(iterations):
        pa = fa * np.exp(1j * (kx * dx + ky * dy))  # S(-d) A
        pb = fb * np.exp(-1j * (kx * dx + ky * dy))  # S(d) B
        resid = np.fft.ifft2(pa - pb).real * sw
        summed = pa + pb
        jx = np.fft.ifft2(1j * kx * summed).real * sw
        jy = np.fft.ifft2(1j * ky * summed).real * sw
        jac = np.column_stack([jx.ravel(), jy.ravel()])
        try:
            step = -np.linalg.solve(jac.T @ jac, jac.T @ resid.ravel())
        except np.linalg.LinAlgError:
            break
        step = np.clip(step, -1.0, 1.0)
        dx, dy = dx + float(step[0]), dy + float(step[1])
        if np.hypot(*step) < 1e-4:
            break
    return float(dx), float(dy)


def center_by_symmetry(
    image: np.ndarray, guess_xy: tuple[float, float], r_in: float, r_out: float, smooth_px: float = 1.0
) -> CenterEstimate:
    """Star centre from the point symmetry of the halo in an annulus ``[r_in, r_out]`` px.

    Finds the sub-pixel shift that makes the image (smoothed by a Gaussian of ``smooth_px``)
    equal to its 180-degree rotation inside the annulus (the coronagraphic halo and the speckle
    envelope are symmetric on average; see :func:`_symmetry_offset`). The error estimate is half
    the disagreement between the centres found on the inner and outer halves of the annulus.
    """
    image = np.nan_to_num(np.asarray(image, dtype=np.float64))
    gx, gy = int(round(guess_xy[0])), int(round(guess_xy[1]))
    half = int(math.ceil(r_out)) + 8  # margin: Fourier shifts wrap around the cutout
    ny, nx = image.shape
    if gx - half < 0 or gy - half < 0 or gx + half + 1 > nx or gy + half + 1 > ny:
        return CenterEstimate(
            math.nan, math.nan, math.inf, "symmetry", None, {"message": "cutout off the image"}
        )
    cutout = image[gy - half : gy + half + 1, gx - half : gx + half + 1]
    if smooth_px > 0:
        # Pixel-scale noise carries no centring information and makes the cost surface rough.
        cutout = ndimage.gaussian_filter(cutout, smooth_px)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    rr = np.hypot(xx, yy)
    ring = ((rr >= r_in) & (rr <= r_out)).astype(np.float64)
    dx, dy = _symmetry_offset(cutout, ring, (0.0, 0.0))
    r_mid = 0.5 * (r_in + r_out)
    inner = ((rr >= r_in) & (rr < r_mid)).astype(np.float64)
    outer = ((rr >= r_mid) & (rr <= r_out)).astype(np.float64)
    dxi, dyi = _symmetry_offset(cutout, inner, (dx, dy))
    dxo, dyo = _symmetry_offset(cutout, outer, (dx, dy))
    error = 0.5 * float(np.hypot(dxi - dxo, dyi - dyo))
    return CenterEstimate(
        gx + dx,
        gy + dy,
        error,
        "symmetry",
        None,
        {"inner_xy": (gx + dxi, gy + dyi), "outer_xy": (gx + dxo, gy + dyo)},
    )


#: Methods of :func:`center_image` (the Level 1 centring methods).
CENTER_METHODS = ("waffle", "psf", "negative-gaussian", "symmetry")


def center_image(
    image: np.ndarray,
    method: str,
    lambda_over_d: float,
    *,
    waffle_radius: float | None = None,
    waffle_orientations_deg: tuple[float, ...] = (0.0, 45.0),
    fwhm: float | None = None,
    guess_xy: tuple[float, float] | None = None,
) -> CenterEstimate:
    """Star centre of one image by one of :data:`CENTER_METHODS`, with no other prior knowledge.

    ``lambda_over_d`` (px) sets the scales: the PSF ``fwhm`` (default ``1.03 lambda/D``), the
    waffle spot width, the symmetry annulus (3 to 26 lambda/D, or as much as fits). ``waffle``
    needs ``waffle_radius`` (px, 13.72 lambda/D for SPHERE) and tries each orientation of
    ``waffle_orientations_deg`` (default: both '+' and 'x' patterns of IRDIS), keeping the
    smallest error. ``guess_xy`` defaults to the image centre ``((nx - 1) / 2, (ny - 1) / 2)`` for
    the methods that need a starting point (negative-gaussian, symmetry); ``waffle`` and ``psf``
    search the image. Returns the estimate (error infinite when the method failed; its
    ``details['message']`` or ``details['geometry']`` says why).
    """
    image = np.asarray(image, dtype=np.float64)
    ny, nx = image.shape
    fwhm = 1.03 * lambda_over_d if fwhm is None else fwhm
    sigma = fwhm / 2.3548
    centre = ((nx - 1) / 2.0, (ny - 1) / 2.0) if guess_xy is None else guess_xy
    if method == "waffle":
        if waffle_radius is None:
            raise ValueError("waffle centring needs the spot distance waffle_radius (px)")
        found = [
            waffle_center(image, waffle_radius, theta, guess_xy=guess_xy, spot_sigma=sigma)
            for theta in waffle_orientations_deg
        ]
        return min(found, key=lambda e: e.error)
    if method == "psf":
        return center_psf(image, guess_xy, box=max(16, 2 * int(math.ceil(2 * fwhm))), sigma0=sigma)
    if method == "negative-gaussian":
        return center_negative_gaussian(image, centre, fwhm=fwhm)
    if method == "symmetry":
        room = min(centre[0], centre[1], nx - 1 - centre[0], ny - 1 - centre[1]) - 9.0
        r_out = min(26.0 * lambda_over_d, room)
        r_in = min(3.0 * lambda_over_d, r_out / 3.0)
        if r_out < 4.0:
            return CenterEstimate(
                math.nan, math.nan, math.inf, "symmetry", None, {"message": "image too small"}
            )
        return center_by_symmetry(np.nan_to_num(image), centre, r_in, r_out)
    raise ValueError(f"unknown centring method {method!r}; use one of {', '.join(CENTER_METHODS)}")


def choose_center(*candidates: CenterEstimate | None) -> CenterEstimate:
    """The candidate with the smallest finite error (the first one wins ties)."""
    present = [c for c in candidates if c is not None and np.isfinite(c.x) and np.isfinite(c.y)]
    if not present:
        raise ValueError("no usable centre estimate among the candidates")
    return min(present, key=lambda c: c.error if np.isfinite(c.error) else math.inf)


def centers_at_times(
    center_times: np.ndarray, centers_xy: np.ndarray, frame_times: np.ndarray, mode: str = "interpolate"
) -> np.ndarray:
    """Star centres (n_frames, 2) at ``frame_times`` from centres measured at ``center_times``.

    ``mode='nearest'``: the centre measured nearest in time. ``mode='interpolate'``: linear
    interpolation between the measurements before and after, the nearest one outside their
    time range (no extrapolation). Times in any common unit (e.g. MJD).
    """
    ct = np.asarray(center_times, dtype=np.float64).ravel()
    cxy = np.asarray(centers_xy, dtype=np.float64).reshape(-1, 2)
    ft = np.asarray(frame_times, dtype=np.float64).ravel()
    if ct.size == 0 or ct.size != cxy.shape[0]:
        raise ValueError(f"need one centre per time; got {ct.size} times and {cxy.shape[0]} centres")
    order = np.argsort(ct)
    ct, cxy = ct[order], cxy[order]
    if mode == "nearest" or ct.size == 1:
        idx = np.abs(ft[:, None] - ct[None, :]).argmin(axis=1)
        return cxy[idx]
    if mode != "interpolate":
        raise ValueError(f"unknown mode {mode!r}; use 'nearest' or 'interpolate'")
    return np.column_stack([np.interp(ft, ct, cxy[:, 0]), np.interp(ft, ct, cxy[:, 1])])
