"""SPHERE/SPARTA AO telemetry: the atmospheric-parameter table of ``DPR TYPE='OBJECT,AO'`` files."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from astropy.io import fits

from hcdc.instruments.base import FileMetadata, MetadataError

#: EXTNAME of the SPARTA table of atmospheric parameters and its validity limits
#: (vlt-sphere SPARTA.py / jmilou sparta: 0.05 < SR <= 0.98, 0 < r0 <= 0.9 m, 0 < v <= 50 m/s).
SPARTA_ATM_TABLE = "AtmPerfParams"
SPARTA_LIMITS = {"StrehlRatio": (0.05, 0.98), "R0": (0.0, 0.9), "WindSpeed": (0.0, 50.0)}
SEEING_WAVELENGTH_M = 500e-9  # r0 is given at 500 nm
RAD_TO_ARCSEC = 180.0 / math.pi * 3600.0
UNIX_EPOCH_MJD = 40587.0


def sparta_summary(table: fits.BinTableHDU) -> dict[str, Any]:
    """Medians of the valid rows of a SPARTA ``AtmPerfParams`` table.

    Returns ``ao_samples``, ``ao_r0_m``, ``ao_seeing_arcsec`` (= 500 nm / r0),
    ``ao_tau0_s`` (= 0.314 r0 / v), ``ao_wind_speed``, ``ao_strehl`` and the MJD range of the
    valid samples (``Sec + USec·1e-6`` is Unix time). Empty dict when no row is valid.
    """
    names = set(table.columns.names)
    data = table.data
    if not {"Sec", "R0", "WindSpeed", "StrehlRatio"} <= names or data is None or len(data) == 0:
        return {}
    valid = np.ones(len(data), dtype=bool)
    for column, (low, high) in SPARTA_LIMITS.items():
        values = np.asarray(data[column], dtype=float)
        valid &= (values > low) & (values <= high)
    if not valid.any():
        return {"ao_samples": 0}
    r0 = np.asarray(data["R0"], dtype=float)[valid]
    wind = np.asarray(data["WindSpeed"], dtype=float)[valid]
    strehl = np.asarray(data["StrehlRatio"], dtype=float)[valid]
    seconds = np.asarray(data["Sec"], dtype=float)[valid]
    if "USec" in names:
        seconds = seconds + np.asarray(data["USec"], dtype=float)[valid] * 1e-6
    mjd = UNIX_EPOCH_MJD + seconds / 86400.0
    return {
        "ao_samples": int(valid.sum()),
        "ao_r0_m": float(np.median(r0)),
        "ao_seeing_arcsec": float(np.median(SEEING_WAVELENGTH_M / r0 * RAD_TO_ARCSEC)),
        "ao_tau0_s": float(np.median(0.314 * r0 / wind)),
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
