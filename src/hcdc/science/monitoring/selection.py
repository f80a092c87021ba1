"""Frame selection by AO conditions or by image similarity (pure functions).

The criteria a Level 2 variant with selected frames records in its provenance
(:meth:`SelectionCriteria.as_dict`): thresholds on the per-frame conditions (Strehl, tau0,
seeing, DTTS flux: the columns of a Level 1 ``CONDITIONS`` table), a quantile of the best
frames by Strehl, and a minimum correlation of each frame with the sequence's median frame
(:func:`image_correlation`). Each rejected frame gets its reasons, so a person can see why.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["SelectionCriteria", "FrameSelection", "image_correlation", "select_frames"]


@dataclass(frozen=True)
class SelectionCriteria:
    """Thresholds (None: not applied). ``strehl_min`` (fraction), ``tau0_min_s`` (s, line of
    sight), ``seeing_max`` (arcsec), ``dtts_flux_min`` (ADU), ``strehl_quantile``: keep frames
    whose Strehl is at least this quantile of the sequence's (0.3 keeps the best 70 %),
    ``correlation_min``: minimum Pearson correlation with the median frame;
    ``require_telemetry``: a frame without telemetry is rejected (else it is not judged on the
    AO criteria)."""

    strehl_min: float | None = None
    tau0_min_s: float | None = None
    seeing_max: float | None = None
    dtts_flux_min: float | None = None
    strehl_quantile: float | None = None
    correlation_min: float | None = None
    require_telemetry: bool = True

    def __post_init__(self) -> None:
        if self.strehl_quantile is not None and not 0.0 <= self.strehl_quantile < 1.0:
            raise ValueError(f"strehl_quantile must be in [0, 1); got {self.strehl_quantile}")
        if self.correlation_min is not None and not -1.0 <= self.correlation_min <= 1.0:
            raise ValueError(f"correlation_min must be in [-1, 1]; got {self.correlation_min}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FrameSelection:
    """``keep``: boolean per frame; ``reasons``: per frame, why it was rejected (empty if kept)."""

    keep: np.ndarray
    reasons: list[list[str]]

    @property
    def kept(self) -> int:
        return int(self.keep.sum())

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for why in self.reasons:
            for reason in why:
                key = reason.split(" ")[0]
                counts[key] = counts.get(key, 0) + 1
        return {"frames": int(self.keep.size), "kept": self.kept, "rejected_by": counts}


def image_correlation(cube: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pearson correlation of each frame of ``cube`` (frames, y, x) with the median frame, over
    the pixels of ``mask`` (default: all finite pixels of the median)."""
    frames = np.asarray(cube, dtype=np.float64)
    median = np.nanmedian(frames, axis=0)
    use = np.isfinite(median) if mask is None else (np.asarray(mask, dtype=bool) & np.isfinite(median))
    ref = median[use] - median[use].mean()
    out = np.empty(frames.shape[0])
    for k, frame in enumerate(frames):
        v = frame[use]
        ok = np.isfinite(v)
        a, b = v[ok] - v[ok].mean(), ref[ok]
        denominator = np.sqrt((a * a).sum() * (b * b).sum())
        out[k] = (a * b).sum() / denominator if denominator > 0 else np.nan
    return out


def _column(conditions: Mapping[str, Any], name: str, n: int) -> np.ndarray:
    if name not in conditions:
        raise KeyError(f"the conditions table has no {name} column")
    values = np.asarray(conditions[name], dtype=float)
    if values.shape != (n,):
        raise ValueError(f"column {name} has {values.size} values for {n} frames")
    return values


def select_frames(
    conditions: Mapping[str, Any],
    criteria: SelectionCriteria,
    image_scores: np.ndarray | None = None,
) -> FrameSelection:
    """Apply ``criteria`` to a per-frame conditions table (columns ``STREHL``, ``TAU0``,
    ``SEEING``, ``DTTS_FLUX``, ``NO_TELEMETRY``; an astropy Table or a mapping of arrays) and
    optional ``image_scores`` (:func:`image_correlation`). NaN values fail the AO thresholds
    of frames that have telemetry (a missing measurement is not a good one)."""
    no_telemetry = np.asarray(conditions["NO_TELEMETRY"], dtype=bool)
    n = no_telemetry.size
    reasons: list[list[str]] = [[] for _ in range(n)]

    def reject(mask: np.ndarray, label: str, rule: str, values: np.ndarray | None = None) -> None:
        for k in np.flatnonzero(mask):
            reasons[k].append(f"{label} {rule}" if values is None else f"{label} {values[k]:.4g} {rule}")

    judged = ~no_telemetry
    if criteria.require_telemetry:
        reject(no_telemetry, "telemetry", "missing")
    thresholds = (
        ("STREHL", criteria.strehl_min, "strehl", "<", np.less),
        ("TAU0", criteria.tau0_min_s, "tau0", "<", np.less),
        ("SEEING", criteria.seeing_max, "seeing", ">", np.greater),
        ("DTTS_FLUX", criteria.dtts_flux_min, "dtts_flux", "<", np.less),
    )
    for column, limit, label, sign, fails in thresholds:
        if limit is None:
            continue
        values = _column(conditions, column, n)
        with np.errstate(invalid="ignore"):
            bad = judged & (~np.isfinite(values) | fails(values, limit))
        reject(bad, label, f"{sign} {limit:g}", values)
    if criteria.strehl_quantile is not None:
        strehl = _column(conditions, "STREHL", n)
        finite = judged & np.isfinite(strehl)
        if finite.any():
            cut = float(np.quantile(strehl[finite], criteria.strehl_quantile))
            with np.errstate(invalid="ignore"):
                bad = judged & (~np.isfinite(strehl) | (strehl < cut))
            reject(bad, "strehl", f"< {cut:.4g} (quantile {criteria.strehl_quantile:g})", strehl)
    if criteria.correlation_min is not None:
        if image_scores is None:
            raise ValueError("correlation_min needs the frames' image_scores (image_correlation)")
        scores = np.asarray(image_scores, dtype=float)
        if scores.shape != (n,):
            raise ValueError(f"image_scores has {scores.size} values for {n} frames")
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(scores) | (scores < criteria.correlation_min)
        reject(bad, "correlation", f"< {criteria.correlation_min:g}", scores)
    keep = np.array([not why for why in reasons], dtype=bool)
    return FrameSelection(keep, reasons)
