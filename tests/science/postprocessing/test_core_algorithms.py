"""cADI and PCA (full frame, annular) on simulated ADI cubes with injected truth."""

import numpy as np
import pytest

from hcdc.science.postprocessing import adi, pca, snr
from hcdc.science.postprocessing.annuli import (
    closest_frames,
    define_annuli,
    exclusion_mask,
    rotation_threshold,
)
from hcdc.science.postprocessing.detection import detect_candidates, fit_gaussian_2d
from hcdc.science.postprocessing.throughput import throughput_corrected_flux
from hcdc.science.simulation.adi import simulate_adi_cube

COMPANIONS = [(16.0, 40.0, 1.0e-3), (30.0, 200.0, 4.0e-4)]


@pytest.fixture(scope="module")
def sim():
    return simulate_adi_cube(companions=COMPANIONS, seed=1)


@pytest.mark.parametrize(
    ("algorithm", "params"),
    [(pca.pca, {"ncomp": 5}), (pca.pca_annular, {"ncomp": 5}), (adi.cadi, {"mode": "annular"})],
)
def test_companions_found_at_their_injected_positions(sim, algorithm, params):
    image = algorithm(sim.cube, sim.angles, fwhm=sim.fwhm, **params)
    for comp in sim.companions:
        fit = fit_gaussian_2d(image, comp.x, comp.y, box=9, fwhm=sim.fwhm)
        assert np.hypot(fit.x - comp.x, fit.y - comp.y) < 0.3
        assert snr.snr_at(image, fit.x, fit.y, sim.fwhm).snr > 5


def test_nothing_detected_above_5_sigma_without_companions(sim):
    for image in (
        pca.pca(sim.noise_only, sim.angles, fwhm=sim.fwhm, ncomp=5),
        pca.pca_annular(sim.noise_only, sim.angles, fwhm=sim.fwhm, ncomp=5),
        adi.cadi(sim.noise_only, sim.angles, fwhm=sim.fwhm),
    ):
        snr_map = snr.snr_map(image, sim.fwhm)
        assert detect_candidates(snr_map, sim.fwhm) == []
        assert detect_candidates(snr_map, sim.fwhm, threshold=5.0) == []


def test_both_companions_detected_and_nothing_else(sim):
    image = pca.pca_annular(sim.cube, sim.angles, fwhm=sim.fwhm, ncomp=5)
    found = detect_candidates(snr.snr_map(image, sim.fwhm), sim.fwhm, image=image)
    assert len(found) == 2
    for comp in sim.companions:
        assert min(np.hypot(c.x - comp.x, c.y - comp.y) for c in found) < 0.3


@pytest.mark.parametrize(("algorithm", "index"), [("pca_annular", 0), ("pca_annular", 1)])
def test_flux_after_throughput_correction_within_10_percent(sim, algorithm, index):
    # Annular PCA (local libraries) is close to linear in the companion flux. Full-frame PCA is
    # not: with two bright companions sharing the principal components its throughput depends on
    # the whole field, and its photometry is ill-conditioned (use NEGFC, tested separately).
    comp = sim.companions[index]
    params = {"ncomp": 5}
    from hcdc.science.postprocessing.throughput import run_algorithm

    image = run_algorithm(algorithm, sim.cube, sim.angles, fwhm=sim.fwhm, **params)
    fit = fit_gaussian_2d(image, comp.x, comp.y, box=9, fwhm=sim.fwhm)
    # Throughput from fakes in the companion-free cube (what a NEGFC removal provides on real data).
    flux, throughput = throughput_corrected_flux(
        sim.cube,
        sim.angles,
        sim.psf,
        fwhm=sim.fwhm,
        x=fit.x,
        y=fit.y,
        algorithm=algorithm,
        params=params,
        throughput_cube=sim.noise_only,
    )
    assert 0.05 < throughput < 1.0
    assert flux == pytest.approx(comp.flux, rel=0.10)


def test_ncomp_list_equals_separate_runs(sim):
    stack = pca.pca(sim.cube, sim.angles, fwhm=sim.fwhm, ncomp=[10, 3])
    assert stack.shape == (2, 101, 101)
    np.testing.assert_allclose(stack[0], pca.pca(sim.cube, sim.angles, fwhm=sim.fwhm, ncomp=10), atol=1e-3)
    np.testing.assert_allclose(stack[1], pca.pca(sim.cube, sim.angles, fwhm=sim.fwhm, ncomp=3), atol=1e-3)
    ann = pca.pca_annular(sim.cube, sim.angles, fwhm=sim.fwhm, ncomp=[2, 4])
    np.testing.assert_allclose(
        ann[1], pca.pca_annular(sim.cube, sim.angles, fwhm=sim.fwhm, ncomp=4), atol=1e-3
    )


def test_gram_route_equals_svd_projection(sim):
    # Residuals X - E_k E_k^T X equal the thin-SVD projection residuals X - X V_k^T V_k.
    x = sim.cube.reshape(sim.cube.shape[0], -1).astype(np.float64)
    x -= x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    expected = x - x @ vt[:6].T @ vt[:6]
    ((_, residual),) = pca.pca_residuals(sim.cube, 6, scaling="temp-mean")
    np.testing.assert_allclose(residual.reshape(x.shape), expected, atol=1e-3 * np.abs(x).max())


def test_annular_libraries_exclude_frames_within_the_rotation_threshold():
    angles = np.linspace(0, 40, 21)
    assert rotation_threshold(10.0, 4.0, 1.0) == pytest.approx(np.degrees(2 * np.arctan(0.2)))
    allowed = exclusion_mask(angles, 5.0)
    assert not allowed.diagonal().any() and allowed[0, 3] and not allowed[0, 2]
    libs = closest_frames(angles, 5.0, 4)
    assert list(libs[10]) == [6, 7, 13, 14]
    annuli = define_annuli((101, 101), 4.0, 4.0, delta_rot=(0.1, 1.0), angles=angles)
    assert len(annuli) == 12 and annuli[0].pa_threshold <= 0.45 * 40
    sizes = sum(a.indices.size for a in annuli)
    assert sizes == np.count_nonzero(np.hypot(*np.mgrid[-50:51, -50:51]) < 48)


def test_bad_parameters_give_clear_errors(sim):
    with pytest.raises(ValueError, match="ncomp"):
        pca.pca(sim.cube, sim.angles, fwhm=sim.fwhm, ncomp=0)
    with pytest.raises(ValueError, match="scaling"):
        pca.pca(sim.cube, sim.angles, fwhm=sim.fwhm, scaling="bogus")
    with pytest.raises(ValueError, match="mode"):
        adi.cadi(sim.cube, sim.angles, fwhm=sim.fwhm, mode="sectors")
    with pytest.raises(ValueError, match="derotation angles"):
        pca.pca(sim.cube, sim.angles[:-1], fwhm=sim.fwhm)


def test_pca_residuals_for_several_component_counts_are_independent_arrays(sim):
    # Every yielded residual cube can be kept while the next is computed (no in-place aliasing).
    kept = dict(pca.pca_residuals(sim.cube, [2, 6, 4]))
    assert sorted(kept) == [2, 4, 6]
    assert not np.shares_memory(kept[2], kept[4]) and not np.shares_memory(kept[4], kept[6])
    for k, residual in kept.items():
        # Same projection, computed in one step instead of several (float32 rounding only).
        ((_, alone),) = pca.pca_residuals(sim.cube, k)
        np.testing.assert_allclose(residual, alone, atol=1e-6 * np.abs(sim.cube).max())
    # More components remove more of the speckle pattern.
    assert np.std(kept[2]) > np.std(kept[4]) > np.std(kept[6])
