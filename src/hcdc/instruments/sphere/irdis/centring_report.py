"""Centring quality of an IRDIS Level 1 product, for the monitoring report.

Each OBJECT frame of ``frames.fits`` (table ``FRAMES``) records per wavelength ``k`` the method
that gave its centre (``CENTER_METHOD{k}``) and whether its error passed the limit
(``CENTER_OK{k}``). The planned method is the four-spot waffle fit of the CENTER frames,
``waffle``, possibly interpolated between two of them (``waffle+waffle``); anything else
(``waffle-3spot``, ``symmetry``, ``default``, or a mix such as ``waffle+waffle-3spot``) is a
**fall-back**. A frame counts once however many of its wavelengths fell back.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from astropy.io import fits

__all__ = ["PLANNED_METHOD", "is_fallback", "centring_summary"]

PLANNED_METHOD = "waffle"
_FRAMES_FILE = "frames.fits"


def is_fallback(method: str) -> bool:
    """True when ``method`` is not (an interpolation of) the planned four-spot waffle fit."""
    parts = [p.strip() for p in str(method).split("+")]
    return not parts or any(p != PLANNED_METHOD for p in parts)


def centring_summary(product_dir: str | Path) -> dict[str, Any]:
    """``frames``, ``fallback_frames`` (frames where a wavelength's centre is a fall-back),
    ``not_ok_frames`` (a wavelength's centre error above the limit) and ``methods`` (method ->
    frame-wavelength count) of a Level 1 product folder. Raises ``ValueError`` naming the file
    when it has no ``FRAMES`` table with ``CENTER_METHOD`` columns."""
    path = Path(product_dir) / _FRAMES_FILE
    with fits.open(path) as hdul:
        if "FRAMES" not in hdul:
            raise ValueError(f"{path}: no FRAMES table")
        data = hdul["FRAMES"].data
        names = list(data.columns.names)
        methods = sorted(n for n in names if n.startswith("CENTER_METHOD"))
        if not methods:
            raise ValueError(f"{path}: FRAMES has no CENTER_METHOD column")
        oks = [n.replace("METHOD", "OK") for n in methods if n.replace("METHOD", "OK") in names]
        counts: Counter[str] = Counter()
        fallback = not_ok = 0
        for row in data:
            row_methods = [str(row[m]).strip() for m in methods]
            counts.update(row_methods)
            fallback += any(is_fallback(m) for m in row_methods)
            not_ok += any(not bool(row[o]) for o in oks)
        return {
            "frames": len(data),
            "fallback_frames": int(fallback),
            "not_ok_frames": int(not_ok),
            "methods": dict(sorted(counts.items())),
        }
