"""``hcdc postprocess``: Level 2 post-processing of a user's own Level 1 cube.

Reads a FITS cube (frames, y, x) or (wavelengths, frames, y, x) with its angles (parallactic, as
VIP/pyKLIP/PynPoint take them, or hcdc derotation angles; orientation on the sky when the
instrument's offsets are given: docs/conventions.md), and optionally an off-axis PSF, wavelengths
and a reference-star cube; checks every parameter and the star position, runs one registered
algorithm through :func:`hcdc.science.postprocessing.run.postprocess`, writes the Level 2 FITS
product and PNG previews into ``--out`` and prints a summary (``--json`` for scripts).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import typer
from astropy.io import fits
from rich.markup import escape

from hcdc.cli.output import emit_json, err_console, print_table, progress_bar

__all__ = ["InputError", "read_fits_array", "read_vector", "register"]

STANDARD_SEPARATIONS_ARCSEC = (0.2, 0.3, 0.5, 1.0)
_TEXT_SUFFIXES = {".txt", ".dat", ".csv", ".lst", ".rdb"}


class InputError(ValueError):
    """A user-supplied input file is unusable; the message names the file and the reason."""


def _open_fits(path: Path, what: str) -> fits.HDUList:
    if not path.exists():
        raise InputError(f"{what} file {path}: no such file")
    if not path.is_file():
        raise InputError(f"{what} file {path}: not a regular file")
    try:
        # memmap: a multi-GB cube is read plane by plane by the orchestrator, never loaded whole.
        return fits.open(path, memmap=True, lazy_load_hdus=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{what} file {path}: not a FITS file ({exc})") from exc


def _first_data_hdu(hdul: fits.HDUList, path: Path, what: str) -> fits.hdu.base._BaseHDU:
    for hdu in hdul:
        if hdu.is_image and hdu.data is not None and hdu.data.size > 0:
            return hdu
    raise InputError(f"{what} file {path}: no image data in any HDU")


def _check_finite(data: np.ndarray, path: Path, what: str) -> None:
    """Raise if ``data`` holds NaN/inf; scans a memory-mapped cube one plane at a time."""
    planes = data.reshape(-1, *data.shape[-2:]) if data.ndim >= 2 else data.reshape(1, -1)
    for k in range(planes.shape[0]):
        plane = planes[k]
        if not np.all(np.isfinite(plane)):
            bad = int(np.size(plane) - np.count_nonzero(np.isfinite(plane)))
            index = np.unravel_index(k, data.shape[:-2]) if data.ndim > 2 else ()
            where = f" in plane {tuple(int(i) for i in index)}" if index else ""
            raise InputError(
                f"{what} file {path}: {bad} NaN or infinite pixel(s){where}; "
                "replace them (bad-pixel correction) before post-processing"
            )


def read_fits_array(
    path: Path, what: str, ndims: tuple[int, ...], check_finite: bool = True
) -> tuple[np.ndarray, fits.Header]:
    """The image data of the first data HDU of ``path`` (memory-mapped) and its header.

    ``what`` names the input in error messages; ``ndims`` lists the accepted dimensionalities.
    """
    path = Path(path)
    hdul = _open_fits(path, what)
    try:
        hdu = _first_data_hdu(hdul, path, what)
        data, header = hdu.data, hdu.header
    except InputError:
        hdul.close()
        raise
    except (OSError, ValueError, TypeError) as exc:
        hdul.close()
        raise InputError(f"{what} file {path}: unreadable data ({exc})") from exc
    if data.ndim not in ndims:
        expected = " or ".join(f"{n}-D" for n in ndims)
        raise InputError(f"{what} file {path}: expected a {expected} array, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.number):
        raise InputError(f"{what} file {path}: data type {data.dtype} is not numeric")
    if check_finite:
        _check_finite(data, path, what)
    return data, header


def read_vector(path: Path, what: str) -> np.ndarray:
    """A 1-D float vector (angles, wavelengths) from FITS (any shape, flattened) or a text file."""
    path = Path(path)
    if path.suffix.lower() in _TEXT_SUFFIXES:
        if not path.is_file():
            raise InputError(f"{what} file {path}: no such file")
        try:
            values = np.loadtxt(path, dtype=np.float64, delimiter="," if path.suffix == ".csv" else None)
        except ValueError as exc:
            raise InputError(f"{what} file {path}: not a column of numbers ({exc})") from exc
    else:
        data, _ = read_fits_array(path, what, ndims=(1, 2), check_finite=False)
        if data.ndim == 2 and 1 not in data.shape:
            raise InputError(f"{what} file {path}: expected a vector, got a {data.shape} array")
        values = np.asarray(data, dtype=np.float64)
    values = values.ravel()
    if values.size == 0:
        raise InputError(f"{what} file {path}: empty")
    if not np.all(np.isfinite(values)):
        raise InputError(f"{what} file {path}: contains NaN or infinite values")
    return values


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
        help="parallactic (VIP/pyKLIP angle_list: frame k derotated by -angle) or derotation "
        "(hcdc: frame k turned clockwise by angle is north up). Default: what the angles' or the "
        "cube's header declares (hcdc Level 1: derotation, offsets included), else parallactic.",
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
    out: Path = typer.Option(..., "--out", help="Output directory (created)."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Post-process an ADI/SDI/RDI cube: final image, S/N map, contrast curves, detections."""
    from hcdc.science.calibration.recenter import RECENTER_METHODS, check_cube_star
    from hcdc.science.checksums import sha256_file
    from hcdc.science.orientation import ANGLE_CONVENTIONS, derotation_angles, oriented_cube
    from hcdc.science.postprocessing.previews import write_previews
    from hcdc.science.postprocessing.products import write_product
    from hcdc.science.postprocessing.run import estimate_fwhm, postprocess
    from hcdc.science.postprocessing.sanity import check_positive

    params = dict(_parse_param(p) for p in param)
    if ncomp is not None:
        params["ncomp"] = ncomp
    try:
        # Every parameter is checked before any file is read or anything computed.
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
    except ValueError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    try:
        cube_data, cube_header = read_fits_array(cube, "cube", ndims=(3, 4))
        angle_values, angles_header = _read_angles(angles)
        psf_data = read_fits_array(psf, "PSF", ndims=(2, 3, 4))[0] if psf else None
        if psf_data is not None and psf_data.ndim == 4:  # hcdc Level 1 psf_cube: (wavelengths, frames, y, x)
            psf_data = np.asarray(psf_data, dtype=np.float64).mean(axis=1)
        wl_values = read_vector(wavelengths, "wavelengths") if wavelengths else None
        ref_data = read_fits_array(reference, "reference", ndims=(3, 4))[0] if reference else None
        n_frames = cube_data.shape[-3]
        if angle_values.size != n_frames:
            raise InputError(
                f"angles file {angles}: {angle_values.size} angles for the {n_frames} frames of cube {cube}"
            )
        if wl_values is not None and (cube_data.ndim != 4 or wl_values.size != cube_data.shape[0]):
            planes = cube_data.shape[0] if cube_data.ndim == 4 else "no"
            raise InputError(
                f"wavelengths file {wavelengths}: {wl_values.size} values for {planes} "
                f"wavelength planes of cube {cube} (shape {cube_data.shape})"
            )
        if (
            psf_data is not None
            and psf_data.ndim == 3
            and (cube_data.ndim != 4 or psf_data.shape[0] != cube_data.shape[0])
        ):
            raise InputError(
                f"PSF file {psf}: {psf_data.shape[0]} PSF planes do not match cube {cube} "
                f"of shape {cube_data.shape}"
            )
        if ref_data is not None and ref_data.shape[-2:] != cube_data.shape[-2:]:
            raise InputError(
                f"reference file {reference}: frame size {ref_data.shape[-2:]} differs from "
                f"cube {cube} frame size {cube_data.shape[-2:]}"
            )
    except InputError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None

    try:
        for key in ("PIXSCALE", "HIERARCH HCDC PIXSCALE"):  # the latter: hcdc Level 1
            if pixel_scale is None and key in cube_header:
                pixel_scale = float(cube_header[key])
                check_positive({f"{key} keyword of cube {cube} (mas/px)": pixel_scale})
        declared, sky_aligned = _declared_convention(angles_header, cube_header)
        if sky_aligned and pupil_offset is None and true_north is None:
            pupil_offset = true_north = 0.0  # the angles already include both (hcdc Level 1)
        derot, orientation = derotation_angles(
            angle_values, angle_convention or declared or "parallactic", pupil_offset, true_north, transpose
        )
        if orientation.known:
            for key in ("RA", "HIERARCH HCDC RA"):
                ra = ra if ra is not None else _header_float(cube_header, key)
            for key in ("DEC", "HIERARCH HCDC DEC"):
                dec = dec if dec is not None else _header_float(cube_header, key)
            orientation = orientation.with_pointing(ra, dec)
        cube_fwhm = fwhm
        if cube_fwhm is None and psf_data is not None:
            cube_fwhm = estimate_fwhm(psf_data if psf_data.ndim == 2 else psf_data[0])
        notes: list[tuple[str, str]] = []
        if cube_fwhm is not None:  # else postprocess() stops: it needs a FWHM or a PSF
            cube_data, notes = check_cube_star(cube_data, cube_fwhm, f"cube {cube}", recenter, center_method)
    except (ValueError, TypeError) as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    for level, text in notes:
        if level == "note" and not as_json:
            err_console.print(f"note: {escape(text)}", soft_wrap=True, highlight=False)
    unit = str(cube_header.get("BUNIT", "")).strip()
    inputs = {str(p): sha256_file(p) for p in (cube, angles, psf, wavelengths, reference) if p is not None}

    with progress_bar(disable=as_json) as bar:
        tasks: dict[str, Any] = {}

        def on_progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        try:
            result = postprocess(
                oriented_cube(cube_data, orientation),
                derot,
                algorithm=algorithm,
                psf=None if psf_data is None else oriented_cube(psf_data, orientation),
                wavelengths=wl_values,
                reference=None if ref_data is None else oriented_cube(ref_data, orientation),
                fwhm=fwhm,
                pixel_scale_mas=pixel_scale,
                star_flux=star_flux,
                params=params,
                crop_radius=crop_radius,
                detection_threshold=threshold,
                detection_fpf=fpf,
                negfc=negfc,
                contrast_options={
                    "fc_snr": fc_snr,
                    "throughput_step": throughput_step,
                    "criterion": contrast_criterion,
                },
                compute_contrast=contrast,
                completeness=completeness,
                completeness_options=None if completeness_fakes is None else {"n_fakes": completeness_fakes},
                image_unit=unit,
                inputs=inputs,
                progress=on_progress,
                orientation=orientation,
            )
        except (KeyError, ValueError, TypeError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            err_console.print(f"[red]error:[/red] {escape(str(message))}", soft_wrap=True, highlight=False)
            raise typer.Exit(2) from None

    result.warnings[:0] = [text for level, text in notes if level == "warning"]
    summary = result.summary(STANDARD_SEPARATIONS_ARCSEC)
    summary["orientation_text"] = result.orientation.describe()
    summary["notes"] = [text for level, text in notes if level == "note"]
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{cube.name.removesuffix('.gz').removesuffix('.fits').removesuffix('.fit')}_{algorithm}"
    product = write_product(result, out / f"{stem}_L2.fits")
    files = {"product": str(product)}
    files.update({kind: str(path) for kind, path in write_previews(result, out, stem=stem).items()})
    summary["files"] = files
    (out / f"{stem}_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    if as_json:
        emit_json(summary)
    else:
        _print_summary(summary, files)


def _read_angles(path: Path) -> tuple[np.ndarray, fits.Header]:
    """Angles and the header that may declare their convention: the ``DEROT`` HDU of an hcdc
    Level 1 ``frames.fits``, else the first data HDU of a FITS file (or a text column)."""
    path = Path(path)
    if path.suffix.lower() not in _TEXT_SUFFIXES and path.is_file():
        try:
            with fits.open(path) as hdul:
                if "DEROT" in hdul and hdul["DEROT"].data is not None:
                    values = np.asarray(hdul["DEROT"].data, dtype=np.float64).ravel()
                    if not np.all(np.isfinite(values)):
                        raise InputError(f"angles file {path}: DEROT contains NaN or infinite values")
                    return values, hdul["DEROT"].header.copy()
        except OSError:
            pass  # read_vector names the problem
        _, header = read_fits_array(path, "angles", ndims=(1, 2), check_finite=False)
        return read_vector(path, "angles"), header
    return read_vector(path, "angles"), fits.Header()


def _declared_convention(angles_header: fits.Header, cube_header: fits.Header) -> tuple[str | None, bool]:
    """The angle convention an input declares (``ANGCONV`` on the angles, or hcdc Level 1's
    ``HIERARCH HCDC ANGCONV`` on the cube) and whether the angles include the offsets (``ANGSKY``)."""
    for header, prefix in ((angles_header, ""), (cube_header, "HIERARCH HCDC ")):
        convention = header.get(f"{prefix}ANGCONV")
        if convention is not None:
            return str(convention).strip(), bool(header.get(f"{prefix}ANGSKY", False))
    return None, False


def _header_float(header: fits.Header, key: str) -> float | None:
    """A numeric header value, None when absent or not a number (ESO writes RA/DEC in deg)."""
    value = header.get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def register(app: typer.Typer) -> None:
    """Add ``hcdc postprocess`` to the CLI."""
    app.command("postprocess")(postprocess_command)
