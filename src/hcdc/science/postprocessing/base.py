"""Algorithm registry and shared helpers of the Level 2 post-processing engine.

The contract every algorithm follows
------------------------------------
An ADI algorithm is a pure function::

    f(cube, angles, *, fwhm: float, **params) -> np.ndarray

* ``cube``: (frames, y, x) float32 ADI cube, star on :func:`hcdc.science.geometry.frame_center`.
* ``angles``: derotation angles in degrees (frame ``k`` is turned clockwise by ``angles[k]``,
  the :func:`hcdc.science.geometry.derotate` convention; VIP's ``angle_list``).
* ``fwhm``: PSF full width at half maximum in pixels.
* returns the final north-up image (y, x): residuals derotated and combined (``collapse``
  parameter, ``'median'`` or ``'mean'``).

Spectral algorithms (``spectral=True``) take a (wavelengths, frames, y, x) cube and the keyword
``wavelengths`` (µm) and return ``(final_image, per_wavelength_cube)``. RDI algorithms
(``needs_reference=True``) take the keyword ``reference`` (frames_ref, y, x).

S/N maps, throughput, contrast curves and NEGFC call algorithms only through this registry, so
every registered algorithm gets them for free.
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hcdc.science import geometry

__all__ = [
    "AlgorithmSpec",
    "ALGORITHMS",
    "register_algorithm",
    "get_algorithm",
    "check_adi_inputs",
    "check_angles",
    "collapse_frames",
    "derotate_and_collapse",
    "COLLAPSE_METHODS",
    "INTERPOLATION_ORDERS",
    "derotation_sources",
    "nan_median_columns",
    "is_memory_mapped",
]

COLLAPSE_METHODS = ("median", "mean")


@dataclass(frozen=True)
class AlgorithmSpec:
    """One registered post-processing algorithm."""

    name: str
    function: Callable[..., object]
    spectral: bool
    needs_reference: bool
    doc: str
    # True when the function accepts the keyword ``output_mask`` (bool (y, x)): only those pixels
    # of the final image are computed (the others are 0), with the same values as a full run.
    # Throughput measurements use it to skip derotating and combining pixels they never read.
    supports_output_mask: bool = False


ALGORITHMS: dict[str, AlgorithmSpec] = {}


def register_algorithm(
    name: str, *, spectral: bool = False, needs_reference: bool = False, supports_output_mask: bool = False
) -> Callable[[Callable[..., object]], Callable[..., object]]:
    """Decorator registering ``function`` under ``name`` in :data:`ALGORITHMS`.

    ``supports_output_mask``: the function accepts ``output_mask`` (see :class:`AlgorithmSpec`).

    Registering the same name twice with a different function is an error (it would silently
    change what ``get_algorithm(name)`` returns); re-registering the same function (module
    reload) is allowed.
    """
    if not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise ValueError(f"algorithm name {name!r} must be lower-case letters, digits and '_'")

    def decorator(function: Callable[..., object]) -> Callable[..., object]:
        existing = ALGORITHMS.get(name)
        if existing is not None and existing.function.__qualname__ != function.__qualname__:
            raise ValueError(f"algorithm {name!r} is already registered by {existing.function!r}")
        doc = inspect.getdoc(function) or ""
        ALGORITHMS[name] = AlgorithmSpec(
            name=name,
            function=function,
            spectral=spectral,
            needs_reference=needs_reference,
            doc=doc.splitlines()[0] if doc else "",
            supports_output_mask=supports_output_mask,
        )
        return function

    return decorator


def get_algorithm(name: str) -> AlgorithmSpec:
    """The :class:`AlgorithmSpec` registered as ``name``; a clear error lists the known names."""
    try:
        return ALGORITHMS[name]
    except KeyError:
        known = ", ".join(sorted(ALGORITHMS)) or "(none registered)"
        raise KeyError(f"unknown post-processing algorithm {name!r}; known algorithms: {known}") from None


def check_angles(angles: np.ndarray, n_frames: int, what: str) -> np.ndarray:
    """Derotation angles (deg) as a flat float64 array, one finite value per frame of ``what``."""
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if angles.size != n_frames:
        raise ValueError(f"{what} has {n_frames} frames but {angles.size} derotation angles were given")
    if not np.all(np.isfinite(angles)):
        raise ValueError("derotation angles contain NaN or infinite values")
    return angles


def check_adi_inputs(
    cube: np.ndarray, angles: np.ndarray, fwhm: float | None = None, *, as_float32: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Validate an ADI cube and its derotation angles; return them as float32 cube, float64 angles.

    Raises ``ValueError`` naming the problem (shape, angle count, non-finite angles, FWHM).
    ``as_float32=False`` returns the cube as given (e.g. a memory-mapped FITS cube of any real
    dtype, read piece by piece by the caller) instead of a float32 copy.
    """
    cube = np.asarray(cube)  # a view (no copy) of a memory-mapped array
    if not as_float32 and (not np.issubdtype(cube.dtype, np.number) or np.iscomplexobj(cube)):
        raise ValueError(f"an ADI cube must hold real numbers; got dtype {cube.dtype}")
    if cube.ndim != 3:
        raise ValueError(f"an ADI cube must be (frames, y, x); got shape {cube.shape}")
    angles = check_angles(angles, cube.shape[0], "ADI cube")
    if fwhm is not None and not (np.isfinite(fwhm) and fwhm > 0):
        raise ValueError(f"fwhm must be a positive number of pixels; got {fwhm!r}")
    if as_float32 and cube.dtype != np.float32:
        cube = cube.astype(np.float32)
    return cube, angles


def is_memory_mapped(array: object) -> bool:
    """Whether ``array`` is (a view of) a memory-mapped file: ``np.memmap``, ``np.load(mmap_mode=)``
    or astropy's ``fits.open(memmap=True)`` data (an ndarray whose base chain ends in ``mmap``)."""
    import mmap

    seen = 0
    while array is not None and seen < 32:  # a view's base chain is short; bound it anyway
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
        seen += 1
    return False


INTERPOLATION_ORDERS = {"bilinear": 1, "bicubic": 3}


def nan_median_columns(flat: np.ndarray) -> np.ndarray:
    """Median of each column of ``flat`` (frames, pixels) ignoring NaN; NaN where all are NaN.

    The same numbers as ``np.nanmedian(flat, axis=0)`` (the middle value, or the mean of the two
    middle values computed in the input's precision), from one sort of the transposed matrix:
    numpy's vectorised sort is several times faster than the selection ``np.median`` uses, and
    NaN sort last, so each column's valid values are its first ``count`` entries.
    """
    ordered = np.sort(flat.T, axis=1)  # (pixels, frames), NaN last
    count = flat.shape[0] - np.count_nonzero(np.isnan(ordered), axis=1)  # valid values per column
    lo = np.take_along_axis(ordered, np.maximum((count - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(ordered, np.maximum(count // 2, 0)[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        out = np.where(count % 2 == 1, lo, (lo + hi) / np.asarray(2, dtype=ordered.dtype))
    out[count == 0] = np.nan
    return out


def collapse_frames(cube: np.ndarray, method: str = "median") -> np.ndarray:
    """Combine a (frames, y, x) cube along frames with ``'median'`` or ``'mean'``, ignoring NaN.

    Pixels that are NaN in every frame stay NaN. The median is :func:`nan_median_columns` (equal
    to ``np.nanmedian``, ~4x faster than ``np.median`` here); for the mean, NaN-aware statistics
    are only used on the pixels that need them (frame corners after rotation).
    """
    if method not in COLLAPSE_METHODS:
        raise ValueError(f"unknown collapse method {method!r}; use one of {COLLAPSE_METHODS}")
    nfr = cube.shape[0]
    flat = cube.reshape(nfr, -1)
    if method == "median":
        return nan_median_columns(flat).astype(np.float32, copy=False).reshape(cube.shape[1:])
    incomplete = np.isnan(flat).any(axis=0)
    # Plain mean of every column (columns holding NaN come out NaN and are redone below);
    # cheaper than copying out the complete columns.
    with np.errstate(invalid="ignore"):
        out = flat.mean(axis=0, dtype=np.float64).astype(np.float32)
    if incomplete.any():
        part = flat[:, incomplete]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN on purpose
            out[incomplete] = np.nanmean(part, axis=0)
    return out.reshape(cube.shape[1:])


def derotate_and_collapse(
    residuals: np.ndarray,
    angles: np.ndarray,
    collapse: str = "median",
    interpolation: str = "bilinear",
    max_chunk: int = 1 << 25,
    output_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Derotate residual frames to north-up and combine them (the last step of every ADI algorithm).

    ``interpolation``: ``'bilinear'`` (default, fastest; smooths pixel-scale noise slightly) or
    ``'bicubic'`` (cubic spline, ~2.5x slower). Pixels rotated in from outside the frame are
    ignored in the combination; where no frame covers a pixel the result is 0.

    Cubes larger than ``max_chunk`` elements (SPHERE-sized) are derotated and combined in bands
    of output rows, so that no derotated copy of the whole cube is ever held in memory.

    ``output_mask`` (bool (y, x), optional): compute only these pixels of the final image (the
    others are 0). Their values are those of the full computation (the same interpolation at the
    same coordinates); used where only a few pixels are read (throughput from fake companions).
    """
    if interpolation not in INTERPOLATION_ORDERS:
        raise ValueError(f"unknown interpolation {interpolation!r}; use one of {tuple(INTERPOLATION_ORDERS)}")
    order = INTERPOLATION_ORDERS[interpolation]
    if output_mask is not None:
        return _derotate_collapse_pixels(residuals, angles, collapse, order, output_mask)
    if residuals.size <= max_chunk:
        rotated = _derotate_threaded(residuals, np.asarray(angles, dtype=np.float64).ravel(), order)
        image = collapse_frames(rotated, collapse)
    else:
        image = _derotate_collapse_banded(
            residuals, np.asarray(angles, dtype=np.float64), collapse, order, max_chunk
        )
    return np.nan_to_num(image, nan=0.0)


_POOL: ThreadPoolExecutor | None = None
_POOL_PID = -1
_WORKERS = max(1, min(2, os.cpu_count() or 1))


def _pool() -> ThreadPoolExecutor:
    """A process-wide pool of ``_WORKERS`` threads for GIL-free numerical work (two halves of a
    task). Recreated in a forked child, whose copy of the parent's pool has no threads."""
    global _POOL, _POOL_PID
    if _POOL is None or _POOL_PID != os.getpid():
        _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="hcdc-postprocessing")
        _POOL_PID = os.getpid()
    return _POOL


def _derotate_threaded(residuals: np.ndarray, angles: np.ndarray, order: int) -> np.ndarray:
    """:func:`geometry.derotate` (NaN outside) with the frames split between two threads.

    scipy.ndimage releases the GIL while interpolating, so on two idle cores this takes ~60 % of
    the time (no gain, and no loss measured, when other processes keep the cores busy); every
    frame is rotated by the same call as in ``derotate`` (identical values).
    """
    nfr = residuals.shape[0]
    if _WORKERS < 2 or nfr < 8:
        return geometry.derotate(residuals, angles, order=order, fill_value=np.nan)
    if residuals.ndim != 3 or angles.size != nfr:
        raise ValueError(
            f"derotation needs a (frames, y, x) cube and one angle per frame; "
            f"got {residuals.shape} and {angles.size} angles"
        )
    out = np.empty(residuals.shape, dtype=np.result_type(residuals.dtype, np.float32))
    half = (nfr + 1) // 2

    def part(frames: slice) -> None:
        out[frames] = geometry.derotate(residuals[frames], angles[frames], order=order, fill_value=np.nan)

    for future in [_pool().submit(part, slice(0, half)), _pool().submit(part, slice(half, nfr))]:
        future.result()
    return out


def derotation_sources(
    shape: tuple[int, ...], angles: np.ndarray, ys: np.ndarray, xs: np.ndarray
) -> np.ndarray:
    """Input coordinates (frames, 2, points) sampled by :func:`geometry.derotate` for output pixels
    ``(ys, xs)``: frame ``k`` turned clockwise by ``angles[k]`` about :func:`geometry.frame_center`
    (the matrix and offset of :func:`geometry.rotate_frame` with angle ``-angles[k]``)."""
    cy, cx = geometry.frame_center(shape)
    a = np.radians(-np.asarray(angles, dtype=np.float64))
    c, s = np.cos(a)[:, None], np.sin(a)[:, None]
    dy = np.asarray(ys, dtype=np.float64)[None, :] - cy
    dx = np.asarray(xs, dtype=np.float64)[None, :] - cx
    # rotate_frame's matrix [[c, -s], [s, c]] applied to the (y, x) offsets from the centre.
    return np.stack([c * dy - s * dx + cy, s * dy + c * dx + cx], axis=1)


def _derotate_collapse_pixels(
    residuals: np.ndarray, angles: np.ndarray, collapse: str, order: int, output_mask: np.ndarray
) -> np.ndarray:
    """:func:`derotate_and_collapse` evaluated only on the pixels of ``output_mask`` (others 0)."""
    nfr, ny, nx = residuals.shape
    mask = np.asarray(output_mask, dtype=bool)
    if mask.shape != (ny, nx):
        raise ValueError(f"output_mask has shape {mask.shape}; the frames are {(ny, nx)}")
    angles = np.asarray(angles, dtype=np.float64).ravel()
    image = np.zeros((ny, nx), dtype=np.float32)
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return image
    coords = derotation_sources((ny, nx), angles, ys, xs)
    values = np.empty((nfr, ys.size), dtype=np.float32)
    for k in range(nfr):
        if angles[k] % 360.0 == 0.0:  # rotate_frame returns the frame itself for a null rotation
            values[k] = residuals[k][ys, xs]
            continue
        values[k] = ndimage.map_coordinates(
            residuals[k], coords[k], order=order, mode="constant", cval=np.nan, prefilter=order > 1
        )
    image[ys, xs] = collapse_frames(values[:, :, None], collapse)[:, 0]
    return np.nan_to_num(image, nan=0.0)


def _derotate_collapse_banded(
    residuals: np.ndarray, angles: np.ndarray, collapse: str, order: int, max_chunk: int
) -> np.ndarray:
    """Same result as derotating the whole cube then collapsing, one band of output rows at a time."""
    nfr, ny, nx = residuals.shape
    cy, cx = geometry.frame_center((ny, nx))
    if order > 1:  # spline coefficients once per frame (float32 to halve the memory)
        data = np.stack([ndimage.spline_filter(f, order=order, output=np.float32) for f in residuals])
    else:
        data = residuals
    rows = max(1, max_chunk // (nfr * nx))
    image = np.empty((ny, nx), dtype=np.float32)
    xs = np.arange(nx, dtype=np.float64) - cx
    for r0 in range(0, ny, rows):
        r1 = min(ny, r0 + rows)
        dy, dx = np.meshgrid(np.arange(r0, r1, dtype=np.float64) - cy, xs, indexing="ij")
        band = np.empty((nfr, r1 - r0, nx), dtype=np.float32)
        for k, a in enumerate(np.radians(angles)):
            # Frame k turned clockwise by angles[k]: output offset (dy, dx) samples R(a) (dy, dx).
            c, s = np.cos(a), np.sin(a)
            coords = np.array([s * dx + c * dy + cy, c * dx - s * dy + cx])
            band[k] = ndimage.map_coordinates(
                data[k], coords, order=order, mode="constant", cval=np.nan, prefilter=False
            )
        image[r0:r1] = collapse_frames(band, collapse)
    return image
