"""Batches: jobs submitted together, followed, cancelled and retried together.

A batch is what one request queues: ``hcdc reduce`` over several datasets, "reduce every
dataset of target X / night Y" from the portal or ``POST /api/v1/batches``. It has an id, an
owner (the account that submitted it; None for the shell's operator), a label, its creation time,
what was selected, and its jobs (``jobs.batch_id``). Its state, counts per job state and progress
are computed from the jobs when asked (:mod:`hcdc.archive.batches`).

Rights (:mod:`hcdc.archive.access`): the batch and its jobs are seen by their submitter and staff
(R10); they cancel or retry it (A11); a user's batch takes as many places of their job quota as
it has jobs (A6, A11). Submitting, cancelling and retrying are written to the audit log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select

from hcdc.archive import accounts
from hcdc.archive.access import DEFAULT_POLICY, AccessContext, AccessDenied, Policy, Principal
from hcdc.archive.db import Catalogue, write_transaction
from hcdc.archive.models import utcnow
from hcdc.archive.pipeline_models import Batch, Job
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.operations.worker import dataset_workflows
from hcdc.pipeline.workflow import WorkflowError

__all__ = ["MAX_BATCH_JOBS", "BatchError", "cancel_batch", "retry_batch", "submit_batch"]

#: the most jobs one batch may queue
MAX_BATCH_JOBS = 1000


class BatchError(ValueError):
    """A batch cannot be submitted as asked (no dataset, too many, bad parameters)."""


def _context(conn: Any, actor: Principal, now: dt.datetime | None, policy: Policy | None) -> AccessContext:
    return AccessContext(conn, actor, now, policy or DEFAULT_POLICY)


def submit_batch(
    catalogue: Catalogue,
    actor: Principal,
    dataset_ids: Sequence[int],
    *,
    workflow: str | None = None,
    parameters: Sequence[str] = (),
    label: str | None = None,
    selection: dict[str, Any] | None = None,
    max_attempts: int = jq.DEFAULT_MAX_ATTEMPTS,
    now: dt.datetime | None = None,
    policy: Policy | None = None,
) -> tuple[int, list[int]]:
    """Queue one reduction job per dataset as one batch for ``actor``; returns
    ``(batch id, job ids)``.

    Every dataset must be one ``actor`` may see (else :class:`LookupError`, as for a dataset
    that does not exist); the workflow (given, or chosen per dataset) and the ``parameters``
    (``node.param=value``) are checked against each workflow's recipes before anything is
    queued (:class:`BatchError`); the quota is asked for all jobs at once (A6/A11,
    :class:`~hcdc.archive.access.AccessDenied`). The batch, its jobs and their owner are written
    in one transaction: either all are queued or none.
    """
    ids = list(dict.fromkeys(int(d) for d in dataset_ids))
    if not ids:
        raise BatchError("a batch needs at least one dataset")
    if len(ids) > MAX_BATCH_JOBS:
        raise BatchError(f"a batch queues at most {MAX_BATCH_JOBS} jobs, {len(ids)} datasets were selected")
    strings = list(parameters)
    for item in strings:
        if "=" not in item:
            raise BatchError(f"parameter {item!r} is not of the form name=value")
    with write_transaction(catalogue.engine) as conn:
        ctx = _context(conn, actor, now, policy)
        for dataset_id in ids:
            try:
                visible = bool(ctx.can_see_dataset(dataset_id))
            except LookupError:
                visible = False
            if not visible:
                raise LookupError(f"no dataset with id {dataset_id}")
        try:
            workflows = dataset_workflows(conn, ids, workflow)
            for chosen in {w.name: w for w in workflows.values()}.values():
                chosen.resolve_params(strings)
        except WorkflowError as exc:
            raise BatchError(str(exc)) from None
        ctx.require(ctx.can_submit_job(None, count=len(ids)))
        if label is None:
            names = sorted({w.name for w in workflows.values()})
            label = f"{len(ids)} dataset(s), {', '.join(names)}"
        batch_id = conn.execute(
            insert(Batch)
            .values(
                label=label[:255],
                owner_user_id=actor.id,
                created_by=actor.name,
                created_at=utcnow(),
                workflow=workflow,
                parameters=strings,
                selection=selection or {"datasets": ids},
            )
            .returning(Batch.id)
        ).scalar_one()
        job_ids = [
            jq.queue_job(
                catalogue.engine,
                dataset_id=dataset_id,
                workflow=workflow,
                parameters=strings,
                max_attempts=max_attempts,
                batch_id=batch_id,
                conn=conn,
            )
            for dataset_id in ids
        ]
        for job_id in job_ids:
            accounts.record_job_owner(conn, job_id, actor)
        accounts.audit(conn, actor, "batch.submit", "batch", batch_id, {"jobs": len(job_ids), "label": label})
    return batch_id, job_ids


def _controlled(
    catalogue: Catalogue, actor: Principal, batch_id: int, now: dt.datetime | None
) -> list[tuple]:
    """``(job id, state)`` of a batch ``actor`` may control (A11); LookupError otherwise."""
    with catalogue.engine.connect() as conn:
        ctx = _context(conn, actor, now, None)
        decision = ctx.can_control_batch(batch_id)  # LookupError: no such batch
        if not decision:  # not theirs: answered as missing (nobody learns the id exists)
            raise LookupError(f"no batch with id {batch_id}")
        return [tuple(r) for r in conn.execute(select(Job.id, Job.state).where(Job.batch_id == batch_id))]


def cancel_batch(
    catalogue: Catalogue, actor: Principal, batch_id: int, *, now: dt.datetime | None = None
) -> list[int]:
    """Cancel the queued and running jobs of a batch (A11); returns the ids of those cancelled
    (a running job's worker stops at its next heartbeat and registers nothing)."""
    jobs = _controlled(catalogue, actor, batch_id, now)
    cancelled = [
        job_id
        for job_id, state in jobs
        if state in jq.ACTIVE_STATES and jq.cancel_job(catalogue.engine, job_id)
    ]
    with write_transaction(catalogue.engine) as conn:
        accounts.audit(conn, actor, "batch.cancel", "batch", batch_id, {"jobs": cancelled})
    return cancelled


def retry_batch(
    catalogue: Catalogue,
    actor: Principal,
    batch_id: int,
    *,
    now: dt.datetime | None = None,
    policy: Policy | None = None,
) -> list[int]:
    """Re-queue the failed and cancelled jobs of a batch (A11; for a user, the quota must have
    room for all of them, A6); returns their ids."""
    jobs = _controlled(catalogue, actor, batch_id, now)
    again = [job_id for job_id, state in jobs if state in ("failed", "cancelled")]
    if again:
        with catalogue.engine.connect() as conn:
            ctx = _context(conn, actor, now, policy)
            decision = ctx.can_submit_job(None, count=len(again))
            if not decision:
                raise AccessDenied(f"{actor.name}: not allowed ({decision.rule}): {decision.reason}")
    for job_id in again:
        jq.retry_job(catalogue.engine, job_id)
    with write_transaction(catalogue.engine) as conn:
        accounts.audit(conn, actor, "batch.retry", "batch", batch_id, {"jobs": again})
    return again
