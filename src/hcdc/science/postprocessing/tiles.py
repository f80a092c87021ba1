"""Derotation and frame combination of large cubes in output tiles, in bounded memory.

For SPHERE-sized cubes (IRDIS: 300 x 1024^2 float32, 1.2 GB) the in-memory route (residual cube,
derotated copy, median) holds two or three copies of the cube. Here the final image is built one
square *tile* of output pixels at a time: for each tile and each group of frames with similar
angles, the caller supplies the residuals of the input rectangle that the derotation reads (a
rotated square, at most twice the tile's area), a compiled kernel (numba) interpolates them
bilinearly into a (tile pixels, frames) buffer, and a second kernel takes the median (or mean) of
each pixel's frames. No array of the cube's size is ever allocated; the residuals never exist as a
whole (the caller computes them from the cube and a few small arrays, see :func:`pca.pca`).

Conventions are those of :func:`hcdc.science.geometry.derotate` (frame ``k`` turned clockwise by
``angles[k]`` about :func:`~hcdc.science.geometry.frame_center`, bilinear interpolation, points
read from outside the frame ignored) and of :func:`base.collapse_frames` (NaN-ignoring median:
middle value, or the float32 mean of the two middle values; pixels covered by no frame are 0).
The interpolated values equal scipy's to float32 rounding (the coordinates are computed in a
different order); the median of the same values is the same number.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from numba import njit

from hcdc.science import geometry
from hcdc.science.postprocessing import base as _base
from hcdc.science.postprocessing.base import COLLAPSE_METHODS

__all__ = ["derotate_collapse_tiled", "tile_layout"]

# Buffer of one tile: (tile pixels, frames) float32, per worker thread (defaults; callers pass
# budgets scaled to the cube). 64 MiB keeps the two workers' buffers and residual blocks near
# 0.15 of an IRDIS cube while each tile still reads its input rectangle once per frame group.
TILE_BUFFER_BYTES = 64 * 2**20
# Residual block of one frame group (frames x input rectangle), per worker thread.
GROUP_BLOCK_BYTES = 32 * 2**20

ResidualBlock = Callable[[np.ndarray, int, int, int, int], np.ndarray]


@njit(nogil=True, cache=True)
def _rotate_into(block, y0, x0, ny, nx, cosv, sinv, cy, cx, oy0, ox0, th, tw, buf, col0):  # pragma: no cover
    """Bilinear samples of ``block`` (frames, rows, cols: frame rows ``y0..``, cols ``x0..``) at
    the derotation sources of output pixels ``(oy0 + i, ox0 + j)``, written to
    ``buf[i * tw + j, col0 + f]``; NaN where the source lies outside the ``ny x nx`` frame."""
    nfr = block.shape[0]
    nan = np.float32(np.nan)
    ymax = ny - 1.0
    xmax = nx - 1.0
    for i in range(th):
        dy = oy0 + i - cy
        for j in range(tw):
            dx = ox0 + j - cx
            p = i * tw + j
            for f in range(nfr):
                ys = sinv[f] * dx + cosv[f] * dy + cy
                xs = cosv[f] * dx - sinv[f] * dy + cx
                if not (ys >= 0.0 and ys <= ymax and xs >= 0.0 and xs <= xmax):
                    buf[p, col0 + f] = nan
                    continue
                iy = min(int(math.floor(ys)), ny - 2) if ny > 1 else 0
                ix = min(int(math.floor(xs)), nx - 2) if nx > 1 else 0
                fy = ys - iy
                fx = xs - ix
                by = iy - y0
                bx = ix - x0
                by1 = by + 1 if ny > 1 else by
                bx1 = bx + 1 if nx > 1 else bx
                v00 = block[f, by, bx]
                v01 = block[f, by, bx1]
                v10 = block[f, by1, bx]
                v11 = block[f, by1, bx1]
                top = (1.0 - fx) * v00 + fx * v01
                bottom = (1.0 - fx) * v10 + fx * v11
                buf[p, col0 + f] = np.float32((1.0 - fy) * top + fy * bottom)


@njit(nogil=True, cache=True)
def _select(a, n, k):  # pragma: no cover
    """Reorder ``a[:n]`` in place so that ``a[k]`` is its k-th smallest value, smaller values before
    it and larger ones after (quickselect, median-of-three pivot); returns ``a[k]``.

    The partition swaps unconditionally and advances by the comparison's outcome: no
    data-dependent branch, 3-5x faster on noise-like data than a branching partition."""
    lo = 0
    hi = n - 1
    while hi > lo:
        mid = (lo + hi) // 2
        # Median of three as pivot, moved to a[hi].
        if a[mid] < a[lo]:
            a[mid], a[lo] = a[lo], a[mid]
        if a[hi] < a[lo]:
            a[hi], a[lo] = a[lo], a[hi]
        if a[mid] < a[hi]:
            a[mid], a[hi] = a[hi], a[mid]
        pivot = a[hi]
        store = lo
        for i in range(lo, hi):
            v = a[i]
            a[i] = a[store]
            a[store] = v
            store += 1 if v < pivot else 0
        a[store], a[hi] = a[hi], a[store]
        if store == k:
            return a[k]
        if store < k:
            lo = store + 1
        else:
            hi = store - 1
    return a[k]


@njit(nogil=True, cache=True)
def _median_rows(buf, out):  # pragma: no cover
    """NaN-ignoring median of each row of ``buf`` into ``out`` (float32), as
    :func:`base.nan_median_columns` of the transposed buffer; NaN for an all-NaN row."""
    n, m = buf.shape
    scratch = np.empty(m, dtype=np.float32)
    for p in range(n):
        c = 0
        for k in range(m):  # keep the non-NaN values (branch-free)
            v = buf[p, k]
            scratch[c] = v
            c += 1 if v == v else 0
        if c == 0:
            out[p] = np.float32(np.nan)
            continue
        kth = (c - 1) // 2
        lo = _select(scratch, c, kth)
        if c % 2 == 1:
            out[p] = lo
        else:  # the next value up is the smallest of the upper part
            hi = scratch[kth + 1]
            for k in range(kth + 2, c):
                hi = min(hi, scratch[k])
            out[p] = (lo + hi) / np.float32(2.0)


@njit(nogil=True, cache=True)
def _mean_rows(buf, out):  # pragma: no cover
    """NaN-ignoring mean (float64 sum) of each row of ``buf`` into ``out``; NaN for an all-NaN row."""
    n, m = buf.shape
    for p in range(n):
        total = 0.0
        c = 0
        for k in range(m):
            v = buf[p, k]
            if v == v:
                total += v
                c += 1
        out[p] = np.float32(total / c) if c > 0 else np.float32(np.nan)


def tile_layout(shape: tuple[int, int], n_frames: int, buffer_bytes: int = TILE_BUFFER_BYTES) -> int:
    """Side (px) of the square output tiles: the largest whose (pixels, frames) float32 buffer fits."""
    side = int(np.sqrt(max(buffer_bytes // (4 * max(n_frames, 1)), 1)))
    return max(8, min(side, max(shape)))


def _source_box(
    ty: tuple[int, int], tx: tuple[int, int], angles: np.ndarray, shape: tuple[int, int]
) -> tuple[int, int, int, int]:
    """Input rows/cols ``(y0, y1, x0, x1)`` (half-open, clipped) read when derotating the output
    tile ``ty x tx`` by any of ``angles`` (deg): the bounding box of the rotated tile corners,
    widened by the bilinear neighbour."""
    ny, nx = shape
    cy, cx = geometry.frame_center(shape)
    a = np.radians(angles)[:, None]
    c, s = np.cos(a), np.sin(a)
    dy = np.array([ty[0], ty[0], ty[1] - 1, ty[1] - 1], dtype=np.float64)[None, :] - cy
    dx = np.array([tx[0], tx[1] - 1, tx[0], tx[1] - 1], dtype=np.float64)[None, :] - cx
    ys = s * dx + c * dy + cy
    xs = c * dx - s * dy + cx
    y0 = max(0, int(np.floor(ys.min())) - 1)
    y1 = min(ny, int(np.ceil(ys.max())) + 2)
    x0 = max(0, int(np.floor(xs.min())) - 1)
    x1 = min(nx, int(np.ceil(xs.max())) + 2)
    return y0, max(y1, y0), x0, max(x1, x0)


# Largest spread of angles within a frame group: the group's input rectangle is the bounding box
# of its rotated tiles, ~(1 + 1.4 x spread in rad) times one frame's (5 deg: +12 %).
GROUP_SPREAD_DEG = 5.0


def _frame_groups(angles: np.ndarray, per_group: int) -> list[np.ndarray]:
    """Frame indices in order of angle, in groups of at most ``per_group`` frames spanning at most
    ``GROUP_SPREAD_DEG``, so that each group's input rectangle stays near one frame's."""
    order = np.argsort(angles, kind="stable")
    groups, start = [], 0
    for i in range(1, order.size + 1):
        if (
            i == order.size
            or i - start >= per_group
            or angles[order[i]] - angles[order[start]] > GROUP_SPREAD_DEG
        ):
            groups.append(order[start:i])
            start = i
    return groups


def derotate_collapse_tiled(
    residual_block: ResidualBlock,
    n_frames: int,
    shape: tuple[int, int],
    angles: np.ndarray,
    collapse: str = "median",
    output_mask: np.ndarray | None = None,
    *,
    buffer_bytes: int = TILE_BUFFER_BYTES,
    block_bytes: int = GROUP_BLOCK_BYTES,
) -> np.ndarray:
    """Final image (y, x) float32: residual frames derotated (bilinear) and combined, tile by tile.

    ``residual_block(frames, y0, y1, x0, x1)`` returns the residuals of ``frames`` (int array) in
    rows ``y0:y1`` and columns ``x0:x1`` as a float32 array (len(frames), y1 - y0, x1 - x0).
    ``angles``: derotation angles (deg), one per frame. ``collapse``: ``'median'`` or ``'mean'``,
    ignoring the points rotated in from outside the frame; pixels covered by no frame are 0.
    ``output_mask`` (bool (y, x)): only the tiles holding such pixels are computed and the other
    pixels are 0 (as :func:`base.derotate_and_collapse`).

    Memory: per worker thread one (tile pixels, frames) buffer of ``buffer_bytes`` and one group
    block of about ``block_bytes`` (plus the caller's temporaries for it), whatever the cube size.
    """
    if collapse not in COLLAPSE_METHODS:
        raise ValueError(f"unknown collapse method {collapse!r}; use one of {COLLAPSE_METHODS}")
    ny, nx = shape
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if angles.size != n_frames:
        raise ValueError(f"{n_frames} frames but {angles.size} derotation angles")
    mask = None
    if output_mask is not None:
        mask = np.asarray(output_mask, dtype=bool)
        if mask.shape != (ny, nx):
            raise ValueError(f"output_mask has shape {mask.shape}; the frames are {(ny, nx)}")
    side = tile_layout(shape, n_frames, buffer_bytes)
    tiles = [
        ((y, min(ny, y + side)), (x, min(nx, x + side)))
        for y in range(0, ny, side)
        for x in range(0, nx, side)
        if mask is None or mask[y : y + side, x : x + side].any()
    ]
    groups = _frame_groups(angles, max(1, block_bytes // (4 * 2 * side * side)))
    cy, cx = geometry.frame_center(shape)
    image = np.zeros((ny, nx), dtype=np.float32)
    reduce_rows = _median_rows if collapse == "median" else _mean_rows

    def work(part: int, n_parts: int) -> None:
        buf = np.empty((side * side, n_frames), dtype=np.float32)
        for ty, tx in tiles[part::n_parts]:
            th, tw = ty[1] - ty[0], tx[1] - tx[0]
            view = buf[: th * tw]
            col = 0
            for frames in groups:
                a = angles[frames]
                y0, y1, x0, x1 = _source_box(ty, tx, a, shape)
                if y1 - y0 < 2 or x1 - x0 < 2:  # the tile sees nothing of these frames
                    view[:, col : col + frames.size] = np.nan
                else:
                    block = np.ascontiguousarray(residual_block(frames, y0, y1, x0, x1), dtype=np.float32)
                    r = np.radians(a)
                    _rotate_into(
                        block, y0, x0, ny, nx, np.cos(r), np.sin(r), float(cy), float(cx),
                        ty[0], tx[0], th, tw, view, col,
                    )  # fmt: skip
                col += frames.size
            values = np.empty(th * tw, dtype=np.float32)
            reduce_rows(view, values)
            image[ty[0] : ty[1], tx[0] : tx[1]] = values.reshape(th, tw)

    n_parts = min(_base._WORKERS, len(tiles))
    if n_parts > 1:
        for future in [_base._pool().submit(work, p, n_parts) for p in range(n_parts)]:
            future.result()
    elif tiles:
        work(0, 1)
    image = np.nan_to_num(image, nan=0.0)
    if mask is not None:
        image[~mask] = 0.0
    return image
