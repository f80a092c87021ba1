"""Warnings instead of silent nonsense: star flux units, contrasts above 1, parameter values."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from hcdc.science.postprocessing.run import postprocess
from hcdc.science.postprocessing.sanity import check_positive, contrast_warnings, star_flux_warning
from hcdc.science.simulation.adi import simulate_adi_cube


@pytest.fixture(scope="module")
def sim():
    return simulate_adi_cube(
        n_frames=20, size=65, fwhm=4.0, rotation=60.0, companions=[(15.0, 40.0, 5e-3)], seed=2
    )


def test_star_flux_in_the_cube_units_passes_and_a_normalised_psf_warns(sim):
    mean = sim.cube.mean(axis=0)
    assert star_flux_warning(mean, sim.star_flux, 4.0) is None
    text = star_flux_warning(mean, 1.0, 4.0, "ADU", "1-FWHM flux of the PSF")
    assert "star flux 1 ADU (1-FWHM flux of the PSF) is not above the brightest" in text


def test_postprocess_reports_no_contrast_for_a_star_flux_in_other_units(sim):
    result = postprocess(
        sim.cube,
        sim.angles,
        algorithm="pca",
        psf=sim.psf,
        fwhm=4.0,
        star_flux=3.0,
        params={"ncomp": 3},
        compute_contrast=True,
    )
    assert result.star_flux is None and result.contrast is None
    assert result.detections and all(np.isnan(d.contrast) for d in result.detections)
    assert len(result.warnings) == 1 and "contrasts are not reported" in result.warnings[0]
    good = postprocess(
        sim.cube,
        sim.angles,
        algorithm="pca",
        psf=sim.psf,
        fwhm=4.0,
        star_flux=sim.star_flux,
        params={"ncomp": 3},
        compute_contrast=False,
    )
    assert good.warnings == [] and good.detections[0].contrast == pytest.approx(5e-3, rel=0.3)


@pytest.mark.shared_data
def test_naco_psf_file_is_not_in_the_cube_units(shared_data):
    folder = shared_data / "naco_betapic"
    cube = fits.getdata(folder / "naco_betapic_cube.fits").astype(np.float64)
    psf = fits.getdata(folder / "naco_betapic_psf.fits").astype(np.float64)
    from hcdc.science.postprocessing.run import star_flux_from_psf

    psf_flux = star_flux_from_psf(psf[1:-1, 1:-1], 4.6)  # README: 1.23
    assert psf_flux == pytest.approx(1.23, abs=0.01)
    assert star_flux_warning(cube.mean(axis=0), psf_flux, 4.6) is not None
    assert star_flux_warning(cube.mean(axis=0), 764939.6, 4.6) is None  # VIP's starphot


def test_contrast_above_one_warns():
    assert contrast_warnings([1e-3, np.nan], np.arange(3.0), np.array([[1e-2, 1e-3, 1e-4]])) == []
    texts = contrast_warnings([520.0], np.arange(3.0), np.array([[5.0, 1e-3, 1e-4]]))
    assert (
        "detection #1: contrast 520 > 1" in texts[0] and "contrast curve above 1 at 1 separation" in texts[1]
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pixel_scale_mas": 0.0}, "pixel scale \\(mas/px\\) must be a finite number > 0; got 0.0"),
        ({"pixel_scale_mas": -12.25}, "pixel scale"),
        ({"fwhm": float("nan")}, "FWHM \\(px\\)"),
        ({"star_flux": [1.0, -2.0]}, "star flux must be a finite number > 0; got -2.0"),
        ({"detection_fpf": 0.9}, "false-positive fraction must be below 0.5"),
        ({"contrast_options": {"fc_snr": 0}}, "contrast option fc_snr"),
    ],
)
def test_postprocess_checks_numbers_before_any_work(sim, kwargs, message):
    args = {"algorithm": "pca", "fwhm": 4.0, "params": {"ncomp": 3}, **kwargs}
    with pytest.raises(ValueError, match=message):
        postprocess(sim.cube, sim.angles, **args)


def test_check_positive_names_the_value():
    check_positive({"a": 1.0, "b": None, "c": [1, 2]})
    with pytest.raises(ValueError, match="scale must be a number > 0; got 'x'"):
        check_positive({"scale": "x"})
