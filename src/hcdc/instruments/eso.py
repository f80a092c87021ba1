"""Keyword tables and helpers shared by ESO instruments (SPHERE, NACO, ...).

ESO raw files carry the same dictionary of ``HIERARCH ESO`` keywords for data-product
classification (DPR), observation blocks (OBS), templates (TPL) and telescope/ambient (TEL)
whatever the instrument; only the detector and optical keywords differ. Those common parts
are declared here once, as ``FileMetadata field -> keywords tried in order`` tables.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from astropy.io import fits

from hcdc.instruments.base import (
    FileMetadata,
    MetadataError,
    datetime_to_mjd,
    mjd_to_datetime,
    night_of,
    parse_iso_datetime,
)

#: Anything with ``.get(keyword)``: an astropy Header or the dict of ``parse_header_block``.
Source = Mapping[str, Any] | fits.Header

ESO = "ESO "


def eso(key: str) -> str:
    """Keyword of an ESO hierarchical card given as ``'DPR TYPE'``, spelled as astropy keys it
    (``'ESO DPR TYPE'``): valid both for ``fits.Header.get`` and for the dict of
    :func:`hcdc.instruments.eso_headers.parse_header_block`."""
    return ESO + key


def _str(value: Any) -> str | None:
    text = str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    """An integer keyword's value; None for text, non-integral or non-finite numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _float(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def _float(value: Any) -> float | None:
    """A real keyword's value; None for text, NaN and infinities (1e400 parses as inf)."""
    if isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return out if math.isfinite(out) else None


#: Converters that read numbers: a value present that they cannot read is invalid (not merely
#: "not measured", which ESO writes as -1 and ``_positive`` also maps to None).
_NUMBER_READERS: dict[Callable[[Any], Any], Callable[[Any], Any]] = {}


def invalid_number(value: Any, convert: Callable[[Any], Any]) -> bool:
    """True when ``convert`` reads numbers and ``value`` is not a finite number of its kind."""
    reader = _NUMBER_READERS.get(convert)
    return reader is not None and reader(value) is None


def add_warning(meta: FileMetadata, text: str) -> None:
    """Record a problem that did not stop cataloguing in ``meta.extra['warnings']``."""
    meta.extra.setdefault("warnings", []).append(text)


def _invalid_warning(key: str, value: Any) -> str:
    return f"{key} = {value!r} is not a valid number: left empty"


def _positive(value: Any) -> float | None:
    """ESO writes -1 (or 0) when an ambient quantity was not measured: treat as missing."""
    out = _float(value)
    return out if out is not None and out > 0 else None


def _airmass(value: Any) -> float | None:
    out = _float(value)
    return out if out is not None and out >= 1.0 else None


_NUMBER_READERS.update({_int: _int, _float: _float, _positive: _float, _airmass: _float})


#: FileMetadata field -> (keywords tried in order, converter). Shared by all ESO instruments.
COMMON_FIELDS: dict[str, tuple[tuple[str, ...], Callable[[Any], Any]]] = {
    "category": ((eso("DPR CATG"),), _str),
    "type": ((eso("DPR TYPE"),), _str),
    "technique": ((eso("DPR TECH"),), _str),
    "target": ((eso("OBS TARG NAME"), "OBJECT"), _str),
    "prog_id": ((eso("OBS PROG ID"),), _str),
    "ob_id": ((eso("OBS ID"),), _int),
    "ob_name": ((eso("OBS NAME"),), _str),
    "tpl_id": ((eso("TPL ID"),), _str),
    "tpl_start": ((eso("TPL START"),), _str),
    "tpl_expno": ((eso("TPL EXPNO"),), _int),
    "tpl_nexp": ((eso("TPL NEXP"),), _int),
    "ndit": ((eso("DET NDIT"),), _int),
    "tau0": ((eso("TEL AMBI TAU0"),), _positive),  # [s]
    "wind_speed": ((eso("TEL AMBI WINDSP"),), _float),  # [m/s]
    "ra": (("RA",), _float),  # [deg] J2000 pointing
    "dec": (("DEC",), _float),  # [deg]
}

#: FileMetadata field -> (start keyword, end keyword, converter): the mean of the valid values.
AVERAGED_FIELDS: dict[str, tuple[str, str, Callable[[Any], Any]]] = {
    "airmass": (eso("TEL AIRM START"), eso("TEL AIRM END"), _airmass),
    "seeing": (eso("TEL AMBI FWHM START"), eso("TEL AMBI FWHM END"), _positive),  # DIMM [arcsec]
}

#: extra[...] name -> keywords tried in order (kept as written in the header).
COMMON_EXTRA: dict[str, tuple[str, ...]] = {
    "arcfile": ("ARCFILE",),
    "origfile": ("ORIGFILE",),
    "object": ("OBJECT",),
    "telescope": ("TELESCOP",),
    "exptime": ("EXPTIME",),
    "pi_coi": (eso("OBS PI-COI NAME"),),
    "parang_start": (eso("TEL PARANG START"),),
    "parang_end": (eso("TEL PARANG END"),),
    "altitude": (eso("TEL ALT"),),
    "ia_fwhm": (eso("TEL IA FWHM"),),
    "ambient_temp": (eso("TEL AMBI TEMP"),),
    "wind_dir": (eso("TEL AMBI WINDDIR"),),
    "humidity": (eso("TEL AMBI RHUM"),),
    "pressure": (eso("TEL AMBI PRES START"),),
    "iwv": (eso("TEL AMBI IWV START"),),
    "pma": (eso("TEL TARG PMA"),),
    "pmd": (eso("TEL TARG PMD"),),
}


def first(header: Source, keywords: Iterable[str]) -> Any:
    """Value of the first of ``keywords`` present with a non-empty value, else None."""
    for key in keywords:
        value = header.get(key)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, fits.card.Undefined):
            continue
        return value.strip() if isinstance(value, str) else value
    return None


def first_keyed(header: Source, keywords: Iterable[str]) -> tuple[str | None, Any]:
    """``(keyword, value)`` of the first of ``keywords`` with a value (see :func:`first`)."""
    for key in keywords:
        value = first(header, (key,))
        if value is not None:
            return key, value
    return None, None


def apply_fields(
    header: Source,
    table: Mapping[str, tuple[tuple[str, ...], Callable[[Any], Any]]],
    warnings: list[str] | None = None,
) -> dict[str, Any]:
    """Evaluate a ``field -> (keywords, converter)`` table on a header (missing -> None).

    A value present but not a valid number for a numeric field is left empty, and said in
    ``warnings`` (when given).
    """
    out: dict[str, Any] = {}
    for name, (keywords, convert) in table.items():
        key, value = first_keyed(header, keywords)
        out[name] = None if value is None else convert(value)
        if value is not None and warnings is not None and invalid_number(value, convert):
            warnings.append(_invalid_warning(str(key), value))
    return out


def apply_averaged(
    header: Source,
    table: Mapping[str, tuple[str, str, Callable[[Any], Any]]],
    warnings: list[str] | None = None,
) -> dict:
    """Mean of the valid start/end values of each ``field -> (start, end, converter)`` entry
    (invalid numbers are left out and said in ``warnings``, when given)."""
    out: dict[str, Any] = {}
    for name, (start_key, end_key, convert) in table.items():
        values = []
        for key in (start_key, end_key):
            raw = header.get(key)
            if raw is None:
                continue
            values.append(convert(raw))
            if warnings is not None and invalid_number(raw, convert):
                warnings.append(_invalid_warning(key, raw))
        values = [v for v in values if v is not None]
        out[name] = round(sum(values) / len(values), 6) if values else None
    return out


def apply_extra(header: Source, table: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """Evaluate an ``extra name -> keywords`` table, keeping only present values (JSON types)."""
    out: dict[str, Any] = {}
    for name, keywords in table.items():
        value = first(header, keywords)
        if value is None:
            continue
        out[name] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return out


#: DATE-OBS and MJD-OBS written by one instrument agree to a millisecond (ESO: 4 decimals of
#: seconds, 8 of days); a larger difference means one of them is wrong.
TIME_AGREEMENT_S = 1.0


def observation_time(header: Source, warnings: list[str] | None = None) -> tuple[dt.datetime, float]:
    """(DATE-OBS as naive UTC, MJD-OBS) of a raw file; one is derived from the other if needed.

    Raises :class:`MetadataError` when both are missing or unparsable. When both are present
    and differ by more than :data:`TIME_AGREEMENT_S`, both are kept as written and the
    difference is said in ``warnings`` (when given): hcdc cannot tell which one is right.
    """
    raw_date = header.get("DATE-OBS")
    raw_mjd = _float(header.get("MJD-OBS"))
    date_obs: dt.datetime | None = None
    if raw_date is not None and str(raw_date).strip():
        try:
            date_obs = parse_iso_datetime(str(raw_date))
        except ValueError as exc:
            if raw_mjd is None:
                raise MetadataError(f"invalid DATE-OBS {raw_date!r} and no MJD-OBS") from exc
    if date_obs is None and raw_mjd is None:
        raise MetadataError("missing essential keyword DATE-OBS (and MJD-OBS)")
    if date_obs is None:
        date_obs = mjd_to_datetime(raw_mjd)
    mjd = raw_mjd if raw_mjd is not None else datetime_to_mjd(date_obs)
    if warnings is not None and raw_mjd is not None:
        difference_s = (datetime_to_mjd(date_obs) - raw_mjd) * 86400.0
        if abs(difference_s) > TIME_AGREEMENT_S:
            warnings.append(
                f"DATE-OBS {date_obs.isoformat()} and MJD-OBS {raw_mjd} disagree by {difference_s:.1f} s "
                "(DATE-OBS is used for the night)"
            )
    return date_obs, mjd


#: Essential numeric keywords and their readers: present but unreadable is as bad as missing.
ESSENTIAL_NUMBERS: dict[str, Callable[[Any], Any]] = {
    eso("DET SEQ1 DIT"): _float,  # [s]
    eso("DET DIT"): _float,  # [s]
    eso("DET NDIT"): _int,
}


def require(header: Source, keywords: Iterable[str]) -> None:
    """Raise :class:`MetadataError` naming the first of ``keywords`` that is missing, empty or
    (for the numbers of :data:`ESSENTIAL_NUMBERS`) not a valid finite number."""
    for key in keywords:
        value = first(header, (key,))
        if value is None:
            raise MetadataError(f"missing essential keyword {key}")
        reader = ESSENTIAL_NUMBERS.get(key)
        if reader is not None and reader(value) is None:
            raise MetadataError(f"invalid essential keyword {key} = {value!r} (not a valid finite number)")


def common_metadata(header: Source, instrument: str) -> FileMetadata:
    """FileMetadata with every ESO-common field filled (DPR, OB/TPL, time, night, ambient)."""
    warnings: list[str] = []
    date_obs, mjd = observation_time(header, warnings)
    values = apply_fields(header, COMMON_FIELDS, warnings)
    values.update(apply_averaged(header, AVERAGED_FIELDS, warnings))
    meta = FileMetadata(
        instrument=instrument, date_obs=date_obs, mjd_obs=mjd, night=night_of(date_obs), **values
    )
    for text in warnings:
        add_warning(meta, text)
    if meta.category == "CALIB" and first(header, (eso("OBS TARG NAME"),)) is None:
        # internal calibrations have no target: their OBJECT just repeats the DPR TYPE
        meta.target = None
    meta.extra.update(apply_extra(header, COMMON_EXTRA))
    return meta
