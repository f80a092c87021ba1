"""IRDIS calibration masters as files: a night's calibration group read and checked, master and
bad-pixel-map FITS written and read.

The ``irdis-masters`` recipe (:mod:`hcdc.pipeline.recipes.irdis_masters`) computes the masters
with :mod:`hcdc.science.calibration` and :func:`hcdc.instruments.sphere.irdis.raw.master_from_files`
and writes them with these functions. A group is the IRDIS files of one night sharing a
``DPR TYPE`` and a setup: ``DARK``, ``DARK,BACKGROUND`` and ``SKY`` per (DIT, filter
combination); ``FLAT,LAMP`` per filter combination. Files are FITS with ``BUNIT``, the
recipe/software provenance keywords and an ``INPUTS`` table of the input files with their
sha256.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

import hcdc
from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.irdis.raw import Level1Error, RawFile, dit_key, open_raw
from hcdc.runtime.versions import read_git_commit
from hcdc.science.calibration import background as bg
from hcdc.science.checksums import sha256_file

#: the ``HIERARCH HCDC RECIPE`` of master files (the recipe that writes them)
RECIPE_NAME = "irdis-masters"

#: DPR TYPE of a calibration group -> the kind of master it gives
CALIBRATION_TYPES: dict[str, str] = {
    "DARK": "master-dark",
    "DARK,BACKGROUND": "master-background",
    "SKY": "master-sky",
    "FLAT,LAMP": "master-flat",
}
#: groups reduced to one master per DIT (the others are flats)
DARK_LIKE = ("DARK", "DARK,BACKGROUND", "SKY")


class MastersInputError(ValueError):
    """The files given as a calibration group cannot make a master (the message says why)."""


@dataclass
class MasterGroup:
    """The raw files of one group as the recipe reads them."""

    dpr_type: str
    files: list[RawFile]
    filter: str
    dit: float


def read_group(paths: Sequence[Path], what: str) -> MasterGroup:
    """Open the raw files of one calibration group; they must share DPR TYPE and setup."""
    if not paths:
        raise MastersInputError(f"no {what} files given")
    types: dict[str, list[Path]] = {}
    for path in paths:
        try:
            header = fits.getheader(path, 0)
        except (OSError, ValueError) as exc:
            raise MastersInputError(f"{path}: not a readable FITS file ({exc})") from exc
        types.setdefault(str(header.get("HIERARCH ESO DPR TYPE", "")).strip(), []).append(Path(path))
    if len(types) != 1:
        detail = "; ".join(f"{t or '(none)'}: {', '.join(p.name for p in ps)}" for t, ps in types.items())
        raise MastersInputError(f"{what} files mix DPR TYPEs ({detail}); give one calibration group")
    (dpr_type,) = types
    if dpr_type not in CALIBRATION_TYPES:
        raise MastersInputError(
            f"{paths[0]}: DPR TYPE {dpr_type!r} is not a calibration this recipe reduces "
            f"({', '.join(CALIBRATION_TYPES)})"
        )
    try:
        files = [open_raw(p, dpr_type) for p in paths]
    except Level1Error as exc:
        raise MastersInputError(str(exc)) from exc
    filters = {str(f.header.get("HIERARCH ESO INS COMB IFLT", "")).strip() for f in files}
    shapes = {f.shape for f in files}
    if len(shapes) != 1:
        raise MastersInputError(f"{what} files have different detector shapes {sorted(shapes)}")
    dits = {dit_key(f.dit) for f in files}
    if dpr_type in DARK_LIKE and len(dits) != 1:
        raise MastersInputError(
            f"{what} files ({dpr_type}) have several DITs {sorted(dits)}: one master per DIT, one group each"
        )
    if len(filters) != 1:
        raise MastersInputError(f"{what} files mix filter combinations {sorted(filters)}")
    return MasterGroup(dpr_type, files, filters.pop(), float(files[0].dit))


def inputs_table(files: Sequence[Any], role: str) -> fits.BinTableHDU:
    """The ``INPUTS`` extension: file name, role, DIT (s), NDIT and sha256 of every input."""
    columns = [
        fits.Column("FILE", "64A", array=[f.path.name for f in files]),
        fits.Column("ROLE", "16A", array=[role] * len(files)),
        fits.Column("DIT", "D", unit="s", array=[f.dit for f in files]),
        fits.Column("NDIT", "J", array=[f.ndit for f in files]),
        fits.Column("SHA256", "64A", array=[sha256_file(f.path) for f in files]),
    ]
    return fits.BinTableHDU.from_columns(columns, name="INPUTS")


def master_header(
    group: MasterGroup, product: str, recipe_version: str, params: dict[str, Any], started: str
) -> fits.Header:
    """Setup and provenance keywords of a master file (the full record is in provenance.json)."""
    first = group.files[0].header
    header = fits.Header()
    for key in ("INSTRUME", "DATE-OBS", "MJD-OBS"):
        if key in first:
            header[key] = first[key]
    for key in ("HIERARCH ESO SEQ ARM", "HIERARCH ESO INS COMB IFLT", "HIERARCH ESO DET READ CURNAME"):
        if key in first:
            header[key] = first[key]
    header["HIERARCH ESO DPR TYPE"] = group.dpr_type
    header["HIERARCH ESO DET SEQ1 DIT"] = (group.dit, "[s] DIT of the inputs")
    header["HIERARCH HCDC PRODUCT"] = product
    header["HIERARCH HCDC RECIPE"] = RECIPE_NAME
    header["HIERARCH HCDC RECIPE VERSION"] = recipe_version
    header["HIERARCH HCDC VERSION"] = hcdc.__version__
    header["HIERARCH HCDC GIT COMMIT"] = read_git_commit()
    header["HIERARCH HCDC START"] = started
    header["HIERARCH HCDC END"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    header["HIERARCH HCDC PARAMS"] = json.dumps(params, sort_keys=True)
    header["HIERARCH HCDC NFILES"] = (len(group.files), "input files")
    header["HIERARCH HCDC NDIT"] = (sum(f.ndit for f in group.files), "DITs combined")
    return header


def write_image(
    path: Path, data: np.ndarray, header: fits.Header, unit: str, inputs: Sequence[fits.BinTableHDU]
) -> Path:
    primary = fits.PrimaryHDU(data=data, header=header)
    primary.header["BUNIT"] = (unit, "physical unit of the data")
    fits.HDUList([primary, *inputs]).writeto(path, overwrite=True)
    return path


def dead_zones(shape: tuple[int, int]) -> np.ndarray:
    """IRDIS vignetted rows/columns (True = dead), scaled to ``shape`` like the Level 1 reduction."""
    return bg.dead_zone_mask(
        shape, sc.IRDIS_DEAD_ROWS, sc.IRDIS_DEAD_COLUMNS, reference_shape=sc.IRDIS_RAW_SHAPE
    )


def read_master(path: str | Path) -> tuple[np.ndarray, fits.Header]:
    """Data and header of a master or bad-pixel-map file written by the ``irdis-masters`` recipe."""
    path = Path(path)
    try:
        with fits.open(path) as hdul:
            if hdul[0].header.get("HIERARCH HCDC RECIPE") != RECIPE_NAME:
                raise ValueError(f"{path}: not a product of recipe {RECIPE_NAME!r}")
            return np.array(hdul[0].data), hdul[0].header.copy()
    except OSError as exc:
        raise ValueError(f"{path}: not a readable FITS file ({exc})") from exc
