"""Reductions without a PSF model: no-ADI stacking and azimuthal-profile subtraction.

* ``stack``: derotate every frame to north-up and combine them, subtracting nothing. This is the
  reference "no-ADI" reduction: the companion keeps all its flux (throughput 1), the speckles and
  halo stay (they average down only as much as field rotation decorrelates them).
* ``radial_profile``: subtract from every frame its azimuthal median profile (median of each
  ring of ``ring_width`` px around the star), then derotate and combine. It removes the
  rotationally symmetric halo (and the part of each speckle that is its ring's median) but no
  azimuthal structure; a point source loses only the ring median it sits in (~0 when it covers a
  small fraction of its ring).
"""

from __future__ import annotations

import warnings

import numpy as np

from hcdc.science import geometry
from hcdc.science.postprocessing.base import check_adi_inputs, derotate_and_collapse, register_algorithm

__all__ = ["azimuthal_median_profile", "subtract_radial_profile", "stack", "radial_profile"]


def _ring_index(shape: tuple[int, ...], ring_width: float) -> np.ndarray:
    """Ring number of every pixel (flat): rings of ``ring_width`` px centred on the star."""
    if not ring_width > 0:
        raise ValueError(f"ring_width must be a positive number of pixels; got {ring_width}")
    return np.floor(geometry.distance_map(shape).ravel() / ring_width + 0.5).astype(np.int64)


def azimuthal_median_profile(cube: np.ndarray, ring_width: float = 1.0) -> np.ndarray:
    """Median over each ring of each frame: (frames, n_rings); ring ``k`` is centred on ``k * ring_width`` px.

    NaN pixels are ignored; a ring that is all-NaN in a frame gets NaN.
    """
    cube = np.asarray(cube, dtype=np.float32)
    if cube.ndim == 2:
        cube = cube[None]
    n = cube.shape[0]
    flat = cube.reshape(n, -1)
    ring = _ring_index(cube.shape, ring_width)
    order = np.argsort(ring, kind="stable")
    bounds = np.flatnonzero(np.diff(ring[order])) + 1
    profile = np.full((n, int(ring.max()) + 1), np.nan, dtype=np.float32)
    has_nan = bool(np.isnan(flat).any())
    for idx in np.split(order, bounds):
        values = flat[:, idx]
        if has_nan:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rings stay NaN on purpose
                profile[:, ring[idx[0]]] = np.nanmedian(values, axis=1)
        else:
            profile[:, ring[idx[0]]] = np.median(values, axis=1)
    return profile


def subtract_radial_profile(cube: np.ndarray, ring_width: float = 1.0) -> np.ndarray:
    """Cube (frames, y, x) minus each frame's azimuthal median profile.

    The profile is interpolated linearly in radius between ring centres (each ring's median is
    placed at the mean radius of its pixels), so smooth halos leave no ring-to-ring steps.
    """
    cube = np.asarray(cube, dtype=np.float32)
    squeeze = cube.ndim == 2
    if squeeze:
        cube = cube[None]
    profile = azimuthal_median_profile(cube, ring_width)
    ring = _ring_index(cube.shape, ring_width)
    r = geometry.distance_map(cube.shape).ravel()
    ring_radius = np.bincount(ring, r) / np.maximum(np.bincount(ring), 1)
    flat = cube.reshape(cube.shape[0], -1)
    out = np.empty_like(flat)
    for k in range(flat.shape[0]):
        good = np.isfinite(profile[k])
        if not good.any():
            out[k] = np.nan
            continue
        out[k] = flat[k] - np.interp(r, ring_radius[good], profile[k][good])
    out = out.reshape(cube.shape)
    return out[0] if squeeze else out


@register_algorithm("stack")
def stack(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    collapse: str = "mean",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """No-ADI reduction: derotate every frame to north-up and combine (no subtraction).

    ``fwhm`` (px) is accepted for the common interface and only validated. ``collapse``:
    ``'mean'`` (default, flux-preserving) or ``'median'``. Returns the north-up image (y, x) in
    the cube's units.
    """
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    return derotate_and_collapse(cube, angles, collapse=collapse, interpolation=interpolation)


@register_algorithm("radial_profile")
def radial_profile(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    ring_width: float = 1.0,
    collapse: str = "median",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """Subtract each frame's azimuthal median profile (rings of ``ring_width`` px), derotate, combine.

    Returns the north-up image (y, x) in the cube's units.
    """
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    residuals = subtract_radial_profile(cube, ring_width)
    return derotate_and_collapse(residuals, angles, collapse=collapse, interpolation=interpolation)
