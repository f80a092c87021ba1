"""Fake-companion injection, cached throughput and 5-sigma Student contrast curves (simulated data)."""

import numpy as np
import pytest
from scipy import stats

from hcdc.science import geometry
from hcdc.science.postprocessing import contrast, pca, snr, throughput
from hcdc.science.postprocessing.detection import student_threshold
from hcdc.science.postprocessing.fakes import companion_model_cube, inject_companions
from hcdc.science.postprocessing.photometry import aperture_sums
from hcdc.science.simulation.adi import simulate_adi_cube


@pytest.fixture(scope="module")
def sim():
    return simulate_adi_cube(seed=4)  # no companions


def test_injected_companion_lands_at_its_sky_position_with_its_flux(sim):
    cube = inject_companions(np.zeros_like(sim.cube), sim.angles, sim.psf, 20.0, 130.0, 250.0)
    derotated = geometry.derotate(cube, sim.angles)
    x, y = geometry.polar_to_pixel(20.0, 130.0, (101, 101))
    for frame in derotated[::7]:
        assert aperture_sums(frame, [x], [y], sim.fwhm / 2)[0] == pytest.approx(250.0, rel=0.02)
    model = companion_model_cube(cube.shape, sim.angles, sim.psf, 20.0, 130.0, 250.0)
    np.testing.assert_allclose(model, cube, atol=1e-4)
    negative = inject_companions(cube, sim.angles, sim.psf, 20.0, 130.0, -250.0)
    assert np.abs(negative).max() < 1e-3


def test_throughput_is_cached_and_reused(sim):
    throughput.clear_cache()
    args = (sim.cube, sim.angles, sim.psf)
    first = throughput.throughput_curve(*args, fwhm=sim.fwhm, params={"ncomp": 5})
    again = throughput.throughput_curve(*args, fwhm=sim.fwhm, params={"ncomp": 5})
    assert again is first
    other = throughput.throughput_curve(*args, fwhm=sim.fwhm, params={"ncomp": 8})
    assert other is not first
    assert np.all((first.throughput >= 0) & (first.throughput <= 1.05))
    # More components subtract more of the companion: lower throughput.
    assert np.mean(other.throughput) < np.mean(first.throughput)
    # cADI throughput is high far from the star.
    cadi = throughput.throughput_curve(*args, fwhm=sim.fwhm, algorithm="cadi")
    assert cadi.at(35.0) > 0.8
    tmap = first.map((101, 101))
    assert np.isnan(tmap[50, 50]) and tmap[50, 80] == pytest.approx(first.at(30.0))


def test_student_factor():
    # At large separation the correction tends to sigma; at 1 FWHM it is much larger.
    assert contrast.student_factor(1000.0, 4.0) == pytest.approx(5.0, rel=0.01)
    n = np.floor(2 * np.pi * 1.0)
    expected = stats.t.ppf(stats.norm.cdf(5.0), n - 1) * np.sqrt(1 + 1 / n)
    assert contrast.student_factor(4.0, 4.0) == pytest.approx(expected)
    assert contrast.student_factor(4.0, 4.0) > 2 * contrast.student_factor(40.0, 4.0)


def test_contrast_curve_predicts_5_sigma_detections(sim):
    star_flux = sim.star_flux
    curve = contrast.contrast_curve(
        sim.cube, sim.angles, sim.psf, fwhm=sim.fwhm, star_flux=star_flux, params={"ncomp": 5}, nbranch=2
    )
    assert curve.separation[0] == pytest.approx(sim.fwhm)
    assert np.all(np.diff(curve.separation) == pytest.approx(1.0))
    finite = np.isfinite(curve.contrast)
    # From 2.5 FWHM on; nearer, a companion's own ADI lobes cap its S/N below the threshold.
    assert finite[curve.separation > 2.5 * sim.fwhm].all()
    assert np.all(curve.contrast[finite] >= curve.contrast_gaussian[finite])
    # A companion injected at the 5-sigma contrast, away from the fake-companion branches:
    # The limit is tau(r) x noise with tau the Student-corrected 5-sigma factor, so the S/N of such
    # a companion should be ~tau(r).
    ratios = []
    for sep, pa in ((15.0, 35.0), (25.0, 160.0), (35.0, 60.0), (20.0, 300.0)):
        c5 = float(curve.at(sep))
        cube = inject_companions(sim.cube, sim.angles, sim.psf, sep, pa, c5 * star_flux)
        image = pca.pca(cube, sim.angles, fwhm=sim.fwhm, ncomp=5)
        x, y = geometry.polar_to_pixel(sep, pa, (101, 101))
        ratios.append(snr.snr_at(image, x, y, sim.fwhm).snr / contrast.student_factor(sep, sim.fwhm))
    assert 0.7 < np.mean(ratios) < 1.6 and min(ratios) > 0.5, ratios
    assert curve.magnitudes()[20] == pytest.approx(-2.5 * np.log10(curve.contrast[20]))


def test_contrast_curve_rejects_bad_input(sim):
    with pytest.raises(ValueError, match="star_flux"):
        contrast.contrast_curve(sim.cube, sim.angles, sim.psf, fwhm=sim.fwhm, star_flux=0.0)
    with pytest.raises(ValueError, match="odd square"):
        inject_companions(sim.cube, sim.angles, np.ones((4, 4)), 10.0, 0.0, 1.0)


def test_injection_broadcasts_and_handles_spectral_cubes():
    from hcdc.science.simulation.adi import simulate_spectral_cube

    sim = simulate_spectral_cube(wavelengths=(1.0, 1.2), n_frames=5, seed=0)
    flux = np.array([[100.0, 200.0], [50.0, 80.0]])  # (companion, wavelength)
    out = inject_companions(sim.cube, sim.angles, sim.psf, [15.0, 25.0], [10.0, 200.0], flux)
    assert out.shape == sim.cube.shape
    for i, fwhm in enumerate(sim.fwhm):
        derotated = geometry.derotate(out[i] - sim.cube[i], sim.angles)
        for j, (sep, pa) in enumerate(((15.0, 10.0), (25.0, 200.0))):
            x, y = geometry.polar_to_pixel(sep, pa, (101, 101))
            assert aperture_sums(derotated[2], [x], [y], fwhm / 2)[0] == pytest.approx(flux[j, i], rel=0.03)
    # One flux per companion broadcast against a single separation and several position angles.
    cube = inject_companions(np.zeros((5, 101, 101)), sim.angles, sim.psf[0], 20.0, [0.0, 120.0, 240.0], 10.0)
    assert cube.sum() == pytest.approx(3 * 5 * 10.0 * sim.psf[0].sum(), rel=1e-4)


@pytest.mark.slow
def test_default_curve_is_detected_about_half_the_time(sim, count_recoveries):
    """Known truth: fakes injected (independently of hcdc's injection and throughput code) at the
    default 5-sigma curve of a companion-free simulation are found by hcdc's detection about half
    the time at every separation from 3 FWHM to the edge (none is reachable at 2 FWHM); the old
    default (VIP's formula, fakes at 10x the noise) gave 0-58 %, 29 % in all."""
    curve = contrast.contrast_curve(
        sim.cube, sim.angles, sim.psf, fwhm=sim.fwhm, star_flux=sim.star_flux, params={"ncomp": 5}
    )
    seps = np.arange(2 * sim.fwhm, 101 // 2 - sim.fwhm / 2 - 2, sim.fwhm)
    limits = curve.at(seps)

    def reduce(cube):
        return pca.pca(cube, sim.angles, fwhm=sim.fwhm, ncomp=5)

    # At 2 FWHM a companion's own ADI lobes cap its S/N below the threshold whatever its flux
    # (measured: 2, 0 and 0 of 12 found at 2e-3, 5e-3 and 1e-2): no limit is reported there.
    assert np.isnan(limits[0]) and np.all(np.isfinite(limits[1:])), limits
    bright = count_recoveries(
        sim.cube,
        sim.angles,
        sim.psf,
        reduce,
        fwhm=sim.fwhm,
        separations=seps[:1],
        fluxes=[5e-3 * sim.star_flux],
        n_pa=8,
    )
    assert bright[0] <= 2
    n_pa = 24
    hits = count_recoveries(
        sim.cube,
        sim.angles,
        sim.psf,
        reduce,
        fwhm=sim.fwhm,
        separations=seps[1:],
        fluxes=limits[1:] * sim.star_flux,
        n_pa=n_pa,
    )
    fractions = hits / n_pa  # binomial scatter +-0.1 with 24 fakes
    assert np.all((fractions >= 0.3) & (fractions <= 0.9)), fractions
    assert 0.4 <= fractions.mean() <= 0.75, fractions


def test_limit_throughput_puts_fakes_at_the_threshold(sim):
    """The fixed point: fakes at the reported flux have, on average, the detection threshold as S/N."""
    throughput.clear_cache()
    seps = np.array([12.0, 24.0, 36.0])
    tp = contrast.limit_throughput(
        sim.cube, sim.angles, sim.psf, fwhm=sim.fwhm, params={"ncomp": 5}, separations=seps, nbranch=6
    )
    threshold = student_threshold(seps, sim.fwhm)
    reached = tp.snr_per_flux.mean(axis=0) * tp.fake_fluxes
    np.testing.assert_allclose(reached, threshold, rtol=0.1)
    # Fainter fakes than VIP's (S/N 100) lose less flux to PCA.
    bright = throughput.throughput_curve(
        sim.cube,
        sim.angles,
        sim.psf,
        fwhm=sim.fwhm,
        params={"ncomp": 5},
        separations=seps,
        nbranch=6,
        fc_snr=100.0,
    )
    assert np.all(tp.throughput > bright.throughput)
    # One fake flux per separation is accepted; a wrong count is refused.
    per_sep = throughput.throughput_curve(
        sim.cube,
        sim.angles,
        sim.psf,
        fwhm=sim.fwhm,
        params={"ncomp": 5},
        separations=seps,
        fake_flux=tp.fake_fluxes,
    )
    np.testing.assert_allclose(per_sep.fake_fluxes, tp.fake_fluxes)
    with pytest.raises(ValueError, match="one per separation"):
        throughput.throughput_curve(
            sim.cube, sim.angles, sim.psf, fwhm=sim.fwhm, separations=seps, fake_flux=[1.0, 2.0]
        )


def test_criteria_and_fpf(sim):
    args = (sim.cube, sim.angles, sim.psf)
    kw = {"fwhm": sim.fwhm, "star_flux": sim.star_flux, "params": {"ncomp": 5}}
    vip = contrast.contrast_curve(*args, **kw, criterion="vip", fc_snr=100.0)
    assert vip.criterion == "vip" and vip.throughput_curve.snr_per_flux is None
    # VIP's formula by hand: Student factor x noise + mean, over the photometric throughput.
    k = 20
    expected = (
        (contrast.student_factor(vip.separation[k], sim.fwhm) * vip.noise[k] + vip.residual_level[k])
        / vip.throughput[k]
        / sim.star_flux
    )
    assert vip.contrast[k] == pytest.approx(expected)
    five = contrast.contrast_curve(*args, **kw, nbranch=4)
    three = contrast.contrast_curve(*args, **kw, nbranch=4, fpf=float(stats.norm.sf(3.0)))
    assert five.criterion == "detection" and five.fpf == pytest.approx(2.87e-7, rel=0.01)
    finite = np.isfinite(five.contrast) & np.isfinite(three.contrast)
    assert np.all(three.contrast[finite] < five.contrast[finite])
    with pytest.raises(ValueError, match="criterion"):
        contrast.contrast_curve(*args, **kw, criterion="mawet")
    with pytest.raises(ValueError, match="false-positive fraction"):
        contrast.contrast_curve(*args, **kw, fpf=0.7)


def test_parallel_fake_injections_give_the_serial_result(sim):
    """The fake-injection reductions of the throughput, the self-consistent limit and the
    completeness ladder run on several threads with exactly the serial numbers."""
    from hcdc.science.postprocessing.completeness import completeness_curve

    args = (sim.cube, sim.angles, sim.psf)
    options = {"fwhm": sim.fwhm, "params": {"ncomp": 5}, "cache": False}
    curves = {}
    for threads in (1, 3):
        curves[threads] = (
            throughput.throughput_curve(*args, **options, nbranch=3, detection=True, threads=threads),
            contrast.contrast_curve(*args, **options, star_flux=sim.star_flux, nbranch=4, threads=threads),
        )
    (tp1, cc1), (tp3, cc3) = curves[1], curves[3]
    assert np.array_equal(tp1.branches, tp3.branches) and np.array_equal(tp1.snr_per_flux, tp3.snr_per_flux)
    assert np.array_equal(cc1.contrast, cc3.contrast, equal_nan=True)
    assert np.array_equal(cc1.throughput_curve.snr_per_flux, cc3.throughput_curve.snr_per_flux)
    ladders = [
        completeness_curve(
            *args,
            fwhm=sim.fwhm,
            star_flux=sim.star_flux,
            params={"ncomp": 5},
            separations=np.array([15.0, 30.0]),
            n_fakes=4,
            max_levels=2,
            start=cc1,
            threads=threads,
        )
        for threads in (1, 3)
    ]
    assert np.array_equal(ladders[0].recovered, ladders[1].recovered, equal_nan=True)
    assert np.array_equal(ladders[0].contrast, ladders[1].contrast, equal_nan=True)
