"""Durable jobs in the catalogue: queue, claim, heartbeat, complete / fail / retry, cancel.

A job is a workflow run on a catalogued dataset (or on explicit input files) with parameter
overrides. Its life: ``queued`` -> ``running`` (claimed by one worker, which holds a *lease*
until ``lease_expires_at`` and renews it with heartbeats) -> ``done`` | ``failed`` |
``cancelled``.

Sharing the queue safely:

* **PostgreSQL**: :func:`claim_job` picks the next queued job with
  ``SELECT ... FOR UPDATE SKIP LOCKED`` and marks it running in the same transaction, so any
  number of workers on any number of machines never claim the same job; a worker that locked a
  row simply makes the others skip it instead of waiting.
* **SQLite**: the claim runs in a ``BEGIN IMMEDIATE`` transaction (the database write lock is
  taken before the job is chosen), which is also safe for several worker processes on one
  machine, but SQLite serializes all writers: run one worker at a time (with a process pool or
  Dask behind it for parallelism); use PostgreSQL for several workers.

Fair share: jobs are claimed in priority order and, within a priority, owner by owner
(``job_owners``; the jobs queued from the shell count as one owner): first the owner with the
fewest jobs running, then the one served least recently (``job_shares``, updated by each claim in
the claim's transaction), then that owner's oldest job. A user's batch of n jobs therefore
alternates with the jobs other users queue after it instead of holding them back until its n
jobs have run. On PostgreSQL claims take turns on an advisory lock (a claim is a few
milliseconds), so each one sees the previous one's choice and the order is exact with any number
of workers; on SQLite ``BEGIN IMMEDIATE`` serializes them already.

Faults:

* A worker that dies (killed, machine lost) stops renewing its lease. The next claim by any
  worker first re-queues running jobs whose lease expired (:func:`requeue_expired`): the job is
  run again by another worker, up to ``max_attempts`` attempts, then marked failed.
* Every state change of a running job is conditional on ``worker_id`` and ``state``: a worker
  whose lease was taken over (or whose job was cancelled) can no longer complete it, and
  :func:`heartbeat` tells it to stop.
* A workflow that fails (bad data, a science error) marks the job ``failed`` with the error and
  the log at once: re-running deterministic code on the same input would fail again. Failures
  of the machinery (worker pool broken, database glitch) are retried (:func:`fail_job` with
  ``retry=True``).

Each job keeps its own log in ``job_log`` (:func:`append_log`): the worker appends its lines,
each node's recipe log and errors (tracebacks as their own ``traceback`` lines) while the job
runs, each in a committed transaction, so a worker killed with SIGKILL leaves what it had
written. ``Job.log`` keeps the whole workflow log of the last attempt, as before.
Jobs submitted together belong to a batch (``batch_id``, :mod:`hcdc.pipeline.operations.batches`).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, func, insert, or_, select, text, update

from hcdc.archive.access_models import JobOwner
from hcdc.archive.db import write_transaction
from hcdc.archive.models import utcnow
from hcdc.archive.pipeline_models import (
    JOB_LOG_LEVELS,
    JOB_STATES,
    OPERATOR_SHARE_KEY,
    Job,
    JobLogLine,
    JobShare,
)

DEFAULT_LEASE_S = 60.0  # a worker renews its lease every DEFAULT_LEASE_S / 4 seconds
DEFAULT_MAX_ATTEMPTS = 3
ACTIVE_STATES = ("queued", "running")
MAX_LOG_CHARS = 200_000  # keep the job log bounded (the full logs live in the provenance)
MAX_LOG_LINE_CHARS = 20_000  # one line of the job_log table (a traceback is one line)
#: the PostgreSQL advisory lock that makes claims take turns ("hcdcjobs" in ASCII)
CLAIM_LOCK_KEY = 0x6863_6463_6A6F_6273


class JobError(RuntimeError):
    """A job operation cannot be done (unknown job, wrong state); the message says why."""


@dataclass(frozen=True)
class JobInfo:
    """A snapshot of one job row (what workers and the CLI pass around)."""

    id: int
    dataset_id: int | None
    inputs: dict[str, Any] | None
    workflow: str | None
    parameters: list[str]
    state: str
    priority: int
    progress: float
    stage: str | None
    attempts: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    queued_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    log: str | None
    summary: dict[str, Any] | None
    batch_id: int | None

    @classmethod
    def from_row(cls, row: Any) -> JobInfo:
        m = row._mapping
        return cls(**{name: m[name] for name in cls.__dataclass_fields__})

    def as_dict(self, with_log: bool = False) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        if not with_log:
            out.pop("log")
        return out


_JOB_COLUMNS = [Job.__table__.c[name] for name in JobInfo.__dataclass_fields__]


def new_worker_id() -> str:
    """A worker identity: ``host:pid:random`` (unique across machines and restarts)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _trim(log: str | None) -> str | None:
    if log is None or len(log) <= MAX_LOG_CHARS:
        return log
    return "[... log truncated ...]\n" + log[-MAX_LOG_CHARS:]


# --------------------------------------------------------------------------------------------
# queueing and reading


def queue_job(
    engine: Engine,
    *,
    dataset_id: int | None = None,
    inputs: dict[str, Any] | None = None,
    workflow: str | None = None,
    parameters: Sequence[str] = (),
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    priority: int = 0,
    batch_id: int | None = None,
    conn: Any = None,
) -> int:
    """Queue a workflow run; returns the job id.

    Either ``dataset_id`` (a catalogued dataset: the worker gathers its files and associated
    calibrations, and chooses the workflow from their classification when ``workflow`` is
    None) or ``inputs`` (workflow input name -> path or list of paths; ``workflow`` required).
    ``parameters`` are ``node.param=value`` / ``param=value`` overrides. ``batch_id``: the
    batch the job belongs to. ``conn``: queue inside the caller's transaction.
    """
    if dataset_id is None and not inputs:
        raise JobError("a job needs a dataset or workflow inputs")
    if inputs and workflow is None:
        raise JobError("a job on explicit inputs must name its workflow")
    if max_attempts < 1:
        raise JobError(f"max_attempts must be >= 1, not {max_attempts}")
    for item in parameters:
        if "=" not in item:
            raise JobError(f"parameter {item!r} is not of the form name=value")
    jsonable_inputs = None
    if inputs:
        jsonable_inputs = {
            k: [str(p) for p in v] if isinstance(v, list | tuple) else str(v) for k, v in inputs.items()
        }
    statement = (
        insert(Job)
        .values(
            dataset_id=dataset_id,
            inputs=jsonable_inputs,
            workflow=workflow,
            parameters=list(parameters),
            state="queued",
            priority=priority,
            progress=0.0,
            attempts=0,
            max_attempts=max_attempts,
            queued_at=utcnow(),
            batch_id=batch_id,
        )
        .returning(Job.id)
    )
    if conn is not None:
        return conn.execute(statement).scalar_one()
    with write_transaction(engine) as own:
        return own.execute(statement).scalar_one()


def get_job(engine: Engine, job_id: int) -> JobInfo:
    """The job ``job_id`` (raises :class:`JobError` when there is none)."""
    with engine.connect() as conn:
        row = conn.execute(select(*_JOB_COLUMNS).where(Job.id == job_id)).first()
    if row is None:
        raise JobError(f"no job with id {job_id}")
    return JobInfo.from_row(row)


def list_jobs(
    engine: Engine,
    state: str | None = None,
    *,
    dataset_id: int | None = None,
    ids: Sequence[int] | None = None,
    batch_id: int | None = None,
    limit: int | None = 200,
) -> list[JobInfo]:
    """Jobs, newest first, optionally of one ``state``, one dataset, one batch or given ``ids``."""
    if state is not None and state not in JOB_STATES:
        raise JobError(f"unknown job state {state!r}; states: {', '.join(JOB_STATES)}")
    query = select(*_JOB_COLUMNS).order_by(Job.id.desc())
    if state is not None:
        query = query.where(Job.state == state)
    if dataset_id is not None:
        query = query.where(Job.dataset_id == dataset_id)
    if ids is not None:
        query = query.where(Job.id.in_(list(ids)))
    if batch_id is not None:
        query = query.where(Job.batch_id == batch_id)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [JobInfo.from_row(r) for r in conn.execute(query)]


def count_by_state(engine: Engine) -> dict[str, int]:
    """Number of jobs per state (every state present, zero included)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Job.state, func.count()).group_by(Job.state)).all()
    counts = dict.fromkeys(JOB_STATES, 0)
    counts.update({state: n for state, n in rows})
    return counts


# --------------------------------------------------------------------------------------------
# claiming


def _lease_lost_line(job_id: int, attempts: int, failed: bool, now: dt.datetime) -> dict[str, Any]:
    """The job-log line written when a dead worker's lease expires (no worker id: a host and
    pid are the data centre's business, not the job owner's)."""
    outcome = "no attempts left: failed" if failed else "re-queued"
    return {
        "job_id": job_id,
        "attempt": attempts,
        "node": None,
        "at": now,
        "level": "error" if failed else "warning",
        "message": f"attempt {attempts}: the worker stopped renewing its lease (killed or lost); {outcome}",
    }


def _requeue_expired_in(conn: Any, now: dt.datetime) -> list[int]:
    """Re-queue (or fail, when out of attempts) running jobs whose lease expired."""
    expired = conn.execute(
        select(Job.id, Job.attempts, Job.max_attempts, Job.worker_id).where(
            Job.state == "running", Job.lease_expires_at < now
        )
    ).all()
    for job_id, attempts, max_attempts, worker in expired:
        note = f"lease of worker {worker} expired at attempt {attempts} (worker died or lost)"
        if attempts >= max_attempts:
            values = {"state": "failed", "finished_at": now, "error": f"{note}; no attempts left"}
        else:
            values = {"state": "queued", "error": note}
        changed = conn.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == "running", Job.lease_expires_at < now)
            .values(worker_id=None, lease_expires_at=None, **values)
        ).rowcount
        if changed:
            conn.execute(
                insert(JobLogLine).values(**_lease_lost_line(job_id, attempts, attempts >= max_attempts, now))
            )
    return [row[0] for row in expired]


def requeue_expired(engine: Engine, now: dt.datetime | None = None) -> list[int]:
    """Re-queue running jobs whose worker stopped renewing its lease; returns their ids."""
    with write_transaction(engine) as conn:
        return _requeue_expired_in(conn, now or utcnow())


def _claim_values(worker_id: str, now: dt.datetime, lease_s: float) -> dict[str, Any]:
    return {
        "state": "running",
        "worker_id": worker_id,
        "attempts": Job.attempts + 1,
        "started_at": now,
        "heartbeat_at": now,
        "lease_expires_at": now + dt.timedelta(seconds=lease_s),
        "progress": 0.0,
        "stage": "claimed",
        "finished_at": None,
    }


def _owner_key():  # noqa: ANN202 - a SQL expression
    """A job's fair-share key: its owner's user id, :data:`OPERATOR_SHARE_KEY` for shell jobs."""
    return func.coalesce(JobOwner.user_id, OPERATOR_SHARE_KEY)


def _next_queued(ids: Sequence[int] | None):  # noqa: ANN202 - a Select
    """The next job to claim and its owner's share key, in fair-share order.

    1. higher ``priority`` first (an operator's urgent job still jumps the queue);
    2. then the owner with the fewest jobs running now (a share of the machine: a user with
       four running jobs waits for a user with none);
    3. then the owner served least recently (``job_shares.last_claim_at``; never served first):
       round-robin between owners, so a batch of n jobs does not hold back others' jobs;
    4. then the oldest job (``id``) of that owner.
    """
    owner = _owner_key()
    running = (
        select(owner.label("owner_key"), func.count().label("n"))
        .select_from(Job.__table__.outerjoin(JobOwner, JobOwner.job_id == Job.id))
        .where(Job.state == "running")
        .group_by(owner)
        .subquery("running_by_owner")
    )
    query = (
        select(Job.id, owner.label("owner_key"))
        .select_from(
            Job.__table__.outerjoin(JobOwner, JobOwner.job_id == Job.id)
            .outerjoin(running, running.c.owner_key == owner)
            .outerjoin(JobShare, JobShare.owner_key == owner)
        )
        .where(Job.state == "queued")
        .order_by(
            Job.priority.desc(),
            func.coalesce(running.c.n, 0),
            JobShare.last_claim_at.is_not(None),  # never served (false) before served (true)
            JobShare.last_claim_at,
            Job.id,
        )
        .limit(1)
    )
    if ids is not None:
        query = query.where(Job.id.in_(list(ids)))
    return query


def _served(dialect: str, owner_key: int, now: dt.datetime):  # noqa: ANN202 - an Insert
    """Record that ``owner_key`` was served at ``now`` (an upsert on ``job_shares``)."""
    from sqlalchemy.dialects import postgresql, sqlite

    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert_(JobShare).values(owner_key=owner_key, last_claim_at=now, claims=1)
    return statement.on_conflict_do_update(
        index_elements=[JobShare.owner_key],
        set_={"last_claim_at": now, "claims": JobShare.claims + 1},
    )


def claim_job(
    engine: Engine,
    worker_id: str,
    *,
    lease_s: float = DEFAULT_LEASE_S,
    ids: Sequence[int] | None = None,
) -> JobInfo | None:
    """Take the next queued job for ``worker_id``, in fair-share order (:func:`_next_queued`:
    highest priority; then the owner with the fewest running jobs; then the owner served least
    recently; then the oldest job), and record that its owner was served (``job_shares``).

    Expired leases are re-queued first. Returns the claimed job (state ``running``, attempts
    incremented) or None when nothing is queued. ``ids`` restricts the claim to those jobs
    (``hcdc reduce --wait`` runs only the jobs it queued). Safe with concurrent workers: see
    the module docstring.
    """
    if engine.dialect.name == "sqlite":
        return _claim_sqlite(engine, worker_id, lease_s, ids)
    with write_transaction(engine) as conn:
        # claims take turns (a transaction-level advisory lock, released at commit), so that each
        # chooses with the previous claim committed: the fair-share order is exact with any
        # number of workers; SKIP LOCKED still passes over rows that others (cancel) hold
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})
        now = utcnow()
        _requeue_expired_in(conn, now)
        found = conn.execute(_next_queued(ids).with_for_update(skip_locked=True, of=Job)).first()
        if found is None:
            return None
        job_id, owner_key = found
        conn.execute(update(Job).where(Job.id == job_id).values(**_claim_values(worker_id, now, lease_s)))
        conn.execute(_served("postgresql", owner_key, now))
        row = conn.execute(select(*_JOB_COLUMNS).where(Job.id == job_id)).one()
    return JobInfo.from_row(row)


def _claim_sqlite(
    engine: Engine, worker_id: str, lease_s: float, ids: Sequence[int] | None
) -> JobInfo | None:
    """The SQLite claim: one ``BEGIN IMMEDIATE`` transaction on the raw DBAPI connection.

    hcdc's SQLite engine starts transactions with a plain (deferred) ``BEGIN``; a deferred
    transaction that reads the queue and then writes can lose the race for the write lock to
    another worker and fail. ``BEGIN IMMEDIATE`` takes the write lock first (waiting up to the
    busy timeout), so choosing and marking the job are atomic.
    """
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect(paramstyle="qmark")

    def run(cursor: Any, statement: Any) -> list[tuple]:
        # render_postcompile: "IN (...)" lists become plain positional parameters
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        params = compiled.construct_params()
        values = []
        for name in compiled.positiontup:
            # the column types' own conversions (datetimes in SQLAlchemy's SQLite text format)
            bind = compiled.binds.get(name)
            process = bind.type.bind_processor(dialect) if bind is not None else None
            values.append(process(params[name]) if process else params[name])
        cursor.execute(str(compiled), values)
        return cursor.fetchall()

    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        now = utcnow()  # read with the lock held: claim times follow the claims' order
        try:
            expired = run(
                cursor,
                select(Job.id, Job.attempts, Job.max_attempts, Job.worker_id).where(
                    Job.state == "running", Job.lease_expires_at < now
                ),
            )
            for job_id, attempts, max_attempts, worker in expired:
                note = f"lease of worker {worker} expired at attempt {attempts} (worker died or lost)"
                values: dict[str, Any] = (
                    {"state": "failed", "finished_at": now, "error": f"{note}; no attempts left"}
                    if attempts >= max_attempts
                    else {"state": "queued", "error": note}
                )
                run(
                    cursor,
                    update(Job)
                    .where(Job.id == job_id)
                    .values(worker_id=None, lease_expires_at=None, **values),
                )
                line = _lease_lost_line(job_id, attempts, attempts >= max_attempts, now)
                run(cursor, insert(JobLogLine).values(**line))
            found = run(cursor, _next_queued(ids))
            if not found:
                cursor.execute("COMMIT")
                return None
            job_id, owner_key = found[0]
            run(cursor, update(Job).where(Job.id == job_id).values(**_claim_values(worker_id, now, lease_s)))
            run(cursor, _served("sqlite", owner_key, now))
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()
    finally:
        raw.close()
    return get_job(engine, job_id)


# --------------------------------------------------------------------------------------------
# running jobs: heartbeats and outcomes


def _owned(job_id: int, worker_id: str):  # noqa: ANN202 - a SQL condition
    return and_(Job.id == job_id, Job.worker_id == worker_id, Job.state == "running")


def heartbeat(
    engine: Engine,
    job_id: int,
    worker_id: str,
    *,
    lease_s: float = DEFAULT_LEASE_S,
    progress: float | None = None,
    stage: str | None = None,
) -> bool:
    """Renew the lease of a running job (and record progress 0..1 / stage).

    Returns False when the job is no longer this worker's (cancelled, or re-queued after the
    lease expired): the worker must then abandon it without registering anything.
    """
    now = utcnow()
    values: dict[str, Any] = {"heartbeat_at": now, "lease_expires_at": now + dt.timedelta(seconds=lease_s)}
    if progress is not None:
        values["progress"] = float(min(max(progress, 0.0), 1.0))
    if stage is not None:
        values["stage"] = stage[:255]
    with write_transaction(engine) as conn:
        return conn.execute(update(Job).where(_owned(job_id, worker_id)).values(**values)).rowcount == 1


def complete_job(
    engine: Engine,
    job_id: int,
    worker_id: str,
    *,
    log: str | None = None,
    summary: dict[str, Any] | None = None,
    conn: Any = None,
) -> bool:
    """Mark a running job done; False when the worker no longer owns it.

    ``conn``: run inside the caller's transaction (the worker registers the products and
    completes the job in one transaction, so both happen or neither).
    """
    statement = (
        update(Job)
        .where(_owned(job_id, worker_id))
        .values(
            state="done",
            progress=1.0,
            stage="done",
            finished_at=utcnow(),
            lease_expires_at=None,
            error=None,
            log=_trim(log),
            summary=summary,
        )
    )
    if conn is not None:
        return conn.execute(statement).rowcount == 1
    with write_transaction(engine) as own:
        return own.execute(statement).rowcount == 1


def fail_job(
    engine: Engine, job_id: int, worker_id: str, error: str, *, log: str | None = None, retry: bool = False
) -> str | None:
    """Record a failed attempt. With ``retry`` the job goes back to the queue while attempts
    remain; otherwise (or when none remain) it is ``failed``. Returns the new state, or None
    when the worker no longer owns the job."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(Job.attempts, Job.max_attempts).where(_owned(job_id, worker_id))).first()
        if row is None:
            return None
        state = "queued" if retry and row.attempts < row.max_attempts else "failed"
        values: dict[str, Any] = {
            "state": state,
            "error": error,
            "log": _trim(log),
            "worker_id": None if state == "queued" else worker_id,
            "lease_expires_at": None,
            "stage": "failed" if state == "failed" else "re-queued",
        }
        if state == "failed":
            values["finished_at"] = utcnow()
        conn.execute(update(Job).where(_owned(job_id, worker_id)).values(**values))
    return state


def cancel_job(engine: Engine, job_id: int) -> bool:
    """Cancel a queued or running job (a running job's worker stops at its next heartbeat and
    registers nothing). False when the job had already finished."""
    with write_transaction(engine) as conn:
        exists = conn.scalar(select(Job.id).where(Job.id == job_id))
        if exists is None:
            raise JobError(f"no job with id {job_id}")
        changed = conn.execute(
            update(Job)
            .where(Job.id == job_id, or_(Job.state == "queued", Job.state == "running"))
            .values(state="cancelled", finished_at=utcnow(), lease_expires_at=None, stage="cancelled")
        ).rowcount
    return changed == 1


def retry_job(engine: Engine, job_id: int, *, extra_attempts: int = 1) -> None:
    """Put a failed or cancelled job back in the queue (with ``extra_attempts`` more attempts)."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(Job.state, Job.attempts).where(Job.id == job_id)).first()
        if row is None:
            raise JobError(f"no job with id {job_id}")
        if row.state not in ("failed", "cancelled"):
            raise JobError(f"job {job_id} is {row.state}; only failed or cancelled jobs can be retried")
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state="queued",
                max_attempts=row.attempts + extra_attempts,
                worker_id=None,
                finished_at=None,
                progress=0.0,
                stage=None,
            )
        )


# --------------------------------------------------------------------------------------------
# the job log


def append_log(
    engine: Engine,
    job_id: int,
    attempt: int,
    lines: Iterable[tuple[str, str] | tuple[str, str, dt.datetime | None]],
    *,
    node: str | None = None,
) -> int:
    """Append ``(level, message[, at])`` lines to a job's log (``node``: the workflow node
    they are about; None: the worker) in one committed transaction; returns how many.

    ``level`` is one of ``debug info warning error traceback`` (``critical`` counts as error);
    ``at`` (UTC, naive) defaults to now; a message longer than :data:`MAX_LOG_LINE_CHARS` keeps
    its end. Committed lines survive the worker (SIGKILL included).
    """
    now = utcnow()
    rows = []
    for line in lines:
        level, message = line[0].lower(), line[1]
        at = (line[2] if len(line) > 2 else None) or now  # type: ignore[misc]
        level = "error" if level == "critical" else level
        if level not in JOB_LOG_LEVELS:
            raise JobError(f"job log level {level!r} is not one of {', '.join(JOB_LOG_LEVELS)}")
        if len(message) > MAX_LOG_LINE_CHARS:
            message = "[... truncated ...]" + message[-MAX_LOG_LINE_CHARS:]
        node_name = node[:64] if node else None
        rows.append(
            {
                "job_id": job_id,
                "attempt": attempt,
                "node": node_name,
                "at": at,
                "level": level,
                "message": message,
            }
        )
    if rows:
        with write_transaction(engine) as conn:
            conn.execute(insert(JobLogLine), rows)
    return len(rows)


def all_finished(jobs: Sequence[JobInfo]) -> bool:
    """True when none of ``jobs`` is queued or running."""
    return all(job.state not in ACTIVE_STATES for job in jobs)


__all__ = [
    "ACTIVE_STATES",
    "DEFAULT_LEASE_S",
    "DEFAULT_MAX_ATTEMPTS",
    "JobError",
    "JobInfo",
    "all_finished",
    "append_log",
    "cancel_job",
    "claim_job",
    "complete_job",
    "count_by_state",
    "fail_job",
    "get_job",
    "heartbeat",
    "list_jobs",
    "new_worker_id",
    "queue_job",
    "requeue_expired",
    "retry_job",
]
