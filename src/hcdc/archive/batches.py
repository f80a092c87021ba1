"""Reading batches of jobs and job logs (the rows of ``batches``, ``jobs``, ``job_log``).

A batch's *state* is never stored: it is computed from its jobs' states when asked
(:func:`batch_state`), so cancelling, retrying or finishing one job changes the batch at once
and nothing has to keep a summary in step:

==================  ==========================================================================
``queued``          every job is queued (none started yet)
``running``         some job is queued or running, and some job has started or ended
``done``            every job is done
``failed``          no job is active, none is done, some failed
``partially failed``  no job is active, some are done and some failed
``cancelled``       no job is active, none failed, some were cancelled
``empty``           the batch has no job (its jobs were deleted)
==================  ==========================================================================

``progress`` is the batch's fraction 0..1: ended jobs (done, failed, cancelled) count whole,
active ones by their own progress.

Access is not decided here: callers pass the SQL filter of :mod:`hcdc.archive.access`
(``visible_batches_clause``, ``visible_jobs_clause``); :class:`hcdc.archive.catalogue.UserCatalogue`
does so for one user.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, select

from hcdc.archive.access_models import User
from hcdc.archive.models import Dataset
from hcdc.archive.pipeline_models import JOB_STATES, Batch, Job, JobLogLine

__all__ = [
    "BATCH_STATES",
    "batch_jobs",
    "batch_rows",
    "batch_state",
    "count_batches",
    "datasets_matching",
    "job_log_lines",
]

BATCH_STATES = ("queued", "running", "done", "failed", "partially failed", "cancelled", "empty")

#: the job columns a batch page shows for each of its jobs (no worker id, no server paths)
_JOB_COLUMNS = (
    Job.id,
    Job.dataset_id,
    Job.workflow,
    Job.state,
    Job.progress,
    Job.stage,
    Job.attempts,
    Job.max_attempts,
    Job.queued_at,
    Job.started_at,
    Job.finished_at,
    Job.error,
)


def batch_state(counts: dict[str, int]) -> str:
    """The state of a batch whose jobs are in ``counts`` (state -> number); see the module doc."""
    total = sum(counts.get(s, 0) for s in JOB_STATES)
    queued, running = counts.get("queued", 0), counts.get("running", 0)
    done, failed = counts.get("done", 0), counts.get("failed", 0)
    if total == 0:
        return "empty"
    if queued + running:
        return "queued" if queued == total else "running"
    if done == total:
        return "done"
    if failed:
        return "partially failed" if done else "failed"
    return "cancelled"  # none active, none failed, not all done: some were cancelled


def _summaries(conn: Connection, batch_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """State counts and progress of each batch, in one query."""
    out = {bid: {"counts": dict.fromkeys(JOB_STATES, 0), "active_progress": 0.0} for bid in batch_ids}
    if not batch_ids:
        return out
    rows = conn.execute(
        select(Job.batch_id, Job.state, func.count(), func.sum(Job.progress))
        .where(Job.batch_id.in_(list(batch_ids)))
        .group_by(Job.batch_id, Job.state)
    )
    for batch_id, state, n, progress in rows:
        out[batch_id]["counts"][state] = n
        if state in ("queued", "running"):
            out[batch_id]["active_progress"] += float(progress or 0.0)
    return out


def _with_summary(row: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    counts = summary["counts"]
    total = sum(counts.values())
    ended = counts["done"] + counts["failed"] + counts["cancelled"]
    progress = (ended + summary["active_progress"]) / total if total else 0.0
    row.update(state=batch_state(counts), counts=counts, jobs_total=total, progress=round(progress, 4))
    return row


def count_batches(conn: Connection, visible: ColumnElement[bool]) -> int:
    """How many batches ``visible`` lets through."""
    return conn.scalar(select(func.count()).select_from(Batch).where(visible)) or 0


def batch_rows(
    conn: Connection,
    visible: ColumnElement[bool],
    *,
    ids: Sequence[int] | None = None,
    offset: int = 0,
    limit: int | None = 50,
) -> list[dict[str, Any]]:
    """Batches (newest first) that ``visible`` lets through, each with its owner's name,
    ``state``, job ``counts`` per state, ``jobs_total`` and ``progress`` (0..1)."""
    query = (
        select(
            Batch.id,
            Batch.label,
            Batch.created_by,
            Batch.created_at,
            Batch.workflow,
            Batch.parameters,
            Batch.selection,
            User.name.label("owner"),
        )
        .outerjoin(User, User.id == Batch.owner_user_id)
        .where(visible)
        .order_by(Batch.id.desc())
        .offset(offset)
    )
    if ids is not None:
        query = query.where(Batch.id.in_(list(ids)))
    if limit is not None:
        query = query.limit(limit)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    summaries = _summaries(conn, [r["id"] for r in rows])
    return [_with_summary(r, summaries[r["id"]]) for r in rows]


def batch_jobs(conn: Connection, batch_id: int, visible_jobs: ColumnElement[bool]) -> list[dict[str, Any]]:
    """The jobs of a batch that ``visible_jobs`` lets through, by id."""
    query = select(*_JOB_COLUMNS).where(Job.batch_id == batch_id, visible_jobs).order_by(Job.id)
    return [dict(r._mapping) for r in conn.execute(query)]


def job_log_lines(
    conn: Connection,
    job_id: int,
    *,
    tracebacks: bool,
    after: int = 0,
    limit: int | None = 5000,
) -> list[dict[str, Any]]:
    """The log of a job, oldest line first: ``id``, ``attempt``, ``node`` (None: the worker),
    ``at`` (UTC), ``level``, ``message``. ``tracebacks`` False leaves out the traceback lines
    (they name server paths: rule R10 shows them to staff only). ``after``: only lines with a
    larger id (a page following a running job asks for what is new)."""
    query = (
        select(
            JobLogLine.id,
            JobLogLine.attempt,
            JobLogLine.node,
            JobLogLine.at,
            JobLogLine.level,
            JobLogLine.message,
        )
        .where(JobLogLine.job_id == job_id, JobLogLine.id > after)
        .order_by(JobLogLine.id)
    )
    if not tracebacks:
        query = query.where(JobLogLine.level != "traceback")
    if limit is not None:
        query = query.limit(limit)
    return [dict(r._mapping) for r in conn.execute(query)]


def datasets_matching(
    conn: Connection,
    visible: ColumnElement[bool],
    *,
    target: str | None = None,
    night: dt.date | None = None,
    instrument: str | None = None,
    limit: int = 10_000,
) -> list[int]:
    """Ids of the datasets ``visible`` lets through of a ``target`` (its name as catalogued,
    case and spaces ignored), a ``night`` and/or an ``instrument``, by id: what "reduce every
    dataset of target X / night Y" selects. At least one criterion is required."""
    if target is None and night is None and instrument is None:
        raise ValueError("select datasets by target, night or instrument")
    query = select(Dataset.id).where(visible).order_by(Dataset.id).limit(limit)
    if target is not None:
        squeezed = "".join(target.split()).lower()
        query = query.where(func.lower(func.replace(Dataset.target, " ", "")) == squeezed)
    if night is not None:
        query = query.where(Dataset.night == night)
    if instrument is not None:
        query = query.where(func.upper(Dataset.instrument) == instrument.upper())
    return list(conn.scalars(query))
