"""Master darks, instrumental backgrounds and skies (pure functions on arrays).

A master is built per (type, DIT): the per-pixel sigma-clipped mean (or median) of all DITs of
all raw files of that type and DIT. Units are those of the input (ADU per DIT for raw IRDIS
frames); a master is subtracted only from frames with the same DIT, so it is not divided by the
DIT. Clipping removes cosmic rays and transient hits that a plain mean would keep.

To bound memory the pipeline calls :func:`master_frame` on bands of detector rows (the function
is row-separable), so a master never needs all DITs of a full frame in memory at once.
"""

from __future__ import annotations

import numpy as np

__all__ = ["master_frame", "robust_sigma"]


def robust_sigma(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """Standard deviation estimated from the median absolute deviation (1.4826 * MAD), NaN-safe."""
    values = np.asarray(values, dtype=np.float64)
    med = np.nanmedian(values, axis=axis, keepdims=True)
    mad = np.nanmedian(np.abs(values - med), axis=axis)
    return 1.4826 * mad


def master_frame(frames: np.ndarray, method: str = "mean", sigma: float = 5.0) -> np.ndarray:
    """Combine a stack of frames ``(n, y, x)`` pixel by pixel with sigma clipping.

    ``method='mean'``: mean of the values within ``sigma`` robust standard deviations
    (1.4826 x median absolute deviation) of the pixel's median; median and MAD are themselves
    robust, so one pass suffices (no iteration). ``method='median'``: plain median. With fewer
    than 3 frames there are no statistics to clip with and the plain mean/median is returned.
    NaN values are ignored. Returns float32 ``(y, x)`` in the input units.
    """
    stack = np.asarray(frames, dtype=np.float32)
    if stack.ndim == 2:
        stack = stack[np.newaxis]
    if stack.ndim != 3 or stack.shape[0] == 0:
        raise ValueError(f"master_frame needs a non-empty (n, y, x) stack, got shape {stack.shape}")
    has_nan = not np.isfinite(stack).all()
    median = np.nanmedian if has_nan else np.median  # the NaN-aware version is 2x slower
    if method == "median":
        return median(stack, axis=0).astype(np.float32)
    if method != "mean":
        raise ValueError(f"unknown combination method {method!r}; use 'mean' or 'median'")
    if stack.shape[0] < 3:
        return np.nanmean(stack, axis=0).astype(np.float32)
    centre = median(stack, axis=0)
    deviation = np.abs(stack - centre)
    spread = 1.4826 * median(deviation, axis=0)
    # A pixel whose stack has zero spread (e.g. a constant simulated bias) keeps everything.
    limit = np.where(spread > 0, sigma * spread, np.inf)
    keep = deviation <= limit  # False for NaN
    count = keep.sum(axis=0)
    total = np.where(keep, stack, 0.0).sum(axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.where(count > 0, total / np.maximum(count, 1), centre)
    return result.astype(np.float32)
