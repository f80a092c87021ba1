"""OiDB granules in the catalogue: the ``granules`` table, filled at ingest, and its listing.

A granule is one target x one instrument mode (INSNAME) x one night x one OIFITS file, with
the columns OiDB fills from the file through oitools
(:mod:`hcdc.instruments.oifits_granules`, identical to oitools on the reference files) and the
header keywords OiDB maps (``HIERARCH QUALITY LEVEL``, ``HIERARCH PRO SCIENCE``, the ESO
programme id). The rows of a file version are written in the same transaction as the file's
row (whole or absent) and removed with it.

Collections (:class:`~hcdc.archive.interferometry_models.OiCollection`) take a file's
granules at ingest when the file matches their rules (ARRNAME, INSNAME prefix, programme),
or later with :func:`assign_collections`; a granule's level defaults to its collection's.
Who sees a granule, its effective data rights and its release date are decided by
:mod:`hcdc.archive.access` (rules R11-R14), computed when asked: listings filter with
``visible_granules_clause`` and show :func:`~hcdc.archive.access.granule_release`.

Versions: a new version of a file (same path, new bytes) has its own granules; and a granule
of a collection whose key (collection, target, INSNAME, night, level) reappears in a file
ingested later is superseded by it (a new reduction of the same granule). Listings return current granules
unless ``all_versions``; superseded ones keep their id (and publisher DID), so they stay
retrievable and citable.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from hcdc.archive.access import granule_release, programme_key
from hcdc.archive.interferometry_models import (
    DATA_RIGHTS,
    QUALITY_LABELS,
    GranuleRow,
    OiCollection,
    OiValidation,
)
from hcdc.archive.models import File

#: Columns of ``hcdc granules`` (table and JSON), in order.
GRANULE_FIELDS: tuple[str, ...] = (
    "id",
    "file",
    "target_name",
    "s_ra",
    "s_dec",
    "t_exptime",
    "t_min",
    "t_max",
    "em_min",
    "em_max",
    "em_res_power",
    "facility_name",
    "instrument_name",
    "nb_vis",
    "nb_vis2",
    "nb_t3",
    "nb_channels",
    "calib_level",
    "quality_level",
    "dataproduct_category",
    "data_rights",
    "obs_release_date",
    "collection",
    "validation",
    "proposal_subid",
    "bib_reference",
    "obs_id",
    "access_url",
    "instrument_mode",
    "interferometer_stations",
    "progid",
    "datapi",
    "superseded",
)

_INSERT = insert(GranuleRow.__table__)


def _matches(collection: Any, granules: list[dict[str, Any]]) -> bool:
    """Does a file with these granules belong to ``collection`` (every rule it sets holds)?"""
    rules = (collection.match_facility, collection.match_instrument, collection.match_progid)
    if all(rule is None for rule in rules):
        return False  # a collection without rules takes files only by assign_collections(file_id=)
    facility = (collection.match_facility or "").upper()
    prefix = (collection.match_instrument or "").upper()
    return any(
        (not facility or (g.get("facility_name") or "").upper() == facility)
        and (not prefix or (g.get("instrument_name") or "").upper().startswith(prefix))
        and (collection.match_progid is None or programme_key(g.get("progid")) == collection.match_progid)
        for g in granules
    )


def collection_for(conn: Connection, granules: list[dict[str, Any]]) -> Any | None:
    """The first registered collection (by id) whose rules match the file of ``granules``."""
    for collection in conn.execute(select(OiCollection).order_by(OiCollection.id)):
        if _matches(collection, granules):
            return collection
    return None


def insert_granules(conn: Connection, file_id: int, granules: list[dict[str, Any]]) -> None:
    """Write the granules of file row ``file_id`` (caller's transaction).

    All granules of a file go to one collection (the first whose rules match); a granule
    without a level from its file (``CALSTAT``) takes the collection's default level.
    """
    if not granules:
        return
    collection = collection_for(conn, granules)
    rows = []
    for g in granules:
        row = {**g, "file_id": file_id}
        if collection is not None:
            row["obs_collection"] = collection.name
            if row.get("calib_level") is None:
                row["calib_level"] = collection.calib_level
        rows.append(row)
    conn.execute(_INSERT, rows)


def assign_collections(conn: Connection, *, file_id: int | None = None, collection: str | None = None) -> int:
    """Put granules without a collection into the matching one; returns how many moved.

    With ``file_id`` and ``collection``: put that file's granules into that collection
    (whatever its rules). Without: apply every collection's rules to the unassigned granules.
    """
    g = GranuleRow.__table__.c
    if file_id is not None and collection is not None:
        target = conn.execute(select(OiCollection).where(OiCollection.name == collection)).first()
        if target is None:
            raise LookupError(f"no collection called {collection!r} (see 'hcdc oi collection list')")
        return _move(conn, file_id, target)
    moved = 0
    unassigned = conn.scalars(select(g.file_id).where(g.obs_collection.is_(None)).distinct()).all()
    for fid in unassigned:
        rows = [
            dict(r) for r in conn.execute(select(GranuleRow.__table__).where(g.file_id == fid)).mappings()
        ]
        match = collection_for(conn, rows)
        if match is not None:
            moved += _move(conn, fid, match)
    return moved


def _move(conn: Connection, file_id: int, collection: Any) -> int:
    g = GranuleRow.__table__.c
    result = conn.execute(
        update(GranuleRow.__table__)
        .where(g.file_id == file_id)
        .values(
            obs_collection=collection.name, calib_level=func.coalesce(g.calib_level, collection.calib_level)
        )
    )
    return result.rowcount


def _granule_key(g) -> list[ColumnElement[Any]]:  # noqa: ANN001 - a granules table or alias
    return [g.obs_collection, g.target_name, g.instrument_name, g.night_id, func.coalesce(g.calib_level, -1)]


def superseded_clause() -> ColumnElement[bool]:
    """Over ``granules``: a current file ingested later holds a granule with the same key.

    Only inside a collection (a survey's reductions): two files outside any collection are two
    granules, as in OiDB (e.g. a MATISSE pipeline product and its OiXP re-processing). Level 0
    granules (raw files of an observation log) are never versions of one another: a night's
    raw files are all observations.
    """
    newer = aliased(GranuleRow)
    newer_file = aliased(File)
    same_key = and_(*(a == b for a, b in zip(_granule_key(newer), _granule_key(GranuleRow), strict=True)))
    return exists(
        select(newer.id)
        .join(newer_file, newer_file.id == newer.file_id)
        .where(
            GranuleRow.obs_collection.is_not(None),
            func.coalesce(GranuleRow.calib_level, -1) != 0,
            same_key,
            newer.file_id > GranuleRow.file_id,
            newer_file.is_current,
        )
    )


def list_granules(
    conn: Connection,
    *,
    visible: ColumnElement[bool],
    target: str | None = None,
    instrument: str | None = None,
    file_id: int | None = None,
    collection: str | None = None,
    level: int | None = None,
    night_id: int | None = None,
    wavelength: float | None = None,
    granule_id: int | None = None,
    all_versions: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Granules ``visible`` (``access.visible_granules_clause``) lets the caller see, oldest first.

    ``target``: case-insensitive substring of ``target_name``; ``instrument``: prefix of the
    INSNAME (OiDB's ``LIKE 'PIONIER%'``), case-insensitive; ``level``: calib_level;
    ``night_id``: OiDB's night, round(MJD) (see :func:`night_id_of_date`); ``wavelength`` (m):
    granules whose ``[em_min, em_max]`` holds it; ``granule_id``: that granule only; only
    current granules (current file version, not superseded by a later reduction) unless
    ``all_versions``. Granules without a file (Level 0 imported from ObsPortal,
    :mod:`hcdc.archive.obsportal`) have ``file`` None and their ``access_url``.
    ``data_rights`` and ``obs_release_date`` are the effective ones
    (:func:`~hcdc.archive.access.granule_release`); ``superseded`` is true for a granule of an
    old file version or one a later reduction replaced.
    """
    g = GranuleRow.__table__.c
    c = OiCollection.__table__.c
    query = (
        select(
            GranuleRow.__table__,
            File.path.label("file"),
            File.is_current.label("file_is_current"),
            c.data_rights.label("collection_rights"),
            c.embargo_months,
            c.release_date.label("collection_release_date"),
            superseded_clause().label("superseded"),
        )
        .outerjoin(File, File.id == g.file_id)  # none: an observation log entry (ObsPortal L0)
        .outerjoin(OiCollection, c.name == g.obs_collection)
        .where(visible)
        .order_by(g.t_min, g.id)
    )
    if not all_versions:
        query = query.where(or_(g.file_id.is_(None), File.is_current), ~superseded_clause())
    if target:
        query = query.where(g.target_name.ilike(f"%{_escape_like(target)}%", escape="\\"))
    if instrument:
        query = query.where(g.instrument_name.ilike(f"{_escape_like(instrument)}%", escape="\\"))
    if file_id is not None:
        query = query.where(g.file_id == file_id)
    if collection is not None:
        query = query.where(g.obs_collection == collection)
    if level is not None:
        query = query.where(g.calib_level == level)
    if night_id is not None:
        query = query.where(g.night_id == night_id)
    if wavelength is not None:
        query = query.where(g.em_min <= wavelength, g.em_max >= wavelength)
    if granule_id is not None:
        query = query.where(g.id == granule_id)
    if limit is not None:
        query = query.limit(limit)
    return [_listed(row) for row in conn.execute(query).mappings()]


def _listed(row: Any) -> dict[str, Any]:
    item = {name: row.get(name) for name in GRANULE_FIELDS if name in row}
    item["collection"] = row["obs_collection"]
    if row["obs_collection"] is not None and row["collection_rights"] is not None:
        collection = SimpleNamespace(
            data_rights=row["collection_rights"],
            embargo_months=row["embargo_months"],
            release_date=row["collection_release_date"],
        )
        item["data_rights"], release = granule_release(SimpleNamespace(**row), collection)
        item["obs_release_date"] = release or row["obs_release_date"]
    old_file = row["file_id"] is not None and not row["file_is_current"]
    item["superseded"] = bool(row["superseded"]) or old_file
    return {name: item.get(name) for name in GRANULE_FIELDS}


#: MJD of 1970-01-01 00:00 UTC
_MJD_UNIX_EPOCH = 40587


def night_id_of_date(day: dt.date) -> int:
    """OiDB's ``night_id`` (round(MJD) of the granule's data) for the UTC date ``day``: the MJD of
    ``day`` at 00:00 UTC, which rounds every observation from ``day - 1`` 12:00 to ``day`` 12:00
    UTC (a whole night in Chile or California: evening and morning fall in the same id)."""
    return (day - dt.date(1970, 1, 1)).days + _MJD_UNIX_EPOCH


def date_of_night_id(night_id: int) -> dt.date:
    """The UTC date whose 00:00 is MJD ``night_id`` (inverse of :func:`night_id_of_date`)."""
    return dt.date(1970, 1, 1) + dt.timedelta(days=night_id - _MJD_UNIX_EPOCH)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_validations(conn: Connection, file_id: int | None = None) -> list[dict[str, Any]]:
    """Validations by people, newest first (of one file version, or of all)."""
    query = select(OiValidation).order_by(OiValidation.id.desc())
    if file_id is not None:
        query = query.where((OiValidation.file_id == file_id) | (OiValidation.new_file_id == file_id))
    return [
        {
            "id": v.id,
            "file": v.file_id,
            "new_file": v.new_file_id,
            "actor": v.actor,
            "validated_at": v.validated_at,
            "quality": v.spica_quality,
            "quality_level": v.quality_level,
            "category": v.category,
            "comment": v.comment,
        }
        for v in conn.execute(query)
    ]


__all__ = [
    "list_validations",
    "DATA_RIGHTS",
    "GRANULE_FIELDS",
    "QUALITY_LABELS",
    "GranuleRow",
    "assign_collections",
    "collection_for",
    "insert_granules",
    "date_of_night_id",
    "list_granules",
    "night_id_of_date",
    "superseded_clause",
]
