"""PCA / KLIP ADI post-processing: full frame and annular with rotation exclusion.

Both variants work with the frame Gram matrix ``G = X X^T`` (frames x frames) instead of an SVD
of the (frames x pixels) matrix ``X``: the eigenvectors ``E`` of ``G`` give the principal
components (``V = Lambda^-1/2 E^T X``) and the projection of the frames on the first ``k`` of
them is simply ``E_k E_k^T X``, so the residuals are ``X - E_k (E_k^T X)``. This is the same
subspace as the thin SVD (Soummer et al. 2012, KLIP) at a fraction of the cost when
frames << pixels, and evaluating several ``k`` costs one eigen-decomposition.

``scaling``: ``'temp-mean'`` (default, as KLIP: subtract each pixel's temporal mean first) or
``None`` (VIP's default: the matrix is used as it is and the first component captures the mean
frame; use it with ``interpolation='bicubic'`` to reproduce VIP's numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hcdc.science import geometry
from hcdc.science.postprocessing.annuli import Annulus, define_annuli, exclusion_mask
from hcdc.science.postprocessing.base import (
    SMALL_PROBLEM,
    blas_threads,
    check_adi_inputs,
    derotate_and_collapse,
    register_algorithm,
)

__all__ = ["pca", "pca_annular", "pca_residuals", "gram_eigen"]

SCALINGS = (None, "temp-mean")
_PIXEL_CHUNK = 1 << 16  # pixels per chunk of the Gram accumulation (bounded float64 temporaries)


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


@register_algorithm("pca")
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
) -> np.ndarray:
    """Full-frame PCA (KLIP) ADI: subtract the first ``ncomp`` principal components, derotate, combine.

    ``ncomp`` an integer gives one image (y, x); a list gives a stack (len(ncomp), y, x) in the
    order given, computed from one eigen-decomposition. ``fwhm`` (px) is accepted for the common
    interface (full-frame PCA has no rotation exclusion).
    """
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    order = _as_ncomp_list(ncomp, cube.shape[0])
    with blas_threads(cube.size):
        images = {
            k: derotate_and_collapse(res, angles, collapse, interpolation)
            for k, res in pca_residuals(cube, order, scaling=scaling, mask_center_px=mask_center_px)
        }
    if np.ndim(ncomp) == 0:
        return images[order[0]]
    return np.stack([images[k] for k in order])


def _annulus_weights(gram: np.ndarray, allowed: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
    """Reconstruction weights ``W_k`` (frames x frames) of every frame from its own library.

    Frame ``j``'s library is ``L = allowed[j]``. With ``G_L = E Lambda E^T`` (top ``k``), the
    projection of frame ``j`` on the library's first ``k`` components is ``X_L^T w`` with
    ``w = E_k Lambda_k^-1 E_k^T G[L, j]``. Frames whose libraries have the same size are
    decomposed together in one batched ``eigh`` of their library sub-matrices.
    """
    nfr = gram.shape[0]
    weights = {k: np.zeros((nfr, nfr)) for k in ks}
    sizes = allowed.sum(axis=1)
    for m in np.unique(sizes):
        frames = np.flatnonzero(sizes == m)
        lib = np.nonzero(allowed[frames])[1].reshape(frames.size, m)  # library indices, ascending
        sub = gram[lib[:, :, None], lib[:, None, :]]  # (group, m, m)
        values, vectors = np.linalg.eigh(sub)  # ascending
        values = values[:, ::-1]
        vectors = vectors[:, :, ::-1]
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


@register_algorithm("pca_annular")
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
) -> np.ndarray:
    """Annular PCA ADI with a rotation-exclusion library per annulus and frame.

    Annuli of ``asize`` px from ``radius_int``; for frame ``j`` in an annulus of mean radius ``r``
    the library holds the frames whose derotation angle differs by at least
    ``2 atan(delta_rot * fwhm / (2 r))`` degrees (``delta_rot`` in FWHM, a number or ``(inner,
    outer)`` spread linearly over the annuli, VIP's defaults). ``ncomp`` an integer or a list (then
    a stack is returned). Frames whose library has fewer than ``min_frames_lib`` frames raise
    ``ValueError``; libraries smaller than ``ncomp`` use all their components.
    """
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    nfr = cube.shape[0]
    order = _as_ncomp_list(ncomp, nfr)
    ks = sorted(set(order))
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; use one of {SCALINGS}")
    annuli = define_annuli(cube.shape, fwhm, asize, radius_int, delta_rot, angles=angles)
    flat = cube.reshape(nfr, -1)
    residuals = {k: np.zeros_like(flat) for k in ks}
    with blas_threads(cube.size):
        for ann in annuli:
            _annulus_residuals(flat, angles, ann, ks, scaling, min_frames_lib, residuals)
    images = {
        k: derotate_and_collapse(residuals[k].reshape(cube.shape), angles, collapse, interpolation)
        for k in ks
    }
    if np.ndim(ncomp) == 0:
        return images[order[0]]
    return np.stack([images[k] for k in order])


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
