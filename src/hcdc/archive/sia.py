"""SIA 2.0 queries over ``ivoa.obscore``: request parameters -> a rights-filtered SELECT.

The parameters (SIA 2.0 section 2.1; names case-insensitive, values as the standard writes them):

* ``POS``: ``CIRCLE ra dec radius``, ``RANGE ra1 ra2 dec1 dec2`` or ``POLYGON ra1 dec1 ra2 dec2
  ...`` (ICRS degrees; RANGE bounds may be ``-Inf``/``+Inf``). A row matches when its field
  (``s_region``) overlaps the region, decided exactly in Python by the spherical geometry of
  :mod:`hcdc.archive.adql.geometry` on both databases (so they give the same answer): CIRCLE
  and POLYGON with great-circle edges, RANGE as the box between two meridians and two parallels.
  The SQL only prefilters and never drops a match: it keeps rows whose position (``s_ra``,
  ``s_dec``) lies within the table's widest field (:func:`max_field_deg`, the largest
  ``s_fov``, indexed) of the region: on PostgreSQL with pgSphere (``spoint @ scircle`` around
  the region's bounding circle: the GiST index ``ix_obscore_spoint``), otherwise (SQLite, and
  RANGE, whose pgSphere ``sbox`` overlaps disagree with exact geometry for wide fields) by the
  region's declination band and right-ascension window (the index on ``(s_dec, s_ra)``). This
  relies on ObsCore's ``s_fov`` being the diameter of the field, as hcdc's rows are.
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

from sqlalchemy import ColumnElement, Select, and_, false, func, literal, or_, select

from hcdc.archive.adql.geometry import (
    contains,
    distance_deg,
    intersects,
    range_intersects,
    region_of_stcs,
    vec,
)

#: prefilter margin (deg) when the caller does not give the table's widest field
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
            return range_intersects(field, *self.numbers)
        code = "C" if self.shape == "CIRCLE" else "G"
        return bool(intersects(field, " ".join([code, *(repr(v) for v in self.numbers)])))

    def bounding_circle(self) -> tuple[float, float, float] | None:
        """(ra, dec, radius) in degrees of a circle holding a CIRCLE or POLYGON region (None for
        RANGE); a convex polygon's farthest point from its vertices' centroid is a vertex."""
        n = self.numbers
        if self.shape == "CIRCLE":
            return n[0], n[1], n[2]
        if self.shape == "RANGE":
            return None
        vectors = [vec(n[i], n[i + 1]) for i in range(0, len(n), 2)]
        x, y, z = (sum(v[k] for v in vectors) for k in range(3))
        norm = math.sqrt(x * x + y * y + z * z)
        if norm < 1e-9:
            return None
        ra, dec = math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.asin(z / norm))
        return ra, dec, max(distance_deg(ra, dec, n[i], n[i + 1]) for i in range(0, len(n), 2))


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


def max_field_deg(conn: Any) -> float:
    """The widest field (``s_fov``, deg) of any ObsCore row (0 when none): how far a field's
    region can reach from its row's position (indexed: ``ix_obscore_s_fov``)."""
    from hcdc.archive.obscore import ObsCoreRow

    return float(conn.scalar(select(func.max(ObsCoreRow.s_fov))) or 0.0)


def build_query(
    published: Select,
    params: Mapping[str, Sequence[str]],
    *,
    dialect: str = "sqlite",
    field_margin: float = FIELD_MARGIN_DEG,
) -> SiaQuery:
    """The SIA query over ``published`` (the caller's rights-filtered ObsCore SELECT).

    ``params`` maps upper-case parameter names to their values (repeated parameters: several).
    Unknown parameters are ignored (DALI); :class:`SiaError` names a bad one. ``field_margin``
    (deg) is the widest field of the table (:func:`max_field_deg`): the POS prefilter keeps
    every row whose position lies within it of the region; ``dialect`` ``postgresql`` uses
    pgSphere's index for it.
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
        else:  # POS: an indexed prefilter here, the exact overlap in SiaQuery.keeps
            regions = tuple(parse_pos(v) for v in values)
            alternatives = [_prefilter(o, region, dialect, field_margin) for region in regions]
        clauses.append(or_(*alternatives) if alternatives else false())
    regions = tuple(parse_pos(v) for v in params.get("POS", ()) if v is not None)
    statement = select(o).where(*clauses).order_by(o.obs_publisher_did)
    return SiaQuery(statement, regions)


def _prefilter(o: Any, region: Region, dialect: str, margin: float) -> ColumnElement:
    """Rows whose position is within ``margin`` deg of ``region`` (a superset of the matches)."""
    circle = region.bounding_circle()
    if dialect == "postgresql" and circle is not None and circle[2] + margin < 90.0:
        ra, dec, radius = circle  # pgSphere circles: at most 90 deg

        def point(lon: Any, lat: Any) -> Any:
            return func.spoint(func.radians(lon), func.radians(lat))

        # the expression of the GiST index ix_obscore_spoint
        reach = func.scircle(point(literal(ra), literal(dec)), func.radians(literal(radius + margin)))
        return point(o.s_ra, o.s_dec).op("@", is_comparison=True)(reach)
    low, high = region.dec_band()
    low, high = low - margin, high + margin
    clauses = [o.s_dec >= low, o.s_dec <= high]
    if region.shape == "RANGE":
        ra1, ra2 = region.numbers[0], region.numbers[1]
    elif circle is not None:
        ra1 = ra2 = circle[0]
        margin += circle[2]
    else:
        ra1, ra2 = 0.0, 360.0
    window = _ra_window(o.s_ra, ra1, ra2, max(abs(low), abs(high)), margin)
    if window is not None:
        clauses.append(window)
    return and_(*clauses)


def _ra_window(s_ra: Any, ra1: float, ra2: float, max_abs_dec: float, margin: float) -> ColumnElement | None:
    """``s_ra`` within ``margin`` deg (on the sky) of ra1..ra2 at declinations up to
    ``max_abs_dec``; None when that reaches a pole or all right ascensions (no RA constraint)."""
    if max_abs_dec >= 89.0 or ra2 - ra1 >= 360.0:
        return None
    # on the parallel nearest the pole an angle m spans at most m / cos(dec) of right ascension
    half = margin / math.cos(math.radians(max_abs_dec)) if margin else 0.0
    low, high = ra1 - half, ra2 + half
    if high - low >= 360.0:
        return None
    if low < 0.0 or high > 360.0:
        return or_(s_ra >= low % 360.0, s_ra <= high % 360.0)
    return and_(s_ra >= low, s_ra <= high)


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
    "max_field_deg",
    "parse_interval",
    "parse_pos",
    "run_query",
]
