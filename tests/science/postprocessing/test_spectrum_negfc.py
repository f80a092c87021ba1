"""Companion spectra by NEGFC per channel (hcdc.science.postprocessing.spectrum_negfc) on a
synthetic spectral cube with known spectra: flat and with a methane-like band (depth 60 % at
1.3 µm), under speckles twice as bright as the companion, 7 channels 1.0-1.6 µm, 8 frames, 20° of
field rotation, ASDI single with 3 components (the configuration in which the linear forward
model of dev/unmerged/forward-model-spectrum.md came out negative in the blue channels).

Measured (seeds 3-5, 1e-3 at 18 px, 6 trials): per-channel S/N (contrast / measured error) median
25-37; ratio to the truth rms 0.018-0.044, worst channel 0.108 (the band centre, methane, seed 3);
the injection-recovery method of ``spectrum.companion_spectrum`` on the same cubes: rms 0.41-0.73
(its channel 0 reads ~2x the truth, the band centre ~0 or negative).
"""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science import geometry
from hcdc.science.postprocessing.sdi import asdi
from hcdc.science.postprocessing.spectrum import companion_spectrum
from hcdc.science.postprocessing.spectrum_negfc import (
    AsdiNegfcProblem,
    negfc_spectrum,
    trial_position_angles,
)
from hcdc.science.simulation.adi import simulate_spectral_cube

WAVELENGTHS = np.linspace(1.0, 1.6, 7)
METHANE = 1.0 - 0.6 * np.exp(-0.5 * ((WAVELENGTHS - 1.3) / 0.06) ** 2)  # 0.4 at 1.3 um


def _cube(spectrum: np.ndarray, seed: int = 3):
    return simulate_spectral_cube(
        wavelengths=WAVELENGTHS,
        n_frames=8,
        size=61,
        rotation=20.0,
        companions=[(18.0, 40.0, float(spectrum[0]))],
        spectra=[spectrum],
        seed=seed,
    )


def test_trial_position_angles_leave_the_companion_free() -> None:
    pas = trial_position_angles(18.0, 40.0, 4.0, 6)
    assert pas.size == 6
    gap = np.abs((pas - 40.0 + 180.0) % 360.0 - 180.0)
    # >= 1.5 FWHM of chord each side: 2 * 18 * sin(gap / 2) >= 6 px
    assert np.all(2 * 18.0 * np.sin(np.radians(gap) / 2) >= 6.0 - 1e-9)
    with pytest.raises(ValueError, match="too small"):
        trial_position_angles(2.0, 0.0, 4.0, 6)


def test_the_objective_is_the_asdi_reduction_at_the_aperture() -> None:
    """Without negative fake the precomputed residuals are ASDI single's per-wavelength images at
    the aperture pixels (bilinear resampling instead of the reduction's cubic unscaling: close,
    not equal), and subtracting the true companion lowers every channel's objective."""
    spectrum = 1e-3 * METHANE
    sim = _cube(spectrum)
    (truth,) = sim.companions
    problem = AsdiNegfcProblem(
        sim.cube, sim.angles, WAVELENGTHS, sim.psf, sim.fwhm, x=truth.x, y=truth.y, ncomp=3
    )
    _, per_wl = asdi(sim.cube, sim.angles, fwhm=sim.fwhm, wavelengths=WAVELENGTHS, mode="single", ncomp=3)
    res = problem.residuals(np.zeros(7))
    for w in range(7):
        mine = problem.aperture_values(res, w)
        real = per_wl[w].ravel()[problem.aperture_pixels[w]]
        assert np.corrcoef(mine, real)[0, 1] > 0.95, w
        # measured: aperture sums within 16 % (one bilinear step smooths the companion's peak)
        assert np.sum(mine) == pytest.approx(np.sum(real), rel=0.25), w
    # what is left is the speckle residual: measured 0.30 of the objective without fake in the band
    # centre (the companion is 0.4 x fainter there), below 0.1 elsewhere
    true_flux = spectrum * sim.star_flux
    for w in range(7):
        assert problem.channel_objective(true_flux, w) < 0.5 * problem.channel_objective(np.zeros(7), w)


@pytest.mark.parametrize("shape", ["flat", "methane"])
def test_negfc_spectrum_within_10_percent_per_channel(shape: str) -> None:
    """Companion at per-channel S/N >= 20 (the reading of issue 16 where 10 % per channel is
    meaningful, docs/ifs.md §4): every channel but at most one within 10 % of the truth, the
    errors measured by injection-recovery cover it, and the band's depth is recovered."""
    spectrum = 1e-3 * (np.ones(7) if shape == "flat" else METHANE)
    sim = _cube(spectrum)
    (truth,) = sim.companions
    result = negfc_spectrum(
        sim.cube,
        sim.angles,
        WAVELENGTHS,
        sim.psf,
        sim.star_flux,
        sim.fwhm,
        x=truth.x,
        y=truth.y,
        ncomp=3,
        n_trials=6,
    )
    ratio = result.contrast / spectrum
    pulls = (result.contrast - spectrum) / result.contrast_err
    assert result.separation_px == pytest.approx(18.0, abs=1e-6) and result.trial_errors.shape == (6, 7)
    # measured: per-channel S/N median 25.2 (methane) / 29.7 (flat), rms 0.044 / 0.022
    assert np.median(spectrum / result.contrast_err) >= 20.0
    assert np.sum(np.abs(ratio - 1.0) < 0.10) >= 6 and np.all(np.abs(ratio - 1.0) < 0.15), np.round(ratio, 3)
    assert np.sqrt(np.mean((ratio - 1.0) ** 2)) < 0.06
    assert np.sum(np.abs(pulls) < 3.0) >= 6, np.round(pulls, 2)
    # the band: band-centre / continuum contrast (truth 0.40 for methane, 1 for flat; measured
    # 0.441 and 0.994) within 15 % (the band centre's S/N is 2.5x lower), and the methane band
    # seen at > 5 sigma of the band centre's error
    band = result.contrast[3] / np.mean(result.contrast[[0, 6]])
    assert band == pytest.approx(spectrum[3] / np.mean(spectrum[[0, 6]]), rel=0.15)
    if shape == "methane":
        assert np.mean(result.contrast[[0, 6]]) - result.contrast[3] > 5 * result.contrast_err[3]
    # the injection-recovery spectrum (l3-companion-spectra 1.0/1.1) on the same cube is far worse
    # (measured rms 0.44 flat, 0.69 methane)
    old = companion_spectrum(
        sim.cube,
        sim.angles,
        WAVELENGTHS,
        sim.psf,
        sim.star_flux,
        sim.fwhm,
        algorithm="asdi",
        params={"mode": "single", "ncomp": 3},
        x=truth.x,
        y=truth.y,
        n_fakes=6,
    )
    assert np.sqrt(np.mean((old.contrast / spectrum - 1.0) ** 2)) > 3 * np.sqrt(np.mean((ratio - 1.0) ** 2))


def test_negfc_at_an_empty_position_finds_no_companion() -> None:
    """At the companion's separation but 180° away (empty sky) the fitted spectrum is zero within
    its measured errors: the fit does not make a companion out of speckles."""
    sim = _cube(1e-3 * np.ones(7))
    (truth,) = sim.companions
    x, y = geometry.polar_to_pixel(truth.separation, truth.pa + 180.0, sim.cube.shape)
    result = negfc_spectrum(
        sim.noise_only,
        sim.angles,
        WAVELENGTHS,
        sim.psf,
        sim.star_flux,
        sim.fwhm,
        x=x,
        y=y,
        ncomp=3,
        n_trials=4,
    )
    pulls = result.contrast / result.contrast_err
    assert np.all(np.abs(pulls) < 4.0) and np.sum(np.abs(pulls) < 2.0) >= 5, np.round(pulls, 2)
    assert np.all(np.abs(result.contrast) < 3e-4), result.contrast


def test_bias_correction_subtracts_the_trials_mean_error() -> None:
    """``bias_correction`` (``l3-companion-spectra`` 1.3): the same fit and trials as without it,
    the trials' mean (fit - injected) subtracted per channel and the error their scatter about
    that mean (x sqrt(1 + 1/n)); on the methane cube the corrected spectrum is within 10 % of the
    truth in every channel but at most one, as the uncorrected one. Measured (seed 3): |bias| <=
    0.63 error; rms 0.056 corrected, 0.044 uncorrected: with no systematic error to remove (true
    position, per-channel S/N 25-37) the correction only adds the noise of a mean of 6 trials; on
    the simulated IFS nights, where the model is misplaced by Level 2's astrometry, it helps
    (docs/ifs.md section 4)."""
    spectrum = 1e-3 * METHANE
    sim = _cube(spectrum)
    (truth,) = sim.companions
    kwargs = dict(x=truth.x, y=truth.y, ncomp=3, n_trials=6)
    args = (sim.cube, sim.angles, WAVELENGTHS, sim.psf, sim.star_flux, sim.fwhm)
    result = negfc_spectrum(*args, **kwargs, bias_correction=True)
    raw = result.flux / sim.star_flux
    np.testing.assert_allclose(result.bias, result.trial_errors.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(result.contrast, raw - result.bias, rtol=1e-12)
    spread = result.trial_errors - result.bias
    np.testing.assert_allclose(result.contrast_err, np.sqrt(np.sum(spread**2, axis=0) / 5 * (1 + 1 / 6)))
    assert np.all(np.abs(result.bias) < result.contrast_err), (result.bias, result.contrast_err)
    ratio = result.contrast / spectrum
    assert np.sum(np.abs(ratio - 1.0) < 0.10) >= 6 and np.all(np.abs(ratio - 1.0) < 0.15), np.round(ratio, 3)
    # without the correction the same fit: bias zero, contrast the raw one
    plain = negfc_spectrum(*args, x=truth.x, y=truth.y, ncomp=3, n_trials=0)
    np.testing.assert_allclose(plain.contrast, raw, rtol=1e-9)
    assert np.all(plain.bias == 0.0)


def test_fit_spectrum_and_position_finds_the_companion_from_an_offset_start() -> None:
    """The joint fit of one sub-pixel position and the fluxes moves a model started 0.42 px off
    back to the injected companion (measured: 0.021 px off after 3 steps), the aperture staying
    where it was started; its spectrum matches the fit at the true position (measured within
    0.6 %)."""
    from hcdc.science.postprocessing.spectrum_negfc import fit_spectrum, fit_spectrum_and_position

    spectrum = 1e-3 * np.ones(7)
    sim = _cube(spectrum)
    (truth,) = sim.companions
    start = (truth.x + 0.3, truth.y - 0.3)
    common = dict(ncomp=3)
    problem = AsdiNegfcProblem(
        sim.cube, sim.angles, WAVELENGTHS, sim.psf, sim.fwhm, x=start[0], y=start[1], **common
    )
    flux, steps = fit_spectrum_and_position(problem, sim.star_flux)
    assert (problem.x, problem.y) == start and steps < 10
    assert np.hypot(problem.model_x - truth.x, problem.model_y - truth.y) < 0.1
    assert problem.separation == pytest.approx(18.0, abs=0.1)
    at_truth = AsdiNegfcProblem(
        sim.cube, sim.angles, WAVELENGTHS, sim.psf, sim.fwhm, x=truth.x, y=truth.y, **common
    )
    reference, _ = fit_spectrum(at_truth, sim.star_flux)
    np.testing.assert_allclose(flux / reference, 1.0, atol=0.05)
    ratio = flux / sim.star_flux / spectrum
    assert np.all(np.abs(ratio - 1.0) < 0.10), np.round(ratio, 3)
