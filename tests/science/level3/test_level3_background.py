"""The stationary-background track against an independent calculation: astropy's own space
motion (SkyCoord.apply_space_motion, with RV) and full ICRS -> GCRS transformation of the host and
of a point at infinity; and the parallax factors' known geometry."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import GCRS, Distance, SkyCoord
from astropy.time import Time

from hcdc.science.level3.background import (
    HostStar,
    background_track,
    background_track_error,
    parallax_factors,
)

# Gaia DR3 (hosts.csv): GJ 504 (fast: 386 mas/yr) and 51 Eri
HOSTS = {
    "GJ 504": (
        199.19230052489397,
        9.425004654149065,
        -335.47288271438487,
        191.03773116652403,
        56.8577,
        -27.25,
    ),
    "51 Eri": (69.40074849308137, -2.473833383625505, 44.04884090373149, -64.02842203088811, 33.4390, 12.6),
}


def _astropy_relative_track(values: tuple[float, ...], mjd: np.ndarray) -> np.ndarray:
    """Offsets [mas] from the host of a point at infinity placed at the host's barycentric (ICRS)
    position at mjd[0], both transformed to the geocentre (GCRS) at each epoch by astropy."""
    ra, dec, pmra, pmdec, plx, rv = values
    star = SkyCoord(
        ra=ra * u.deg,
        dec=dec * u.deg,
        pm_ra_cosdec=pmra * u.mas / u.yr,
        pm_dec=pmdec * u.mas / u.yr,
        distance=Distance(parallax=plx * u.mas),
        radial_velocity=rv * u.km / u.s,
        obstime=Time(2016.0, format="jyear", scale="tcb"),
    )
    times = Time(mjd, format="mjd", scale="utc")
    start = star.apply_space_motion(new_obstime=times[0])
    far = SkyCoord(ra=start.ra, dec=start.dec, distance=1e12 * u.pc, frame="icrs")
    out = []
    for t in times:
        host = star.apply_space_motion(new_obstime=t).transform_to(GCRS(obstime=t))
        d_ra, d_dec = host.spherical_offsets_to(far.transform_to(GCRS(obstime=t)))
        out.append((d_ra.to_value(u.mas), d_dec.to_value(u.mas)))
    return np.array(out)


# measured maximum differences over the 13.7 years: GJ 504 0.47 mas (track 5 arcsec long:
# differential aberration ~1e-4 x offset), 51 Eri 0.095 mas
@pytest.mark.parametrize(("name", "tolerance_mas"), [("GJ 504", 0.6), ("51 Eri", 0.15)])
def test_track_matches_astropy_space_motion_and_gcrs(name: str, tolerance_mas: float) -> None:
    mjd = np.linspace(55000.0, 60000.0, 23)  # 13.7 years, every ~7 months
    truth = _astropy_relative_track(HOSTS[name], mjd)
    ra, dec, pmra, pmdec, plx, _ = HOSTS[name]
    host = HostStar(ra, dec, pmra, pmdec, plx)
    t_ra, t_dec = background_track(host, mjd[0], truth[0, 0], truth[0, 1], mjd)
    diff = np.hypot(t_ra - truth[:, 0], t_dec - truth[:, 1])
    assert np.ptp(truth[:, 0]) > 500.0  # the track moves by arcseconds
    assert diff.max() < tolerance_mas, diff.max()


def test_parallax_factors_at_the_ecliptic_pole_draw_a_circle() -> None:
    """At the north ecliptic pole the parallactic ellipse is a circle of radius ~1 au (0.983-1.017)."""
    mjd = np.linspace(58000.0, 58365.0, 50)
    f_ra, f_dec = parallax_factors(270.0, 66.560708, mjd)
    radius = np.hypot(f_ra, f_dec)
    assert radius.min() > 0.98 and radius.max() < 1.02
    # at ecliptic longitude 90, latitude 0 the ellipse degenerates to an east-west line
    f_ra0, f_dec0 = parallax_factors(90.0, 23.439, mjd)
    assert np.abs(f_dec0).max() < 0.02 and np.abs(f_ra0).max() > 0.98


def test_track_error_grows_with_time_from_the_proper_motion_error() -> None:
    host = HostStar(10.0, -20.0, 50.0, -30.0, 20.0, pmra_err=0.5, pmdec_err=0.2, parallax_err=0.0)
    cov = background_track_error(host, 57000.0, [57000.0, 57000.0 + 4 * 365.25])
    assert cov[0] == pytest.approx(np.zeros((2, 2)))
    assert np.sqrt(cov[1, 0, 0]) == pytest.approx(2.0) and np.sqrt(cov[1, 1, 1]) == pytest.approx(0.8)


def test_host_validation() -> None:
    with pytest.raises(ValueError, match="parallax must be positive"):
        HostStar(10.0, 10.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="declination"):
        HostStar(10.0, 100.0, 1.0, 1.0, 5.0)
