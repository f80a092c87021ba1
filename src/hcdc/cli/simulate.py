"""Simulator commands: ``hcdc simulate irdis OUTDIR``, ``hcdc simulate irdis-dpi OUTDIR``,
``hcdc simulate ifs OUTDIR`` and ``hcdc simulate zimpol OUTDIR``
(:mod:`hcdc.instruments.sphere.zimpol.simulate`).

Write a night of realistic raw SPHERE/IRDIS files (see :mod:`hcdc.instruments.sphere.irdis.simulate`)
or SPHERE/IFS files (:mod:`hcdc.instruments.sphere.ifs.simulate`) and print what was written with
the injected truth: a table for people, ``--json`` for scripts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import typer

from hcdc.cli.output import console, emit_json, err_console, print_table, progress_bar

simulate_app = typer.Typer(help="Simulate raw instrument data with known truth.", no_args_is_help=True)


def _parse_companion(text: str) -> tuple[float, float, float]:
    """``sep_mas,pa_deg,contrast`` -> floats, with an error naming the bad value."""
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 3:
        raise typer.BadParameter(f"companion {text!r} must be 'sep_mas,pa_deg,contrast' (3 numbers)")
    try:
        sep, pa, contrast = (float(p) for p in parts)
    except ValueError:
        raise typer.BadParameter(f"companion {text!r}: not three numbers") from None
    if sep <= 0 or not 0 < contrast < 1:
        raise typer.BadParameter(f"companion {text!r}: need separation > 0 mas and 0 < contrast < 1")
    return sep, pa, contrast


@simulate_app.command("irdis")
def irdis(
    out_dir: Path = typer.Argument(..., help="Folder to write the raw files and the truth into."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same bytes."),
    scale: str = typer.Option(
        "small", "--scale", help="small (128x256 px), medium (256x512) or full (1024x2048)."
    ),
    companion: list[str] = typer.Option(
        None, "--companion", help="sep_mas,pa_deg,contrast (repeatable); default: two companions."
    ),
    sequence: list[str] = typer.Option(
        None,
        "--sequence",
        help="Only these default templates, by filter: DB_H23 (DBI), BB_H (CI). Repeatable.",
    ),
    underscore: bool = typer.Option(False, "--underscore-names", help="Write ':' as '_' in file names."),
    bad_center: bool = typer.Option(
        False, "--bad-center", help="Spoil one CENTER file (centring fall-back test)."
    ),
    ao_telemetry: bool = typer.Option(
        False,
        "--ao-telemetry",
        help="Also write SPARTA AO telemetry (OBJECT,AO) files; speckles follow their Strehl.",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
) -> None:
    """Write a night of raw IRDIS DBI + CI files (pupil tracking) with calibrations and truth."""
    from hcdc.instruments.sphere.irdis.simulate import (
        DEFAULT_SEQUENCES,
        SCALES,
        Companion,
        simulate_irdis_night,
    )

    _check_scale(scale, SCALES)
    sequences = None
    if sequence:
        known = {spec.filter: spec for spec in DEFAULT_SEQUENCES}
        unknown = [name for name in sequence if name not in known]
        if unknown:
            raise typer.BadParameter(
                f"unknown sequence {', '.join(unknown)}; use {', '.join(known)}", param_hint="--sequence"
            )
        sequences = tuple(known[name] for name in sequence)
    companions = None
    if companion:
        companions = tuple(Companion(*_parse_companion(c)) for c in companion)
    night = _simulated_night(
        json_output,
        lambda report: simulate_irdis_night(
            out_dir,
            seed=seed,
            scale=scale,
            companions=companions,
            sequences=sequences,
            colon_in_names=not underscore,
            bad_center=bad_center,
            progress=report,
            ao_telemetry=ao_telemetry,
        ),
    )
    if night is None:
        return
    rows = [
        {
            "file": f.path.name,
            "type": f.dpr_type,
            "filter": f.filter,
            "DIT": f.dit,
            "NDIT": f.ndit,
            "ND": f.nd,
        }
        for f in night.files
    ]
    print_table(
        f"{len(rows)} raw IRDIS files in {night.out_dir}",
        ["file", "type", "filter", "DIT", "NDIT", "ND"],
        rows,
    )
    comp_rows = [
        {
            "sep (mas)": c["separation_mas"],
            "sep (px)": f"{c['separation_px']:.2f}",
            "PA (deg)": c["pa_deg"],
            "contrast": ", ".join(f"{b}={v:.2e}" for b, v in c["contrast"].items()),
        }
        for c in night.companion_truth()
    ]
    print_table("injected companions", ["sep (mas)", "sep (px)", "PA (deg)", "contrast"], comp_rows)
    if night.ao_telemetry is not None:
        console.print(f"{len(night.ao_telemetry.files)} SPARTA AO telemetry files", highlight=False)
    console.print(f"truth: {night.truth_json} and {night.truth_fits}")


@simulate_app.command("ifs")
def ifs(
    out_dir: Path = typer.Argument(..., help="Folder to write the raw files and the truth into."),
    mode: str = typer.Option("YJ", "--mode", help="IFS mode: YJ (IRDIFS) or YJH (IRDIFS_EXT)."),
    scale: str = typer.Option(
        "small", "--scale", help="small (1024x1024 px), medium (1536x1536) or full (2048x2048)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same bytes."),
    underscore: bool = typer.Option(False, "--underscore-names", help="Write ':' as '_' in file names."),
    crosstalk: bool = typer.Option(
        True, "--crosstalk/--no-crosstalk", help="Draw the spectral cross-talk (default: yes)."
    ),
    ao_telemetry: bool = typer.Option(
        False,
        "--ao-telemetry",
        help="Also write SPARTA AO telemetry (OBJECT,AO) files (the IFS frames do not follow them).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
) -> None:
    """Write a night of raw IFS files (science with waffle spots, darks, detector flats, SPECPOS,
    WAVE,LAMP, IFU flat) with a flat-spectrum and a methane companion, and the truth."""
    from hcdc.instruments.sphere.ifs.simulate import SCALES, simulate_ifs_night

    if mode.upper() not in {"YJ", "YJH"}:
        raise typer.BadParameter(f"unknown IFS mode {mode!r}; use YJ or YJH", param_hint="--mode")
    _check_scale(scale, SCALES)
    night = _simulated_night(
        json_output,
        lambda report: simulate_ifs_night(
            out_dir,
            mode=mode.upper(),
            seed=seed,
            scale=scale,
            colon_in_names=not underscore,
            progress=report,
            crosstalk=crosstalk,
            ao_telemetry=ao_telemetry,
        ),
    )
    if night is None:
        return
    rows = [
        {
            "file": f.path.name,
            "type": f.dpr_type,
            "tech": f.dpr_tech,
            "IFS comb": f.comb,
            "DIT": f.dit,
            "NDIT": f.ndit,
            "ND": f.nd,
        }
        for f in night.files
    ]
    print_table(
        f"{len(rows)} raw IFS-{night.mode.name} files in {night.out_dir} ({len(night.grid)} lenslet spectra)",
        ["file", "type", "tech", "IFS comb", "DIT", "NDIT", "ND"],
        rows,
    )
    comp_rows = [
        {
            "sep (mas)": c["separation_mas"],
            "PA (deg)": c["pa_deg"],
            "contrast": f"{c['contrast']:.1e}",
            "spectrum": c["spectrum"],
        }
        for c in night.companion_truth()
    ]
    print_table("injected companions", ["sep (mas)", "PA (deg)", "contrast", "spectrum"], comp_rows)
    if "ao_telemetry" in night.extra:
        n_sparta = len(night.extra["ao_telemetry"]["files"])
        console.print(f"{n_sparta} SPARTA AO telemetry files", highlight=False)
    console.print(f"truth: {night.truth_json} and {night.truth_fits}")


@simulate_app.command("zimpol")
def zimpol(
    out_dir: Path = typer.Argument(..., help="Folder to write the raw files and the truth into."),
    mode: str = typer.Option(
        "polarimetry", "--mode", help="polarimetry (disc, HWP cycles) or imaging (companion, ADI)."
    ),
    polarimetry: bool = typer.Option(False, "--polarimetry", help="Same as --mode polarimetry."),
    scale: str = typer.Option(
        "small", "--scale", help="small (256x388 px per camera), medium (512x644) or full (1024x1156)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same bytes."),
    underscore: bool = typer.Option(False, "--underscore-names", help="Write ':' as '_' in file names."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
    legacy_sky_sense: bool = typer.Option(
        False,
        "--legacy-sky-sense",
        help="Turn the sky counter-clockwise by DEROT on the detector, as this simulator did before "
        "the rotation sense was fixed (docs/conventions.md); default: the physical sense.",
    ),
) -> None:
    """Write a night of raw ZIMPOL files (both cameras, stripe-mask rows) with BIAS, DARK and
    FLAT,LAMP calibrations and the truth: a ring disc of known polarised brightness
    (polarimetry) or a companion (imaging)."""
    from hcdc.instruments.sphere.zimpol.simulate import MODES, SCALES, simulate_zimpol_night

    mode = "polarimetry" if polarimetry else mode.lower()
    if mode not in MODES:
        raise typer.BadParameter(
            f"unknown ZIMPOL mode {mode!r}; use {' or '.join(MODES)}", param_hint="--mode"
        )
    _check_scale(scale, SCALES)
    night = _simulated_night(
        json_output,
        lambda report: simulate_zimpol_night(
            out_dir,
            mode=mode,
            seed=seed,
            scale=scale,
            colon_in_names=not underscore,
            progress=report,
            legacy_sky_sense=legacy_sky_sense,
        ),
    )
    if night is None:
        return
    rows = [
        {
            "file": f.path.name,
            "type": f.dpr_type,
            "read-out": f.readout,
            "Stokes": f.stokes or "",
            "DIT": f.dit,
            "NDIT": f.ndit,
            "dither": f"{f.dither_px[0]},{f.dither_px[1]}",
        }
        for f in night.files
    ]
    print_table(
        f"{len(rows)} raw ZIMPOL {mode} files in {night.out_dir}",
        ["file", "type", "read-out", "Stokes", "DIT", "NDIT", "dither"],
        rows,
    )
    disc = night.disc_truth()
    if disc is not None:
        console.print(
            f"disc: ring at {disc['radius_mas']:.0f} mas, polarised peak "
            f"{disc['polarised_peak_adu_s']:.0f} ADU/s per 7.2 mas px, DoLP {disc['dolp']}, "
            f"instrumental Q/I {disc['ip_q']}, U/I {disc['ip_u']}",
            highlight=False,
        )
    comp_rows = [
        {"sep (mas)": c["separation_mas"], "PA (deg)": c["pa_deg"], "contrast": f"{c['contrast']:.1e}"}
        for c in night.companion_truth()
    ]
    if comp_rows:
        print_table("injected companions", ["sep (mas)", "PA (deg)", "contrast"], comp_rows)
    console.print(f"truth: {night.truth_json} and {night.truth_fits}")


@simulate_app.command("irdis-dpi")
def irdis_dpi(
    out_dir: Path = typer.Argument(..., help="Folder to write the raw files and the truth into."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same bytes."),
    scale: str = typer.Option(
        "small", "--scale", help="small (128x256 px), medium (256x512) or full (1024x2048)."
    ),
    cycles: int = typer.Option(4, "--cycles", min=1, help="Number of HWP cycles Q+ Q- U+ U-."),
    instrument: str = typer.Option(
        "mueller",
        "--instrument",
        help="mueller: beams through the Mueller-matrix model of telescope, HWP, derotator and "
        "polarisers (van Holstein et al. 2020); ideal: the 1.0 model (polarisation turning with the "
        "image, fixed IP --ip-q/--ip-u).",
    ),
    tracking: str = typer.Option("PUPIL", "--tracking", help="PUPIL or FIELD (mueller only)."),
    ip_q: float = typer.Option(0.01, "--ip-q", help="Instrumental polarisation Q/I (ideal model only)."),
    ip_u: float = typer.Option(-0.005, "--ip-u", help="Instrumental polarisation U/I (ideal model only)."),
    underscore: bool = typer.Option(False, "--underscore-names", help="Write ':' as '_' in file names."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
) -> None:
    """Write a raw IRDIS DPI sequence (pupil or field tracking, HWP cycles, polarised ring disc,
    instrument model) with CENTER/FLUX/SKY, darks, backgrounds, flats and the truth."""
    from hcdc.instruments.sphere.irdis.simulate_dpi import SCALES, simulate_irdis_dpi_night

    _check_scale(scale, SCALES)
    night = _simulated_night(
        json_output,
        lambda report: simulate_irdis_dpi_night(
            out_dir,
            seed=seed,
            scale=scale,
            n_cycles=cycles,
            ip_q=ip_q,
            ip_u=ip_u,
            instrument=instrument,
            tracking=tracking,
            colon_in_names=not underscore,
            progress=report,
        ),
    )
    if night is None:
        return
    rows = [
        {
            "file": f.path.name,
            "type": f.dpr_type,
            "HWP": f.hwp or "",
            "DIT": f.dit,
            "NDIT": f.ndit,
            "ND": f.nd,
        }
        for f in night.files
    ]
    print_table(
        f"{len(rows)} raw IRDIS DPI files in {night.out_dir}",
        ["file", "type", "HWP", "DIT", "NDIT", "ND"],
        rows,
    )
    console.print(f"truth: {night.truth_json} and {night.truth_fits}")


def _check_scale(scale: str, scales: Iterable[str]) -> None:
    if scale not in scales:
        raise typer.BadParameter(
            f"unknown scale {scale!r}; use one of {', '.join(scales)}", param_hint="--scale"
        )


def _simulated_night(json_output: bool, simulate: Callable[[Callable[[int, int, str], None]], Any]) -> Any:
    """Run ``simulate(progress)`` behind a progress bar; a ValueError is a one-line error (exit 1).
    With ``--json`` the night and its truth files are printed and None is returned (nothing more
    to show); otherwise the night, for the caller's tables."""
    with progress_bar(disable=json_output) as bar:
        task = bar.add_task("simulating", total=None)

        def report(done: int, total: int, name: str) -> None:
            bar.update(task, completed=done, total=total, description=name)

        try:
            night = simulate(report)
        except ValueError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
    if json_output:
        emit_json(
            night.to_dict() | {"truth_json": str(night.truth_json), "truth_fits": str(night.truth_fits)}
        )
        return None
    return night


def register(app: typer.Typer) -> None:
    """Add the ``simulate`` command group to the ``hcdc`` app."""
    app.add_typer(simulate_app, name="simulate")
