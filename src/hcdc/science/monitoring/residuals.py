"""Coronagraphic residual intensity per frame and its correlation with the conditions.

The SPHERE Data Center found that the turbulence speed (wind, tau0) predicts how much light
leaks around the coronagraph frame by frame: the servo-lag halo sits at a few to ~10 lambda/D.
:func:`annulus_mean` measures that residual on a Level 1 cube; :func:`correlation` quantifies
the relation with a conditions column. The star is at pixel ``(n//2, n//2)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["annulus_mask", "annulus_mean", "Correlation", "correlation"]


def annulus_mask(shape: tuple[int, int], inner_px: float, outer_px: float) -> np.ndarray:
    """Boolean mask of the pixels with ``inner_px <= r < outer_px`` from ``(n//2, n//2)``."""
    if not 0 <= inner_px < outer_px:
        raise ValueError(f"annulus must satisfy 0 <= inner < outer; got {inner_px}, {outer_px}")
    ny, nx = shape
    y, x = np.mgrid[:ny, :nx]
    r = np.hypot(x - nx // 2, y - ny // 2)
    mask = (r >= inner_px) & (r < outer_px)
    if not mask.any():
        raise ValueError(f"annulus {inner_px}-{outer_px} px holds no pixel of a {ny}x{nx} frame")
    return mask


def annulus_mean(cube: np.ndarray, inner_px: float, outer_px: float) -> np.ndarray:
    """Mean of each frame of ``cube`` (frames, y, x) in the annulus (NaN pixels ignored), in
    the cube's unit (ADU/s for Level 1); one value per frame."""
    frames = np.asarray(cube)
    mask = annulus_mask(frames.shape[-2:], inner_px, outer_px)
    return np.array([np.nanmean(np.asarray(frame, dtype=np.float64)[mask]) for frame in frames])


@dataclass(frozen=True)
class Correlation:
    """Pearson ``r`` and Spearman ``rho`` (with their two-sided p-values) over ``n`` pairs."""

    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float

    def as_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


def correlation(x: np.ndarray, y: np.ndarray) -> Correlation:
    """Correlation of two per-frame series, over the frames where both are finite (NaN
    results when fewer than three such frames or a series is constant)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    n = int(ok.sum())
    if n < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
        nan = float("nan")
        return Correlation(n, nan, nan, nan, nan)
    pearson = stats.pearsonr(a[ok], b[ok])
    spearman = stats.spearmanr(a[ok], b[ok])
    return Correlation(
        n, float(pearson.statistic), float(pearson.pvalue), float(spearman.statistic), float(spearman.pvalue)
    )
