"""SPHERE/SPARTA AO telemetry files (``DPR TYPE='OBJECT,AO'``): their FITS layout, read and written.

Layout (shared/reference/sphere.md section 2; vlt-sphere ``SPARTA.py``, jmilou ``sparta``): an
empty primary HDU with the ESO keywords, then binary tables, each with ``Sec`` and ``USec``
columns (Unix time = ``Sec + USec·1e-6``):

* ``AtmPerfParams``: ``R0`` (m, at 500 nm), ``WindSpeed`` (m/s), ``StrehlRatio`` (0-1);
* ``VisLoopParams``: visible wavefront-sensor loop, ``Flux_avg`` / ``Flux_std`` (ADU) among
  others (``Focus_avg``, ``TTx_avg``, ``TTy_avg``, ``DMPos_avg``, ...);
* ``IRLoopParams``: the differential tip-tilt sensor (DTTS) loop, ``Flux_avg`` / ``Flux_std``
  (ADU), ``DTTPPos_avg``, ``DTTPRes_avg``.

What is derived from them (seeing, tau0, zenith values, validity) is in
:mod:`hcdc.science.monitoring.conditions`. :func:`frame_conditions` interpolates the telemetry
of one or several files to the times of science frames (the per-frame conditions table of a
Level 1 product); :func:`conditions_series` gives the valid samples of a night for an overview.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from astropy import units as u
from astropy.coordinates import FK5, SkyCoord
from astropy.io import fits
from astropy.table import Table
from astropy.time import Time

from hcdc.instruments.base import FileMetadata, MetadataError
from hcdc.instruments.sphere import constants as sc
from hcdc.science.calibration.timing import altitude_azimuth_airmass
from hcdc.science.monitoring import conditions as cond

__all__ = [
    "SPARTA_ATM_TABLE",
    "SPARTA_VIS_TABLE",
    "SPARTA_IR_TABLE",
    "SpartaError",
    "SpartaTelemetry",
    "read_sparta",
    "write_sparta",
    "is_sparta_header",
    "sparta_summary",
    "apply_sparta_summary",
    "conditions_series",
    "frame_conditions",
    "CONDITIONS_EXTNAME",
]

SPARTA_ATM_TABLE = "AtmPerfParams"
SPARTA_VIS_TABLE = "VisLoopParams"
SPARTA_IR_TABLE = "IRLoopParams"
#: Validity limits of AtmPerfParams by column (see hcdc.science.monitoring.conditions).
SPARTA_LIMITS = {
    "StrehlRatio": cond.VALIDITY_LIMITS["strehl"],
    "R0": cond.VALIDITY_LIMITS["r0_m"],
    "WindSpeed": cond.VALIDITY_LIMITS["wind_m_s"],
}
UNIX_EPOCH_MJD = 40587.0
#: EXTNAME of the per-frame conditions table in Level 1 products.
CONDITIONS_EXTNAME = "CONDITIONS"
_ATM_COLUMNS = ("Sec", "R0", "WindSpeed", "StrehlRatio")


class SpartaError(MetadataError):
    """A SPARTA file cannot be read: the message names the file and the reason."""


def _mjd(data: Any, names: set[str]) -> np.ndarray:
    """MJD (UTC) of the rows of a SPARTA table: ``Sec + USec·1e-6`` is Unix time."""
    seconds = np.asarray(data["Sec"], dtype=float)
    if "USec" in names:
        seconds = seconds + np.asarray(data["USec"], dtype=float) * 1e-6
    return UNIX_EPOCH_MJD + seconds / 86400.0


def unix_seconds(mjd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Sec, USec)`` integer columns of MJD times (UTC), rounded to the microsecond."""
    micro = np.round((np.asarray(mjd, dtype=float) - UNIX_EPOCH_MJD) * 86400.0 * 1e6).astype(np.int64)
    return micro // 1_000_000, micro % 1_000_000


@dataclass
class SpartaTelemetry:
    """The content of one SPARTA file.

    ``atm_*``: every AtmPerfParams row (``atm_valid`` marks those inside the validity limits);
    ``vis_*`` / ``ir_*``: VisLoopParams and IRLoopParams ``Flux_avg`` (ADU) with their MJDs
    (empty when the table is absent). ``ra_deg``/``dec_deg`` from the primary ``RA``/``DEC``.
    """

    path: Path | None
    date_obs: dt.datetime | None
    ob_id: int | None
    prog_id: str | None
    ra_deg: float | None
    dec_deg: float | None
    atm_mjd: np.ndarray
    r0_m: np.ndarray
    wind_m_s: np.ndarray
    strehl: np.ndarray
    vis_mjd: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vis_flux: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ir_mjd: np.ndarray = field(default_factory=lambda: np.zeros(0))
    dtts_flux: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def atm_valid(self) -> np.ndarray:
        return cond.valid_samples(self.r0_m, self.wind_m_s, self.strehl)

    @property
    def maintenance(self) -> bool:
        """``OBS PROG ID = 'Maintenance'``: technical telemetry, not attached to a science OB."""
        return (self.prog_id or "").strip().lower() == "maintenance"

    @property
    def mjd_range(self) -> tuple[float, float] | None:
        """First and last sample time of any table (MJD), None when the file holds none."""
        times = np.concatenate([self.atm_mjd, self.vis_mjd, self.ir_mjd])
        return (float(times.min()), float(times.max())) if times.size else None


def is_sparta_header(header: Mapping[str, Any]) -> bool:
    """True for the primary header of a SPARTA file (``DPR TYPE = 'OBJECT,AO'``)."""
    return str(header.get("HIERARCH ESO DPR TYPE", header.get("ESO DPR TYPE", ""))).strip() == "OBJECT,AO"


def _flux_table(hdul: fits.HDUList, name: str, path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    if name not in hdul:
        return np.zeros(0), np.zeros(0)
    hdu = hdul[name]
    names = set(hdu.columns.names)
    if hdu.data is None or len(hdu.data) == 0:
        return np.zeros(0), np.zeros(0)
    if not {"Sec", "Flux_avg"} <= names:
        raise SpartaError(f"{path}: table {name} has no Sec / Flux_avg column (columns: {sorted(names)})")
    return _mjd(hdu.data, names), np.asarray(hdu.data["Flux_avg"], dtype=float)


def _number(header: fits.Header, key: str) -> float | None:
    value = header.get(key)
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def read_sparta(path: str | Path) -> SpartaTelemetry:
    """Read a SPARTA file. Raises :class:`SpartaError` naming the file when it is not FITS, not
    an ``OBJECT,AO`` file, or its AtmPerfParams table lacks ``Sec``/``R0``/``WindSpeed``/
    ``StrehlRatio``."""
    p = Path(path)
    try:
        with fits.open(p, memmap=False) as hdul:
            header = hdul[0].header
            if not is_sparta_header(header):
                raise SpartaError(
                    f"{p}: not a SPARTA file (DPR TYPE is {header.get('HIERARCH ESO DPR TYPE')!r})"
                )
            if SPARTA_ATM_TABLE not in hdul:
                raise SpartaError(f"{p}: no {SPARTA_ATM_TABLE} table")
            atm = hdul[SPARTA_ATM_TABLE]
            names = set(atm.columns.names)
            missing = [c for c in _ATM_COLUMNS if c not in names]
            if missing:
                raise SpartaError(f"{p}: {SPARTA_ATM_TABLE} lacks column(s) {', '.join(missing)}")
            data = atm.data
            if data is None or len(data) == 0:
                atm_mjd = r0 = wind = strehl = np.zeros(0)
            else:
                atm_mjd = _mjd(data, names)
                r0, wind, strehl = (
                    np.asarray(data[c], dtype=float) for c in ("R0", "WindSpeed", "StrehlRatio")
                )
            vis_mjd, vis_flux = _flux_table(hdul, SPARTA_VIS_TABLE, p)
            ir_mjd, ir_flux = _flux_table(hdul, SPARTA_IR_TABLE, p)
            date_obs = header.get("DATE-OBS")
            ob_id = header.get("HIERARCH ESO OBS ID")
            return SpartaTelemetry(
                path=p,
                date_obs=Time(date_obs, scale="utc").datetime if date_obs else None,
                ob_id=int(ob_id) if isinstance(ob_id, int | float) and not isinstance(ob_id, bool) else None,
                prog_id=header.get("HIERARCH ESO OBS PROG ID"),
                ra_deg=_number(header, "RA"),
                dec_deg=_number(header, "DEC"),
                atm_mjd=atm_mjd,
                r0_m=r0,
                wind_m_s=wind,
                strehl=strehl,
                vis_mjd=vis_mjd,
                vis_flux=vis_flux,
                ir_mjd=ir_mjd,
                dtts_flux=ir_flux,
            )
    except SpartaError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SpartaError(f"{p}: unreadable SPARTA file ({exc})") from exc


def write_sparta(
    path: str | Path,
    header: fits.Header,
    atm: Mapping[str, np.ndarray],
    vis: Mapping[str, np.ndarray] | None = None,
    ir: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write a SPARTA file: ``header`` (primary, must say ``DPR TYPE = 'OBJECT,AO'``) and the
    tables from arrays keyed ``mjd``, ``r0_m``, ``wind_m_s``, ``strehl`` (``atm``) and ``mjd``,
    ``flux``, ``flux_std`` (``vis``, ``ir``), with SPARTA's column names and units."""
    if not is_sparta_header(header):
        raise ValueError("a SPARTA header needs HIERARCH ESO DPR TYPE = 'OBJECT,AO'")
    hdus: list[Any] = [fits.PrimaryHDU(header=header)]
    sec, usec = unix_seconds(atm["mjd"])
    hdus.append(
        fits.BinTableHDU.from_columns(
            [
                fits.Column("Sec", "K", array=sec, unit="s"),
                fits.Column("USec", "K", array=usec, unit="us"),
                fits.Column("R0", "E", array=np.asarray(atm["r0_m"], np.float32), unit="m"),
                fits.Column("WindSpeed", "E", array=np.asarray(atm["wind_m_s"], np.float32), unit="m/s"),
                fits.Column("StrehlRatio", "E", array=np.asarray(atm["strehl"], np.float32)),
            ],
            name=SPARTA_ATM_TABLE,
        )
    )
    for name, table in ((SPARTA_VIS_TABLE, vis), (SPARTA_IR_TABLE, ir)):
        if table is None:
            continue
        sec, usec = unix_seconds(table["mjd"])
        hdus.append(
            fits.BinTableHDU.from_columns(
                [
                    fits.Column("Sec", "K", array=sec, unit="s"),
                    fits.Column("USec", "K", array=usec, unit="us"),
                    fits.Column("Flux_avg", "E", array=np.asarray(table["flux"], np.float32), unit="adu"),
                    fits.Column("Flux_std", "E", array=np.asarray(table["flux_std"], np.float32), unit="adu"),
                ],
                name=name,
            )
        )
    out = Path(path)
    fits.HDUList(hdus).writeto(out, overwrite=True)
    return out


# --------------------------------------------------------------------------------------------
# catalogue summary (ingest)


def sparta_summary(table: fits.BinTableHDU) -> dict[str, Any]:
    """Medians of the valid rows of a SPARTA ``AtmPerfParams`` table.

    Returns ``ao_samples``, ``ao_r0_m``, ``ao_seeing_arcsec`` (= 500 nm / r0),
    ``ao_tau0_s`` (= 0.314 r0 / v), ``ao_wind_speed``, ``ao_strehl`` and the MJD range of the
    valid samples (``Sec + USec·1e-6`` is Unix time). Empty dict when no row is valid.
    """
    names = set(table.columns.names)
    data = table.data
    if not set(_ATM_COLUMNS) <= names or data is None or len(data) == 0:
        return {}
    r0, wind, strehl = (np.asarray(data[c], dtype=float) for c in ("R0", "WindSpeed", "StrehlRatio"))
    valid = cond.valid_samples(r0, wind, strehl)
    if not valid.any():
        return {"ao_samples": 0}
    r0, wind, strehl = r0[valid], wind[valid], strehl[valid]
    mjd = _mjd(data, names)[valid]
    return {
        "ao_samples": int(valid.sum()),
        "ao_r0_m": float(np.median(r0)),
        "ao_seeing_arcsec": float(np.median(cond.seeing_arcsec(r0))),
        "ao_tau0_s": float(np.median(cond.tau0_s(r0, wind))),
        "ao_wind_speed": float(np.median(wind)),
        "ao_strehl": float(np.median(strehl)),
        "ao_mjd_start": float(mjd.min()),
        "ao_mjd_end": float(mjd.max()),
    }


def apply_sparta_summary(meta: FileMetadata, hdul: fits.HDUList) -> None:
    """Add the AtmPerfParams medians to ``meta.extra``; fill seeing / tau0 / wind / mjd_end
    from them when the primary header has none (SPARTA headers carry no TEL AMBI values)."""
    try:
        table = hdul[SPARTA_ATM_TABLE]
    except (KeyError, IndexError):
        return
    except Exception as exc:  # noqa: BLE001 - astropy raises several types on broken tables
        raise MetadataError(f"unreadable SPARTA table {SPARTA_ATM_TABLE} ({exc})") from exc
    summary = sparta_summary(table)
    meta.extra.update(summary)
    if summary.get("ao_samples"):
        meta.seeing = meta.seeing if meta.seeing is not None else round(summary["ao_seeing_arcsec"], 4)
        meta.tau0 = meta.tau0 if meta.tau0 is not None else round(summary["ao_tau0_s"], 6)
        if meta.wind_speed is None:
            meta.wind_speed = round(summary["ao_wind_speed"], 3)
        meta.mjd_end = summary["ao_mjd_end"]


# --------------------------------------------------------------------------------------------
# time series and per-frame conditions


def _airmass(mjd: np.ndarray, ra_deg: float | None, dec_deg: float | None) -> np.ndarray:
    """Airmass at Paranal of ``(ra_deg, dec_deg)`` (J2000, precessed to the equinox of the
    middle time: 20 years of precession move a star by ~0.3 deg) at each MJD; NaN when the
    coordinates are unknown."""
    if ra_deg is None or dec_deg is None or mjd.size == 0:
        return np.full(mjd.shape, np.nan)
    times = Time(mjd, format="mjd", scale="utc")
    mid = Time(float(np.median(mjd)), format="mjd", scale="utc")
    of_date = SkyCoord(ra_deg * u.deg, dec_deg * u.deg, frame=FK5(equinox="J2000")).transform_to(
        FK5(equinox=mid)
    )
    ra, dec = float(of_date.ra.deg), float(of_date.dec.deg)
    return altitude_azimuth_airmass(times, ra, dec, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)[2]


def conditions_series(telemetries: Sequence[SpartaTelemetry]) -> dict[str, np.ndarray]:
    """Valid AtmPerfParams samples of several files, in time order, with derived quantities.

    Keys: ``mjd``, ``r0_m``, ``wind_m_s``, ``strehl``, ``seeing`` (arcsec), ``tau0_s``,
    ``airmass`` (from each file's RA/DEC; NaN when absent), ``seeing_zenith``, ``tau0_zenith_s``,
    ``r0_zenith_m``; plus ``dtts_mjd`` / ``dtts_flux`` (IRLoopParams Flux_avg, ADU) and the count
    of discarded samples in ``rejected`` (a one-element array).
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("mjd", "r0_m", "wind_m_s", "strehl", "airmass")}
    dtts_t, dtts_f = [], []
    rejected = 0
    for tel in telemetries:
        valid = tel.atm_valid
        rejected += int((~valid).sum())
        mjd = tel.atm_mjd[valid]
        parts["mjd"].append(mjd)
        parts["r0_m"].append(tel.r0_m[valid])
        parts["wind_m_s"].append(tel.wind_m_s[valid])
        parts["strehl"].append(tel.strehl[valid])
        parts["airmass"].append(_airmass(mjd, tel.ra_deg, tel.dec_deg))
        ok = np.isfinite(tel.dtts_flux)
        dtts_t.append(tel.ir_mjd[ok])
        dtts_f.append(tel.dtts_flux[ok])
    out = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    order = np.argsort(out["mjd"], kind="stable")
    out = {k: v[order] for k, v in out.items()}
    out["seeing"] = cond.seeing_arcsec(out["r0_m"])
    out["tau0_s"] = cond.tau0_s(out["r0_m"], out["wind_m_s"])
    out["seeing_zenith"] = cond.zenith_seeing(out["seeing"], out["airmass"])
    out["tau0_zenith_s"] = cond.zenith_tau0(out["tau0_s"], out["airmass"])
    out["r0_zenith_m"] = cond.zenith_r0(out["r0_m"], out["airmass"])
    t = np.concatenate(dtts_t) if dtts_t else np.zeros(0)
    f = np.concatenate(dtts_f) if dtts_f else np.zeros(0)
    order = np.argsort(t, kind="stable")
    out["dtts_mjd"], out["dtts_flux"] = t[order], f[order]
    out["rejected"] = np.array([rejected])
    return out


#: Columns of the per-frame conditions table: name -> (series key, unit, description).
_FRAME_COLUMNS: dict[str, tuple[str, str, str]] = {
    "STREHL": ("strehl", "", "SPARTA Strehl ratio estimate"),
    "SEEING": ("seeing", "arcsec", "seeing = 500 nm / r0, line of sight"),
    "SEEING_ZENITH": ("seeing_zenith", "arcsec", "seeing * airmass^-0.6"),
    "TAU0": ("tau0_s", "s", "coherence time 0.314 r0 / v, line of sight"),
    "TAU0_ZENITH": ("tau0_zenith_s", "s", "tau0 * airmass^0.6"),
    "R0": ("r0_m", "m", "Fried parameter at 500 nm, line of sight"),
    "R0_ZENITH": ("r0_zenith_m", "m", "r0 * airmass^0.6"),
    "WIND": ("wind_m_s", "m/s", "turbulence wind speed"),
}


def frame_conditions(
    telemetries: Sequence[SpartaTelemetry],
    frame_mjd: np.ndarray,
    ra_deg: float | None = None,
    dec_deg: float | None = None,
    max_gap_s: float | None = None,
) -> Table:
    """Per-frame conditions table (one row per frame time ``frame_mjd``, MJD UTC).

    Columns: ``MJD``, ``AIRMASS`` (of ``(ra_deg, dec_deg)`` at the frame time), ``STREHL``,
    ``SEEING``, ``SEEING_ZENITH`` (arcsec), ``TAU0``, ``TAU0_ZENITH`` (s), ``R0``, ``R0_ZENITH``
    (m), ``WIND`` (m/s), ``DTTS_FLUX`` (ADU, IRLoopParams Flux_avg), ``AO_NEAREST`` (s to the
    nearest valid AtmPerfParams sample) and ``NO_TELEMETRY`` (True: no valid sample close enough,
    the values are NaN). Quantities are interpolated linearly in time between valid samples
    (:func:`hcdc.science.monitoring.conditions.interpolate_series`; gaps longer than
    ``max_gap_s``, by default three sampling intervals, are not bridged); zenith values use the
    frame's airmass. ``meta``: ``AO_DT`` / ``DTTS_DT`` (median sampling intervals, s),
    ``AO_NFILE``, ``AO_NREJ`` (discarded invalid samples).
    """
    frames = np.atleast_1d(np.asarray(frame_mjd, dtype=float))
    series = conditions_series(telemetries)
    atm = cond.interpolate_series(
        series["mjd"],
        {k: series[k] for k in ("strehl", "seeing", "tau0_s", "r0_m", "wind_m_s")},
        frames,
        max_gap_s,
    )
    dtts = cond.interpolate_series(series["dtts_mjd"], {"flux": series["dtts_flux"]}, frames, max_gap_s)
    airmass = _airmass(frames, ra_deg, dec_deg)
    values = dict(atm.values)
    values["seeing_zenith"] = cond.zenith_seeing(values["seeing"], airmass)
    values["tau0_zenith_s"] = cond.zenith_tau0(values["tau0_s"], airmass)
    values["r0_zenith_m"] = cond.zenith_r0(values["r0_m"], airmass)
    table = Table()
    table["MJD"] = frames
    table["MJD"].unit = "d"
    table["AIRMASS"] = airmass
    for name, (key, unit, description) in _FRAME_COLUMNS.items():
        table[name] = values[key]
        table[name].unit = unit or None
        table[name].description = description
    table["DTTS_FLUX"] = dtts.values["flux"]
    table["DTTS_FLUX"].unit = "adu"
    table["AO_NEAREST"] = atm.nearest_s
    table["AO_NEAREST"].unit = "s"
    table["NO_TELEMETRY"] = ~atm.covered
    table.meta["AO_DT"] = atm.interval_s if np.isfinite(atm.interval_s) else -1.0
    table.meta["DTTS_DT"] = dtts.interval_s if np.isfinite(dtts.interval_s) else -1.0
    table.meta["AO_NFILE"] = len(telemetries)
    table.meta["AO_NREJ"] = int(series["rejected"][0])
    return table
