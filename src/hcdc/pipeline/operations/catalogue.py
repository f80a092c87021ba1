"""The catalogue facade with the processing queue: what the interfaces hold for one user.

:class:`hcdc.archive.catalogue.UserCatalogue` is the archive as one user sees it (registry,
datastore, provenance, the archive's writes). The job queue belongs to the pipeline
(:mod:`hcdc.pipeline.operations.jobs`), a layer above the archive, so its writes join the facade
here: a :class:`ProcessingCatalogue` is a ``UserCatalogue`` that can also queue a reduction for
its user and, for admins, cancel or retry a job. Rights are asked of :mod:`hcdc.archive.access`
(A6 to queue, A1 to cancel or retry); a dataset or job the user may not see is
:class:`~hcdc.archive.catalogue.NotFound`, as one that does not exist. For an account that may
operate the data centre (A1: the shell's operator), :meth:`ProcessingCatalogue.operations` opens
the operator's entry point (:mod:`hcdc.pipeline.operations.operator`: ingest, associations,
quarantine, fsck, queueing, the worker, watch, reruns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import select

from hcdc.archive import accounts
from hcdc.archive.access import AccessContext
from hcdc.archive.catalogue import NotFound, UserCatalogue
from hcdc.archive.pipeline_models import Job
from hcdc.pipeline.operations import jobs as jq

if TYPE_CHECKING:
    from hcdc.archive.db import Catalogue
    from hcdc.pipeline.operations.operator import OperatorCatalogue

__all__ = ["JOB_ACTIONS", "ProcessingCatalogue"]

#: what an admin may do to a job
JOB_ACTIONS = ("cancel", "retry")


class ProcessingCatalogue(UserCatalogue):
    """The catalogue facade plus the processing queue (see the module docstring)."""

    def operations(self, data_centre: Catalogue) -> OperatorCatalogue:
        """The operator's entry point to ``data_centre`` (the data centre this facade was opened
        on): its pipeline and the store's maintenance (rule A1, :meth:`AccessContext.can_operate
        <hcdc.archive.access.AccessContext.can_operate>`; else ``AccessDenied`` naming the rule)."""
        from hcdc.pipeline.operations.operator import OperatorCatalogue

        self.access.require(self.access.can_operate())
        return OperatorCatalogue(data_centre, self)

    def queue_counts(self) -> dict[str, int]:
        """Jobs per state, every state present (admins only, rule A1: the whole queue)."""
        self.admin()
        return jq.count_by_state(self.write_engine())

    def queue_entries(
        self, state: str | None = None, *, ids: Sequence[int] | None = None, limit: int | None = 100
    ) -> list[jq.JobInfo]:
        """The queue's records of jobs (worker, attempts, error), newest first, optionally of one
        state or of the ``ids`` (admins only, rule A1: the whole queue), read afresh on the data
        centre's engine (:func:`hcdc.pipeline.operations.jobs.list_jobs`; ``JobError`` for an
        unknown state)."""
        self.admin()
        return jq.list_jobs(self.write_engine(), state, ids=ids, limit=limit)

    def queue_entry(self, job_id: int) -> jq.JobInfo:
        """The queue's record of one job, its whole log included (admins only, rule A1;
        ``JobError`` for no such job)."""
        self.admin()
        return jq.get_job(self.write_engine(), job_id)

    def request_reduction(self, dataset_id: int, workflow: str, parameters: Sequence[str]) -> int:
        """Queue ``workflow`` with ``parameters`` (``node.name=value`` strings, validated by the
        caller) on a dataset the user may see, owned by the user; returns the job id.

        The quota (rule A6: active jobs, access window, anonymous) is counted on the write
        connection at the facade's time; :class:`NotFound` for a dataset the user may not see,
        :class:`~hcdc.archive.access.AccessDenied` when A6 refuses.
        """
        self._require("dataset", dataset_id)
        # the quota is counted on the connection that writes; the job and its owner are written
        # in the same transaction, so no worker ever claims the job before its owner is known
        # (the fair share counts it for its owner)
        with self.writing() as conn:
            ctx = AccessContext(conn, self.user, self.access.now, self.access.policy)
            ctx.require(ctx.can_submit_job(dataset_id))
            job_id = jq.queue_job(
                self.write_engine(),
                dataset_id=dataset_id,
                workflow=workflow,
                parameters=list(parameters),
                conn=conn,
            )
            accounts.record_job_owner(conn, job_id, self.user)
        return job_id

    def queue_oifits_fit(self, file_id: int, parameters: Sequence[str]) -> int:
        """Queue a model fit (workflow ``oifits-fit``, ``parameters`` as ``node.name=value``) of
        a catalogued OIFITS file the user may see (:class:`NotFound` otherwise), owned by the
        user; returns the job id. The job and its owner are written in one transaction, so no
        worker claims the job before its owner is known. (As before, ``hcdc oi fit`` counts no
        quota: A6 is asked for reductions of datasets.)"""
        stored = self.file_location(file_id)[0]
        with self.writing() as conn:
            job_id = jq.queue_job(
                self.write_engine(),
                inputs={"oifits": [str(stored)]},
                workflow="oifits-fit",
                parameters=list(parameters),
                conn=conn,
            )
            accounts.record_job_owner(conn, job_id, self.user)
        return job_id

    def job_action(self, job_id: int, action: str) -> bool:
        """Cancel or retry a job (admins only, rule A1); the change goes to the audit log.
        Returns whether the job changed (cancelling a job that has ended changes nothing).
        Raises ``AccessDenied``, ``ValueError`` (no such action), :class:`NotFound` and
        :class:`~hcdc.pipeline.operations.jobs.JobError` (a job that cannot be retried)."""
        self.admin()
        if action not in JOB_ACTIONS:
            raise ValueError(f"no job action {action!r} (cancel or retry)")
        if (
            not self.visible("job", job_id)
            or self.conn.scalar(select(Job.id).where(Job.id == job_id)) is None
        ):
            raise NotFound(f"no job {job_id}")
        engine = self.write_engine()
        if action == "cancel":
            changed = jq.cancel_job(engine, job_id)
        else:
            jq.retry_job(engine, job_id)
            changed = True
        if changed:
            with self.writing() as conn:
                accounts.audit(conn, self.user, f"job.{action}", "job", job_id)
        return changed
