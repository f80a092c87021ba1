"""Level 3 commands: ``hcdc motion-test`` (bound or background from multi-epoch astrometry) and
``hcdc cmd`` (colour-magnitude diagrams of detections against reference objects).

Thin: the science is :mod:`hcdc.science.level3`; these commands read files, call it and print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from hcdc.cli.common import JSON_OPTION, fail
from hcdc.cli.output import console, emit_json, print_table


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _motion_rows(results: list[Any]) -> list[dict[str, str]]:
    rows = []
    for r in results:
        h = r.hypotheses
        rows.append(
            {
                "object": r.name,
                "epochs": str(r.n_epochs),
                "baseline_yr": _fmt(r.baseline_yr, 2),
                "verdict": r.verdict,
                "ln_B": _fmt(r.ln_bayes_factor),
                "chi2 co-moving": f"{h['comoving'].chi2:.1f}/{h['comoving'].dof}" if h else "",
                "chi2 background": f"{h['background'].chi2:.1f}/{h['background'].dof}" if h else "",
                "chi2 bg+pm": f"{h['background_pm'].chi2:.1f}/{h['background_pm'].dof}" if h else "",
                "track sigma": _fmt(r.power_chi2**0.5),
                "last MJD": _fmt(r.last_mjd, 2),
                "background RA, Dec at last (mas)": (
                    f"{r.predicted_background_ra:.1f}±{r.predicted_background_ra_err:.1f}, "
                    f"{r.predicted_background_dec:.1f}±{r.predicted_background_dec_err:.1f}"
                ),
                "observed RA, Dec (mas)": f"{r.observed_last_ra:.1f}, {r.observed_last_dec:.1f}",
            }
        )
    return rows


def motion_test_command(
    astrometry: Path = typer.Argument(
        ..., help="Relative astrometry in orbitize's CSV format (sep/pa, raoff/decoff or quant1/quant2)."
    ),
    host_ra: float = typer.Option(..., "--host-ra", help="Host right ascension (deg, ICRS)."),
    host_dec: float = typer.Option(..., "--host-dec", help="Host declination (deg, ICRS)."),
    pmra: float = typer.Option(..., "--pmra", help="Host proper motion in RA x cos(Dec) (mas/yr)."),
    pmdec: float = typer.Option(..., "--pmdec", help="Host proper motion in Dec (mas/yr)."),
    parallax: float = typer.Option(..., "--parallax", help="Host parallax (mas)."),
    pmra_err: float = typer.Option(0.0, "--pmra-err", help="Error of --pmra (mas/yr)."),
    pmdec_err: float = typer.Option(0.0, "--pmdec-err", help="Error of --pmdec (mas/yr)."),
    parallax_err: float = typer.Option(0.0, "--parallax-err", help="Error of --parallax (mas)."),
    host_mass: float | None = typer.Option(
        None, "--host-mass", help="Host mass (Msun): sets the orbital-motion scale (default 1)."
    ),
    host_name: str = typer.Option("", "--host-name", help="Host name, for the chart's title."),
    plot: Path | None = typer.Option(None, "--plot", help="Write the astrometry chart to this PNG file."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Bound, background or undetermined, for every object of an astrometry file.

    Compares each object's offsets with (a) a companion co-moving with the host and moving on an
    orbit, (b) a stationary background star (the host's proper motion and parallax, astropy
    ephemeris), (c) a background star with a proper motion of its own. Prints the verdict, the
    chi2 of each hypothesis, the log evidence ratio ln B (co-moving vs the better background
    hypothesis; |ln B| >= 5 decides), how many sigma the background track moves, and where a
    stationary background star seen at the first epoch would be at the last epoch. Statistic and
    limits: docs/level3.md.
    """
    from hcdc.science.level3.background import HostStar
    from hcdc.science.level3.motion_test import motion_test
    from hcdc.science.level3.orbitize_format import AstrometryFormatError, read_orbitize

    try:
        host = HostStar(
            host_ra, host_dec, pmra, pmdec, parallax, pmra_err, pmdec_err, parallax_err, host_mass, host_name
        )
        objects = read_orbitize(astrometry)
    except (AstrometryFormatError, ValueError) as exc:
        fail(str(exc))
    results = [motion_test(obj, host) for obj in objects]
    chart = None
    if plot is not None:
        from hcdc.science.level3.charts import astrometry_chart_png

        chart = str(
            astrometry_chart_png(
                objects,
                host,
                plot,
                verdicts={r.name: r.verdict for r in results},
                title=host_name or astrometry.name,
            )
        )
    if json_output:
        emit_json(
            {
                "file": str(astrometry),
                "host": host.__dict__,
                "chart": chart,
                "objects": [r.to_dict() for r in results],
            }
        )
        return
    rows = _motion_rows(results)
    print_table(f"Proper-motion test: {astrometry.name}", list(rows[0]), rows)
    for r in results:
        console.print(f"{r.name}: {r.verdict} -- {r.reason}", highlight=False, markup=False)
    if chart:
        console.print(f"chart: {chart}", highlight=False, markup=False)


def cmd_command(
    photometry: Path = typer.Argument(
        ...,
        help="CSV with columns object, band (or filter), mag, mag_err, optionally parallax, parallax_err.",
    ),
    diagram: list[str] = typer.Option(
        [], "--diagram", help="H2-H3, K1-K2, J-H, J-K or H-K (repeat; default: every one the data allow)."
    ),
    parallax: float | None = typer.Option(None, "--parallax", help="Parallax (mas) for rows without one."),
    parallax_err: float = typer.Option(0.0, "--parallax-err", help="Its error (mas)."),
    references: Path | None = typer.Option(
        None,
        "--references",
        envvar="HCDC_CMD_REFERENCES",
        help="Folder with ucs_cold_objects_absmag.csv and species_companions_absmag_long.csv "
        "(e.g. shared/data/level3/cmd).",
    ),
    plot: Path | None = typer.Option(
        None, "--plot", help="PNG file for the diagram (with several diagrams: FILE-<diagram>.png)."
    ),
    nearest: int = typer.Option(3, "--nearest", help="List this many nearest reference objects."),
    json_output: bool = JSON_OPTION,
) -> None:
    """Colour-magnitude diagrams of detections: absolute magnitudes from the parallax, over-plotted
    on UltracoolSheet field dwarfs and species' young companions, with the nearest references."""
    from hcdc.science.level3.cmd import DIAGRAMS, cmd_points, get_diagram, nearest_references, plot_cmd_png
    from hcdc.science.level3.photometry_files import (
        PhotometryFormatError,
        read_photometry_csv,
        read_species_companions,
        read_ultracoolsheet,
    )

    try:
        detections = read_photometry_csv(photometry, parallax, parallax_err)
        chosen = [get_diagram(d) for d in diagram] if diagram else list(DIAGRAMS.values())
        refs = []
        if references is not None:
            if not references.is_dir():
                raise ValueError(f"{references}: not a folder of reference tables")
            refs = read_ultracoolsheet(references / "ucs_cold_objects_absmag.csv") + read_species_companions(
                references / "species_companions_absmag_long.csv"
            )
    except (PhotometryFormatError, ValueError) as exc:
        fail(str(exc))
    out: dict[str, Any] = {}
    for d in chosen:
        points = cmd_points(detections, d)
        if not points:
            if diagram:
                fail(f"{photometry}: no object has the bands {d.blue}, {d.red} of diagram {d.name}")
            continue
        ref_points = cmd_points(refs, d)
        entry: dict[str, Any] = {"points": [p.to_dict() for p in points], "n_references": len(ref_points)}
        entry["nearest"] = {
            p.name: [
                {**r.to_dict(), "distance_sigma": dist}
                for r, dist in nearest_references(p, ref_points, nearest)
            ]
            for p in points
        }
        if plot is not None:
            target = (
                plot if len(chosen) == 1 else plot.with_name(f"{plot.stem}-{d.name}{plot.suffix or '.png'}")
            )
            entry["plot"] = str(plot_cmd_png(ref_points + points, d, target))
        out[d.name] = entry
    if not out:
        fail(f"{photometry}: the bands given make no diagram ({', '.join(DIAGRAMS)})")
    if json_output:
        emit_json(
            {"file": str(photometry), "references": str(references) if references else None, "diagrams": out}
        )
        return
    for name, entry in out.items():
        d = DIAGRAMS[name]
        rows = [
            {
                "object": p["name"],
                f"M_{d.mag_band}": f"{p['absmag']:.2f}±{p['absmag_err']:.2f}",
                f"{d.blue}-{d.red}": f"{p['colour']:.2f}±{p['colour_err']:.2f}",
                "nearest references": "; ".join(
                    f"{r['name']} {r['spectral_type']} ({r['distance_sigma']:.1f}σ)".replace("  ", " ")
                    for r in entry["nearest"][p["name"]]
                ),
            }
            for p in entry["points"]
        ]
        print_table(
            f"CMD {d.y_label} vs {d.x_label} ({entry['n_references']} references)", list(rows[0]), rows
        )
        if "plot" in entry:
            console.print(f"plot: {entry['plot']}", highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add the Level 3 commands to the ``hcdc`` application."""
    app.command("motion-test")(motion_test_command)
    app.command("cmd")(cmd_command)
