"""``hcdc postprocess``: Level 2 post-processing of a user's own Level 1 cube.

Reads a FITS cube (frames, y, x) or (wavelengths, frames, y, x) with its angles (parallactic, as
VIP/pyKLIP/PynPoint take them, or vlt-sphere/VIP derotation angles; orientation on the sky when the
instrument's offsets are given: docs/conventions.md), and optionally an off-axis PSF, wavelengths
and a reference-star cube. The options are checked here (messages name the option); the run is the
``l2-postprocess`` recipe (:mod:`hcdc.pipeline.recipes.postprocess`), exactly as a data centre's
worker runs it: it writes the Level 2 FITS product and PNG previews into ``--out``, and this
command adds ``<cube>_<algorithm>_summary.json`` and the run's provenance record
``<cube>_<algorithm>_provenance.json`` (parameters, inputs' sha256, software versions; readable
with :meth:`hcdc.pipeline.provenance.ProvenanceRecord.load`, replayable with
:func:`hcdc.pipeline.replay.rerun`), then prints a summary (``--json`` for scripts).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.markup import escape

from hcdc.cli.output import emit_json, err_console, print_table, progress_bar

__all__ = ["register"]


def _parse_param(text: str) -> tuple[str, Any]:
    """``key=value``; the value is read as JSON when it parses (numbers, lists, true/false), else text."""
    if "=" not in text:
        raise typer.BadParameter(f"--param {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    key = key.strip().replace("-", "_")
    if not key.isidentifier():
        raise typer.BadParameter(f"--param {text!r}: {key!r} is not a parameter name")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw


def _fmt(value: float | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def _print_summary(summary: dict[str, Any], files: dict[str, str]) -> None:
    scale = summary["pixel_scale_mas"]
    pa_column = "PA sky [deg]" if summary["pa_reference"] == "sky" else "PA det [deg]"
    rows = [
        {
            "#": i,
            "x": _fmt(d["x"], ".2f"),
            "y": _fmt(d["y"], ".2f"),
            "sep [px]": _fmt(d["separation_px"], ".2f"),
            "sep [mas]": _fmt(d["separation_mas"], ".1f"),
            pa_column: _fmt(d["pa_deg"], ".2f"),
            "S/N": _fmt(d["snr"], ".2f"),
            "contrast": _fmt(d["contrast"], ".3e"),
        }
        for i, d in enumerate(summary["detections"], start=1)
    ]
    threshold = summary["detection_threshold_snr"]
    criterion = (
        f"S/N {threshold:g}" if threshold is not None else f"false-alarm {summary['detection_fpf']:.2g}"
    )
    title = f"{summary['algorithm']}: {len(rows)} detection(s) above {criterion}"
    print_table(title, ["#", "x", "y", "sep [px]", "sep [mas]", pa_column, "S/N", "contrast"], rows)
    err_console.print(f"orientation: {escape(summary['orientation_text'])}", soft_wrap=True, highlight=False)
    if summary["contrast_at"]:
        described = summary.get("contrast_curve") or {}
        completeness_label = f"{100 * (described.get('completeness') or 0):g} % complete"
        wavelengths = summary["wavelengths_um"] or []
        columns = ["separation"] + (
            [f"{w:.3f} um" for w in wavelengths] if len(wavelengths) > 1 else ["5-sigma contrast"]
        )
        crow = []
        for entry in summary["contrast_at"]:
            row = {"separation": f'{entry["separation_arcsec"]:g}" ({entry["separation_px"]:.1f} px)'}
            for name, value in zip(columns[1:], entry["contrast"], strict=False):
                row[name] = _fmt(value, ".2e")
            for name, value in zip(columns[1:], entry.get("completeness_contrast", []), strict=False):
                row[f"{name} ({completeness_label})"] = _fmt(value, ".2e")
            crow.append(row)
        if "completeness_contrast" in summary["contrast_at"][0]:
            columns += [f"{name} ({completeness_label})" for name in columns[1:]]
        print_table("contrast at standard separations", columns, crow)
    elif scale is None:
        err_console.print("no --pixel-scale: contrast at standard separations not reported")
    print_table("files written", ["kind", "path"], [{"kind": k, "path": v} for k, v in files.items()])
    for text in summary["warnings"]:
        err_console.print(f"[yellow]warning:[/yellow] {escape(text)}", soft_wrap=True, highlight=False)


def postprocess_command(
    cube: Path = typer.Argument(
        ..., help="Level 1 cube, FITS: (frames, y, x) or (wavelengths, frames, y, x)."
    ),
    angles: Path = typer.Option(
        ...,
        "--angles",
        help="Angles (deg), FITS or text, one per frame: parallactic angles as VIP's angle_list, "
        "pyKLIP and PynPoint take them (see --angle-convention).",
    ),
    angle_convention: str | None = typer.Option(
        None,
        "--angle-convention",
        help="parallactic (VIP/pyKLIP angle_list: frame k turned counter-clockwise by angle), "
        "derotation (vlt-sphere *_derot.fits, VIP derotation angles: the same sense, offsets usually "
        "included) or hcdc-clockwise (hcdc Level 1 products without ROTSENSE: frame k turned "
        "clockwise by angle is north up). Default: what the angles' or the cube's header declares "
        "(hcdc Level 1: derotation, offsets included), else parallactic.",
    ),
    pupil_offset: float | None = typer.Option(
        None,
        "--pupil-offset",
        help="Pupil offset (deg) added to the angles (NACO 104.84, IRDIS 135.99); with it the "
        "image is north up and PAs are on the sky. 0 if the angles include it.",
    ),
    true_north: float | None = typer.Option(
        None,
        "--true-north",
        help="True-north correction (deg) added to the angles (NACO -0.45, SPHERE -1.75).",
    ),
    transpose: bool = typer.Option(
        False,
        "--transpose",
        help="The detector is a mirror image of the sky with x and y swapped (VIP's NACO cube): "
        "frames are transposed before derotation. Needs --pupil-offset.",
    ),
    ra: float | None = typer.Option(
        None, "--ra", help="Target RA (deg, ICRS) for a celestial WCS; default: the cube's RA keyword."
    ),
    dec: float | None = typer.Option(
        None, "--dec", help="Target Dec (deg, ICRS) for a celestial WCS; default: the cube's DEC keyword."
    ),
    recenter: bool = typer.Option(
        False,
        "--recenter",
        help="Move the star of every frame onto (nx//2, ny//2) (fit per frame, Fourier shift).",
    ),
    center_method: str = typer.Option(
        "auto",
        "--center-method",
        help="Star position fit: auto, psf (stellar peak) or negative-gaussian (vortex/AGPM dark hole).",
    ),
    psf: Path | None = typer.Option(
        None,
        "--psf",
        help="Off-axis PSF, FITS (y, x) or (wavelengths, y, x); a (wavelengths, frames, y, x) "
        "Level 1 PSF cube is averaged over its frames.",
    ),
    wavelengths: Path | None = typer.Option(None, "--wavelengths", help="Wavelengths (um), FITS or text."),
    reference: Path | None = typer.Option(None, "--reference", help="Reference-star cube for RDI, FITS."),
    algorithm: str = typer.Option("pca", "--algorithm", "-a", help="Registered algorithm name."),
    ncomp: int | None = typer.Option(None, "--ncomp", help="Number of principal components (PCA family)."),
    fwhm: float | None = typer.Option(None, "--fwhm", help="PSF FWHM (px); measured on --psf if omitted."),
    pixel_scale: float | None = typer.Option(
        None, "--pixel-scale", help="Plate scale (mas/px); default: PIXSCALE (or HCDC PIXSCALE) of the cube."
    ),
    star_flux: float | None = typer.Option(
        None,
        "--star-flux",
        help="Star flux in cube units (1-FWHM aperture) for contrasts; default from --psf.",
    ),
    param: list[str] = typer.Option([], "--param", help="Extra algorithm parameter key=value (repeatable)."),
    crop_radius: float | None = typer.Option(
        None, "--crop-radius", help="Process only the central square of this half-size (px); saves memory."
    ),
    threshold: float | None = typer.Option(
        None, "--threshold", help="Fixed S/N detection threshold; default: Student criterion of --fpf."
    ),
    fpf: float | None = typer.Option(
        None, "--fpf", help="False-positive fraction of detections (default 2.87e-7, Gaussian 5 sigma)."
    ),
    contrast: bool = typer.Option(True, "--contrast/--no-contrast", help="Compute contrast curves."),
    fc_snr: float | None = typer.Option(
        None,
        "--fc-snr",
        help="Brightness of throughput fakes in noise units (VIP uses 100); default: at the reported limit.",
    ),
    contrast_criterion: str = typer.Option(
        "detection",
        "--contrast-criterion",
        help="'detection': the limit of hcdc's detection (default); 'vip': VIP 2.1.1's formula.",
    ),
    throughput_step: float | None = typer.Option(
        None, "--throughput-step", help="Throughput sampling (px; default 1 FWHM; VIP samples every px)."
    ),
    completeness: float | None = typer.Option(
        None,
        "--completeness",
        help="Also measure the completeness curve: the contrast at which this fraction (e.g. 0.95) "
        "of fakes is recovered by hcdc's detection (Jensen-Clem et al. 2018). Costly (NACO: ~50 s).",
    ),
    completeness_fakes: int | None = typer.Option(
        None,
        "--completeness-fakes",
        help="Fakes per separation and contrast level of the completeness curve (default 20).",
    ),
    negfc: bool = typer.Option(
        False,
        "--negfc",
        help="Measure detections by negative-fake-companion fits (slower, single wavelength).",
    ),
    calibrated_threshold: bool = typer.Option(
        False,
        "--calibrated-threshold",
        help="Calibrate the detection threshold (and the contrast curve's) on an inverted-angle "
        "null map of the data instead of the Student threshold: one more reduction; can raise the "
        "threshold on small or speckle-dominated images (docs/postprocessing.md).",
    ),
    false_alarms: float | None = typer.Option(
        None,
        "--false-alarms-per-image",
        help="Set the detection threshold (and the contrast curve's) so that this many false S/N "
        "peaks per image are expected on Gaussian noise as rough as the data's S/N map (e.g. 0.01; "
        "random-field theory, docs/postprocessing.md); --fpf is then not used. Default: the Student "
        "threshold of --fpf (about 0.003 false peaks per 128-px image at 5 sigma).",
    ),
    recipe_version: str | None = typer.Option(
        None,
        "--recipe-version",
        help="l2-postprocess version to run; default: the one the standard workflows run (1.6). "
        "1.5 always calibrates the threshold; 1.4 and 1.5 place photometry fakes at the S/N "
        "(docs/postprocessing.md).",
    ),
    out: Path = typer.Option(..., "--out", help="Output directory (created)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Post-process an ADI/SDI/RDI cube: final image, S/N map, contrast curves, detections."""
    from hcdc.pipeline.errors import ParameterError, RecipeFailed, RecipeInputError
    from hcdc.pipeline.recipe import RecipeContext
    from hcdc.pipeline.recipes.postprocess import WORKFLOW_VERSION as L2_WORKFLOW_VERSION
    from hcdc.pipeline.registry import get_recipe
    from hcdc.science.calibration.recenter import RECENTER_METHODS
    from hcdc.science.orientation import ANGLE_CONVENTIONS, check_pointing
    from hcdc.science.postprocessing import get_algorithm  # the package registers the algorithms
    from hcdc.science.postprocessing.sanity import check_positive

    params = dict(_parse_param(p) for p in param)
    if ncomp is not None:
        params["ncomp"] = ncomp
    try:
        # Every option is checked before any file is read or anything computed.
        if ncomp is not None and ncomp < 1:
            raise ValueError(f"--ncomp must be at least 1; got {ncomp}")
        if center_method not in RECENTER_METHODS:
            raise ValueError(
                f"--center-method must be one of {', '.join(RECENTER_METHODS)}; got {center_method!r}"
            )
        check_positive(
            {
                "--pixel-scale (mas/px)": pixel_scale,
                "--fwhm (px)": fwhm,
                "--star-flux": star_flux,
                "--crop-radius (px)": crop_radius,
                "--threshold (S/N)": threshold,
                "--fpf": fpf,
                "--fc-snr": fc_snr,
                "--throughput-step (px)": throughput_step,
                "--false-alarms-per-image": false_alarms,
            }
        )
        if fpf is not None and not fpf < 0.5:
            raise ValueError(f"--fpf must be below 0.5; got {fpf}")
        if completeness is not None and not 0 < completeness < 1:
            raise ValueError(f"--completeness must be a fraction in (0, 1), e.g. 0.95; got {completeness}")
        if completeness_fakes is not None and (completeness is None or completeness_fakes < 1):
            raise ValueError("--completeness-fakes needs --completeness and must be at least 1")
        if completeness is not None and (psf is None or not contrast):
            raise ValueError("--completeness needs --psf and the contrast curve (not --no-contrast)")
        if angle_convention is not None and angle_convention not in ANGLE_CONVENTIONS:
            raise ValueError(
                f"angle convention must be one of {', '.join(ANGLE_CONVENTIONS)}; got {angle_convention!r}"
            )
        check_pointing(ra, dec)
        # The workflows' version by default: a newer one is opted into, not run by surprise.
        recipe = get_recipe("l2-postprocess", recipe_version or L2_WORKFLOW_VERSION)
        if calibrated_threshold and "calibrated_threshold" not in recipe.Parameters.model_fields:
            raise ValueError(
                "--calibrated-threshold needs l2-postprocess 1.6 or later; "
                f"--recipe-version is {recipe.version}"
            )
        if false_alarms is not None and "false_alarms_per_image" not in recipe.Parameters.model_fields:
            raise ValueError(
                "--false-alarms-per-image needs l2-postprocess 1.6 or later; "
                f"--recipe-version is {recipe.version}"
            )
        get_algorithm(algorithm)
    except (LookupError, ValueError) as exc:
        _fail(exc)
    files_in = {
        "cube": cube,
        "angles": angles,
        "psf": psf,
        "wavelengths": wavelengths,
        "reference": reference,
    }
    for what, path in (("PSF" if k == "psf" else k, v) for k, v in files_in.items()):
        if path is not None and not path.exists():
            _fail(f"{what} file {path}: no such file")

    stem = f"{cube.name.removesuffix('.gz').removesuffix('.fits').removesuffix('.fit')}_{algorithm}"
    recipe_params = {
        "algorithm": algorithm,
        "algorithm_params": params,
        "fwhm": fwhm,
        "pixel_scale_mas": pixel_scale,
        "star_flux": star_flux,
        "crop_radius": crop_radius,
        "detection_threshold": threshold,
        "detection_fpf": fpf,
        "compute_contrast": contrast,
        "contrast_options": {
            "fc_snr": fc_snr,
            "throughput_step": throughput_step,
            "criterion": contrast_criterion,
        },
        "completeness": completeness,
        "completeness_options": {} if completeness_fakes is None else {"n_fakes": completeness_fakes},
        "negfc": negfc,
        **({"calibrated_threshold": True} if calibrated_threshold else {}),
        **({"false_alarms_per_image": false_alarms} if false_alarms is not None else {}),
        "output_stem": stem,
        "angle_convention": angle_convention,
        "pupil_offset_deg": pupil_offset,
        "true_north_deg": true_north,
        "transpose": transpose,
        "ra_deg": ra,
        "dec_deg": dec,
        "recenter": recenter,
        "center_method": center_method,
    }
    record_path = out / f"{stem}_provenance.json"
    with progress_bar(disable=as_json) as bar:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        context = RecipeContext(work_dir=out, on_progress=on_progress)
        try:
            result = recipe().run(files_in, recipe_params, context)
        except (ParameterError, RecipeInputError) as exc:
            _fail(exc)
        except RecipeFailed as exc:
            cause = exc.__cause__
            if isinstance(cause, KeyError | ValueError | TypeError):  # bad input: nothing written
                _fail(cause.args[0] if isinstance(cause, KeyError) and cause.args else cause)
            exc.result.provenance.save(record_path)
            _fail(f"{exc} (log and provenance in {record_path})", code=1)

    summary = result.outputs["summary"]
    if not as_json:
        for text in summary["notes"]:
            err_console.print(f"note: {escape(text)}", soft_wrap=True, highlight=False)
    files = {"product": str(result.outputs["product"])}
    files.update(result.outputs.get("previews") or {})
    files["provenance"] = str(result.provenance.save(record_path))
    summary["files"] = files
    (out / f"{stem}_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if as_json:
        emit_json(summary)
    else:
        _print_summary(summary, files)


def _fail(message: object, code: int = 2) -> NoReturn:
    """Print ``error: message`` on stderr and exit with ``code`` (2: bad options or input)."""
    err_console.print(f"[red]error:[/red] {escape(str(message))}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``hcdc postprocess`` to the CLI."""
    app.command("postprocess")(postprocess_command)
