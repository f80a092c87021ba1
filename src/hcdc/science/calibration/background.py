"""Background subtraction and detector-frame preparation (pure functions on arrays).

Background priority (vlt-sphere, spherical, ESO EDPS): a SKY taken with the science DIT beats
an instrumental background (DARK,BACKGROUND), which beats a detector DARK. Which master applies
is decided from the calibration association; :func:`select_background` encodes the priority
on whatever masters are available, and :func:`calibrate_frame` takes the chosen master.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from hcdc.science.calibration.badpixels import correct_bad_pixels

__all__ = [
    "BACKGROUND_PRIORITY",
    "select_background",
    "calibrate_frame",
    "split_fields",
    "dead_zone_mask",
]

BACKGROUND_PRIORITY: tuple[str, ...] = ("SKY", "DARK,BACKGROUND", "DARK")


def select_background(available: Mapping[str, np.ndarray]) -> tuple[str, np.ndarray]:
    """The master to subtract, by priority SKY > DARK,BACKGROUND > DARK.

    ``available`` maps a DPR TYPE to its master (same DIT as the science frame). Returns
    ``(type, master)``; raises ``LookupError`` when none of the three types is present.
    """
    for kind in BACKGROUND_PRIORITY:
        if kind in available and available[kind] is not None:
            return kind, available[kind]
    raise LookupError(
        f"no background master among {sorted(available)}; need one of {', '.join(BACKGROUND_PRIORITY)}"
    )


def dead_zone_mask(
    shape: tuple[int, int],
    dead_rows: tuple[tuple[int, int], ...],
    dead_columns: tuple[tuple[int, int], ...],
    reference_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Boolean mask (True = dead) of ``shape`` from [start, stop) row and column ranges.

    The ranges are given for ``reference_shape`` (default: ``shape``); for a detector of another
    size (scaled-down simulations) they are scaled proportionally and rounded outwards.
    """
    ny, nx = shape
    ry, rx = reference_shape if reference_shape is not None else shape
    mask = np.zeros(shape, dtype=bool)
    for start, stop in dead_rows:
        mask[int(np.floor(start * ny / ry)) : int(np.ceil(stop * ny / ry)), :] = True
    for start, stop in dead_columns:
        mask[:, int(np.floor(start * nx / rx)) : int(np.ceil(stop * nx / rx))] = True
    return mask


def calibrate_frame(
    raw: np.ndarray,
    background: np.ndarray | None,
    flat: np.ndarray | None,
    bad_pixels: np.ndarray | None,
    dead_zones: np.ndarray | None = None,
) -> np.ndarray:
    """One detector frame: ``(raw - background) / flat``, bad pixels interpolated, dead zones NaN.

    All arrays have the frame's shape ``(y, x)``; ``background`` in the raw units (same DIT),
    ``flat`` dimensionless, ``bad_pixels``/``dead_zones`` boolean (True = bad/dead). Any of them
    may be ``None`` to skip the step. Returns float32 in the raw units (ADU per DIT).
    """
    frame = np.asarray(raw, dtype=np.float32)
    if background is not None:
        frame = frame - np.asarray(background, dtype=np.float32)
    if flat is not None:
        flat = np.asarray(flat, dtype=np.float32)
        frame = frame / np.where(flat > 0, flat, 1.0)
    if bad_pixels is not None:
        frame = correct_bad_pixels(frame, bad_pixels, unusable=dead_zones)
    if dead_zones is not None:
        frame = np.where(dead_zones, np.float32(np.nan), frame)
    return frame.astype(np.float32, copy=False)


def split_fields(frame: np.ndarray, n_fields: int = 2) -> np.ndarray:
    """Split a detector frame ``(..., y, x)`` into ``n_fields`` side-by-side fields ``(..., n, y, x/n)``.

    IRDIS: left field (columns [0, 1024)) first, then right field.
    """
    frame = np.asarray(frame)
    nx = frame.shape[-1]
    if nx % n_fields:
        raise ValueError(f"frame width {nx} does not split into {n_fields} equal fields")
    return np.stack(np.split(frame, n_fields, axis=-1), axis=-3)
