"""Per-frame AO conditions of an IFS Level 1 product (``level1-ifs`` >= 0.4): the ``CONDITIONS``
and ``AO_FILES`` tables of :mod:`hcdc.instruments.sphere.frame_conditions` (the same as IRDIS
Level 1's), written into ``level1_ifs.fits``, one ``CONDITIONS`` row per row of its ``FRAMES``
table (the mid-DIT ``MJD`` of every OBJECT frame), with the airmass of the pointing of the
primary header (``HCDC RA``/``HCDC DEC``, J2000 deg; NaN airmass and zenith values without it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from hcdc.instruments.sphere.frame_conditions import (
    AO_FILES_EXTNAME,
    CONDITIONS_EXTNAME,
    conditions_hdus,
    read_conditions_hdu,
)

__all__ = ["add_ifs_conditions", "read_ifs_conditions"]

PRODUCT_NAME = "level1_ifs.fits"


def _product_file(path: str | Path) -> Path:
    p = Path(path)
    return p / PRODUCT_NAME if p.is_dir() else p


def add_ifs_conditions(
    product: str | Path, sparta_files: Sequence[str | Path], max_gap_s: float | None = None
) -> Table:
    """Write (replacing earlier ones) the ``CONDITIONS`` and ``AO_FILES`` tables into the IFS
    Level 1 product file (or its folder) and return the conditions table
    (``meta["problems"]``: the unreadable SPARTA files). Raises ValueError naming the file when
    it is not a Level 1 IFS product with a ``FRAMES`` table."""
    path = _product_file(product)
    try:
        with fits.open(path) as hdul:
            header = hdul[0].header
            frame_mjd = np.asarray(hdul["FRAMES"].data["MJD"], dtype=float)
            ra, dec = header.get("HIERARCH HCDC RA"), header.get("HIERARCH HCDC DEC")
            kept = [h.copy() for h in hdul if h.name not in (CONDITIONS_EXTNAME, AO_FILES_EXTNAME)]
    except (OSError, KeyError) as exc:
        raise ValueError(f"{path}: not a Level 1 IFS product with a FRAMES table ({exc})") from None
    table, hdu, files_hdu = conditions_hdus(
        sparta_files,
        frame_mjd,
        None if ra is None else float(ra),
        None if dec is None else float(dec),
        max_gap_s,
    )
    fits.HDUList([*kept, hdu, files_hdu]).writeto(path, overwrite=True)
    return table


def read_ifs_conditions(product: str | Path) -> Table | None:
    """The ``CONDITIONS`` table of an IFS Level 1 product, None when it has none (< 0.4)."""
    return read_conditions_hdu(_product_file(product))
