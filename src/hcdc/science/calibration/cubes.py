"""Recentring, cropping, anamorphism correction and flux normalisation of frames (pure).

After these steps the star of every frame sits on pixel ``(n // 2, n // 2)``
(:func:`hcdc.science.geometry.frame_center`) and the flux is in ADU/s through the neutral
density, as every Level 2 algorithm expects.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hcdc.science.geometry import frame_center, shift_frame

__all__ = ["recenter_frame", "correct_anamorphism", "flux_normalisation", "collapse"]


def recenter_frame(
    image: np.ndarray, center_xy: tuple[float, float], size: int, method: str = "fourier"
) -> np.ndarray:
    """Crop ``size`` x ``size`` pixels around ``center_xy`` and shift the star onto (size//2, size//2).

    The crop is taken around the nearest integer pixel (pixels beyond the image are 0), then the
    remaining sub-pixel offset is removed with :func:`hcdc.science.geometry.shift_frame`
    (``method='fourier'`` by default). NaN pixels (dead zones) are set to 0 before shifting,
    as a Fourier shift would spread them over the frame. Returns float32.
    """
    image = np.asarray(image, dtype=np.float32)
    ny, nx = image.shape
    cx, cy = center_xy
    if not (np.isfinite(cx) and np.isfinite(cy)):
        raise ValueError(f"cannot recentre on a non-finite centre ({cx}, {cy})")
    ix, iy = int(round(cx)), int(round(cy))
    c = size // 2
    out = np.zeros((size, size), dtype=np.float32)
    y0, x0 = iy - c, ix - c
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + size, ny), min(x0 + size, nx)
    if ye > ys and xe > xs:
        out[ys - y0 : ye - y0, xs - x0 : xe - x0] = image[ys:ye, xs:xe]
    out = np.nan_to_num(out, nan=0.0)
    dx, dy = cx - ix, cy - iy
    if dx == 0 and dy == 0:
        return out
    return shift_frame(out, -dy, -dx, method=method).astype(np.float32, copy=False)


def correct_anamorphism(image: np.ndarray, factors_xy: tuple[float, float], order: int = 3) -> np.ndarray:
    """Stretch ``image`` about its centre pixel by ``factors_xy`` = (fx, fy).

    IRDIS images are compressed along y by 0.6 % (Maire et al. 2016); vlt-sphere undoes it
    with (1.0000, 1.0062). The output pixel at offset (dy, dx) from the centre takes the input
    value at (dy / fy, dx / fx) (cubic spline, 0 outside). The centre pixel stays put.
    """
    image = np.asarray(image, dtype=np.float32)
    fx, fy = factors_xy
    if fx == 1.0 and fy == 1.0:
        return image.copy()
    cy, cx = frame_center(image.shape)
    matrix = np.array([1.0 / fy, 1.0 / fx])
    offset = np.array([cy - cy / fy, cx - cx / fx])
    return ndimage.affine_transform(image, matrix, offset=offset, order=order, mode="constant", cval=0.0)


def flux_normalisation(dit_s: float, nd_transmission: float) -> float:
    """Factor that turns ADU per DIT through the ND into ADU/s without ND: 1 / (DIT * T_ND)."""
    if dit_s <= 0:
        raise ValueError(f"DIT must be > 0 s, got {dit_s}")
    if not 0 < nd_transmission <= 1:
        raise ValueError(f"ND transmission must be in (0, 1], got {nd_transmission}")
    return 1.0 / (dit_s * nd_transmission)


def collapse(frames: np.ndarray, method: str = "mean") -> np.ndarray:
    """Collapse ``(n, y, x)`` frames into one (``'mean'`` or ``'median'``, NaN-safe)."""
    frames = np.asarray(frames, dtype=np.float32)
    if method == "mean":
        return np.nanmean(frames, axis=0).astype(np.float32)
    if method == "median":
        return np.nanmedian(frames, axis=0).astype(np.float32)
    raise ValueError(f"unknown collapse method {method!r}; use 'mean' or 'median'")
