"""CHARA/MIRC-X raw frames (Level 0: the observation log).

No raw MIRC-X file or header dump is public (../shared/data/oifits/README.md). The keywords
below are those the public MIRC-X/MYSTIC reduction pipeline reads from raw headers
(github.com/jdmonnier/mircx_mystic, ``headers.py``: ``load``, ``get_mjd``, ``summary``,
``frame_mjd``; ``setup.py``: ``detmode``, ``insmode``, ``beam_tel``, ``lbd0``; ``mircx.py``):

* ``FILETYPE``: ``DATA`` (fringes on the target), ``FOREGROUND``, ``BACKGROUND``,
  ``BEAM1_MAP`` ... ``BEAM6_MAP``, ``FLAT_MAP``; file names ``mircx*.fits[.fz]``;
* ``OBJECT``; ``DATE-OBS`` (``YYYY-MM-DD``; older files ``YYYY/MM/DD`` or ``MM/DD/YYYY``) and
  ``UTC-OBS`` (``hh:mm:ss.sss``, GPS time), ``TIME_S`` + ``TIME_US`` (Linux time; "US" holds
  nanoseconds), ``MJD-OBS`` when present;
* ``EXPOSURE`` (ms), ``HIERARCH MIRC FRAME_RATE`` (Hz; 1000/EXPOSURE when absent),
  ``STARTFR`` / ``LASTFR`` (older ``ENDFR``) frame counters;
* detector mode ``NREADS``, ``NLOOPS``, ``NBIN``, ``GAIN``, ``FRMPRST``; window ``CROPROWS``,
  ``CROPCOLS``; instrument mode ``FILTER1``, ``FILTER2``, ``CONF_NA`` (spectral setup,
  ``H_PRISM``, ``H_PRISM20/40/50``, ``H_GRISM150/200``);
* array: ``BEAMORD0`` ... ``BEAMORD5`` (CHARA beam of each MIRC beam), ``TEL_KEY``
  (``S1=0,S2=1,E1=2,E2=3,W1=4,W2=5``), ``U_<T1>-<T2>`` / ``V_<T1>-<T2>``,
  ``HIERARCH CHARA <tel>_BASELINE_X|Y|Z``.

A raw file of either combiner is recognised by ``FILETYPE`` together with ``CONF_NA``. MYSTIC
(CHARA's K-band combiner, same pipeline and file names) is told apart by ``BEAMCOMB = 'MYSTIC'``
(or ``INSTRUME = 'MYSTIC'``), and its band by ``WAVELEN`` (central wavelength, µm) and
``BANDWID`` (µm): jdmonnier/mircx_mystic at commit 6dc740e, ``setup.py`` (``lbd0``:
``if hdr['BEAMCOMB'] == 'MYSTIC'`` then ``lbd0 = WAVELEN * 1e-6`` and the channel width from
``BANDWID`` over ``FR_ROW2 - FR_ROW1``; ``beam_freq``), ``files.py`` (``INSTRUME`` 'MIRC-X' or
'MYSTIC'), ``bin/mircx_mystic_nightcat.py`` (``'MIRC-X' in INSTRUME``). Such files are
catalogued as instrument ``MYSTIC`` with ``extra['wavelength_um']``/``['bandwidth_um']`` and
their Level 0 granules carry ``em_min``/``em_max`` = WAVELEN ∓ BANDWID/2. No public source
lists SPICA's raw keywords (searched: shared/reference, the indexed public repositories for
SPICA/CHARA pipeline code and keyword lists); SPICA raw files are not recognised.

Normalised values: ``category`` SCIENCE for DATA, CALIB otherwise; ``file_class`` SCIENCE,
FOREGROUND, BACKGROUND, BEAM_MAP, FLAT; ``dit`` = EXPOSURE / 1000 (s); ``ndit`` = frames in the
file (LASTFR - STARTFR + 1); ``mode`` = CONF_NA; ``filter`` = FILTER1[+FILTER2];
``readout_mode`` = ``G<GAIN>-L<NLOOPS>-R<NREADS>`` (the pipeline's own summary); the night is
the date of DATE-OBS+UTC-OBS - 12 h, as for every instrument here.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from astropy.io import fits

from hcdc.instruments.base import FileMetadata, Instrument, MetadataError, datetime_to_mjd, night_of
from hcdc.instruments.registry import register

INSTRUMENT = "MIRC-X"
#: the K-band combiner sharing MIRC-X's raw format and pipeline (``BEAMCOMB = 'MYSTIC'``)
MYSTIC = "MYSTIC"
FACILITY = "CHARA"
#: FILETYPE -> file_class
FILE_CLASS: dict[str, str] = {
    "DATA": "SCIENCE",
    "FOREGROUND": "FOREGROUND",
    "BACKGROUND": "BACKGROUND",
    "FLAT_MAP": "FLAT",
    **{f"BEAM{i}_MAP": "BEAM_MAP" for i in range(1, 7)},
}
#: CHARA telescopes in ``TEL_KEY`` order (the only configuration the pipeline accepts)
TEL_KEY = "S1=0,S2=1,E1=2,E2=3,W1=4,W2=5"
TELESCOPES = ("S1", "S2", "E1", "E2", "W1", "W2")
#: extra[...] name -> keyword
EXTRA: dict[str, str] = {
    "frame_rate_hz": "MIRC FRAME_RATE",
    "nbin": "NBIN",
    "nreads": "NREADS",
    "nloops": "NLOOPS",
    "gain": "GAIN",
    "frmprst": "FRMPRST",
    "croprows": "CROPROWS",
    "cropcols": "CROPCOLS",
    "startfr": "STARTFR",
    "lastfr": "LASTFR",
}


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def observation_date(values: Mapping[str, Any] | fits.Header) -> dt.date:
    """DATE-OBS as a date, from any of the three forms the pipeline accepts."""
    text = _text(values.get("DATE-OBS"))
    for pattern, order in (
        (r"(\d{4})-(\d{2})-(\d{2})", (0, 1, 2)),
        (r"(\d{4})/(\d{2})/(\d{2})", (0, 1, 2)),
        (r"(\d{2})/(\d{2})/(\d{4})", (2, 0, 1)),
    ):
        match = re.fullmatch(pattern, text[:10])
        if match:
            year, month, day = (int(match.group(i + 1)) for i in order)
            try:
                return dt.date(year, month, day)
            except ValueError:
                break
    raise MetadataError(f"DATE-OBS {text!r}: not YYYY-MM-DD, YYYY/MM/DD or MM/DD/YYYY")


def observation_time(values: Mapping[str, Any] | fits.Header) -> dt.datetime:
    """UTC start of the file: DATE-OBS + UTC-OBS (the pipeline's 'gps' time)."""
    day = observation_date(values)
    text = _text(values.get("UTC-OBS"))
    match = re.fullmatch(r"(\d{1,2}):(\d{2}):(\d{2})(\.\d+)?", text)
    if not match:
        raise MetadataError(f"UTC-OBS {text!r}: not hh:mm:ss[.sss]")
    hours, minutes, seconds = (int(match.group(i)) for i in (1, 2, 3))
    fraction = float(match.group(4) or 0.0)
    if hours > 23 or minutes > 59 or seconds > 60:
        raise MetadataError(f"UTC-OBS {text!r}: not a time of day")
    return dt.datetime.combine(day, dt.time()) + dt.timedelta(
        hours=hours, minutes=minutes, seconds=seconds + fraction
    )


def stations(values: Mapping[str, Any] | fits.Header) -> str | None:
    """The CHARA telescopes of MIRC beams 1-6 (``BEAMORDi`` through ``TEL_KEY``), e.g.
    ``S1-S2-E1-E2-W1-W2``; None when the header does not say or uses another TEL_KEY."""
    if _text(values.get("TEL_KEY")) != TEL_KEY:
        return None
    try:
        order = [int(values[f"BEAMORD{i}"]) for i in range(6)]
    except (KeyError, TypeError, ValueError):
        return None
    if sorted(order) != list(range(6)):
        return None
    return "-".join(TELESCOPES[i] for i in order)


@register
class MircxRaw(Instrument):
    """A MIRC-X raw frame file (any FILETYPE)."""

    name: ClassVar[str] = INSTRUMENT
    priority: ClassVar[int] = 50  # above the generic fallback; OIFITS products are claimed first
    identification_keywords: ClassVar[tuple[str, ...]] = ("FILETYPE", "CONF_NA")

    def identify(self, header: fits.Header, hdul: fits.HDUList) -> bool:
        return bool(self.identify_values(header))

    def identify_values(self, values: Mapping[str, Any] | fits.Header) -> bool | None:
        return bool(_text(values.get("FILETYPE"))) and bool(_text(values.get("CONF_NA")))

    def extract(
        self, header: fits.Header, hdul: fits.HDUList, values: Mapping[str, Any] | None = None
    ) -> FileMetadata:
        return self._metadata(header)

    def extract_values(self, values: Mapping[str, Any]) -> FileMetadata | None:
        return self._metadata(values)

    def observation_log(self, meta: FileMetadata) -> list[dict[str, Any]]:
        """The Level 0 granule of a science (``FILETYPE = DATA``) raw file, in OiDB's columns:
        ``target_name`` = OBJECT, ``t_min``/``t_max`` = start/end of the file (MJD),
        ``t_exptime`` = EXPOSURE (s), ``facility_name`` CHARA, ``instrument_name`` MIRC-X,
        ``night_id`` = round(t_min) (OiDB's night split), ``calib_level`` 0, no data tables
        (``nb_*`` = 0) and no position or wavelengths (a raw header has neither in the keywords
        the pipeline reads), except MYSTIC's band: ``em_min``/``em_max`` = WAVELEN ∓ BANDWID/2
        (m) and ``instrument_name`` MYSTIC. Calibration files (backgrounds, beam maps, flats)
        have none."""
        if meta.file_class != "SCIENCE" or not meta.target or meta.mjd_obs is None:
            return []
        t_min = float(meta.mjd_obs)
        em_min = em_max = None
        centre, width = meta.extra.get("wavelength_um"), meta.extra.get("bandwidth_um")
        if centre is not None and width is not None and width < 2 * centre:
            em_min, em_max = (centre - width / 2) * 1e-6, (centre + width / 2) * 1e-6
        return [
            {
                "target_name": meta.target,
                "s_ra": None,
                "s_dec": None,
                "t_exptime": meta.dit,
                "t_min": t_min,
                "t_max": float(meta.mjd_end) if meta.mjd_end is not None else t_min,
                "em_min": em_min,
                "em_max": em_max,
                "em_res_power": None,
                "facility_name": FACILITY,
                "instrument_name": meta.instrument,
                "nb_vis": 0,
                "nb_vis2": 0,
                "nb_t3": 0,
                "nb_channels": 0,
                "night_id": round(t_min),
                "calib_level": 0,
                "dataproduct_category": "SCIENCE",
            }
        ]

    def _metadata(self, values: Mapping[str, Any] | fits.Header) -> FileMetadata:
        filetype = _text(values.get("FILETYPE")).upper()
        if filetype not in FILE_CLASS:
            raise MetadataError(f"FILETYPE {filetype!r}: not one of {', '.join(FILE_CLASS)}")
        start = observation_time(values)
        exposure = _number(values, "EXPOSURE")
        first, last = values.get("STARTFR"), values.get("LASTFR", values.get("ENDFR"))
        frames = None
        if isinstance(first, int) and isinstance(last, int):
            if last < first:
                raise MetadataError(f"LASTFR {last} < STARTFR {first}")
            frames = last - first + 1
        filters = [f for f in (_text(values.get("FILTER1")), _text(values.get("FILTER2"))) if f]
        gain, loops, reads = (values.get(k) for k in ("GAIN", "NLOOPS", "NREADS"))
        extra: dict[str, Any] = {
            k: values.get(key) for k, key in EXTRA.items() if values.get(key) is not None
        }
        extra["facility"] = FACILITY
        if self.name == MYSTIC:
            for name, key in (("wavelength_um", "WAVELEN"), ("bandwidth_um", "BANDWID")):
                if (number := _number(values, key)) is not None:
                    extra[name] = number
        if (tels := stations(values)) is not None:
            extra["stations"] = tels
        mjd = datetime_to_mjd(start)
        duration_days = None
        rate = _number(values, "MIRC FRAME_RATE") or (1000.0 / exposure if exposure else None)
        if frames is not None and rate:
            duration_days = frames / rate / 86400.0
        return FileMetadata(
            instrument=self.name,
            category="SCIENCE" if filetype == "DATA" else "CALIB",
            type=filetype,
            file_class=FILE_CLASS[filetype],
            date_obs=start,
            mjd_obs=mjd,
            mjd_end=None if duration_days is None else mjd + duration_days,
            night=night_of(start),
            dit=None if exposure is None else exposure / 1000.0,
            ndit=frames,
            filter="+".join(filters) or None,
            mode=_text(values.get("CONF_NA")) or None,
            readout_mode=None if None in (gain, loops, reads) else f"G{gain}-L{loops}-R{reads}",
            target=_text(values.get("OBJECT")) or None,
            extra=extra,
        )


def _number(values: Mapping[str, Any] | fits.Header, key: str) -> float | None:
    value = values.get(key)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise MetadataError(f"{key} {value!r}: not a number") from None
    if number <= 0:
        raise MetadataError(f"{key} {number}: must be positive")
    return number


def is_mystic(values: Mapping[str, Any] | fits.Header) -> bool:
    """A raw file of MYSTIC, not MIRC-X: ``BEAMCOMB`` or ``INSTRUME`` is 'MYSTIC'."""
    return MYSTIC in (_text(values.get("BEAMCOMB")).upper(), _text(values.get("INSTRUME")).upper())


@register
class MysticRaw(MircxRaw):
    """A MYSTIC raw frame file: MIRC-X's format with ``BEAMCOMB = 'MYSTIC'`` (module docstring)."""

    name: ClassVar[str] = MYSTIC
    priority: ClassVar[int] = 51  # before MIRC-X, which claims any FILETYPE + CONF_NA file
    identification_keywords: ClassVar[tuple[str, ...]] = ("FILETYPE", "CONF_NA", "BEAMCOMB", "INSTRUME")

    def identify_values(self, values: Mapping[str, Any] | fits.Header) -> bool | None:
        return bool(super().identify_values(values)) and is_mystic(values)
