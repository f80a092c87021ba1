"""Monitoring commands: ``hcdc monitor night DATE`` (the night's AO conditions and sequences).

Thin: the catalogue query is :func:`hcdc.archive.telemetry.night_overview` (what the acting
account may see), the figure :func:`hcdc.science.monitoring.night_plot.night_overview_png`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer

from hcdc.cli.common import JSON_OPTION, ROOT_OPTION, acting, fail
from hcdc.cli.output import console, emit_json, print_table

monitor_app = typer.Typer(help="Instrument and conditions monitoring (AO telemetry).", no_args_is_help=True)

AS_OPTION = typer.Option(
    None, "--as", help="See as this account (only files it may see are used); default: the local operator."
)


def _time(mjd: float | None) -> str:
    if mjd is None:
        return ""
    from astropy.time import Time

    return Time(mjd, format="mjd", scale="utc").isot[11:19]


def _fmt(value: float | None, scale: float = 1.0, digits: int = 2) -> str:
    return "" if value is None else f"{value * scale:.{digits}f}"


@monitor_app.command("night")
def night_command(
    night: str = typer.Argument(..., help="Night start date YYYY-MM-DD (the evening's date)."),
    png: Path | None = typer.Option(
        None, "--png", "--plot", help="Write the overview figure to this PNG file."
    ),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """A night's AO conditions (SPARTA seeing, tau0, Strehl) and its science sequences."""
    from hcdc.archive.telemetry import night_overview

    try:
        date = dt.date.fromisoformat(night)
    except ValueError:
        fail(f"night must be a date YYYY-MM-DD, got {night!r}")
    with acting(root, as_user, write=False) as (catalogue, conn, actor):
        overview = night_overview(conn, actor, date, catalogue.storage_root)
    if png is not None:
        from hcdc.science.monitoring.night_plot import night_overview_png

        night_overview_png(
            png,
            overview.series,
            overview.sequences,
            overview.ambient,
            title=f"SPHERE night {date.isoformat()}",
        )
    if json_out:
        payload = overview.to_dict()
        if png is not None:
            payload["png"] = str(png)
        emit_json(payload)
        return
    s = overview.summary()
    console.print(
        f"night {date.isoformat()}: {len(overview.telemetry_files)} SPARTA file(s), {s['samples']} valid "
        f'sample(s), {s["rejected_samples"]} rejected; median seeing {_fmt(s["seeing_median"])}" '
        f'(zenith {_fmt(s["seeing_zenith_median"])}"), tau0 {_fmt(s["tau0_median_s"], 1e3, 1)} ms, '
        f"Strehl {_fmt(s['strehl_median'])}",
        highlight=False,
    )
    print_table(
        "science sequences",
        ["dataset", "target", "mode", "filter", "start", "end", "files", "DIMM seeing"],
        [
            {
                "dataset": f"d{q['dataset_id']}",
                "target": q["target"] or "",
                "mode": q["mode"] or "",
                "filter": q["filter"] or "",
                "start": _time(q["mjd_start"]),
                "end": _time(q["mjd_end"]),
                "files": str(q["files"]),
                "DIMM seeing": _fmt(q["ambient_seeing"]),
            }
            for q in overview.sequences
        ],
    )
    for problem in overview.problems:
        console.print(f"warning: {problem}", highlight=False)
    if png is not None:
        console.print(f"figure: {png}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
