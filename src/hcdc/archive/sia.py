"""SIA 2.0 queries over ``ivoa.obscore``: request parameters -> a rights-filtered SELECT.

The parameters (SIA 2.0 section 2.1; names case-insensitive, values as the standard writes them):

* ``POS``: ``CIRCLE ra dec radius``, ``RANGE ra1 ra2 dec1 dec2`` or ``POLYGON ra1 dec1 ra2 dec2
  ...`` (ICRS degrees; RANGE bounds may be ``-Inf``/``+Inf``). A row matches when its field
  (``s_region``) overlaps the region: CIRCLE and POLYGON with the spherical geometry of
  :mod:`hcdc.archive.adql.geometry` (the functions ADQL uses on SQLite, so both databases give
  the same answer); RANGE when the field's vertices' coordinate box overlaps the ranges (exact
  for the arcsecond fields of the instruments served here). The SQL keeps rows whose ``s_dec``
  lies within the region's declination band widened by :data:`FIELD_MARGIN_DEG` (indexed).
* intervals ``lo hi`` (a single number ``v`` is ``v v``; ``-Inf``/``+Inf`` open a side):
  ``BAND`` (m, overlaps ``em_min..em_max``), ``TIME`` (MJD, overlaps ``t_min..t_max``), ``FOV``
  (deg, ``s_fov``), ``SPATRES`` (arcsec, ``s_resolution``), ``EXPTIME`` (s, ``t_exptime``);
* ``POL`` (a state of ``pol_states``), ``ID`` (``obs_publisher_did``), ``COLLECTION``,
  ``FACILITY``, ``INSTRUMENT``, ``DPTYPE``, ``CALIB`` (0..4), ``TARGET`` (case-insensitive).

Repeated parameters are ORed, different parameters ANDed (SIA 2.0 section 2.1). A row with a
NULL in a constrained column does not match. Rows come from
:func:`hcdc.archive.obscore.published_select`, so rights are decided by ``archive/access.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select

from hcdc.archive.adql.geometry import contains, distance_deg, intersects, region_of_stcs

#: the widest field (deg) of a row that a POS query is sure to find (instrument fields are arcsec)
FIELD_MARGIN_DEG = 1.0
POL_STATES = ("I", "Q", "U", "V", "RR", "LL", "RL", "LR", "XX", "YY", "XY", "YX", "POLI", "POLA")
#: SIA parameter -> (obscore column, unit word for messages) of the plain interval parameters
INTERVALS = {
    "FOV": ("s_fov", "deg"),
    "SPATRES": ("s_resolution", "arcsec"),
    "EXPTIME": ("t_exptime", "s"),
}
#: SIA parameter -> (obscore low column, high column, unit) of the overlap parameters
OVERLAPS = {"BAND": ("em_min", "em_max", "m"), "TIME": ("t_min", "t_max", "MJD")}
STRINGS = {
    "ID": "obs_publisher_did",
    "COLLECTION": "obs_collection",
    "FACILITY": "facility_name",
    "INSTRUMENT": "instrument_name",
    "DPTYPE": "dataproduct_type",
}
KNOWN = frozenset({"POS", "POL", "CALIB", "TARGET", *INTERVALS, *OVERLAPS, *STRINGS})


class SiaError(ValueError):
    """A parameter value that cannot be used; the message names the parameter."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


@dataclass(frozen=True)
class Region:
    """A POS region: ``shape`` CIRCLE / RANGE / POLYGON and its numbers (degrees)."""

    shape: str
    numbers: tuple[float, ...]

    def dec_band(self) -> tuple[float, float]:
        """(min, max) declination (deg) the region reaches."""
        n = self.numbers
        if self.shape == "CIRCLE":
            return max(-90.0, n[1] - n[2]), min(90.0, n[1] + n[2])
        if self.shape == "RANGE":
            return max(-90.0, n[2]), min(90.0, n[3])
        polygon = "G " + " ".join(repr(v) for v in n)
        decs = n[1::2]
        # a great-circle edge of length L strays at most L/2 from its ends' declinations
        edges = [(n[i], n[i + 1], n[(i + 2) % len(n)], n[(i + 3) % len(n)]) for i in range(0, len(n), 2)]
        bulge = max(distance_deg(*edge) for edge in edges) / 2
        low = -90.0 if contains("P 0 -90", polygon) else max(-90.0, min(decs) - bulge)
        high = 90.0 if contains("P 0 90", polygon) else min(90.0, max(decs) + bulge)
        return low, high

    def overlaps(self, s_region: str | None) -> bool:
        """Whether the STC-S field ``s_region`` overlaps this region."""
        if not s_region:
            return False
        field = region_of_stcs(s_region)
        if field is None:
            return False
        if self.shape == "RANGE":
            return _range_overlaps(self.numbers, field)
        code = "C" if self.shape == "CIRCLE" else "G"
        return bool(intersects(field, " ".join([code, *(repr(v) for v in self.numbers)])))


def _range_overlaps(rng: Sequence[float], field: str) -> bool:
    """RANGE ra1 ra2 dec1 dec2 against a serialized field (``G``/``C``/``P``): box overlap."""
    kind, *words = field.split()
    values = [float(w) for w in words]
    ra1, ra2, dec1, dec2 = rng
    if kind == "C":
        ra, dec, r = values
        decs, ras = (dec - r, dec + r), _ra_span([ra], r / max(math.cos(math.radians(dec)), 1e-9))
    else:
        decs = (min(values[1::2]), max(values[1::2]))
        ras = _ra_span(values[0::2], 0.0)
    if decs[1] < dec1 or decs[0] > dec2:
        return False
    if ra2 - ra1 >= 360.0:
        return True
    low, high = ras
    # compare on the circle: shift the field's span next to the range's start
    for shift in (-360.0, 0.0, 360.0):
        if low + shift <= ra2 and high + shift >= ra1:
            return True
    return False


def _ra_span(ras: Sequence[float], pad: float) -> tuple[float, float]:
    """(low, high) RA of a set of nearby right ascensions (degrees; high may exceed 360)."""
    base = ras[0]
    unwrapped = [base + ((r - base + 180.0) % 360.0 - 180.0) for r in ras]
    return min(unwrapped) - pad, max(unwrapped) + pad


# --------------------------------------------------------------------------------------------
# parsing


def _number(parameter: str, word: str, *, infinite: bool = False) -> float:
    text = word.strip()
    lowered = text.lower()
    if infinite and lowered in ("-inf", "+inf", "inf"):
        return -math.inf if lowered == "-inf" else math.inf
    try:
        value = float(text)
    except ValueError:
        raise SiaError(parameter, f"{word!r} is not a number") from None
    if not math.isfinite(value):
        raise SiaError(parameter, f"{word!r} is not a finite number")
    return value


def parse_interval(parameter: str, text: str) -> tuple[float, float]:
    """``lo hi`` (or one value ``v``: ``v v``) with ``-Inf``/``+Inf``; lo <= hi."""
    words = text.split()
    if len(words) not in (1, 2):
        raise SiaError(parameter, f"{text!r} is not an interval: give 'low high' (or one value)")
    numbers = [_number(parameter, w, infinite=True) for w in words]
    low, high = numbers[0], numbers[-1]
    if len(words) == 1 and math.isinf(low):
        raise SiaError(parameter, f"{text!r}: one value must be finite")
    if low > high:
        raise SiaError(parameter, f"{text!r}: the low bound exceeds the high bound")
    return low, high


def parse_pos(text: str) -> Region:
    """A POS value (SIA 2.0 section 2.1.1), checked: ranges of ra, dec and radius."""
    words = text.split()
    if not words:
        raise SiaError("POS", "empty value: use CIRCLE, RANGE or POLYGON")
    shape = words[0].upper()
    if shape == "CIRCLE":
        if len(words) != 4:
            raise SiaError("POS", "CIRCLE takes ra dec radius (degrees)")
        ra, dec, r = (_number("POS", w) for w in words[1:])
        _check_dec(dec)
        if not 0.0 < r <= 180.0:
            raise SiaError("POS", f"CIRCLE radius {r:g} is outside (0, 180] degrees")
        return Region(shape, (ra % 360.0, dec, r))
    if shape == "RANGE":
        if len(words) != 5:
            raise SiaError("POS", "RANGE takes ra1 ra2 dec1 dec2 (degrees, -Inf/+Inf allowed)")
        ra1, ra2, dec1, dec2 = (_number("POS", w, infinite=True) for w in words[1:])
        ra1, ra2 = max(ra1, 0.0), min(ra2, 360.0)
        dec1, dec2 = max(dec1, -90.0), min(dec2, 90.0)
        if ra1 > ra2 or dec1 > dec2:
            raise SiaError("POS", f"RANGE {' '.join(words[1:])}: a low bound exceeds its high bound")
        if ra1 < 0 or ra2 > 360 or ra1 > 360 or ra2 < 0:
            raise SiaError("POS", "RANGE right ascensions must lie in [0, 360] degrees")
        return Region(shape, (ra1, ra2, dec1, dec2))
    if shape == "POLYGON":
        numbers = [_number("POS", w) for w in words[1:]]
        if len(numbers) < 6 or len(numbers) % 2:
            raise SiaError("POS", "POLYGON takes at least three ra dec vertices (degrees)")
        for dec in numbers[1::2]:
            _check_dec(dec)
        return Region(shape, tuple(v % 360.0 if i % 2 == 0 else v for i, v in enumerate(numbers)))
    raise SiaError("POS", f"unknown shape {words[0]!r}: use CIRCLE, RANGE or POLYGON")


def _check_dec(dec: float) -> None:
    if not -90.0 <= dec <= 90.0:
        raise SiaError("POS", f"declination {dec:g} is outside [-90, 90] degrees")


# --------------------------------------------------------------------------------------------
# SQL


def _interval(column: ColumnElement, low: float, high: float) -> ColumnElement:
    parts = [column.is_not(None)]
    if not math.isinf(low):
        parts.append(column >= low)
    if not math.isinf(high):
        parts.append(column <= high)
    return and_(*parts)


def _overlap(low_col: ColumnElement, high_col: ColumnElement, low: float, high: float) -> ColumnElement:
    parts = [low_col.is_not(None), high_col.is_not(None)]
    if not math.isinf(high):
        parts.append(low_col <= high)
    if not math.isinf(low):
        parts.append(high_col >= low)
    return and_(*parts)


def _pol(column: ColumnElement, state: str) -> ColumnElement:
    name = state.strip().upper()
    if name not in POL_STATES:
        raise SiaError("POL", f"{state!r} is not a polarization state ({', '.join(POL_STATES)})")
    return column.like(f"%/{name}/%")  # ObsCore writes pol_states as /I/Q/U/


def _calib(column: ColumnElement, text: str) -> ColumnElement:
    if text.strip() not in ("0", "1", "2", "3", "4"):
        raise SiaError("CALIB", f"{text!r} is not a calibration level (0 to 4)")
    return column == int(text)


@dataclass(frozen=True)
class SiaQuery:
    """The SELECT of the non-geometric constraints and the POS regions (checked in Python)."""

    statement: Select
    regions: tuple[Region, ...]

    def keeps(self, s_region: str | None) -> bool:
        """Whether a row with this field passes POS (always, without POS)."""
        return not self.regions or any(region.overlaps(s_region) for region in self.regions)


def build_query(published: Select, params: Mapping[str, Sequence[str]]) -> SiaQuery:
    """The SIA query over ``published`` (the caller's rights-filtered ObsCore SELECT).

    ``params`` maps upper-case parameter names to their values (repeated parameters: several).
    Unknown parameters are ignored (DALI); :class:`SiaError` names a bad one.
    """
    o = published.subquery("obscore").c
    clauses: list[ColumnElement] = []
    for name, values in params.items():
        values = [v for v in values if v is not None]
        if name not in KNOWN or not values:
            continue
        if any("\x00" in v for v in values):  # no database stores it; PostgreSQL refuses it in SQL
            raise SiaError(name, "the value contains a NUL character")
        alternatives: list[ColumnElement]
        if name in INTERVALS:
            column = o[INTERVALS[name][0]]
            alternatives = [_interval(column, *parse_interval(name, v)) for v in values]
        elif name in OVERLAPS:
            low_col, high_col, _unit = OVERLAPS[name]
            alternatives = [_overlap(o[low_col], o[high_col], *parse_interval(name, v)) for v in values]
        elif name in STRINGS:
            alternatives = [o[STRINGS[name]] == v for v in values]
        elif name == "TARGET":
            alternatives = [func.lower(o.target_name) == v.lower() for v in values]
        elif name == "POL":
            alternatives = [_pol(o.pol_states, v) for v in values]
        elif name == "CALIB":
            alternatives = [_calib(o.calib_level, v) for v in values]
        else:  # POS: the declination band here, the exact overlap in SiaQuery.keeps
            regions = tuple(parse_pos(v) for v in values)
            alternatives = [_dec_prefilter(o.s_dec, region) for region in regions]
        clauses.append(or_(*alternatives) if alternatives else false())
    regions = tuple(parse_pos(v) for v in params.get("POS", ()) if v is not None)
    statement = select(o).where(*clauses).order_by(o.obs_publisher_did)
    return SiaQuery(statement, regions)


def _dec_prefilter(s_dec: ColumnElement, region: Region) -> ColumnElement:
    low, high = region.dec_band()
    return and_(s_dec >= low - FIELD_MARGIN_DEG, s_dec <= high + FIELD_MARGIN_DEG)


def run_query(conn: Any, query: SiaQuery, maxrec: int) -> tuple[list[tuple[Any, ...]], bool]:
    """(at most ``maxrec`` rows, whether more matched) of ``query`` on ``conn``."""
    region_index = list(query.statement.selected_columns.keys()).index("s_region")
    rows: list[tuple[Any, ...]] = []
    for row in conn.execute(query.statement):
        if query.keeps(row[region_index]):
            rows.append(tuple(row))
            if len(rows) > maxrec:
                break
    return rows[:maxrec], len(rows) > maxrec


__all__ = [
    "FIELD_MARGIN_DEG",
    "KNOWN",
    "POL_STATES",
    "Region",
    "SiaError",
    "SiaQuery",
    "build_query",
    "parse_interval",
    "parse_pos",
    "run_query",
]
