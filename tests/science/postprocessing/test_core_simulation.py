"""The shared ADI / spectral simulator: seeded, with truth that matches the injected signal."""

import numpy as np
import pytest

from hcdc.science import geometry
from hcdc.science.postprocessing.photometry import aperture_sums
from hcdc.science.simulation.adi import gaussian_psf, simulate_adi_cube, simulate_spectral_cube


def test_adi_cube_is_seeded_and_companion_rotates_with_the_angles():
    a = simulate_adi_cube(companions=[(20.0, 75.0, 5e-4)], seed=3, n_frames=12)
    b = simulate_adi_cube(companions=[(20.0, 75.0, 5e-4)], seed=3, n_frames=12)
    np.testing.assert_array_equal(a.cube, b.cube)
    assert a.cube.dtype == np.float32 and a.cube.shape == (12, 101, 101)
    assert a.angles[0] == pytest.approx(-20.0) and np.ptp(a.angles) == pytest.approx(80.0)
    comp = a.companions[0]
    assert (comp.x, comp.y) == pytest.approx(geometry.polar_to_pixel(20.0, 75.0, (101, 101)))
    assert comp.flux == pytest.approx(5e-4 * a.star_flux)
    signal = a.cube - a.noise_only
    derotated = geometry.derotate(signal, a.angles)
    for frame in derotated:  # north-up: the companion sits at its sky position with its flux
        assert aperture_sums(frame, [comp.x], [comp.y], a.fwhm / 2)[0] == pytest.approx(comp.flux, rel=0.03)


def test_gaussian_psf_has_unit_aperture_flux_and_is_centred():
    psf = gaussian_psf(4.0, size=21, dx=0.25)
    assert aperture_sums(psf, [10.25], [10.0], 2.0)[0] == pytest.approx(1.0, rel=1e-6)  # float32
    yy, xx = np.mgrid[0:21, 0:21]
    assert (psf * xx).sum() / psf.sum() == pytest.approx(10.25, abs=1e-3)


def test_spectral_cube_speckles_scale_with_wavelength():
    sim = simulate_spectral_cube(
        wavelengths=(1.0, 1.5),
        n_frames=4,
        companions=[(25.0, 10.0, 3e-4)],
        spectra=[(3e-4, 6e-4)],
        seed=0,
        noise_contrast=0.0,
    )
    assert sim.cube.shape == (2, 4, 101, 101)
    assert sim.fwhm == pytest.approx([3.5, 5.25])
    # The 1.5 um speckle field is the 1.0 um one magnified by 1.5 about the star.
    ref = sim.noise_only[0, 0].astype(np.float64)
    big = sim.noise_only[1, 0].astype(np.float64)
    r = geometry.distance_map(ref.shape)
    halo_ref = 0.5 / (1 + (r / (2 * 3.5)) ** 2)
    halo_big = 0.5 / (1 + (r / (2 * 5.25)) ** 2)
    pattern_ref = ref / (2 * halo_ref * 2e-3 * 1e6) - 0.5
    pattern_big = big / (2 * halo_big * 2e-3 * 1e6) - 0.5
    y, x = 50 + 12, 50 + 6  # a point at offset (12, 6) at 1.0 um moves to (18, 9) at 1.5 um
    assert pattern_big[50 + 18, 50 + 9] == pytest.approx(pattern_ref[y, x], abs=0.05)
    comp = sim.companions[0]
    assert comp.spectrum == pytest.approx((3e-4, 6e-4))
    signal = geometry.derotate(sim.cube[1] - sim.noise_only[1], sim.angles)
    assert aperture_sums(signal[0], [comp.x], [comp.y], 5.25 / 2)[0] == pytest.approx(600.0, rel=0.03)


def test_simulator_rejects_bad_input():
    with pytest.raises(ValueError, match="too small"):
        simulate_adi_cube(size=21, fwhm=4.0)
    with pytest.raises(ValueError, match="one spectrum per companion"):
        simulate_spectral_cube(companions=[(20.0, 0.0, 1e-4)], spectra=[])
