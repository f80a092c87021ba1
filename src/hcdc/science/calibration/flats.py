"""Master flat fields and non-linear bad pixels from lamp flats at several fluxes (pure).

The ESO IRDIS flat template takes lamp flats with increasing flux. For each flat ``i`` the
lamp level ``L_i`` is the median of the (dark-subtracted) flat over the field; each pixel's
signal ``S_i(p)`` is fitted by a straight line ``S_i(p) = a(p) + g(p) L_i``. The slope ``g`` is
the pixel's relative gain (its flat-field response); the intercept absorbs any residual
offset. The master flat is ``g`` normalised to a median of 1 in each field (IRDIS: left and
right halves, which see different filters in DBI). A pixel is non-linear/bad when

* the fit is poor: its RMS residual, relative to the pixel's signal, exceeds ``fit_sigma``
  robust standard deviations of the same quantity over the detector, or
* its gain is off: normalised gain outside ``[gain_min, gain_max]`` or more than
  ``gain_sigma`` robust standard deviations from 1 (dead and hot-responding pixels).

Inputs are float arrays; units of the flats are irrelevant (ADU); the master flat is
dimensionless.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcdc.science.calibration.darks import robust_sigma

__all__ = ["FlatResult", "lamp_levels", "fit_flat", "field_slices"]


@dataclass
class FlatResult:
    """Master flat (dimensionless, median 1 per field), bad-pixel map (True = bad) and fit data."""

    flat: np.ndarray
    bad: np.ndarray
    gain: np.ndarray  # raw slope before normalisation
    residual_rms: np.ndarray  # RMS residual of the linear fit, in input units
    levels: np.ndarray  # lamp level of each input flat


def field_slices(shape: tuple[int, int], n_fields: int = 2) -> list[tuple[slice, slice]]:
    """Column slices of the ``n_fields`` side-by-side fields of a detector frame ``(y, x)``."""
    ny, nx = shape
    if nx % n_fields:
        raise ValueError(f"frame width {nx} does not split into {n_fields} equal fields")
    w = nx // n_fields
    return [(slice(0, ny), slice(k * w, (k + 1) * w)) for k in range(n_fields)]


def lamp_levels(flats: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Lamp level of each flat of ``flats`` (n, y, x): the median over ``valid`` pixels."""
    flats = np.asarray(flats, dtype=np.float64)
    sel = np.ones(flats.shape[1:], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    return np.array([np.nanmedian(f[sel]) for f in flats])


def fit_flat(
    flats: np.ndarray,
    n_fields: int = 2,
    valid: np.ndarray | None = None,
    fit_sigma: float = 6.0,
    gain_sigma: float = 6.0,
    gain_min: float = 0.5,
    gain_max: float = 1.5,
) -> FlatResult:
    """Master flat and non-linear bad-pixel map from lamp flats ``(n, y, x)`` at ``n >= 2`` levels.

    ``flats`` are per-level mean frames with the dark/background already subtracted.
    ``valid`` (True = usable, e.g. outside the IRDIS dead zones) restricts the statistics;
    pixels outside it get flat 1 and are not flagged. With only 2 levels the fit cannot be
    judged, so only the gain criterion flags pixels.
    """
    flats = np.asarray(flats, dtype=np.float64)
    if flats.ndim != 3 or flats.shape[0] < 2:
        raise ValueError(f"fit_flat needs at least 2 lamp flats (n, y, x), got shape {flats.shape}")
    n = flats.shape[0]
    valid = np.ones(flats.shape[1:], dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    levels = lamp_levels(flats, valid)
    if np.ptp(levels) <= 0:
        raise ValueError(f"lamp flats all have the same level {levels[0]:.4g}; need increasing fluxes")
    # Closed-form least squares per pixel: slope = cov(L, S) / var(L).
    lc = levels - levels.mean()
    gain = np.tensordot(lc, flats, axes=(0, 0)) / np.sum(lc**2)
    intercept = flats.mean(axis=0) - gain * levels.mean()
    model = intercept[np.newaxis] + gain[np.newaxis] * levels[:, np.newaxis, np.newaxis]
    residual_rms = np.sqrt(np.mean((flats - model) ** 2, axis=0))

    flat = np.ones(flats.shape[1:], dtype=np.float64)
    for sl in field_slices(flats.shape[1:], n_fields):
        sel = valid[sl]
        norm = np.nanmedian(gain[sl][sel])
        if not norm > 0:
            raise ValueError("lamp flats show no positive response in one field; check the inputs")
        flat[sl] = np.where(sel, gain[sl] / norm, 1.0)

    finite = np.isfinite(flat)
    spread = robust_sigma(flat[valid & finite])
    bad = ~finite | (flat < gain_min) | (flat > gain_max)
    if spread > 0:
        bad |= np.abs(flat - 1.0) > gain_sigma * spread
    if n >= 3:
        # Judge the fit relative to the signal, so bright pixels are not flagged for photon noise.
        relative = residual_rms / np.maximum(np.abs(gain) * np.ptp(levels), 1e-12)
        med = np.nanmedian(relative[valid])
        rel_spread = robust_sigma(relative[valid])
        if rel_spread > 0:
            bad |= relative > med + fit_sigma * rel_spread
    bad &= valid
    flat = np.where(bad | ~finite, 1.0, flat)
    return FlatResult(
        flat=flat.astype(np.float32),
        bad=bad,
        gain=gain.astype(np.float32),
        residual_rms=residual_rms.astype(np.float32),
        levels=levels,
    )
