"""What every instrument module provides, and the normalized metadata it extracts.

An instrument module (``sphere.py``, ``naco.py``, ``oifits.py``, ...) defines one or more
:class:`Instrument` subclasses and registers them in :mod:`hcdc.instruments.registry`.
The archive never reads instrument-specific keywords itself: it asks the registry which
instrument a file belongs to and stores the :class:`FileMetadata` that instrument returns.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from astropy.io import fits


class MetadataError(ValueError):
    """A file cannot be catalogued: an essential keyword is missing or invalid.

    The message names the keyword and the reason; the archive adds the file name and
    quarantines the file.
    """


class UnreadableFileError(MetadataError):
    """A file cannot be read at all: not FITS, truncated, corrupt compression, unreadable.

    Raised by :func:`hcdc.instruments.registry.read_file`; the message says the reason and the
    archive adds the file name.
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


@dataclass
class Level1Cube:
    """What Level 2 post-processing needs of an instrument's Level 1 product.

    ``cube`` is (wavelengths, frames, y, x) in ``unit``; ``psf`` the off-axis PSF per wavelength
    (wavelengths, y, x; the mean of the flux frames), None when the product has none; ``derot``
    the per-frame angles (deg) in the convention the product's header declares (hcdc Level 1:
    ``HIERARCH HCDC ANGCONV``/``ROTSENSE``/``ANGSKY``, docs/conventions.md); ``wavelengths_um``
    one value per plane; ``pixel_scale_mas`` the instrument's plate scale (mas/px); ``header``
    the primary header of the cube (pointing, conventions, provenance).
    """

    cube: np.ndarray
    psf: np.ndarray | None
    derot: np.ndarray
    wavelengths_um: np.ndarray
    pixel_scale_mas: float
    unit: str
    header: fits.Header
    #: per-frame conditions (columns ``STREHL``, ``TAU0``, ``SEEING``, ``DTTS_FLUX``,
    #: ``NO_TELEMETRY``, ... one row per frame, astropy Table), None when the product has none
    conditions: Any = None


@dataclass
class Level1Frames:
    """The science frames of a Level 1 product, (wavelengths, frames, y, x) (possibly memory-
    mapped), and its per-frame conditions as columns (``STREHL``, ``SEEING``, ``TAU0``, ``MJD``,
    ``NO_TELEMETRY``, ..., one value per frame), None when the product has none."""

    cube: np.ndarray
    conditions: dict[str, np.ndarray] | None


class Instrument:
    """Base class of an instrument (or instrument arm) definition.

    Subclasses set :attr:`name` and implement :meth:`identify` and :meth:`extract`.
    ``priority`` orders identification: the registry tries higher priorities first, and the
    generic fallback has the lowest.
    """

    name: ClassVar[str] = "UNKNOWN"
    priority: ClassVar[int] = 0
    #: When True, the registry parses the raw primary header block once into a plain
    #: ``keyword -> value`` dict (fast, see ``eso_headers.parse_header_block``) and passes it
    #: to :meth:`extract` as ``values``; instruments reading many keywords set it.
    wants_values: ClassVar[bool] = False
    #: Calibration-association rules per arm (``None`` = no arm): tuples of
    #: :class:`hcdc.instruments.rules.Need`, evaluated by ``association.associate``.
    association_rules: ClassVar[Mapping[str | None, tuple[Any, ...]]] = {}
    #: Per arm, the metadata keys (besides instrument, arm, night and OB) that define one
    #: dataset (one instrument setup), used by ``association.dataset_key``.
    dataset_setup: ClassVar[Mapping[str | None, tuple[str, ...]]] = {}

    def observation_log(self, meta: FileMetadata) -> list[dict[str, Any]]:
        """Level 0 granules of a raw file (rows of the catalogue's ``granules`` table, without
        ``file_id``, ``calib_level`` 0): the observation log OiDB receives from raw headers.
        None by default; interferometric instruments whose raw files are catalogued (MIRC-X)
        return one per science file."""
        return []

    def identify(self, header: fits.Header, hdul: fits.HDUList) -> bool:
        """True when the file (primary ``header``, whole ``hdul``) belongs to this instrument."""
        raise NotImplementedError

    def extract(
        self, header: fits.Header, hdul: fits.HDUList, values: Mapping[str, Any] | None = None
    ) -> FileMetadata:
        """Normalized metadata; raises :class:`MetadataError` when an essential keyword is bad.

        ``values`` (optional) holds the primary header as a plain dict keyed like astropy
        (``'ESO DPR TYPE'``); when None the instrument reads ``header`` itself.
        """
        raise NotImplementedError

    # -- Level 1 products, for Level 2 ----------------------------------------------------------

    def read_level1(self, path: Path) -> Level1Cube | None:
        """The Level 1 product at ``path`` (a product directory or one of its files) as Level 2
        reads it, or None when ``path`` is not a Level 1 product of this instrument.

        An instrument that writes Level 1 products implements it (the default: None, no Level 1
        format); :func:`hcdc.instruments.registry.read_level1` asks every instrument in turn.
        Raises ``ValueError`` naming the file when the product is this instrument's but unreadable.
        """
        return None

    def read_level1_frames(self, path: Path, conditions: bool = True) -> Level1Frames | None:
        """Only the science frames and (with ``conditions``) their per-frame conditions of the
        Level 1 product at ``path`` (what a reference library reads of each of thousands of
        products), or None when it is not this instrument's. The default reads the whole product
        (:meth:`read_level1`); an instrument overrides it with a cheaper reader."""
        product = self.read_level1(path)
        if product is None:
            return None
        table = product.conditions if conditions else None
        columns = None
        if table is not None:
            columns = {name: np.asarray(table[name]) for name in table.colnames}
        return Level1Frames(product.cube, columns)

    # -- fast path of ingest: the primary header's values only, no astropy Header ------------
    #
    # ``registry.read_metadata`` parses a plain FITS file's primary header once with
    # ``eso_headers.parse_header_block`` and asks the instruments, by priority, through the two
    # methods below. An instrument that cannot answer from those values alone (it needs the
    # extensions or astropy's own card parsing) returns None, and the file is read by the full
    # astropy path (``registry.read_file``) instead, so both paths give the same result.

    #: Primary-header keywords that :meth:`identify_values` reads. The registry uses the fast
    #: path only when each of them is written as a plain, single, upper-case value card (the
    #: form in which the fast parser and astropy are guaranteed to read the same value).
    identification_keywords: ClassVar[tuple[str, ...]] = ()

    def identify_values(self, values: Mapping[str, Any]) -> bool | None:
        """Like :meth:`identify` from the primary header's ``values`` (keyword -> value, keyed
        like astropy); None when the answer needs more than the primary header.

        Must agree with :meth:`identify` whenever it returns True or False. The default (None)
        sends every file this instrument might claim through the full astropy path.
        """
        return None

    def extract_values(self, values: Mapping[str, Any]) -> FileMetadata | None:
        """Like :meth:`extract` from the primary header's ``values`` alone; None when the
        instrument needs the file itself (extension tables, astropy cards).

        Must return exactly what :meth:`extract` returns for the same file; raises
        :class:`MetadataError` as :meth:`extract` does. The default (None) means "always
        needs the file".
        """
        return None


# --- time helpers shared by every instrument module -------------------------------------------

MJD_EPOCH = dt.datetime(1858, 11, 17)
NIGHT_OFFSET = dt.timedelta(hours=12)


def night_of(date_obs: dt.datetime) -> dt.date:
    """Night a UTC time belongs to: the calendar date of ``date_obs - 12 h``.

    This is the convention of the ESO archive tools read for this project (spherical's
    ``NIGHT_START``: the previous date when the UT hour is < 12) and of OiDB (night boundary at
    12:00 UTC). For Chilean sites it names the local evening the night began; daytime
    calibrations taken after 12:00 UT (morning in Chile) belong to the next night.
    """
    return (date_obs - NIGHT_OFFSET).date()


def mjd_to_datetime(mjd: float) -> dt.datetime:
    """UTC datetime (naive) of a Modified Julian Date (no leap-second bookkeeping, like headers)."""
    return MJD_EPOCH + dt.timedelta(days=float(mjd))


def datetime_to_mjd(when: dt.datetime) -> float:
    """Modified Julian Date (days) of a naive UTC datetime."""
    return (when - MJD_EPOCH) / dt.timedelta(days=1)


def parse_iso_datetime(value: str) -> dt.datetime:
    """Parse a FITS ``DATE-OBS`` value (``YYYY-MM-DD[Thh:mm:ss[.ffff]]``) as naive UTC.

    Raises :class:`ValueError` on anything else. Fractions of seconds beyond microseconds are
    rounded (ESO writes 4 decimals).
    """
    text = str(value).strip()
    if len(text) == 10:
        return dt.datetime.strptime(text, "%Y-%m-%d")
    date_part, _, time_part = text.partition("T")
    if not time_part:
        raise ValueError(f"not an ISO date-time: {text!r}")
    hms, _, frac = time_part.partition(".")
    base = dt.datetime.strptime(f"{date_part}T{hms}", "%Y-%m-%dT%H:%M:%S")
    if frac:
        if not frac.isdigit():
            raise ValueError(f"not an ISO date-time: {text!r}")
        base += dt.timedelta(microseconds=round(float("0." + frac) * 1e6))
    return base
