"""Known-truth checks of the DPI chain on simulated beams (hcdc.science.simulation.dpi).

Default scene: halo 1e6 ADU peak, ring disc of polarised peak 100 ADU at 30 px (sigma 4 px),
instrumental polarisation Q/I = 1 %, U/I = -0.5 %, beam transmissions 1.00 / 0.97, Poisson +
5 ADU read noise, 4 HWP cycles. Tolerances are the issue's (#17) targets; the measured margins
(seed 0) are noted next to each.
"""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.geometry import distance_map
from hcdc.science.polarimetry import (
    angle_of_linear_polarisation,
    azimuthal_stokes,
    correct_instrumental_polarisation,
    position_angle_from_star,
    stokes_from_beams,
)
from hcdc.science.simulation.dpi import DPIScene, simulate_dpi_beams

IP_ANNULUS = (8.0, 16.0)  # px: star light dominates, the disc (30 +- 4 px) is absent


@pytest.fixture(scope="module")
def sim():
    return simulate_dpi_beams(DPIScene(), seed=0)


def _reduce(sim, method):
    s = stokes_from_beams(sim.beams, method)
    i, q, u = (a.mean(axis=0) for a in (s.i, s.q, s.u))
    ip = correct_instrumental_polarisation(i, q, u, *IP_ANNULUS)
    return i, q, u, ip


def _rings(shape, edges):
    r = distance_map(shape)
    return [(r >= lo) & (r < hi) for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


@pytest.mark.parametrize("method", ["double_difference", "double_ratio"])
def test_qphi_recovers_disc_polarised_intensity_in_rings_within_5_percent(sim, method):
    _, _, _, ip = _reduce(sim, method)
    qphi, _ = azimuthal_stokes(ip.q, ip.u)
    # The Stokes maps are in units of the mean beam throughput (t_o + t_e) / 2 = 0.985: without
    # this factor the rings come out 1.5 % low (a flux calibration on I removes it in a pipeline).
    throughput = 0.5 * (sim.scene.t_ordinary + sim.scene.t_extraordinary)
    p = throughput * sim.disc_polarised
    worst = 0.0
    rings = _rings(p.shape, np.arange(26.0, 40.0, 2.0))  # 2-px rings where P >= 25 % of its peak
    for ring in rings:
        worst = max(worst, abs(qphi[ring].mean() / p[ring].mean() - 1.0))
    assert len(rings) == 6
    assert worst < 0.05  # measured (seed 0): 2.3 % (DD and DR); noise per ring 1-2.7 %


@pytest.mark.parametrize("method", ["double_difference", "double_ratio"])
def test_uphi_is_consistent_with_noise(sim, method):
    _, _, _, ip = _reduce(sim, method)
    qphi, uphi = azimuthal_stokes(ip.q, ip.u)
    for ring in _rings(uphi.shape, np.arange(20.0, 42.0, 2.0)):
        err = uphi[ring].std(ddof=1) / np.sqrt(ring.sum())
        assert abs(uphi[ring].mean()) < 4.0 * err  # measured worst: 2.3 sigma
    # and it is not a zero map: it carries the noise, of the same size as Q_phi's
    outer = distance_map(uphi.shape) > 45
    assert 0.8 < uphi[outer].std() / qphi[outer].std() < 1.25


def test_angle_of_linear_polarisation_within_1_degree_on_the_disc(sim):
    _, _, _, ip = _reduce(sim, "double_difference")
    aolp = angle_of_linear_polarisation(ip.q, ip.u)
    true = angle_of_linear_polarisation(sim.truth.q, sim.truth.u)
    diff = (aolp - true + 90.0) % 180.0 - 90.0
    bright = sim.disc_polarised > 50.0
    assert abs(diff[bright].mean()) < 1.0  # measured 0.1 deg
    assert np.median(np.abs(diff[bright])) < 5.0  # per pixel, S/N ~ 5-10


def test_instrumental_polarisation_is_measured_and_removed_below_0p1_percent(sim):
    i, q, u, ip = _reduce(sim, "double_difference")
    assert ip.p_q == pytest.approx(0.01, abs=2e-4)
    assert ip.p_u == pytest.approx(-0.005, abs=2e-4)
    halo = (distance_map(i.shape) >= 5) & (distance_map(i.shape) < 20)
    before = np.median(q[halo] / i[halo])
    after_q, after_u = np.median(ip.q[halo] / i[halo]), np.median(ip.u[halo] / i[halo])
    assert before > 0.009  # the IP is really there before the correction
    assert abs(after_q) < 1e-3 and abs(after_u) < 1e-3  # measured ~1e-4


def test_double_ratio_and_double_difference_agree(sim):
    """Per pixel, the two methods differ by far less than the photon noise of Q and U."""
    _, q_dd, u_dd, ip_dd = _reduce(sim, "double_difference")
    i, q_dr, u_dr, ip_dr = _reduce(sim, "double_ratio")
    n = sim.scene.n_cycles
    sigma = np.sqrt((i / 2.0 + sim.scene.read_noise**2) / n)  # noise of Q, U per pixel (ADU)
    sky = distance_map(i.shape) < 60
    for dd, dr in ((q_dd, q_dr), (u_dd, u_dr)):
        z = ((dr - dd) / sigma)[sky]
        assert np.abs(z).max() < 0.5  # measured 0.28
        assert z.std() < 0.1  # measured 0.03
    assert ip_dr.p_q == pytest.approx(ip_dd.p_q, abs=1e-5)
    assert ip_dr.p_u == pytest.approx(ip_dd.p_u, abs=1e-5)


def test_without_correction_ip_leaks_into_qphi():
    """The correction is what makes the disc right: skip it and the rings are off by > 5 %."""
    sim = simulate_dpi_beams(DPIScene(ip_q=0.03, ip_u=0.0, n_cycles=2), seed=3)
    s = stokes_from_beams(sim.beams)
    q, u = s.q.mean(axis=0), s.u.mean(axis=0)
    qphi, _ = azimuthal_stokes(q, u)
    ring = _rings(q.shape, [28.0, 32.0])[0]
    # IP is a uniform +Q: its Q_phi = -0.03 I cos(2 phi) averages out over a full ring but not
    # over the east/west quadrants, where it adds + 0.03 I
    east_west = ring & (np.cos(np.radians(2 * position_angle_from_star(q.shape))) < -0.7)
    assert qphi[east_west].mean() > 1.05 * sim.disc_polarised[east_west].mean()


def test_simulator_truth_is_consistent_and_rejects_bad_scenes():
    sim = simulate_dpi_beams(DPIScene(shape=(64, 64), n_cycles=1, read_noise=0.0, photon_noise=False))
    assert sim.beams.shape == (1, 4, 2, 64, 64)
    qphi, uphi = azimuthal_stokes(sim.truth.q, sim.truth.u)
    np.testing.assert_allclose(qphi, sim.disc_polarised, atol=1e-9)
    np.testing.assert_allclose(uphi, 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="disc_dolp"):
        simulate_dpi_beams(DPIScene(disc_dolp=0.0))
    with pytest.raises(ValueError, match="transmissions"):
        simulate_dpi_beams(DPIScene(t_extraordinary=0.0))
