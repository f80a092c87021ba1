"""Interferometry operations: OiDB collections, granule delegations, validation by a person,
Level 3 publication. Each change is checked by :mod:`hcdc.archive.access` (rules A1, A9, A10)
and written to the audit log.

Validation (the SPICA ``spica_L2gen`` step, :func:`validate_file`) never edits archived bytes in
place: it checks the stored copy against its catalogued SHA-256, writes a copy whose primary
header carries ``HIERARCH QUALITY LEVEL`` (OiDB 0-5) and ``HIERARCH PRO SCIENCE`` (T science /
F calibrator, what OiDB reads for the embargo), puts it in the content-addressed store and
catalogues it as the next version of the same path (new checksum, new granules). The previous
version stays retrievable and citable (its rows, granules and bytes are kept), and
``hcdc fsck`` checks the new copy like any other.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from hcdc.archive.access import AccessContext, Principal, utc_naive
from hcdc.archive.access_models import User
from hcdc.archive.accounts import AccountError, audit, user_row
from hcdc.archive.granules import assign_collections, insert_granules
from hcdc.archive.granules import list_validations as list_validations  # re-exported
from hcdc.archive.inspection import inspect_file
from hcdc.archive.interferometry_models import (
    COLTYPE_EMBARGO_MONTHS,
    DATA_RIGHTS,
    GranuleRow,
    OiCollection,
    OiDelegation,
    OiValidation,
    oidb_quality,
)
from hcdc.archive.models import File, utcnow
from hcdc.archive.obscore import sync_collection_rows, sync_file_rows
from hcdc.archive.storage import copy_into_store, resolve_stored_path
from hcdc.instruments.base import UnreadableFileError
from hcdc.instruments.fits_file import open_whole
from hcdc.science.checksums import sha256_file

#: An ADS bibcode: YYYYJJJJJVVVVMPPPPA, 19 characters (dots pad the journal/volume/page).
BIBCODE = re.compile(r"^\d{4}[A-Za-z&.]{1,5}[0-9A-Za-z.&]{10,14}[A-Z.]$")


class InterferometryError(ValueError):
    """An interferometry operation cannot proceed; the message names the object and the reason."""


# --------------------------------------------------------------------------------------------
# collections


@dataclass(frozen=True)
class CollectionSpec:
    """A collection to register. ``embargo_months`` None: the coltype's (CHARA 18, ESO 12, ...)."""

    name: str
    coltype: str
    owner: str | None = None
    embargo_months: int | None = None
    data_rights: str | None = None  # None: secure with an embargo, else public (OiDB)
    release_date: dt.datetime | None = None
    calib_level: int | None = None
    facility: str | None = None
    instrument: str | None = None
    progid: str | None = None
    title: str | None = None


def add_collection(conn: Connection, actor: Principal, spec: CollectionSpec) -> int:
    """Register a collection (A1) and put the matching granules already catalogued into it."""
    ctx = AccessContext(conn, actor)
    ctx.require(ctx.can_manage())
    if conn.scalar(select(OiCollection.id).where(OiCollection.name == spec.name)) is not None:
        raise InterferometryError(f"collection {spec.name!r} already exists")
    months = spec.embargo_months
    if months is None:
        months = COLTYPE_EMBARGO_MONTHS.get(spec.coltype.lower(), 0)
    if months < 0:
        raise InterferometryError(f"collection {spec.name!r}: the embargo cannot be negative ({months})")
    rights = spec.data_rights or ("secure" if months > 0 else "public")
    if rights not in DATA_RIGHTS:
        raise InterferometryError(f"data rights {rights!r}: one of {', '.join(DATA_RIGHTS)}")
    if spec.calib_level is not None and not 0 <= spec.calib_level <= 3:
        raise InterferometryError(f"level {spec.calib_level}: 0 to 3")
    owner = user_row(conn, spec.owner).id if spec.owner else None
    collection_id = conn.execute(
        insert(OiCollection)
        .values(
            name=spec.name,
            coltype=spec.coltype.lower(),
            embargo_months=months,
            release_date=utc_naive(spec.release_date) if spec.release_date else None,
            data_rights=rights,
            owner_user_id=owner,
            calib_level=spec.calib_level,
            match_facility=spec.facility,
            match_instrument=spec.instrument,
            match_progid=spec.progid,
            title=spec.title,
            created_at=utcnow(),
        )
        .returning(OiCollection.id)
    ).scalar_one()
    moved = assign_collections(conn)
    sync_collection_rows(conn, spec.name)  # ivoa.obscore: their collection, level, release date
    audit(
        conn,
        actor,
        "collection.add",
        "collection",
        spec.name,
        {"coltype": spec.coltype, "embargo_months": months, "data_rights": rights, "granules": moved},
    )
    return collection_id


def assign_file(conn: Connection, actor: Principal, file_id: int, collection: str) -> int:
    """Put one file's granules into ``collection`` whatever its rules (A1); returns how many."""
    ctx = AccessContext(conn, actor)
    ctx.require(ctx.can_manage())
    moved = assign_collections(conn, file_id=file_id, collection=collection)
    if moved == 0:
        raise InterferometryError(f"file {file_id} has no granule (not a catalogued OIFITS file)")
    sync_file_rows(conn, [file_id])  # ivoa.obscore, same transaction
    audit(conn, actor, "collection.assign", "file", file_id, {"collection": collection, "granules": moved})
    return moved


def list_collections(conn: Connection) -> list[dict[str, Any]]:
    """The collections with their embargo, rights, data PI, rules and granule counts."""
    owners = dict(conn.execute(select(User.id, User.name)).all())
    counts: dict[str, int] = {}
    for (name,) in conn.execute(
        select(GranuleRow.obs_collection).where(GranuleRow.obs_collection.is_not(None))
    ):
        counts[name] = counts.get(name, 0) + 1
    return [
        {
            "name": c.name,
            "coltype": c.coltype,
            "embargo_months": c.embargo_months,
            "data_rights": c.data_rights,
            "release_date": c.release_date,
            "data_pi": owners.get(c.owner_user_id),
            "calib_level": c.calib_level,
            "facility": c.match_facility,
            "instrument": c.match_instrument,
            "progid": c.match_progid,
            "granules": counts.get(c.name, 0),
            "title": c.title,
        }
        for c in conn.execute(select(OiCollection).order_by(OiCollection.name))
    ]


def _collection(conn: Connection, name: str) -> Any:
    row = conn.execute(select(OiCollection).where(OiCollection.name == name)).first()
    if row is None:
        raise InterferometryError(f"no collection called {name!r} (see 'hcdc oi collection list')")
    return row


# --------------------------------------------------------------------------------------------
# delegations


def delegate_granules(
    conn: Connection,
    actor: Principal,
    grantee: str,
    collection: str,
    progid: str | None = None,
    proposal_subid: str | None = None,
    expires_at: dt.datetime | None = None,
    reason: str | None = None,
) -> int:
    """Grant ``grantee`` a collection, or one programme / sub-programme of it (A9)."""
    target = user_row(conn, grantee)
    if target.role == "public":
        raise AccountError("the public account cannot receive delegations (that would publish the data)")
    if proposal_subid is not None and progid is None:
        raise InterferometryError("a sub-programme delegation names its programme too (--progid)")
    coll = _collection(conn, collection)
    ctx = AccessContext(conn, actor)
    ctx.require(ctx.can_delegate_collection(coll.id))
    delegation_id = conn.execute(
        insert(OiDelegation)
        .values(
            grantee_user_id=target.id,
            collection_id=coll.id,
            progid=progid.split("(", 1)[0] if progid else None,
            proposal_subid=proposal_subid,
            granted_by=actor.name,
            reason=reason,
            created_at=utcnow(),
            expires_at=utc_naive(expires_at) if expires_at else None,
        )
        .returning(OiDelegation.id)
    ).scalar_one()
    scope = " / ".join(x for x in (collection, progid, proposal_subid) if x)
    audit(conn, actor, "oi-delegation.grant", "oi-delegation", delegation_id, {"to": grantee, "what": scope})
    return delegation_id


def revoke_granule_delegation(conn: Connection, actor: Principal, delegation_id: int) -> None:
    """Revoke a granule delegation (A9: the collection's data PI or an admin)."""
    row = conn.execute(select(OiDelegation).where(OiDelegation.id == delegation_id)).first()
    if row is None:
        raise InterferometryError(
            f"no granule delegation with id {delegation_id} (see 'hcdc oi delegate list')"
        )
    ctx = AccessContext(conn, actor)
    ctx.require(ctx.can_delegate_collection(row.collection_id))
    if row.revoked_at is None:
        conn.execute(update(OiDelegation).where(OiDelegation.id == delegation_id).values(revoked_at=utcnow()))
    audit(conn, actor, "oi-delegation.revoke", "oi-delegation", delegation_id)


def list_granule_delegations(conn: Connection) -> list[dict[str, Any]]:
    """Every granule delegation, newest first."""
    users = dict(conn.execute(select(User.id, User.name)).all())
    names = dict(conn.execute(select(OiCollection.id, OiCollection.name)).all())
    return [
        {
            "id": d.id,
            "grantee": users.get(d.grantee_user_id),
            "collection": names.get(d.collection_id),
            "progid": d.progid,
            "proposal_subid": d.proposal_subid,
            "granted_by": d.granted_by,
            "created_at": d.created_at,
            "expires_at": d.expires_at,
            "revoked_at": d.revoked_at,
            "reason": d.reason,
        }
        for d in conn.execute(select(OiDelegation).order_by(OiDelegation.id.desc()))
    ]


# --------------------------------------------------------------------------------------------
# validation by a person, Level 3


def _oifits_file(conn: Connection, file_id: int) -> Any:
    row = conn.execute(select(File).where(File.id == file_id)).first()
    if row is None:
        raise InterferometryError(f"no file with id {file_id}")
    if conn.scalar(select(GranuleRow.id).where(GranuleRow.file_id == file_id).limit(1)) is None:
        raise InterferometryError(f"{row.path} (file {file_id}): not an OIFITS file with granules")
    return row


def resolve_file(conn: Connection, ref: str) -> int:
    """The current file id of ``ref``: a file id (``12``, ``f12``) or a catalogued path."""
    text = ref[1:] if ref[:1] in ("f", "F") and ref[1:].isdigit() else ref
    if text.isdigit():
        return int(text)
    path = os.path.abspath(ref)
    found = conn.scalar(select(File.id).where(File.path == path, File.is_current))
    if found is None:
        raise InterferometryError(
            f"{ref}: {_unreadable_reason(path) or 'not a catalogued file'} (give its id or its ingested path)"
        )
    return found


def _unreadable_reason(path: str) -> str | None:
    """Why the file at ``path`` could never have been catalogued (truncated, corrupt), if so."""
    if not os.path.isfile(path):
        return None
    try:
        with open_whole(path):
            return None
    except UnreadableFileError as exc:
        return f"{exc}; not catalogued"


def _write_flagged_copy(source: Path, out: Path, quality: int, science: bool, actor: str) -> Path:
    """Write to ``out`` a copy of ``source`` with the OiDB keywords in its primary header."""
    try:
        with open_whole(source) as hdul:
            header = hdul[0].header
            header["HIERARCH QUALITY LEVEL"] = (quality, "OiDB quality 0-5 (4 science ready)")
            header["HIERARCH PRO SCIENCE"] = (science, "T science, F calibrator (OiDB category)")
            header["HIERARCH HCDC VALIDATED BY"] = actor[:40]
            header["HIERARCH HCDC VALIDATED AT"] = utcnow().strftime("%Y-%m-%dT%H:%M:%S")
            hdul.writeto(out, overwrite=True, output_verify="silentfix")
    except UnreadableFileError as exc:
        raise InterferometryError(f"{source}: {exc}") from exc
    return out


def validate_file(
    engine: Engine,
    storage_root: Path,
    actor: Principal,
    file_id: int,
    quality: int,
    comment: str,
    calibrator: bool | None = None,
    *,
    file_mode: int | None = None,
) -> dict[str, Any]:
    """Record a person's validation of OIFITS file ``file_id`` and archive the flagged version.

    ``engine`` and ``storage_root``: the data centre's; ``file_mode``: permission bits of the new
    version in the store (None: the store's default). ``quality``: SPICA-DB flag 1 (trash) ...
    4 (science ready), stored with its OiDB value. ``calibrator``: write ``HIERARCH PRO SCIENCE =
    F`` (True) or ``T`` (False); None keeps the file's category (science when it has none, as
    OiDB reads an empty category). The right (A10) is asked of :mod:`hcdc.archive.access`.
    Returns the validation record (ids of the validated and of the new version). Interfaces
    call it through the facade (:meth:`hcdc.archive.catalogue_granules.GranuleCatalogue.validate`).
    """
    level = oidb_quality(quality)
    if not comment.strip():
        raise InterferometryError("a validation needs a comment (--comment)")
    with engine.connect() as conn:
        row = _oifits_file(conn, file_id)
        if not row.is_current:
            raise InterferometryError(
                f"{row.path}: file {file_id} is a superseded version; validate the current one"
            )
        ctx = AccessContext(conn, actor)
        ctx.require(ctx.can_validate_file(file_id))
        category = conn.scalar(
            select(GranuleRow.dataproduct_category).where(GranuleRow.file_id == file_id).limit(1)
        )
        collection = conn.scalar(
            select(GranuleRow.obs_collection).where(GranuleRow.file_id == file_id).limit(1)
        )
    science = (category != "CALIB") if calibrator is None else not calibrator
    source = resolve_stored_path(row.storage, row.stored_path, storage_root)
    if sha256_file(source) != row.sha256:
        raise InterferometryError(
            f"{source}: the stored bytes no longer match file {file_id}'s checksum; run 'hcdc fsck' first"
        )
    Path(storage_root).mkdir(parents=True, exist_ok=True)
    # written under the source's name (the store names objects after it), beside the store
    work = Path(tempfile.mkdtemp(prefix=".validate-", dir=storage_root))
    try:
        flagged = _write_flagged_copy(source, work / Path(row.path).name, level, science, actor.name)
        inspection = inspect_file(flagged)
        if inspection.error is not None or inspection.values is None:
            raise InterferometryError(
                f"{row.path}: the flagged copy cannot be catalogued ({inspection.error})"
            )
        stored = copy_into_store(flagged, storage_root, inspection.sha256 or "", mode=file_mode)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            update(File)
            .where(File.id == file_id)
            .values(is_current=False, superseded_at=now, dataset_id=None)
        )
        values = {
            **inspection.values,
            "path": row.path,
            "version": row.version + 1,
            "is_current": True,
            "sha256": inspection.sha256,
            "size": inspection.size,
            "mtime_ns": None,  # not the source's: a re-ingest of the source finds its bytes known
            "storage": "copy",
            "stored_path": str(stored),
            "ingested_at": now,
        }
        new_id = conn.execute(insert(File.__table__).returning(File.__table__.c.id), values).scalar_one()
        insert_granules(conn, new_id, inspection.granules or [])
        if collection is not None:
            assign_collections(conn, file_id=new_id, collection=collection)
        sync_file_rows(conn, [new_id])  # ivoa.obscore: the new version's rows replace the old's
        validation_id = conn.execute(
            insert(OiValidation)
            .values(
                file_id=file_id,
                new_file_id=new_id,
                actor=actor.name,
                user_id=actor.id,
                validated_at=now,
                spica_quality=quality,
                quality_level=level,
                category="SCIENCE" if science else "CALIB",
                comment=comment,
            )
            .returning(OiValidation.id)
        ).scalar_one()
        audit(conn, actor, "oifits.validate", "file", file_id, {"quality": quality, "new_file": new_id})
    return {
        "validation": validation_id,
        "file": file_id,
        "new_file": new_id,
        "version": row.version + 1,
        "quality": quality,
        "quality_level": level,
        "category": "SCIENCE" if science else "CALIB",
        "comment": comment,
        "actor": actor.name,
        "validated_at": now,
        "sha256": inspection.sha256,
    }


def collection_files(
    storage_root: Path, conn: Connection, actor: Principal, name: str
) -> list[dict[str, Any]]:
    """The current files of collection ``name`` whose granules ``actor`` sees (rules R11-R14),
    oldest first: ``{"file_id", "path", "stored", "targets", "positions"}`` with ``stored`` the
    archived bytes to read (the job system's input) and ``positions`` target -> (s_ra, s_dec
    [deg], middle wavelength [m]) of its first granule. Raises InterferometryError for an
    unknown collection."""
    _collection(conn, name)
    ctx = AccessContext(conn, actor)
    g = GranuleRow.__table__.c
    rows = conn.execute(
        select(
            File.id,
            File.path,
            File.storage,
            File.stored_path,
            g.target_name,
            g.s_ra,
            g.s_dec,
            g.em_min,
            g.em_max,
        )
        .join(GranuleRow, GranuleRow.file_id == File.id)
        .where(g.obs_collection == name, File.is_current, ctx.granules_clause())
        .order_by(g.t_min, File.id)
    )
    files: dict[int, dict[str, Any]] = {}
    for row in rows:
        item = files.setdefault(
            row.id,
            {
                "file_id": row.id,
                "path": row.path,
                "stored": str(resolve_stored_path(row.storage, row.stored_path, storage_root)),
                "targets": [],
                "positions": {},
            },
        )
        if row.target_name not in item["targets"]:
            item["targets"].append(row.target_name)
            middle = None if None in (row.em_min, row.em_max) else (row.em_min + row.em_max) / 2
            item["positions"][row.target_name] = (row.s_ra, row.s_dec, middle)
    # R14: a file is read only when all its granules are visible
    return [item for fid, item in files.items() if ctx.can_see_file(fid)]


def publish_file(conn: Connection, actor: Principal, file_id: int, bibcode: str) -> int:
    """Make the granules of ``file_id`` Level 3, attached to an article (A10); returns how many."""
    if not BIBCODE.match(bibcode) or len(bibcode) != 19:
        raise InterferometryError(
            f"{bibcode!r} is not an ADS bibcode (19 characters, e.g. 2020A&A...642A..99L)"
        )
    row = _oifits_file(conn, file_id)
    ctx = AccessContext(conn, actor)
    ctx.require(ctx.can_validate_file(file_id))
    result = conn.execute(
        update(GranuleRow).where(GranuleRow.file_id == file_id).values(calib_level=3, bib_reference=bibcode)
    )
    sync_file_rows(conn, [file_id])  # ivoa.obscore: calib_level 3
    audit(conn, actor, "oifits.publish", "file", file_id, {"bibcode": bibcode, "path": row.path})
    return result.rowcount


__all__ = [
    "BIBCODE",
    "CollectionSpec",
    "InterferometryError",
    "add_collection",
    "assign_file",
    "delegate_granules",
    "list_collections",
    "list_granule_delegations",
    "collection_files",
    "list_validations",
    "publish_file",
    "resolve_file",
    "revoke_granule_delegation",
    "validate_file",
]
