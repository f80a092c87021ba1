"""Per-frame AO conditions of a SPHERE Level 1 product (any arm), from the SPARTA files of its
sequence: the ``CONDITIONS`` and ``AO_FILES`` tables both IRDIS (``frames.fits`` of
``level1-irdis`` >= 1.1) and IFS (``level1_ifs.fits`` of ``level1-ifs`` >= 0.4) products carry.

:func:`conditions_hdus` interpolates the telemetry of the given SPARTA files to the given frame
times (:func:`hcdc.instruments.sphere.sparta.frame_conditions`) and builds:

``CONDITIONS``
    one row per frame, in the order of the times given: Strehl, seeing, tau0, r0 (line of sight
    and zenith), wind, DTTS flux, airmass, distance to the nearest sample and ``NO_TELEMETRY``;
    header ``AO_DT`` / ``DTTS_DT`` (sampling intervals, s), ``AO_NFILE``, ``AO_NREJ`` (invalid
    samples discarded), ``AO_COVER`` (fraction of frames with telemetry), ``AO_NBAD``
    (unreadable SPARTA files).
``AO_FILES``
    the SPARTA files given (name, sha256, ``USED``, ``PROBLEM``: why an unreadable one was not).

A sequence without telemetry still gets the table, every row ``NO_TELEMETRY`` (so a reader never
confuses "not looked for" with "none found"). An unreadable SPARTA file does not stop the
science reduction: it is listed with the reason and its frames show ``NO_TELEMETRY`` unless
other files cover them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from hcdc.instruments.sphere.sparta import (
    CONDITIONS_EXTNAME,
    SpartaError,
    frame_conditions,
    is_sparta_header,
    read_sparta,
)
from hcdc.science.checksums import sha256_file
from hcdc.science.monitoring.conditions import conditions_medians

__all__ = [
    "AO_FILES_EXTNAME",
    "CONDITIONS_EXTNAME",
    "conditions_hdus",
    "conditions_summary",
    "read_conditions_hdu",
    "telemetry_files",
]

AO_FILES_EXTNAME = "AO_FILES"


def telemetry_files(paths: Sequence[str | Path]) -> list[Path]:
    """The SPARTA (``DPR TYPE = 'OBJECT,AO'``) files among ``paths`` (unreadable files skipped:
    the reduction reports them)."""
    out = []
    for p in paths:
        try:
            header = fits.getheader(p, 0)
        except (OSError, ValueError):
            continue
        if is_sparta_header(header):
            out.append(Path(p))
    return sorted(out)


def conditions_hdus(
    sparta_files: Sequence[str | Path],
    frame_mjd: np.ndarray,
    ra_deg: float | None,
    dec_deg: float | None,
    max_gap_s: float | None = None,
) -> tuple[Table, fits.BinTableHDU, fits.BinTableHDU]:
    """The conditions table at ``frame_mjd`` (MJD UTC, mid-DIT) and its two HDUs (module doc).
    ``ra_deg`` / ``dec_deg``: the pointing (J2000, deg) for the airmass and zenith values (None:
    NaN airmass). ``table.meta["problems"]``: one message per unreadable SPARTA file."""
    telemetries, rows, problems = [], [], []
    for path in sparta_files:
        path = Path(path)
        try:
            telemetries.append(read_sparta(path))
            rows.append((path.name, sha256_file(path), True, ""))
        except SpartaError as exc:
            problems.append(str(exc))
            sha = sha256_file(path) if path.is_file() else ""
            rows.append((path.name, sha, False, str(exc)[:200]))
    table = frame_conditions(telemetries, np.asarray(frame_mjd, dtype=float), ra_deg, dec_deg, max_gap_s)
    table.meta["AO_COVER"] = float(np.mean(~table["NO_TELEMETRY"])) if len(table) else 0.0
    table.meta["AO_NBAD"] = len(problems)
    hdu = fits.table_to_hdu(table)
    hdu.name = CONDITIONS_EXTNAME
    hdu.header["COMMENT"] = "per-frame AO conditions interpolated from SPARTA telemetry (docs/monitoring.md)"
    files = (
        Table(rows=rows, names=("FILE", "SHA256", "USED", "PROBLEM"))
        if rows
        else Table(names=("FILE", "SHA256", "USED", "PROBLEM"), dtype=("U64", "U64", bool, "U200"))
    )
    files_hdu = fits.table_to_hdu(files)
    files_hdu.name = AO_FILES_EXTNAME
    table.meta["problems"] = problems
    return table, hdu, files_hdu


def read_conditions_hdu(path: str | Path) -> Table | None:
    """The ``CONDITIONS`` table of a FITS file (NaN kept: no telemetry), None when it has none."""
    with fits.open(path) as hdul:
        if CONDITIONS_EXTNAME not in hdul:
            return None
        return Table.read(hdul[CONDITIONS_EXTNAME], mask_invalid=False)


def conditions_summary(table: Table) -> dict[str, float | int | None]:
    """Medians over the frames with telemetry (None when none has), the number of frames with
    and without telemetry and the sampling interval (s, None without samples): what a product's
    catalogue summary records (``ao_conditions``;
    :func:`hcdc.science.monitoring.conditions.conditions_medians`)."""
    medians = conditions_medians(table)
    out: dict[str, float | int | None] = {
        "frames": medians.pop("frames"),
        "frames_with_telemetry": medians.pop("frames_with_telemetry"),
        "sampling_interval_s": float(table.meta["AO_DT"]) if table.meta.get("AO_DT", -1) > 0 else None,
    }
    out.update(medians)
    return out
