"""Integral-field (lenslet) spectrograph calibration: spectra positions, wavelength solution,
extraction of every lenslet's spectrum and resampling onto a regular spatial grid.

Pure numpy functions; the instrument (SPHERE/IFS, :mod:`hcdc.instruments.sphere.ifs.geometry`)
passes its predicted geometry in. Conventions: detector ``x`` = column, ``y`` = row, pixel
centres at integers; a spectrum runs along ``+y``; offsets are rows from a lenslet's trace
centre; wavelengths in nm.

The chain (what the SPHERE pipelines do with SPECPOS, WAVE,LAMP and the IFU flat, simplified):

1. :func:`measure_trace_positions` -- on a white-lamp frame (SPECPOS), each spectrum's column
   (flux-weighted across the trace) and middle (half-way between its two half-maximum edges,
   the edges being the order-sorting filter's), starting from the predicted positions;
   :func:`fit_affine` then fits the whole grid (shift, rotation, scale) and gives per-lenslet
   residuals.
2. :func:`fit_wavelength_solution` -- on the laser frame (WAVE,LAMP), each laser line's row
   centroid in each spectrum; a quadratic offset(lambda) common to all lenslets (the median of
   the exact per-lenslet fits) plus a per-lenslet zero point.
3. :func:`extract_spectra` -- a box of ``2 half_width + 1`` columns summed per row, divided by
   the dispersion (nm/px) at that row's wavelength, interpolated at the output wavelengths:
   ADU/s/nm (or ADU/nm) per lenslet and channel.
4. :func:`lenslets_to_cube` -- linear interpolation (Delaunay triangles of the hexagonal grid)
   of the lenslet spectra onto a square grid: the (n_wave, y, x) cube.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import Delaunay

__all__ = [
    "interpolate_along_columns",
    "register_grid",
    "measure_trace_positions",
    "fit_affine",
    "WavelengthSolution",
    "fit_wavelength_solution",
    "extract_spectra",
    "band_response",
    "CubeResampler",
    "cube_resampler",
    "lenslets_to_cube",
]


def interpolate_along_columns(image: np.ndarray, bad: np.ndarray, max_gap_px: int = 10) -> np.ndarray:
    """Replace bad pixels by linear interpolation along their column (the spectral direction).

    A lenslet spectrum changes slowly along ``y`` but falls off within a pixel across it, so a
    2-D kernel would mix spectra; vlt-sphere interpolates IFS bad pixels "along the spectral
    (column) direction, +-10 px". Pixels farther than ``max_gap_px`` from a good pixel on either
    side keep the nearest good value within reach, or stay as they are when there is none.
    """
    out = np.array(image, dtype=np.float64, copy=True)
    bad = np.asarray(bad, dtype=bool) | ~np.isfinite(out)
    if bad.shape != out.shape:
        raise ValueError(f"bad-pixel map {bad.shape} does not match image {out.shape}")
    rows = np.arange(out.shape[0])
    for col in np.flatnonzero(bad.any(axis=0)):
        good = ~bad[:, col]
        if good.sum() < 2:
            continue
        g_rows = rows[good]
        targets = rows[~good]
        # distance to the nearest good row on each side
        right = np.searchsorted(g_rows, targets)
        below = np.where(right > 0, targets - g_rows[np.maximum(right - 1, 0)], np.inf)
        above = np.where(right < g_rows.size, g_rows[np.minimum(right, g_rows.size - 1)] - targets, np.inf)
        reach = np.minimum(below, above) <= max_gap_px
        out[targets[reach], col] = np.interp(targets[reach], g_rows, out[good, col])
    return out


def _column_boxes(image: np.ndarray, x0: np.ndarray, rows: np.ndarray, half_width: int) -> np.ndarray:
    """``image[rows, x0 + dx]`` for dx in [-half_width, half_width]: shape (n, n_rows, 2 hw + 1)."""
    ny, nx = image.shape
    cols = x0[:, None] + np.arange(-half_width, half_width + 1)[None, :]
    rr = np.clip(rows, 0, ny - 1)
    cc = np.clip(cols, 0, nx - 1)
    out = image[rr[:, :, None], cc[:, None, :]]
    outside = (rows < 0) | (rows >= ny)
    out = np.where(outside[:, :, None], 0.0, out)
    return np.where(((cols < 0) | (cols >= nx))[:, None, :], 0.0, out)


def register_grid(
    white: np.ndarray,
    predicted_xy: np.ndarray,
    spectrum_length_px: float,
    max_shift_xy: tuple[int, int] = (4, 6),
) -> tuple[int, int]:
    """Whole-pixel shift ``(dx, dy)`` of the spectra grid that best matches a white-lamp frame.

    Scores each trial shift by the light just inside both ends of every predicted spectrum
    minus the light just outside them, on the trace's column. The search must stay smaller
    than the grid's shortest translation (for SPHERE/IFS ~5 px in x with ~39 px in y, 16 px
    along the rows of lenslets), or the answer is ambiguous.
    """
    pred = np.asarray(predicted_xy, dtype=np.float64)
    ny, nx = white.shape
    half = spectrum_length_px / 2.0
    best, best_score = (0, 0), -np.inf
    for dx in range(-max_shift_xy[0], max_shift_xy[0] + 1):
        cols = np.clip(np.rint(pred[:, 0]).astype(np.int64) + dx, 0, nx - 1)
        for dy in range(-max_shift_xy[1], max_shift_xy[1] + 1):
            score = 0.0
            for sign in (-1.0, 1.0):
                inside = np.clip(np.rint(pred[:, 1] + dy + sign * (half - 2.0)).astype(np.int64), 0, ny - 1)
                outside = np.clip(np.rint(pred[:, 1] + dy + sign * (half + 2.0)).astype(np.int64), 0, ny - 1)
                score += float(np.sum(white[inside, cols]) - np.sum(white[outside, cols]))
            if score > best_score:
                best, best_score = (dx, dy), score
    return best


def measure_trace_positions(
    white: np.ndarray,
    predicted_xy: np.ndarray,
    spectrum_length_px: float,
    half_width: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Measured trace centres (n, 2) and total flux (n,) of white-lamp spectra.

    ``white``: a background-subtracted white-lamp frame (SPECPOS); ``predicted_xy``: where the
    spectra should be (within ~1 px); ``spectrum_length_px``: distance between the spectrum's
    two half-maximum edges. ``x`` is the flux-weighted column of the central part of the trace
    (columns ``x0 +- half_width``); ``y`` the midpoint of the edges, each found where the row
    profile crosses half of the plateau next to it (linear interpolation between rows).
    """
    pred = np.asarray(predicted_xy, dtype=np.float64)
    x0 = np.rint(pred[:, 0]).astype(np.int64)
    y0 = np.rint(pred[:, 1]).astype(np.int64)
    half_len = int(np.ceil(spectrum_length_px / 2.0)) + 4
    rows = y0[:, None] + np.arange(-half_len, half_len + 1)[None, :]
    boxes = _column_boxes(white, x0, rows, half_width)  # (n, nr, nc)
    # x: central rows only (away from the edges)
    inner = np.abs(rows - pred[:, 1:2]) < spectrum_length_px / 2.0 - 3.0
    across = (boxes * inner[:, :, None]).sum(axis=1)  # (n, nc)
    across = np.clip(across, 0.0, None)
    dx = np.arange(-half_width, half_width + 1)
    x = x0 + (across * dx[None, :]).sum(axis=1) / np.maximum(across.sum(axis=1), 1e-300)
    # y: half-maximum edges of the row profile. The spectra of one column follow each other
    # closely (SPHERE/IFS: ~2 px between the end of one and the start of the next), so each
    # edge is searched from the dip between the two spectra, near the predicted edge.
    profile = boxes.sum(axis=2)  # (n, nr)
    half = spectrum_length_px / 2.0
    mid = half_len  # index of the predicted centre row
    lo_edge, hi_edge = int(round(mid - half)), int(round(mid + half))
    low_plateau = np.median(profile[:, lo_edge + 3 : lo_edge + 9], axis=1)
    high_plateau = np.median(profile[:, hi_edge - 8 : hi_edge - 2], axis=1)
    dip_low = lo_edge - 3 + np.argmin(profile[:, lo_edge - 3 : lo_edge + 2], axis=1)
    dip_high = hi_edge - 1 + np.argmin(profile[:, hi_edge - 1 : hi_edge + 4], axis=1)
    cols = np.arange(profile.shape[1])[None, :]
    y_low = _crossing(np.where(cols >= dip_low[:, None], profile, -np.inf), 0.5 * low_plateau, rising=True)
    y_high = _crossing(
        np.where(cols <= dip_high[:, None], profile, -np.inf), 0.5 * high_plateau, rising=False
    )
    y = (y0 - half_len) + 0.5 * (y_low + y_high)
    return np.column_stack((x, y)), profile.sum(axis=1)


def _crossing(profile: np.ndarray, level: np.ndarray, rising: bool) -> np.ndarray:
    """Fractional index (n,) where each row of ``profile`` crosses ``level`` (first rising
    crossing from the start, or last falling one towards the end), by linear interpolation."""
    above = profile >= level[:, None]
    n, m = profile.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        return _interpolate_crossing(profile, level, above, n, m, rising)


def _interpolate_crossing(
    profile: np.ndarray, level: np.ndarray, above: np.ndarray, n: int, m: int, rising: bool
) -> np.ndarray:
    """Helper of :func:`_crossing` (NaN where a crossing lies next to a masked sample)."""
    if rising:
        idx = np.argmax(above, axis=1)  # first index above
        idx = np.clip(idx, 1, m - 1)
        a, b = profile[np.arange(n), idx - 1], profile[np.arange(n), idx]
        return idx - 1 + (level - a) / np.where(b != a, b - a, 1.0)
    idx = m - 1 - np.argmax(above[:, ::-1], axis=1)  # last index above
    idx = np.clip(idx, 0, m - 2)
    a, b = profile[np.arange(n), idx], profile[np.arange(n), idx + 1]
    return idx + (a - level) / np.where(a != b, a - b, 1.0)


def fit_affine(
    predicted_xy: np.ndarray, measured_xy: np.ndarray, clip_px: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares affine map ``measured ~ predicted @ A.T + b`` (one sigma-clip pass).

    Returns ``(model_xy, residual_xy)``: the grid the fit predicts for every lenslet and the
    measured-minus-model residuals (the residual map of the spectra positions).
    """
    p = np.asarray(predicted_xy, dtype=np.float64)
    m = np.asarray(measured_xy, dtype=np.float64)
    design = np.column_stack((p, np.ones(len(p))))
    ok = np.all(np.isfinite(m), axis=1)
    for _ in range(2):
        coeffs, *_ = np.linalg.lstsq(design[ok], m[ok], rcond=None)
        residual = m - design @ coeffs
        ok = ok & (np.hypot(*(residual - np.nanmedian(residual[ok], axis=0)).T) < clip_px)
    model = design @ coeffs
    return model, m - model


@dataclass(frozen=True)
class WavelengthSolution:
    """Row offset from a lenslet's trace centre versus wavelength.

    ``offset(lambda) = c0 + c1 t + c2 t^2 + zero_point[l]`` with ``t = lambda - ref_nm`` (nm);
    ``line_offsets`` (n, k): the measured laser-line offsets (NaN where not measured).
    """

    ref_nm: float
    coefficients: tuple[float, float, float]
    zero_point: np.ndarray
    line_offsets: np.ndarray

    def offset(self, wavelength_nm: np.ndarray | float) -> np.ndarray:
        """Offsets (n, ...) of ``wavelength_nm`` from each lenslet's trace centre (px)."""
        t = np.asarray(wavelength_nm, dtype=np.float64) - self.ref_nm
        c0, c1, c2 = self.coefficients
        common = c0 + c1 * t + c2 * t * t
        return self.zero_point.reshape((-1,) + (1,) * common.ndim) + common

    def wavelength(self, offset_px: np.ndarray) -> np.ndarray:
        """Wavelength (nm) at row offsets ``offset_px`` (n, m) of each lenslet (the root of the
        quadratic nearest ``ref_nm``)."""
        c0, c1, c2 = self.coefficients
        rhs = np.asarray(offset_px, dtype=np.float64) - self.zero_point[:, None] - c0
        if abs(c2) < 1e-15:
            return self.ref_nm + rhs / c1
        disc = np.sqrt(np.maximum(c1 * c1 + 4.0 * c2 * rhs, 0.0))
        return self.ref_nm + (-c1 + np.sign(c1) * disc) / (2.0 * c2)

    def dispersion(self, wavelength_nm: np.ndarray) -> np.ndarray:
        """d(lambda)/d(row) (nm/px) at ``wavelength_nm``."""
        c1, c2 = self.coefficients[1], self.coefficients[2]
        return 1.0 / (c1 + 2.0 * c2 * (np.asarray(wavelength_nm, dtype=np.float64) - self.ref_nm))


def fit_wavelength_solution(
    lasers: np.ndarray,
    trace_xy: np.ndarray,
    lines_nm: tuple[float, ...] | np.ndarray,
    predicted_offsets_px: np.ndarray,
    half_width: int = 2,
    window_px: int = 3,
) -> WavelengthSolution:
    """Wavelength solution from a background-subtracted laser frame (WAVE,LAMP).

    ``trace_xy`` (n, 2): the spectra positions (from :func:`measure_trace_positions`);
    ``predicted_offsets_px`` (k,): where each line is expected (rows from the trace centre,
    within ~1.5 px). Each line's row centroid is measured in ``+- window_px`` rows around the
    peak nearest the prediction, on the sum of ``2 half_width + 1`` columns. Needs >= 3 lines.
    """
    lines = np.asarray(lines_nm, dtype=np.float64)
    if lines.size < 3:
        raise ValueError(f"a quadratic wavelength solution needs >= 3 laser lines, got {lines.size}")
    xy = np.asarray(trace_xy, dtype=np.float64)
    x0 = np.rint(xy[:, 0]).astype(np.int64)
    measured = np.full((len(xy), lines.size), np.nan)
    for k, predicted in enumerate(np.asarray(predicted_offsets_px, dtype=np.float64)):
        centre = np.rint(xy[:, 1] + predicted).astype(np.int64)
        rows = centre[:, None] + np.arange(-window_px - 2, window_px + 3)[None, :]
        prof = _column_boxes(lasers, x0, rows, half_width).sum(axis=2)
        # recentre on the peak nearest the prediction, then centroid in +- window
        peak = np.argmax(prof[:, 2:-2], axis=1) + 2
        sel = np.arange(-window_px, window_px + 1)
        idx = np.clip(peak[:, None] + sel[None, :], 0, prof.shape[1] - 1)
        w = np.clip(np.take_along_axis(prof, idx, axis=1), 0.0, None)
        pos = (w * idx).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-300)
        measured[:, k] = rows[:, 0] + pos - xy[:, 1]
    ref = float(np.mean(lines))
    t = lines - ref
    design = np.column_stack((np.ones_like(t), t, t * t))
    ok = np.all(np.isfinite(measured), axis=1)
    if lines.size == 3:
        per_lenslet = np.linalg.solve(design, measured[ok].T).T
    else:
        per_lenslet = np.linalg.lstsq(design, measured[ok].T, rcond=None)[0].T
    c0, c1, c2 = (float(v) for v in np.median(per_lenslet, axis=0))
    common = c0 + c1 * t + c2 * t * t
    zero = np.nanmedian(measured - common[None, :], axis=1)
    return WavelengthSolution(ref, (c0, c1, c2), np.nan_to_num(zero), measured)


def extract_spectra(
    image: np.ndarray,
    trace_xy: np.ndarray,
    solution: WavelengthSolution,
    wavelengths_nm: np.ndarray,
    half_width: int = 2,
) -> np.ndarray:
    """Each lenslet's spectrum at ``wavelengths_nm``: (n, n_wave) in image units per nm.

    Box extraction: columns ``x0 +- half_width`` summed on every row of the spectrum, divided
    by the dispersion at that row's wavelength, linearly interpolated at the output wavelengths.
    ``image`` is calibrated (background subtracted, flat fielded; bad pixels interpolated).
    """
    xy = np.asarray(trace_xy, dtype=np.float64)
    waves = np.asarray(wavelengths_nm, dtype=np.float64)
    offsets = solution.offset(waves)  # (n, n_wave)
    y_out = xy[:, 1:2] + offsets
    r_lo = np.floor(y_out.min(axis=1)).astype(np.int64) - 1
    n_rows = int(np.max(np.ceil(y_out.max(axis=1)).astype(np.int64) + 2 - r_lo))
    rows = r_lo[:, None] + np.arange(n_rows)[None, :]
    x0 = np.rint(xy[:, 0]).astype(np.int64)
    row_flux = _column_boxes(image, x0, rows, half_width).sum(axis=2)  # (n, n_rows)
    row_wave = solution.wavelength(rows - xy[:, 1:2])
    density = row_flux / solution.dispersion(row_wave)
    # linear interpolation in row coordinates (rows are equally spaced)
    pos = y_out - r_lo[:, None]
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n_rows - 2)
    frac = pos - i0
    a = np.take_along_axis(density, i0, axis=1)
    b = np.take_along_axis(density, i0 + 1, axis=1)
    return a * (1.0 - frac) + b * frac


def band_response(
    lamp_spectrum: np.ndarray, wavelengths_nm: np.ndarray, interior: np.ndarray, degree: int = 2
) -> np.ndarray:
    """Spectral response per channel relative to a smooth lamp continuum: ``lamp / fit``.

    ``lamp_spectrum`` (n_wave,): a white-lamp spectrum extracted like science (e.g. the median
    over lenslets of the IFU flat); ``interior`` (n_wave,) bool: the channels far from the band's
    order-sorting filter edges, on which a polynomial of ``degree`` in wavelength is fitted as
    the lamp's continuum. The ratio is ~1 inside the band and measures what the filter edge (cut
    through the spectral PSF) takes from the channels near it; dividing extracted spectra by it
    restores their flux there. Only the lamp's smoothness is assumed, not its spectrum. Raises
    ``ValueError`` when fewer than ``degree + 2`` interior channels are finite and positive.
    """
    lamp = np.asarray(lamp_spectrum, dtype=np.float64)
    waves = np.asarray(wavelengths_nm, dtype=np.float64)
    use = np.asarray(interior, dtype=bool) & np.isfinite(lamp) & (lamp > 0)
    if use.sum() < degree + 2:
        raise ValueError(f"band response: {int(use.sum())} usable interior channels, need {degree + 2}")
    t = (waves - waves[use].mean()) / np.ptp(waves[use])
    continuum = np.polyval(np.polyfit(t[use], lamp[use], degree), t)
    return lamp / continuum


@dataclass(frozen=True)
class CubeResampler:
    """Linear interpolation weights from lenslet centres to a square grid, computed once.

    ``vertices`` (P, 3) lenslet indices and ``weights`` (P, 3) barycentric weights of the
    Delaunay triangle holding each of the P = size^2 cube pixels; ``inside`` (P,) False where
    the pixel is outside the lenslet field (NaN in the cube).
    """

    size: int
    vertices: np.ndarray
    weights: np.ndarray
    inside: np.ndarray

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Cube (n_wave, size, size) of lenslet ``values`` (n, n_wave)."""
        vals = np.asarray(values, dtype=np.float64)
        out = np.einsum("pk,pkw->pw", self.weights, vals[self.vertices])
        out[~self.inside] = np.nan
        return out.T.reshape(vals.shape[1], self.size, self.size)


def cube_resampler(lenslet_xy_mas: np.ndarray, size: int, pixel_scale_mas: float) -> CubeResampler:
    """The :class:`CubeResampler` of a lenslet grid onto a ``size x size`` grid.

    Cube pixel ``(ix, iy)`` is at ``((ix - size // 2), (iy - size // 2)) * pixel_scale_mas`` in
    the lenslet frame (the frame's origin on pixel ``size // 2``).
    """
    points = np.asarray(lenslet_xy_mas, dtype=np.float64)
    tri = Delaunay(points)
    grid = (np.arange(size) - size // 2) * pixel_scale_mas
    gx, gy = np.meshgrid(grid, grid)
    pix = np.column_stack((gx.ravel(), gy.ravel()))
    simplex = tri.find_simplex(pix)
    inside = simplex >= 0
    s = np.where(inside, simplex, 0)
    transform = tri.transform[s]  # (P, 3, 2)
    bary = np.einsum("pij,pj->pi", transform[:, :2], pix - transform[:, 2])
    weights = np.column_stack((bary, 1.0 - bary.sum(axis=1)))
    return CubeResampler(size, tri.simplices[s], np.where(inside[:, None], weights, 0.0), inside)


def lenslets_to_cube(
    values: np.ndarray, lenslet_xy_mas: np.ndarray, size: int, pixel_scale_mas: float
) -> np.ndarray:
    """Resample lenslet values (n, n_wave) onto a ``size x size`` grid: cube (n_wave, size, size).

    Linear interpolation over the Delaunay triangles of the lenslet centres (see
    :func:`cube_resampler`, which a chain reducing many frames builds once); NaN outside the
    lenslet field.
    """
    return cube_resampler(lenslet_xy_mas, size, pixel_scale_mas)(values)
