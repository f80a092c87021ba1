"""Negative-fake-companion fit on simulated cubes with known truth."""

import numpy as np
import pytest

from hcdc.science.postprocessing import pca, snr
from hcdc.science.postprocessing.negfc import NegfcProblem, negfc_fit, remove_companion
from hcdc.science.simulation.adi import simulate_adi_cube


@pytest.fixture(scope="module")
def sim():
    return simulate_adi_cube(companions=[(16.0, 40.0, 1.0e-3), (30.0, 200.0, 4.0e-4)], seed=2)


@pytest.mark.parametrize("index", [0, 1])
def test_negfc_recovers_position_and_flux(sim, index):
    comp = sim.companions[index]
    # First guess off by ~0.5 px and 1 degree, flux unknown.
    result = negfc_fit(
        sim.cube,
        sim.angles,
        sim.psf,
        fwhm=sim.fwhm,
        separation=comp.separation + 0.4,
        pa=comp.pa - 1.0,
        star_flux=sim.star_flux,
        ncomp=5,
        uncertainty_trials=3,
    )
    assert np.hypot(result.x - comp.x, result.y - comp.y) < 0.3
    assert result.flux == pytest.approx(comp.flux, rel=0.10)
    assert result.contrast == pytest.approx(comp.contrast, rel=0.10)
    # Uncertainties: finite, positive, and the truth within ~3 sigma.
    assert result.separation_err > 0 and result.pa_err > 0 and result.flux_err > 0
    assert abs(result.flux - comp.flux) < 3 * result.flux_err + 0.05 * comp.flux
    assert result.trials.shape == (3, 3)


def test_removing_the_fit_removes_the_companion(sim):
    comp = sim.companions[0]
    result = negfc_fit(
        sim.cube,
        sim.angles,
        sim.psf,
        fwhm=sim.fwhm,
        separation=comp.separation,
        pa=comp.pa,
        ncomp=5,
        uncertainty_trials=0,
    )
    free = remove_companion(sim.cube, sim.angles, sim.psf, result.separation, result.pa, result.flux)
    before = pca.pca(sim.cube, sim.angles, fwhm=sim.fwhm, ncomp=5)
    after = pca.pca(free, sim.angles, fwhm=sim.fwhm, ncomp=5)
    assert snr.snr_at(before, comp.x, comp.y, sim.fwhm).snr > 5
    assert abs(snr.snr_at(after, comp.x, comp.y, sim.fwhm).snr) < 3


def test_objective_is_smallest_near_the_truth(sim):
    comp = sim.companions[1]
    problem = NegfcProblem(
        sim.cube, sim.angles, sim.psf, fwhm=sim.fwhm, separation=comp.separation, pa=comp.pa, ncomp=5
    )
    at_truth = problem.metric(comp.separation, comp.pa, comp.flux)
    assert at_truth < problem.metric(comp.separation, comp.pa, 0.0)
    assert at_truth < problem.metric(comp.separation + 1.5, comp.pa, comp.flux)
    assert at_truth < problem.metric(comp.separation, comp.pa, 2.0 * comp.flux)


def test_negfc_rejects_bad_input(sim):
    with pytest.raises(ValueError, match="within 1 FWHM"):
        negfc_fit(sim.cube, sim.angles, sim.psf, fwhm=sim.fwhm, separation=2.0, pa=0.0)
    with pytest.raises(ValueError, match="odd square"):
        negfc_fit(sim.cube, sim.angles, np.ones((4, 4)), fwhm=sim.fwhm, separation=20.0, pa=0.0)
