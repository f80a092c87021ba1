"""Candidate detection with a Student false-alarm criterion; 2-D Gaussian fits."""

import numpy as np
import pytest
from scipy import stats

from hcdc.science.characterization.detection import (
    GAUSSIAN_5SIGMA_FPF,
    detect_candidates,
    fit_gaussian_2d,
    student_threshold,
)
from hcdc.science.postprocessing import snr
from hcdc.science.simulation.adi import gaussian_psf


def test_threshold_is_the_student_quantile_of_the_5_sigma_fpf():
    assert GAUSSIAN_5SIGMA_FPF == pytest.approx(2.8665e-7, rel=1e-3)
    sep, fwhm = 10.0, 4.0
    n = np.floor(2 * np.pi / (2 * np.arcsin(fwhm / 2 / sep)))
    assert student_threshold(sep, fwhm) == pytest.approx(stats.t.isf(GAUSSIAN_5SIGMA_FPF, n - 2))
    values = student_threshold(np.array([5.0, 10.0, 40.0, 1e4]), fwhm)
    assert np.all(np.diff(values) < 0) and values[-1] == pytest.approx(5.0, rel=0.01)
    with pytest.raises(ValueError):
        student_threshold(10.0, 4.0, fpf=0.7)


def test_detects_injected_sources_and_nothing_in_pure_noise():
    rng = np.random.default_rng(11)
    fwhm = 4.0
    noise = rng.normal(size=(81, 81))
    assert detect_candidates(snr.snr_map(noise, fwhm), fwhm) == []
    image = noise.copy()
    psf = gaussian_psf(fwhm, size=15, dx=0.3, dy=-0.2)
    image[55:70, 20:35] += 60 * psf  # centred on (27.3, 61.8)
    image[10:25, 48:63] += 60 * gaussian_psf(fwhm, size=15)  # centred on (55, 17)
    found = detect_candidates(snr.snr_map(image, fwhm), fwhm, image=image)
    assert len(found) == 2
    positions = sorted((c.x, c.y) for c in found)
    assert positions[0] == pytest.approx((27.3, 61.8), abs=0.3)
    assert positions[1] == pytest.approx((55.0, 17.0), abs=0.3)
    for c in found:
        assert c.snr > c.threshold and c.fpf < GAUSSIAN_5SIGMA_FPF


def test_gaussian_fit_recovers_a_dip_and_a_peak():
    yy, xx = np.mgrid[0:31, 0:31]
    dip = 5.0 - 3.0 * np.exp(-((xx - 14.6) ** 2 + (yy - 15.3) ** 2) / (2 * 2.0**2))
    fit = fit_gaussian_2d(dip, 15, 15, box=11, negative=True)
    assert (fit.x, fit.y) == pytest.approx((14.6, 15.3), abs=1e-3)
    assert fit.amplitude == pytest.approx(-3.0, rel=1e-3)
    assert fit.fwhm_x == pytest.approx(2.0 * 2.3548, rel=1e-3)
    with pytest.raises(ValueError, match="leaves"):
        fit_gaussian_2d(dip, 2, 2, box=11)
