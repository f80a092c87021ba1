"""Checks that turn silent nonsense into warnings: a star flux not in the cube's units, contrasts
above 1, bad parameter values (pure functions; used by :func:`hcdc.science.postprocessing.run.postprocess`).

Star flux and cube units
------------------------
The contrast of a companion is its flux divided by the star's flux *in the same units* (same
exposure time, neutral density, gain). An off-axis PSF recorded with another exposure time or in
other units (VIP's NACO beta Pic PSF: 1-FWHM flux 1.23, whereas the star in the cube's units is
764939.6) gives contrasts of hundreds. The check here: the star seen off-axis is brighter than
anything in the coronagraphic (or saturated) cube, so its 1-FWHM aperture flux must exceed the
brightest 1-FWHM aperture of the cube's mean frame. When it does not, contrasts are not computed
and a warning says why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import ndimage

from hcdc.science.postprocessing.photometry import aperture_sums

__all__ = [
    "brightest_aperture_flux",
    "check_positive",
    "contrast_warnings",
    "star_flux_warning",
]


def check_positive(values: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first value (scalar or sequence; None skipped) that is not a
    finite number > 0; ``values`` maps a readable name (e.g. ``'pixel scale (mas/px)'``) to it."""
    for name, value in values.items():
        if value is None:
            continue
        for v in np.atleast_1d(np.asarray(value, dtype=object)).ravel():
            if v is None:
                continue
            try:
                number = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a number > 0; got {v!r}") from None
            if not (math.isfinite(number) and number > 0):
                raise ValueError(f"{name} must be a finite number > 0; got {v}")


def brightest_aperture_flux(image: np.ndarray, fwhm: float) -> float:
    """Flux of the brightest 1-FWHM-diameter aperture of ``image`` (px units of the image).

    The aperture sum is evaluated at the maximum of the image smoothed by a top-hat of that size.
    """
    image = np.nan_to_num(np.asarray(image, dtype=np.float64))
    radius = fwhm / 2.0
    size = int(math.ceil(radius)) * 2 + 1
    yy, xx = np.mgrid[:size, :size] - size // 2
    kernel = (np.hypot(xx, yy) <= radius).astype(np.float64)
    smooth = ndimage.convolve(image, kernel, mode="constant")
    y, x = np.unravel_index(int(np.argmax(smooth)), smooth.shape)
    return float(aperture_sums(image, np.array([x]), np.array([y]), radius)[0])


def star_flux_warning(
    mean_frame: np.ndarray, star_flux: float | None, fwhm: float, unit: str = "", source: str = ""
) -> str | None:
    """A warning when ``star_flux`` (1-FWHM aperture) is not above the brightest 1-FWHM aperture
    of the cube's ``mean_frame``: then it cannot be the star in the cube's units."""
    if star_flux is None:
        return None
    brightest = brightest_aperture_flux(mean_frame, fwhm)
    if star_flux > brightest:
        return None
    units = f" {unit}" if unit else ""
    origin = f" ({source})" if source else ""
    return (
        f"star flux {star_flux:.4g}{units}{origin} is not above the brightest 1-FWHM aperture of the "
        f"cube's mean frame ({brightest:.4g}{units}): it is not in the cube's units (exposure time, "
        "neutral density, gain, or a normalised PSF); contrasts are not reported. Give the star's "
        "1-FWHM flux in the cube's units (--star-flux)"
    )


def contrast_warnings(
    detection_contrasts: list[float], curve_separations: np.ndarray | None, curve: np.ndarray | None
) -> list[str]:
    """Warnings for contrasts above 1 (a companion brighter than its star, or a detection limit
    above the star): almost always a star flux in the wrong units."""
    out = []
    for i, c in enumerate(detection_contrasts, start=1):
        if math.isfinite(c) and c > 1.0:
            out.append(
                f"detection #{i}: contrast {c:.3g} > 1 (brighter than the star); check that the star "
                "flux is in the cube's units"
            )
    if curve is not None and curve_separations is not None:
        above = np.isfinite(curve) & (curve > 1.0)
        if np.any(above):
            seps = np.broadcast_to(curve_separations, curve.shape)[above]
            out.append(
                f"contrast curve above 1 at {int(above.sum())} separation(s) ({seps.min():.1f}-"
                f"{seps.max():.1f} px): there the noise exceeds the star flux; check the star flux units"
            )
    return out
