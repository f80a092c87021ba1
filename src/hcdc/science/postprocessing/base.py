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
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from hcdc.science import geometry

__all__ = [
    "AlgorithmSpec",
    "ALGORITHMS",
    "register_algorithm",
    "get_algorithm",
    "check_adi_inputs",
    "collapse_frames",
    "derotate_and_collapse",
    "COLLAPSE_METHODS",
    "INTERPOLATION_ORDERS",
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


ALGORITHMS: dict[str, AlgorithmSpec] = {}


def register_algorithm(
    name: str, *, spectral: bool = False, needs_reference: bool = False
) -> Callable[[Callable[..., object]], Callable[..., object]]:
    """Decorator registering ``function`` under ``name`` in :data:`ALGORITHMS`.

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


def check_adi_inputs(cube: np.ndarray, angles: np.ndarray, fwhm: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate an ADI cube and its derotation angles; return them as float32 cube, float64 angles.

    Raises ``ValueError`` naming the problem (shape, angle count, non-finite angles, FWHM).
    """
    cube = np.asarray(cube)
    if cube.ndim != 3:
        raise ValueError(f"an ADI cube must be (frames, y, x); got shape {cube.shape}")
    angles = np.asarray(angles, dtype=np.float64).ravel()
    if angles.size != cube.shape[0]:
        raise ValueError(f"ADI cube has {cube.shape[0]} frames but {angles.size} derotation angles were given")
    if not np.all(np.isfinite(angles)):
        raise ValueError("derotation angles contain NaN or infinite values")
    if fwhm is not None and not (np.isfinite(fwhm) and fwhm > 0):
        raise ValueError(f"fwhm must be a positive number of pixels; got {fwhm!r}")
    if cube.dtype != np.float32:
        cube = cube.astype(np.float32)
    return cube, angles


INTERPOLATION_ORDERS = {"bilinear": 1, "bicubic": 3}


def collapse_frames(cube: np.ndarray, method: str = "median") -> np.ndarray:
    """Combine a (frames, y, x) cube along frames with ``'median'`` or ``'mean'``, ignoring NaN.

    Pixels that are NaN in every frame stay NaN. NaN-aware statistics are only used on the pixels
    that need them (frame corners after rotation): ``np.nanmedian`` is several times slower.
    """
    if method not in COLLAPSE_METHODS:
        raise ValueError(f"unknown collapse method {method!r}; use one of {COLLAPSE_METHODS}")
    nfr = cube.shape[0]
    flat = cube.reshape(nfr, -1)
    incomplete = np.isnan(flat).any(axis=0)
    out = np.empty(flat.shape[1], dtype=np.float32)
    complete = ~incomplete
    if method == "median":
        out[complete] = np.median(flat[:, complete], axis=0)
    else:
        out[complete] = flat[:, complete].mean(axis=0, dtype=np.float64)
    if incomplete.any():
        part = flat[:, incomplete]
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN on purpose
            out[incomplete] = np.nanmedian(part, axis=0) if method == "median" else np.nanmean(part, axis=0)
    return out.reshape(cube.shape[1:])


def derotate_and_collapse(
    residuals: np.ndarray,
    angles: np.ndarray,
    collapse: str = "median",
    interpolation: str = "bilinear",
) -> np.ndarray:
    """Derotate residual frames to north-up and combine them (the last step of every ADI algorithm).

    ``interpolation``: ``'bilinear'`` (default, fastest; smooths pixel-scale noise slightly) or
    ``'bicubic'`` (cubic spline, ~2.5x slower). Pixels rotated in from outside the frame are
    ignored in the combination; where no frame covers a pixel the result is 0.
    """
    if interpolation not in INTERPOLATION_ORDERS:
        raise ValueError(f"unknown interpolation {interpolation!r}; use one of {tuple(INTERPOLATION_ORDERS)}")
    rotated = geometry.derotate(residuals, angles, order=INTERPOLATION_ORDERS[interpolation], fill_value=np.nan)
    image = collapse_frames(rotated, collapse)
    return np.nan_to_num(image, nan=0.0)
