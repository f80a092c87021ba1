"""The expected number of false S/N peaks of hcdc's search over every pixel
(:mod:`hcdc.science.postprocessing.search_threshold`, random-field theory) against Monte-Carlo
counts of :func:`detect_candidates` on smoothed Gaussian noise, the S/N map's roughness against
the one computed from the smoothing and aperture kernels, and the threshold for a stated number
of false peaks per image.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hcdc.science.postprocessing.detection import GAUSSIAN_5SIGMA_FPF, detect_candidates, student_threshold
from hcdc.science.postprocessing.search_threshold import (
    expected_false_peaks,
    search_region,
    search_threshold,
    snr_roughness,
)
from hcdc.science.postprocessing.snr import snr_map

FWHM = 4.0
SIZE = 128
SIGMA = FWHM / (2.0 * np.sqrt(2.0 * np.log(2.0)))


def _noise(seed: int) -> np.ndarray:
    """White Gaussian noise smoothed by a Gaussian of the FWHM (a reduced image without sources)."""
    return ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((SIZE, SIZE)), SIGMA)


@pytest.fixture(scope="module")
def noise_maps() -> list[tuple[np.ndarray, np.ndarray]]:
    """24 independent (image, S/N map) pairs of smoothed Gaussian noise."""
    return [(image, snr_map(image, FWHM)) for image in (_noise(seed) for seed in range(3000, 3024))]


def _kernel_roughness() -> float:
    """``lambda`` of the 1-FWHM aperture sum of the smoothed noise, from its kernel's power
    spectrum, for central differences on the pixel grid (``sum sin^2(k_x) P / sum P``): what
    :func:`snr_roughness` should measure, computed without the S/N map."""
    n, supersample = 129, 8
    impulse = np.zeros((n, n))
    impulse[n // 2, n // 2] = 1.0
    smooth = ndimage.gaussian_filter(impulse, SIGMA)
    fine = (np.indices((n * supersample, n * supersample)) + 0.5) / supersample - n / 2
    disc = (np.hypot(*fine) <= FWHM / 2).reshape(n, supersample, n, supersample).mean(axis=(1, 3))
    power = np.abs(np.fft.fft2(np.fft.ifftshift(smooth)) * np.fft.fft2(np.fft.ifftshift(disc))) ** 2
    kx = 2 * np.pi * np.fft.fftfreq(n)
    return float((power * np.sin(kx)[None, :] ** 2).sum() / power.sum())


def test_roughness_of_the_snr_map_is_that_of_its_aperture_field(noise_maps) -> None:
    expected = _kernel_roughness()
    measured = [snr_roughness(snr, FWHM) for _, snr in noise_maps]
    assert np.mean(measured) == pytest.approx(expected, rel=0.04)
    assert np.std(measured) / np.mean(measured) < 0.1


@pytest.mark.parametrize("fpf", [1e-2, 3e-3, 1e-3])
def test_expected_false_peaks_match_the_detections_counted(noise_maps, fpf: float) -> None:
    """Counted detections (refined, merged: the real detection path) within 3 Poisson sigma of the
    random-field prediction summed over the maps; the count of independent resolution elements
    (1-FWHM apertures in the searched area) times ``fpf`` is 1.5-3 times lower and must fail it."""
    counted, predicted, elements = 0, 0.0, 0.0
    for image, snr in noise_maps:
        region = search_region(np.isfinite(snr), FWHM)
        counted += len(detect_candidates(snr, FWHM, fpf=fpf, image=image, max_candidates=1000))
        predicted += expected_false_peaks(region, snr_roughness(snr, FWHM), fpf)
        elements += region.n_pixels / (np.pi * FWHM**2 / 4) * fpf
    assert predicted > 3  # a count that can tell
    assert abs(counted - predicted) < 3 * np.sqrt(predicted) + 1, (counted, predicted)
    assert abs(counted - elements) > 3 * np.sqrt(counted), (counted, elements)


def test_search_threshold_gives_the_stated_number_and_orders_with_it(noise_maps) -> None:
    _, snr = noise_maps[0]
    region = search_region(np.isfinite(snr), FWHM)
    found = {n: search_threshold(snr, FWHM, n) for n in (1e-3, 1e-2, 1.0)}
    for n, s in found.items():
        assert expected_false_peaks(region, s.roughness, s.fpf) == pytest.approx(n, rel=1e-6)
        assert s.false_alarms == pytest.approx(n, rel=1e-6)
        assert s.n_pixels == region.n_pixels
        assert np.all(s.at([10.0, 40.0]) == student_threshold(np.array([10.0, 40.0]), FWHM, s.fpf))
    assert found[1e-3].fpf < found[1e-2].fpf < found[1.0].fpf
    # The Student 5-sigma threshold's own expected false peaks, stated, give it back.
    student = found[1.0].student_false_alarms
    assert 1e-3 < student < 1e-2  # ~0.003 per 128-px image, not the ~3e-4 of 'elements x fpf'
    assert search_threshold(snr, FWHM, student).fpf == pytest.approx(GAUSSIAN_5SIGMA_FPF, rel=1e-5)
    with pytest.raises(ValueError, match="positive"):
        search_threshold(snr, FWHM, 0.0)


def test_roughness_ignores_a_bright_source(noise_maps) -> None:
    """A companion of S/N ~30 raises the mean squared gradient of its neighbourhood; the
    roughness is measured away from it (within 5 % of the map's without it)."""
    image, snr = noise_maps[1]
    yy, xx = np.indices(image.shape)
    bump = np.exp(-((xx - 84.0) ** 2 + (yy - 64.0) ** 2) / (2 * SIGMA**2))
    with_source = snr_map(image + 30 * image.std() * bump / bump.max(), FWHM)
    assert np.nanmax(with_source) > 15
    assert snr_roughness(with_source, FWHM) == pytest.approx(snr_roughness(snr, FWHM), rel=0.05)
