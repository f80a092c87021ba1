"""Calibration association, persisted: which calibration files each dataset uses.

The choice itself is :func:`hcdc.instruments.association.associate` (a pure function of the
dataset's files and the candidate calibrations). Here the catalogue supplies the inputs and
stores the result:

* candidates are pre-filtered in SQL: current calibration files of the same instrument whose
  night lies within ``window_days`` of the dataset's night (the rules' own time windows and
  warnings then apply);
* the chosen files (one row per need and file), the missing needs and the warnings replace the
  previous ones of that dataset in one transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update

from hcdc.archive.models import Association, Dataset, File, MissingCalibration, utcnow
from hcdc.archive.transactions import write_transaction
from hcdc.instruments import association
from hcdc.instruments.base import FileMetadata

DEFAULT_WINDOW_DAYS = 30.0

_FIELDS = [f.name for f in dataclasses.fields(FileMetadata) if f.name != "extra"]
_METADATA_COLUMNS = [File.__table__.c[name] for name in _FIELDS if name in File.__table__.c]


def metadata_from_row(row: Row) -> FileMetadata:
    """Rebuild the :class:`FileMetadata` of a files row (fields without a column come from extra)."""
    mapping = row._mapping
    extra = dict(mapping["extra"] or {})
    values: dict[str, Any] = {}
    for name in _FIELDS:
        if name in mapping:
            values[name] = mapping[name]
        elif name in extra:
            values[name] = extra.pop(name)
    return FileMetadata(**values, extra=extra)


def _metadata_rows(conn: Connection, *conditions) -> list[tuple[int, FileMetadata]]:
    rows = conn.execute(select(File.id, File.extra, *_METADATA_COLUMNS).where(*conditions).order_by(File.id))
    return [(row.id, metadata_from_row(row)) for row in rows]


def candidate_calibrations(
    conn: Connection, instrument: str, night: dt.date | None, window_days: float = DEFAULT_WINDOW_DAYS
) -> list[tuple[int, FileMetadata]]:
    """Current calibration files of ``instrument`` within ``window_days`` of ``night``."""
    conditions = [File.is_current, File.is_calibration, File.instrument == instrument]
    if night is not None:
        span = dt.timedelta(days=window_days)
        conditions += [File.night >= night - span, File.night <= night + span]
    return _metadata_rows(conn, *conditions)


def store_report(conn: Connection, dataset_id: int, report: association.AssociationReport) -> None:
    """Replace the stored associations of one dataset by ``report`` (caller's transaction)."""
    now = utcnow()
    conn.execute(delete(Association).where(Association.dataset_id == dataset_id))
    conn.execute(delete(MissingCalibration).where(MissingCalibration.dataset_id == dataset_id))
    rows = [
        {
            "dataset_id": dataset_id,
            "need": need,
            "calibration_file_id": file_id,
            "kind": choice.kind,
            "reason": choice.reason,
            "delta_hours": choice.delta_hours,
            "fallback": bool(choice.fallback),
            "created_at": now,
        }
        for need, choice in report.chosen.items()
        for file_id in dict.fromkeys(choice.file_ids)  # unique, order kept
    ]
    if rows:
        conn.execute(insert(Association), rows)
    missing = [
        {"dataset_id": dataset_id, "need": need, "required": True, "reason": report.missing_reasons.get(need)}
        for need in dict.fromkeys(report.missing)
    ]
    missing += [
        {
            "dataset_id": dataset_id,
            "need": need,
            "required": False,
            "reason": report.missing_reasons.get(need),
        }
        for need in dict.fromkeys(getattr(report, "optional_missing", ()))
        if need not in report.missing
    ]
    if missing:
        conn.execute(insert(MissingCalibration), missing)
    conn.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(associated_at=now, association_warnings=list(report.warnings))
    )


def association_report(
    conn: Connection, dataset_id: int, window_days: float = DEFAULT_WINDOW_DAYS
) -> association.AssociationReport:
    """Run the association rules for one dataset on the catalogue as it is now, storing nothing
    (the monitoring report reads the catalogue's present state this way)."""
    dataset = conn.execute(select(Dataset).where(Dataset.id == dataset_id)).first()
    if dataset is None:
        raise LookupError(f"no dataset with id {dataset_id}")
    science = _metadata_rows(conn, File.dataset_id == dataset_id, File.is_current)
    candidates = candidate_calibrations(conn, dataset.instrument, dataset.night, window_days)
    return association.associate(science, candidates)


def associate_dataset(
    engine: Engine, dataset_id: int, window_days: float = DEFAULT_WINDOW_DAYS
) -> association.AssociationReport:
    """Run the association rules for one dataset and store the result (one transaction)."""
    with write_transaction(engine) as conn:
        report = association_report(conn, dataset_id, window_days)
        store_report(conn, dataset_id, report)
    return report


def associate_all(
    engine: Engine, dataset_ids: Sequence[int] | None = None, window_days: float = DEFAULT_WINDOW_DAYS
) -> list[int]:
    """Associate every dataset (or those in ``dataset_ids``); returns the ids processed."""
    with engine.connect() as conn:
        query = select(Dataset.id).order_by(Dataset.night, Dataset.id)
        if dataset_ids is not None:
            query = query.where(Dataset.id.in_(list(dataset_ids)))
        ids = list(conn.scalars(query))
    for dataset_id in ids:
        associate_dataset(engine, dataset_id, window_days)
    return ids


def association_view(conn: Connection, dataset_id: int) -> dict[str, Any]:
    """The stored association of one dataset, for display and ``--json``."""
    dataset = conn.execute(select(Dataset).where(Dataset.id == dataset_id)).one()
    chosen = conn.execute(
        select(
            Association.need,
            Association.kind,
            Association.calibration_file_id,
            Association.delta_hours,
            Association.fallback,
            Association.reason,
            File.path,
            File.type,
            File.dit,
            File.night,
        )
        .join(File, File.id == Association.calibration_file_id)
        .where(Association.dataset_id == dataset_id)
        .order_by(Association.need, Association.calibration_file_id)
    ).all()
    missing = conn.execute(
        select(MissingCalibration.need, MissingCalibration.required, MissingCalibration.reason)
        .where(MissingCalibration.dataset_id == dataset_id)
        .order_by(MissingCalibration.need)
    ).all()
    return {
        "dataset_id": dataset.id,
        "dataset": dataset.key,
        "instrument": dataset.instrument,
        "arm": dataset.arm,
        "target": dataset.target,
        "night": dataset.night,
        "associated_at": dataset.associated_at,
        "chosen": [
            {
                "need": r.need,
                "kind": r.kind,
                "file_id": r.calibration_file_id,
                "file": Path(r.path).name,
                "type": r.type,
                "dit": r.dit,
                "night": r.night,
                "delta_hours": None if r.delta_hours is None else round(r.delta_hours, 3),
                "fallback": r.fallback,
                "reason": r.reason,
            }
            for r in chosen
        ],
        "missing": [{"need": r.need, "reason": r.reason} for r in missing if r.required],
        "optional_missing": [{"need": r.need, "reason": r.reason} for r in missing if not r.required],
        "warnings": list(dataset.association_warnings or []),
    }
