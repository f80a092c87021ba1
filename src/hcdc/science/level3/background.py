"""Where a stationary background star would appear relative to a moving host star.

A star far behind the host (no parallax, no proper motion) stays fixed on the sky, while the host
moves by its proper motion and its parallactic ellipse. Seen from the host, the background star
therefore moves by minus the host's displacement:

    offset(t) = offset(t_ref) - [D(t) - D(t_ref)],
    D(t) = mu * (t - t_ref) + parallax * (F_ra(t), F_dec(t)),

with the parallax factors of the geocentre (Earth's barycentric position (X, Y, Z) in au, from
:func:`astropy.coordinates.get_body_barycentric`, ICRS axes):

    F_ra  = X sin(ra) - Y cos(ra)
    F_dec = X cos(ra) sin(dec) + Y sin(ra) sin(dec) - Z cos(dec).

All offsets in mas (``ra`` = RA offset x cos Dec, east positive), proper motions in mas/yr
(``pmra`` includes cos Dec, as in Gaia), parallaxes in mas, epochs in MJD, years of 365.25 days.
The linear (tangent-plane) model leaves out perspective acceleration and the differential
aberration between host and background star (about 1e-4 of their separation): against astropy's
full ICRS->GCRS transformation (tests/science/level3) it is within 0.5 mas over 14 years for GJ 504
(386 mas/yr, a track 5 arcsec long) and 0.1 mas for 51 Eri, well inside imaging astrometry errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

DAYS_PER_YEAR = 365.25


@dataclass(frozen=True)
class HostStar:
    """Host star astrometry: position [deg] (ICRS), proper motion [mas/yr], parallax [mas], with
    1-sigma errors, and optionally its mass [solar masses] (sets the orbital-motion scale)."""

    ra_deg: float
    dec_deg: float
    pmra: float
    pmdec: float
    parallax: float
    pmra_err: float = 0.0
    pmdec_err: float = 0.0
    parallax_err: float = 0.0
    mass_msun: float | None = None
    name: str = ""

    def __post_init__(self) -> None:
        values = (self.ra_deg, self.dec_deg, self.pmra, self.pmdec, self.parallax)
        if not all(np.isfinite(values)):
            raise ValueError(f"host {self.name!r}: position, proper motion and parallax must be finite")
        if not -90.0 <= self.dec_deg <= 90.0:
            raise ValueError(f"host {self.name!r}: declination {self.dec_deg} outside [-90, 90] deg")
        if self.parallax <= 0:
            raise ValueError(f"host {self.name!r}: parallax must be positive (got {self.parallax} mas)")
        if min(self.pmra_err, self.pmdec_err, self.parallax_err) < 0:
            raise ValueError(f"host {self.name!r}: errors must not be negative")
        if self.mass_msun is not None and not self.mass_msun > 0:
            raise ValueError(f"host {self.name!r}: mass must be positive (got {self.mass_msun} Msun)")


def parallax_factors(ra_deg: float, dec_deg: float, mjd: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Parallax factors (F_ra, F_dec) of the geocentre at each epoch: the parallactic
    displacement of a star of parallax p is p * (F_ra, F_dec), in the units of p."""
    from astropy import units as u
    from astropy.coordinates import get_body_barycentric
    from astropy.time import Time

    t = Time(np.atleast_1d(np.asarray(mjd, dtype=float)), format="mjd", scale="utc")
    x, y, z = get_body_barycentric("earth", t).xyz.to_value(u.au)
    ra, dec = np.deg2rad(ra_deg), np.deg2rad(dec_deg)
    f_ra = x * np.sin(ra) - y * np.cos(ra)
    f_dec = x * np.cos(ra) * np.sin(dec) + y * np.sin(ra) * np.sin(dec) - z * np.cos(dec)
    return f_ra, f_dec


def host_displacement(host: HostStar, mjd: ArrayLike, ref_mjd: float) -> tuple[np.ndarray, np.ndarray]:
    """The host's apparent displacement D(t) - D(t_ref) on the sky [mas] (RA*cosDec, Dec)."""
    mjd = np.atleast_1d(np.asarray(mjd, dtype=float))
    dt = (mjd - ref_mjd) / DAYS_PER_YEAR
    f_ra, f_dec = parallax_factors(host.ra_deg, host.dec_deg, np.append(mjd, ref_mjd))
    d_ra = host.pmra * dt + host.parallax * (f_ra[:-1] - f_ra[-1])
    d_dec = host.pmdec * dt + host.parallax * (f_dec[:-1] - f_dec[-1])
    return d_ra, d_dec


def background_track(
    host: HostStar, ref_mjd: float, ref_ra: float, ref_dec: float, mjd: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Offsets [mas] at ``mjd`` of a stationary background star seen at (ref_ra, ref_dec) at ``ref_mjd``."""
    d_ra, d_dec = host_displacement(host, mjd, ref_mjd)
    return ref_ra - d_ra, ref_dec - d_dec


def background_track_error(host: HostStar, ref_mjd: float, mjd: ArrayLike) -> np.ndarray:
    """Covariance (n, 2, 2) [mas^2] of the track from the host's proper-motion and parallax
    errors alone (add the reference epoch's own measurement covariance for a prediction)."""
    mjd = np.atleast_1d(np.asarray(mjd, dtype=float))
    dt = (mjd - ref_mjd) / DAYS_PER_YEAR
    f_ra, f_dec = parallax_factors(host.ra_deg, host.dec_deg, np.append(mjd, ref_mjd))
    g_ra, g_dec = f_ra[:-1] - f_ra[-1], f_dec[:-1] - f_dec[-1]
    cov = np.zeros((mjd.size, 2, 2))
    cov[:, 0, 0] = (host.pmra_err * dt) ** 2 + (host.parallax_err * g_ra) ** 2
    cov[:, 1, 1] = (host.pmdec_err * dt) ** 2 + (host.parallax_err * g_dec) ** 2
    cov[:, 0, 1] = cov[:, 1, 0] = host.parallax_err**2 * g_ra * g_dec
    return cov
