"""Batch and job-log commands: ``hcdc batch list|show|cancel|retry`` and ``hcdc job log``.

A batch is what one ``hcdc reduce`` over several datasets (or the portal's "reduce every dataset
of target X / night Y", ``POST /api/v1/batches``) queued. Reads go through the catalogue facade
as the account ``--as`` names sees them (default: the shell's operator, who sees everything);
cancel and retry are decided by :mod:`hcdc.archive.access` (A11) and audited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hcdc.cli.common import AS_OPTION, JSON_OPTION, ROOT_OPTION, fail, print_mapping, viewing
from hcdc.cli.output import console, emit_json, err_console, print_table

batch_app = typer.Typer(help="Batches of jobs: list, show, cancel, retry.", no_args_is_help=True)
job_app = typer.Typer(help="One job: its log.", no_args_is_help=True)

BATCH_COLUMNS = ["id", "label", "owner", "created_at", "state", "jobs", "done", "failed", "progress"]
JOB_COLUMNS = ["id", "dataset_id", "workflow", "state", "progress", "stage", "attempts", "error"]


def _batch_row(b: dict[str, Any]) -> dict[str, Any]:
    return {
        **b,
        "owner": b.get("owner") or b.get("created_by"),
        "jobs": b["jobs_total"],
        "done": b["counts"]["done"],
        "failed": b["counts"]["failed"],
        "progress": f"{100 * b['progress']:.0f}%",
    }


@batch_app.command("list")
def batch_list(
    limit: int = typer.Option(50, "--limit", min=1, max=500, help="At most this many batches."),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List batches (newest first) with their state, job counts and progress."""
    with viewing(root, as_user) as (_, view):
        page = view.batches(limit=limit)
    if json_output:
        emit_json(page.as_dict())
        return
    print_table(f"Batches ({page.total})", BATCH_COLUMNS, [_batch_row(b) for b in page.rows])


@batch_app.command("show")
def batch_show(
    batch_id: int = typer.Argument(..., help="Batch id."),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """One batch: state, counts per job state, progress, and its jobs."""
    with viewing(root, as_user) as (_, view):
        batch = view.batch(batch_id)
    if json_output:
        emit_json(batch)
        return
    row = _batch_row(batch)
    row["counts"] = "  ".join(f"{k}: {v}" for k, v in batch["counts"].items())
    print_mapping(f"Batch {batch_id}", row, skip=("jobs", "done", "failed", "jobs_total"))
    jobs = [
        {
            **j,
            "workflow": j["workflow"] or "(auto)",
            "progress": f"{100 * j['progress']:.0f}%",
            "attempts": f"{j['attempts']}/{j['max_attempts']}",
        }
        for j in batch["jobs"]
    ]
    print_table("Jobs", JOB_COLUMNS, jobs)


def _act(action: str, batch_id: int, as_user: str | None, json_output: bool, root: Path | None) -> None:
    from hcdc.archive.access import AccessDenied
    from hcdc.pipeline.operations import batches as ops
    from hcdc.pipeline.operations.jobs import JobError

    with viewing(root, as_user) as (catalogue, view):
        try:
            if action == "cancel":
                changed = ops.cancel_batch(catalogue, view.user, batch_id)
            else:
                changed = ops.retry_batch(catalogue, view.user, batch_id)
        except (AccessDenied, JobError) as exc:
            fail(str(exc))
    if json_output:
        emit_json({"id": batch_id, "action": action, "jobs": changed})
        return
    done = "cancelled" if action == "cancel" else "re-queued"
    err_console.print(
        f"batch {batch_id}: {len(changed)} job(s) {done}"
        + (f": {', '.join(map(str, changed))}" if changed else ""),
        highlight=False,
    )


@batch_app.command("cancel")
def batch_cancel(
    batch_id: int = typer.Argument(..., help="Batch id."),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Cancel the queued and running jobs of a batch (running ones stop at their next heartbeat)."""
    _act("cancel", batch_id, as_user, json_output, root)


@batch_app.command("retry")
def batch_retry(
    batch_id: int = typer.Argument(..., help="Batch id."),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Re-queue the failed and cancelled jobs of a batch."""
    _act("retry", batch_id, as_user, json_output, root)


@job_app.command("log")
def job_log(
    job_id: int = typer.Argument(..., help="Job id."),
    after: int = typer.Option(0, "--after", min=0, help="Only lines after this line id."),
    as_user: str | None = AS_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """A job's log: the worker's lines, each node's recipe log, errors (tracebacks: staff only)."""
    with viewing(root, as_user) as (_, view):
        lines = view.job_log(job_id, after=after, limit=None)
    if json_output:
        emit_json({"job_id": job_id, "lines": lines})
        return
    for line in lines:
        where, level = line["node"] or "worker", line["level"].upper()
        console.print(
            f"{line['at']:%Y-%m-%d %H:%M:%S} #{line['attempt']} {where:<10} {level:<9} {line['message']}",
            highlight=False,
            markup=False,
        )


def register(app: typer.Typer) -> None:
    """Add ``hcdc batch`` and ``hcdc job`` to the ``hcdc`` application."""
    app.add_typer(batch_app, name="batch")
    app.add_typer(job_app, name="job")


__all__ = ["register"]
