"""Per-frame AO conditions of an IRDIS Level 1 product, from the SPARTA files of its sequence.

:func:`add_conditions` interpolates the telemetry of the given SPARTA files to the mid-DIT time
of every OBJECT frame (the ``MJD`` column of ``frames.fits`` ``FRAMES``) with
:func:`hcdc.instruments.sphere.sparta.frame_conditions`, and writes into ``frames.fits``:

``CONDITIONS``
    one row per OBJECT frame, same order as ``FRAMES``: Strehl, seeing, tau0, r0 (line of sight
    and zenith), wind, DTTS flux, airmass, distance to the nearest sample and ``NO_TELEMETRY``;
    header ``AO_DT`` (sampling interval, s), ``AO_NFILE``, ``AO_NREJ`` (invalid samples
    discarded), ``AO_COVER`` (fraction of frames with telemetry).
``AO_FILES``
    the SPARTA files given (name, sha256, ``USED``, ``PROBLEM``: why an unreadable one was not).

A product whose sequence has no telemetry still gets the table, every row flagged
``NO_TELEMETRY`` (so a reader never confuses "not looked for" with "none found"). The tables
are built by :mod:`hcdc.instruments.sphere.frame_conditions`, shared with the IFS Level 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.frame_conditions import (
    AO_FILES_EXTNAME,
    conditions_hdus,
    conditions_summary,
    read_conditions_hdu,
    telemetry_files,
)
from hcdc.instruments.sphere.irdis.raw import Level1Error
from hcdc.instruments.sphere.sparta import CONDITIONS_EXTNAME
from hcdc.science.monitoring.residuals import annulus_mean

__all__ = [
    "AO_FILES_EXTNAME",
    "telemetry_files",
    "add_conditions",
    "read_conditions",
    "conditions_summary",
    "residual_intensity",
]

_FRAMES_FILE = "frames.fits"
_CUBE_FILE = "science_cube.fits"


def _pointing(product: Path) -> tuple[float | None, float | None]:
    header = fits.getheader(product / _CUBE_FILE, 0)
    ra, dec = header.get("HIERARCH HCDC RA"), header.get("HIERARCH HCDC DEC")
    return (float(ra) if ra is not None else None, float(dec) if dec is not None else None)


def add_conditions(
    product_dir: str | Path, sparta_files: Sequence[str | Path], max_gap_s: float | None = None
) -> Table:
    """Write the ``CONDITIONS`` and ``AO_FILES`` tables into the product's ``frames.fits``
    (replacing earlier ones) and return the conditions table.

    A SPARTA file that cannot be read does not stop the science reduction: it is listed in
    ``AO_FILES`` with ``USED = False`` and the reason (naming the file), counted in the
    conditions header ``AO_NBAD`` and in ``table.meta["problems"]``; its frames then show as
    ``NO_TELEMETRY`` unless other files cover them.
    """
    folder = Path(product_dir)
    frames_path = folder / _FRAMES_FILE
    if not frames_path.is_file():
        raise Level1Error(f"{folder}: not a Level 1 product (no {_FRAMES_FILE})")
    with fits.open(frames_path) as hdul:
        frame_mjd = np.asarray(hdul["FRAMES"].data["MJD"], dtype=float)
    ra, dec = _pointing(folder)
    table, hdu, files_hdu = conditions_hdus(sparta_files, frame_mjd, ra, dec, max_gap_s)
    with fits.open(frames_path) as hdul:
        kept = [h.copy() for h in hdul if h.name not in (CONDITIONS_EXTNAME, AO_FILES_EXTNAME)]
    fits.HDUList([*kept, hdu, files_hdu]).writeto(frames_path, overwrite=True)
    return table


def read_conditions(product_dir: str | Path) -> Table | None:
    """The ``CONDITIONS`` table of a Level 1 product, None when the product has none."""
    path = Path(product_dir)
    frames_path = path / _FRAMES_FILE if path.is_dir() else path.parent / _FRAMES_FILE
    return read_conditions_hdu(frames_path)  # NaN = no telemetry


def residual_intensity(
    product_dir: str | Path, radius_ld: float = 10.0, width_ld: float = 3.0, band: int = 0
) -> tuple[np.ndarray, dict[str, float]]:
    """Per-frame mean of the Level 1 science cube (ADU/s) of wavelength ``band`` in an annulus
    of ``width_ld`` lambda/D centred ``radius_ld`` lambda/D from the star: the coronagraphic
    residual the turbulence speed drives. Returns the values and the annulus in px and lambda/D.
    """
    folder = Path(product_dir)
    with fits.open(folder / _FRAMES_FILE) as hdul:
        wavelengths_um = np.asarray(hdul["WAVELENGTH"].data, dtype=float)
    if not 0 <= band < wavelengths_um.size:
        raise Level1Error(f"{folder}: no wavelength {band} (the product has {wavelengths_um.size})")
    with fits.open(folder / _CUBE_FILE, memmap=True) as hdul:
        scale = float(hdul[0].header.get("HIERARCH HCDC PIXSCALE", sc.IRDIS_PIXEL_SCALE_MAS))
        lod = sc.lambda_over_d_px(wavelengths_um[band] * 1000.0, scale)
        inner, outer = (radius_ld - width_ld / 2) * lod, (radius_ld + width_ld / 2) * lod
        values = annulus_mean(hdul[0].data[band], inner, outer)
    return values, {"inner_px": inner, "outer_px": outer, "radius_ld": radius_ld, "lambda_over_d_px": lod}
