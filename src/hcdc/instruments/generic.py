"""Fallback for any other readable FITS file: catalogued as instrument ``UNKNOWN``.

Nothing is required: whatever standard keywords are present (DATE-OBS / MJD-OBS, OBJECT,
RA/DEC, EXPTIME, INSTRUME, TELESCOP, FILTER) are picked up so the file can still be found.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from astropy.io import fits

from hcdc.instruments.base import FileMetadata, Instrument, MetadataError, night_of
from hcdc.instruments.eso import _float, _str, apply_extra, first, observation_time
from hcdc.instruments.registry import register

UNKNOWN = "UNKNOWN"

#: extra[...] name -> standard keywords kept when present.
GENERIC_EXTRA: dict[str, tuple[str, ...]] = {
    "instrume": ("INSTRUME",),
    "telescope": ("TELESCOP",),
    "origin": ("ORIGIN",),
    "object": ("OBJECT",),
    "exptime": ("EXPTIME", "EXPOSURE"),
    "naxis": ("NAXIS",),
    "bunit": ("BUNIT",),
}


@register
class Generic(Instrument):
    """Any FITS file no other module claimed (lowest priority, always accepts)."""

    name: ClassVar[str] = UNKNOWN
    priority: ClassVar[int] = -1000

    def identify(self, header: fits.Header, hdul: fits.HDUList) -> bool:
        return True

    def extract(
        self, header: fits.Header, hdul: fits.HDUList, values: Mapping[str, Any] | None = None
    ) -> FileMetadata:
        meta = FileMetadata(instrument=UNKNOWN, file_class="OTHER")
        try:
            meta.date_obs, meta.mjd_obs = observation_time(header)
            meta.night = night_of(meta.date_obs)
        except MetadataError:
            pass  # no usable date: still catalogued (dates are optional for unknown files)
        meta.target = _str(first(header, ("OBJECT",)) or "")
        meta.ra = _float(first(header, ("RA",)))
        meta.dec = _float(first(header, ("DEC",)))
        meta.dit = _float(first(header, ("EXPTIME", "EXPOSURE")))
        meta.filter = _str(first(header, ("FILTER",)) or "")
        meta.extra.update(apply_extra(header, GENERIC_EXTRA))
        if meta.ra is not None and not -360.0 <= meta.ra <= 360.0:
            meta.ra = None  # some writers put sexagesimal strings or junk in RA
        if meta.dec is not None and not -90.0 <= meta.dec <= 90.0:
            meta.dec = None
        return meta
