"""Per-DIT times, parallactic and derotation angles of a SPHERE raw file (IRDIS and IFS).

vlt-sphere's model (sphere.md section c): DIT times from DATE-OBS, DET FRAM UTC, NDIT,
DET DITDELAY and DIT; the parallactic angle at mid-DIT from the apparent sidereal time at the
site and the pointing of ``INS4 DROT2 RA/DEC``; the derotator drift correction before
2016-07-12; then ``derot = parang + pupil offset + instrument offset + True North`` with the
pupil offset by ``INS4 DROT2 MODE`` (ELEV: 135.99 deg; SKY: -100.48 + POSANG; STAT: -100.48)
and the instrument offset 0 for IRDIS, -100.48 deg for IFS. Factored out of the IRDIS Level 1
so that the IFS chain computes its angles the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hcdc.instruments.sphere import constants as sc
from hcdc.science.calibration import timing

__all__ = ["INSTRUMENT_OFFSET_DEG", "dit_angles"]

#: Instrument offset (deg) per arm (vlt-sphere: IRDIS 0, IFS -100.48 +- 0.10).
INSTRUMENT_OFFSET_DEG: dict[str, float] = {"IRDIS": 0.0, "IFS": sc.IFS_INSTRUMENT_OFFSET_DEG}


def dit_angles(
    header: Mapping[str, Any],
    ndit: int,
    *,
    arm: str,
    pupil_offset_deg: float = sc.PUPIL_OFFSET_DEG,
    true_north_deg: float = sc.TRUE_NORTH_DEG,
    name: str = "file",
) -> dict[str, np.ndarray]:
    """Per-DIT ``mjd_start``, ``mjd`` (mid), ``mjd_end``, ``parang`` and ``derot`` (deg).

    ``header`` is the raw file's primary header, ``ndit`` its number of DITs, ``arm`` IRDIS or
    IFS (the instrument offset). Raises ``ValueError`` naming ``name`` and the missing keyword
    or unsupported derotator mode.
    """
    if arm not in INSTRUMENT_OFFSET_DEG:
        raise ValueError(f"{name}: no instrument offset for arm {arm!r} (IRDIS or IFS)")
    try:
        t = sc.read_timing(header)
        ra, dec = sc.read_pointing(header)
        rot = sc.read_derotator(header)
    except KeyError as exc:
        raise ValueError(f"{name}: {exc}") from exc
    start, mid, end = timing.dit_times(t.date_obs, t.fram_utc, ndit, t.dit, t.ditdelay)
    lat = float(sc.header_value(header, "ESO TEL GEOLAT", sc.PARANAL_LAT_DEG))
    lon = float(sc.header_value(header, "ESO TEL GEOLON", sc.PARANAL_LON_DEG))
    parang = timing.parallactic_angle(mid, ra, dec, lat, lon)
    if timing.needs_derotator_correction(start[0], sc.DEROTATOR_FIX_DATE):
        alt = float(sc.header_value(header, "ESO TEL ALT"))
        if rot.begin_deg is None:
            raise ValueError(f"{name}: pre-2016-07-12 data need INS4 DROT2 BEGIN for the derotator fix")
        parang = parang + timing.derotator_drift_correction(alt, rot.begin_deg)
    if rot.mode == "ELEV":
        pupil = pupil_offset_deg
    elif rot.mode == "SKY":
        pupil = sc.IFS_INSTRUMENT_OFFSET_DEG + (rot.posang_deg or 0.0)
    elif rot.mode == "STAT":
        pupil = sc.IFS_INSTRUMENT_OFFSET_DEG
    else:
        raise ValueError(f"{name}: unsupported INS4 DROT2 MODE {rot.mode!r}")
    derot = timing.derotation_angles(
        parang, pupil, true_north_deg, instrument_offset=INSTRUMENT_OFFSET_DEG[arm]
    )
    return {"mjd_start": start.mjd, "mjd": mid.mjd, "mjd_end": end.mjd, "parang": parang, "derot": derot}
