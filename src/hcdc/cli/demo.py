"""``hcdc demo DIR``: the main job end to end on the embedded default
(see :mod:`hcdc.pipeline.operations.demo`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hcdc.cli.output import console, emit_json, err_console, print_table, progress_bar


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _truth_text(det: dict[str, Any]) -> str:
    """The injected companion a detection matches, or why there is none."""
    if det.get("true_separation_mas") is None:
        return "no injected companion here"
    return f"{det['true_separation_mas']:.0f} mas / {det['true_pa_deg']:.1f} deg / {det['true_contrast']:.2g}"


def _print_report(report: Any) -> None:
    console.print(
        f"[bold]hcdc data centre[/] in {report.root}  (catalogue: {report.database})", highlight=False
    )
    print_table(
        "Catalogue: raw files by DPR TYPE",
        ["type", "files"],
        [{"type": t, "files": n} for t, n in report.files_by_class.items()],
    )
    rows = []
    for view in report.associations:
        rows.append(
            {
                "dataset": f"{view['dataset_id']}: {view['dataset']}",
                "calibrations": ", ".join(sorted({c["need"] for c in view["chosen"]})) or "-",
                "missing": ", ".join(m["need"] for m in view["missing"]) or "none",
                "warnings": len(view["warnings"]),
            }
        )
    print_table(
        "Datasets and calibration associations", ["dataset", "calibrations", "missing", "warnings"], rows
    )
    print_table(
        "Jobs",
        ["id", "dataset_id", "state", "attempts", "error"],
        [{**j, "error": (j.get("error") or "")[:60]} for j in report.jobs],
    )
    print_table(
        "Products (current versions)",
        ["id", "level", "type", "dataset_id", "version", "recipe", "storage_dir"],
        report.products,
    )
    det_rows = [
        {
            "product": d["product_id"],
            "filter": d.get("filter") or "-",
            "sep_mas": _fmt(d.get("separation_mas"), 4),
            "pa_deg": _fmt(d.get("pa_deg"), 4),
            "snr": _fmt(d.get("snr")),
            "contrast": _fmt(d.get("contrast")),
            "true sep/pa/contrast": _truth_text(d),
        }
        for d in report.detections
    ]
    print_table(
        "Detections (Level 2) next to the injected truth",
        ["product", "filter", "sep_mas", "pa_deg", "snr", "contrast", "true sep/pa/contrast"],
        det_rows,
    )
    if report.irdifs:
        irdifs_rows = [
            {
                "arm": f"{arm['arm']} {arm['mode']} (dataset {arm['dataset_id']})",
                "sep_mas": _fmt(d.get("separation_mas"), 4),
                "pa_deg": _fmt(d.get("pa_deg"), 4),
                "snr": _fmt(d.get("snr")),
                "contrast": _fmt(d.get("contrast")),
                "true sep/pa/contrast": _truth_text(d),
            }
            for arm in report.irdifs
            for d in arm["detections"]
        ]
        print_table(
            "IRDIFS night: IRDIS and IFS detections (Level 2) next to the injected truth",
            ["arm", "sep_mas", "pa_deg", "snr", "contrast", "true sep/pa/contrast"],
            irdifs_rows,
        )
    previews = [p for prod in report.products for p in (prod.get("previews") or [])]
    if previews:
        console.print("[bold]PNG previews[/]:", highlight=False)
        for path in previews:
            console.print(f"  {path}", highlight=False)
    console.print(
        f"Explore it: hcdc --help; e.g. 'hcdc files --root {report.root}', "
        f"'hcdc products --root {report.root}', 'hcdc provenance ID --root {report.root}'",
        highlight=False,
    )


def demo_command(
    directory: Path = typer.Argument(Path("hcdc-demo"), help="Directory of the demo data centre."),
    seed: int = typer.Option(2026, "--seed", help="Seed of the simulated nights."),
    scale: str = typer.Option("medium", "--scale", help="Simulated detector: small, medium or full."),
    processes: int = typer.Option(1, "--processes", min=0, help="Local worker processes (0 = inline)."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    serve: bool = typer.Option(False, "--serve", help="Then serve it (portal + API) until Ctrl-C."),
    port: int = typer.Option(8000, "--port", help="Port of --serve (on 127.0.0.1)."),
    irdifs: bool = typer.Option(
        False, "--irdifs", help="Also an IRDIFS night (IRDIS DB_H23 + IFS YJ at once; adds minutes)."
    ),
) -> None:
    """Main job: simulate two nights of IRDIS raw data, ingest, associate, reduce to Level 2, report;
    with --irdifs also an IRDIFS night (IRDIS and IFS datasets, IFS to Level 3); with --serve, then
    serve the demo data centre at http://127.0.0.1:PORT/ with demo accounts."""
    from hcdc.pipeline.operations.demo import run_demo

    progress = progress_bar(disable=json_output or not err_console.is_terminal)
    bars: dict[int, Any] = {}

    def on_stage(text: str) -> None:
        if not json_output:
            err_console.print(f"[cyan]>>[/] {text}", highlight=False)

    def on_job_progress(job_id: int, fraction: float, stage: str) -> None:
        if job_id not in bars:
            bars[job_id] = progress.add_task(f"job {job_id}", total=100)
        progress.update(bars[job_id], completed=round(100 * fraction), description=f"job {job_id}: {stage}")

    from hcdc.cli.common import errors  # a data centre that cannot be used: one-line error

    with errors(), progress:
        report = run_demo(
            directory,
            seed=seed,
            scale=scale,
            processes=processes,
            irdifs=irdifs,
            on_stage=on_stage,
            on_job_progress=on_job_progress,
        )
    if json_output:
        emit_json(report.as_dict())
    else:
        _print_report(report)
    if any(j["state"] != "done" for j in report.jobs):
        raise typer.Exit(1)
    if serve:
        _serve_demo(directory, port)


def _serve_demo(directory: Path, port: int) -> None:
    from hcdc.archive.db import open_data_centre
    from hcdc.cli.web import serve
    from hcdc.web.demo import demo_accounts

    with open_data_centre(directory) as catalogue:
        rows = demo_accounts(catalogue)
    console.print(f"\n[bold]Portal[/]: http://127.0.0.1:{port}/  (Ctrl-C stops it)", highlight=False)
    print_table(
        "Demo accounts",
        ["name", "role", "password"],
        [dict(zip(("name", "role", "password"), r, strict=True)) for r in rows],
    )
    serve(host="127.0.0.1", port=port, workers=1, secure_cookies=False, root=directory)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
