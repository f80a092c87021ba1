"""Frame selection by AO conditions or by image similarity (pure functions).

The criteria a Level 2 variant with selected frames records in its provenance
(:meth:`SelectionCriteria.as_dict`): thresholds on the per-frame conditions (Strehl, tau0,
seeing, DTTS flux: the columns of a Level 1 ``CONDITIONS`` table), a quantile of the best
frames by Strehl, and a minimum correlation of each frame with the sequence's median frame
(:func:`image_correlation`). Each rejected frame gets its reasons, so a person can see why.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "AO_CRITERIA",
    "SelectionCriteria",
    "FrameSelection",
    "image_correlation",
    "select_frames",
    "field_rotation_deg",
    "selection_hdu",
    "SELECTION_EXTNAME",
]

#: extension of a Level 2 product listing every frame of the sequence and whether it was used
SELECTION_EXTNAME = "FRAMESEL"

#: criteria that need a per-frame conditions table (the others judge the images)
AO_CRITERIA = ("strehl_min", "tau0_min_s", "seeing_max", "dtts_flux_min", "strehl_quantile")


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

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> SelectionCriteria:
        """Criteria from a mapping of the field names (a recipe parameter); unknown names and
        values that are not numbers are refused with a ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown frame-selection criteria {unknown}; known: {sorted(known)}")
        clean: dict[str, Any] = {}
        for name, value in values.items():
            if name == "require_telemetry":
                if not isinstance(value, bool):
                    raise ValueError(f"require_telemetry must be true or false; got {value!r}")
                clean[name] = value
            elif value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise ValueError(f"frame-selection criterion {name} must be a number; got {value!r}")
                clean[name] = float(value)
        criteria = cls(**clean)
        if not criteria.active:
            raise ValueError("frame selection needs at least one criterion (e.g. strehl_quantile)")
        return criteria

    @property
    def active(self) -> bool:
        """True when at least one threshold or quantile is set."""
        return any(getattr(self, f.name) is not None for f in fields(self) if f.name != "require_telemetry")

    @property
    def needs_conditions(self) -> bool:
        """True when a criterion judges the per-frame AO conditions."""
        return any(getattr(self, name) is not None for name in AO_CRITERIA)

    def key(self) -> str:
        """Short stable identifier of these criteria (8 hex digits of the SHA-256 of their JSON),
        used to name a Level 2 variant: the same criteria give the same variant."""
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    def describe(self) -> str:
        """The criteria in words, e.g. ``strehl >= quantile 0.3, tau0 >= 0.003 s``."""
        words = {
            "strehl_min": "strehl >= {:g}",
            "tau0_min_s": "tau0 >= {:g} s",
            "seeing_max": "seeing <= {:g} arcsec",
            "dtts_flux_min": "DTTS flux >= {:g} ADU",
            "strehl_quantile": "strehl >= its {:g} quantile",
            "correlation_min": "correlation with the median frame >= {:g}",
        }
        parts = [
            fmt.format(getattr(self, name)) for name, fmt in words.items() if getattr(self, name) is not None
        ]
        if self.require_telemetry and self.needs_conditions:
            parts.append("telemetry required")
        return ", ".join(parts)

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
    if name not in getattr(conditions, "colnames", conditions):
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


def field_rotation_deg(angles_deg: np.ndarray) -> float:
    """Field rotation (deg) spanned by derotation angles: the largest minus the smallest after
    unwrapping (a sequence through the meridian at 180 deg stays continuous)."""
    a = np.unwrap(np.radians(np.asarray(angles_deg, dtype=float)))
    return float(np.degrees(a.max() - a.min())) if a.size else 0.0


def selection_hdu(
    selection: FrameSelection, conditions: Mapping[str, Any], image_scores: np.ndarray | None = None
) -> Any:
    """The ``FRAMESEL`` binary table: one row per frame of the sequence, ``FRAME`` (0-based index
    in the Level 1 cube), ``USED``, ``REASON`` (why rejected, '; '-separated), and where present
    the conditions that were judged (``MJD``, ``STREHL``, ``TAU0`` (s), ``SEEING`` (arcsec),
    ``DTTS_FLUX`` (ADU), ``NO_TELEMETRY``) and ``CORRELATION`` with the median frame."""
    from astropy.io import fits

    n = selection.keep.size
    reasons = ["; ".join(why) for why in selection.reasons]
    width = max([1, *(len(r) for r in reasons)])
    columns = [
        fits.Column(name="FRAME", format="J", array=np.arange(n)),
        fits.Column(name="USED", format="L", array=selection.keep),
        fits.Column(name="REASON", format=f"{width}A", array=np.array(reasons, dtype=f"U{width}")),
    ]
    units = {"MJD": "d", "STREHL": "", "TAU0": "s", "SEEING": "arcsec", "DTTS_FLUX": "adu"}
    names = getattr(conditions, "colnames", conditions)  # an astropy Table iterates over rows
    for name, unit in units.items():
        if name in names:
            columns.append(
                fits.Column(
                    name=name, format="D", unit=unit or None, array=np.asarray(conditions[name], float)
                )
            )
    columns.append(
        fits.Column(name="NO_TELEMETRY", format="L", array=np.asarray(conditions["NO_TELEMETRY"], bool))
    )
    if image_scores is not None:
        columns.append(fits.Column(name="CORRELATION", format="D", array=np.asarray(image_scores, float)))
    hdu = fits.BinTableHDU.from_columns(columns, name=SELECTION_EXTNAME)
    hdu.header["NFRAMES"] = (n, "frames of the sequence")
    hdu.header["NUSED"] = (selection.kept, "frames used in this product")
    return hdu
