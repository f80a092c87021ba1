"""Observing helpers shared by the SPHERE night simulators (IRDIS and IFS).

Where the telescope points (coordinates of date), where the star is in the Paranal sky
(altitude, azimuth, airmass), when it transits, how DATE-OBS and DET FRAM UTC of a file follow
from its start, DIT and NDIT, the ambient conditions drawn file after file, and the per-file
random generator that makes a simulated night reproducible file by file. Both simulators call
these, so that an IRDIS and an IFS night of the same target and date share one time line and
one sky.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from astropy import units as u
from astropy.coordinates import FK5, SkyCoord
from astropy.time import Time, TimeDelta

from hcdc.instruments.sphere import constants as sc
from hcdc.science.calibration.timing import altitude_azimuth_airmass, local_apparent_sidereal_time

__all__ = [
    "AmbientConditions",
    "DIT_DELAY_S",
    "DIT_OVERHEAD_S",
    "FileConditions",
    "PlannedExposure",
    "PointedTarget",
    "alt_az_airmass",
    "apparent_radec",
    "file_conditions",
    "file_rng",
    "file_times",
    "iso_utc",
    "transit_time",
]

#: DET DITDELAY of the real headers (s).
DIT_DELAY_S = 0.2
#: Time between the starts of two DITs minus the DIT (s). It equals DITDELAY, so that DET FRAM
#: UTC = DATE-OBS + NDIT * (DIT + DITDELAY) is exactly the end of the last DIT of the vlt-sphere
#: timing model (start_i = DATE-OBS + i * (FRAM - DATE-OBS) / NDIT + DITDELAY). Real files take
#: longer per DIT (IFS: DIT + 1.9 s; IRDAP models IRDIS as DIT + 0.938 s), which only changes
#: the sampling in time, not the geometry.
DIT_OVERHEAD_S = DIT_DELAY_S


class PointedTarget(Protocol):
    """What the sky helpers need of a target: J2000 coordinates (deg), proper motion (arcsec/yr)."""

    @property
    def ra_deg(self) -> float: ...
    @property
    def dec_deg(self) -> float: ...
    @property
    def pm_ra_arcsec_yr(self) -> float: ...
    @property
    def pm_dec_arcsec_yr(self) -> float: ...


@dataclass
class PlannedExposure:
    """One raw file of a simulated night as planned: what, when, in which template and OB.

    ``dit`` in s; ``nd`` the neutral density (``'OPEN'`` or ``'ND_x.y'``); ``date_obs`` and
    ``fram_utc`` ISO UTC (see :func:`file_times`); ``tpl_*`` the template (TPL keywords),
    ``obs_*``/``prog_id`` the observation block; ``origfile`` the name written at Paranal.
    Each simulator's plan adds its instrument's own fields in a subclass.
    """

    dpr_catg: str
    dpr_type: str
    dit: float
    ndit: int
    nd: str
    date_obs: str
    fram_utc: str
    tpl_id: str
    tpl_name: str
    tpl_start: str
    tpl_expno: int
    tpl_nexp: int
    obs_id: int
    obs_name: str
    prog_id: str
    origfile: str


def iso_utc(t: Time, precision: int = 4) -> str:
    """ISO UTC string of ``t`` with ``precision`` decimals of seconds (4: 0.1 ms, as in real headers)."""
    return Time(t, precision=precision).isot


def apparent_radec(target: PointedTarget, when: Time) -> tuple[float, float]:
    """Coordinates of date (precessed + proper motion) as the telescope points them (deg).

    The proper motion is applied linearly from J2000.0 to ``when``, then FK5 J2000 is precessed
    to the equinox of ``when``.
    """
    years = when.jyear - 2000.0
    ra = target.ra_deg + target.pm_ra_arcsec_yr * years / 3600.0 / math.cos(math.radians(target.dec_deg))
    dec = target.dec_deg + target.pm_dec_arcsec_yr * years / 3600.0
    coord = SkyCoord(ra * u.deg, dec * u.deg, frame=FK5(equinox="J2000"))
    of_date = coord.transform_to(FK5(equinox=when))
    return float(of_date.ra.deg), float(of_date.dec.deg)


def alt_az_airmass(times: Time, ra_deg: float, dec_deg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Altitude (deg), azimuth (deg, ESO convention: S=0, W=90) and airmass (sec z) at Paranal.

    ``ra_deg``/``dec_deg`` are coordinates of date; the hour angle uses the local apparent
    sidereal time. No refraction.
    """
    return altitude_azimuth_airmass(times, ra_deg, dec_deg, sc.PARANAL_LAT_DEG, sc.PARANAL_LON_DEG)


def transit_time(target: PointedTarget, night: str) -> Time:
    """UTC of the target's upper transit at Paranal during the night starting on date ``night``.

    ``night`` is the local evening date (YYYY-MM-DD); the transit is searched on a 1 min grid
    from 22:00 UTC for 14 h, so the result is rounded to the minute.
    """
    t0 = Time(f"{night}T22:00:00", scale="utc")
    grid = t0 + TimeDelta(np.arange(0, 14 * 3600, 60.0), format="sec")
    ra, _ = apparent_radec(target, t0)
    ha = (local_apparent_sidereal_time(grid, sc.PARANAL_LON_DEG) - ra + 180.0) % 360.0 - 180.0
    k = int(np.argmin(np.abs(ha)))
    return grid[k]


def file_times(start: Time, dit: float, ndit: int) -> tuple[str, str, Time]:
    """DATE-OBS and DET FRAM UTC strings of a file starting at ``start``, and the next start time.

    DET FRAM UTC = DATE-OBS + NDIT * (DIT + :data:`DIT_OVERHEAD_S`) (``dit`` in s); both are
    rounded to 0.1 ms as in real headers, and the next file starts at the rounded FRAM UTC.
    """
    date_obs = iso_utc(start)
    fram = Time(date_obs, scale="utc") + TimeDelta(ndit * (dit + DIT_OVERHEAD_S), format="sec")
    fram_utc = iso_utc(fram)
    return date_obs, fram_utc, Time(fram_utc, scale="utc")


def file_rng(seed: int, key: str) -> np.random.Generator:
    """A generator that depends only on the night seed and a file key (order-independent).

    The key is usually the file's DATE-OBS, so regenerating one file of a night, or the files
    in another order, draws the same noise.
    """
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class AmbientConditions:
    """Paranal ambient conditions drawn file after file: a seeing random walk and its companions.

    The seeing (arcsec) starts uniform in [0.5, 0.9] and takes a step of rms 0.03 arcsec per
    file, clipped to [0.4, 1.5]; each file also draws the seeing at its end, the coherence time
    tau0 (s, ~3.5 ms / seeing), wind speed (m/s) and direction (deg), temperature (deg C),
    pressure (hPa), relative humidity (%) and, on request, the integrated water vapour (mm).
    The draws come from ``rng`` in this fixed order (the simulated bytes depend on it).
    """

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self.seeing_arcsec = rng.uniform(0.5, 0.9)

    def draw(self, alt_end_deg: float, *, water_vapour: bool = False) -> dict[str, float]:
        """The conditions of the next file; ``alt_end_deg`` is the altitude at its end (deg).

        Keys: fwhm_start, fwhm_end (seeing, arcsec), tau0 (s), windsp (m/s), winddir (deg),
        temp (deg C), pres (hPa), rhum (%), iwv (mm, only with ``water_vapour``), ia_fwhm (the
        delivered seeing: 0.9 x the seeing at the start, arcsec) and alt_end.
        """
        rng = self._rng
        seeing = self.seeing_arcsec = float(np.clip(self.seeing_arcsec + rng.normal(0.0, 0.03), 0.4, 1.5))
        ambient = {
            "fwhm_start": seeing,
            "fwhm_end": float(np.clip(seeing + rng.normal(0.0, 0.03), 0.4, 1.5)),
            "tau0": 0.0035 / seeing * rng.uniform(0.8, 1.2),
            "windsp": rng.uniform(3.0, 9.0),
            "winddir": rng.uniform(0.0, 360.0),
            "temp": 12.0 + rng.normal(0.0, 0.3),
            "pres": 743.5 + rng.normal(0.0, 0.3),
            "rhum": rng.uniform(5.0, 25.0),
        }
        if water_vapour:
            ambient["iwv"] = rng.uniform(1.0, 6.0)
        ambient["ia_fwhm"] = seeing * 0.9
        ambient["alt_end"] = alt_end_deg
        return ambient


@dataclass(frozen=True)
class FileConditions:
    """Where the telescope pointed and in which conditions during one raw file (header input).

    ``radec_of_date``: coordinates of date (deg) as written in the header; ``parang_start_end``:
    parallactic angles (deg) at the start of the first and the end of the last DIT;
    ``alt_az_airm``: altitude and azimuth (deg, ESO azimuth) at the start, airmass at start
    and end; ``ambient``: :meth:`AmbientConditions.draw` (a simulator may overwrite keys with
    telemetry-derived values).
    """

    radec_of_date: tuple[float, float]
    parang_start_end: tuple[float, float]
    alt_az_airm: tuple[float, float, float, float]
    ambient: dict[str, float]


def file_conditions(
    start: Time,
    end: Time,
    radec_of_date: tuple[float, float],
    parang_start_end: tuple[float, float],
    conditions: AmbientConditions,
    *,
    water_vapour: bool = False,
) -> FileConditions:
    """The :class:`FileConditions` of a file from ``start`` to ``end`` (UTC) at ``radec_of_date``.

    Altitude, azimuth and airmass at Paranal come from :func:`alt_az_airmass`; the ambient
    conditions are the next draw of ``conditions`` (``water_vapour``: with the IWV).
    """
    alt, az, airm = alt_az_airmass(Time([start, end]), radec_of_date[0], radec_of_date[1])
    ambient = conditions.draw(float(alt[1]), water_vapour=water_vapour)
    alt_az_airm = (float(alt[0]), float(az[0]), float(airm[0]), float(airm[1]))
    return FileConditions(radec_of_date, parang_start_end, alt_az_airm, ambient)
