"""The catalogue's tables (SQLAlchemy 2 declarative models).

The schema is created and changed only by the Alembic migrations in
:mod:`hcdc.archive.migrations` (``hcdc init`` runs them); these models describe it for
queries and for the migrations' autogenerate check in the tests.

Tables:

* ``files``: one row per catalogued file *version* (the bytes identified by ``sha256``,
  unique). A changed file under the same path gets a new row with ``version + 1``; the old
  row stays, with ``is_current`` false. Normalized metadata columns mirror
  :class:`hcdc.instruments.base.FileMetadata`; the full primary header is kept as JSON
  (a list of ``[keyword, value, comment]`` cards, in order).
* ``quarantine``: files that could not be catalogued, with the reason.
* ``datasets``: science files grouped into observations (one dataset key per group).
* ``associations`` and ``missing_calibrations``: the calibrations chosen for each dataset
  and the needs nothing satisfied (replaced as a whole on each ``hcdc associate``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, queryable by later issues), JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STORAGE_MODES = ("reference", "copy")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def trigram_index(name: str) -> Index:
    """A GIN trigram index on ``lower(target)``, on PostgreSQL only (migration ``0023_search_index``).

    It serves the portal's, the API's and the CLI's substring searches of target names
    (``lower(target) LIKE '%part%'``), which no B-tree can; SQLite has no such index."""
    return Index(name, text("lower(target) gin_trgm_ops"), postgresql_using="gin").ddl_if(
        dialect="postgresql"
    )


def utcnow() -> dt.datetime:
    """Current UTC time, naive (the catalogue stores UTC everywhere)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class File(Base):
    """One catalogued version of a file (see the module docstring)."""

    __tablename__ = "files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, nullable=False)  # absolute source path at ingest
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    is_current: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)  # bytes
    mtime_ns: Mapped[int | None] = mapped_column(BigInteger)  # source modification time (ns)
    storage: Mapped[str] = mapped_column(String(16), nullable=False)  # "reference" or "copy"
    # absolute path for "reference", path relative to the storage root for "copy"
    stored_path: Mapped[str] = mapped_column(Text, nullable=False)
    ingested_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    # normalized metadata: the fields of hcdc.instruments.base.FileMetadata
    instrument: Mapped[str] = mapped_column(String(32), nullable=False)
    arm: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(32))
    type: Mapped[str | None] = mapped_column(String(64))
    technique: Mapped[str | None] = mapped_column(String(64))
    file_class: Mapped[str | None] = mapped_column(String(32))
    date_obs: Mapped[dt.datetime | None] = mapped_column(DateTime)
    mjd_obs: Mapped[float | None] = mapped_column(Float)
    mjd_end: Mapped[float | None] = mapped_column(Float)
    night: Mapped[dt.date | None] = mapped_column(Date)
    dit: Mapped[float | None] = mapped_column(Float)  # s
    ndit: Mapped[int | None] = mapped_column(Integer)
    filter: Mapped[str | None] = mapped_column(String(64))
    coronagraph: Mapped[str | None] = mapped_column(String(64))
    nd_filter: Mapped[str | None] = mapped_column(String(32))
    readout_mode: Mapped[str | None] = mapped_column(String(64))
    mode: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128))
    ra: Mapped[float | None] = mapped_column(Float)  # deg
    dec: Mapped[float | None] = mapped_column(Float)  # deg
    prog_id: Mapped[str | None] = mapped_column(String(64))
    ob_id: Mapped[int | None] = mapped_column(BigInteger)
    ob_name: Mapped[str | None] = mapped_column(String(128))
    tpl_id: Mapped[str | None] = mapped_column(String(128))
    tpl_start: Mapped[str | None] = mapped_column(String(32))
    tpl_expno: Mapped[int | None] = mapped_column(Integer)
    tpl_nexp: Mapped[int | None] = mapped_column(Integer)
    airmass: Mapped[float | None] = mapped_column(Float)
    seeing: Mapped[float | None] = mapped_column(Float)  # arcsec
    tau0: Mapped[float | None] = mapped_column(Float)  # s
    wind_speed: Mapped[float | None] = mapped_column(Float)  # m/s
    wavelength_min: Mapped[float | None] = mapped_column(Float)  # micrometres
    wavelength_max: Mapped[float | None] = mapped_column(Float)  # micrometres
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    # card images, in order; plain JSON (not JSONB) on PostgreSQL: the list is written once per
    # file and read whole, and JSONB's binary conversion of ~1000 cards slows ingest markedly
    header: Mapped[list[Any]] = mapped_column(JSON, nullable=False)

    # grouping (computed at ingest from hcdc.instruments.association)
    is_calibration: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    dataset_key: Mapped[str | None] = mapped_column(String(255))
    sequence_role: Mapped[str | None] = mapped_column(String(32))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))

    __table_args__ = (
        UniqueConstraint("sha256"),
        UniqueConstraint("path", "version", name="uq_files_path_version"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("storage IN ('reference', 'copy')", name="storage_mode"),
        # at most one current version per path, enforced by the database
        Index(
            "ux_files_current_path",
            "path",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        Index("ix_files_instrument_night", "instrument", "night"),
        Index("ix_files_calib_lookup", "is_calibration", "instrument", "night"),
        Index("ix_files_night", "night"),
        Index("ix_files_type", "type"),
        Index("ix_files_target", "target"),
        trigram_index("ix_files_target_trgm"),
        Index("ix_files_dataset_key", "dataset_key"),
        Index("ix_files_dataset_id", "dataset_id"),
    )


class QuarantinedFile(Base):
    """A file that could not be catalogued, with why (one row per path and content)."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64))  # None when the bytes could not be read
    size: Mapped[int | None] = mapped_column(BigInteger)
    reason_code: Mapped[str] = mapped_column(String(32), nullable=False)  # unreadable, invalid-metadata, ...
    reason: Mapped[str] = mapped_column(Text, nullable=False)  # message naming the file
    first_seen: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    last_seen: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    __table_args__ = (
        # one row per (path, content); unreadable content (NULL sha256) counts as one content
        Index("ux_quarantine_path_sha256", "path", text("coalesce(sha256, '')"), unique=True),
        Index("ix_quarantine_reason_code", "reason_code"),
    )


class Dataset(Base):
    """An observation: science files of one instrument setup, night and OB."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    instrument: Mapped[str] = mapped_column(String(32), nullable=False)
    arm: Mapped[str | None] = mapped_column(String(32))
    mode: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128))
    night: Mapped[dt.date | None] = mapped_column(Date)
    setup: Mapped[str | None] = mapped_column(String(255))  # filter / coronagraph / mode summary
    prog_id: Mapped[str | None] = mapped_column(String(64))
    ob_id: Mapped[int | None] = mapped_column(BigInteger)
    n_files: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    role_counts: Mapped[dict[str, int]] = mapped_column(JSONType, nullable=False, default=dict)
    mjd_start: Mapped[float | None] = mapped_column(Float)
    mjd_end: Mapped[float | None] = mapped_column(Float)
    exposure_s: Mapped[float | None] = mapped_column(Float)  # sum of DIT x NDIT over the files
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    associated_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    association_warnings: Mapped[list[str] | None] = mapped_column(JSONType)

    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_datasets_night", "night"),
        Index("ix_datasets_instrument", "instrument"),
        Index("ix_datasets_target", "target"),
        trigram_index("ix_datasets_target_trgm"),
    )


class Association(Base):
    """One calibration file chosen for one need of one dataset."""

    __tablename__ = "associations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False)
    need: Mapped[str] = mapped_column(String(64), nullable=False)
    calibration_file_id: Mapped[int] = mapped_column(ForeignKey("files.id"), nullable=False)
    kind: Mapped[str | None] = mapped_column(String(64))  # the class that satisfied the need
    reason: Mapped[str | None] = mapped_column(Text)
    delta_hours: Mapped[float | None] = mapped_column(Float)
    fallback: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("dataset_id", "need", "calibration_file_id", name="uq_associations_choice"),
        Index("ix_associations_calibration_file_id", "calibration_file_id"),
    )


class MissingCalibration(Base):
    """A need of a dataset that no catalogued calibration satisfied."""

    __tablename__ = "missing_calibrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False)
    need: Mapped[str] = mapped_column(String(64), nullable=False)
    required: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)  # False: optional need
    reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("dataset_id", "need", name="uq_missing_calibrations_need"),)
