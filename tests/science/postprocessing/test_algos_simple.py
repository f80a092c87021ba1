"""No-ADI stacking and azimuthal-profile subtraction on simulated cubes with known truth."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science import geometry
from hcdc.science.postprocessing import get_algorithm
from hcdc.science.postprocessing.detection import fit_gaussian_2d
from hcdc.science.postprocessing.photometry import aperture_sums
from hcdc.science.postprocessing.simple import (
    azimuthal_median_profile,
    radial_profile,
    stack,
    subtract_radial_profile,
)
from hcdc.science.simulation.adi import simulate_adi_cube


@pytest.fixture(scope="module")
def bright():
    """A companion bright enough to stand out without any speckle subtraction."""
    return simulate_adi_cube(companions=[(25.0, 250.0, 2e-2)], seed=3)


def _aperture(image, x, y, fwhm):
    return float(aperture_sums(image, np.array([x]), np.array([y]), fwhm / 2.0)[0])


def test_registered():
    assert get_algorithm("stack").function is stack
    assert get_algorithm("radial_profile").function is radial_profile


def test_profile_of_a_radial_function_is_that_function():
    r = geometry.distance_map((61, 61))
    frame = (100.0 / (1.0 + r)).astype(np.float32)
    profile = azimuthal_median_profile(frame[None], ring_width=1.0)
    # ring k holds radii in [k - 0.5, k + 0.5): its median is close to the value at r = k
    np.testing.assert_allclose(profile[0, 5:25], 100.0 / (1.0 + np.arange(5, 25)), rtol=0.03)
    residual = subtract_radial_profile(frame, 1.0)
    assert np.abs(residual[geometry.annulus_mask(frame.shape, 3, 28)]).max() < 0.05 * frame[30, 35]


@pytest.mark.parametrize("name", ["stack", "radial_profile"])
def test_companion_recovered_at_injected_position_with_full_flux(bright, name):
    comp = bright.companions[0]
    function = get_algorithm(name).function
    image = function(bright.cube, bright.angles, fwhm=bright.fwhm)
    fit = fit_gaussian_2d(image, comp.x, comp.y, box=9, fwhm=bright.fwhm)
    assert np.hypot(fit.x - comp.x, fit.y - comp.y) < 0.3
    # Nothing is subtracted from the companion: throughput ~1 (measured 0.97 / 0.96).
    empty = function(bright.noise_only, bright.angles, fwhm=bright.fwhm)
    throughput = (
        _aperture(image, comp.x, comp.y, bright.fwhm) - _aperture(empty, comp.x, comp.y, bright.fwhm)
    ) / comp.flux
    assert throughput == pytest.approx(1.0, abs=0.06)


def test_stack_of_a_static_sky_scene_is_the_scene(bright):
    """Frames made by rotating one north-up scene by -angle derotate back onto it."""
    scene = np.zeros((81, 81), np.float32)
    scene[30:36, 50:53] = 1.0
    angles = np.array([0.0, 20.0, 45.0, 70.0])
    frames = np.stack([geometry.rotate_frame(scene, a, fill_value=0.0) for a in angles])
    image = stack(frames, angles, fwhm=4.0, interpolation="bicubic")
    inner = geometry.circular_mask(scene.shape, 30)
    assert np.abs(image - scene)[inner].max() < 0.2
    assert image[32, 51] > 0.8


def test_radial_profile_removes_the_halo_but_stack_does_not(bright):
    ring = geometry.annulus_mask(bright.cube.shape, 8, 20)
    halo_left = np.abs(np.mean(stack(bright.noise_only, bright.angles, fwhm=bright.fwhm)[ring]))
    after = np.abs(np.mean(radial_profile(bright.noise_only, bright.angles, fwhm=bright.fwhm)[ring]))
    assert after < 0.05 * halo_left


def test_bad_inputs(bright):
    with pytest.raises(ValueError, match="ring_width"):
        radial_profile(bright.cube, bright.angles, fwhm=bright.fwhm, ring_width=0)
    with pytest.raises(ValueError, match="frames"):
        stack(bright.cube[0], bright.angles, fwhm=bright.fwhm)
