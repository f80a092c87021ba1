"""``hcdc center FILE``: the star centre of each frame of a user's image or cube.

Reads the first image HDU of a FITS file: one frame ``(y, x)``, a cube ``(frames, y, x)`` or a
Level 1 cube ``(wavelengths, frames, y, x)``; a raw IRDIS frame (two fields side by side, ``ESO
INS COMB IFLT`` in the header) is split into its two fields. Each frame is centred by one of
Level 1's methods (:func:`hcdc.science.calibration.centering.center_image`) and printed as
``x, y`` (0-based pixels of the frame, x = column) with the measured error (px); ``--json`` for
scripts. Wavelength and plate scale come from the options, else from the header (``HCDC WAVEk``,
``ESO INS COMB IFLT``, ``PIXSCAL``), else the plate scale defaults to IRDIS's 12.255 mas/px.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import typer
from astropy.io import fits
from rich.markup import escape

from hcdc.cli.output import emit_json, err_console, print_table
from hcdc.instruments.sphere import constants as sc
from hcdc.science.calibration import centering
from hcdc.science.fits_inputs import InputError, read_fits_array

__all__ = ["register", "center_command"]


def _header_wavelengths_nm(header: fits.Header, n_planes: int) -> list[float | None]:
    """Per-plane wavelengths (nm) from an hcdc product (HCDC WAVEk, um) or an IRDIS filter."""
    waves: list[float | None] = []
    for k in range(n_planes):
        value = header.get(f"HIERARCH HCDC WAVE{k}", header.get(f"HCDC WAVE{k}"))
        waves.append(float(value) * 1000.0 if value is not None else None)
    if all(w is None for w in waves):
        iflt = header.get("HIERARCH ESO INS COMB IFLT", header.get("ESO INS COMB IFLT"))
        if iflt is not None:
            try:
                pair = sc.irdis_wavelengths_nm(str(iflt).strip())
            except (KeyError, ValueError):
                return waves
            waves = [pair[min(k, 1)] for k in range(n_planes)] if n_planes <= 2 else [pair[0]] * n_planes
    return waves


def _frames(data: np.ndarray, header: fits.Header) -> tuple[list[tuple[int, int, np.ndarray]], int]:
    """``(plane, frame, image)`` triples and the number of planes (wavelengths or IRDIS fields)."""
    iflt = header.get("HIERARCH ESO INS COMB IFLT", header.get("ESO INS COMB IFLT"))
    if data.ndim in (2, 3) and iflt is not None and data.shape[-1] == 2 * data.shape[-2]:
        # A raw IRDIS frame: left and right fields (one per filter of the pair) side by side.
        stack = data.reshape(-1, *data.shape[-2:])
        return [
            (k, i, np.asarray(stack[i][:, k * data.shape[-2] : (k + 1) * data.shape[-2]], dtype=np.float64))
            for k in range(2)
            for i in range(stack.shape[0])
        ], 2
    if data.ndim == 2:
        return [(0, 0, np.asarray(data, dtype=np.float64))], 1
    if data.ndim == 3:
        return [(0, i, np.asarray(data[i], dtype=np.float64)) for i in range(data.shape[0])], 1
    return [
        (k, i, np.asarray(data[k, i], dtype=np.float64))
        for k in range(data.shape[0])
        for i in range(data.shape[1])
    ], data.shape[0]


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def center_command(
    file: Path = typer.Argument(
        ..., help="FITS image (y, x), cube (frames, y, x) or (wavelengths, frames, y, x)."
    ),
    method: str = typer.Option(
        "waffle",
        "--method",
        help="waffle (SPHERE CENTER frames), psf (unsaturated star), negative-gaussian "
        "(vortex/AGPM dark hole) or symmetry (point symmetry of the halo).",
    ),
    wavelength: float = typer.Option(
        None, "--wavelength", help="Wavelength in um (default: from the header; waffle needs it)."
    ),
    pixel_scale: float = typer.Option(
        None, "--pixel-scale", help="Plate scale in mas/px (default: header PIXSCAL, else IRDIS 12.255)."
    ),
    waffle_orient: str = typer.Option(
        None,
        "--waffle-orient",
        help="Waffle pattern '+', 'x' or an angle (deg); default: header OCS WAFFLE ORIENT, else try both.",
    ),
    fwhm: float = typer.Option(None, "--fwhm", help="PSF FWHM in px (default: 1.03 lambda/D)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON on stdout instead of a table."),
) -> None:
    """Print the star centre (x, y, 0-based px) and its error (px) of each frame of FILE."""
    if method not in centering.CENTER_METHODS:
        raise typer.BadParameter(
            f"unknown method {method!r}; use {', '.join(centering.CENTER_METHODS)}", param_hint="--method"
        )
    for name, value in (("--wavelength", wavelength), ("--pixel-scale", pixel_scale), ("--fwhm", fwhm)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise typer.BadParameter(f"must be a positive number, got {value}", param_hint=name)
    try:
        data, header = read_fits_array(file, "image", ndims=(2, 3, 4), check_finite=False)
        if min(data.shape[-2:]) < 8:
            raise InputError(f"image file {file}: frames of {data.shape[-2:]} px are not images")
        frames, n_planes = _frames(data, header)
    except InputError as exc:
        err_console.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None

    scale = pixel_scale if pixel_scale is not None else float(header.get("PIXSCAL", sc.IRDIS_PIXEL_SCALE_MAS))
    waves_nm = (
        [wavelength * 1000.0] * n_planes
        if wavelength is not None
        else _header_wavelengths_nm(header, n_planes)
    )
    if method == "waffle" and any(w is None for w in waves_nm):
        err_console.print(
            f"[red]error:[/red] {escape(str(file))}: waffle centring needs the wavelength "
            "(--wavelength UM; the header has no HCDC WAVEk or ESO INS COMB IFLT)"
        )
        raise typer.Exit(2)
    if method != "waffle" and fwhm is None and any(w is None for w in waves_nm):
        err_console.print(
            f"[red]error:[/red] {escape(str(file))}: {method} centring needs the PSF size "
            "(--fwhm PX, or --wavelength UM with --pixel-scale MAS)"
        )
        raise typer.Exit(2)
    orient_text = waffle_orient or header.get(
        "HIERARCH ESO OCS WAFFLE ORIENT", header.get("ESO OCS WAFFLE ORIENT")
    )
    try:
        if orient_text is None:
            orientations = (sc.waffle_orientation_deg("+"), sc.waffle_orientation_deg("x"))
        elif str(orient_text).strip() in {"+", "x"}:
            orientations = (sc.waffle_orientation_deg(str(orient_text)),)
        else:
            orientations = (float(orient_text),)
    except ValueError:
        raise typer.BadParameter(
            f"{orient_text!r} is not '+', 'x' or an angle in degrees", param_hint="--waffle-orient"
        ) from None

    rows: list[dict[str, Any]] = []
    for plane, index, image in frames:
        wave = waves_nm[plane]
        lod = sc.lambda_over_d_px(wave, scale) if wave is not None else float(fwhm) / 1.03
        if not np.isfinite(image).any():
            est = centering.CenterEstimate(
                math.nan, math.nan, math.inf, method, None, {"message": "no valid pixel"}
            )
        else:
            est = centering.center_image(
                image,
                method,
                lod,
                waffle_radius=sc.waffle_radius_px(wave, scale) if wave is not None else None,
                waffle_orientations_deg=orientations,
                fwhm=fwhm,
            )
        note = est.details.get("geometry") or est.details.get("message") or ""
        rows.append(
            {
                "plane": plane,
                "frame": index,
                "x": _finite(est.x),
                "y": _finite(est.y),
                "error": _finite(est.error),
                "method": est.method,
                "ok": bool(math.isfinite(est.error) and est.error <= centering.CENTERING_ERROR_LIMIT_PX),
                "note": note,
            }
        )
    if json_output:
        emit_json(
            {
                "file": str(file),
                "method": method,
                "pixel_scale_mas": scale,
                "wavelengths_um": [None if w is None else w / 1000.0 for w in waves_nm],
                "convention": "x = column, y = row, 0-based pixels of each frame; error in px (inf -> null)",
                "frames": rows,
            }
        )
        return
    table_rows = [
        {
            **r,
            "x": "-" if r["x"] is None else f"{r['x']:.3f}",
            "y": "-" if r["y"] is None else f"{r['y']:.3f}",
            "error": "failed" if r["error"] is None else f"{r['error']:.3f}",
        }
        for r in rows
    ]
    columns = (
        ["plane", "frame", "x", "y", "error", "method", "ok", "note"]
        if n_planes > 1
        else ["frame", "x", "y", "error", "method", "ok", "note"]
    )
    print_table(f"star centre of {file.name} (0-based px)", columns, table_rows)


def register(app: typer.Typer) -> None:
    """Add ``hcdc center`` to the CLI."""
    app.command("center")(center_command)
