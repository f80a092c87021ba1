"""Relative astrometry: sep/PA <-> RA/Dec offsets and their covariances, checked against Monte
Carlo draws (independent of the Jacobians in the code), and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.level3.astrometry import RelativeAstrometry, radec_to_seppa, seppa_to_radec


def test_offsets_follow_the_east_of_north_convention() -> None:
    ra, dec, _ = seppa_to_radec([100.0, 100.0, 100.0, 100.0], [0.0, 90.0, 180.0, 270.0])
    np.testing.assert_allclose(ra, [0, 100, 0, -100], atol=1e-12)
    np.testing.assert_allclose(dec, [100, 0, -100, 0], atol=1e-12)
    sep, pa, *_ = radec_to_seppa([0, 100, 0, -100], [100, 0, -100, 0])
    np.testing.assert_allclose(pa, [0, 90, 180, 270])
    np.testing.assert_allclose(sep, 100)


@pytest.mark.parametrize("pa", [12.0, 171.22, 265.13, 359.0])
def test_covariance_matches_monte_carlo(pa: float) -> None:
    rng = np.random.default_rng(3)
    sep, s_sep, s_pa, rho = 454.24, 1.88, 0.23, 0.3
    ra, dec, cov = seppa_to_radec([sep], [pa], [s_sep], [s_pa], [rho])
    draws = rng.multivariate_normal(
        [sep, pa], [[s_sep**2, rho * s_sep * s_pa], [rho * s_sep * s_pa, s_pa**2]], 200_000
    )
    x = draws[:, 0] * np.sin(np.deg2rad(draws[:, 1]))
    y = draws[:, 0] * np.cos(np.deg2rad(draws[:, 1]))
    np.testing.assert_allclose([ra[0], dec[0]], [x.mean(), y.mean()], atol=0.02)
    np.testing.assert_allclose(cov[0], np.cov(x, y), rtol=0.02, atol=0.02)
    # and back: sep/PA errors and correlation recovered
    back = radec_to_seppa(ra, dec, cov)
    np.testing.assert_allclose([b[0] for b in back], [sep, pa, s_sep, s_pa, rho], rtol=1e-9)


def test_container_sorts_and_concatenates() -> None:
    a = RelativeAstrometry.from_seppa("b", [58000.0, 57000.0], [400.0, 410.0], [30.0, 31.0], 2.0, 0.2)
    b = RelativeAstrometry.from_radec("b", [57500.0], [200.0], [340.0], [1.0], [2.0], [0.5])
    both = RelativeAstrometry.concatenate("b", [a, b])
    assert list(both.mjd) == [57000.0, 57500.0, 58000.0]
    assert both.corr[1] == pytest.approx(0.5)
    assert both.baseline_yr == pytest.approx(1000 / 365.25)
    rows = both.to_rows()
    assert rows[0]["sep_mas"] == pytest.approx(410.0) and rows[0]["pa_deg"] == pytest.approx(31.0)


def test_bad_errors_are_refused() -> None:
    with pytest.raises(ValueError, match="positive, finite errors"):
        RelativeAstrometry.from_radec("x", [57000.0], [1.0], [2.0], [0.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        RelativeAstrometry.from_radec("x", [57000.0], [np.nan], [2.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="expected 2"):
        RelativeAstrometry.from_radec("x", [57000.0, 57001.0], [1.0, 2.0, 3.0], [2.0], [1.0], [1.0])
