"""Catalogue queries behind ``hcdc files / datasets / show / quarantine``.

Every filter value is passed as a bound parameter (never formatted into SQL); text filters
match case-insensitively as substrings with LIKE wildcards escaped, so a hostile string is
just a string that matches nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, select

from hcdc.archive.models import Dataset, File, MissingCalibration, QuarantinedFile
from hcdc.archive.storage import resolve_stored_path


class QueryError(ValueError):
    """A filter value is invalid (e.g. a night that is not a date)."""


@dataclass
class Filters:
    """Filters shared by the listing commands (None = no filter)."""

    night: str | None = None  # YYYY-MM-DD (the night's start date)
    instrument: str | None = None
    type: str | None = None  # DPR TYPE (files) / sequence role present (datasets): substring
    target: str | None = None  # substring, case-insensitive
    limit: int | None = 100
    all_versions: bool = False  # files: include superseded versions

    def night_date(self) -> dt.date | None:
        if self.night is None:
            return None
        try:
            return dt.date.fromisoformat(self.night)
        except ValueError as exc:
            raise QueryError(f"--night must be a date YYYY-MM-DD, got {self.night!r}") from exc


def _contains(column, value: str):  # noqa: ANN001, ANN202 - SQLAlchemy column/expression
    return func.lower(column).contains(value.lower(), autoescape=True)


def _limited(query: Select, limit: int | None) -> Select:
    if limit is not None:
        if limit < 0:
            raise QueryError(f"--limit must be >= 0, got {limit}")
        query = query.limit(limit)
    return query


FILE_LIST_COLUMNS = ("id", "name", "instrument", "arm", "type", "night", "target", "dit", "dataset_id")


def list_files(
    conn: Connection, filters: Filters, visible: ColumnElement[bool] | None = None
) -> list[dict[str, Any]]:
    """Catalogued files (current versions unless ``all_versions``), ordered by time.

    ``visible``: the rows the asking user may see (:func:`hcdc.archive.access.visible_files_clause`).
    """
    query = select(
        File.id,
        File.path,
        File.instrument,
        File.arm,
        File.category,
        File.type,
        File.night,
        File.date_obs,
        File.target,
        File.dit,
        File.ndit,
        File.filter,
        File.dataset_id,
        File.version,
        File.is_current,
        File.sha256,
    )
    if not filters.all_versions:
        query = query.where(File.is_current)
    if visible is not None:
        query = query.where(visible)
    night = filters.night_date()
    if night is not None:
        query = query.where(File.night == night)
    if filters.instrument:
        query = query.where(func.upper(File.instrument) == filters.instrument.upper())
    if filters.type:
        query = query.where(func.upper(File.type) == filters.type.upper())
    if filters.target:
        query = query.where(_contains(File.target, filters.target))
    query = _limited(query.order_by(File.date_obs, File.id), filters.limit)
    rows = []
    for r in conn.execute(query):
        row = dict(r._mapping)
        row["name"] = Path(row["path"]).name
        rows.append(row)
    return rows


DATASET_LIST_COLUMNS = ("id", "instrument", "arm", "mode", "target", "night", "roles", "missing")


def list_datasets(
    conn: Connection, filters: Filters, visible: ColumnElement[bool] | None = None
) -> list[dict[str, Any]]:
    """Datasets, ordered by night; ``missing`` counts the unmet calibration needs.

    ``visible``: the rows the asking user may see (:func:`hcdc.archive.access.visible_datasets_clause`).
    """
    missing = (
        select(func.count())
        .where(MissingCalibration.dataset_id == Dataset.id, MissingCalibration.required)
        .correlate(Dataset)
        .scalar_subquery()
    )
    query = select(Dataset, missing.label("missing"))
    if visible is not None:
        query = query.where(visible)
    night = filters.night_date()
    if night is not None:
        query = query.where(Dataset.night == night)
    if filters.instrument:
        query = query.where(func.upper(Dataset.instrument) == filters.instrument.upper())
    if filters.target:
        query = query.where(_contains(Dataset.target, filters.target))
    if filters.type:
        # datasets holding at least one file of that DPR TYPE
        has_type = (
            select(File.id)
            .where(File.dataset_id == Dataset.id, func.upper(File.type) == filters.type.upper())
            .exists()
        )
        query = query.where(has_type)
    query = _limited(query.order_by(Dataset.night, Dataset.id), filters.limit)
    out = []
    for dataset in conn.execute(query):
        n_missing = dataset.missing
        out.append(
            {
                "id": dataset.id,
                "key": dataset.key,
                "instrument": dataset.instrument,
                "arm": dataset.arm,
                "mode": dataset.mode,
                "target": dataset.target,
                "night": dataset.night,
                "setup": dataset.setup,
                "prog_id": dataset.prog_id,
                "ob_id": dataset.ob_id,
                "n_files": dataset.n_files,
                "role_counts": dataset.role_counts,
                "roles": ", ".join(f"{k}:{v}" for k, v in (dataset.role_counts or {}).items()),
                "mjd_start": dataset.mjd_start,
                "mjd_end": dataset.mjd_end,
                "exposure_s": dataset.exposure_s,
                "associated": dataset.associated_at is not None,
                "associated_at": dataset.associated_at,
                "missing": n_missing if dataset.associated_at is not None else None,
            }
        )
    return out


QUARANTINE_LIST_COLUMNS = ("id", "reason_code", "reason", "attempts")


def list_quarantine(conn: Connection, reason_code: str | None = None, limit: int | None = 100) -> list[dict]:
    """Quarantined files (most recent first)."""
    query = select(QuarantinedFile)
    if reason_code:
        query = query.where(QuarantinedFile.reason_code == reason_code)
    query = _limited(query.order_by(QuarantinedFile.last_seen.desc(), QuarantinedFile.id.desc()), limit)
    return [
        {
            "id": q.id,
            "path": q.path,
            "sha256": q.sha256,
            "size": q.size,
            "reason_code": q.reason_code,
            "reason": q.reason,
            "attempts": q.attempts,
            "first_seen": q.first_seen,
            "last_seen": q.last_seen,
        }
        for q in conn.execute(query)
    ]


def file_detail(conn: Connection, file_id: int, storage_root: Path, with_header: bool = False) -> dict | None:
    """All columns of one file version (the header only when asked), or None."""
    row = conn.execute(select(File).where(File.id == file_id)).first()
    if row is None:
        return None
    detail = {c.name: getattr(row, c.name) for c in File.__table__.columns if c.name != "header"}
    detail["location"] = str(resolve_stored_path(row.storage, row.stored_path, storage_root))
    versions = conn.execute(
        select(File.id, File.version, File.is_current, File.sha256, File.ingested_at)
        .where(File.path == row.path)
        .order_by(File.version)
    ).all()
    detail["versions"] = [dict(v._mapping) for v in versions]
    if with_header:
        detail["header"] = list(row.header)
    return detail


def dataset_detail(conn: Connection, dataset_id: int) -> dict | None:
    """One dataset with its files and stored calibration association, or None."""
    from hcdc.archive.associations import association_view

    dataset = conn.execute(select(Dataset).where(Dataset.id == dataset_id)).first()
    if dataset is None:
        return None
    detail = {c.name: getattr(dataset, c.name) for c in Dataset.__table__.columns}
    files = conn.execute(
        select(File.id, File.path, File.sequence_role, File.type, File.date_obs, File.dit, File.ndit)
        .where(File.dataset_id == dataset_id, File.is_current)
        .order_by(File.date_obs, File.id)
    ).all()
    detail["files"] = [
        {
            "id": f.id,
            "name": Path(f.path).name,
            "role": f.sequence_role,
            "type": f.type,
            "date_obs": f.date_obs,
            "dit": f.dit,
            "ndit": f.ndit,
        }
        for f in files
    ]
    detail["association"] = association_view(conn, dataset_id) if dataset.associated_at else None
    return detail
