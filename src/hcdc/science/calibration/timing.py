"""Per-DIT times, parallactic angles and derotation angles (pure functions).

Timing model (vlt-sphere ``toolbox.compute_times``; shared/reference/sphere.md section c)::

    t0 = DATE-OBS ; t1 = DET FRAM UTC ; step = (t1 - t0) / NDIT
    start_i = t0 + i * step + DITDELAY ; mid_i = start_i + DIT / 2 ; end_i = start_i + DIT

Parallactic angle (vlt-sphere ``parallatic_angle``), with the hour angle from the *apparent*
sidereal time at the site::

    pa = -atan2(-sin HA, cos(dec) tan(lat) - sin(dec) cos HA),  + 360 deg where HA < 0 if dec >= lat

Derotation angle (vlt-sphere: "PA_on-sky = PA_detector + PARANGLE + True_North + PUP_OFFSET +
INSTRUMENT_OFFSET")::

    derot = parang + pupil_offset + instrument_offset + true_north

Frame ``k`` turned **counter-clockwise** (origin lower) by ``derot[k]`` is north up / east left,
as in vlt-sphere, VIP and IRDAP: hcdc's :func:`hcdc.science.geometry.derotate` takes
:func:`hcdc.science.orientation.rotation_from_derotation` of it (``-derot``; docs/conventions.md,
"Rotation sense"). Angles in degrees, times as :class:`astropy.time.Time` (UTC).
No IERS table is ever downloaded: the bundled ``astropy-iers-data`` tables are used (only
while hcdc computes a sidereal time: astropy's settings are not changed at import).
"""

from __future__ import annotations

import threading

import numpy as np
from astropy import units as u
from astropy.time import Time, TimeDelta
from astropy.utils import iers

# Serialises the temporary IERS setting below: ``set_temp`` restores the previous value on exit,
# so two threads interleaving could restore auto-download while the other still computes.
_IERS_LOCK = threading.Lock()

__all__ = [
    "dit_times",
    "local_apparent_sidereal_time",
    "parallactic_angle",
    "altitude_azimuth_airmass",
    "derotation_angles",
    "derotator_drift_correction",
    "needs_derotator_correction",
]


def dit_times(
    date_obs: str | Time, fram_utc: str | Time, ndit: int, dit: float, ditdelay: float
) -> tuple[Time, Time, Time]:
    """Start, middle and end (UTC) of each of the ``ndit`` DITs of one raw file.

    ``date_obs`` is DATE-OBS (start of the sequence), ``fram_utc`` is DET FRAM UTC (end of the
    last DIT), ``dit`` and ``ditdelay`` in seconds. Returns three :class:`Time` arrays of length
    ``ndit``.
    """
    if ndit < 1:
        raise ValueError(f"NDIT must be >= 1, got {ndit}")
    if dit <= 0:
        raise ValueError(f"DIT must be > 0 s, got {dit}")
    t0 = Time(date_obs, scale="utc")
    t1 = Time(fram_utc, scale="utc")
    total_s = (t1 - t0).to_value(u.s)
    if total_s <= 0:
        raise ValueError(f"DET FRAM UTC ({t1.isot}) is not after DATE-OBS ({t0.isot})")
    step_s = total_s / ndit
    offsets = np.arange(ndit) * step_s + ditdelay
    start = t0 + TimeDelta(offsets, format="sec")
    mid = start + TimeDelta(dit / 2.0, format="sec")
    end = start + TimeDelta(dit, format="sec")
    return start, mid, end


def local_apparent_sidereal_time(times: Time, lon_deg: float) -> np.ndarray:
    """Local apparent sidereal time in degrees at east longitude ``lon_deg``."""
    # Never download IERS tables (no internet in the data centre): astropy-iers-data is bundled.
    with _IERS_LOCK, iers.conf.set_temp("auto_download", False):
        lst = Time(times).sidereal_time("apparent", longitude=lon_deg * u.deg)
    return np.atleast_1d(lst.to_value(u.deg))


def parallactic_angle(
    times: Time, ra_deg: float, dec_deg: float, lat_deg: float, lon_deg: float
) -> np.ndarray:
    """Parallactic angle (deg) of a target at apparent ``(ra_deg, dec_deg)`` for each time.

    Uses the apparent sidereal time at longitude ``lon_deg`` (east positive) and the site
    latitude ``lat_deg``; includes vlt-sphere's +360 deg branch (where HA < 0 when the target
    culminates north of the zenith, dec >= lat) so that the angle is continuous through transit.
    """
    ha = np.radians(local_apparent_sidereal_time(times, lon_deg) - ra_deg)
    dec = np.radians(dec_deg)
    lat = np.radians(lat_deg)
    pa = -np.arctan2(-np.sin(ha), np.cos(dec) * np.tan(lat) - np.sin(dec) * np.cos(ha))
    pa_deg = np.degrees(pa)
    if dec_deg >= lat_deg:
        # Wrap HA into (-180, 180] so the test "HA < 0" means "before transit".
        ha_wrapped = (np.degrees(ha) + 180.0) % 360.0 - 180.0
        pa_deg = np.where(ha_wrapped < 0, pa_deg + 360.0, pa_deg)
    return pa_deg


def altitude_azimuth_airmass(
    times: Time, ra_deg: float, dec_deg: float, lat_deg: float, lon_deg: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Altitude (deg), azimuth (deg, ESO convention: S = 0, W = 90) and airmass (sec z, plane
    parallel) of a target at apparent ``(ra_deg, dec_deg)`` for each time, seen from the site at
    latitude ``lat_deg`` and east longitude ``lon_deg``. Airmass is NaN below the horizon."""
    ha = np.radians(local_apparent_sidereal_time(times, lon_deg) - ra_deg)
    dec, lat = np.radians(dec_deg), np.radians(lat_deg)
    sin_alt = np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(ha)
    alt = np.arcsin(np.clip(sin_alt, -1.0, 1.0))
    az_north = np.arctan2(
        -np.cos(dec) * np.sin(ha),
        np.sin(dec) * np.cos(lat) - np.cos(dec) * np.sin(lat) * np.cos(ha),
    )
    az_eso = (np.degrees(az_north) - 180.0) % 360.0
    with np.errstate(divide="ignore", invalid="ignore"):
        airmass = np.where(alt > 0, 1.0 / np.sin(alt), np.nan)
    return np.degrees(alt), az_eso, airmass


def derotation_angles(
    parang: np.ndarray,
    pupil_offset: float,
    true_north: float,
    instrument_offset: float = 0.0,
) -> np.ndarray:
    """Derotation angles (deg) = parang + pupil_offset + instrument_offset + true_north.

    For IRDIS in pupil tracking: ``pupil_offset = 135.99``, ``true_north = -1.75``,
    ``instrument_offset = 0`` (IFS: -100.48). Frame ``k`` turned counter-clockwise by the result
    is north up / east left (``geometry.derotate`` with ``-derot``, module docstring).
    """
    return np.asarray(parang, dtype=np.float64) + pupil_offset + instrument_offset + true_north


def derotator_drift_correction(
    alt_deg: np.ndarray | float, drot2_begin_deg: np.ndarray | float
) -> np.ndarray:
    """Correction (deg) to add to the parallactic angle for data taken before 2016-07-12.

    ``atan(tan(TEL ALT - 2 * INS4 DROT2 BEGIN))`` (avigan/SPHERE issue #1, SPHERE User Manual),
    with the telescope altitude and the derotator position angle at the start, in degrees.
    """
    arg = np.radians(
        np.asarray(alt_deg, dtype=np.float64) - 2.0 * np.asarray(drot2_begin_deg, dtype=np.float64)
    )
    return np.degrees(np.arctan(np.tan(arg)))


def needs_derotator_correction(date_obs: str | Time, fix_date: str | Time = "2016-07-12T00:00:00") -> bool:
    """True when an observation started before the derotator fix (2016-07-12 UTC by default)."""
    return bool(Time(date_obs, scale="utc") < Time(fix_date, scale="utc"))
