"""Archive commands: ``hcdc init / ingest / files / datasets / show / quarantine / associate / fsck``.

Every command except ``init`` works on an existing data centre, found from ``--root``,
``$HCDC_ROOT`` or the current directory. Tables go to stdout for people; ``--json`` prints the
same content as JSON for scripts; progress bars and errors go to stderr.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from hcdc.cli.common import (
    AS_OPTION,
    INSTRUMENT_OPTION,
    JSON_OPTION,
    LIMIT_OPTION,
    NIGHT_OPTION,
    ROOT_OPTION,
    TARGET_OPTION,
    errors,
    operating,
    parse_object_id,
    print_mapping,
    print_product,
    resolve_dataset,
    viewing,
)
from hcdc.cli.output import (
    cell,
    console,
    emit_json,
    err_console,
    escape_control,
    print_table,
    progress_bar,
)

if TYPE_CHECKING:
    from hcdc.archive.ingest import FileOutcome, IngestSummary
    from hcdc.archive.queries import Filters

#: Exit status of ``hcdc ingest`` when some files were quarantined (documented in its --help).
QUARANTINED_EXIT = 3


def _filters(night, instrument, type_, target, limit, all_versions: bool = False) -> Filters:  # noqa: ANN001
    from hcdc.archive.queries import Filters

    return Filters(
        night=night, instrument=instrument, type=type_, target=target, limit=limit, all_versions=all_versions
    )


# -- init ---------------------------------------------------------------------------------
def init_command(
    directory: Path = typer.Argument(Path("."), help="Directory of the new data centre."),
    database: str | None = typer.Option(
        None,
        "--database",
        help="SQLAlchemy URL of the catalogue, e.g. postgresql+psycopg://user@host/db "
        "(default: SQLite file inside DIRECTORY).",
    ),
    storage: Path | None = typer.Option(None, "--storage", help="File store (default: DIRECTORY/storage)."),
    force: bool = typer.Option(
        False, "--force", help="Create the data centre even though DIRECTORY already holds other files."
    ),
    json_output: bool = JSON_OPTION,
) -> None:
    """Create a data centre (storage root + catalogue + hcdc.toml), or upgrade its schema.

    On an existing data centre only the schema is upgraded: its hcdc.toml is kept as it is
    (changing its database or storage root is done by editing hcdc.toml, never by init). A
    password in --database is stored in DIRECTORY/hcdc.secret (mode 600), not in hcdc.toml.
    """
    from hcdc.archive.db import current_revision, init_data_centre

    with errors():
        catalogue = init_data_centre(directory, database_url=database, storage_root=storage, force=force)
    try:
        info = {
            "root": str(catalogue.settings.root),
            "database": catalogue.engine.url.render_as_string(hide_password=True),
            "storage_root": str(catalogue.storage_root),
            "schema_revision": current_revision(catalogue.engine),
        }
    finally:
        catalogue.close()
    if json_output:
        emit_json(info)
        return
    console.print(f"[green]data centre ready[/] in {info['root']}", highlight=False)
    for key in ("database", "storage_root", "schema_revision"):
        console.print(f"  {key}: {info[key]}", highlight=False)


# -- ingest -------------------------------------------------------------------------------
def _print_ingest_summary(summary: IngestSummary) -> None:
    rows = [
        {"outcome": "discovered", "files": summary.discovered},
        {"outcome": "ingested", "files": summary.ingested},
        {"outcome": "new versions", "files": summary.new_versions},
        {"outcome": "duplicates", "files": summary.duplicates},
        {"outcome": "quarantined", "files": summary.quarantined},
    ]
    rows += [
        {"outcome": f"  quarantined: {code}", "files": n}
        for code, n in sorted(summary.quarantine_reasons.items())
    ]
    rows.append({"outcome": "datasets updated", "files": summary.datasets_updated})
    print_table(
        f"Ingest summary ({summary.elapsed_s:.1f} s, {summary.workers} worker(s))", ["outcome", "files"], rows
    )
    if summary.quarantined_files:
        shown = summary.quarantined_files[:20]
        print_table("Quarantined", ["reason_code", "reason"], shown)
        if len(summary.quarantined_files) > len(shown):
            console.print(
                f"... and {len(summary.quarantined_files) - len(shown)} more: see 'hcdc quarantine'"
            )


def ingest_command(
    paths: list[Path] = typer.Argument(..., help="Files and folders (folders are searched recursively)."),
    copy: bool = typer.Option(
        False, "--copy", help="Copy the files into the storage root (default: by reference)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Processes reading files (default: one per core)."
    ),
    rehash: bool = typer.Option(
        False,
        "--rehash",
        help="Hash every file, even those unchanged (same size and mtime) since last ingest.",
    ),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Catalogue FITS/OIFITS files: hash, header, instrument, metadata; bad files are quarantined.

    Exit status: 0 when every file was catalogued (or already was), 3 when some files were
    quarantined (the others are catalogued; see 'hcdc quarantine'), 1 when a path does not
    exist or the data centre cannot be used. --json reports the counts of each outcome.
    """
    with operating(root) as (_view, operator):
        progress = progress_bar(disable=not err_console.is_terminal)
        task: list[Any] = []

        def on_begin(total: int) -> None:
            progress.start()
            task.append(progress.add_task("ingest", total=total))

        def on_file(_outcome: FileOutcome) -> None:
            progress.advance(task[0])

        try:
            summary = operator.ingest(
                paths,
                copy=copy,
                workers=workers,
                rehash=rehash,
                on_begin=on_begin,
                on_file=on_file,
            )
        finally:
            progress.stop()
    for missing in summary.missing_paths:
        err_console.print(f"[bold red]error:[/] {cell(missing)}: no such file or directory", highlight=False)
    if json_output:
        emit_json(summary.as_dict())
    else:
        _print_ingest_summary(summary)
    if summary.missing_paths:
        raise typer.Exit(1)
    if summary.quarantined:
        raise typer.Exit(QUARANTINED_EXIT)


# -- listing ------------------------------------------------------------------------------
def files_command(
    night: str | None = NIGHT_OPTION,
    instrument: str | None = INSTRUMENT_OPTION,
    type_: str | None = typer.Option(None, "--type", help="DPR TYPE, e.g. OBJECT, OBJECT,CENTER, DARK."),
    target: str | None = TARGET_OPTION,
    limit: int = LIMIT_OPTION,
    all_versions: bool = typer.Option(False, "--all-versions", help="Include superseded versions."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List catalogued files."""
    from hcdc.archive.queries import FILE_LIST_COLUMNS

    with viewing(root, as_user) as (_, view):  # the shell's operator sees everything (R1)
        rows = view.list_files(_filters(night, instrument, type_, target, limit, all_versions))
    if json_output:
        emit_json(rows)
    else:
        print_table(f"Files ({len(rows)})", FILE_LIST_COLUMNS, rows)


def datasets_command(
    night: str | None = NIGHT_OPTION,
    instrument: str | None = INSTRUMENT_OPTION,
    type_: str | None = typer.Option(None, "--type", help="Datasets holding a file of this DPR TYPE."),
    target: str | None = TARGET_OPTION,
    limit: int = LIMIT_OPTION,
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List datasets (science files grouped into observations)."""
    from hcdc.archive.queries import DATASET_LIST_COLUMNS

    with viewing(root, as_user) as (_, view):  # the shell's operator sees everything (R1)
        rows = view.list_datasets(_filters(night, instrument, type_, target, limit))
    if json_output:
        emit_json(rows)
    else:
        print_table(f"Datasets ({len(rows)})", DATASET_LIST_COLUMNS, rows)


def quarantine_command(
    reason: str | None = typer.Option(
        None, "--reason", help="Only this reason code (unreadable, invalid-metadata, ...)."
    ),
    limit: int = LIMIT_OPTION,
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """List quarantined files with the reason each could not be catalogued."""
    from hcdc.archive.queries import QUARANTINE_LIST_COLUMNS

    with operating(root) as (_view, operator):
        rows = operator.quarantine(reason, limit)
    if json_output:
        emit_json(rows)
    else:
        print_table(f"Quarantine ({len(rows)})", QUARANTINE_LIST_COLUMNS, rows)


# -- fsck ---------------------------------------------------------------------------------
def fsck_command(
    repair: bool = typer.Option(
        False,
        "--repair",
        help="Remove orphans; copy damaged or missing copied files again from their origin.",
    ),
    checksums: bool = typer.Option(
        True, "--checksums/--no-checksums", help="Hash every file (reads the whole archive)."
    ),
    grace: float = typer.Option(
        3600.0,
        "--grace",
        min=0.0,
        help="Storage entries whose writer cannot be identified count as in progress while younger, s.",
    ),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Check storage against the catalogue: orphans, missing files, checksum mismatches, duplicates.

    Exit status 0 when the store is clean (after --repair: when everything found was repaired),
    1 when problems remain.
    """
    with operating(root) as (_view, operator):
        report = operator.fsck(repair=repair, checksums=checksums, grace_s=grace)
    if json_output:
        emit_json(report.as_dict())
    else:
        if report.problems:
            rows = [
                {"kind": p.kind, "path": p.path, "detail": p.detail, "repaired": "yes" if p.repaired else ""}
                for p in report.problems
            ]
            print_table(f"Problems ({len(rows)})", ["kind", "path", "detail", "repaired"], rows)
        counts = ", ".join(f"{n} {kind}" for kind, n in report.counts().items())
        console.print(
            f"{report.raw_files} raw files, {report.product_files} product files checked"
            f"{'' if report.checksums_verified else ' (checksums not verified)'}; {counts}; "
            f"{len(report.in_progress)} in progress; " + ("clean" if report.clean else "NOT clean"),
            highlight=False,
        )
    if not report.clean:
        raise typer.Exit(1)


def show_command(
    object_id: str = typer.Argument(
        ..., metavar="ID", help="File id (12 or f12), dataset id (d3) or product id (p5)."
    ),
    header: bool = typer.Option(False, "--header", help="Include the full primary header (files)."),
    json_output: bool = JSON_OPTION,
    as_user: str | None = AS_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Show one file (metadata, versions, location; header with --header), dataset or product."""
    with viewing(root, as_user) as (_, view):
        kind, number = parse_object_id(object_id)
        if kind == "file":
            detail = view.file_detail(number, with_header=header)
        elif kind == "dataset":
            detail = view.dataset_detail(number)
        else:
            detail = view.product_detail(number)
    if json_output:
        emit_json(detail)
        return
    if kind == "product":
        print_product(number, detail)
    elif kind == "file":
        print_mapping(f"File {number}", detail, skip=("header", "versions", "extra"))
        if detail.get("extra"):
            print_mapping("extra", detail["extra"])
        print_table("Versions", ["id", "version", "is_current", "sha256", "ingested_at"], detail["versions"])
        if header:
            console.print(
                "\n".join(escape_control(card) for card in detail["header"]), highlight=False, markup=False
            )
    else:
        print_mapping(f"Dataset {number}", detail, skip=("files", "association"))
        print_table("Files", ["id", "name", "role", "type", "date_obs", "dit", "ndit"], detail["files"])
        if detail["association"]:
            _print_association(detail["association"])


# -- associate ----------------------------------------------------------------------------
def _print_association(view: dict[str, Any]) -> None:
    title = f"Dataset {view['dataset_id']}: {view['dataset']}"
    print_table(title, ["need", "kind", "file_id", "file", "dit", "delta_hours", "fallback"], view["chosen"])
    for warning in view["warnings"]:
        console.print(f"  [yellow]warning:[/] {warning}", highlight=False)


def associate_command(
    dataset: str | None = typer.Argument(None, help="Dataset id or key (default: every dataset)."),
    window_days: float | None = typer.Option(
        None,
        "--window-days",
        min=0.0,
        help="Consider calibrations within this many nights of the dataset's night (default 30).",
    ),
    json_output: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
) -> None:
    """Choose calibrations for science datasets, store them, report what is missing."""
    from hcdc.archive.associations import DEFAULT_WINDOW_DAYS

    if window_days is None:
        window_days = DEFAULT_WINDOW_DAYS
    with operating(root) as (view, operator):
        ids = [resolve_dataset(view, dataset)] if dataset else None
        views = operator.associate(ids, window_days=window_days)
    missing = [
        {"dataset_id": v["dataset_id"], "dataset": v["dataset"], "need": m["need"], "reason": m["reason"]}
        for v in views
        for m in v["missing"]
    ]
    optional = [
        {"dataset_id": v["dataset_id"], "dataset": v["dataset"], "need": m["need"], "reason": m["reason"]}
        for v in views
        for m in v.get("optional_missing", [])
    ]
    if json_output:
        emit_json({"datasets": views, "missing": missing, "optional_missing": optional})
        return
    if not views:
        console.print("no datasets: ingest science files first")
        return
    for view in views:
        _print_association(view)
    if optional:
        print_table("Optional calibrations not found", ["dataset_id", "dataset", "need", "reason"], optional)
    if missing:
        print_table("Missing calibrations", ["dataset_id", "dataset", "need", "reason"], missing)
    else:
        console.print("[green]every dataset has all the calibrations it needs[/]")


COMMANDS: dict[str, Callable[..., None]] = {
    "init": init_command,
    "ingest": ingest_command,
    "files": files_command,
    "datasets": datasets_command,
    "show": show_command,
    "quarantine": quarantine_command,
    "fsck": fsck_command,
    "associate": associate_command,
}


def register(app: typer.Typer) -> None:
    """Add the archive commands to the ``hcdc`` application."""
    for name, function in COMMANDS.items():
        app.command(name)(function)
