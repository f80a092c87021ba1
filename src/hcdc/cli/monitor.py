"""Monitoring commands: ``hcdc monitor night DATE`` (the night's AO conditions and sequences) and
``hcdc monitor frames PRODUCT`` (a Level 1 product's per-frame conditions, residual intensity
at ~10 lambda/D and their correlations), ``hcdc monitor products`` and ``hcdc monitor report``
(missing calibrations and bad conditions per night or period, :mod:`hcdc.archive.monitoring_report`).

Thin: the catalogue's answers come from its monitoring sub-facade (``view.monitoring``,
:mod:`hcdc.archive.catalogue_monitoring`: what the acting account may see), the figure
:func:`hcdc.science.monitoring.night_plot.night_overview_png`.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

import typer

from hcdc.cli.common import JSON_OPTION, ROOT_OPTION, fail, viewing
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
    try:
        date = dt.date.fromisoformat(night)
    except ValueError:
        fail(f"night must be a date YYYY-MM-DD, got {night!r}")
    with viewing(root, as_user) as (_catalogue, view):
        overview = view.monitoring.night(date)
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


def _product_id(text: str) -> int:
    from hcdc.cli.common import parse_object_id

    kind, number = parse_object_id(text if text.strip()[:1].isalpha() else f"p{text.strip()}")
    if kind != "product":
        fail(f"{text!r} is a {kind} id; give a Level 1 product (p12 or 12)")
    return number


#: conditions columns correlated with the residual intensity (name in output -> column)
_CORRELATED = {"wind": "WIND", "tau0": "TAU0", "strehl": "STREHL", "seeing": "SEEING"}


@monitor_app.command("frames")
def frames_command(
    product: str = typer.Argument(..., help="Level 1 product id (p12 or 12)."),
    radius_ld: float = typer.Option(10.0, "--radius-ld", help="Residual annulus centre, lambda/D."),
    width_ld: float = typer.Option(3.0, "--width-ld", help="Residual annulus width, lambda/D."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Per-frame AO conditions of a Level 1 product, the coronagraphic residual intensity at
    ~10 lambda/D, and how it correlates with wind, tau0, Strehl and seeing."""
    from hcdc.instruments.sphere.irdis.frame_conditions import read_conditions, residual_intensity
    from hcdc.science.monitoring.residuals import correlation

    product_id = _product_id(product)
    with viewing(root, as_user) as (_catalogue, view):
        folder = view.monitoring.product_conditions_dir(product_id)
    table = read_conditions(folder)
    if table is None:
        fail(f"product {product_id} has no CONDITIONS table (reduced before level1-irdis 1.1?)")
    try:
        residual, annulus = residual_intensity(folder, radius_ld, width_ld)
    except ValueError as exc:
        fail(f"product {product_id}: {exc}")
    correlations = {name: correlation(residual, table[col]).as_dict() for name, col in _CORRELATED.items()}
    interval = float(table.meta["AO_DT"]) if table.meta.get("AO_DT", -1.0) > 0 else None  # -1: no samples
    columns = ["MJD", "STREHL", "SEEING", "TAU0", "WIND", "R0", "DTTS_FLUX", "NO_TELEMETRY"]
    if json_out:
        rows = [
            {c.lower(): (bool(r[c]) if c == "NO_TELEMETRY" else _finite(r[c])) for c in columns}
            | {"residual": _finite(v)}
            for r, v in zip(table, residual, strict=True)
        ]
        emit_json(
            {
                "product_id": product_id,
                "sampling_interval_s": interval,
                "annulus": annulus,
                "frames": rows,
                "correlation_with_residual": correlations,
            }
        )
        return
    print_table(
        f"product p{product_id}: per-frame conditions (sampling {_fmt(interval, 1, 1) or 'none'} s)",
        ["UTC", "Strehl", "seeing", "tau0 ms", "wind", "DTTS", "residual", "telemetry"],
        [
            {
                "UTC": _time(float(r["MJD"])),
                "Strehl": _fmt(_finite(r["STREHL"]), 1, 3),
                "seeing": _fmt(_finite(r["SEEING"])),
                "tau0 ms": _fmt(_finite(r["TAU0"]), 1e3, 1),
                "wind": _fmt(_finite(r["WIND"]), 1, 1),
                "DTTS": _fmt(_finite(r["DTTS_FLUX"]), 1, 0),
                "residual": f"{v:.4g}",
                "telemetry": "no" if r["NO_TELEMETRY"] else "yes",
            }
            for r, v in zip(table, residual, strict=True)
        ],
    )
    for name, c in correlations.items():
        console.print(
            f"residual at {radius_ld:g} lambda/D vs {name}: Pearson r = {c['pearson_r']:.2f}, "
            f"Spearman rho = {c['spearman_rho']:.2f} ({c['n']} frames)",
            highlight=False,
        )


@monitor_app.command("products")
def products_command(
    target: str | None = typer.Option(None, "--target", help="Target name (case-insensitive substring)."),
    limit: int = typer.Option(200, "--limit", help="At most this many products."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Level 1 products with the median AO conditions of their frames (those the account may see)."""
    with viewing(root, as_user) as (_catalogue, view):
        rows = view.monitoring.products_conditions(target=target, limit=limit)
    if json_out:
        emit_json(rows)
        return
    print_table(
        f"{len(rows)} Level 1 product(s) with AO conditions",
        ["product", "night", "target", "frames", "with AO", "Strehl", "seeing", "tau0 ms", "wind"],
        [
            {
                "product": f"p{r['product_id']}",
                "night": r["night"] or "",
                "target": r["target"] or "",
                "frames": str(r["frames"]),
                "with AO": str(r["frames_with_telemetry"]),
                "Strehl": _fmt(r["strehl_median"], 1, 3),
                "seeing": _fmt(r["seeing_median_arcsec"]),
                "tau0 ms": _fmt(r["tau0_median_s"], 1e3, 1),
                "wind": _fmt(r["wind_median_m_s"], 1, 1),
            }
            for r in rows
        ],
    )


@monitor_app.command("contrast")
def contrast_command(
    target: str | None = typer.Option(None, "--target", help="Target name (case-insensitive substring)."),
    limit: int = typer.Option(500, "--limit", help="At most this many Level 2 products."),
    wavelength: int = typer.Option(0, "--wavelength", help="Wavelength index of the contrast (0: first)."),
    plot: Path | None = typer.Option(None, "--plot", "--png", help="Write contrast-versus-conditions PNG."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Level 2 contrast at the standard separations against the median AO conditions of the
    Level 1 cube each product was made from (products the account may see), with the
    correlations of log contrast with Strehl, seeing, tau0 and wind."""
    from hcdc.science.monitoring.contrast import contrast_at, contrast_correlations, separations

    with viewing(root, as_user) as (_catalogue, view):
        rows = view.monitoring.contrast_conditions(target=target, limit=limit)
    correlations = contrast_correlations(rows, wavelength)
    if plot is not None:
        from hcdc.science.monitoring.contrast import contrast_conditions_png

        contrast_conditions_png(plot, rows, wavelength)
    if json_out:
        emit_json(
            {"wavelength_index": wavelength, "products": rows, "correlations": correlations}
            | ({"png": str(plot)} if plot is not None else {})
        )
        return
    seps = separations(rows)
    values = {sep: contrast_at(rows, sep, wavelength) for sep in seps}
    print_table(
        f"{len(rows)} Level 2 product(s) with conditions (contrast: wavelength {wavelength})",
        [
            "product",
            "level 1",
            "frames",
            "night",
            "target",
            "Strehl",
            "seeing",
            "tau0 ms",
            "wind",
            *(f'{s:g}"' for s in seps),
        ],
        [
            {
                "product": f"p{r['product_id']}",
                "level 1": f"p{r['level1_product_id']}",
                "frames": "all" if not r.get("variant") else f"selected ({r.get('frames_used')})",
                "night": r["night"] or "",
                "target": r["target"] or "",
                "Strehl": _fmt(r["strehl_median"], 1, 3),
                "seeing": _fmt(r["seeing_median_arcsec"]),
                "tau0 ms": _fmt(r["tau0_median_s"], 1e3, 1),
                "wind": _fmt(r["wind_median_m_s"], 1, 1),
                **{f'{s:g}"': "" if not math.isfinite(values[s][i]) else f"{values[s][i]:.2e}" for s in seps},
            }
            for i, r in enumerate(rows)
        ],
    )
    for sep, by_condition in correlations.items():
        parts = [
            f"{name} rho = {c['spearman_rho']:.2f}"
            for name, c in by_condition.items()
            if c["spearman_rho"] is not None
        ]
        if parts:
            console.print(f'log contrast at {sep}": ' + ", ".join(parts), highlight=False)
    if plot is not None:
        console.print(f"figure: {plot}", highlight=False)


def _period(night: str | None, first: str | None, last: str | None) -> tuple[dt.date, dt.date]:
    """The nights asked for: ``--night D`` or ``--from D1 --to D2`` (one of them alone: one night)."""
    if night and (first or last):
        fail("give either --night or --from/--to, not both")
    if not (night or first or last):
        fail("give --night YYYY-MM-DD or --from YYYY-MM-DD --to YYYY-MM-DD")
    try:
        if night:
            date = dt.date.fromisoformat(night)
            return date, date
        start = dt.date.fromisoformat(first or last)  # type: ignore[arg-type]
        end = dt.date.fromisoformat(last or first)  # type: ignore[arg-type]
    except ValueError as exc:
        fail(f"nights must be dates YYYY-MM-DD: {exc}")
    if end < start:
        fail(f"--to {end} is before --from {start}")
    return start, end


@monitor_app.command("report")
def report_command(
    night: str | None = typer.Option(None, "--night", help="One night (the evening's date YYYY-MM-DD)."),
    first: str | None = typer.Option(None, "--from", help="First night of the period (YYYY-MM-DD)."),
    last: str | None = typer.Option(None, "--to", help="Last night of the period (YYYY-MM-DD, included)."),
    strehl_min: float = typer.Option(
        0.5, "--strehl-min", help="Report datasets whose median Strehl is below."
    ),
    seeing_max: float = typer.Option(
        1.2, "--seeing-max", help="Report datasets whose median zenith seeing (arcsec) is above."
    ),
    tau0_min_ms: float = typer.Option(
        2.0, "--tau0-min-ms", help="Report datasets whose median zenith tau0 (ms) is below."
    ),
    contrast_factor: float = typer.Option(
        3.0, "--contrast-factor", help="Flag Level 2 products whose contrast is worse than expected by more."
    ),
    contrast_nsigma: float = typer.Option(
        3.0, "--contrast-nsigma", help="... or by more than this many times the model's scatter."
    ),
    csv_out: Path | None = typer.Option(
        None, "--csv", help="Also write one row per problem to this CSV file."
    ),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Quality-control report per night or period: missing calibrations per science dataset (the
    association rules on the catalogue as it is now) and datasets whose median AO conditions are
    outside the thresholds (the report a data centre sends to the observatory)."""
    from hcdc.archive.monitoring_report import Thresholds, problem_rows, write_problems_csv

    start, end = _period(night, first, last)
    if contrast_factor < 1 or contrast_nsigma <= 0:
        fail(
            "--contrast-factor must be >= 1 and --contrast-nsigma > 0; "
            f"got {contrast_factor}, {contrast_nsigma}"
        )
    limits = Thresholds(
        strehl_min=strehl_min,
        seeing_max_arcsec=seeing_max,
        tau0_min_s=tau0_min_ms / 1e3,
        contrast_factor=contrast_factor,
        contrast_nsigma=contrast_nsigma,
    )
    with viewing(root, as_user) as (_catalogue, view):
        report = view.monitoring.report(start, end, limits)
    problems = problem_rows(report)
    if csv_out is not None:
        write_problems_csv(csv_out, problems)
    if json_out:
        emit_json(report | {"problems": problems} | ({"csv": str(csv_out)} if csv_out else {}))
        return
    print_table(
        f"nights {report['from']} to {report['to']}",
        [
            "night",
            "datasets",
            "missing calib.",
            "bad conditions",
            "no telemetry",
            "failed jobs",
            "centring",
            "contrast",
        ],
        [
            {
                "night": n["night"],
                "datasets": str(n["datasets"]),
                "missing calib.": str(n["missing_calibrations"]),
                "bad conditions": str(n["bad_conditions"]),
                "no telemetry": str(n["no_telemetry"]),
                "failed jobs": str(n["failed_jobs"]),
                "centring": str(n["centring_fallbacks"]),
                "contrast": str(n["contrast_problems"]),
            }
            for n in report["nights"]
        ],
    )
    print_table(
        "datasets",
        ["dataset", "night", "target", "setup", "Strehl", "seeing z", "tau0 z ms", "DIMM", "missing"],
        [
            {
                "dataset": f"d{e['dataset_id']}",
                "night": e["night"] or "",
                "target": e["target"] or "",
                "setup": e["setup"] or "",
                "Strehl": _fmt(e["conditions"]["strehl_median"], 1, 3),
                "seeing z": _fmt(e["conditions"]["seeing_zenith_median_arcsec"]),
                "tau0 z ms": _fmt(e["conditions"]["tau0_zenith_median_s"], 1e3, 1),
                "DIMM": _fmt(e["conditions"]["dimm_seeing_median_arcsec"]),
                "missing": ", ".join(m["need"] for m in e["missing_calibrations"]),
            }
            for e in report["datasets"]
        ],
    )
    for p in problems:
        limit = f" (limit {p['limit']})" if p["limit"] is not None else ""
        value = f" {p['value']}" if p["value"] is not None else ""
        line = f"d{p['dataset_id']} {p['night']}: {p['category']} {p['item']}{value}{limit} {p['detail']}"
        console.print(line.rstrip(), highlight=False)
    if not problems:
        console.print("no problem found", highlight=False)
    if csv_out is not None:
        console.print(f"CSV: {csv_out} ({len(problems)} row(s))", highlight=False)


@monitor_app.command("expected")
def expected_command(
    wavelength: int = typer.Option(0, "--wavelength", min=0, help="Wavelength index of the contrast."),
    factor: float = typer.Option(
        3.0, "--factor", help="Flag when measured / expected contrast exceeds this."
    ),
    nsigma: float = typer.Option(3.0, "--nsigma", help="... and this many times the model's scatter (dex)."),
    flagged_only: bool = typer.Option(False, "--flagged", help="List only the flagged products."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Expected 5-sigma contrast from the conditions (seeing, tau0, field rotation) and the star's
    magnitude in the band (Target Data Base), fitted on the archive's own Level 2 products, and
    the products much worse than their conditions predict (leave-one-out;
    hcdc.science.monitoring.expected)."""
    if factor < 1 or nsigma <= 0:
        fail(f"--factor must be >= 1 and --nsigma > 0; got {factor}, {nsigma}")
    with viewing(root, as_user) as (_catalogue, view):
        result = view.monitoring.expected_contrast(wavelength, factor, nsigma)
    if json_out:
        emit_json(result)
        return
    several = len(result["groups"]) > 1
    for entry in result["models"]:
        model = entry["model"]
        label = (
            f'{entry["group"]}, {entry["separation_arcsec"]:g}"'
            if several
            else f'{entry["separation_arcsec"]:g}"'
        )
        if model is None:
            console.print(f"{label}: too few products for a model", highlight=False)
            continue
        terms = " ".join(
            f"{c:+.2f} (m - 5)" if n == "star_magnitude" else f"{c:+.2f} log {n}"
            for n, c in model["coefficients"].items()
            if n != "intercept"
        )
        console.print(
            f"{label}: log10 C = {model['coefficients']['intercept']:.2f} {terms} "
            f"(scatter {model['scatter_dex']:.2f} dex, {model['products']} products)",
            highlight=False,
        )
    products = [p for p in result["products"] if p["expected"]["flagged"] or not flagged_only]
    seps = list(result["separations"])

    def cell(p: dict, i: int) -> str:
        e = p["expected"]["separations"][i]
        if e["ratio"] is None:
            return ""
        return f"{e['ratio']:.2f}" + (" !" if e["flagged"] else "")

    print_table(
        f"{len(products)} product(s): measured / expected contrast (! flagged)",
        [
            "product",
            "night",
            "target",
            "variant",
            "seeing",
            "tau0 ms",
            "rotation",
            "mag",
            *(f'{s:g}"' for s in seps),
        ],
        [
            {
                "product": f"p{p['product_id']}",
                "night": p["night"] or "",
                "target": p["target"] or "",
                "variant": p["variant"] or "all frames",
                "seeing": _fmt(p["seeing_median_arcsec"]),
                "tau0 ms": _fmt(p["tau0_median_s"], 1e3, 1),
                "rotation": _fmt(p["field_rotation_deg"], 1, 1),
                "mag": (
                    f"{p['star_magnitude']:.1f} {p['magnitude_band'][-1].upper()}"
                    if p.get("star_magnitude") is not None
                    else ""
                ),
                **{f'{s:g}"': cell(p, i) for i, s in enumerate(seps)},
            }
            for p in products
        ],
    )
    console.print(f"flagged: {', '.join(f'p{i}' for i in result['flagged']) or 'none'}", highlight=False)


@monitor_app.command("programmes")
def programmes_command(
    programme: str | None = typer.Option(
        None, "--programme", help="Only this programme (e.g. 0104.C-0007(A))."
    ),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Programme overview: per programme its nights, datasets, reductions (jobs by state, current
    products by level), median AO conditions of its Level 1 products and the 5-sigma contrast
    (median and best) of its Level 2 products (hcdc.archive.programme_overview)."""
    with viewing(root, as_user) as (_catalogue, view):
        entries = view.monitoring.programmes(programme)
    if programme is not None and not entries:
        fail(f"no science dataset of programme {programme!r} is visible to this account")
    if json_out:
        emit_json({"programmes": entries})
        return

    def contrast(e: dict, sep: float) -> str:
        found = [c for c in e["contrast"] if abs(c["separation_arcsec"] - sep) < 1e-9]
        return "" if not found else f"{found[0]['median']:.1e} ({found[0]['best']:.1e})"

    conditions = lambda e, key, scale, digits: _fmt((e["conditions"] or {}).get(key), scale, digits)  # noqa: E731
    print_table(
        f"{len(entries)} programme(s)",
        [
            "programme",
            "nights",
            "datasets",
            "jobs",
            "L1",
            "L2",
            "Strehl",
            "seeing",
            "tau0 ms",
            'C 0.2" med (best)',
            'C 0.5" med (best)',
        ],
        [
            {
                "programme": e["prog_id"] or "(none)",
                "nights": str(len(e["nights"])),
                "datasets": str(e["datasets"]),
                "jobs": ", ".join(f"{k} {v}" for k, v in sorted(e["jobs"].items())),
                "L1": str(e["products"].get("1", 0)),
                "L2": str(e["products"].get("2", 0)),
                "Strehl": conditions(e, "strehl", 1, 3),
                "seeing": conditions(e, "seeing_arcsec", 1, 2),
                "tau0 ms": conditions(e, "tau0_s", 1e3, 1),
                'C 0.2" med (best)': contrast(e, 0.2),
                'C 0.5" med (best)': contrast(e, 0.5),
            }
            for e in entries
        ],
    )


@monitor_app.command("dataset")
def dataset_command(
    dataset: str = typer.Argument(..., help="Science dataset id (d12 or 12), any SPHERE arm (IRDIS, IFS)."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Per-DIT AO conditions of a science dataset from its associated SPARTA files, without a
    Level 1 product (IFS sequences included): per raw file the median conditions and the DITs
    without telemetry; --json every DIT (hcdc.archive.telemetry.dataset_frame_conditions)."""
    from hcdc.cli.common import parse_object_id

    kind, number = parse_object_id(dataset if dataset.strip()[:1].isalpha() else f"d{dataset.strip()}")
    if kind != "dataset":
        fail(f"{dataset!r} is a {kind} id; give a dataset (d12 or 12)")
    with viewing(root, as_user) as (_catalogue, view):
        try:
            result = view.monitoring.dataset_frames(number)
        except LookupError as exc:
            fail(str(exc))
    if json_out:
        emit_json(result)
        return
    by_file: dict[int, list[dict]] = {}
    for frame in result["frames"]:
        by_file.setdefault(frame["file_id"], []).append(frame)

    def median(rows: list[dict], key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return float(sorted(values)[len(values) // 2]) if values else None

    print_table(
        f"d{number}: {len(result['frames'])} DIT(s), {result['telemetry_files']} SPARTA file(s)"
        + (f", sampling {result['sampling_interval_s']:.0f} s" if result["sampling_interval_s"] else ""),
        ["file", "DITs", "UTC", "Strehl", "seeing", "tau0 ms", "wind", "no telemetry"],
        [
            {
                "file": rows[0]["file"],
                "DITs": str(len(rows)),
                "UTC": _time(rows[0]["mjd"]),
                "Strehl": _fmt(median(rows, "strehl"), 1, 3),
                "seeing": _fmt(median(rows, "seeing_arcsec")),
                "tau0 ms": _fmt(median(rows, "tau0_s"), 1e3, 1),
                "wind": _fmt(median(rows, "wind_m_s"), 1, 1),
                "no telemetry": str(sum(r["no_telemetry"] for r in rows)),
            }
            for rows in by_file.values()
        ],
    )
    for problem in result["problems"]:
        console.print(f"unreadable telemetry: {problem}", highlight=False)


astrometry_app = typer.Typer(
    help="True North and plate-scale monitoring: measured values with their sources.", no_args_is_help=True
)
monitor_app.add_typer(astrometry_app, name="astrometry")

#: CSV columns of ``hcdc monitor astrometry import`` (epoch, instrument and source required)
ASTROMETRY_CSV_COLUMNS = (
    "epoch",
    "instrument",
    "arm",
    "filter",
    "true_north_deg",
    "true_north_err_deg",
    "plate_scale_mas",
    "plate_scale_err_mas",
    "source",
    "product_id",
)


@astrometry_app.command("add")
def astrometry_add_command(
    epoch: str = typer.Option(..., "--epoch", help="Date of the calibration field, YYYY-MM-DD."),
    source: str = typer.Option(..., "--source", help="Where the value comes from (paper, report, product)."),
    instrument: str = typer.Option("SPHERE", "--instrument"),
    arm: str | None = typer.Option(None, "--arm", help="Instrument arm, e.g. IRDIS or IFS."),
    filter_name: str | None = typer.Option(None, "--filter", help="Filter of the measurement, e.g. H2."),
    true_north: float | None = typer.Option(None, "--true-north", help="True North correction, deg."),
    true_north_err: float | None = typer.Option(None, "--true-north-err", help="Its 1-sigma error, deg."),
    plate_scale: float | None = typer.Option(None, "--plate-scale", help="Plate scale, mas/px."),
    plate_scale_err: float | None = typer.Option(
        None, "--plate-scale-err", help="Its 1-sigma error, mas/px."
    ),
    product: int | None = typer.Option(None, "--product", help="hcdc product id it was measured on."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Store one measured True North and/or plate-scale value (staff only, audited)."""
    try:
        date = dt.date.fromisoformat(epoch)
    except ValueError:
        fail(f"--epoch must be a date YYYY-MM-DD, got {epoch!r}")
    with viewing(root, as_user, refusals=(ValueError,)) as (_catalogue, view):
        with view.monitoring.recording_astrometry() as store:
            new_id = store.add(
                instrument=instrument,
                arm=arm,
                filter=filter_name,
                epoch=date,
                source=source,
                true_north_deg=true_north,
                true_north_err_deg=true_north_err,
                plate_scale_mas=plate_scale,
                plate_scale_err_mas=plate_scale_err,
                product_id=product,
            )
    if json_out:
        emit_json({"id": new_id})
    else:
        console.print(f"stored astrometric calibration {new_id}", highlight=False)


@astrometry_app.command("import")
def astrometry_import_command(
    csv_file: Path = typer.Argument(..., help="CSV with columns " + ", ".join(ASTROMETRY_CSV_COLUMNS)),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Store the measurements of a CSV file (one transaction: a bad row stores none and names its line)."""
    import csv

    try:
        with csv_file.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"epoch", "instrument", "source"} - set(reader.fieldnames or [])
            if missing:
                fail(f"{csv_file}: missing column(s) {', '.join(sorted(missing))}")
            unknown = set(reader.fieldnames or []) - set(ASTROMETRY_CSV_COLUMNS)
            if unknown:
                fail(f"{csv_file}: unknown column(s) {', '.join(sorted(unknown))}")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        fail(f"{csv_file}: cannot read it as CSV ({exc})")

    def number(row: dict, key: str, line: int, kind: type = float) -> Any:
        text = (row.get(key) or "").strip()
        if not text:
            return None
        try:
            return kind(text)
        except ValueError:
            fail(f"{csv_file} line {line}: {key} must be a number, got {text!r}")

    ids = []
    with viewing(root, as_user) as (_catalogue, view), view.monitoring.recording_astrometry() as store:
        for line, row in enumerate(rows, start=2):
            try:
                ids.append(
                    store.add(
                        instrument=row["instrument"],
                        arm=row.get("arm") or None,
                        filter=row.get("filter") or None,
                        epoch=dt.date.fromisoformat((row.get("epoch") or "").strip()),
                        source=row.get("source") or "",
                        true_north_deg=number(row, "true_north_deg", line),
                        true_north_err_deg=number(row, "true_north_err_deg", line),
                        plate_scale_mas=number(row, "plate_scale_mas", line),
                        plate_scale_err_mas=number(row, "plate_scale_err_mas", line),
                        product_id=number(row, "product_id", line, int),
                    )
                )
            except ValueError as exc:
                fail(f"{csv_file} line {line}: {exc}")
    if json_out:
        emit_json({"ids": ids})
    else:
        console.print(f"stored {len(ids)} astrometric calibration(s) from {csv_file}", highlight=False)


@astrometry_app.command("list")
def astrometry_list_command(
    instrument: str | None = typer.Option(None, "--instrument"),
    arm: str | None = typer.Option(None, "--arm"),
    nsigma: float = typer.Option(
        3.0, "--nsigma", help="Flag values this many errors from the assumed constant."
    ),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """The True North / plate-scale time series, each value against the constant the pipeline assumes."""
    with viewing(root, as_user) as (_catalogue, view):
        series = view.monitoring.astrometry(instrument, arm, nsigma)
    if json_out:
        emit_json(series)
        return

    def value(v: float | None, err: float | None, dev: dict, digits: int) -> str:
        if v is None:
            return ""
        text = f"{v:.{digits}f}" + (f" ± {err:.{digits}f}" if err is not None else "")
        return text + (
            f"  ({dev['difference']:+.{digits}f}{' !' if dev['flagged'] else ''})"
            if dev["difference"] is not None
            else ""
        )

    print_table(
        f"{len(series['measurements'])} measurement(s) "
        f"(difference from the assumed constant; ! > {nsigma:g} sigma)",
        ["epoch", "instrument", "filter", "True North (deg)", "plate scale (mas/px)", "source"],
        [
            {
                "epoch": m["epoch"],
                "instrument": f"{m['instrument']}/{m['arm'] or ''}",
                "filter": m["filter"] or "",
                "True North (deg)": value(m["true_north_deg"], m["true_north_err_deg"], m["true_north"], 3),
                "plate scale (mas/px)": value(
                    m["plate_scale_mas"], m["plate_scale_err_mas"], m["plate_scale"], 4
                ),
                "source": m["source"],
            }
            for m in series["measurements"]
        ],
    )


@astrometry_app.command("measure")
def astrometry_measure_command(
    fits_file: Path = typer.Argument(
        ..., help="IRDIS frame, or IFS image on the Level 1 grid, of an astrometric field (field tracking)."
    ),
    catalogue: Path = typer.Option(
        ..., "--catalogue", help="Reference list CSV: ra_deg, dec_deg (ICRS, at the epoch), optional id."
    ),
    arm: str = typer.Option("IRDIS", "--arm", help="IRDIS or IFS (an image on the IFS Level 1 grid)."),
    affine: bool = typer.Option(
        False,
        "--affine",
        help="Also fit a general linear map: scales along x and y, anamorphism, skew (not stored).",
    ),
    channel: str = typer.Option("left", "--channel", help="IRDIS field of a 2048x1024 frame: left or right."),
    no_anamorphism: bool = typer.Option(
        False, "--no-anamorphism", help="Fit the raw pixels (no IRDIS anamorphism correction first)."
    ),
    nsigma: float = typer.Option(8.0, "--nsigma", help="Detection threshold, robust sigmas."),
    min_stars: int = typer.Option(6, "--min-stars", help="Fewest matched stars to accept a fit."),
    product: int | None = typer.Option(None, "--product", help="hcdc product id of the file, if catalogued."),
    store: bool = typer.Option(True, "--store/--no-store", help="Store the result (staff, audited)."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Measure True North and plate scale on an astrometric field against its reference list
    (detection, Gaussian centroids, matching, least-squares fit with residual and bootstrap
    errors) and store them in the True North / plate-scale series."""
    from hcdc.instruments.sphere import constants as sc
    from hcdc.instruments.sphere.ifs.astrometric_field import measure_ifs_field
    from hcdc.instruments.sphere.irdis.astrometric_field import AstrometricFieldError, measure_irdis_field

    arm = arm.strip().upper()
    if arm not in ("IRDIS", "IFS"):
        fail(f"--arm must be IRDIS or IFS; got {arm}")
    try:
        if arm == "IFS":
            result = measure_ifs_field(
                fits_file, catalogue, nsigma=nsigma, min_stars=min_stars, affine=affine
            )
        else:
            result = measure_irdis_field(
                fits_file,
                catalogue,
                channel=channel,
                anamorphism_xy=None if no_anamorphism else sc.IRDIS_ANAMORPHISM_XY,
                nsigma=nsigma,
                min_stars=min_stars,
                affine=affine,
            )
    except AstrometricFieldError as exc:
        fail(str(exc))
    if store:
        with (
            viewing(root, as_user, refusals=(ValueError,)) as (_catalogue, view),
            view.monitoring.recording_astrometry() as store,
        ):
            result["id"] = store.add_measured(result, product_id=product, arm=arm)
    else:
        result["id"] = None
    if json_out:
        emit_json(result)
        return
    fit = result["fit"]
    where = "IFS Level 1 grid" if arm == "IFS" else f"{result['channel']} field"
    assumed_scale = sc.IFS_PIXEL_SCALE_MAS if arm == "IFS" else sc.IRDIS_PIXEL_SCALE_MAS
    console.print(
        f"{fits_file.name} ({result['filter'] or 'no filter'}, {result['epoch']}, {where}): "
        f"{fit['used']} of {fit['matched']} matched stars used ({result['detected']} detected, "
        f"{result['reference_stars']} in the list), residual rms {fit['residual_rms_mas']:.2f} mas",
        highlight=False,
    )
    console.print(
        f"True North {result['true_north_deg']:+.4f} ± {result['true_north_err_deg']:.4f} deg "
        f"(assumed {sc.TRUE_NORTH_DEG:+.2f}); plate scale {result['plate_scale_mas']:.4f} ± "
        f"{result['plate_scale_err_mas']:.4f} mas/px (assumed {assumed_scale:.3f})",
        highlight=False,
    )
    if "affine" in result:
        aff = result["affine"]
        corrected = arm == "IFS" or not no_anamorphism
        console.print(
            f"affine fit ({aff['stars']} stars, "
            f"{'on corrected offsets: what the correction leaves' if corrected else 'raw pixels'}): "
            f"anamorphism {100 * aff['anamorphism']:+.3f} ± {100 * aff['anamorphism_err']:.3f} %, "
            f"skew {aff['skew_deg']:+.4f} ± {aff['skew_deg_err']:.4f} deg, scales x/y "
            f"{aff['scale_x_mas']:.4f} / {aff['scale_y_mas']:.4f} mas/px",
            highlight=False,
        )
    console.print(
        f"stored as astrometric calibration {result['id']}" if result["id"] else "not stored (--no-store)",
        highlight=False,
    )


@astrometry_app.command("simulate")
def astrometry_simulate_command(
    out_dir: Path = typer.Argument(..., help="Folder for the field FITS, reference_list.csv, truth."),
    true_north: float = typer.Option(
        -1.75, "--true-north", help="The True North correction put in (the truth), deg."
    ),
    plate_scale: float | None = typer.Option(
        None, "--plate-scale", help="The plate scale put in (the truth), mas/px (default 12.255; IFS 7.46)."
    ),
    posang: float = typer.Option(0.0, "--posang", help="Derotator position angle INS4 DROT2 POSANG, deg."),
    stars: int | None = typer.Option(
        None, "--stars", help="Stars in the field (default 40 in 10 arcsec; IFS 14 in 1.6 arcsec)."
    ),
    arm: str = typer.Option(
        "IRDIS", "--arm", help="IRDIS (raw-like frame) or IFS (image on the Level 1 grid)."
    ),
    seed: int = typer.Option(1, "--seed"),
    date_obs: str = typer.Option("2026-03-15T01:23:45.000", "--date-obs"),
    json_out: bool = JSON_OPTION,
) -> None:
    """Write a simulated IRDIS astrometric field (or IFS, on the IFS Level 1 grid) with known
    True North and plate scale."""
    from hcdc.instruments.sphere.ifs.astrometric_field import IFS_FIELD_SPEC, simulate_ifs_astrometric_field
    from hcdc.instruments.sphere.irdis.astrometric_field import simulate_irdis_astrometric_field
    from hcdc.science.simulation.astrometric_field import FieldSpec

    arm = arm.strip().upper()
    if arm not in ("IRDIS", "IFS"):
        fail(f"--arm must be IRDIS or IFS; got {arm}")
    base = IFS_FIELD_SPEC if arm == "IFS" else FieldSpec()
    stars = base.n_stars if stars is None else stars
    plate_scale = base.scale_mas if plate_scale is None else plate_scale
    if stars < 1 or plate_scale <= 0:
        fail("--stars must be >= 1 and --plate-scale > 0")
    spec = FieldSpec(**{**base.as_dict(), "n_stars": stars, "scale_mas": plate_scale})
    simulate = simulate_ifs_astrometric_field if arm == "IFS" else simulate_irdis_astrometric_field
    paths = simulate(
        out_dir, spec, seed=seed, posang_deg=posang, true_north_deg=true_north, date_obs=date_obs
    )
    if json_out:
        emit_json({k: str(v) for k, v in paths.items()})
    else:
        for kind, path in paths.items():
            console.print(f"{kind}: {path}", highlight=False)


# -- astrometric calibration fields measured automatically (issue 15, helper h5) -----------


@astrometry_app.command("field-add")
def astrometry_field_add_command(
    catalogue_csv: Path = typer.Argument(..., help="Reference list CSV: ra_deg, dec_deg, optional id."),
    name: str = typer.Option(..., "--name", help="Name of the calibration field, e.g. 'NGC 3603'."),
    source: str = typer.Option(..., "--source", help="Where the list comes from (catalogue, epoch)."),
    instrument: str = typer.Option("SPHERE", "--instrument"),
    ra: float | None = typer.Option(None, "--ra", help="Field centre RA, deg (default: mean of the list)."),
    dec: float | None = typer.Option(None, "--dec", help="Field centre Dec, deg (default: mean)."),
    radius: float = typer.Option(10.0, "--radius", help="Pointings within this many arcsec are measured."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """Register an astrometric calibration field and its reference list (staff, audited): field
    files pointed inside it are then measured automatically (`hcdc monitor astrometry queue`)."""
    with viewing(root, as_user, refusals=(ValueError,)) as (_catalogue, view):
        new_id = view.monitoring.register_reference_field(
            name=name,
            catalogue=catalogue_csv,
            source=source,
            instrument=instrument,
            ra_deg=ra,
            dec_deg=dec,
            radius_arcsec=radius,
        )
    if json_out:
        emit_json({"id": new_id})
    else:
        console.print(f"registered reference field {new_id} ({name})", highlight=False)


@astrometry_app.command("fields")
def astrometry_fields_command(
    json_out: bool = JSON_OPTION, root: Path | None = ROOT_OPTION, as_user: str | None = AS_OPTION
) -> None:
    """The registered astrometric calibration fields (staff)."""
    with viewing(root, as_user) as (_catalogue, view):
        fields = view.monitoring.reference_fields()
    if json_out:
        emit_json({"fields": fields})
        return
    print_table(
        f"{len(fields)} reference field(s)",
        ["id", "name", "instrument", "centre", "radius", "stars", "source"],
        [
            {
                "id": str(f["id"]),
                "name": f["name"],
                "instrument": f["instrument"],
                "centre": f"{f['ra_deg']:.5f} {f['dec_deg']:+.5f}",
                "radius": f'{f["radius_arcsec"]:g}"',
                "stars": str(f["n_stars"]),
                "source": f["source"],
            }
            for f in fields
        ],
    )


@astrometry_app.command("queue")
def astrometry_queue_command(
    json_out: bool = JSON_OPTION, root: Path | None = ROOT_OPTION, as_user: str | None = AS_OPTION
) -> None:
    """Record finished field measurements in the series, then queue the ingested astrometric
    fields (file class ASTROMETRY) that lie in a registered field and have no job yet (staff)."""
    with viewing(root, as_user) as (catalogue, view):
        poll = view.operations(catalogue).queue_astrometry()
    if json_out:
        emit_json(poll.as_dict())
        return
    console.print(
        f"recorded {len(poll.recorded)} measurement(s), queued {len(poll.queued)} job(s)"
        + (f" {', '.join(f'j{j}' for j in poll.queued)}" if poll.queued else ""),
        highlight=False,
    )
    for path in poll.without_reference:
        console.print(f"no registered reference field holds the pointing of {path}", highlight=False)


@astrometry_app.command("trend")
def astrometry_trend_command(
    instrument: str | None = typer.Option(None, "--instrument"),
    arm: str | None = typer.Option(None, "--arm"),
    nsigma: float = typer.Option(3.0, "--nsigma", help="Flag a drift this many errors from zero."),
    json_out: bool = JSON_OPTION,
    root: Path | None = ROOT_OPTION,
    as_user: str | None = AS_OPTION,
) -> None:
    """True North and plate scale over time per instrument, arm and filter: weighted mean,
    scatter, drift per year (weighted straight line) and whether it is significant (staff)."""
    with viewing(root, as_user) as (_catalogue, view):
        trend = view.monitoring.astrometry_trend(instrument, arm, nsigma)
    if json_out:
        emit_json(trend)
        return

    def cell(fit: dict | None, digits: int) -> str:
        if fit is None:
            return ""
        text = f"{fit['mean']:.{digits}f} ± {fit['mean_err']:.{digits}f}"
        if fit["slope_per_year"] is not None:
            text += f", {fit['slope_per_year']:+.{digits}f} ± {fit['slope_err_per_year']:.{digits}f}/yr"
            text += " !" if fit["drift_flagged"] else ""
        return text

    print_table(
        f"{len(trend['series'])} series (mean, drift per year; ! drift > {nsigma:g} sigma)",
        ["instrument", "filter", "n", "True North (deg)", "plate scale (mas/px)"],
        [
            {
                "instrument": f"{s['instrument']}/{s['arm'] or ''}",
                "filter": s["filter"] or "",
                "n": str(max((s[k] or {}).get("n", 0) for k in ("true_north", "plate_scale"))),
                "True North (deg)": cell(s["true_north"], 4),
                "plate scale (mas/px)": cell(s["plate_scale"], 4),
            }
            for s in trend["series"]
        ],
    )


def _finite(value: object) -> float | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
