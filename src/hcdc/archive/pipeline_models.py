"""The catalogue's pipeline tables: products, their files and provenance, and durable jobs.

Same declarative :class:`~hcdc.archive.models.Base` as the archive tables; created by the
Alembic migration ``0002_pipeline``.

* ``products``: one row per product *version*. Products of the same ``lineage`` (what the
  product is of: a dataset and a product type, e.g. ``dataset/3/level2-image``) form a version
  history; exactly one of them has ``is_current`` true (enforced by a partial unique index).
  ``(job_id, node)`` is unique, so a job that is retried after its worker died can never
  register the same workflow node twice.
* ``product_files``: the files of a product, stored under the storage root (relative path),
  with sha256, size and media type; ``role`` says what a file is (``product``, ``preview``,
  ``provenance``, ...).
* ``provenance``: the full :class:`hcdc.pipeline.provenance.ProvenanceRecord` of each product
  as JSON, plus the fields one searches on (recipe, workflow, versions, parameters).
* ``jobs``: the durable job queue (see :mod:`hcdc.pipeline.operations.jobs`): state
  ``queued -> running -> done | failed | cancelled``, attempts, the worker holding the job and
  until when (``lease_expires_at``, renewed by heartbeats), progress, timings, error and log;
  ``batch_id`` when the job is one of a batch.
* ``batches``: jobs submitted together (``hcdc reduce`` over several datasets, "reduce every
  dataset of target X / night Y" from the portal): who asked, when, what was selected; the batch's
  state is computed from its jobs' states when asked (:mod:`hcdc.archive.batches`).
* ``job_log``: each job's own log, one row per line, appended by the worker while the job runs
  (worker lines, each workflow node's recipe log, errors with their traceback): a committed line
  stays when the worker is killed. Created by the migration ``0016_batches``.
* ``job_shares``: fair share of the queue, one row per job owner (``owner_key``: the user id of
  ``job_owners``, 0 for jobs queued from the shell): when the owner's last job was claimed and
  how many were; the claim serves first the owner with the fewest running jobs, then the one
  served least recently (:func:`hcdc.pipeline.operations.jobs.claim_job`). Created by the
  migration ``0021_fair_share``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive.models import Base, JSONType, trigram_index, utcnow

JOB_STATES = ("queued", "running", "done", "failed", "cancelled")
PRODUCT_STATUSES = ("done", "failed")


class Job(Base):
    """One unit of pipeline work: a workflow run on a dataset or on explicit inputs."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    # workflow inputs when the job is not on a catalogued dataset: {"cube": "/path", ...}
    inputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    workflow: Mapped[str | None] = mapped_column(String(64))  # None: chosen from the dataset
    parameters: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)  # "k=v"
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    progress: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)  # 0..1
    stage: Mapped[str | None] = mapped_column(String(255))  # what the job is doing now
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    queued_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # last attempt's start
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    error: Mapped[str | None] = mapped_column(Text)
    log: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # workflow summary when done
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("batches.id", ondelete="SET NULL"))

    __table_args__ = (
        CheckConstraint("state IN ('queued', 'running', 'done', 'failed', 'cancelled')", name="state_valid"),
        CheckConstraint("max_attempts >= 1", name="max_attempts_positive"),
        CheckConstraint("dataset_id IS NOT NULL OR inputs IS NOT NULL", name="has_input"),
        Index("ix_jobs_state_priority", "state", "priority", "id"),
        Index("ix_jobs_dataset_id", "dataset_id"),
        Index("ix_jobs_batch_id", "batch_id"),
    )


class Batch(Base):
    """Jobs submitted together (see the module docstring)."""

    __tablename__ = "batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(255), nullable=False)  # what the batch reduces, for people
    # the account that submitted it (None: the shell's operator); it sees and controls the batch
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)  # account name or local:<os user>
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    workflow: Mapped[str | None] = mapped_column(String(64))  # None: chosen per dataset
    parameters: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)  # "k=v"
    selection: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)  # as asked

    __table_args__ = (Index("ix_batches_owner_user_id", "owner_user_id"),)


#: the fair-share key of jobs nobody owns (queued from the shell): user ids start at 1
OPERATOR_SHARE_KEY = 0


class JobShare(Base):
    """When each job owner was last served by the queue (see the module docstring)."""

    __tablename__ = "job_shares"

    # job_owners.user_id, or OPERATOR_SHARE_KEY; no foreign key: the row of a deleted account
    # only remembers a claim time, and the key 0 is no account
    owner_key: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_claim_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    claims: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # jobs claimed so far


JOB_LOG_LEVELS = ("debug", "info", "warning", "error", "traceback")


class JobLogLine(Base):
    """One line of a job's log (see the module docstring). ``level`` ``traceback`` holds a
    Python traceback (server paths): shown to admins and operators only (rule R10)."""

    __tablename__ = "job_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    node: Mapped[str | None] = mapped_column(String(64))  # workflow node; None: the worker itself
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    level: Mapped[str] = mapped_column(String(16), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        CheckConstraint("level IN ('debug', 'info', 'warning', 'error', 'traceback')", name="level_valid"),
        Index("ix_job_log_job_id", "job_id", "id"),
    )


class Product(Base):
    """One version of a pipeline product (see the module docstring)."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    lineage: Mapped[str] = mapped_column(String(255), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    is_current: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    level: Mapped[int | None] = mapped_column(Integer)  # 0..3 (see DESIGN.md), None if not a level
    product_type: Mapped[str] = mapped_column(String(64), nullable=False)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    target: Mapped[str | None] = mapped_column(String(128))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    node: Mapped[str | None] = mapped_column(String(64))  # workflow node that made it
    recipe: Mapped[str] = mapped_column(String(64), nullable=False)
    recipe_version: Mapped[str] = mapped_column(String(32), nullable=False)
    workflow: Mapped[str | None] = mapped_column(String(64))
    workflow_version: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="done")
    storage_dir: Mapped[str] = mapped_column(Text, nullable=False)  # relative to the storage root
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # detections, contrast, ...
    rerun_of_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("lineage", "version", name="uq_products_lineage_version"),
        # a retried job cannot register the same node twice (NULL job ids never conflict)
        UniqueConstraint("job_id", "node", name="uq_products_job_node"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("status IN ('done', 'failed')", name="status_valid"),
        Index(
            "ux_products_current_lineage",
            "lineage",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        Index("ix_products_dataset_id", "dataset_id"),
        Index("ix_products_level_type", "level", "product_type"),
        Index("ix_products_target", "target"),
        trigram_index("ix_products_target_trgm"),
    )


class ProductFile(Base):
    """One file of a product, in the data centre's storage."""

    __tablename__ = "product_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    role: Mapped[str] = mapped_column(String(32), nullable=False)  # product, preview, provenance, ...
    path: Mapped[str] = mapped_column(Text, nullable=False)  # relative to the storage root
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)  # bytes
    media_type: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (
        UniqueConstraint("product_id", "path", name="uq_product_files_path"),
        Index("ix_product_files_sha256", "sha256"),
    )


class ProductSource(Base):
    """A catalogued file a product was made from, for products without a dataset (e.g. a model
    fit of OIFITS files, ``hcdc oi fit``): such a product is visible exactly when all its source
    files are (rule R17 in :mod:`hcdc.archive.access`). Written by the worker when it registers
    the products of a job whose inputs are archived files."""

    __tablename__ = "product_sources"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_product_sources_file_id", "file_id"),)


class ProvenanceEntry(Base):
    """The provenance record of one product (the JSON of a ``ProvenanceRecord``)."""

    __tablename__ = "provenance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    record_id: Mapped[str] = mapped_column(String(64), nullable=False)  # ProvenanceRecord.id
    recipe: Mapped[str] = mapped_column(String(64), nullable=False)
    recipe_version: Mapped[str] = mapped_column(String(32), nullable=False)
    workflow: Mapped[str | None] = mapped_column(String(64))
    workflow_version: Mapped[str | None] = mapped_column(String(32))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    software_version: Mapped[str | None] = mapped_column(String(64))
    git_commit: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    started: Mapped[str | None] = mapped_column(String(40))  # UTC ISO 8601, as in the record
    finished: Mapped[str | None] = mapped_column(String(40))
    record: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)

    __table_args__ = (
        UniqueConstraint("product_id", name="uq_provenance_product_id"),
        UniqueConstraint("record_id", name="uq_provenance_record_id"),
    )


__all__ = [
    "JOB_LOG_LEVELS",
    "JOB_STATES",
    "Batch",
    "Job",
    "JobLogLine",
    "Product",
    "ProductFile",
    "ProductSource",
    "ProvenanceEntry",
]
