"""Pipeline commands: ``hcdc workflows / run / reduce / jobs / worker / products / product /
provenance / rerun / watch``.

``workflows`` and ``run`` need no data centre; the others work on the data centre found from
``--root``, ``$HCDC_ROOT`` or the current directory. Tables go to stdout, ``--json`` prints
JSON for scripts, progress bars and errors go to stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hcdc.cli.common import (
    AS_OPTION,
    JSON_OPTION,
    ROOT_OPTION,
    fail,
    operating,
    print_mapping,
    print_product,
    resolve_dataset,
    viewing,
)
from hcdc.cli.output import console, emit_json, err_console, print_table, progress_bar

if TYPE_CHECKING:
    from hcdc.archive.catalogue import UserCatalogue
    from hcdc.pipeline.operations.catalogue import ProcessingCatalogue
    from hcdc.pipeline.operations.operator import OperatorCatalogue

PARAM_OPTION = typer.Option(
    None, "--param", "-p", help="Parameter override name=value or node.name=value (repeatable)."
)


@contextmanager
def _pipeline_errors() -> Iterator[None]:
    """Turn pipeline errors (bad parameters, unknown workflow, ...) into one-line messages."""
    from hcdc.pipeline.errors import RecipeError
    from hcdc.pipeline.operations.jobs import JobError
    from hcdc.pipeline.operations.worker import InputError
    from hcdc.pipeline.provenance import ProvenanceError
    from hcdc.pipeline.workflow import WorkflowError

    try:
        yield
    except (JobError, ProvenanceError, RecipeError, InputError, WorkflowError) as exc:
        fail(str(exc))


# -- workflows ----------------------------------------------------------------------------
def workflows_command(json_output: bool = JSON_OPTION) -> None:
    """List the standard workflows, the modes they serve and their parameters."""
    from hcdc.pipeline.registry import list_recipes
    from hcdc.pipeline.workflow import describe_workflows

    described = describe_workflows()
    recipes = [r.describe() for r in list_recipes()]
    if json_output:
        emit_json({"workflows": described, "recipes": recipes})
        return
    for wf in described:
        modes = ", ".join("/".join(str(p) for p in m) for m in wf["modes"]) or "(chosen by name)"
        console.print(f"[bold]{wf['name']}[/] {wf['version']}: {wf['description']}  [dim]modes: {modes}[/]")
        rows = [
            {
                "node": node["name"],
                "recipe": f"{node['recipe']} {node.get('recipe_version', '')}".strip(),
                "parameter": p["name"],
                "type": p.get("type"),
                "default": p.get("default"),
            }
            for node in wf["nodes"]
            for p in node["parameters"]
        ]
        print_table(f"{wf['name']} parameters", ["node", "recipe", "parameter", "type", "default"], rows)


# -- run ----------------------------------------------------------------------------------
def _parse_inputs(items: list[str]) -> dict[str, Any]:
    """``name=path`` items -> inputs; a repeated name or a comma list makes a list."""
    inputs: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise typer.BadParameter(f"--input {item!r} is not of the form name=path")
        name, value = item.split("=", 1)
        paths = [Path(v) for v in value.split(",") if v]
        if name in inputs:
            previous = inputs[name] if isinstance(inputs[name], list) else [inputs[name]]
            inputs[name] = previous + paths
        else:
            inputs[name] = paths if len(paths) > 1 else paths[0]
    return inputs


def run_command(
    recipe: str = typer.Argument(..., help="Recipe name (see 'hcdc workflows --json')."),
    inputs: list[str] = typer.Option(None, "--input", "-i", help="Input name=path (repeatable; folders ok)."),
    params: list[str] = PARAM_OPTION,
    out: Path = typer.Option(..., "--out", "-o", help="Output directory."),
    version: str | None = typer.Option(
        None, "--recipe-version", help="Exact recipe version (default newest)."
    ),
    json_output: bool = JSON_OPTION,
) -> None:
    """Run one recipe alone on files (no data centre needed); writes outputs + provenance.json."""
    from hcdc.pipeline.errors import RecipeFailed
    from hcdc.pipeline.ports import DataKind
    from hcdc.pipeline.registry import get_recipe

    with _pipeline_errors():
        recipe_cls = get_recipe(recipe, version)
        given = _parse_inputs(inputs or [])
        for port in recipe_cls.inputs:  # a raw-files input given as a folder: its FITS files
            value = given.get(port.name)
            if port.kind == DataKind.RAW_FILES and value is not None:
                values = value if isinstance(value, list) else [value]
                expanded = []
                for v in values:
                    expanded += sorted(v.glob("*.fits*")) if v.is_dir() else [v]
                given[port.name] = expanded
        try:
            result = recipe_cls().run(given, params or [], work_dir=out)
        except RecipeFailed as exc:
            exc.result.provenance.save(out / "provenance.json")
            fail(f"{exc} (log and provenance in {out / 'provenance.json'})")
            return
    result.provenance.save(out / "provenance.json")
    payload = {
        "recipe": f"{result.recipe} {result.version}",
        "status": result.status,
        "outputs": {k: str(v) if isinstance(v, Path) else v for k, v in result.outputs.items()},
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "provenance": str(out / "provenance.json"),
    }
    if json_output:
        emit_json(payload)
        return
    console.print(f"[green]{payload['recipe']} done[/] in {payload['timings_s'].get('total', 0):.1f} s")
    for name, value in payload["outputs"].items():
        if not isinstance(value, dict | list):
            console.print(f"  {name}: {value}", highlight=False)
    console.print(f"  provenance: {payload['provenance']}", highlight=False)


# -- reduce / jobs / worker ----------------------------------------------------------------
def _dataset_ids(view: UserCatalogue, dataset: str | None, night: str | None, all_: bool) -> list[int]:
    import datetime as dt

    chosen = sum(x is not None and x is not False for x in (dataset, night, all_ or None))
    if chosen != 1:
        raise typer.BadParameter("give exactly one of DATASET, --night N or --all")
    if dataset is not None:
        return [resolve_dataset(view, dataset)]
    try:
        day = None if night is None else dt.date.fromisoformat(night)
    except ValueError:
        raise typer.BadParameter(f"--night {night!r} is not a date YYYY-MM-DD") from None
    ids = view.find_datasets(night=day)
    if not ids:
        raise LookupError(
            "no dataset matches" + (f" night {night}" if night else "") + " (see 'hcdc datasets')"
        )
    return ids


def _follow(
    operator: OperatorCatalogue,
    view: ProcessingCatalogue,
    ids: list[int],
    processes: int,
    scheduler: str | None,
    quiet: bool,
) -> None:
    """Run the jobs ``ids`` in this process (those another worker holds are followed, as the
    queue of ``view`` says), with one progress bar per job."""
    from hcdc.pipeline.operations import jobs as jq

    progress = progress_bar(disable=quiet or not err_console.is_terminal)
    tasks = {job_id: progress.add_task(f"job {job_id}", total=100) for job_id in ids}

    def on_progress(job_id: int, fraction: float, stage: str) -> None:
        progress.update(tasks[job_id], completed=round(100 * fraction), description=f"job {job_id}: {stage}")

    with (
        progress,
        operator.worker(processes=processes, scheduler=scheduler, on_progress=on_progress) as worker,
    ):
        while True:
            if worker.run_one(ids) is not None:
                continue
            current = view.queue_entries(ids=ids, limit=None)
            for job in current:  # jobs run by other workers: show what the catalogue says
                progress.update(
                    tasks[job.id],
                    completed=round(100 * job.progress),
                    description=f"job {job.id}: {job.stage or job.state}",
                )
            if jq.all_finished(current):
                return
            time.sleep(1.0)


JOB_COLUMNS = ["id", "state", "dataset_id", "workflow", "progress", "stage", "attempts", "worker_id", "error"]


def _job_rows(jobs: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for job in jobs:
        row = job.as_dict()
        row["progress"] = f"{100 * job.progress:.0f}%"
        row["attempts"] = f"{job.attempts}/{job.max_attempts}"
        row["workflow"] = job.workflow or "(auto)"
        if row.get("error") and len(row["error"]) > 80:
            row["error"] = row["error"][:77] + "..."
        rows.append(row)
    return rows


def reduce_command(
    dataset: str | None = typer.Argument(None, help="Dataset id or key."),
    night: str | None = typer.Option(None, "--night", help="Every dataset of this night (YYYY-MM-DD)."),
    all_: bool = typer.Option(False, "--all", help="Every dataset."),
    workflow: str | None = typer.Option(
        None, "--workflow", "-w", help="Workflow (default: chosen per dataset)."
    ),
    params: list[str] = PARAM_OPTION,
    max_attempts: int = typer.Option(3, "--max-attempts", min=1, help="Attempts before a job is failed."),
    wait: bool = typer.Option(False, "--wait", help="Run the jobs here and follow them to the end."),
    processes: int = typer.Option(1, "--processes", min=0, help="With --wait: local processes (0 = inline)."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="With --wait: Dask scheduler address."),
    batch: bool | None = typer.Option(
        None, "--batch/--no-batch", help="Queue the jobs as one batch (default: when several datasets)."
    ),
    label: str | None = typer.Option(None, "--label", help="A name for the batch."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Queue reductions of datasets (jobs in the catalogue, several as one batch: 'hcdc batch');
    --wait runs and follows them."""
    from hcdc.pipeline.operations.batches import BatchError

    batch_id = None
    with operating(root) as (view, operator), _pipeline_errors():
        dataset_ids = _dataset_ids(view, dataset, night, all_)
        if batch or (batch is None and len(dataset_ids) > 1):
            what = {"night": night} if night else {"all": True} if all_ else {"datasets": dataset_ids}
            try:
                batch_id, ids = operator.submit_batch(
                    dataset_ids,
                    workflow=workflow,
                    parameters=params or [],
                    label=label,
                    selection=what,
                    max_attempts=max_attempts,
                )
            except BatchError as exc:
                fail(str(exc))
        else:
            ids = operator.queue_reductions(
                dataset_ids, workflow=workflow, parameters=params or [], max_attempts=max_attempts
            )
        if not json_output:
            in_batch = f" in batch {batch_id}" if batch_id is not None else ""
            err_console.print(
                f"queued {len(ids)} job(s){in_batch}: {', '.join(map(str, ids))}", highlight=False
            )
        if wait:
            _follow(operator, view, ids, processes, scheduler, quiet=json_output)
        jobs = view.queue_entries(ids=ids, limit=None)
    jobs.sort(key=lambda j: j.id)
    if json_output:
        emit_json({"batch_id": batch_id, "jobs": [j.as_dict() for j in jobs]})
    else:
        print_table("Jobs", JOB_COLUMNS, _job_rows(jobs))
    if wait and any(j.state != "done" for j in jobs):
        raise typer.Exit(1)


def jobs_command(
    state: str | None = typer.Option(None, "--state", help="queued, running, done, failed or cancelled."),
    job_id: int | None = typer.Option(None, "--id", help="One job, with its log."),
    cancel: int | None = typer.Option(None, "--cancel", help="Cancel this job."),
    retry: int | None = typer.Option(None, "--retry", help="Re-queue this failed or cancelled job."),
    limit: int = typer.Option(100, "--limit", help="At most this many jobs."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Show the jobs (newest first) with state, progress, attempts and errors."""
    with viewing(root) as (_, view), _pipeline_errors():
        if cancel is not None:
            done = view.job_action(cancel, "cancel")
            err_console.print(f"job {cancel} " + ("cancelled" if done else "had already finished"))
        if retry is not None:
            view.job_action(retry, "retry")
            err_console.print(f"job {retry} re-queued")
        if job_id is not None:
            _print_job(view.queue_entry(job_id), json_output)
            return
        jobs = view.queue_entries(state, limit=limit)
        counts = view.queue_counts()
    if json_output:
        emit_json({"counts": counts, "jobs": [j.as_dict() for j in jobs]})
        return
    print_table("Jobs", JOB_COLUMNS, _job_rows(jobs))
    console.print("  ".join(f"{k}: {v}" for k, v in counts.items()), highlight=False)


def _print_job(job: Any, json_output: bool) -> None:
    """One job of the queue (a ``JobInfo``), with its whole log."""
    if json_output:
        emit_json(job.as_dict(with_log=True))
        return
    print_mapping(f"Job {job.id}", job.as_dict(), skip=("summary",))
    if job.log:
        console.print(job.log, highlight=False, markup=False)


def worker_command(
    once: bool = typer.Option(False, "--once", help="Run the queued jobs, then exit (no waiting)."),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="Dask scheduler address (tcp://host:8786): run the work on that cluster."
    ),
    processes: int = typer.Option(1, "--processes", min=0, help="Local worker processes (0 = inline)."),
    lease: float = typer.Option(60.0, "--lease", min=1.0, help="Job lease, s (renewed every lease/4)."),
    poll: float = typer.Option(2.0, "--poll", min=0.1, help="Seconds between queue polls when idle."),
    root: Path | None = ROOT_OPTION,
) -> None:
    """Execute queued jobs (Ctrl-C to stop); several workers may share a PostgreSQL catalogue."""

    def on_job(job: Any) -> None:
        err_console.print(
            f"job {job.id} (attempt {job.attempts}/{job.max_attempts}) started", highlight=False
        )

    outcomes = []
    with operating(root) as (_view, operator), _pipeline_errors():
        with operator.worker(
            processes=processes, scheduler=scheduler, lease_s=lease, on_job=on_job
        ) as worker:
            err_console.print(f"worker {worker.worker_id} on {worker.executor!r}", highlight=False)
            try:
                while True:
                    outcome = worker.run_one()
                    if outcome is not None:
                        outcomes.append(outcome)
                        tail = f": {outcome.error}" if outcome.error else ""
                        err_console.print(
                            f"job {outcome.job_id} {outcome.state} in {outcome.seconds:.1f} s{tail}",
                            highlight=False,
                        )
                        continue
                    if once:
                        break
                    time.sleep(poll)
            except KeyboardInterrupt:
                err_console.print("interrupted: the running job's lease will expire and it will be retried")
    done = sum(o.state == "done" for o in outcomes)
    err_console.print(f"{len(outcomes)} job(s) run, {done} done", highlight=False)


# -- products / product / provenance / rerun ------------------------------------------------
PRODUCT_COLUMNS = [
    "id",
    "level",
    "type",
    "version",
    "current",
    "dataset_id",
    "target",
    "recipe",
    "job_id",
    "created_at",
]


def products_command(
    level: int | None = typer.Option(None, "--level", help="Data level (1, 2, ...)."),
    dataset: str | None = typer.Option(None, "--dataset", help="Dataset id or key."),
    product_type: str | None = typer.Option(None, "--type", help="Product type, e.g. level2-image."),
    target: str | None = typer.Option(None, "--target", help="Target name (substring)."),
    all_versions: bool = typer.Option(False, "--all-versions", help="Include superseded versions."),
    limit: int = typer.Option(200, "--limit", help="At most this many products."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List the catalogued products (current versions unless --all-versions)."""
    with viewing(root, as_user) as (_, view):
        dataset_id = resolve_dataset(view, dataset) if dataset else None
        rows = view.list_products(
            level=level,
            dataset_id=dataset_id,
            product_type=product_type,
            target=target,
            all_versions=all_versions,
            limit=limit,
        )
    if json_output:
        emit_json({"products": rows})
        return
    print_table("Products", PRODUCT_COLUMNS, rows)


def product_command(
    product_id: int = typer.Argument(..., metavar="ID", help="Product id."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Show one product: files (sha256), previews, versions, summary and provenance."""
    with viewing(root, as_user) as (_, view):
        detail = view.product_detail(product_id)
    if json_output:
        emit_json(detail)
        return
    print_product(product_id, detail)


def _print_tree(node: dict[str, Any], depth: int = 0) -> None:
    pad = "  " * depth
    if node.get("missing"):
        console.print(f"{pad}- run {node['id']} [red](not in the catalogue)[/]", highlight=False)
        return
    console.print(
        f"{pad}- product {node.get('product_id')}: {node['recipe']} {node['recipe_version']}"
        f" (node {node.get('node')}, {node['status']}, run {node['id'][:12]})",
        highlight=False,
    )
    for item in node.get("inputs", []):
        for f in item["files"]:
            ident = f" file {f['id']}" if f.get("id") is not None else ""
            console.print(
                f"{pad}    {item['name']}:{ident} {f['path']}  sha256 {f['sha256']}", highlight=False
            )
    for parent in node.get("parents", []):
        _print_tree(parent, depth + 1)


def provenance_command(
    product_id: int = typer.Argument(..., metavar="PRODUCT", help="Product id."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Show how a product was made: the tree of runs down to the raw files (with sha256)."""
    from hcdc.pipeline.operations.reruns import provenance_of_product

    with viewing(root, as_user) as (_, view):
        view.provenance_record(product_id)  # visible to the user (else: "no product with id")
        tree = provenance_of_product(view.conn, product_id)
    if json_output:
        emit_json(tree)
        return
    _print_tree(tree)


def rerun_command(
    product_id: int = typer.Argument(..., metavar="PRODUCT", help="Product id."),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Rebuild a product from its provenance alone into a new version; compare with the original."""
    with operating(root) as (_view, operator), _pipeline_errors():
        outcome = operator.rerun(product_id)
    payload = {
        "original": outcome.original_id,
        "product": outcome.product_id,
        "seconds": outcome.seconds,
        "identical_data": outcome.comparison["identical_data"],
        "comparison": outcome.comparison,
    }
    if json_output:
        emit_json(payload)
    else:
        console.print(
            f"product {product_id} rebuilt as product {outcome.product_id} in {outcome.seconds:.1f} s",
            highlight=False,
        )
        rows = [
            {
                "file": f["file"],
                "identical data": f.get("identical_data", f.get("identical_bytes")),
                "identical bytes": f.get("identical_bytes"),
            }
            for f in outcome.comparison["files"]
        ]
        print_table("Comparison with the original", ["file", "identical data", "identical bytes"], rows)
        verdict = "[green]identical data[/]" if payload["identical_data"] else "[red]the data differ[/]"
        console.print(verdict)
    if not payload["identical_data"]:
        raise typer.Exit(1)


# -- watch --------------------------------------------------------------------------------
def watch_command(
    folder: Path = typer.Argument(..., help="Folder where raw files arrive."),
    interval: float = typer.Option(30.0, "--interval", min=0.1, help="Seconds between polls."),
    once: bool = typer.Option(False, "--once", help="Poll once and exit (for cron / systemd timers)."),
    settle: float | None = typer.Option(
        None, "--settle", min=0.0, help="Queue a dataset once unchanged this long, s (default: one interval)."
    ),
    workflow: str | None = typer.Option(None, "--workflow", "-w", help="Workflow (default: per dataset)."),
    params: list[str] = PARAM_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Ingest new files as they arrive, associate calibrations, queue reductions of new datasets."""
    polls: list[dict[str, Any]] = []

    def on_poll(poll: Any) -> None:
        astrometry = getattr(poll, "astrometry", None)
        polls.append(poll.as_dict() | ({"astrometry": astrometry.as_dict()} if astrometry else {}))
        if astrometry is not None and (astrometry.queued or astrometry.recorded) and not json_output:
            err_console.print(
                f"astrometric fields: queued jobs {astrometry.queued or 'none'}, "
                f"recorded {len(astrometry.recorded)} measurement(s)",
                highlight=False,
            )
        if not json_output:
            err_console.print(
                f"ingested {poll.ingested} (+{poll.new_versions} versions, {poll.quarantined} quarantined, "
                f"{poll.new_calibrations} calibrations); associated {len(poll.associated)} dataset(s); "
                f"queued jobs {poll.queued_jobs or 'none'}, "
                f"calibration jobs {poll.calibration_jobs or 'none'}",
                highlight=False,
            )

    with operating(root) as (_view, operator), _pipeline_errors():
        try:
            # daily calibrations too: masters queued for calibration groups that are new or grew
            operator.watch(
                folder,
                interval_s=interval,
                once=once,
                settle_s=settle,
                workflow=workflow,
                parameters=params or [],
                on_poll=on_poll,
            )
        except KeyboardInterrupt:
            err_console.print("stopped")
    if json_output:
        emit_json({"polls": polls})


COMMANDS: dict[str, Callable[..., None]] = {
    "workflows": workflows_command,
    "run": run_command,
    "reduce": reduce_command,
    "jobs": jobs_command,
    "worker": worker_command,
    "products": products_command,
    "product": product_command,
    "provenance": provenance_command,
    "rerun": rerun_command,
    "watch": watch_command,
}


def register(app: typer.Typer) -> None:
    """Add the pipeline commands to the ``hcdc`` application."""
    for name, function in COMMANDS.items():
        app.command(name)(function)
