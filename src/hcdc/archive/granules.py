"""OiDB granules in the catalogue: the ``granules`` table, filled at ingest, and its listing.

A granule is one target x one instrument mode (INSNAME) x one night x one OIFITS file, with
the columns OiDB fills from the file through oitools
(:mod:`hcdc.instruments.oifits_granules`, identical to oitools on the reference files) and the
header keywords OiDB maps (``HIERARCH QUALITY LEVEL``, ``HIERARCH PRO SCIENCE``, the ESO
programme id). The rows of a file version are written in the same transaction as the file's
row (whole or absent) and removed with it.

Not decided here yet (NULL until the embargo/levels work lands): ``calib_level``,
``data_rights``, ``obs_release_date`` and ``obs_collection``. A granule is visible to whoever
may see its file: listings join ``files`` and apply ``archive.access``'s file clause.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Connection,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from hcdc.archive.models import Base, File, JSONType

#: Quality levels of OiDB (``quality_level``): 0 Unknown ... 5 Outstanding.
QUALITY_LABELS: dict[int, str] = {
    0: "Unknown",
    1: "Trash",
    2: "To be reduced again",
    3: "Quick look (risky to publish)",
    4: "Science ready",
    5: "Outstanding quality",
}
DATA_RIGHTS = ("public", "secure", "proprietary")


class GranuleRow(Base):
    """One OiDB granule (ObsCore + OiDB column names; units in the comments)."""

    __tablename__ = "granules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), nullable=False)
    target_name: Mapped[str] = mapped_column(Text, nullable=False)
    s_ra: Mapped[float | None] = mapped_column(Float)  # deg
    s_dec: Mapped[float | None] = mapped_column(Float)  # deg
    t_exptime: Mapped[float | None] = mapped_column(Float)  # s, minimum INT_TIME
    t_min: Mapped[float] = mapped_column(Float, nullable=False)  # MJD
    t_max: Mapped[float] = mapped_column(Float, nullable=False)  # MJD
    em_min: Mapped[float | None] = mapped_column(Float)  # m
    em_max: Mapped[float | None] = mapped_column(Float)  # m
    em_res_power: Mapped[float | None] = mapped_column(Float)
    facility_name: Mapped[str | None] = mapped_column(Text)
    instrument_name: Mapped[str] = mapped_column(Text, nullable=False)  # raw INSNAME
    nb_vis: Mapped[int] = mapped_column(Integer, nullable=False)  # table rows
    nb_vis2: Mapped[int] = mapped_column(Integer, nullable=False)
    nb_t3: Mapped[int] = mapped_column(Integer, nullable=False)
    nb_channels: Mapped[int] = mapped_column(Integer, nullable=False)
    night_id: Mapped[int] = mapped_column(Integer, nullable=False)  # round(MJD)
    calib_level: Mapped[int | None] = mapped_column(Integer)  # 0-3; NULL: not decided yet
    quality_level: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # OiDB 0-5
    dataproduct_category: Mapped[str | None] = mapped_column(String(16))  # SCIENCE / CALIB
    progid: Mapped[str | None] = mapped_column(String(64))
    data_rights: Mapped[str | None] = mapped_column(String(16))
    obs_release_date: Mapped[dt.datetime | None] = mapped_column(DateTime)
    obs_collection: Mapped[str | None] = mapped_column(String(128))
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # counts per severity

    __table_args__ = (
        CheckConstraint("quality_level BETWEEN 0 AND 5", name="quality_level_range"),
        CheckConstraint("calib_level IS NULL OR calib_level BETWEEN 0 AND 3", name="calib_level_range"),
        CheckConstraint(
            "data_rights IS NULL OR data_rights IN ('public', 'secure', 'proprietary')", name="data_rights"
        ),
        Index("ix_granules_file_id", "file_id"),
        Index("ix_granules_target_name", "target_name"),
        Index("ix_granules_t_min", "t_min"),
    )


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
)

_INSERT = insert(GranuleRow.__table__)


def insert_granules(conn: Connection, file_id: int, granules: list[dict[str, Any]]) -> None:
    """Write the granules of file row ``file_id`` (caller's transaction)."""
    if granules:
        conn.execute(_INSERT, [{**g, "file_id": file_id} for g in granules])


def list_granules(
    conn: Connection,
    *,
    visible: ColumnElement[bool],
    target: str | None = None,
    instrument: str | None = None,
    file_id: int | None = None,
    all_versions: bool = False,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Granules of the files ``visible`` lets the caller see, oldest first.

    ``target``: case-insensitive substring of ``target_name``; ``instrument``: prefix of the
    INSNAME (OiDB's ``LIKE 'PIONIER%'``), case-insensitive; only current file versions unless
    ``all_versions``.
    """
    g = GranuleRow.__table__.c
    query = (
        select(GranuleRow.__table__, File.path.label("file"))
        .join(File, File.id == g.file_id)
        .where(visible)
        .order_by(g.t_min, g.id)
    )
    if not all_versions:
        query = query.where(File.is_current)
    if target:
        query = query.where(g.target_name.ilike(f"%{_escape_like(target)}%", escape="\\"))
    if instrument:
        query = query.where(g.instrument_name.ilike(f"{_escape_like(instrument)}%", escape="\\"))
    if file_id is not None:
        query = query.where(g.file_id == file_id)
    if limit is not None:
        query = query.limit(limit)
    rows = []
    for row in conn.execute(query).mappings():
        item = {name: row.get(name) for name in GRANULE_FIELDS if name in row}
        item["collection"] = row["obs_collection"]
        rows.append({name: item.get(name) for name in GRANULE_FIELDS})
    return rows


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
