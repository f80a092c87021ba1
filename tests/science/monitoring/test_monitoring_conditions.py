"""Seeing, tau0, zenith corrections, validity and interpolation of AO telemetry; the simulated
turbulence (Ornstein-Uhlenbeck) and Strehl budget."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hcdc.science.monitoring import conditions as cond
from hcdc.science.simulation.ao_conditions import (
    AoSystem,
    TurbulenceModel,
    expected_strehl,
    halo_factor,
    ornstein_uhlenbeck,
    simulate_turbulence,
)

DAY = 86400.0


def test_seeing_and_tau0_follow_the_documented_definitions():
    # seeing = 500 nm / r0 in arcsec: r0 = 0.1 m -> 5e-6 rad = 1.0313"
    assert cond.seeing_arcsec(0.1) == pytest.approx(5e-6 * 206264.806247, rel=1e-9)
    assert cond.r0_from_seeing(cond.seeing_arcsec(0.137)) == pytest.approx(0.137)
    assert cond.tau0_s(0.1, 10.0) == pytest.approx(3.14e-3)
    # zenith: seeing X^-0.6, r0 and tau0 X^0.6
    assert cond.zenith_seeing(1.0, 2.0) == pytest.approx(2.0**-0.6)
    assert cond.zenith_r0(0.1, 2.0) == pytest.approx(0.1 * 2.0**0.6)
    assert cond.zenith_tau0(3e-3, 1.5) == pytest.approx(3e-3 * 1.5**0.6)
    # at zenith nothing changes; seeing x r0 is conserved by the correction
    assert cond.zenith_seeing(0.8, 1.0) == 0.8
    x = 1.7
    assert cond.zenith_seeing(cond.seeing_arcsec(0.1), x) == pytest.approx(
        cond.seeing_arcsec(cond.zenith_r0(0.1, x))
    )


def test_validity_limits_exclusive_low_inclusive_high():
    r0 = np.array([0.1, 0.0, 0.9, 0.91, 0.1, 0.1, 0.1, 0.1, np.nan])
    wind = np.array([10.0, 10.0, 10.0, 10.0, 50.0, 50.01, 10.0, 10.0, 10.0])
    strehl = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.05, 0.98, 0.5])
    assert cond.valid_samples(r0, wind, strehl).tolist() == [
        True,
        False,
        True,
        False,
        True,
        False,
        False,
        True,
        False,
    ]


def test_interpolation_is_exact_on_linear_series_and_flags_gaps():
    t = 59000.0 + np.array([0, 30, 60, 90, 300, 330]) / DAY  # a 210 s dropout
    values = {"x": 2.0 * np.array([0, 30, 60, 90, 300, 330]) + 1.0}
    frames = 59000.0 + np.array([15.0, 45.0, 90.0, 200.0, 315.0, 340.0, 400.0, -10.0]) / DAY
    out = cond.interpolate_series(t, values, frames)
    assert out.interval_s == pytest.approx(30.0, abs=1e-4)
    expected = [31.0, 91.0, 181.0, np.nan, 631.0, 661.0, np.nan, 1.0]
    np.testing.assert_allclose(out.values["x"], expected, rtol=1e-6)
    # 200 s is inside the 210 s gap (> 3 x 30 s): no invented value; 400 s is 70 s past the end
    # (> 45 s); -10 s is within half a gap of the first sample (nearest value)
    assert out.covered.tolist() == [True, True, True, False, True, True, False, True]
    assert out.nearest_s[3] == pytest.approx(100.0, abs=1e-3)
    # an explicit limit bridges the dropout
    wide = cond.interpolate_series(t, values, frames, max_gap_s=300.0)
    assert wide.values["x"][3] == pytest.approx(401.0, rel=1e-6)


def test_interpolation_of_unsorted_and_duplicated_samples_and_of_nothing():
    t = 59000.0 + np.array([60.0, 0.0, 30.0, 30.0]) / DAY
    out = cond.interpolate_series(t, {"x": np.array([6.0, 0.0, 2.0, 4.0])}, np.array([59000.0 + 30 / DAY]))
    assert out.values["x"][0] == pytest.approx(3.0)  # the two samples at 30 s averaged
    none = cond.interpolate_series(np.zeros(0), {"x": np.zeros(0)}, np.array([59000.0, 59000.1]))
    assert not none.covered.any() and np.isnan(none.values["x"]).all() and math.isnan(none.interval_s)


def test_ornstein_uhlenbeck_has_the_requested_stationary_law_and_memory():
    rng = np.random.default_rng(1)
    tau, sigma, step = 100.0, 0.5, 10.0
    x = ornstein_uhlenbeck(rng, np.arange(0.0, 2e5, step), 3.0, sigma, tau)
    assert x.mean() == pytest.approx(3.0, abs=0.05)
    assert x.std() == pytest.approx(sigma, rel=0.05)
    lag = int(tau / step)
    d = x - x.mean()
    rho = np.dot(d[:-lag], d[lag:]) / np.dot(d, d)
    assert rho == pytest.approx(math.exp(-1.0), abs=0.05)
    with pytest.raises(ValueError, match="non-decreasing"):
        ornstein_uhlenbeck(rng, np.array([1.0, 0.0]), 0.0, 1.0, 1.0)


def test_simulated_turbulence_is_log_normal_around_the_medians():
    model = TurbulenceModel(seeing_median=0.7, wind_median=12.0, seeing_tau_s=60.0, wind_tau_s=60.0)
    series = simulate_turbulence(np.random.default_rng(2), np.arange(0.0, 3e5, 30.0), model)
    assert np.median(series["seeing"]) == pytest.approx(0.7, rel=0.05)
    assert np.median(series["wind_m_s"]) == pytest.approx(12.0, rel=0.05)
    assert np.std(np.log(series["seeing"])) == pytest.approx(model.seeing_sigma_ln, rel=0.1)
    np.testing.assert_allclose(series["tau0_s"], 0.314 * series["r0_m"] / series["wind_m_s"])


def test_strehl_budget_decreases_with_seeing_and_wind():
    r0 = cond.r0_from_seeing(np.array([0.5, 0.8, 1.2, 1.6]))
    sr = expected_strehl(r0, 10.0)
    assert np.all(np.diff(sr) < 0)
    assert 0.8 < expected_strehl(cond.r0_from_seeing(0.8), 10.0) < 0.92  # median Paranal, H band
    assert expected_strehl(r0[1], 30.0) < expected_strehl(r0[1], 5.0)
    # perfect conditions leave only the static term
    assert expected_strehl(1e3, 1e-3, AoSystem(static_rad2=0.1)) == pytest.approx(math.exp(-0.1), rel=1e-6)
    assert halo_factor(0.8, 0.8) == pytest.approx(1.0)
    assert halo_factor(0.6, 0.8) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        halo_factor(0.5, 1.0)
