"""Datasets: science files grouped into observations.

Each current science file carries the dataset key computed at ingest by
:func:`hcdc.instruments.association.dataset_key` (same instrument and arm, night, OB and
setup) and its sequence role (OBJECT, OBJECT,CENTER, OBJECT,FLUX, SKY). A dataset row
summarizes the current files sharing one key: instrument, mode, target, night, setup, number of
files per role, time span and total exposure. Datasets are derived data: recomputing one from
its files always gives the same row, which is what makes interrupted ingests safe to re-run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from hcdc.archive.models import Dataset, File, utcnow
from hcdc.archive.obscore import ObsCoreRow
from hcdc.archive.transactions import write_transaction

_SUMMARY_COLUMNS = (
    File.id,
    File.instrument,
    File.arm,
    File.mode,
    File.target,
    File.night,
    File.prog_id,
    File.ob_id,
    File.filter,
    File.coronagraph,
    File.nd_filter,
    File.sequence_role,
    File.mjd_obs,
    File.mjd_end,
    File.dit,
    File.ndit,
)


def describe_setup(row: Row) -> str:
    """Readable instrument setup of a file: ``mode=...; filter=...; coronagraph=...; nd=...``."""
    parts = [
        ("mode", row.mode),
        ("filter", row.filter),
        ("coronagraph", row.coronagraph),
        ("nd", row.nd_filter),
    ]
    return "; ".join(f"{name}={value}" for name, value in parts if value)


def _reference_row(rows: Sequence[Row]) -> Row:
    """The file that describes the dataset: the first OBJECT frame, else the first file."""
    ordered = sorted(rows, key=lambda r: (r.mjd_obs is None, r.mjd_obs or 0.0, r.id))
    for row in ordered:
        if row.sequence_role == "OBJECT":
            return row
    return ordered[0]


def summarize(key: str, rows: Sequence[Row]) -> dict:
    """Column values of the dataset row for the current files ``rows`` of one key."""
    reference = _reference_row(rows)
    mjds = [r.mjd_obs for r in rows if r.mjd_obs is not None]
    ends = [r.mjd_end for r in rows if r.mjd_end is not None] + mjds
    exposures = [r.dit * r.ndit for r in rows if r.dit is not None and r.ndit is not None]
    roles = Counter(r.sequence_role or "UNKNOWN" for r in rows)
    return {
        "key": key,
        "instrument": reference.instrument,
        "arm": reference.arm,
        "mode": reference.mode,
        "target": reference.target,
        "night": reference.night,
        "setup": describe_setup(reference) or None,
        "prog_id": reference.prog_id,
        "ob_id": reference.ob_id,
        "n_files": len(rows),
        "role_counts": dict(sorted(roles.items())),
        "mjd_start": min(mjds) if mjds else None,
        "mjd_end": max(ends) if ends else None,
        "exposure_s": float(sum(exposures)) if exposures else None,
        "updated_at": utcnow(),
    }


def _refresh_one(conn: Connection, key: str) -> None:
    rows = conn.execute(select(*_SUMMARY_COLUMNS).where(File.dataset_key == key, File.is_current)).all()
    dataset_id = conn.scalar(select(Dataset.id).where(Dataset.key == key))
    if not rows:
        if dataset_id is not None:  # all its files were superseded by versions in other datasets
            conn.execute(delete(Dataset).where(Dataset.id == dataset_id))
        return
    values = summarize(key, rows)
    if dataset_id is None:
        try:
            with conn.begin_nested():
                dataset_id = conn.execute(
                    insert(Dataset).values(created_at=values["updated_at"], **values).returning(Dataset.id)
                ).scalar_one()
        except IntegrityError:  # a concurrent run created it first
            dataset_id = conn.scalar(select(Dataset.id).where(Dataset.key == key))
    if dataset_id is not None:
        conn.execute(update(Dataset).where(Dataset.id == dataset_id).values(**values))
    conn.execute(update(File).where(File.dataset_key == key, File.is_current).values(dataset_id=dataset_id))
    # their ivoa.obscore rows (written by the ingest before the grouping) carry the dataset too
    files = select(File.id).where(File.dataset_key == key, File.is_current)
    conn.execute(
        update(ObsCoreRow)
        .where(ObsCoreRow.hcdc_kind.in_(("file", "granule")), ObsCoreRow.hcdc_file_id.in_(files))
        .values(hcdc_dataset_id=dataset_id)
    )


def refresh_datasets(engine: Engine, keys: Iterable[str] = ()) -> int:
    """Recompute the datasets of ``keys`` and of any current file not yet linked to one.

    The second part finishes the work of an ingest that was interrupted after committing
    files but before grouping them. Runs in one transaction; returns how many keys were
    refreshed.
    """
    with write_transaction(engine) as conn:
        unlinked = conn.scalars(
            select(File.dataset_key)
            .where(File.is_current, File.dataset_key.is_not(None), File.dataset_id.is_(None))
            .distinct()
        )
        todo = sorted(set(keys) | set(unlinked))
        for key in todo:
            _refresh_one(conn, key)
    return len(todo)
