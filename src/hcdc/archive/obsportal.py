"""Level 0 granules from JMMC ObsPortal: OiDB's observation logs for SPICA (and other instruments).

No SPICA raw header is public (docs/interferometry.md), but OiDB does not read SPICA raw files
either: it takes its L0 granules from ObsPortal's VOTable (``obs.jmmc.fr/search.votable``,
OiDB ``modules/obsportal.xqm``). :func:`import_obsportal` reads such a VOTable and writes one
``calib_level`` 0 granule per exposure row, with OiDB's mapping
(``../shared/reference/interferometry.md`` §"L0 from ObsPortal"):

| granule | ObsPortal field or rule |
|---|---|
| ``obs_id`` | ``exp_id`` (unique within the collection: a re-import updates, never duplicates) |
| ``target_name`` | ``target_name``; ``-`` if empty |
| ``s_ra`` / ``s_dec`` (deg) | ``target_ra`` / ``target_dec`` |
| ``t_min`` / ``t_max`` (MJD) | ``exp_mjd_start`` / ``exp_mjd_end`` |
| ``t_exptime`` (s) | (t_max - t_min) x 86400 |
| ``em_min`` / ``em_max`` (m) / ``em_res_power`` | ``instrument_em_min`` / ``_max`` / ``_res_power`` |
| ``facility_name`` / ``instrument_name`` | ``interferometer_name`` / ``instrument_name`` |
| ``instrument_mode`` | ``instrument_mode`` + ``_`` + ``instrument_submode`` (when given) |
| ``interferometer_stations`` | ``interferometer_stations`` |
| ``progid`` / ``datapi`` | ``obs_program`` / ``obs_program_pi_coi`` |
| ``dataproduct_category`` | upper(``obs_type``) |
| ``obs_release_date`` | ``exp_date_release`` (ISO date-time, UTC) |
| ``data_rights`` | ``secure`` |
| ``nb_channels`` | -1 (``nb_vis``, ``nb_vis2``, ``nb_t3``: 0, no data tables) |
| ``access_url`` | VLTI (``interferometer_name``) with an ``exp_header_id`` (ESO's original ``DP.ID``):
  the ESO archive's query of that exposure, :data:`ESO_ARCHIVE_URL`; otherwise
  ``https://obs.jmmc.fr/detail/exposure/<exp_id>`` |
| ``night_id`` | round(t_min), OiDB's night split |

Units: ``em_*`` are metres as in OiDB; a FIELD whose ``unit`` attribute is another length
(``um``, ``nm``) is converted. The granules have no file (``file_id`` NULL): an observation
log entry, not data. They go into a registered collection (``issp_l0`` by default, the ISSP
survey's L0 feed, synchronised by OiDB with ``instrument=SPICA``), and who sees them is decided
by :mod:`hcdc.archive.access` (R11-R13, the collection's embargo from ``t_max``, the later of
that and ``obs_release_date``), as for every granule.

The granules are published in ``ivoa.obscore`` in the same transaction
(:func:`hcdc.archive.obscore.sync_granule_rows`: ``calib_level`` 0, ``access_url`` the link above).

Each row is checked on its own: a bad row becomes one error naming the file, the row (1-based,
in table order), its ``exp_id`` and the reason, and never blocks the other rows.
:func:`sync_windows` / :func:`query_url` give the ObsPortal queries of an incremental sync
(``date_updated_from`` / ``date_updated_to``, windows of at most one year, as OiDB splits them).
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
from sqlalchemy import Connection, insert, select, update

from hcdc.archive.access import DEFAULT_POLICY, AccessContext, Policy, Principal, utc_naive
from hcdc.archive.accounts import audit
from hcdc.archive.inspection import column_problem
from hcdc.archive.interferometry_models import GranuleRow, OiCollection
from hcdc.archive.obscore import sync_granule_rows

#: The collection OiDB fills from ObsPortal's ``instrument=SPICA`` query (the ISSP L0 feed).
DEFAULT_COLLECTION = "issp_l0"
#: ObsPortal's search service (VOTable answers) and exposure pages.
SEARCH_URL = "https://obs.jmmc.fr/search.votable"
EXPOSURE_URL = "https://obs.jmmc.fr/detail/exposure/{}"
#: The ESO archive's raw-data query of one exposure by its ``DP.ID`` (ObsPortal's
#: ``exp_header_id``): the link OiDB gives VLTI exposures (JMMC-OpenDev/oidb at 1aa6fa7,
#: ``modules/obsportal.xqm`` lines 137-139: ``if ($facility_name = "VLTI") then
#: "http://archive.eso.org/wdb/wdb/eso/eso_archive_main/query?dp_id=" || exp_header_id``); the
#: end point and its URL-parameter syntax are those of ESO's FAQ "How do I query the Archive
#: programmatically via WDB?"
#: (archive.eso.org/cms/faq/how-do-i-query-the-archive-programmatically-via-WDB.html).
ESO_ARCHIVE_URL = "http://archive.eso.org/wdb/wdb/eso/eso_archive_main/query?dp_id={}"
#: Fields every row needs (the others may be empty or absent from the table).
REQUIRED_FIELDS = ("exp_id", "exp_mjd_start", "exp_mjd_end", "instrument_name")
#: Longest ``date_updated`` window of one query (OiDB splits a sync into <= 1-year windows).
MAX_WINDOW = dt.timedelta(days=365)

_SECONDS_PER_DAY = 86400.0
_CHUNK = 500  # obs_ids per IN (...) query
_GRANULES = GranuleRow.__table__
#: Granule columns an import writes (compared on re-import: unchanged rows are not rewritten).
_COLUMNS = (
    "target_name", "s_ra", "s_dec", "t_exptime", "t_min", "t_max", "em_min", "em_max", "em_res_power",
    "facility_name", "instrument_name", "instrument_mode", "interferometer_stations", "progid", "datapi",
    "dataproduct_category", "obs_release_date", "data_rights", "nb_vis", "nb_vis2", "nb_t3", "nb_channels",
    "night_id", "calib_level", "access_url",
)  # fmt: skip


class ObsPortalError(ValueError):
    """An ObsPortal VOTable (or a row of it) that cannot be imported; the message says which."""


def read_votable(path: str | Path) -> tuple[list[dict[str, Any]], dict[str, str | None], list[str]]:
    """The rows of the first table of the VOTable at ``path`` (plain Python values, None for
    empty cells and for cells astropy could not read, e.g. ``abc`` in a double field), each
    field's ``unit`` attribute, and astropy's warnings (``file:line:col: Wnn: ...``, which say
    where an unreadable cell was). Raises :class:`ObsPortalError` naming the file when it is
    not a readable VOTable or lacks a required field."""
    from astropy.io import votable

    path = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # kept for the report; each row is checked below
            table = votable.parse(str(path), verify="warn").get_first_table()
    except FileNotFoundError:
        raise ObsPortalError(f"{path}: no such file") from None
    except Exception as exc:  # noqa: BLE001 - astropy raises many types for bad XML
        raise ObsPortalError(f"{path}: not a readable VOTable ({type(exc).__name__}: {exc})") from None
    names = [f.name for f in table.fields]
    missing = [name for name in REQUIRED_FIELDS if name not in names]
    if missing:
        raise ObsPortalError(
            f"{path}: not an ObsPortal exposure table: missing field(s) {', '.join(missing)}"
        )
    units = {f.name: (str(f.unit) if f.unit is not None else None) for f in table.fields}
    columns = {}
    for name in names:  # column by column: a masked record per row is ~100x slower
        data = table.array[name]
        mask = np.ma.getmaskarray(data)
        columns[name] = [
            None if m else _plain(v) for v, m in zip(np.ma.getdata(data).tolist(), mask, strict=True)
        ]
    rows = [{name: columns[name][i] for name in names} for i in range(len(table.array))]
    return rows, units, [str(w.message) for w in caught]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _text(row: dict[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(row: dict[str, Any], name: str, *, required: bool = False) -> float | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ObsPortalError(f"{name} is empty or not a number (see the warnings)")
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ObsPortalError(f"{name} = {value!r} is not a number") from None
    if not math.isfinite(number):
        if required:
            raise ObsPortalError(f"{name} = {value!r} is not a finite number")
        return None
    return number


def _metres(row: dict[str, Any], name: str, unit: str | None) -> float | None:
    """A wavelength field in metres (converted from the FIELD's length ``unit`` when given)."""
    value = _number(row, name)
    if value is None:
        return None
    if unit and unit not in ("m", "meter", "metre"):
        import astropy.units as u

        try:
            value = (value * u.Unit(unit)).to_value(u.m)
        except (ValueError, u.UnitsError):
            raise ObsPortalError(f"{name}: unit {unit!r} is not a length") from None
    if not 1e-8 <= value <= 1e-2:
        raise ObsPortalError(f"{name} = {value!r} m is not a wavelength (give metres, or a unit)")
    return value


def _release(row: dict[str, Any]) -> dt.datetime | None:
    text = _text(row, "exp_date_release")
    if text is None:
        return None
    try:
        return utc_naive(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise ObsPortalError(f"exp_date_release = {text!r} is not an ISO date or date-time") from None


def granule_of_row(row: dict[str, Any], units: dict[str, str | None] | None = None) -> dict[str, Any]:
    """The Level 0 granule (columns of ``granules``, without ``file_id`` / ``obs_collection``)
    of one ObsPortal exposure row, by OiDB's mapping (module docstring). Raises
    :class:`ObsPortalError` with the reason when the row cannot be one."""
    units = units or {}
    exp_id = _text(row, "exp_id")
    if exp_id is None:
        raise ObsPortalError("exp_id is empty")
    t_min = _number(row, "exp_mjd_start", required=True)
    t_max = _number(row, "exp_mjd_end", required=True)
    assert t_min is not None and t_max is not None
    if t_max < t_min:
        raise ObsPortalError(f"exp_mjd_end {t_max} is before exp_mjd_start {t_min}")
    if not 15000 <= t_min <= 100000:  # 1899 ... 2132: anything else is not an MJD
        raise ObsPortalError(f"exp_mjd_start = {t_min} is not a plausible MJD")
    instrument = _text(row, "instrument_name")
    if instrument is None:
        raise ObsPortalError("instrument_name is empty")
    ra, dec = _number(row, "target_ra"), _number(row, "target_dec")
    if ra is not None and not 0 <= ra < 360:
        raise ObsPortalError(f"target_ra = {ra} is outside [0, 360) deg")
    if dec is not None and not -90 <= dec <= 90:
        raise ObsPortalError(f"target_dec = {dec} is outside [-90, 90] deg")
    em_min = _metres(row, "instrument_em_min", units.get("instrument_em_min"))
    em_max = _metres(row, "instrument_em_max", units.get("instrument_em_max"))
    if em_min is not None and em_max is not None and em_max < em_min:
        raise ObsPortalError(f"instrument_em_max {em_max} m is below instrument_em_min {em_min} m")
    mode, submode = _text(row, "instrument_mode"), _text(row, "instrument_submode")
    obs_type = _text(row, "obs_type")
    return {
        "obs_id": exp_id,
        "target_name": _text(row, "target_name") or "-",
        "s_ra": ra,
        "s_dec": dec,
        "t_min": t_min,
        "t_max": t_max,
        "t_exptime": (t_max - t_min) * _SECONDS_PER_DAY,
        "em_min": em_min,
        "em_max": em_max,
        "em_res_power": _number(row, "instrument_em_res_power"),
        "facility_name": _text(row, "interferometer_name"),
        "instrument_name": instrument,
        "instrument_mode": f"{mode}_{submode}" if mode and submode else mode,
        "interferometer_stations": _text(row, "interferometer_stations"),
        "progid": _text(row, "obs_program"),
        "datapi": _text(row, "obs_program_pi_coi"),
        "dataproduct_category": obs_type.upper() if obs_type else None,
        "obs_release_date": _release(row),
        "data_rights": "secure",
        "nb_vis": 0,
        "nb_vis2": 0,
        "nb_t3": 0,
        "nb_channels": -1,
        "night_id": round(t_min),
        "calib_level": 0,
        "access_url": exposure_url(exp_id, _text(row, "interferometer_name"), _text(row, "exp_header_id")),
    }


def exposure_url(exp_id: str, interferometer: str | None, header_id: str | None) -> str:
    """The exposure's page at its source, as OiDB links it: the ESO archive's query of the
    exposure (:data:`ESO_ARCHIVE_URL`) for a VLTI exposure with ESO's ``DP.ID``
    (``exp_header_id``), else ObsPortal's page (:data:`EXPOSURE_URL`); ids are URL-quoted."""
    if (interferometer or "").upper() == "VLTI" and header_id:
        return ESO_ARCHIVE_URL.format(quote(header_id, safe=":.-_"))
    return EXPOSURE_URL.format(quote(exp_id, safe=":.-_"))


def import_obsportal(
    conn: Connection,
    actor: Principal,
    path: str | Path,
    collection: str = DEFAULT_COLLECTION,
    policy: Policy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Import the ObsPortal VOTable at ``path`` as Level 0 granules of ``collection`` (which
    must be registered: ``hcdc oi collection add``); admins only (A1). In the caller's
    transaction. Returns ``file``, ``collection``, ``rows``, counts ``added`` / ``updated`` /
    ``unchanged``, ``errors`` (one line per rejected row, naming the file and row),
    ``warnings`` (astropy's, with line numbers) and ``last_updated`` (the latest
    ``exp_date_updated`` seen: where the next sync starts). The new and changed granules'
    ObsCore rows are written in the same transaction (``policy``: the data centre's)."""
    ctx = AccessContext(conn, actor)
    ctx.require(ctx.can_manage())
    if conn.scalar(select(OiCollection.id).where(OiCollection.name == collection)) is None:
        raise ObsPortalError(
            f"no collection called {collection!r}: register it first "
            f"(hcdc oi collection add {collection} --coltype chara)"
        )
    rows, units, notes = read_votable(path)
    report: dict[str, Any] = {
        "file": str(path), "collection": collection, "rows": len(rows),
        "added": 0, "updated": 0, "unchanged": 0, "errors": [], "warnings": notes, "last_updated": None,
    }  # fmt: skip
    valid: dict[str, dict[str, Any]] = {}  # obs_id -> granule, in file order
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        where = f"{path} row {number}" + (f" (exp_id {row.get('exp_id')})" if row.get("exp_id") else "")
        try:
            granule = granule_of_row(row, units)
            problem = column_problem(granule, _GRANULES)
            if problem is not None:
                raise ObsPortalError(problem)
            if granule["obs_id"] in seen:
                raise ObsPortalError(f"exp_id repeats row {seen[granule['obs_id']]}")
        except ObsPortalError as exc:
            report["errors"].append(f"{where}: {exc}")
            continue
        seen[granule["obs_id"]] = number
        valid[granule["obs_id"]] = granule
        updated = _text(row, "exp_date_updated")
        if updated and (report["last_updated"] is None or updated > report["last_updated"]):
            report["last_updated"] = updated
    changed = _write(conn, collection, valid, report)
    sync_granule_rows(conn, _granule_ids(conn, collection, changed), policy)  # ivoa.obscore
    audit(
        conn,
        actor,
        "obsportal.import",
        "collection",
        collection,
        {k: report[k] for k in ("file", "rows", "added", "updated", "unchanged")}
        | {"errors": len(report["errors"])},
    )
    return report


def _granule_ids(conn: Connection, collection: str, obs_ids: list[str]) -> list[int]:
    """The ids of the granules of ``collection`` with these ``obs_id``."""
    g = _GRANULES.c
    out: list[int] = []
    for start in range(0, len(obs_ids), _CHUNK):
        chunk = obs_ids[start : start + _CHUNK]
        out += conn.scalars(select(g.id).where(g.obs_collection == collection, g.obs_id.in_(chunk))).all()
    return out


def _write(
    conn: Connection, collection: str, granules: dict[str, dict[str, Any]], report: dict[str, Any]
) -> list[str]:
    """Insert new exposures (one multi-row insert), update changed ones, count the unchanged;
    returns the ``obs_id`` of the new and changed ones."""
    g = _GRANULES.c
    ids = list(granules)
    existing: dict[str, Any] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for row in conn.execute(select(_GRANULES).where(g.obs_collection == collection, g.obs_id.in_(chunk))):
            existing[row.obs_id] = row
    new = []
    changed = []
    for obs_id, granule in granules.items():
        old = existing.get(obs_id)
        if old is None:
            new.append({"file_id": None, "obs_collection": collection, **granule})
        elif any(getattr(old, name) != granule[name] for name in _COLUMNS):
            conn.execute(update(_GRANULES).where(g.id == old.id).values(**granule))
            report["updated"] += 1
            changed.append(obs_id)
        else:
            report["unchanged"] += 1
    if new:
        conn.execute(insert(_GRANULES), new)
    report["added"] = len(new)
    return changed + [row["obs_id"] for row in new]


def sync_windows(since: dt.datetime, until: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """``[since, until)`` cut into consecutive ``date_updated`` windows of at most
    :data:`MAX_WINDOW` (OiDB's incremental sync). Naive datetimes are UTC."""
    since, until = utc_naive(since), utc_naive(until)
    if until <= since:
        raise ObsPortalError(f"sync window: {until:%Y-%m-%d %H:%M:%S} is not after {since:%Y-%m-%d %H:%M:%S}")
    windows = []
    start = since
    while start < until:
        end = min(start + MAX_WINDOW, until)
        windows.append((start, end))
        start = end
    return windows


def query_url(start: dt.datetime, end: dt.datetime, instrument: str = "SPICA") -> str:
    """ObsPortal's search URL (VOTable answer) for one ``date_updated`` window of ``instrument``."""
    params = {
        "instrument": instrument,
        "date_updated_from": utc_naive(start).isoformat(timespec="seconds"),
        "date_updated_to": utc_naive(end).isoformat(timespec="seconds"),
    }
    return f"{SEARCH_URL}?{urlencode(params)}"


__all__ = [
    "DEFAULT_COLLECTION",
    "ObsPortalError",
    "exposure_url",
    "granule_of_row",
    "import_obsportal",
    "query_url",
    "read_votable",
    "sync_windows",
]
