"""Bad-pixel maps and bad-pixel correction (pure functions on arrays).

* Static (hot) pixels come from master darks/backgrounds: pixels whose level departs from the
  local median (a median-filtered version of the master) by more than ``sigma`` robust standard
  deviations. Working on the residual from a local median keeps large-scale structure (the
  instrumental background gradient, the two IRDIS fields) from being flagged.
* Non-linear / dead pixels come from the lamp-flat fit (:mod:`hcdc.science.calibration.flats`).
* The final map is the logical OR of all maps (vlt-sphere).

Correction replaces each bad pixel by a Gaussian-weighted mean of the good pixels around it
(normalised convolution), which is the weighted neighbour interpolation of vlt-sphere.
Maps are boolean arrays, True = bad.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hcdc.science.calibration.darks import robust_sigma

__all__ = ["hot_pixels", "combine_masks", "correct_bad_pixels"]


def hot_pixels(
    master: np.ndarray, sigma: float = 5.0, box: int = 5, exclude: np.ndarray | None = None
) -> np.ndarray:
    """Boolean map of pixels departing from their ``box`` x ``box`` local median by > ``sigma``.

    ``master`` is a master dark/background (any units). The noise is the robust standard
    deviation of the residual over the whole frame (pixels in ``exclude``, e.g. dead zones, are
    ignored for the statistics and never flagged). Both hot and cold outliers are flagged.
    """
    master = np.asarray(master, dtype=np.float64)
    finite = np.isfinite(master)
    usable = finite if exclude is None else finite & ~np.asarray(exclude, dtype=bool)
    if not usable.any():
        raise ValueError("hot_pixels: no usable pixel in the master")
    # Excluded/NaN pixels take the value of the nearest usable pixel, so the local median at the
    # edge of a dead zone is not pulled towards the unilluminated level.
    nearest = ndimage.distance_transform_edt(~usable, return_distances=False, return_indices=True)
    filled = master[tuple(nearest)]
    residual = filled - ndimage.median_filter(filled, size=box, mode="reflect")
    noise = robust_sigma(residual[usable])
    if not noise > 0:
        # Noise-free (e.g. a flat simulated master): any departure at all is an outlier.
        noise = np.finfo(np.float64).eps * max(1.0, float(np.nanmax(np.abs(master))))
    bad = np.abs(residual) > sigma * noise
    bad |= ~finite
    if exclude is not None:
        bad &= ~np.asarray(exclude, dtype=bool)
    return bad


def combine_masks(*masks: np.ndarray | None) -> np.ndarray:
    """Logical OR of bad-pixel maps of the same shape (``None`` entries are skipped)."""
    present = [np.asarray(m, dtype=bool) for m in masks if m is not None]
    if not present:
        raise ValueError("combine_masks needs at least one map")
    shape = present[0].shape
    for m in present:
        if m.shape != shape:
            raise ValueError(f"bad-pixel maps differ in shape: {shape} vs {m.shape}")
    return np.logical_or.reduce(present)


def correct_bad_pixels(
    image: np.ndarray,
    bad: np.ndarray,
    sigma_px: float = 1.5,
    max_passes: int = 4,
    unusable: np.ndarray | None = None,
) -> np.ndarray:
    """Replace bad pixels of ``image`` (y, x) by the Gaussian-weighted mean of good neighbours.

    ``bad`` is True on pixels to replace; NaN pixels are replaced too. ``unusable`` (e.g. the
    IRDIS dead zones) marks pixels that are neither used as neighbours nor replaced. The kernel
    has standard deviation ``sigma_px`` (truncated at 4 sigma); clusters too large for it are
    filled in up to ``max_passes`` passes with a kernel twice as wide each time. Good pixels are
    unchanged.
    """
    image = np.asarray(image, dtype=np.float32)
    skip = np.zeros(image.shape, dtype=bool) if unusable is None else np.asarray(unusable, dtype=bool)
    bad = np.asarray(bad, dtype=bool)
    if bad.shape != image.shape or skip.shape != image.shape:
        raise ValueError(f"bad-pixel map {bad.shape} does not match image {image.shape}")
    todo = (bad | ~np.isfinite(image)) & ~skip
    out = image.copy()
    width = sigma_px
    for _ in range(max_passes):
        if not todo.any():
            break
        source = ~todo & ~skip & np.isfinite(out)
        num = ndimage.gaussian_filter(np.where(source, out, 0.0).astype(np.float32), width, mode="nearest")
        den = ndimage.gaussian_filter(source.astype(np.float32), width, mode="nearest")
        fillable = todo & (den > 1e-3)
        out[fillable] = num[fillable] / den[fillable]
        todo &= ~fillable
        width *= 2.0
    if todo.any():
        # Whatever is left (a fully bad region) gets the median of the usable pixels.
        pool = out[~todo & ~skip & np.isfinite(out)]
        out[todo] = np.median(pool) if pool.size else 0.0
    return out
