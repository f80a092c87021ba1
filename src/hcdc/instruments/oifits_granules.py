"""OiDB granules of an OIFITS file: one per target x instrument mode (INSNAME) x night.

The rules are those of JMMC oitools' ``OIFitsViewer`` (what OiDB stores at upload, see
../shared/reference/interferometry.md section 2.2), checked field by field against
``oitools_granules.csv`` in ../shared/data/oifits:

* a granule is one OI_TARGET row x one INSNAME (that has an OI_WAVELENGTH table) x one
  ``night_id = round(MJD)`` (the night boundary at 12:00 UTC), built from the rows of OI_VIS,
  OI_VIS2, OI_T3 and OI_FLUX (OI_FLUX rows count in the times, not in the ``nb_*``: the
  reference's FS CMa MATISSE, V892 Tau, bigtest2 and testdata_opt granules need them);
* ``target_name`` = ``TARGET``; ``s_ra`` / ``s_dec`` = ``RAEP0`` / ``DECEP0`` [deg], no epoch
  propagation;
* ``t_min`` / ``t_max`` = min / max ``MJD`` of the granule's rows [MJD, UTC];
* ``t_exptime`` = the **minimum** ``INT_TIME`` of those rows [s] (oitools' choice, not a sum);
* ``em_min`` / ``em_max`` = min / max ``EFF_WAVE`` of the whole OI_WAVELENGTH table [m];
* ``em_res_power`` = mean of ``EFF_WAVE / EFF_BAND`` over the channels where it is finite
  and positive;
* ``nb_channels`` = ``NWAVE`` (channels of the OI_WAVELENGTH table);
* ``nb_vis`` / ``nb_vis2`` / ``nb_t3`` = number of **table rows** (not rows x channels;
  flags ignored);
* ``facility_name`` = ``ARRNAME`` of the first data table holding the granule's rows;
* ``instrument_name`` = the raw ``INSNAME``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from hcdc.instruments.fits_file import open_whole

#: Data tables whose rows make granules. OI_FLUX rows make granules and widen their time
#: range and exposure like the others but are not counted (no ``nb_flux`` column in OiDB).
GRANULE_TABLES: tuple[str, ...] = ("OI_VIS", "OI_VIS2", "OI_T3", "OI_FLUX")
_COUNT_FIELD = {"OI_VIS": "nb_vis", "OI_VIS2": "nb_vis2", "OI_T3": "nb_t3"}


@dataclass
class Granule:
    """One OiDB granule (ObsCore + OiDB column names and units)."""

    target_name: str
    s_ra: float | None  # deg
    s_dec: float | None  # deg
    t_exptime: float | None  # s (minimum INT_TIME)
    t_min: float  # MJD
    t_max: float  # MJD
    em_min: float | None  # m
    em_max: float | None  # m
    em_res_power: float | None
    facility_name: str | None
    instrument_name: str
    nb_vis: int
    nb_vis2: int
    nb_t3: int
    nb_channels: int
    night_id: int  # round(MJD)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).replace("\x00", "").strip()


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def night_id(mjd: np.ndarray) -> np.ndarray:
    """oitools' night of each MJD: Java ``Math.round`` = ``floor(mjd + 0.5)`` (noon UTC boundary)."""
    return np.floor(np.asarray(mjd, dtype=float) + 0.5).astype(np.int64)


@dataclass
class _Wavelength:
    em_min: float | None
    em_max: float | None
    res_power: float | None
    nwave: int


def _wavelength(hdu: fits.BinTableHDU) -> _Wavelength:
    eff_wave = np.asarray(hdu.data["EFF_WAVE"], dtype=float)
    eff_band = np.asarray(hdu.data["EFF_BAND"], dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = eff_wave / eff_band
    good = ratio[np.isfinite(ratio) & (ratio > 0)]
    finite = eff_wave[np.isfinite(eff_wave)]
    return _Wavelength(
        em_min=float(finite.min()) if finite.size else None,
        em_max=float(finite.max()) if finite.size else None,
        res_power=float(good.mean()) if good.size else None,
        nwave=int(eff_wave.size),
    )


@dataclass
class _Accumulator:
    target_id: int
    insname: str
    night: int
    facility: str | None
    t_min: float = math.inf
    t_max: float = -math.inf
    t_exptime: float = math.inf
    nb_vis: int = 0
    nb_vis2: int = 0
    nb_t3: int = 0


def granules_of(hdul: fits.HDUList) -> list[Granule]:
    """The granules of an open OIFITS file, in the order of their first row in the file.

    Raises ``KeyError`` / ``ValueError`` when a mandatory column is missing (the caller turns
    that into a message naming the file).
    """
    targets: dict[int, tuple[str, float | None, float | None]] = {}
    wavelengths: dict[str, _Wavelength] = {}
    for hdu in hdul[1:]:
        name = _text(hdu.header.get("EXTNAME", "")).upper()
        if name == "OI_TARGET" and hdu.data is not None:
            for tid, target, ra, dec in zip(
                hdu.data["TARGET_ID"], hdu.data["TARGET"], hdu.data["RAEP0"], hdu.data["DECEP0"], strict=True
            ):
                targets.setdefault(int(tid), (_text(target), _finite(float(ra)), _finite(float(dec))))
        elif name == "OI_WAVELENGTH" and hdu.data is not None:
            wavelengths.setdefault(_text(hdu.header.get("INSNAME", "")), _wavelength(hdu))

    groups: dict[tuple[int, str, int], _Accumulator] = {}
    for hdu in hdul[1:]:
        name = _text(hdu.header.get("EXTNAME", "")).upper()
        if name not in GRANULE_TABLES or hdu.data is None or len(hdu.data) == 0:
            continue
        insname = _text(hdu.header.get("INSNAME", ""))
        if insname not in wavelengths:
            continue  # oitools: a granule needs the INSNAME's OI_WAVELENGTH
        arrname = _text(hdu.header.get("ARRNAME", "")) or None
        target_ids = np.asarray(hdu.data["TARGET_ID"], dtype=np.int64)
        mjd = np.asarray(hdu.data["MJD"], dtype=float)
        int_time = np.asarray(hdu.data["INT_TIME"], dtype=float)
        with np.errstate(invalid="ignore"):
            nights = night_id(np.where(np.isfinite(mjd), mjd, 0.0))
        field = _COUNT_FIELD.get(name)
        for tid, night, t, exptime in zip(target_ids, nights, mjd, int_time, strict=True):
            if int(tid) not in targets or not math.isfinite(t):
                continue  # a row pointing to no target, or with no time, belongs to no granule
            key = (int(tid), insname, int(night))
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = _Accumulator(int(tid), insname, int(night), arrname)
            acc.t_min = min(acc.t_min, float(t))
            acc.t_max = max(acc.t_max, float(t))
            acc.t_exptime = min(acc.t_exptime, float(exptime))
            if field is not None:
                setattr(acc, field, getattr(acc, field) + 1)

    granules = []
    for acc in groups.values():
        target, ra, dec = targets[acc.target_id]
        wave = wavelengths[acc.insname]
        granules.append(
            Granule(
                target_name=target,
                s_ra=ra,
                s_dec=dec,
                t_exptime=_finite(acc.t_exptime),
                t_min=acc.t_min,
                t_max=acc.t_max,
                em_min=wave.em_min,
                em_max=wave.em_max,
                em_res_power=wave.res_power,
                facility_name=acc.facility,
                instrument_name=acc.insname,
                nb_vis=acc.nb_vis,
                nb_vis2=acc.nb_vis2,
                nb_t3=acc.nb_t3,
                nb_channels=wave.nwave,
                night_id=acc.night,
            )
        )
    return granules


def read_granules(path: str | Path) -> list[Granule]:
    """Granules of the OIFITS file at ``path`` (plain or gzipped)."""
    with open_whole(path) as hdul:
        return granules_of(hdul)


def oidb_header_fields(header: fits.Header) -> dict[str, Any]:
    """The granule columns OiDB takes from the primary header (``modules/oifits.xql``).

    ``quality_level`` from ``HIERARCH QUALITY LEVEL`` (0 = Unknown when absent or outside
    0-5), ``dataproduct_category`` SCIENCE / CALIB from ``HIERARCH PRO SCIENCE`` T / F (None
    when absent), ``progid`` from ``HIERARCH ESO OBS PROG ID`` or ``HIERARCH OBS PROG ID``,
    ``proposal_subid`` (SPICA-DB sub-programme) from ``HIERARCH SPICADB-ID``.
    """
    quality = header.get("HIERARCH QUALITY LEVEL")
    try:
        quality_level = int(quality) if quality is not None and not isinstance(quality, bool) else 0
    except (TypeError, ValueError):
        quality_level = 0
    if not 0 <= quality_level <= 5:
        quality_level = 0
    science = header.get("HIERARCH PRO SCIENCE")
    category = None if science is None else ("SCIENCE" if science in (True, "T") else "CALIB")
    progid = header.get("HIERARCH ESO OBS PROG ID") or header.get("HIERARCH OBS PROG ID")
    subid = header.get("HIERARCH SPICADB-ID")
    return {
        "quality_level": quality_level,
        "dataproduct_category": category,
        "progid": _text(progid)[:64] if progid else None,
        "proposal_subid": _text(subid)[:64] if subid not in (None, "") else None,
    }


#: ``CALSTAT`` of OIFITS 2 data tables: C calibrated (Level 2), U uncalibrated (Level 1).
CALSTAT_LEVELS = {"C": 2, "U": 1}


def calib_level_of(hdul: fits.HDUList) -> int | None:
    """The level the file's data tables declare (``CALSTAT``), None when none says.

    OIFITS 1 has no ``CALSTAT``: its level is then the collection's (OiDB takes it from the
    upload form). Mixed C and U tables count as uncalibrated (the lower level).
    """
    levels = {
        CALSTAT_LEVELS[str(hdu.header["CALSTAT"]).strip().upper()]
        for hdu in hdul[1:]
        if str(hdu.header.get("CALSTAT", "")).strip().upper() in CALSTAT_LEVELS
    }
    return min(levels) if levels else None


def granule_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows of the catalogue's ``granules`` table for the OIFITS file at ``path`` (without
    ``file_id``): the granules plus the header fields of :func:`oidb_header_fields` and the
    level of :func:`calib_level_of`."""
    with open_whole(path) as hdul:
        shared = {**oidb_header_fields(hdul[0].header), "calib_level": calib_level_of(hdul)}
        return [{**granule.as_dict(), **shared} for granule in granules_of(hdul)]
