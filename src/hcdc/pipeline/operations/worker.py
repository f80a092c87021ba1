"""Workers: execute the catalogue's queued jobs, register their products; watch a folder.

A :class:`Worker` claims jobs (:func:`hcdc.pipeline.operations.jobs.claim_job`), and for each:

1. gathers the inputs: for a dataset job, the dataset's current raw files and the calibration
   files the catalogue associated with it (as :class:`~hcdc.pipeline.provenance.FileRef` with
   their catalogue ids, so the provenance names them); for an input job, the recorded paths;
2. picks the workflow: the job's, or :func:`~hcdc.pipeline.workflow.select_workflow` from the
   files' classification;
3. runs it with :func:`~hcdc.pipeline.workflow.run_workflow` on the worker's executor (inline,
   a local process pool, or a Dask cluster), in a staging directory of the storage root, while
   a background thread renews the job's lease and records its progress;
4. publishes the staging directory atomically and registers every node's product, files and
   provenance and marks the job done, all in one transaction
   (:func:`hcdc.archive.products.register_products`).

A worker killed at any point leaves no registered product for the attempt; its lease expires
and another worker retries the job. What the dead attempt left in storage (its staging folder,
or results published but not yet registered) is removed with a log line when a worker starts,
before the job's next attempt, and when an idle worker sweeps (:meth:`Worker.sweep`); pool
processes end with their worker (:func:`hcdc.pipeline.executors.init_pool_process`).
A workflow failure marks the job failed (error and log kept) and the worker goes on with the
next job.

Each job keeps its own log (:class:`JobLog`, the ``job_log`` table): the worker's lines about the
job (attempt started, inputs, each node submitted and ended, products registered, errors and
their tracebacks), each node's recipe log when the node ends, and the worker-thread records of
the ``hcdc.pipeline.operations`` and ``hcdc.archive`` loggers while the job runs. Every write is
committed at once, so a worker killed with SIGKILL leaves what it had written.

:func:`queue_datasets` / :func:`ready_datasets` queue the reductions of complete datasets (the
folder watcher, :mod:`hcdc.pipeline.operations.watch`, calls them after each poll).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection, select

from hcdc.archive import accounts
from hcdc.archive import products as prod
from hcdc.archive.associations import associate_dataset, metadata_from_row
from hcdc.archive.db import Catalogue
from hcdc.archive.fsck import sweep_product_orphans
from hcdc.archive.models import Association, Dataset, File, MissingCalibration, utcnow
from hcdc.archive.pipeline_models import Job
from hcdc.archive.storage import resolve_stored_path
from hcdc.archive.telemetry import telemetry_file_ids
from hcdc.pipeline.errors import RecipeError
from hcdc.pipeline.executors import Executor, InlineExecutor, make_executor
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.provenance import FileRef, ProvenanceError
from hcdc.pipeline.registry import get_recipe
from hcdc.pipeline.workflow import (
    NodeRun,
    Workflow,
    WorkflowError,
    get_workflow,
    run_workflow,
    select_workflow,
)
from hcdc.runtime.faults import fault_point
from hcdc.science.checksums import sha256_file

logger = logging.getLogger(__name__)

#: seconds between two sweeps of orphaned results by an idle worker (see Worker.sweep)
SWEEP_INTERVAL_S = 300.0

# errors that mean the machinery failed (retry the job), not the science
_INFRASTRUCTURE_ERRORS = ("BrokenProcessPool", "KilledWorker", "CommClosedError", "CancelledError")


class JobAbandoned(RuntimeError):
    """The worker lost the job (lease taken over or job cancelled): nothing is registered."""


class InputError(RuntimeError):
    """A job's inputs cannot be gathered (unknown dataset, missing file): a permanent failure."""


# --------------------------------------------------------------------------------------------
# inputs of a dataset job

_FILE_COLUMNS = [c for c in File.__table__.c if c.name != "header"]


def dataset_files(conn: Connection, dataset_id: int, storage_root: Path) -> list[tuple[FileRef, Any]]:
    """The raw files a dataset job reduces: the dataset's current files, its associated
    calibrations and its AO telemetry (:func:`hcdc.archive.telemetry.telemetry_file_ids`), as
    ``(FileRef(path, file id), FileMetadata)``, ordered by file id.

    Raises :class:`InputError` when the dataset does not exist, has no files, or a file is no
    longer where the catalogue stored it.
    """
    if conn.scalar(select(Dataset.id).where(Dataset.id == dataset_id)) is None:
        raise InputError(f"no dataset with id {dataset_id}")
    calibration_ids = select(Association.calibration_file_id).where(Association.dataset_id == dataset_id)
    telemetry_ids = telemetry_file_ids(conn, dataset_id)  # SPARTA files: per-frame AO conditions
    rows = conn.execute(
        select(*_FILE_COLUMNS)
        .where(
            ((File.dataset_id == dataset_id) & File.is_current)
            | File.id.in_(calibration_ids)
            | File.id.in_(telemetry_ids)
        )
        .order_by(File.id)
    ).all()
    if not rows:
        raise InputError(f"dataset {dataset_id} has no current files")
    out = []
    for row in rows:
        path = resolve_stored_path(row.storage, row.stored_path, storage_root)
        if not path.is_file():
            raise InputError(f"dataset {dataset_id}: file {row.id} is missing from {path}")
        out.append((FileRef(path, row.id), metadata_from_row(row)))
    return out


def _job_inputs(catalogue: Catalogue, job: jq.JobInfo) -> tuple[Workflow, dict[str, Any], str | None]:
    """``(workflow, workflow inputs, target)`` of a job."""
    if job.dataset_id is not None:
        with catalogue.engine.connect() as conn:
            associated = conn.scalar(select(Dataset.associated_at).where(Dataset.id == job.dataset_id))
        if associated is None:  # never associated: do it now (a pure function of the catalogue)
            try:
                associate_dataset(catalogue.engine, job.dataset_id)
            except LookupError as exc:
                raise InputError(str(exc)) from None
        with catalogue.engine.connect() as conn:
            files = dataset_files(conn, job.dataset_id, catalogue.storage_root)
            target = prod.dataset_target(conn, job.dataset_id)
        workflow = get_workflow(job.workflow) if job.workflow else select_workflow([m for _, m in files])
        return workflow, {"raw": [ref for ref, _ in files]}, target
    if not job.workflow:
        raise InputError(f"job {job.id} has inputs but no workflow")
    workflow = get_workflow(job.workflow)
    inputs: dict[str, Any] = {}
    for name, value in (job.inputs or {}).items():
        inputs[name] = [Path(v) for v in value] if isinstance(value, list) else Path(value)
    return workflow, inputs, None


def _input_paths(inputs: dict[str, Any] | None) -> list[str]:
    """Every path named by a job's inputs (a port's value: one path or a list of paths)."""
    out: list[str] = []
    for value in (inputs or {}).values():
        out.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return out


# --------------------------------------------------------------------------------------------
# heartbeats


#: at most this often (s), a job's new progress or stage is written to the catalogue
PROGRESS_WRITE_S = 1.0


class _Heartbeat:
    """Renews a job's lease from a background thread and records progress; notices when the
    job is no longer this worker's (``lost``)."""

    def __init__(self, catalogue: Catalogue, job_id: int, worker_id: str, lease_s: float) -> None:
        self.catalogue, self.job_id, self.worker_id, self.lease_s = catalogue, job_id, worker_id, lease_s
        self.progress: float | None = None
        self.stage: str | None = None
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"hcdc-heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self) -> None:
        try:
            alive = jq.heartbeat(
                self.catalogue.engine,
                self.job_id,
                self.worker_id,
                lease_s=self.lease_s,
                progress=self.progress,
                stage=self.stage,
            )
        except Exception:  # noqa: BLE001 - a database hiccup: try again at the next beat
            logger.warning("heartbeat of job %s failed", self.job_id, exc_info=True)
            return
        if not alive:
            self.lost.set()

    def _loop(self) -> None:
        # the lease is renewed every lease/4; a change of progress or stage is written within
        # PROGRESS_WRITE_S (so that a job page follows a job), never more often
        interval = max(self.lease_s / 4.0, 0.2)
        last_beat, written = time.monotonic(), (None, None)
        while not self._stop.wait(min(interval, PROGRESS_WRITE_S)):
            shown = (self.progress, self.stage)
            if shown != written or time.monotonic() - last_beat >= interval:
                self.beat()
                last_beat, written = time.monotonic(), shown


# --------------------------------------------------------------------------------------------
# the job's own log

#: loggers whose records, emitted by the worker's thread while it runs a job, go to the job's log
#: (the recipes' own records reach it through each node's recipe log)
JOB_LOG_LOGGERS = ("hcdc.pipeline.operations", "hcdc.archive")

_RECIPE_LINE = re.compile(
    r"^(?P<at>\d{4}-\d\d-\d\dT[\d:.]+(?:[+-]\d\d:\d\d|Z)?) (?P<level>[A-Z]+) (?P<msg>.*)$", re.S
)
_TRACEBACK = "\nTraceback (most recent call last):"


def _split_traceback(
    level: str, message: str, at: dt.datetime | None
) -> list[tuple[str, str, dt.datetime | None]]:
    """A log message that carries a Python traceback: its text, then the traceback as a line of
    its own (level ``traceback``: staff only, rule R10)."""
    head, sep, tail = message.partition(_TRACEBACK)
    out = [(level, head, at)]
    if sep:
        out.append(("traceback", sep.lstrip("\n") + tail, at))
    return out


def recipe_log_lines(lines: Sequence[str]) -> list[tuple[str, str, dt.datetime | None]]:
    """A recipe's log (:attr:`hcdc.pipeline.recipe.RecipeResult.log`, lines
    ``"<UTC ISO time> <LEVEL> <message>"``) as ``(level, message, at)`` for
    :func:`hcdc.pipeline.operations.jobs.append_log`; a line in another form is kept whole (info)."""
    out: list[tuple[str, str, dt.datetime | None]] = []
    for line in lines:
        match = _RECIPE_LINE.match(line)
        if match is None:
            out.extend(_split_traceback("info", line, None))
            continue
        level = match["level"].lower()
        level = {"critical": "error", "warn": "warning"}.get(level, level)
        if level not in ("debug", "info", "warning", "error"):
            level = "info"
        if level == "info" and match["msg"][:8].lower() == "warning:":  # a recipe's warning line
            level = "warning"
        try:
            at = dt.datetime.fromisoformat(match["at"]).astimezone(dt.UTC).replace(tzinfo=None)
        except ValueError:
            at = None
        out.extend(_split_traceback(level, match["msg"], at))
    return out


class JobLog:
    """Appends to one attempt of a job's log; every call is committed at once
    (:func:`hcdc.pipeline.operations.jobs.append_log`). A write that fails (the database is
    away) is reported on the worker's own log and does not stop the job.

    Used as a context manager, it also records what the :data:`JOB_LOG_LOGGERS` loggers emit
    from this thread, INFO and above (what those loggers pass: warnings and errors unless
    logging is configured at INFO)."""

    def __init__(self, engine: Any, job_id: int, attempt: int) -> None:
        self.engine, self.job_id, self.attempt = engine, job_id, attempt
        self._writing = threading.local()
        self._handler = _JobLogHandler(self)

    def write(self, level: str, message: str, *, node: str | None = None) -> None:
        self.lines([(level, message, None)], node=node)

    def lines(self, lines: Sequence[tuple[str, str, dt.datetime | None]], *, node: str | None = None) -> None:
        if getattr(self._writing, "busy", False):
            return  # a record emitted while writing (the warning below): not into the job log
        self._writing.busy = True
        try:
            jq.append_log(self.engine, self.job_id, self.attempt, lines, node=node)
        except Exception:  # noqa: BLE001 - the job goes on; the worker's log says what was lost
            logger.warning("job %s: %d log line(s) not written", self.job_id, len(lines), exc_info=True)
        finally:
            self._writing.busy = False

    def node_ended(self, node: str, event: str, run: NodeRun | None) -> None:
        """A node's recipe log, then how it ended (error, traceback)."""
        lines: list[tuple[str, str, dt.datetime | None]] = []
        if run is not None and run.result is not None:
            lines += recipe_log_lines(run.result.log)
        seconds = ""
        if run is not None and run.result is not None:
            seconds = f" in {run.result.timings.get('total', 0.0):.1f} s"
        if event == "done":
            lines.append(("info", f"node {node} done{seconds}", None))
        else:
            lines.append(
                (
                    "error" if event == "failed" else "warning",
                    f"node {node} {event}: {run.error if run else ''}",
                    None,
                )
            )
            if run is not None and run.result is None and run.traceback:
                lines.append(("traceback", run.traceback, None))
        self.lines(lines, node=node)

    def __enter__(self) -> JobLog:
        for name in JOB_LOG_LOGGERS:
            logging.getLogger(name).addHandler(self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for name in JOB_LOG_LOGGERS:
            logging.getLogger(name).removeHandler(self._handler)


class _JobLogHandler(logging.Handler):
    """Sends the records of the thread that runs a job to that job's log."""

    def __init__(self, log: JobLog) -> None:
        super().__init__(level=logging.INFO)
        self._log = log
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self._thread:
            return
        at = dt.datetime.fromtimestamp(record.created, dt.UTC).replace(tzinfo=None)
        message = f"[{record.name}] {record.getMessage()}"
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self._log.lines(_split_traceback(record.levelname.lower(), message, at))


# --------------------------------------------------------------------------------------------
# running one job


@dataclass
class JobOutcome:
    """What became of one job run by this worker."""

    job_id: int
    state: str  # done, failed, queued (to be retried), abandoned
    product_ids: list[int] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    workflow: str | None = None


ProgressCallback = Callable[[int, float, str], None]


def _node_error(runs: dict[str, NodeRun]) -> str:
    failed = [(name, run) for name, run in runs.items() if run.status == "failed"]
    return "; ".join(f"node {name}: {run.error}" for name, run in failed) or "workflow failed"


def _workflow_log(runs: dict[str, NodeRun]) -> str:
    lines = []
    for name, run in runs.items():
        lines.append(f"== node {name}: {run.status}" + (f" ({run.error})" if run.error else ""))
        if run.result is not None:
            lines.extend(run.result.log)
        elif run.traceback:
            lines.append(run.traceback)
    return "\n".join(lines)


def _product_specs(
    job: jq.JobInfo, runs: dict[str, NodeRun], staging: Path, final: Path, target: str | None
) -> list[prod.ProductSpec]:
    """Product specs of every node of a successful run, for the directory ``final`` where
    ``staging`` will be published.

    Everything is prepared before publishing: the provenance records are rewritten to the
    final paths and saved in the staging folder, and every file is hashed there. Publishing
    and registering then follow each other at once, which keeps the window in which a crash
    leaves published but unregistered results (swept on the next start) to a rename and a
    commit.
    """
    specs = []
    for name, run in runs.items():
        result = run.result
        if result is None or result.provenance is None:
            continue
        record = prod.relocate_record(result.provenance.model_dump(mode="json"), staging, final)
        # the saved record must show where the files will be (the run wrote staging paths)
        (staging / name / "provenance.json").write_text(json.dumps(record, indent=2))
        files, hashes = [], {}
        for spec in prod.collect_files(staging / name, result.outputs):
            moved = final / spec.path.relative_to(staging)
            files.append(prod.FileSpec(moved, spec.role))
            hashes[str(moved)] = (sha256_file(spec.path), spec.path.stat().st_size)
        outputs = prod.relocate_value(result.outputs, staging, final)
        # the recipe declares what its product is (hcdc.pipeline.recipe.Recipe.product_kind)
        level, product_type = get_recipe(result.recipe, result.version).product_kind()
        lineage = (
            prod.dataset_lineage(job.dataset_id, product_type)
            if job.dataset_id is not None
            else prod.inputs_lineage(record, product_type)
        )
        summary = outputs.get("summary") if isinstance(outputs.get("summary"), dict) else None
        if summary is not None and summary.get("variant"):
            # a complementary product (e.g. frames selected): its own lineage next to the
            # unselected one, so neither supersedes the other
            lineage = prod.variant_lineage(lineage, str(summary["variant"]))
        specs.append(
            prod.ProductSpec(
                lineage=lineage,
                recipe=result.recipe,
                recipe_version=result.version,
                record=record,
                storage_dir=final / name,
                files=files,
                level=level,
                product_type=product_type,
                dataset_id=job.dataset_id,
                target=target,
                job_id=job.id,
                node=name,
                workflow=record.get("workflow"),
                workflow_version=record.get("workflow_version"),
                summary=json.loads(json.dumps(summary, default=str)) if summary is not None else None,
                hashes=hashes,
            )
        )
    return specs


def execute_job(
    catalogue: Catalogue,
    job: jq.JobInfo,
    worker_id: str,
    executor: Executor,
    *,
    lease_s: float = jq.DEFAULT_LEASE_S,
    on_progress: ProgressCallback | None = None,
) -> JobOutcome:
    """Run one claimed job to its end (see the module docstring); never raises for job errors."""
    t0 = time.perf_counter()
    engine = catalogue.engine
    job_dir = catalogue.storage_root / prod.PRODUCTS_DIR / f"job-{job.id}"
    staging = job_dir / f"attempt-{job.attempts}.tmp"
    final = job_dir / f"attempt-{job.attempts}"
    outcome = JobOutcome(job.id, "failed")

    def report(fraction: float, stage: str) -> None:
        beat.progress, beat.stage = fraction, stage
        if on_progress is not None:
            on_progress(job.id, fraction, stage)

    jlog = JobLog(engine, job.id, job.attempts)
    with _Heartbeat(catalogue, job.id, worker_id, lease_s) as beat, jlog:
        try:
            jlog.write("info", f"attempt {job.attempts} of {job.max_attempts} started")
            # what earlier attempts of this job left unregistered (killed before or after
            # publishing): this worker holds the lease, so nothing else writes there
            sweep_product_orphans(engine, catalogue.storage_root, job_id=job.id)
            fault_point("worker.before_run")
            prod.staging_dir(catalogue.storage_root, f"job-{job.id}/attempt-{job.attempts}")
            workflow, inputs, target = _job_inputs(catalogue, job)
            outcome.workflow = workflow.name
            n_inputs = sum(len(v) if isinstance(v, list) else 1 for v in inputs.values())
            jlog.write("info", f"workflow {workflow.name} {workflow.version}: {n_inputs} input file(s)")
            total = len(workflow.order)
            finished: list[str] = []

            def on_event(node: str, event: str, _run: NodeRun | None) -> None:
                if event == "submitted":
                    jlog.write("info", f"node {node} submitted", node=node)
                    report(len(finished) / total, f"{workflow.name}: {node} running")
                else:
                    jlog.node_ended(node, event, _run)  # committed before anything can kill us
                    finished.append(node)
                    fault_point("worker.during_run")
                    report(len(finished) / total, f"{workflow.name}: {node} {event}")
                    beat.beat()  # record node completions at once, and learn of a cancel
                    if beat.lost.is_set():
                        raise JobAbandoned(f"job {job.id} is no longer held by {worker_id}")

            report(0.0, f"{workflow.name}: starting")
            result = run_workflow(
                workflow, inputs, job.parameters, work_dir=staging, executor=executor, on_event=on_event
            )
            log = _workflow_log(result.nodes)
            if beat.lost.is_set():
                raise JobAbandoned(f"job {job.id} is no longer held by {worker_id}")
            if result.status != "done":
                error = _node_error(result.nodes)
                retry = any(marker in error for marker in _INFRASTRUCTURE_ERRORS)
                outcome.state = (
                    jq.fail_job(engine, job.id, worker_id, error, log=log, retry=retry) or "abandoned"
                )
                outcome.error = error
                again = "; re-queued for another attempt" if outcome.state == "queued" else ""
                jlog.write("error", f"failed: {error}{again}")
                return outcome
            specs = _product_specs(job, result.nodes, staging, final, target)
            prod.publish_directory(staging, final, catalogue.settings.resolved_file_mode)
            fault_point("worker.after_publish")
            summary = result.summary()
            summary["outputs"] = _relocate_strings(summary["outputs"], str(staging), str(final))

            def complete(conn: Connection, product_ids: list[int]) -> None:
                summary["product_ids"] = product_ids
                if not jq.complete_job(engine, job.id, worker_id, log=log, summary=summary, conn=conn):
                    raise JobAbandoned(f"job {job.id} is no longer held by {worker_id}")
                # a reduction requested by an account lands in that account's workspace
                accounts.place_job_products(conn, job.id, product_ids)
                if job.dataset_id is None:  # made from archived files (an OIFITS fit): R17
                    prod.link_product_sources(
                        conn, product_ids, _input_paths(job.inputs), catalogue.storage_root
                    )
                fault_point("worker.during_register")  # rows written, not committed

            report(1.0, f"{workflow.name}: registering products")
            outcome.product_ids = prod.register_products(
                engine, specs, catalogue.storage_root, within=complete
            )
            outcome.state = "done"
            jlog.write(
                "info", f"done: product(s) {', '.join(map(str, outcome.product_ids)) or 'none'} registered"
            )
            report(1.0, "done")
        except JobAbandoned as exc:
            outcome.state, outcome.error = "abandoned", str(exc)
            jlog.write("warning", "abandoned: the job was cancelled or taken over by another worker")
            if final.exists() and not outcome.product_ids:  # published, then lost the job
                shutil.rmtree(final, ignore_errors=True)
        except (InputError, WorkflowError, RecipeError, ProvenanceError, LookupError) as exc:
            outcome.error = f"{type(exc).__name__}: {exc}"
            jlog.lines(
                [("error", f"failed: {outcome.error}", None), ("traceback", traceback.format_exc(), None)]
            )
            outcome.state = jq.fail_job(
                engine, job.id, worker_id, outcome.error, log=traceback.format_exc()
            ) or ("abandoned")
        except Exception as exc:  # noqa: BLE001 - machinery failure: record it, retry the job
            outcome.error = f"{type(exc).__name__}: {exc}"
            jlog.lines(
                [
                    ("error", f"machinery failure: {outcome.error}", None),
                    ("traceback", traceback.format_exc(), None),
                ]
            )
            outcome.state = (
                jq.fail_job(engine, job.id, worker_id, outcome.error, log=traceback.format_exc(), retry=True)
                or "abandoned"
            )
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            outcome.seconds = round(time.perf_counter() - t0, 3)
    return outcome


# the published value paths are strings in the summary: relocate strings too
def _relocate_strings(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str) and (value == old or value.startswith(old + "/")):
        return new + value[len(old) :]
    if isinstance(value, list):
        return [_relocate_strings(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _relocate_strings(v, old, new) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# the worker loop


class Worker:
    """Executes queued jobs of a data centre.

    ``processes``: 0 runs the workflow nodes inline in this process, N >= 1 in a local pool of
    N processes; ``scheduler``: the address of a Dask scheduler (``tcp://host:8786``), whose
    workers run the nodes instead. ``executor`` overrides both (e.g. a ``DaskExecutor`` on a
    LocalCluster or a dask-jobqueue cluster).
    """

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        processes: int = 1,
        scheduler: str | None = None,
        executor: Executor | None = None,
        lease_s: float = jq.DEFAULT_LEASE_S,
        worker_id: str | None = None,
        on_progress: ProgressCallback | None = None,
        on_job: Callable[[jq.JobInfo], None] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.lease_s = lease_s
        self.worker_id = worker_id or jq.new_worker_id()
        self.on_progress = on_progress
        self.on_job = on_job
        self._own_executor = executor is None
        self._last_sweep: float | None = None
        if executor is not None:
            self.executor = executor
        elif scheduler:
            self.executor = make_executor("dask", address=scheduler)
        elif processes <= 0:
            self.executor = InlineExecutor()
        else:
            self.executor = make_executor("process", workers=processes)

    def close(self) -> None:
        if self._own_executor:
            self.executor.close()

    def sweep(self) -> list[Path]:
        """Clear what killed workers left behind: re-queue (or fail, out of attempts) the jobs
        whose lease expired, then remove the results folders no running attempt or registered
        product accounts for (:func:`hcdc.archive.fsck.sweep_product_orphans`, one log line
        each). Run when the worker starts and, at most every :data:`SWEEP_INTERVAL_S`, when idle."""
        self._last_sweep = time.monotonic()
        jq.requeue_expired(self.catalogue.engine)
        return sweep_product_orphans(self.catalogue.engine, self.catalogue.storage_root)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run_one(self, ids: Sequence[int] | None = None) -> JobOutcome | None:
        """Claim and run one job (among ``ids`` when given); None when nothing is queued."""
        if self._last_sweep is None:
            self.sweep()
        job = jq.claim_job(self.catalogue.engine, self.worker_id, lease_s=self.lease_s, ids=ids)
        if job is None:
            if time.monotonic() - self._last_sweep >= SWEEP_INTERVAL_S:
                self.sweep()
            return None
        if self.on_job is not None:
            self.on_job(job)
        return execute_job(
            self.catalogue,
            job,
            self.worker_id,
            self.executor,
            lease_s=self.lease_s,
            on_progress=self.on_progress,
        )

    def run(
        self,
        *,
        once: bool = False,
        ids: Sequence[int] | None = None,
        poll_s: float = 2.0,
        stop: threading.Event | None = None,
    ) -> list[JobOutcome]:
        """Run jobs until the queue is empty (``once``) or until ``stop`` is set.

        Without ``once`` the worker waits for new jobs, polling every ``poll_s`` seconds.
        """
        outcomes = []
        while stop is None or not stop.is_set():
            outcome = self.run_one(ids)
            if outcome is not None:
                outcomes.append(outcome)
                continue
            if once:
                break
            if stop is not None:
                stop.wait(poll_s)
            else:
                time.sleep(poll_s)
        return outcomes


# --------------------------------------------------------------------------------------------
# queueing reductions


def _workflow_for_dataset(dataset: Any) -> Workflow:
    """The standard workflow for a dataset row, from its instrument, arm and mode."""
    probe = SimpleNamespace(
        instrument=dataset.instrument, arm=dataset.arm, mode=dataset.mode, file_class="SCIENCE"
    )
    return select_workflow([probe])


def dataset_workflows(
    conn: Connection, dataset_ids: Sequence[int], workflow: str | None = None
) -> dict[int, Workflow]:
    """The workflow that will reduce each dataset: ``workflow`` when given, else the standard
    one for the dataset's classification. Raises :class:`LookupError` for an unknown dataset
    and :class:`WorkflowError` naming a dataset no workflow serves."""
    rows = {r.id: r for r in conn.execute(select(Dataset).where(Dataset.id.in_(list(dataset_ids))))}
    missing = [d for d in dataset_ids if d not in rows]
    if missing:
        raise LookupError(f"no dataset with id {', '.join(map(str, missing))}")
    if workflow is not None:
        chosen = get_workflow(workflow)
        return dict.fromkeys(dataset_ids, chosen)
    out = {}
    for dataset_id in dataset_ids:
        try:
            out[dataset_id] = _workflow_for_dataset(rows[dataset_id])
        except WorkflowError as exc:
            raise WorkflowError(f"dataset {dataset_id} ({rows[dataset_id].key}): {exc}") from None
    return out


def queue_datasets(
    catalogue: Catalogue,
    dataset_ids: Sequence[int],
    *,
    workflow: str | None = None,
    parameters: Sequence[str] = (),
    max_attempts: int = jq.DEFAULT_MAX_ATTEMPTS,
) -> list[int]:
    """Queue one reduction job per dataset; returns the job ids.

    The workflow (given, or chosen from each dataset's classification) is checked before
    anything is queued (:func:`dataset_workflows`), so a dataset no workflow serves is an error
    naming it. :func:`hcdc.pipeline.operations.batches.submit_batch` queues them as one batch.
    """
    with catalogue.engine.connect() as conn:
        dataset_workflows(conn, dataset_ids, workflow)
    return [
        jq.queue_job(
            catalogue.engine,
            dataset_id=dataset_id,
            workflow=workflow,
            parameters=parameters,
            max_attempts=max_attempts,
        )
        for dataset_id in dataset_ids
    ]


def ready_datasets(catalogue: Catalogue, *, settle_s: float = 0.0) -> list[int]:
    """Datasets to reduce automatically: science OBJECT files present, associated with no
    required calibration missing, unchanged for ``settle_s`` seconds, a standard workflow
    serves them, and no job (in any state) exists for them yet."""
    cutoff = utcnow() - dt.timedelta(seconds=settle_s)
    with catalogue.engine.connect() as conn:
        # any job, whatever its state: a failed or cancelled reduction is for a person to
        # retry ('hcdc jobs --retry'), not for the watcher to queue again at every poll
        has_job = select(Job.dataset_id).where(Job.dataset_id.is_not(None))
        missing = select(MissingCalibration.dataset_id).where(MissingCalibration.required)
        rows = conn.execute(
            select(Dataset)
            .where(
                Dataset.associated_at.is_not(None),
                Dataset.updated_at <= cutoff,
                Dataset.id.not_in(has_job),
                Dataset.id.not_in(missing),
            )
            .order_by(Dataset.id)
        ).all()
    ready = []
    for row in rows:
        if not (row.role_counts or {}).get("OBJECT"):
            continue
        try:
            _workflow_for_dataset(row)
        except WorkflowError:
            continue  # no standard workflow for this mode (yet): leave it to a person
        ready.append(row.id)
    return ready


__all__ = [
    "InputError",
    "JobAbandoned",
    "JobOutcome",
    "Worker",
    "dataset_files",
    "dataset_workflows",
    "JobLog",
    "execute_job",
    "recipe_log_lines",
    "queue_datasets",
    "ready_datasets",
]
