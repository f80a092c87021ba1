"""Calibrated coronagraphic sequences rendered with the night simulator's frame model."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science import geometry
from hcdc.science.postprocessing.photometry import aperture_sums
from hcdc.science.simulation import irdis
from hcdc.science.simulation.sequence import AIRY_FWHM_LD, simulate_coronagraphic_sequence
from hcdc.science.simulation.speckles import make_evolving_speckles

H2 = irdis.BandOptics(1593.0, 52.0, 12.255, 8.0)


def _sequence(**kw):
    args = dict(
        optics=H2,
        times_s=np.arange(6) * 300.0,
        derot_deg=np.linspace(0.0, 40.0, 6),
        speckles=make_evolving_speckles(np.random.default_rng(2)),
        star_flux_adu_s=1.0e6,
        dit_s=64.0,
        size=81,
        seed=4,
    )
    args.update(kw)
    return simulate_coronagraphic_sequence(**args)


def test_companion_truth_and_units():
    sim = _sequence(companions=[(20.0, 60.0, 1e-3)])
    assert sim.fwhm == pytest.approx(AIRY_FWHM_LD * H2.lambda_over_d_px())
    cy, cx = geometry.frame_center(sim.psf.shape)
    assert aperture_sums(sim.psf, np.array([cx]), np.array([cy]), sim.fwhm / 2)[0] == pytest.approx(1.0, 1e-4)
    comp = sim.companions[0]
    assert comp.flux == pytest.approx(1e-3 * sim.star_flux)
    # The companion is the only difference with noise_only (same noise); at derotation angle d
    # it sits at PA + d.
    diff = sim.cube - sim.noise_only
    for k in (0, 5):
        x, y = geometry.polar_to_pixel(20.0, 60.0 + sim.angles[k], diff.shape[1:])
        measured = aperture_sums(diff[k], np.array([x]), np.array([y]), sim.fwhm / 2)[0]
        assert measured == pytest.approx(comp.flux, rel=0.05)


def test_deterministic_and_jitter_moves_the_star():
    a, b = _sequence(), _sequence()
    np.testing.assert_array_equal(a.cube, b.cube)
    jittered = _sequence(jitter_px=0.5)
    assert not np.array_equal(a.cube, jittered.cube)
    with pytest.raises(ValueError, match="one time and one angle"):
        _sequence(derot_deg=np.zeros(3))
