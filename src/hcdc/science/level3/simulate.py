"""Simulated relative astrometry with a known truth, for testing the proper-motion test:
Keplerian companions (bound, moving on their orbit) and background stars (with or without a
proper motion of their own), observed with Gaussian errors. Units as in :mod:`.astrometry`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from hcdc.science.level3.astrometry import RelativeAstrometry
from hcdc.science.level3.background import DAYS_PER_YEAR, HostStar, host_displacement, parallax_factors


def _eccentric_anomaly(mean_anomaly: np.ndarray, e: float) -> np.ndarray:
    """Solve Kepler's equation E - e sin E = M by Newton's method."""
    ecc = mean_anomaly + e * np.sin(mean_anomaly)
    for _ in range(50):
        step = (ecc - e * np.sin(ecc) - mean_anomaly) / (1.0 - e * np.cos(ecc))
        ecc = ecc - step
        if np.max(np.abs(step)) < 1e-13:
            break
    return ecc


def keplerian_offsets(
    mjd: ArrayLike,
    *,
    a_au: float,
    parallax_mas: float,
    mass_msun: float,
    e: float = 0.0,
    inc_deg: float = 45.0,
    omega_deg: float = 0.0,
    node_deg: float = 0.0,
    tp_mjd: float = 55000.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) offsets [mas] of a companion on a Keplerian orbit (semi-major axis ``a_au``,
    total mass ``mass_msun``; Thiele-Innes constants, PA of the node ``node_deg`` E of N)."""
    mjd = np.atleast_1d(np.asarray(mjd, dtype=float))
    period_yr = math.sqrt(a_au**3 / mass_msun)
    mean_anomaly = 2.0 * math.pi * (mjd - tp_mjd) / DAYS_PER_YEAR / period_yr
    ecc = _eccentric_anomaly(np.mod(mean_anomaly, 2.0 * math.pi), e)
    x = np.cos(ecc) - e
    y = math.sqrt(1.0 - e**2) * np.sin(ecc)
    a = a_au * parallax_mas
    w, n, i = (math.radians(v) for v in (omega_deg, node_deg, inc_deg))
    ti_a = a * (math.cos(w) * math.cos(n) - math.sin(w) * math.sin(n) * math.cos(i))
    ti_b = a * (math.cos(w) * math.sin(n) + math.sin(w) * math.cos(n) * math.cos(i))
    ti_f = a * (-math.sin(w) * math.cos(n) - math.cos(w) * math.sin(n) * math.cos(i))
    ti_g = a * (-math.sin(w) * math.sin(n) + math.cos(w) * math.cos(n) * math.cos(i))
    return ti_b * x + ti_g * y, ti_a * x + ti_f * y


def background_offsets(
    host: HostStar,
    mjd: ArrayLike,
    ra0: float,
    dec0: float,
    *,
    pmra: float = 0.0,
    pmdec: float = 0.0,
    parallax: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """(ra, dec) offsets [mas] of a background star seen at (ra0, dec0) at the first epoch, with
    its own proper motion [mas/yr] and parallax [mas] (zero: the stationary background)."""
    mjd = np.atleast_1d(np.asarray(mjd, dtype=float))
    ref = float(mjd[0])
    d_ra, d_dec = host_displacement(host, mjd, ref)
    dt = (mjd - ref) / DAYS_PER_YEAR
    f_ra, f_dec = parallax_factors(host.ra_deg, host.dec_deg, mjd)
    own_ra = pmra * dt + parallax * (f_ra - f_ra[0])
    own_dec = pmdec * dt + parallax * (f_dec - f_dec[0])
    return ra0 - d_ra + own_ra, dec0 - d_dec + own_dec


def observe(
    name: str,
    mjd: ArrayLike,
    ra: ArrayLike,
    dec: ArrayLike,
    error_mas: float | ArrayLike,
    rng: np.random.Generator,
) -> RelativeAstrometry:
    """True offsets observed with independent Gaussian errors of ``error_mas`` on each axis."""
    mjd = np.atleast_1d(np.asarray(mjd, dtype=float))
    err = np.broadcast_to(np.asarray(error_mas, dtype=float), mjd.shape)
    ra_obs = np.asarray(ra) + rng.normal(0.0, err)
    dec_obs = np.asarray(dec) + rng.normal(0.0, err)
    return RelativeAstrometry.from_radec(name, mjd, ra_obs, dec_obs, err, err)
