"""Star centring: waffle spots, PSF Gaussian fit, point-symmetry fallback (pure functions).

Coordinates are pixel ``(x, y)`` of the image passed in (0-based, x = column, y = row).
Angles are counter-clockwise from +x on the detector, in degrees.

Waffle-spot centring (vlt-sphere ``star_centers_from_waffle_img_cube``, sphere.md section d):
the deformable-mirror waffle puts four satellite spots at ``13.72 lambda/D`` from the star,
at angles ``theta + k * 90 deg`` (theta from ``OCS WAFFLE ORIENT``). Each spot is fitted by a
2-D Gaussian plus a constant in a small box; the star is the intersection of the lines joining
opposite spots (0-2 and 1-3).

Quality: for a perfect square of spots both diagonals' midpoints coincide with that
intersection. The *centring error* reported here is the larger distance between a diagonal's
midpoint and the intersection (pixels); a failed spot fit makes it infinite. When it exceeds a
threshold (0.7 px = 8.6 mas for IRDIS by default) the caller falls back to another method and
keeps the one with the smallest error (:func:`choose_center`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, optimize, signal

__all__ = [
    "CENTERING_ERROR_LIMIT_PX",
    "SpotFit",
    "CenterEstimate",
    "fit_gaussian_spot",
    "waffle_spot_guesses",
    "find_waffle_pattern",
    "line_intersection",
    "center_from_spots",
    "center_from_three_spots",
    "waffle_center",
    "center_psf",
    "center_by_symmetry",
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
    amp, x0, y0, sx, sy, bkg = params
    return amp * np.exp(-0.5 * (((xx - x0) / sx) ** 2 + ((yy - y0) / sy) ** 2)) + bkg


def fit_gaussian_spot(
    image: np.ndarray,
    x0: float,
    y0: float,
    box: int = 16,
    sigma0: float = 1.5,
    max_offset: float | None = None,
    min_snr: float = 5.0,
) -> SpotFit:
    """Fit a 2-D Gaussian + constant in a ``box`` x ``box`` window around ``(x0, y0)``.

    The fitted centre must stay within ``max_offset`` px of the window centre (default
    ``box / 2 - 1``) and the amplitude must exceed ``min_snr`` times the robust noise of the
    window; otherwise ``success`` is False (with the reason in ``message``). NaN pixels are
    ignored.
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
    if good.sum() < 10:
        fail.message = "too few valid pixels in the fitting box"
        return fail
    data, yy, xx = sub[good], yy[good], xx[good]
    bkg0 = float(np.median(data))
    peak = int(np.argmax(data))
    amp0 = max(float(data[peak]) - bkg0, 1e-12)
    start = np.array([amp0, xx[peak], yy[peak], sigma0, sigma0, bkg0])
    limit = (box / 2 - 1) if max_offset is None else max_offset
    lower = [0.0, ix - limit, iy - limit, 0.4, 0.4, -np.inf]
    upper = [np.inf, ix + limit, iy + limit, 4 * box, 4 * box, np.inf]
    start[1] = np.clip(start[1], lower[1] + 1e-6, upper[1] - 1e-6)
    start[2] = np.clip(start[2], lower[2] + 1e-6, upper[2] - 1e-6)
    try:
        result = optimize.least_squares(
            lambda p: _gaussian(p, yy, xx) - data, start, bounds=(lower, upper), method="trf", x_scale="jac"
        )
    except (ValueError, np.linalg.LinAlgError) as exc:
        fail.message = f"fit failed: {exc}"
        return fail
    amp, xc, yc, sx, sy, bkg = result.x
    residual = result.fun
    noise = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    fit = SpotFit(float(xc), float(yc), float(sx), float(sy), float(amp), float(bkg), True)
    if not result.success:
        fit.success, fit.message = False, f"optimizer: {result.message}"
    elif abs(xc - ix) >= limit - 1e-3 or abs(yc - iy) >= limit - 1e-3:
        fit.success, fit.message = False, "fitted centre at the edge of the allowed region"
    elif noise > 0 and amp < min_snr * noise:
        fit.success, fit.message = False, f"spot too faint (S/N {amp / noise:.1f} < {min_snr})"
    elif sx > box or sy > box:
        fit.success, fit.message = False, "fitted width larger than the box"
    return fit


def waffle_spot_guesses(center_xy: tuple[float, float], radius: float, orientation_deg: float) -> np.ndarray:
    """Expected (x, y) of the 4 waffle spots: ``center + radius * (cos, sin)(theta + k * 90 deg)``."""
    angles = np.radians(orientation_deg + 90.0 * np.arange(4))
    cx, cy = center_xy
    return np.column_stack([cx + radius * np.cos(angles), cy + radius * np.sin(angles)])


def _highpass(image: np.ndarray, sigma: float) -> np.ndarray:
    img = np.nan_to_num(np.asarray(image, dtype=np.float64))
    return img - ndimage.gaussian_filter(img, sigma)


def find_waffle_pattern(
    image: np.ndarray,
    radius: float,
    orientation_deg: float,
    spot_sigma: float = 1.5,
    guess_xy: tuple[float, float] | None = None,
    search_radius: float | None = None,
) -> tuple[float, float]:
    """Coarse star position (integer px) where the four-spot pattern matches the image best.

    The high-passed image is correlated with a template of four Gaussians at ``radius`` and
    ``orientation_deg``; the best match within ``search_radius`` of ``guess_xy`` (anywhere if
    not given) is returned. Robust to a default guess that is several pixels off.
    """
    hp = _highpass(image, 3.0 * spot_sigma)
    half = int(math.ceil(radius + 4 * spot_sigma))
    ty, tx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    template = np.zeros_like(tx)
    for sx, sy in waffle_spot_guesses((0.0, 0.0), radius, orientation_deg):
        template += np.exp(-0.5 * ((tx - sx) ** 2 + (ty - sy) ** 2) / spot_sigma**2)
    # Correlation = convolution with the point-reflected template.
    score = signal.fftconvolve(hp, template[::-1, ::-1], mode="same")
    if guess_xy is not None and search_radius is not None:
        yy, xx = np.indices(score.shape)
        far = np.hypot(xx - guess_xy[0], yy - guess_xy[1]) > search_radius
        score = np.where(far, -np.inf, score)
    iy, ix = np.unravel_index(int(np.argmax(score)), score.shape)
    return float(ix), float(iy)


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
) -> CenterEstimate:
    """Star centre of a waffle (OBJECT,CENTER) image from its four satellite spots.

    ``radius`` is the spot distance (px, 13.72 lambda/D at the band's wavelength),
    ``orientation_deg`` the angle of spot 0; ``spot_sigma`` the expected spot width (px). The
    pattern is first located (:func:`find_waffle_pattern`) near ``guess_xy``; ``mask_radius``
    (px) blanks a central disc before fitting (used without coronagraph, vlt-sphere masks
    5 lambda/D). Falls back to the best three spots when the four-spot geometry is off by more
    than ``error_limit`` (default :data:`CENTERING_ERROR_LIMIT_PX`) and three spots agree better.
    """
    image = np.asarray(image, dtype=np.float64)
    work = image
    if mask_radius is not None and guess_xy is not None:
        yy, xx = np.indices(image.shape)
        work = np.where(np.hypot(xx - guess_xy[0], yy - guess_xy[1]) < mask_radius, np.nan, image)
    coarse = find_waffle_pattern(work, radius, orientation_deg, spot_sigma, guess_xy, search_radius)
    guesses = waffle_spot_guesses(coarse, radius, orientation_deg)
    fits = [fit_gaussian_spot(work, gx, gy, box=box, sigma0=spot_sigma) for gx, gy in guesses]
    spots = np.array([[f.x, f.y] for f in fits])
    ok = np.array([f.success for f in fits])
    details = {"coarse_xy": coarse, "spot_fit_ok": ok.tolist(), "spot_messages": [f.message for f in fits]}
    if ok.all():
        centre, error = center_from_spots(spots)
        four = CenterEstimate(float(centre[0]), float(centre[1]), error, "waffle", spots, details)
    else:
        four = CenterEstimate(math.nan, math.nan, math.inf, "waffle", spots, details)
    if four.error <= error_limit or ok.sum() < 3:
        return four
    three = center_from_three_spots(spots, ok)
    three.details.update(details)
    three.details["four_spot_error"] = four.error
    return three if three.error < four.error else four


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
    estimate is the fit's formal centre uncertainty floor of 0.01 px, or infinite on failure.
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
    error = 0.01 if fit.success else math.inf
    return CenterEstimate(fit.x, fit.y, error, "psf-gaussian", None, {"message": fit.message})


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
