"""Star position of a cube brought in, its check against hcdc's centre convention, and recentring.

Every Level 2 algorithm assumes the star on pixel ``(ny // 2, nx // 2)`` of every frame
(:func:`hcdc.science.geometry.frame_center`). Cubes reduced elsewhere often follow another
convention (VIP's NACO beta Pic cube: the AGPM dark hole ~1 px off): derotating about the wrong
point smears companions (measured on that cube: positions off by 1.2-2.1 px and -61 % flux at
10 px). :func:`measure_star` finds the star with a 2-D Gaussian fit of either the stellar peak
(``'psf'``, :func:`hcdc.science.calibration.centering.center_psf`) or the dark hole of a vortex /
AGPM coronagraph (``'negative-gaussian'``, a fit of the negated image, as VIP does);
``'auto'`` chooses by whether the centre of the median frame is a dip or a peak.
:func:`recenter_cube` moves the star of every frame onto the convention (Fourier shift).

Pixel coordinates are 0-based ``(x, y)``; offsets are ``star - frame_center`` in pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hcdc.science import geometry
from hcdc.science.calibration.centering import center_psf
from hcdc.science.postprocessing.detection import fit_gaussian_2d

__all__ = [
    "CENTER_TOLERANCE_PX",
    "RECENTER_METHODS",
    "StarPosition",
    "check_cube_star",
    "measure_star",
    "recenter_cube",
    "star_position_warning",
]

#: A star further than this (px) from :func:`~hcdc.science.geometry.frame_center` gets a warning.
CENTER_TOLERANCE_PX = 0.3

RECENTER_METHODS = ("auto", "psf", "negative-gaussian")


@dataclass(frozen=True)
class StarPosition:
    """Measured star position of a (frames, y, x) cube.

    ``x``, ``y`` (arrays, one per measured frame; 0-based px) and their median ``x_med``,
    ``y_med``; ``method`` actually used; ``frames`` the indices measured.
    """

    x: np.ndarray
    y: np.ndarray
    method: str
    frames: np.ndarray
    shape: tuple[int, int]

    @property
    def x_med(self) -> float:
        return float(np.median(self.x))

    @property
    def y_med(self) -> float:
        return float(np.median(self.y))

    @property
    def offset(self) -> tuple[float, float]:
        """Median offset ``(dx, dy)`` px of the star from the centre convention."""
        cy, cx = geometry.frame_center(self.shape)
        return self.x_med - cx, self.y_med - cy

    @property
    def distance(self) -> float:
        """Distance (px) of the median star position from the centre convention."""
        return float(math.hypot(*self.offset))

    @property
    def scatter(self) -> float:
        """Frame-to-frame scatter (px, RMS distance to the median position)."""
        return float(np.sqrt(np.mean((self.x - self.x_med) ** 2 + (self.y - self.y_med) ** 2)))


def _box(fwhm: float) -> int:
    """Odd fitting box of about 2 FWHM (at least 7 px)."""
    size = max(7, int(round(2.0 * fwhm)))
    return size if size % 2 else size + 1


def _fit_negative_gaussian(
    image: np.ndarray, guess_xy: tuple[float, float], fwhm: float
) -> tuple[float, float]:
    """Centre ``(x, y)`` of a dark hole (vortex/AGPM) by a 2-D Gaussian fit of the negated image.

    The fit is trusted only when it is a dip, its width is between 0.25 and 2.5 FWHM and its centre
    within 1 FWHM of the guess (a speckle-only frame gives none of these reliably).
    """
    fit = fit_gaussian_2d(image, guess_xy[0], guess_xy[1], box=_box(fwhm), fwhm=fwhm, negative=True)
    if not fit.amplitude < 0:
        raise ValueError("no dark hole: the negative Gaussian fit found a peak")
    if not all(0.25 * fwhm <= w <= 2.5 * fwhm for w in (fit.fwhm_x, fit.fwhm_y)):
        raise ValueError(f"dark-hole fit width {fit.fwhm_x:.1f} x {fit.fwhm_y:.1f} px is implausible")
    if math.hypot(fit.x - guess_xy[0], fit.y - guess_xy[1]) > fwhm:
        raise ValueError("dark-hole fit wandered more than 1 FWHM from the guess")
    return fit.x, fit.y


def _fit_psf(image: np.ndarray, guess_xy: tuple[float, float], fwhm: float) -> tuple[float, float]:
    """Centre ``(x, y)`` of the stellar peak by :func:`~hcdc.science.calibration.centering.center_psf`.

    Trusted only when the fit succeeds, lies within 1 FWHM of the guess and the peak is at least
    twice as bright as anything beyond 2 FWHM of it (else it is a speckle, not the star).
    """
    est = center_psf(image, guess_xy=guess_xy, box=max(_box(fwhm), 9), sigma0=fwhm / 2.3548)
    if not np.isfinite(est.error):
        raise ValueError(f"PSF fit failed ({est.details.get('message', '')})")
    if math.hypot(est.x - guess_xy[0], est.y - guess_xy[1]) > fwhm:
        raise ValueError("PSF fit wandered more than 1 FWHM from the guess")
    yy, xx = np.indices(image.shape)
    far = np.hypot(xx - est.x, yy - est.y) > 2.0 * fwhm
    peak = float(np.nanmax(image[~far]))
    if far.any() and not peak >= 2.0 * float(np.nanmax(image[far])):
        raise ValueError("no stellar peak: the centre is not clearly the brightest part of the frame")
    return est.x, est.y


#: The measurement behind each method name (``(image, guess_xy, fwhm) -> (x, y)``).
_FITTERS: dict[str, Callable[[np.ndarray, tuple[float, float], float], tuple[float, float]]] = {
    "psf": _fit_psf,
    "negative-gaussian": _fit_negative_gaussian,
}


def _auto_method(median_frame: np.ndarray, fwhm: float) -> str:
    """``'negative-gaussian'`` when, within 1 FWHM of the centre, the darkest pixel of the median
    frame is nearer the centre than the brightest one (a dark hole in a bright ring: vortex/AGPM),
    else ``'psf'`` (a stellar peak, or a Lyot coronagraph's central leak)."""
    r = geometry.distance_map(median_frame.shape)
    inside = r < max(fwhm, 2.0)
    values = np.where(inside, np.nan_to_num(median_frame), np.nan)
    r_min = r.flat[int(np.nanargmin(values))]
    r_max = r.flat[int(np.nanargmax(values))]
    return "negative-gaussian" if r_min < r_max else "psf"


def _median_of_frames(cube: np.ndarray, picks: np.ndarray, band_bytes: int = 64 * 2**20) -> np.ndarray:
    """NaN-ignoring median (float64 (y, x)) of frames ``picks`` of ``cube``, read in bands of rows
    of about ``band_bytes`` (float64): each pixel's median of the same values as
    ``np.nanmedian(cube[picks].astype(float64), axis=0)``, without that stack (20 frames of
    2048^2 in float64 are 0.67 GB, and nanmedian copies them again)."""
    ny, nx = cube.shape[-2:]
    rows = max(1, band_bytes // (8 * len(picks) * nx))
    out = np.empty((ny, nx), dtype=np.float64)
    for y0 in range(0, ny, rows):
        band = np.asarray(cube[picks, y0 : y0 + rows], dtype=np.float64)
        out[y0 : y0 + rows] = np.nanmedian(band, axis=0)
    return out


def measure_star(
    cube: np.ndarray,
    fwhm: float,
    method: str = "auto",
    every_frame: bool = False,
    max_frames: int = 20,
) -> StarPosition:
    """Star position in the frames of a (frames, y, x) cube (a memory map is fine).

    ``every_frame=False`` measures the median of up to ``max_frames`` evenly spaced frames once
    (a quick check); ``True`` fits every frame, starting from that median position (what
    recentring needs). ``method``: ``'auto'``, ``'psf'`` or ``'negative-gaussian'``.
    Raises ``ValueError`` when the fit fails, naming the method and frame.
    """
    if method not in RECENTER_METHODS:
        raise ValueError(f"centring method must be one of {', '.join(RECENTER_METHODS)}; got {method!r}")
    if not (fwhm > 0 and math.isfinite(fwhm)):
        raise ValueError(f"FWHM must be a positive number of pixels; got {fwhm}")
    cube = np.asarray(cube) if not isinstance(cube, np.ndarray) else cube
    if cube.ndim != 3:
        raise ValueError(f"star position needs a (frames, y, x) cube; got shape {cube.shape}")
    n = cube.shape[0]
    picks = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
    median_frame = _median_of_frames(cube, picks)
    used = _auto_method(median_frame, fwhm) if method == "auto" else method
    fitter = _FITTERS[used]
    cy, cx = geometry.frame_center(cube.shape)
    try:
        x0, y0 = fitter(median_frame, (float(cx), float(cy)), fwhm)
    except ValueError as exc:
        raise ValueError(f"star position ({used}) on the median frame: {exc}") from exc
    if not every_frame:
        return StarPosition(np.array([x0]), np.array([y0]), used, picks, cube.shape[-2:])
    xs, ys = np.empty(n), np.empty(n)
    for k in range(n):
        try:
            xs[k], ys[k] = fitter(np.asarray(cube[k], dtype=np.float64), (x0, y0), fwhm)
        except ValueError as exc:
            raise ValueError(f"star position ({used}) in frame {k}: {exc}") from exc
    return StarPosition(xs, ys, used, np.arange(n), cube.shape[-2:])


def star_position_warning(
    position: StarPosition, what: str, tolerance_px: float = CENTER_TOLERANCE_PX
) -> str | None:
    """A sentence for people when the star is more than ``tolerance_px`` from the convention."""
    if position.distance <= tolerance_px:
        return None
    cy, cx = geometry.frame_center(position.shape)
    dx, dy = position.offset
    return (
        f"{what}: the star ({position.method} fit) is at ({position.x_med:.2f}, {position.y_med:.2f}), "
        f"{position.distance:.2f} px from the centre convention ({cx}, {cy}) = (nx//2, ny//2) "
        f"(dx {dx:+.2f}, dy {dy:+.2f} px); companions will be smeared and their positions and fluxes "
        "biased: use --recenter"
    )


def recenter_cube(cube: np.ndarray, position: StarPosition, method: str = "fourier") -> np.ndarray:
    """Float32 copy of the (frames, y, x) ``cube`` with the star of frame ``k`` moved from
    ``(position.x[k], position.y[k])`` onto :func:`~hcdc.science.geometry.frame_center`.

    ``position`` must hold one measurement per frame (``measure_star(..., every_frame=True)``).
    ``method``: :func:`hcdc.science.geometry.shift_frame` method (Fourier by default).
    """
    if position.x.size != cube.shape[0]:
        raise ValueError(f"{position.x.size} star positions for the {cube.shape[0]} frames of the cube")
    cy, cx = geometry.frame_center(cube.shape)
    out = np.empty(cube.shape, dtype=np.float32)
    for k in range(cube.shape[0]):
        frame = np.nan_to_num(np.asarray(cube[k], dtype=np.float32))  # a Fourier shift spreads NaN
        out[k] = geometry.shift_frame(frame, cy - position.y[k], cx - position.x[k], method=method)
    return out


def check_cube_star(
    cube: np.ndarray, fwhm: float, what: str, recenter: bool = False, method: str = "auto"
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Check (and with ``recenter`` fix) the star position of every wavelength plane of a
    (frames, y, x) or (wavelengths, frames, y, x) cube brought in.

    Returns the cube (a recentred float32 copy when ``recenter``, else ``cube`` itself) and
    ``(level, text)`` notes naming ``what``: ``'warning'`` for a star more than
    :data:`CENTER_TOLERANCE_PX` from the centre convention, ``'note'`` otherwise (checked, not
    measurable, or recentred). Raises ``ValueError`` when recentring is asked and the star cannot be
    measured.
    """
    planes = [cube] if cube.ndim == 3 else [cube[w] for w in range(cube.shape[0])]
    notes: list[tuple[str, str]] = []
    fixed = []
    for w, plane in enumerate(planes):
        name = what + (f" plane {w}" if cube.ndim == 4 else "")
        try:
            position = measure_star(plane, fwhm, method, every_frame=recenter)
        except ValueError as exc:
            if recenter:
                raise ValueError(f"{name}: cannot recentre: {exc}") from None
            notes.append(("note", f"{name}: star position not checked ({exc})"))
            continue
        if recenter:
            fixed.append(recenter_cube(plane, position))
            dx, dy = position.offset
            notes.append(
                (
                    "note",
                    f"{name}: recentred ({position.method} fit per frame): star moved by "
                    f"({-dx:+.2f}, {-dy:+.2f}) px (median), frame-to-frame scatter {position.scatter:.2f} px",
                )
            )
            continue
        text = star_position_warning(position, name)
        notes.append(("warning", text) if text else ("note", f"{name}: star within 0.3 px of the centre"))
    if recenter:
        cube = fixed[0] if cube.ndim == 3 else np.stack(fixed)
    return cube, notes
