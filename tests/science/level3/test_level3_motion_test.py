"""The proper-motion test: real bound companions come out bound; simulated cases with a known
truth (Keplerian orbits, stationary and moving background stars) give the right verdict or
"undetermined", never the wrong one; short baselines and large errors stay undetermined."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest

from hcdc.science.level3.background import HostStar
from hcdc.science.level3.motion_test import MotionTestSettings, motion_test
from hcdc.science.level3.orbitize_format import read_orbitize
from hcdc.science.level3.simulate import background_offsets, keplerian_offsets, observe

# 51 Eri (Gaia DR3, hosts.csv) as the host of the simulated cases
HOST = HostStar(
    69.40074849308137,
    -2.473833383625505,
    44.04884090373149,
    -64.02842203088811,
    33.4390,
    parallax_err=0.0777,
    mass_msun=1.75,
)


@pytest.mark.shared_data
def test_every_real_bound_companion_comes_out_bound(level3: Path, bound_files, gaia_hosts) -> None:
    seen = 0
    for name, host_name in bound_files.items():
        for astro in read_orbitize(level3 / "bound" / name):
            result = motion_test(astro, gaia_hosts[host_name])
            assert result.verdict == "bound", (name, astro.name, result.reason)
            assert result.hypotheses["background"].p_value < 1e-10
            seen += 1
    assert seen == 7  # beta Pic b, GJ 504 b, HD 206893 B, HR 8799 b, c, e, 51 Eri b


@pytest.mark.shared_data
def test_real_companion_truncated_to_a_short_baseline_is_undetermined(level3: Path, gaia_hosts) -> None:
    """51 Eri b's three first GPI epochs span 44 days with 2-2.6 mas errors: the background track
    moves ~8 mas but orbital motion could do as much -- no verdict."""
    (eri,) = read_orbitize(level3 / "bound" / "51eri_b_derosa2020_table2.csv")
    result = motion_test(eri.select([0, 1, 2]), gaia_hosts["51 Eri"])
    assert result.verdict == "undetermined", result.reason


def _bound(mjd, rng, error=2.0, **orbit):
    ra, dec = keplerian_offsets(mjd, parallax_mas=HOST.parallax, mass_msun=1.75, **orbit)
    return observe("b", mjd, ra, dec, error, rng)


def test_bound_companion_moving_on_its_orbit_is_bound() -> None:
    """Trap 1: a fast orbit (beta Pic b-like, 9 au, edge-on) moves ~60 mas/yr, more than the
    host's own motion relative to a static companion would suggest."""
    rng = np.random.default_rng(1)
    mjd = 57000.0 + np.array([0.0, 200.0, 400.0, 800.0, 1100.0])
    astro = _bound(mjd, rng, a_au=9.0, inc_deg=88.0, node_deg=30.0, tp_mjd=56000.0)
    result = motion_test(astro, HOST)
    assert result.verdict == "bound", result.reason
    assert result.hypotheses["comoving"].p_value > 0.01
    # the motion is not zero: a motionless companion would be rejected
    assert np.hypot(*np.ptp([astro.ra, astro.dec], axis=1)) > 100


def test_background_star_with_its_own_proper_motion_is_background() -> None:
    """Trap 2: 12 mas/yr of its own: the stationary track fails, (c) does not."""
    rng = np.random.default_rng(2)
    mjd = 57000.0 + np.array([0.0, 380.0, 730.0, 1100.0])
    ra, dec = background_offsets(HOST, mjd, 800.0, -300.0, pmra=-9.0, pmdec=8.0, parallax=0.3)
    result = motion_test(observe("bg", mjd, ra, dec, 3.0, rng), HOST)
    assert result.verdict == "background", result.reason
    assert result.hypotheses["background"].p_value < 1e-6
    assert result.hypotheses["background_pm"].p_value > 0.01


def test_stationary_background_star_is_background_and_prediction_is_reported() -> None:
    rng = np.random.default_rng(3)
    mjd = 57000.0 + np.array([0.0, 365.0, 800.0])
    ra, dec = background_offsets(HOST, mjd, 1500.0, 900.0)
    result = motion_test(observe("bg", mjd, ra, dec, 5.0, rng), HOST)
    assert result.verdict == "background", result.reason
    # the first epoch's measurement moved along the track predicts the last one within errors
    pred = np.array([result.predicted_background_ra, result.predicted_background_dec])
    assert np.hypot(*(pred - [ra[-1], dec[-1]])) < 5 * 5.0 * np.sqrt(2)
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["verdict"] == "background" and set(payload["hypotheses"]) == {
        "comoving",
        "background",
        "background_pm",
    }


@pytest.mark.parametrize(
    ("days", "error"),
    [(30.0, 2.0), (365.0, 60.0)],  # short baseline; errors larger than the track's motion
)
def test_short_baseline_or_large_errors_stay_undetermined(days: float, error: float) -> None:
    rng = np.random.default_rng(4)
    mjd = 57000.0 + np.array([0.0, days])
    for astro in (
        observe("bg", mjd, *background_offsets(HOST, mjd, 500.0, 500.0), error, rng),
        _bound(mjd, rng, error=error, a_au=30.0, inc_deg=40.0),
    ):
        result = motion_test(astro, HOST)
        assert result.verdict == "undetermined", result.reason
        assert "too short or errors too large" in result.reason


def test_single_epoch_is_undetermined() -> None:
    rng = np.random.default_rng(5)
    astro = observe("x", [57000.0], [100.0], [200.0], 2.0, rng)
    result = motion_test(astro, HOST)
    assert result.verdict == "undetermined" and result.n_epochs == 1


def test_data_no_hypothesis_explains_stay_undetermined() -> None:
    """Positions jumping by 500 mas in a week with 1 mas errors: neither an orbit nor a track."""
    rng = np.random.default_rng(6)
    mjd = 57000.0 + np.array([0.0, 7.0, 14.0, 400.0])
    astro = observe("junk", mjd, [0.0, 500.0, 0.0, 500.0], [300.0, 300.0, 800.0, 300.0], 1.0, rng)
    result = motion_test(astro, HOST)
    assert result.verdict == "undetermined" and "no hypothesis fits" in result.reason


def simulate_grid(n_cases: int, seed: int, own_pm_sigma: float = 10.0) -> collections.Counter:
    """Random hosts, orbits, background stars, errors, baselines and epoch counts; counts of
    (truth, verdict)."""
    rng = np.random.default_rng(seed)
    counts: collections.Counter = collections.Counter()
    for _ in range(n_cases):
        plx, pm = rng.choice([10.0, 30.0, 60.0]), rng.choice([5.0, 20.0, 80.0])
        angle = rng.uniform(0, 2 * np.pi)
        host = HostStar(
            rng.uniform(0, 360),
            np.degrees(np.arcsin(rng.uniform(-1, 1))),
            pm * np.sin(angle),
            pm * np.cos(angle),
            plx,
            0.05,
            0.05,
            0.05,
        )
        error, base, n = rng.choice([1.0, 5.0, 20.0]), rng.choice([0.1, 0.5, 1.0, 3.0]), rng.choice([2, 3, 5])
        mjd = 57000.0 + np.sort(np.r_[0.0, base * 365.25, rng.uniform(0, base * 365.25, n - 2)])
        truth = rng.choice(["bound", "background"])
        sep = np.exp(rng.uniform(np.log(50.0), np.log(3000.0)))
        if truth == "bound":  # the test assumes 1 Msun; true masses 0.5-2.5
            ra, dec = keplerian_offsets(
                mjd,
                a_au=sep / plx * rng.uniform(0.8, 1.6),
                parallax_mas=plx,
                mass_msun=rng.uniform(0.5, 2.5),
                e=rng.uniform(0, 0.6),
                inc_deg=np.degrees(np.arccos(rng.uniform(-1, 1))),
                omega_deg=rng.uniform(0, 360),
                node_deg=rng.uniform(0, 360),
                tp_mjd=rng.uniform(50000, 60000),
            )
        else:
            pa = rng.uniform(0, 2 * np.pi)
            own = rng.normal(0.0, own_pm_sigma, 2)
            ra, dec = background_offsets(
                host,
                mjd,
                sep * np.sin(pa),
                sep * np.cos(pa),
                pmra=own[0],
                pmdec=own[1],
                parallax=abs(rng.normal(0.0, 0.3)),
            )
        counts[(truth, motion_test(observe("x", mjd, ra, dec, error, rng), host).verdict)] += 1
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("own_pm_sigma", [10.0, 30.0])
def test_false_verdict_rate_on_a_grid_of_simulations(own_pm_sigma: float) -> None:
    """Measured (seed 11, 400 cases each; 2000 with other seeds in docs/level3.md): no wrong
    verdict, with background stars' own proper motions of 10 and of 30 mas/yr rms (the latter 2-6
    times the prior's bulk)."""
    counts = simulate_grid(400, seed=11, own_pm_sigma=own_pm_sigma)
    wrong = counts[("bound", "background")] + counts[("background", "bound")]
    decided = sum(v for (t, verdict), v in counts.items() if verdict != "undetermined")
    assert wrong <= 2, counts  # <= 0.5 %
    assert decided >= 0.3 * 400, counts  # and the test does decide a good share of the cases
    assert counts[("bound", "bound")] > 0 and counts[("background", "background")] > 0


def test_settings_change_the_thresholds() -> None:
    rng = np.random.default_rng(7)
    mjd = 57000.0 + np.array([0.0, 365.0, 800.0])
    astro = observe("bg", mjd, *background_offsets(HOST, mjd, 1500.0, 900.0), 5.0, rng)
    strict = MotionTestSettings(min_power_chi2=1e9)
    assert motion_test(astro, HOST, strict).verdict == "undetermined"
