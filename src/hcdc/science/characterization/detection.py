"""Candidate detection in S/N maps with a stated false-alarm criterion, and 2-D Gaussian centroids.

False-alarm criterion: at separation ``r`` the Mawet et al. (2014) S/N of a pixel follows a
Student t distribution with ``n - 2`` degrees of freedom under the noise-only hypothesis, where
``n = floor(2 pi r / fwhm)`` is the number of independent resolution elements at that radius
(one holds the candidate, ``n - 1`` the background). The threshold for a false-positive fraction
``fpf`` is ``t.isf(fpf, n - 2)``; the default ``fpf = 2.87e-7`` is the Gaussian 5-sigma tail, so
a "5-sigma" detection has the same false-alarm probability at every separation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, stats

from hcdc.science import geometry

__all__ = [
    "Candidate",
    "GaussianFit",
    "fit_gaussian_2d",
    "detect_candidates",
    "student_threshold",
    "GAUSSIAN_5SIGMA_FPF",
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


def fit_gaussian_2d(
    image: np.ndarray, x: float, y: float, box: int = 9, fwhm: float = 4.0, negative: bool = False
) -> GaussianFit:
    """Least-squares fit of an axis-aligned 2-D Gaussian plus constant in a ``box`` x ``box`` cut-out.

    ``(x, y)``: initial guess (pixel coordinates of ``image``); ``negative=True`` fits a dip (e.g. a
    coronagraphic dark hole). Returns the centre in the coordinates of ``image``.
    """
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

    fit = optimize.least_squares(residual, [float(x), float(y), amp0, s0, s0, offset0], method="lm")
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


def detect_candidates(
    snr_map: np.ndarray,
    fwhm: float,
    *,
    fpf: float = GAUSSIAN_5SIGMA_FPF,
    threshold: float | None = None,
    image: np.ndarray | None = None,
    max_candidates: int = 50,
) -> list[Candidate]:
    """Local maxima of ``snr_map`` above the false-alarm threshold, brightest first.

    By default the threshold at each separation is :func:`student_threshold` for ``fpf``
    (5-sigma-Gaussian equivalent); ``threshold`` gives a fixed S/N instead. Peaks closer than
    1 FWHM to a brighter one are merged. With ``image`` (the final image), positions are refined
    taken from the image (brightest pixel within 1 FWHM of the S/N peak, refined by a 2-D Gaussian
    fit); the reported ``snr`` stays the S/N-map peak value.
    """
    snr_map = np.asarray(snr_map, dtype=np.float64)
    if snr_map.ndim != 2:
        raise ValueError(f"S/N map must be 2-D; got shape {snr_map.shape}")
    finite = np.where(np.isfinite(snr_map), snr_map, -np.inf)
    r = geometry.distance_map(snr_map.shape)
    limit = (
        np.full(snr_map.shape, float(threshold)) if threshold is not None else student_threshold(r, fwhm, fpf)
    )
    size = max(3, int(np.ceil(fwhm)) | 1)
    peaks = (finite == ndimage.maximum_filter(finite, size=size, mode="constant", cval=-np.inf)) & (
        finite > limit
    )
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-finite[ys, xs])
    kept: list[Candidate] = []
    for i in order:
        y, x = int(ys[i]), int(xs[i])
        if any(np.hypot(c.x - x, c.y - y) < fwhm for c in kept):
            continue
        fx, fy = float(x), float(y)
        if image is not None:
            # The S/N peak can sit a pixel or two off the source (the noise apertures change with
            # radius); the position comes from the image: its brightest pixel within 1 FWHM of
            # the S/N peak, refined by a Gaussian fit that must stay within 1 FWHM.
            near = np.hypot(*np.mgrid[-y : snr_map.shape[0] - y, -x : snr_map.shape[1] - x]) <= fwhm
            py, px = np.unravel_index(
                np.argmax(np.where(near, np.nan_to_num(image, nan=-np.inf), -np.inf)), snr_map.shape
            )
            fx, fy = float(px), float(py)
            try:
                fit = fit_gaussian_2d(image, px, py, box=int(2 * np.ceil(fwhm)) | 1, fwhm=fwhm)
                if np.hypot(fit.x - x, fit.y - y) <= fwhm:
                    fx, fy = fit.x, fit.y
            except (ValueError, RuntimeError):
                pass  # keep the brightest pixel (fit box off the edge or fit did not converge)
        sep, pa = geometry.pixel_to_polar(fx, fy, snr_map.shape)
        value = float(snr_map[y, x])
        kept.append(
            Candidate(
                fx,
                fy,
                sep,
                pa,
                value,
                float(limit[y, x]),
                float(stats.t.sf(value, _dof(np.array(r[y, x]), fwhm))),
            )
        )
        if len(kept) >= max_candidates:
            break
    return kept
