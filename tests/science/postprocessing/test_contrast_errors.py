"""``postprocess(aperture_noise_errors=True)`` (``l2-postprocess`` 1.4): a detection's
``CONTRAST_ERR`` is its aperture noise (contrast / S/N) in quadrature with the uncertainty of the
fakes' mean throughput, and it is a calibrated 1 sigma: on simulated ADI cubes with known truth the
pulls (measured - true) / error have an rms near 1.

Measured (30 draws, PCA 3 components, 16 frames, 60 deg, a companion at 20 px of contrast 2e-3,
S/N ~7-12): pulls rms 1.05, mean 0.03 with the 1.4 error; 0.89 with the fakes' spread alone
(before 1.4, heavy-tailed: a 6-fake standard deviation), 0.70 with that spread and the aperture
noise both in full (the spread of fakes as bright as the detection already holds one aperture's
noise). At 14 px the same reduction's photometry is biased low (mean pull -1.4) and no error
covers that (docs/postprocessing.md). The test's 12 draws: rms 0.90 (0.79 before 1.4).
"""

from __future__ import annotations

import numpy as np
from helpers.one_companion import reduce_one_companion

from hcdc.science.postprocessing.detection_photometry import PHOTOMETRY_FAKES

CONTRAST = 2e-3
SEPARATION = 20.0


def _measure(seed: int, errors: bool) -> tuple[float, float, float]:
    res, i, _ = reduce_one_companion(seed, SEPARATION, CONTRAST, aperture_noise_errors=errors)
    det = res.detections[i]
    return det.contrast, det.contrast_err, det.snr


def test_contrast_errors_are_calibrated_on_simulated_cubes() -> None:
    pulls = []
    for seed in range(12):
        contrast, error, snr = _measure(seed, True)
        # never below the aperture's own noise
        assert error >= abs(contrast) / snr * (1 - 1e-9)
        pulls.append((contrast - CONTRAST) / error)
    pulls = np.array(pulls)
    rms = float(np.sqrt(np.mean(pulls**2)))
    assert 0.6 < rms < 1.6, (rms, pulls)
    # the photometry is unbiased here (30 draws: mean pull 0.03); 12 draws: 0.56 +- 0.29
    assert abs(float(np.mean(pulls))) < 1.0, pulls


def test_before_1_4_the_error_is_the_fakes_spread_alone() -> None:
    contrast, old, snr = _measure(0, False)
    _, new, _ = _measure(0, True)
    spread = old  # the same fakes: the spread does not depend on the option
    assert np.isclose(new, np.hypot(spread / np.sqrt(PHOTOMETRY_FAKES), abs(contrast) / snr))
