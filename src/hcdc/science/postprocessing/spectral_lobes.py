"""Detections of a spectral (SDI/ASDI) reduction that are a brighter companion's own radial
residual, not a source.

Why: SDI/ASDI rescale every channel by ``lambda_ref / lambda`` so that the speckles line up; a
companion, which does not move with wavelength, is then spread radially over
``[r lambda_min / lambda_max, r lambda_max / lambda_min]`` in the rescaled frames. The reference
(the channel mean, or the PCA library of wavelengths x frames) holds these radially displaced
copies, so after subtraction and rescaling back the companion is followed along its radius by a
negative lobe and, beyond it, a weaker positive one. On the simulated IFS night (seed 0,
``tests/pipeline/test_ifs_workflow.py``) that positive lobe, 8 px outside the 180 mas companion
(24 px; 1.33 x its separation, 0.8 FWHM off in PA), reached S/N 6.1 in Level 2: the same night
without that companion has no detection there.

The rule, the radial counterpart of the ADI side-lobe rule of
:func:`hcdc.science.postprocessing.detection.detect_candidates`: a detection is a spectral
residual of a brighter (higher S/N) one when

* its separation lies within ``[r_c / span - 1 FWHM, r_c * span + 1 FWHM]`` of the brighter one's
  ``r_c`` (``span = lambda_max / lambda_min``), at least ``MIN_SEPARATION_FWHM`` away;
* its position angle is within ``rotation + 1 FWHM`` (as an angle at its separation) of the
  brighter one's (the companion's trail turns with the field);
* its image peak is below :data:`SPECTRAL_LOBE_RATIO` times the brighter one's.

A real companion that faint in that narrow radial wedge is dropped too: the brighter one's
spectral residual dominates there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

__all__ = ["SPECTRAL_LOBE_RATIO", "spectral_residuals"]

#: A fainter detection in a brighter one's radial wedge whose image peak is below this fraction of
#: the brighter one's is taken for its spectral residual. Measured: 0.25 on the IFS night above
#: (peak 15 vs 60 in the final image along the companion's radius); the ADI rule uses 0.4.
SPECTRAL_LOBE_RATIO = 0.4
#: Detections closer than this (FWHM) are one source (the detection's own merging distance).
MIN_SEPARATION_FWHM = 1.5


class _Detection(Protocol):
    x: float
    y: float
    separation_px: float
    pa_deg: float
    snr: float


def _peak(image: np.ndarray, x: float, y: float) -> float:
    iy, ix = int(round(y)), int(round(x))
    if not (0 <= iy < image.shape[0] and 0 <= ix < image.shape[1]):
        return math.nan
    return float(image[iy, ix])


def spectral_residuals(
    detections: Sequence[_Detection],
    image: np.ndarray,
    *,
    fwhm: float,
    rotation_deg: float,
    wavelength_span: float,
) -> dict[int, int]:
    """Which ``detections`` (indices) are the spectral residual of which brighter one (index).

    ``image``: the final image the detections were found on; ``fwhm`` (px); ``rotation_deg`` the
    sequence's field rotation; ``wavelength_span`` ``lambda_max / lambda_min`` of the channels
    (>= 1). Detections are considered in decreasing S/N; one flagged as a residual is not a
    parent for others. See the module doc for the rule.
    """
    if not fwhm > 0:
        raise ValueError(f"fwhm must be > 0; got {fwhm}")
    if not wavelength_span >= 1.0:
        raise ValueError(f"wavelength_span is lambda_max / lambda_min, >= 1; got {wavelength_span}")
    image = np.asarray(image, dtype=np.float64)
    order = sorted(range(len(detections)), key=lambda i: -detections[i].snr)
    peaks = {i: _peak(image, detections[i].x, detections[i].y) for i in order}
    sources: list[int] = []
    flagged: dict[int, int] = {}
    for i in order:
        d = detections[i]
        parent = None
        for j in sources:
            c = detections[j]
            if not peaks[j] > 0 or math.hypot(d.x - c.x, d.y - c.y) < MIN_SEPARATION_FWHM * fwhm:
                continue
            r_lo = c.separation_px / wavelength_span - fwhm
            r_hi = c.separation_px * wavelength_span + fwhm
            if not r_lo <= d.separation_px <= r_hi:
                continue
            d_pa = abs((d.pa_deg - c.pa_deg + 180.0) % 360.0 - 180.0)
            arc = abs(rotation_deg) + math.degrees(fwhm / max(d.separation_px, 1e-9))
            if d_pa <= arc and peaks[i] < SPECTRAL_LOBE_RATIO * peaks[j]:
                parent = j
                break
        if parent is None:
            sources.append(i)
        else:
            flagged[i] = parent
    return flagged
