"""SIMBAD name resolution through its TAP service (pyvo), answers read by UCD and column name.

:func:`query_simbad` sends two ADQL queries to ``<endpoint>/sync`` (the endpoint is configurable:
``simbad_tap_url`` in the settings, ``HCDC_SIMBAD_TAP_URL`` or ``--simbad-url``; the default is
CDS's ``https://simbad.cds.unistra.fr/simbad/sim-tap``):

1. the object: ``basic`` joined on ``ident`` (the name), with ``allfluxes`` for B V R I J H K;
2. its identifiers: every ``ident.id`` of the same ``oidref``.

The answer is read defensively: the main identifier and coordinates are found by their UCDs
(``meta.id;meta.main``, ``pos.eq.ra;meta.main``, ``pos.eq.dec;meta.main``) and coordinates in
sexagesimal strings (unit ``"h:m:s"`` / ``"d:m:s"``, as SIMBAD's script interface wrote them) are
accepted as well as degrees, so the same code reads current TAP answers and the archived ones of
the tests. Every value carries its source (SIMBAD and the bibcode SIMBAD cites for it).

No database here: :mod:`hcdc.archive.targets` caches the answers in the catalogue.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

DEFAULT_SIMBAD_TAP_URL = "https://simbad.cds.unistra.fr/simbad/sim-tap"

#: target column -> SIMBAD column (basic / allfluxes), and the bibcode column giving its source
_VALUE_COLUMNS: dict[str, tuple[str, str | None]] = {
    "pmra_masyr": ("pmra", "pm_bibcode"),
    "pmdec_masyr": ("pmdec", "pm_bibcode"),
    "parallax_mas": ("plx_value", "plx_bibcode"),
    "parallax_err_mas": ("plx_err", "plx_bibcode"),
    "rv_kms": ("rvz_radvel", "rvz_bibcode"),
    "mag_b": ("b", None),
    "mag_v": ("v", None),
    "mag_r": ("r", None),
    "mag_i": ("i", None),
    "mag_j": ("j", None),
    "mag_h": ("h", None),
    "mag_k": ("k", None),
}


class SimbadError(RuntimeError):
    """SIMBAD could not be asked, or its answer could not be read (the message says which)."""


@dataclass
class SimbadAnswer:
    """What SIMBAD says about one name; ``values`` uses the target-table column names."""

    main_id: str | None
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    identifiers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SimbadAnswer:
        return cls(
            main_id=data.get("main_id"),
            values=dict(data.get("values") or {}),
            sources=dict(data.get("sources") or {}),
            identifiers=list(data.get("identifiers") or []),
        )


def adql_string(text: str) -> str:
    """``text`` as an ADQL string literal (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def object_query(name: str) -> str:
    """ADQL for the object called ``name``: astrometry, spectral type, B..K magnitudes, bibcodes."""
    return (
        "SELECT basic.oid, basic.main_id, basic.ra, basic.dec, basic.coo_bibcode, "
        "basic.pmra, basic.pmdec, basic.pm_bibcode, basic.plx_value, basic.plx_err, basic.plx_bibcode, "
        "basic.rvz_radvel, basic.rvz_bibcode, basic.sp_type, basic.sp_bibcode, "
        'allfluxes."B", allfluxes."V", allfluxes."R", allfluxes."I", '
        'allfluxes."J", allfluxes."H", allfluxes."K" '
        "FROM basic JOIN ident ON ident.oidref = basic.oid "
        "LEFT JOIN allfluxes ON allfluxes.oidref = basic.oid "
        f"WHERE ident.id = {adql_string(name)}"
    )


def identifiers_query(name: str) -> str:
    """ADQL for every identifier of the object called ``name``."""
    return (
        "SELECT others.id FROM ident AS others JOIN ident AS asked ON asked.oidref = others.oidref "
        f"WHERE asked.id = {adql_string(name)}"
    )


def _clean(value: Any) -> Any:
    """A table cell as a plain Python value (None for masked / NaN / empty)."""
    if value is None or getattr(value, "mask", False) is True:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _column_by_ucd(table: Any, ucd: str) -> str | None:
    for name in table.colnames:
        meta = table[name].meta or {}
        column_ucd = meta.get("ucd") or getattr(table[name], "ucd", None)
        if column_ucd and column_ucd.lower() == ucd:
            return name
    return None


def _column(table: Any, *names: str) -> str | None:
    lower = {c.lower(): c for c in table.colnames}
    for name in names:
        if name.lower() in lower:
            return lower[name.lower()]
    return None


def _angle(value: Any, unit: str | None, hours: bool) -> float | None:
    """Degrees from a cell in degrees or in a sexagesimal string (``"05 34 31.94"``)."""
    value = _clean(value)
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    from astropy.coordinates import Angle

    try:
        return float(Angle(str(value), unit="hourangle" if hours else "deg").degree)
    except ValueError as exc:
        raise SimbadError(f"SIMBAD answer: cannot read the coordinate {value!r} ({unit}): {exc}") from exc


def parse_object_table(table: Any) -> SimbadAnswer | None:
    """The first row of an object answer (astropy Table with UCD metadata); None when empty."""
    if len(table) == 0:
        return None
    row = table[0]
    main = _column_by_ucd(table, "meta.id;meta.main") or _column(table, "main_id")
    ra_col = _column_by_ucd(table, "pos.eq.ra;meta.main") or _column(table, "ra")
    dec_col = _column_by_ucd(table, "pos.eq.dec;meta.main") or _column(table, "dec")
    if main is None:
        raise SimbadError("SIMBAD answer has no main identifier column (UCD meta.id;meta.main)")
    answer = SimbadAnswer(main_id=_normalise_spaces(_clean(row[main])))
    coo_bib = _column(table, "coo_bibcode")
    coo_source = _source(row[coo_bib] if coo_bib else None)
    for key, col, hours in (("ra_deg", ra_col, True), ("dec_deg", dec_col, False)):
        if col is None:
            continue
        unit = str(table[col].unit) if table[col].unit is not None else None
        value = _angle(row[col], unit, hours=hours)
        if value is not None:
            answer.values[key] = value
            answer.sources[key] = coo_source
    for key, (col_name, bib_name) in _VALUE_COLUMNS.items():
        col = _column(table, col_name)
        value = _clean(row[col]) if col else None
        if value is None:
            continue
        answer.values[key] = float(value)
        bib = _column(table, bib_name) if bib_name else None
        answer.sources[key] = _source(row[bib] if bib else None)
    sp = _column(table, "sp_type")
    if sp is not None and _clean(row[sp]) is not None:
        answer.values["spectral_type"] = str(_clean(row[sp]))
        bib = _column(table, "sp_bibcode")
        answer.sources["spectral_type"] = _source(row[bib] if bib else None)
    return answer


def _source(bibcode: Any) -> str:
    bibcode = _clean(bibcode)
    return f"SIMBAD {bibcode}" if bibcode else "SIMBAD"


def _normalise_spaces(text: str | None) -> str | None:
    """SIMBAD pads identifiers (``"M   1"``, ``"HD  29391"``): one space between words."""
    return None if text is None else re.sub(r"\s+", " ", text).strip()


def parse_identifiers_table(table: Any) -> list[str]:
    """Identifiers of an identifiers answer, in SIMBAD's order, without padding or repeats."""
    col = _column_by_ucd(table, "meta.id") or _column(table, "id")
    if col is None:
        if len(table.colnames) != 1:
            raise SimbadError("SIMBAD identifiers answer has no id column")
        col = table.colnames[0]
    out: list[str] = []
    for value in table[col]:
        text = _normalise_spaces(_clean(value))
        if text and text not in out:
            out.append(text)
    return out


def _run(endpoint: str, adql: str, timeout_s: float) -> Any:
    """Run ``adql`` synchronously on the TAP service; an astropy Table."""
    import pyvo
    from pyvo.dal.exceptions import DALServiceError

    service = pyvo.dal.TAPService(endpoint)
    try:
        result = service.run_sync(adql, timeout=timeout_s)
    except (DALServiceError, OSError) as exc:
        raise SimbadError(f"SIMBAD TAP service {endpoint} did not answer: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - pyvo raises parser errors of many kinds on bad answers
        raise SimbadError(
            f"SIMBAD TAP service {endpoint}: unreadable answer ({type(exc).__name__}: {exc})"
        ) from exc
    return result.to_table()


def query_simbad(
    name: str, endpoint: str = DEFAULT_SIMBAD_TAP_URL, timeout_s: float = 30.0
) -> SimbadAnswer | None:
    """Ask SIMBAD (TAP at ``endpoint``) about ``name``; None when SIMBAD does not know it.

    Raises :class:`SimbadError` when the service cannot be reached or answers something unreadable.
    An object SIMBAD knows only by its identifiers (no ``basic`` row came back) is returned with
    ``main_id`` None and its identifiers.
    """
    answer = parse_object_table(_run(endpoint, object_query(name), timeout_s))
    identifiers = parse_identifiers_table(_run(endpoint, identifiers_query(name), timeout_s))
    if answer is None and not identifiers:
        return None
    if answer is None:
        answer = SimbadAnswer(main_id=None)
    answer.identifiers = identifiers
    if answer.main_id and answer.main_id not in answer.identifiers:
        answer.identifiers.insert(0, answer.main_id)
    return answer


__all__ = [
    "DEFAULT_SIMBAD_TAP_URL",
    "SimbadAnswer",
    "SimbadError",
    "identifiers_query",
    "object_query",
    "parse_identifiers_table",
    "parse_object_table",
    "query_simbad",
]
