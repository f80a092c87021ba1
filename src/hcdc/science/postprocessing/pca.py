"""PCA / KLIP ADI post-processing: full frame and annular with rotation exclusion.

Both variants work with the frame Gram matrix ``G = X X^T`` (frames x frames) instead of an SVD
of the (frames x pixels) matrix ``X``: the eigenvectors ``E`` of ``G`` give the principal
components (``V = Lambda^-1/2 E^T X``) and the projection of the frames on the first ``k`` of
them is simply ``E_k E_k^T X``, so the residuals are ``X - E_k (E_k^T X)``. This is the same
subspace as the thin SVD (Soummer et al. 2012, KLIP) at a fraction of the cost when
frames << pixels, and evaluating several ``k`` costs one eigen-decomposition.

Annular PCA needs, for every annulus and frame, the leading eigenpairs of the Gram matrix of
that frame's own library (rotation exclusion): LAPACK ``dsyevr`` computes only those, called
through ctypes so that two threads share the work (see :func:`_leading_eigh`).

``scaling``: ``'temp-mean'`` (default, as KLIP: subtract each pixel's temporal mean first) or
``None`` (VIP's default: the matrix is used as it is and the first component captures the mean
frame; use it with ``interpolation='bicubic'`` to reproduce VIP's numbers).
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg
from scipy.linalg.lapack import dsyevr as _dsyevr

from hcdc.runtime.blas import SMALL_PROBLEM, blas_threads
from hcdc.science import geometry
from hcdc.science.postprocessing import base as _base
from hcdc.science.postprocessing import tiles
from hcdc.science.postprocessing.annuli import Annulus, define_annuli, exclusion_mask
from hcdc.science.postprocessing.base import (
    check_adi_inputs,
    derotate_and_collapse,
    is_memory_mapped,
    register_algorithm,
)
from hcdc.science.postprocessing.fakes import InjectedCube

__all__ = ["pca", "pca_annular", "pca_residuals", "gram_eigen", "clear_statistics"]

SCALINGS = (None, "temp-mean")
_PIXEL_CHUNK = 1 << 16  # pixels per chunk of the Gram accumulation (bounded float64 temporaries)
# Full-frame PCA of cubes above this many elements (SPHERE IRDIS: 3e8) takes the tiled route
# (:func:`_pca_tiled`): no residual cube, no derotated copy; peak memory near 1.1x the cube.
TILED_ELEMENTS = 1 << 25


def _as_ncomp_list(ncomp: int | Sequence[int], n_frames: int) -> list[int]:
    values = [int(ncomp)] if np.ndim(ncomp) == 0 else [int(k) for k in ncomp]  # type: ignore[union-attr]
    if not values:
        raise ValueError("ncomp must be an integer or a non-empty list of integers")
    for k in values:
        if not 1 <= k <= n_frames:
            raise ValueError(f"ncomp={k} must be between 1 and the number of frames ({n_frames})")
    return values


def _matrix(cube: np.ndarray, scaling: str | None, mask_center_px: float | None) -> np.ndarray:
    """(frames, pixels) float32 matrix of the cube, optionally centre-masked and mean-subtracted."""
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; use one of {SCALINGS}")
    matrix = cube.reshape(cube.shape[0], -1).astype(np.float32, copy=True)
    if mask_center_px:
        matrix[:, geometry.circular_mask(cube.shape, mask_center_px).ravel()] = 0.0
    if scaling == "temp-mean":
        matrix -= matrix.mean(axis=0, dtype=np.float64).astype(np.float32)
    return matrix


def gram_eigen(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (columns) of ``matrix @ matrix.T`` in float64.

    The Gram matrix is accumulated over pixel chunks so that memory stays bounded for large frames
    (float32 chunk products above ``SMALL_PROBLEM`` elements).
    """
    nfr, npix = matrix.shape
    gram = np.zeros((nfr, nfr), dtype=np.float64)
    # Large problems: float32 products per chunk (2x faster, no conversion), summed in float64;
    # small ones: float64 throughout (cheap, and keeps the small eigenvalues accurate).
    exact = matrix.size < SMALL_PROBLEM
    for start in range(0, npix, _PIXEL_CHUNK):
        block = matrix[:, start : start + _PIXEL_CHUNK]
        if exact:
            block = block.astype(np.float64)
        gram += block @ block.T
    values, vectors = np.linalg.eigh(gram)
    return values[::-1], vectors[:, ::-1]


def pca_residuals(
    cube: np.ndarray,
    ncomp: int | Sequence[int] = 10,
    *,
    scaling: str | None = "temp-mean",
    mask_center_px: float | None = None,
):
    """Yield ``(k, residual_cube)`` for each number of components ``k`` (ascending), one pass.

    ``residual_cube`` is (frames, y, x) float32: each frame minus its projection on the first
    ``k`` principal components of the cube itself. Every yielded array is independent of the
    others (it may be kept while the next one is computed): the residuals are updated in place
    from one ``k`` to the next, and each but the last is yielded as a copy, so a single ``k`` (the
    common case) costs no copy at all.
    """
    nfr = cube.shape[0]
    ks = sorted(set(_as_ncomp_list(ncomp, nfr)))
    residual = _matrix(cube, scaling, mask_center_px)
    _, vectors = gram_eigen(residual)
    vectors = vectors[:, : ks[-1]].astype(np.float32)
    npix = residual.shape[1]
    coeffs = np.empty((ks[-1], npix), dtype=np.float32)  # E_k^T X, before X is overwritten
    for start in range(0, npix, _PIXEL_CHUNK):
        coeffs[:, start : start + _PIXEL_CHUNK] = vectors.T @ residual[:, start : start + _PIXEL_CHUNK]
    done = 0
    for k in ks:
        for start in range(0, npix, _PIXEL_CHUNK):
            block = slice(start, start + _PIXEL_CHUNK)
            residual[:, block] -= vectors[:, done:k] @ coeffs[done:k, block]
        done = k
        result = residual.reshape(cube.shape)
        # Later k keep subtracting from ``residual``: hand out a snapshot unless this is the last.
        yield k, result if k == ks[-1] else result.copy()


def _uses_tiles(cube: np.ndarray | InjectedCube, interpolation: str) -> bool:
    """Whether :func:`pca` takes the tiled route (bilinear only): cubes above ``TILED_ELEMENTS``
    elements and memory-mapped ones (no full copy is made; any real dtype is read piece by piece).
    Smaller in-memory cubes keep the in-memory route (a float32 copy is cheap there)."""
    if interpolation != "bilinear":
        return False
    if isinstance(cube, InjectedCube):
        return _uses_tiles(cube.base, interpolation)
    return cube.size > TILED_ELEMENTS or is_memory_mapped(cube)


def _working_bytes(cube: np.ndarray | InjectedCube) -> int:
    """Bytes of one working buffer of the tiled route: 1/32 of the cube (as float32), at most
    32 MiB, at least 1 MiB. Each of the two worker threads holds a few (chunk, tile buffer,
    residual block and its product), so the extra memory stays a small fraction of the cube
    (0.2x for an IRDIS cube) whatever its size."""
    return int(min(32 * 2**20, max(2**20, 4 * cube.size // 32)))


def _read(
    cube: np.ndarray | InjectedCube, frames: np.ndarray, y0: int, y1: int, x0: int, x1: int
) -> np.ndarray:
    """Float32 copy of ``cube[frames, y0:y1, x0:x1]`` read frame by frame (a memory-mapped cube of
    any dtype is read here, without a second copy in its own dtype); fakes added for an
    :class:`~hcdc.science.postprocessing.fakes.InjectedCube`."""
    if isinstance(cube, InjectedCube):
        return cube.read(frames, y0, y1, x0, x1)
    out = np.empty((len(frames), y1 - y0, x1 - x0), dtype=np.float32)
    for j, f in enumerate(frames):
        out[j] = cube[f, y0:y1, x0:x1]
    return out


def _row_block(
    cube: np.ndarray | InjectedCube, rows: slice, mean: np.ndarray | None, masked: np.ndarray | None
) -> np.ndarray:
    """Rows ``rows`` of every frame as a float32 (frames, pixels) matrix, centre-masked and
    mean-subtracted (``mean`` and ``masked`` flat over the frame)."""
    nfr, _, nx = cube.shape
    block = _read(cube, np.arange(nfr), rows.start, rows.stop, 0, nx).reshape(nfr, -1)
    sl = slice(rows.start * nx, rows.stop * nx)
    if masked is not None:
        block[:, masked[sl]] = 0.0
    if mean is not None:
        block -= mean[sl]
    return block


def _over_rows(
    cube: np.ndarray | InjectedCube,
    work: Callable[[slice, object], object],
    working_bytes: int,
    start: Callable[[], object] = lambda: None,
    rows: tuple[int, int] | None = None,
) -> list[object]:
    """``state = work(rows, state)`` for every band of rows of ``cube`` (float32 blocks of
    ``working_bytes``), the bands shared between the worker threads (numpy releases the GIL
    while copying and multiplying), each thread's ``state`` starting as ``start()``; the final
    state of each thread (an accumulator: one per thread, not one per band). ``rows``: only the
    bands of rows ``rows[0]:rows[1]`` (default all).

    One BLAS thread each: on two shared cores OpenBLAS's own threads made the Gram product 10-15x
    slower under load (measured: 0.17 s against 2.9 s per 300 x 65536 chunk at load 5).
    """
    nfr, ny, nx = cube.shape
    first, last = (0, ny) if rows is None else (max(0, rows[0]), min(ny, rows[1]))
    step = max(1, working_bytes // (4 * nfr * nx))
    bands = [slice(r, min(r + step, last)) for r in range(first, last, step)]
    n_parts = min(_base._WORKERS, len(bands))
    results: list[object] = [None] * n_parts

    def part(p: int) -> None:
        state = start()
        for i in range(p, len(bands), n_parts):
            state = work(bands[i], state)
        results[p] = state

    with blas_threads(0, limit=1):
        if n_parts > 1:
            for future in [_base._pool().submit(part, p) for p in range(n_parts)]:
                future.result()
        else:
            part(0)
    return results


def tiled_components(
    cube: np.ndarray | InjectedCube,
    kmax: int,
    *,
    scaling: str | None = "temp-mean",
    mask_center_px: float | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``(mean, E, C)`` of the cube in three passes over bands of rows, without copying it whole.

    ``mean`` (pixels,) float32 temporal mean (None without ``'temp-mean'``), ``E`` (frames, kmax)
    float32 leading eigenvectors of the Gram matrix of the (masked, mean-subtracted) frames and
    ``C = E^T X`` (kmax, pixels) float32, so that the residuals of frame ``j`` with ``k``
    components are ``x_j - mean - E[j, :k] @ C[:k]``. The cube may be memory-mapped, of any real
    dtype, or an :class:`InjectedCube`; each pass reads it one band of rows at a time.
    """
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; use one of {SCALINGS}")
    masked = _center_mask(cube.shape, mask_center_px)
    mean, gram = _tiled_statistics(cube, scaling, masked)
    e = _leading_vectors(gram, kmax)
    return mean, e, _tiled_coeffs(cube, e, mean, masked)


def _center_mask(shape: tuple[int, ...], mask_center_px: float | None) -> np.ndarray | None:
    """Flat boolean mask of the pixels :func:`_matrix` zeroes (None without a central mask)."""
    return geometry.circular_mask(shape, mask_center_px).ravel() if mask_center_px else None


def _tiled_statistics(
    cube: np.ndarray | InjectedCube, scaling: str | None, masked: np.ndarray | None
) -> tuple[np.ndarray | None, np.ndarray]:
    """The first two passes of :func:`tiled_components`: the float32 temporal mean (pixels,) (None
    without ``'temp-mean'``) and the float64 Gram matrix (frames, frames) of the masked,
    mean-subtracted frames."""
    nfr, ny, nx = cube.shape
    npix = ny * nx
    working = _working_bytes(cube)
    mean = None
    if scaling == "temp-mean":
        mean = np.empty(npix, dtype=np.float32)

        def band_mean(rows: slice, _: object) -> None:
            block = _row_block(cube, rows, None, masked)
            mean[rows.start * nx : rows.stop * nx] = block.mean(axis=0, dtype=np.float64)

        _over_rows(cube, band_mean, working)
    exact = nfr * npix < SMALL_PROBLEM  # as gram_eigen: float64 products for small problems

    def band_gram(rows: slice, gram: np.ndarray) -> np.ndarray:
        block = _row_block(cube, rows, mean, masked)
        if exact:
            block = block.astype(np.float64)
        gram += block @ block.T  # float32 products summed in float64, as gram_eigen
        return gram

    partial = _over_rows(cube, band_gram, working, lambda: np.zeros((nfr, nfr)))
    gram = partial.pop(0)
    for other in partial:  # in place: no stack of per-thread matrices
        gram += other
    return mean, gram


def _leading_vectors(gram: np.ndarray, kmax: int) -> np.ndarray:
    """The ``kmax`` leading eigenvectors (columns, descending eigenvalues) of ``gram`` as float32;
    ``gram`` is overwritten. Only those are computed (LAPACK dsyevr, in place): frames^2 memory
    stays ~2 Gram matrices even for thousands of frames."""
    nfr = gram.shape[0]
    _, vectors = scipy.linalg.eigh(
        gram, overwrite_a=True, check_finite=False, subset_by_index=[nfr - kmax, nfr - 1], driver="evr"
    )
    return np.ascontiguousarray(vectors[:, ::-1], dtype=np.float32)


def _tiled_coeffs(
    cube: np.ndarray | InjectedCube,
    e: np.ndarray,
    mean: np.ndarray | None,
    masked: np.ndarray | None,
    rows: tuple[int, int] | None = None,
) -> np.ndarray:
    """The third pass of :func:`tiled_components`: ``C = E^T X`` (kmax, pixels) float32 of the
    masked, mean-subtracted frames; with ``rows``, only in those rows (0 elsewhere)."""
    nfr, ny, nx = cube.shape
    coeffs = (np.empty if rows is None else np.zeros)((e.shape[1], ny * nx), dtype=np.float32)

    def band_coeffs(rows: slice, _: object) -> None:
        coeffs[:, rows.start * nx : rows.stop * nx] = e.T @ _row_block(cube, rows, mean, masked)

    _over_rows(cube, band_coeffs, _working_bytes(cube), rows=rows)
    return coeffs


# Statistics (temporal mean, Gram matrix) of base cubes, kept for the incremental route of their
# fake-injected versions (``incremental_fakes``): (key, scaling, mask) -> (cube, mean, Gram).
_STATISTICS: OrderedDict[tuple, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = OrderedDict()
_STATISTICS_ITEMS = 2  # the plane and, at most, one other (a frame mean and frames^2 each)


def clear_statistics() -> None:
    """Forget the base-cube statistics kept for ``incremental_fakes`` (see :func:`pca`)."""
    _STATISTICS.clear()


def _statistics_key(cube: np.ndarray, scaling: str | None, mask_center_px: float | None) -> tuple:
    """The cube's memory (address, shape, strides, dtype) and the PCA options: the same
    memory-mapped plane seen through a new view (each :class:`InjectedCube` makes one) has the
    same key. The cached entry holds a reference to the cube, so the address stays its own."""
    address = cube.__array_interface__["data"][0]
    return (address, cube.shape, cube.strides, cube.dtype.str, scaling, mask_center_px)


def _base_statistics(
    cube: np.ndarray, scaling: str | None, masked: np.ndarray | None, mask_center_px: float | None
) -> tuple[np.ndarray | None, np.ndarray]:
    """:func:`_tiled_statistics` of ``cube``, computed once and kept (read-only: copy to change)."""
    key = _statistics_key(cube, scaling, mask_center_px)
    if key in _STATISTICS:
        _STATISTICS.move_to_end(key)
        return _STATISTICS[key][1:]
    mean, gram = _tiled_statistics(cube, scaling, masked)
    for array in (mean, gram):
        if array is not None:
            array.setflags(write=False)
    _STATISTICS[key] = (cube, mean, gram)
    while len(_STATISTICS) > _STATISTICS_ITEMS:
        _STATISTICS.popitem(last=False)
    return mean, gram


def _companion_footprint(cube: InjectedCube) -> np.ndarray:
    """Boolean (y, x) mask of every pixel that a companion's stamp of ``cube`` touches in any
    frame: the only pixels where the injected cube differs from its base."""
    _, ny, nx = cube.shape
    touched = np.zeros((ny, nx), dtype=bool)
    for ix, iy, stamps, _ in cube.companions:
        h = stamps.shape[-1] // 2
        for x, y in set(zip(ix.tolist(), iy.tolist(), strict=True)):
            touched[max(y - h, 0) : max(y + h + 1, 0), max(x - h, 0) : max(x + h + 1, 0)] = True
    return touched


def _injected_statistics(
    cube: InjectedCube, scaling: str | None, masked: np.ndarray | None, mask_center_px: float | None
) -> tuple[np.ndarray | None, np.ndarray]:
    """:func:`_tiled_statistics` of an :class:`InjectedCube` from those of its base, reading only
    the pixels its companions touch.

    With ``P`` those pixels, ``X`` the base's and ``X'`` the injected cube's centred frames,
    ``X' X'^T = X X^T - X_P X_P^T + X'_P X'_P^T``: the base's Gram matrix (computed once,
    :func:`_base_statistics`) minus the touched pixels' old contribution plus their new one, and
    the temporal mean changes only at ``P`` (recomputed there as the full pass computes it). The
    result equals the full passes' to the rounding of the float32 products (not bit for bit)."""
    base = cube.base
    nfr, ny, nx = cube.shape
    base_mean, base_gram = _base_statistics(base, scaling, masked, mask_center_px)
    touched = _companion_footprint(cube)
    if masked is not None:
        touched &= ~masked.reshape(ny, nx)  # zero with or without the companions
    mean = None if base_mean is None else base_mean.copy()
    exact = nfr * ny * nx < SMALL_PROBLEM  # float64 products where the full pass uses them
    frames = np.arange(nfr)

    def band(rows: slice, gram: np.ndarray) -> np.ndarray:
        sel = touched[rows]
        cols = np.flatnonzero(sel.any(axis=0))
        if cols.size == 0:
            return gram
        x0, x1 = int(cols[0]), int(cols[-1]) + 1
        keep = sel[:, x0:x1].ravel()
        flat = (np.arange(rows.start, rows.stop)[:, None] * nx + np.arange(x0, x1)).ravel()[keep]
        old = _read(base, frames, rows.start, rows.stop, x0, x1).reshape(nfr, -1)[:, keep]
        new = cube.read(frames, rows.start, rows.stop, x0, x1).reshape(nfr, -1)[:, keep]
        if mean is not None:
            old -= base_mean[flat]
            mean[flat] = new.mean(axis=0, dtype=np.float64)  # as the full pass's band_mean
            new -= mean[flat]
        if exact:
            old, new = old.astype(np.float64), new.astype(np.float64)
        gram += new @ new.T
        gram -= old @ old.T
        return gram

    partial = _over_rows(cube, band, _working_bytes(cube), lambda: base_gram.copy())
    gram = partial.pop(0)
    for other in partial:  # each thread started from the base's matrix: count it once
        gram += other - base_gram
    return mean, gram


def _incremental_components(
    cube: np.ndarray | InjectedCube,
    kmax: int,
    scaling: str | None,
    mask_center_px: float | None,
    rows: tuple[int, int] | None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """:func:`tiled_components` for ``incremental_fakes``: a plain cube's mean and Gram matrix are
    computed as there and kept; an :class:`InjectedCube`'s are updated from its base's
    (:func:`_injected_statistics`). The coefficients only in ``rows`` when given."""
    masked = _center_mask(cube.shape, mask_center_px)
    if isinstance(cube, InjectedCube):
        mean, gram = _injected_statistics(cube, scaling, masked, mask_center_px)
    else:
        mean, gram = _base_statistics(cube, scaling, masked, mask_center_px)
        gram = gram.copy()  # the kept matrix stays intact (the eigen-decomposition overwrites)
    e = _leading_vectors(gram, kmax)
    return mean, e, _tiled_coeffs(cube, e, mean, masked, rows)


def _input_rows(shape: tuple[int, ...], output_mask: np.ndarray | None) -> tuple[int, int] | None:
    """Rows of the frames that bilinear derotation reads for the pixels of ``output_mask``: a
    rotation about the frame centre keeps the separation, and the four pixels read around the
    rotated point lie within sqrt(2) px of it (2 px margin). None (all rows) without a mask."""
    if output_mask is None:
        return None
    r = geometry.distance_map(shape[-2:])[np.asarray(output_mask, dtype=bool)]
    if r.size == 0:
        return (0, 0)
    cy, _ = geometry.frame_center(shape)
    reach = float(r.max()) + 2.0
    return (int(np.floor(cy - reach)), int(np.ceil(cy + reach)) + 1)


def _pca_tiled(
    cube: np.ndarray,
    angles: np.ndarray,
    ks: list[int],
    collapse: str,
    scaling: str | None,
    mask_center_px: float | None,
    output_mask: np.ndarray | None,
    incremental: bool = False,
) -> dict[int, np.ndarray]:
    """Final images of full-frame PCA for each ``k`` of ``ks`` without a residual cube in memory.

    The residuals are recomputed, for each output tile and group of frames, on the input
    rectangle the derotation reads (``x - mean - E_k C_k``, a small matrix product), then
    derotated and combined by :func:`tiles.derotate_collapse_tiled`. Extra memory: the
    coefficients ``C`` (kmax / frames of the cube), one frame-sized mean and the tile buffers.
    """
    nfr, ny, nx = cube.shape
    if incremental:
        rows = _input_rows(cube.shape, output_mask)
        mean, e, coeffs = _incremental_components(cube, max(ks), scaling, mask_center_px, rows)
    else:
        mean, e, coeffs = tiled_components(cube, max(ks), scaling=scaling, mask_center_px=mask_center_px)
    mean2d = None if mean is None else mean.reshape(ny, nx)
    coeffs3d = coeffs.reshape(-1, ny, nx)
    masked = geometry.circular_mask(cube.shape, mask_center_px) if mask_center_px else None
    working = _working_bytes(cube)
    images = {}
    for k in ks:

        def residual_block(frames: np.ndarray, y0: int, y1: int, x0: int, x1: int, k: int = k) -> np.ndarray:
            block = _read(cube, frames, y0, y1, x0, x1)
            if masked is not None:
                block[:, masked[y0:y1, x0:x1]] = 0.0
            if mean2d is not None:
                block -= mean2d[y0:y1, x0:x1]
            projection = e[frames, :k] @ coeffs3d[:k, y0:y1, x0:x1].reshape(k, -1)
            block -= projection.reshape(block.shape)
            return block

        # Two worker threads each run small matrix products: one BLAS thread each.
        with blas_threads(0, limit=1):
            images[k] = tiles.derotate_collapse_tiled(
                residual_block,
                nfr,
                (ny, nx),
                angles,
                collapse,
                output_mask=output_mask,
                buffer_bytes=2 * working,
                block_bytes=working,
            )
    return images


@register_algorithm("pca", supports_output_mask=True)
def pca(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    ncomp: int | Sequence[int] = 10,
    collapse: str = "median",
    interpolation: str = "bilinear",
    scaling: str | None = "temp-mean",
    mask_center_px: float | None = None,
    output_mask: np.ndarray | None = None,
    incremental_fakes: bool = False,
) -> np.ndarray:
    """Full-frame PCA (KLIP) ADI: subtract the first ``ncomp`` principal components, derotate, combine.

    ``ncomp`` an integer gives one image (y, x); a list gives a stack (len(ncomp), y, x) in the
    order given, computed from one eigen-decomposition. ``fwhm`` (px) is accepted for the common
    interface (full-frame PCA has no rotation exclusion). ``output_mask`` (bool (y, x)): compute
    only those final pixels, the others are 0 (see :func:`derotate_and_collapse`).

    Cubes above ``TILED_ELEMENTS`` elements and memory-mapped cubes of any real dtype (with
    bilinear interpolation) take the tiled route: the cube is read in bands of rows (three
    passes: mean, Gram matrix, coefficients) and never copied whole; the residuals are formed
    tile by tile during derotation (:mod:`hcdc.science.postprocessing.tiles`). Its images equal
    those of the in-memory route to float32 rounding.

    ``incremental_fakes`` (tiled route only; default off, the full passes): the temporal mean and
    Gram matrix of a plain cube are kept (:func:`clear_statistics` forgets them), and those of an
    :class:`InjectedCube` of it (the same cube with fake or subtracted companions, as throughput,
    photometry and astrometry measurements make by the dozen) are updated from them by reading
    only the pixels the companions touch (:func:`_injected_statistics`) instead of two passes over
    the whole cube; with ``output_mask``, the coefficients are computed only in the rows its
    pixels are derotated from. The images equal the full passes' to the rounding of float32
    products (~1e-5 of the image's peak, as large as the full passes' own difference from
    float64 products), not bit for bit. The cube must not change in place while its statistics
    are kept (``postprocess`` drops them at its end).
    """
    if isinstance(cube, InjectedCube) and _uses_tiles(cube, interpolation):
        # A large cube with fakes added on reading (throughput): validated through its base.
        _, angles = check_adi_inputs(cube.base, angles, fwhm, as_float32=False)
    else:
        cube, angles = check_adi_inputs(cube, angles, fwhm, as_float32=False)
    order = _as_ncomp_list(ncomp, cube.shape[0])
    if _uses_tiles(cube, interpolation):
        with blas_threads(cube.size):
            images = _pca_tiled(
                cube, angles, sorted(set(order)), collapse, scaling, mask_center_px, output_mask,
                incremental=incremental_fakes,
            )  # fmt: skip
        return images[order[0]] if np.ndim(ncomp) == 0 else np.stack([images[k] for k in order])
    cube = cube.astype(np.float32, copy=False)
    with blas_threads(cube.size):
        images = {
            k: derotate_and_collapse(res, angles, collapse, interpolation, output_mask=output_mask)
            for k, res in pca_residuals(cube, order, scaling=scaling, mask_center_px=mask_center_px)
        }
    if np.ndim(ncomp) == 0:
        return images[order[0]]
    return np.stack([images[k] for k in order])


def _load_dsyevr() -> Callable[..., None] | None:
    """LAPACK ``dsyevr`` as a ctypes function (which releases the GIL while it runs), or None.

    Taken from the function table scipy exports for Cython (``scipy.linalg.cython_lapack``);
    calling it through ctypes avoids the f2py wrapper's per-call overhead (a third of the time
    for 60 x 60 matrices) and lets two threads decompose matrices at once. Any failure to find
    it falls back on ``scipy.linalg.lapack.dsyevr`` (same routine, same results).
    """
    try:
        from scipy.linalg import cython_lapack

        capsule = cython_lapack.__pyx_capi__["dsyevr"]
        api = ctypes.pythonapi
        api.PyCapsule_GetName.restype = ctypes.c_char_p
        api.PyCapsule_GetName.argtypes = [ctypes.py_object]
        api.PyCapsule_GetPointer.restype = ctypes.c_void_p
        api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        name = api.PyCapsule_GetName(capsule)
        # The signature scipy declares: 3 char*, then int/double pointers (21 arguments in all).
        if (
            name is None
            or name.count(b",") != 20
            or not name.startswith(b"void (char *, char *, char *, int *")
        ):
            return None
        address = api.PyCapsule_GetPointer(capsule, name)
    except Exception:  # noqa: BLE001 - optional fast path; the f2py wrapper is the fallback
        return None
    return ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 21))(address)


_DSYEVR_C = _load_dsyevr()


def _dsyevr_leading_ctypes(matrices: np.ndarray, count: int, values: np.ndarray, vectors: np.ndarray) -> bool:
    """Fill ``values`` (group, count) descending and ``vectors`` (group, m, count) with the
    ``count`` leading eigenpairs of each symmetric ``matrices[g]`` via LAPACK ``dsyevr``.

    Returns False if LAPACK reported a failure (the caller then uses a full ``eigh``).
    """
    group, m, _ = matrices.shape
    a = np.empty((m, m))
    w = np.empty(m)
    z = np.empty((count, m))  # Fortran (m, count), column j = row j here
    isuppz = np.empty(2 * m, dtype=np.int32)
    lwork, liwork = 26 * m, 10 * m  # LAPACK's documented minimum workspaces
    work = np.empty(lwork)
    iwork = np.empty(liwork, dtype=np.int32)
    # n, lda, il, iu, m (found), ldz, lwork, liwork, info
    ints = np.array([m, m, m - count + 1, m, 0, m, lwork, liwork, 0], dtype=np.int32)
    reals = np.zeros(3)  # vl, vu (unused with range 'I'), abstol (0: LAPACK's default)
    p_int = [ctypes.c_void_p(ints.ctypes.data + 4 * i) for i in range(ints.size)]
    p_real = [ctypes.c_void_p(reals.ctypes.data + 8 * i) for i in range(reals.size)]
    p_a, p_w, p_z = (ctypes.c_void_p(v.ctypes.data) for v in (a, w, z))
    p_isuppz, p_work, p_iwork = (ctypes.c_void_p(v.ctypes.data) for v in (isuppz, work, iwork))
    jobz, which, uplo = ctypes.c_char_p(b"V"), ctypes.c_char_p(b"I"), ctypes.c_char_p(b"L")
    for g in range(group):
        a[...] = matrices[g]  # overwritten by LAPACK; symmetric, so the storage order does not matter
        _DSYEVR_C(  # type: ignore[misc]
            jobz, which, uplo, p_int[0], p_a, p_int[1], p_real[0], p_real[1], p_int[2], p_int[3],
            p_real[2], p_int[4], p_w, p_z, p_int[5], p_isuppz, p_work, p_int[6], p_iwork, p_int[7], p_int[8],
        )  # fmt: skip
        if ints[8] != 0 or ints[4] != count:
            return False
        values[g] = w[count - 1 :: -1]
        vectors[g] = z[::-1].T
    return True


def _dsyevr_leading_f2py(matrices: np.ndarray, count: int, values: np.ndarray, vectors: np.ndarray) -> bool:
    """As :func:`_dsyevr_leading_ctypes` through scipy's f2py wrapper."""
    m = matrices.shape[1]
    for g in range(matrices.shape[0]):
        w, z, found, _, info = _dsyevr(matrices[g], compute_v=1, range="I", il=m - count + 1, iu=m)
        if info != 0 or found != count:
            return False
        values[g] = w[count - 1 :: -1]
        vectors[g] = z[:, count - 1 :: -1]
    return True


def _leading_eigh(stacks: list[np.ndarray], counts: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``counts[i]`` largest eigenvalues (descending) and eigenvectors of ``stacks[i]``.

    ``stacks[i]`` (group, m, m) float64 symmetric matrices. Only the leading eigenpairs are needed
    (the largest number of components), so LAPACK ``dsyevr`` computes just those (MRRR: 2-3x
    faster than a full ``eigh`` for 60 x 60 matrices and 5-20 components); through the GIL-free
    ctypes entry point the matrices are shared between two threads. A full batched ``eigh`` is
    used for a stack whose count is more than half of ``m`` or where ``dsyevr`` reports a failure.
    """
    out = [
        (np.empty((st.shape[0], c)), np.empty((st.shape[0], st.shape[1], c)))
        for st, c in zip(stacks, counts, strict=True)
    ]
    fast = [i for i, (st, c) in enumerate(zip(stacks, counts, strict=True)) if 2 * c <= st.shape[1]]
    failed: set[int] = set(range(len(stacks))) - set(fast)
    if _DSYEVR_C is None:
        failed |= {i for i in fast if not _dsyevr_leading_f2py(stacks[i], counts[i], *out[i])}
    else:

        def work(part: int) -> set[int]:
            bad = set()
            for i in fast:
                g = stacks[i].shape[0]
                sl = slice(0, (g + 1) // 2) if part == 0 else slice((g + 1) // 2, g)
                if not _dsyevr_leading_ctypes(stacks[i][sl], counts[i], out[i][0][sl], out[i][1][sl]):
                    bad.add(i)
            return bad

        if _base._WORKERS > 1 and sum(stacks[i].shape[0] for i in fast) >= 16:
            futures = [_base._pool().submit(work, part) for part in (0, 1)]
            for future in futures:
                failed |= future.result()
        else:
            failed |= work(0) | work(1)
    for i in failed:
        values, vectors = np.linalg.eigh(stacks[i])  # ascending
        out[i] = (values[:, ::-1][:, : counts[i]], vectors[:, :, ::-1][:, :, : counts[i]])
    return out


def _annulus_weights(gram: np.ndarray, allowed: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
    """Reconstruction weights ``W_k`` (frames x frames) of every frame from its own library.

    Frame ``j``'s library is ``L = allowed[j]``. With ``G_L = E Lambda E^T`` (top ``k``), the
    projection of frame ``j`` on the library's first ``k`` components is ``X_L^T w`` with
    ``w = E_k Lambda_k^-1 E_k^T G[L, j]``. Frames whose libraries have the same size are
    grouped (batched sub-matrix extraction and projections); the eigen-decompositions of all
    libraries are done in one :func:`_leading_eigh` call.
    """
    nfr = gram.shape[0]
    weights = {k: np.zeros((nfr, nfr)) for k in ks}
    sizes = allowed.sum(axis=1)
    groups = []
    for m in np.unique(sizes):
        frames = np.flatnonzero(sizes == m)
        rows = allowed[frames]
        lib = np.nonzero(rows)[1].reshape(frames.size, m)  # library indices, ascending
        # Library sub-matrices (group, m, m) by one boolean selection (4x faster than fancy
        # indexing with lib x lib): True entries come out in row-major order, i.e. G[L, L].
        pairs = rows[:, :, None] & rows[:, None, :]
        groups.append(
            (int(m), frames, lib, np.broadcast_to(gram, pairs.shape)[pairs].reshape(frames.size, m, m))
        )
    eigen = _leading_eigh([g[3] for g in groups], [min(max(ks), g[0]) for g in groups])
    for (m, frames, lib, _), (values, vectors) in zip(groups, eigen, strict=True):
        target = gram[lib, frames[:, None]]  # G[L, j]
        # Eigenvalues ~0 (library of rank < k) are dropped rather than inverted.
        floor = 1e-10 * np.maximum(values[:, :1], np.finfo(np.float64).tiny)
        inverse = np.where(values > floor, 1.0 / np.where(values > floor, values, 1.0), 0.0)
        proj = np.einsum("jia,ji->ja", vectors, target)  # E^T g_j
        for k in ks:
            kk = min(k, m)
            w = np.einsum("jia,ja->ji", vectors[:, :, :kk], proj[:, :kk] * inverse[:, :kk])
            weights[k][frames[:, None], lib] = w
    return weights


@register_algorithm("pca_annular", supports_output_mask=True)
def pca_annular(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    ncomp: int | Sequence[int] = 5,
    asize: float = 4.0,
    radius_int: float = 0.0,
    delta_rot: float | tuple[float, float] = (0.1, 1.0),
    collapse: str = "median",
    interpolation: str = "bilinear",
    scaling: str | None = "temp-mean",
    min_frames_lib: int = 2,
    output_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Annular PCA ADI with a rotation-exclusion library per annulus and frame.

    Annuli of ``asize`` px from ``radius_int``; for frame ``j`` in an annulus of mean radius ``r``
    the library holds the frames whose derotation angle differs by at least
    ``2 atan(delta_rot * fwhm / (2 r))`` degrees (``delta_rot`` in FWHM, a number or ``(inner,
    outer)`` spread linearly over the annuli, VIP's defaults). ``ncomp`` an integer or a list (then
    a stack is returned). Frames whose library has fewer than ``min_frames_lib`` frames raise
    ``ValueError``; libraries smaller than ``ncomp`` use all their components.

    ``output_mask`` (bool (y, x)): compute only those final pixels, the others are 0. With
    bilinear derotation only the annuli those pixels are interpolated from are processed (each
    annulus is independent of the others, so their values are those of a full run).
    """
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    nfr = cube.shape[0]
    order = _as_ncomp_list(ncomp, nfr)
    ks = sorted(set(order))
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; use one of {SCALINGS}")
    annuli = define_annuli(cube.shape, fwhm, asize, radius_int, delta_rot, angles=angles)
    if output_mask is not None and interpolation == "bilinear":
        annuli = _annuli_feeding(annuli, cube.shape, output_mask)
    flat = cube.reshape(nfr, -1)
    residuals = {k: np.zeros_like(flat) for k in ks}
    with blas_threads(cube.size):
        for ann in annuli:
            _annulus_residuals(flat, angles, ann, ks, scaling, min_frames_lib, residuals)
    images = {
        k: derotate_and_collapse(
            residuals[k].reshape(cube.shape), angles, collapse, interpolation, output_mask=output_mask
        )
        for k in ks
    }
    if np.ndim(ncomp) == 0:
        return images[order[0]]
    return np.stack([images[k] for k in order])


def _annuli_feeding(annuli: list[Annulus], shape: tuple[int, ...], output_mask: np.ndarray) -> list[Annulus]:
    """The annuli holding pixels that bilinear derotation reads for the pixels of ``output_mask``.

    A rotation about the frame centre keeps the separation; bilinear interpolation then reads the
    four pixels around the rotated position, all within sqrt(2) px of it (1.5 px margin here).
    """
    mask = np.asarray(output_mask, dtype=bool)
    if mask.shape != tuple(shape[-2:]):
        raise ValueError(f"output_mask has shape {mask.shape}; the frames are {tuple(shape[-2:])}")
    r = geometry.distance_map(mask.shape)[mask]
    if r.size == 0:
        return []
    lo, hi = r.min() - 1.5, r.max() + 1.5
    return [a for a in annuli if a.radius_out > lo and a.radius_in <= hi]


def _annulus_residuals(
    flat: np.ndarray,
    angles: np.ndarray,
    ann: Annulus,
    ks: list[int],
    scaling: str | None,
    min_frames_lib: int,
    residuals: dict[int, np.ndarray],
) -> None:
    """Write the residuals of one annulus into ``residuals[k][:, ann.indices]`` for every ``k``."""
    xa = flat[:, ann.indices].astype(np.float64)
    if scaling == "temp-mean":
        xa -= xa.mean(axis=0)
    allowed = exclusion_mask(angles, ann.pa_threshold)
    smallest = int(allowed.sum(axis=1).min())
    if smallest < min_frames_lib:
        raise ValueError(
            f"annulus {ann.radius_in:.1f}-{ann.radius_out:.1f} px: a frame has only {smallest} library "
            f"frames at rotation threshold {ann.pa_threshold:.2f} deg (delta_rot too large for the "
            f"{np.ptp(angles):.1f} deg field rotation)"
        )
    gram = xa @ xa.T
    for k, w in _annulus_weights(gram, allowed, ks).items():
        residuals[k][:, ann.indices] = (xa - w @ xa).astype(np.float32)
