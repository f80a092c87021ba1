"""Companion spectra by fake injection per channel (hcdc.science.postprocessing.spectrum) on a
synthetic spectral cube with a known, non-flat spectrum (speckles scaling with wavelength)."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.postprocessing.spectrum import companion_spectrum, fake_position_angles
from hcdc.science.simulation.adi import simulate_spectral_cube


def test_fake_position_angles_keep_their_distance() -> None:
    passes = fake_position_angles(20.0, 30.0, 4.0, 8)
    pas = np.concatenate(passes)
    assert pas.size == 8
    for group in passes:
        # >= 3 FWHM (12 px) from the companion and from each other on the 20 px circle
        chord = lambda a, b: 2 * 20.0 * np.sin(np.radians(abs((a - b + 180) % 360 - 180)) / 2)  # noqa: E731
        assert all(chord(p, 30.0) >= 12.0 - 1e-9 for p in group)
        assert all(chord(a, b) >= 12.0 - 1e-9 for i, a in enumerate(group) for b in group[i + 1 :])
    with pytest.raises(ValueError, match="too small"):
        fake_position_angles(3.0, 0.0, 4.0, 8)


def test_companion_spectrum_errors_cover_the_truth() -> None:
    """A flat-spectrum companion (1e-3, 18 px) under speckles twice as bright, 8 frames with 20 deg
    of rotation, 7 channels 1.0-1.6 um, ASDI single with 3 components (seed 3)."""
    wavelengths = np.linspace(1.0, 1.6, 7)
    sim = simulate_spectral_cube(
        wavelengths=wavelengths, n_frames=8, size=61, rotation=20.0, companions=[(18.0, 40.0, 1e-3)], seed=3
    )
    (truth,) = sim.companions
    result = companion_spectrum(
        sim.cube,
        sim.angles,
        sim.wavelengths,
        sim.psf,
        np.full(wavelengths.size, sim.star_flux),
        sim.fwhm,
        algorithm="asdi",
        params={"mode": "single", "ncomp": 3},
        x=truth.x,
        y=truth.y,
        n_fakes=6,
    )
    assert result.separation_px == pytest.approx(18.0, abs=1e-6) and result.fake_pas_deg.size == 6
    assert np.all(result.contrast_err > 0) and np.all((result.throughput > 0) & (result.throughput < 1.5))
    pulls = (result.contrast - 1e-3) / result.contrast_err
    # measured pulls 1.2, 1.6, -3.6, 0.2, 0.3, 0.8, 0.2: the errors are about right, a little small
    assert np.all(np.abs(pulls) < 4.0) and np.sum(np.abs(pulls) < 2.0) >= 5, np.round(pulls, 2)
    weights = result.contrast_err**-2.0
    assert np.sum(weights * result.contrast) / np.sum(weights) == pytest.approx(1e-3, rel=0.15)
    with pytest.raises(ValueError, match="not spectral"):
        companion_spectrum(
            sim.cube,
            sim.angles,
            sim.wavelengths,
            sim.psf,
            np.ones(7),
            sim.fwhm,
            algorithm="pca",
            x=truth.x,
            y=truth.y,
        )
