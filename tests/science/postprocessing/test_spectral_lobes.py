"""Spectral (radial) residuals of a brighter companion among SDI/ASDI detections
(:mod:`hcdc.science.postprocessing.spectral_lobes`). The Level 2 case it was made for (S/N 6.1,
8 px outside the 180 mas companion of the simulated IFS night) is checked end to end in
tests/pipeline/test_ifs_workflow.py."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science import geometry
from hcdc.science.postprocessing.products import Detection
from hcdc.science.postprocessing.spectral_lobes import spectral_residuals


def _detection(image: np.ndarray, sep: float, pa: float, snr: float, peak: float) -> Detection:
    x, y = geometry.polar_to_pixel(sep, pa, image.shape)
    image[int(round(y)), int(round(x))] = peak
    return Detection(x=x, y=y, separation_px=sep, pa_deg=pa, snr=snr)


def test_the_ifs_nights_residual_is_flagged_and_real_sources_are_not() -> None:
    image = np.zeros((145, 145))
    # the measured case: companion 23.8 px / 60.3 deg, peak 0.060; residual 31.8 px / 65.9 deg, 0.019
    companion = _detection(image, 23.81, 60.29, 17.9, 0.060)
    residual = _detection(image, 31.78, 65.85, 6.1, 0.019)
    other = _detection(image, 39.98, 230.26, 30.0, 0.061)  # another companion, elsewhere
    faint_far = _detection(image, 31.78, 100.0, 5.5, 0.015)  # same radius, outside the wedge
    bright = _detection(image, 31.78, 64.0, 5.8, 0.030)  # in the wedge, but half the peak
    outside = _detection(image, 23.81 * 1.406 + 3.9 + 1.5, 55.0, 5.2, 0.01)  # beyond the span
    dets = [other, companion, residual, faint_far, bright, outside]
    kw = {"fwhm": 3.9, "rotation_deg": 2.06, "wavelength_span": 1350 / 960}
    assert spectral_residuals(dets, image, **kw) == {2: 1}
    # the span: a narrower band of wavelengths does not reach 31.8 px from 23.8 px
    assert spectral_residuals(dets, image, **{**kw, "wavelength_span": 1.1}) == {}
    # a field rotation wide enough takes in the one 40 deg away, and 'outside' (9 deg from
    # 'bright', within bright's radial span) becomes bright's residual
    assert spectral_residuals(dets, image, **{**kw, "rotation_deg": 40.0}) == {2: 1, 3: 1, 5: 4}
    with pytest.raises(ValueError, match="wavelength_span"):
        spectral_residuals(dets, image, **{**kw, "wavelength_span": 0.9})
