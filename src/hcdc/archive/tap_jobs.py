"""Asynchronous TAP jobs (UWS 1.1) in the catalogue: they outlive the request and the server.

One row per job: its parameters, phase (PENDING, QUEUED, EXECUTING, COMPLETED, ERROR, ABORTED),
times, owner, and where its result lies (a file under the storage root, ``tap-results/<job>``).
The web layer (:mod:`hcdc.web.vo.uws`) creates, runs, aborts and deletes them; a job past its
``destruction`` time is removed with its result.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive.models import Base, JSONType, utcnow

#: folder (under the storage root) of job results (``<job id>``) and inline uploads (``<job id>.uploads/``)
RESULTS_DIR = "tap-results"


def uploads_folder(storage_root: Path, job_id: str) -> Path:
    """Where the inline uploads (multipart parts) of async job ``job_id`` are kept until it runs."""
    return storage_root / RESULTS_DIR / f"{job_id}.uploads"


UWS_PHASES = (
    "PENDING",
    "QUEUED",
    "EXECUTING",
    "COMPLETED",
    "ERROR",
    "ABORTED",
    "UNKNOWN",
    "HELD",
    "SUSPENDED",
    "ARCHIVED",
)


class TapJob(Base):
    """One UWS job of the TAP service."""

    __tablename__ = "tap_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_user_id: Mapped[int | None] = mapped_column(Integer)  # None: anonymous (public)
    owner_name: Mapped[str | None] = mapped_column(String(128))
    phase: Mapped[str] = mapped_column(String(16), nullable=False, default="PENDING")
    run_id: Mapped[str | None] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    creation_time: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    start_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    end_time: Mapped[dt.datetime | None] = mapped_column(DateTime)
    execution_duration: Mapped[int] = mapped_column(Integer, nullable=False, default=600)  # s
    destruction: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    result_path: Mapped[str | None] = mapped_column(Text)  # relative to the storage root
    result_media_type: Mapped[str | None] = mapped_column(String(128))
    result_size: Mapped[int | None] = mapped_column(BigInteger)  # bytes
    result_rows: Mapped[int | None] = mapped_column(Integer)
    overflow: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    __table_args__ = (
        Index("ix_tap_jobs_owner", "owner_user_id"),
        Index("ix_tap_jobs_destruction", "destruction"),
    )


__all__ = ["RESULTS_DIR", "UWS_PHASES", "TapJob", "uploads_folder"]
