"""What every instrument module provides, and the normalized metadata it extracts.

An instrument module (``sphere.py``, ``naco.py``, ``oifits.py``, ...) defines one or more
:class:`Instrument` subclasses and registers them in :mod:`hcdc.instruments.registry`.
The archive never reads instrument-specific keywords itself: it asks the registry which
instrument a file belongs to and stores the :class:`FileMetadata` that instrument returns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar

from astropy.io import fits


class MetadataError(ValueError):
    """A file cannot be catalogued: an essential keyword is missing or invalid.

    The message names the keyword and the reason; the archive adds the file name and
    quarantines the file.
    """


@dataclass
class FileMetadata:
    """Normalized metadata of one file (the columns of the observation log).

    Units: ``dit`` in seconds, ``ra``/``dec`` in degrees (ICRS), ``mjd_obs`` in days (UTC),
    ``seeing`` in arcsec, ``tau0`` in seconds, ``wind_speed`` in m/s, wavelengths in micrometres.
    ``night`` is the local night's start date (the date of the evening the night began; ESO
    convention: DATE-OBS minus 12 h).
    """

    instrument: str  # e.g. "SPHERE", "NACO", "OIFITS", "UNKNOWN"
    arm: str | None = None  # SPHERE: "IRDIS", "IFS", "ZIMPOL", "SPARTA"; OIFITS: INSNAME family
    category: str | None = None  # DPR CATG: SCIENCE, CALIB, ACQUISITION, TEST ...
    type: str | None = None  # DPR TYPE as written (OBJECT, OBJECT,CENTER, DARK,BACKGROUND, ...)
    technique: str | None = None  # DPR TECH (IMAGE,DUAL,CORONOGRAPHY, IFU, ...)
    file_class: str | None = None  # normalized class, e.g. "SCIENCE", "CENTER", "FLUX", "SKY", "DARK"
    date_obs: dt.datetime | None = None  # UTC, naive
    mjd_obs: float | None = None
    mjd_end: float | None = None  # last MJD covered (interferometry products, sequences)
    night: dt.date | None = None
    dit: float | None = None
    ndit: int | None = None
    filter: str | None = None  # filter combination (SPHERE INS COMB IFLT, NACO INS OPTI6 NAME ...)
    coronagraph: str | None = None
    nd_filter: str | None = None
    readout_mode: str | None = None
    mode: str | None = None  # observing mode: DBI, CI, DPI, LSS, IFS-YJ, IFS-YJH, ...
    target: str | None = None
    ra: float | None = None
    dec: float | None = None
    prog_id: str | None = None
    ob_id: int | None = None
    ob_name: str | None = None
    tpl_id: str | None = None
    tpl_start: str | None = None
    tpl_expno: int | None = None
    tpl_nexp: int | None = None
    airmass: float | None = None
    seeing: float | None = None
    tau0: float | None = None
    wind_speed: float | None = None
    wavelength_min: float | None = None
    wavelength_max: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # instrument-specific, JSON-serialisable

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Instrument:
    """Base class of an instrument (or instrument arm) definition.

    Subclasses set :attr:`name` and implement :meth:`identify` and :meth:`extract`.
    ``priority`` orders identification: the registry tries higher priorities first, and the
    generic fallback has the lowest.
    """

    name: ClassVar[str] = "UNKNOWN"
    priority: ClassVar[int] = 0

    def identify(self, header: fits.Header, hdul: fits.HDUList) -> bool:
        """True when the file (primary ``header``, whole ``hdul``) belongs to this instrument."""
        raise NotImplementedError

    def extract(self, header: fits.Header, hdul: fits.HDUList) -> FileMetadata:
        """Normalized metadata; raises :class:`MetadataError` when an essential keyword is bad."""
        raise NotImplementedError
