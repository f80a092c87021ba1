"""Atmospheric and AO conditions from SPARTA telemetry samples (pure functions on arrays).

Conventions (shared/reference/sphere.md section 2; vlt-sphere ``SPARTA.py``, jmilou ``sparta``):

* ``r0`` is the Fried parameter in metres at 500 nm, ``wind`` the turbulence-weighted wind
  speed in m/s, ``strehl`` SPARTA's Strehl ratio estimate (a fraction, 0-1).
* seeing = lambda / r0 with lambda = 500 nm, in arcsec (the definition SPHERE's tools use; no
  0.98 factor);
* coherence time tau0 = 0.314 r0 / v, in seconds;
* zenith values (turbulence along the line of sight scales with airmass ``X``):
  seeing_zenith = seeing X^-0.6, r0_zenith = r0 X^0.6, tau0_zenith = tau0 X^0.6.
* A sample is valid when 0.05 < strehl <= 0.98, 0 < r0 <= 0.9 m and 0 < v <= 50 m/s; an
  invalid sample is discarded whole (its r0 is not trusted when its Strehl is absurd: both come
  from the same wavefront-sensor slopes).

Times are MJD (UTC days) unless a name says seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "SEEING_WAVELENGTH_M",
    "TAU0_COEFFICIENT",
    "AIRMASS_EXPONENT",
    "VALIDITY_LIMITS",
    "seeing_arcsec",
    "r0_from_seeing",
    "tau0_s",
    "zenith_seeing",
    "zenith_r0",
    "zenith_tau0",
    "valid_samples",
    "sampling_interval_s",
    "FrameConditions",
    "SUMMARY_COLUMNS",
    "conditions_medians",
    "interpolate_series",
]

#: Wavelength of SPARTA's r0 and of the seeing derived from it (m).
SEEING_WAVELENGTH_M = 500e-9
#: tau0 = TAU0_COEFFICIENT * r0 / v (Roddier's 0.314).
TAU0_COEFFICIENT = 0.314
#: Exponent of the airmass in the zenith corrections (r0 ~ X^-3/5).
AIRMASS_EXPONENT = 0.6
#: Validity of SPARTA AtmPerfParams samples: quantity -> (exclusive low, inclusive high).
VALIDITY_LIMITS: dict[str, tuple[float, float]] = {
    "strehl": (0.05, 0.98),
    "r0_m": (0.0, 0.9),
    "wind_m_s": (0.0, 50.0),
}
_RAD_TO_ARCSEC = 180.0 / math.pi * 3600.0
_DAY_S = 86400.0


def seeing_arcsec(r0_m: np.ndarray | float, wavelength_m: float = SEEING_WAVELENGTH_M) -> np.ndarray:
    """Seeing (arcsec) = ``wavelength_m`` / r0 for r0 in metres (at 500 nm by default)."""
    return wavelength_m / np.asarray(r0_m, dtype=float) * _RAD_TO_ARCSEC


def r0_from_seeing(seeing: np.ndarray | float, wavelength_m: float = SEEING_WAVELENGTH_M) -> np.ndarray:
    """Fried parameter (m) of a seeing (arcsec): the inverse of :func:`seeing_arcsec`."""
    return wavelength_m / (np.asarray(seeing, dtype=float) / _RAD_TO_ARCSEC)


def tau0_s(r0_m: np.ndarray | float, wind_m_s: np.ndarray | float) -> np.ndarray:
    """Coherence time (s) = 0.314 r0 / v, r0 in metres, v in m/s."""
    return TAU0_COEFFICIENT * np.asarray(r0_m, dtype=float) / np.asarray(wind_m_s, dtype=float)


def zenith_seeing(seeing: np.ndarray | float, airmass: np.ndarray | float) -> np.ndarray:
    """Seeing (arcsec) corrected to zenith: seeing · X^-0.6."""
    return np.asarray(seeing, dtype=float) * np.asarray(airmass, dtype=float) ** -AIRMASS_EXPONENT


def zenith_r0(r0_m: np.ndarray | float, airmass: np.ndarray | float) -> np.ndarray:
    """Fried parameter (m) corrected to zenith: r0 · X^0.6."""
    return np.asarray(r0_m, dtype=float) * np.asarray(airmass, dtype=float) ** AIRMASS_EXPONENT


def zenith_tau0(tau0: np.ndarray | float, airmass: np.ndarray | float) -> np.ndarray:
    """Coherence time (s) corrected to zenith: tau0 · X^0.6 (tau0 scales like r0)."""
    return np.asarray(tau0, dtype=float) * np.asarray(airmass, dtype=float) ** AIRMASS_EXPONENT


def valid_samples(r0_m: np.ndarray, wind_m_s: np.ndarray, strehl: np.ndarray) -> np.ndarray:
    """Boolean mask of the SPARTA samples inside :data:`VALIDITY_LIMITS` (NaN is invalid)."""
    mask = np.ones(np.shape(r0_m), dtype=bool)
    for name, values in (("r0_m", r0_m), ("wind_m_s", wind_m_s), ("strehl", strehl)):
        low, high = VALIDITY_LIMITS[name]
        v = np.asarray(values, dtype=float)
        with np.errstate(invalid="ignore"):
            mask &= (v > low) & (v <= high)
    return mask


def sampling_interval_s(mjd: np.ndarray) -> float:
    """Median interval (s) between consecutive distinct sample times; NaN with < 2 samples."""
    t = np.unique(np.asarray(mjd, dtype=float))
    if t.size < 2:
        return float("nan")
    return float(np.median(np.diff(t)) * _DAY_S)


@dataclass(frozen=True)
class FrameConditions:
    """Quantities interpolated to frame times.

    ``values``: name -> array (one per frame, NaN where no sample is close enough);
    ``covered``: True where the frame lies between two samples at most ``max_gap_s`` apart, or
    within ``max_gap_s / 2`` of the first/last sample (then the nearest value is taken);
    ``nearest_s``: distance to the nearest sample (s); ``interval_s``: median sampling interval
    of the series (s).
    """

    values: dict[str, np.ndarray]
    covered: np.ndarray
    nearest_s: np.ndarray
    interval_s: float


def interpolate_series(
    sample_mjd: np.ndarray,
    series: Mapping[str, np.ndarray],
    frame_mjd: np.ndarray,
    max_gap_s: float | None = None,
) -> FrameConditions:
    """Linear interpolation of time series (all sampled at ``sample_mjd``) to ``frame_mjd``.

    ``max_gap_s`` is the longest gap between two samples bridged by interpolation; by default
    three times the median sampling interval (a telemetry dropout longer than that gives NaN
    and ``covered = False`` rather than an invented value). Samples need not be sorted;
    duplicated times are averaged. NaN samples must be removed by the caller.
    """
    t = np.asarray(sample_mjd, dtype=float)
    frames = np.atleast_1d(np.asarray(frame_mjd, dtype=float))
    n = frames.size
    if t.size == 0:
        empty = {name: np.full(n, np.nan) for name in series}
        return FrameConditions(empty, np.zeros(n, dtype=bool), np.full(n, np.nan), float("nan"))
    order = np.argsort(t, kind="stable")
    t_sorted = t[order]
    unique_t, inverse = np.unique(t_sorted, return_inverse=True)
    counts = np.bincount(inverse)
    columns = {
        name: np.bincount(inverse, weights=np.asarray(values, dtype=float)[order]) / counts
        for name, values in series.items()
    }
    interval = sampling_interval_s(unique_t)
    gap_limit = max_gap_s if max_gap_s is not None else (3.0 * interval if np.isfinite(interval) else 0.0)
    right = np.searchsorted(unique_t, frames, side="left")
    left = np.clip(right - 1, 0, unique_t.size - 1)
    right_c = np.clip(right, 0, unique_t.size - 1)
    nearest = np.minimum(np.abs(frames - unique_t[left]), np.abs(unique_t[right_c] - frames)) * _DAY_S
    inside = (right > 0) & (right < unique_t.size)
    exact = np.isin(frames, unique_t)
    bracket = (unique_t[right_c] - unique_t[left]) * _DAY_S
    covered = (
        exact | (inside & (bracket <= gap_limit + 1e-9)) | (~inside & (nearest <= gap_limit / 2.0 + 1e-9))
    )
    values = {}
    for name, column in columns.items():
        if unique_t.size == 1:
            interpolated = np.full(n, column[0])
        else:
            interpolated = np.interp(frames, unique_t, column)  # np.interp holds the end values
        values[name] = np.where(covered, interpolated, np.nan)
    return FrameConditions(values, covered, nearest, interval)


#: summary key -> per-frame conditions column (units in the key's name)
SUMMARY_COLUMNS = {
    "strehl_median": "STREHL",
    "seeing_median_arcsec": "SEEING",
    "seeing_zenith_median_arcsec": "SEEING_ZENITH",
    "tau0_median_s": "TAU0",
    "tau0_zenith_median_s": "TAU0_ZENITH",
    "r0_median_m": "R0",
    "wind_median_m_s": "WIND",
    "dtts_flux_median_adu": "DTTS_FLUX",
}


def conditions_medians(
    table: Mapping[str, object], keep: np.ndarray | None = None
) -> dict[str, float | int | None]:
    """Medians of a per-frame conditions table (columns of :data:`SUMMARY_COLUMNS` and
    ``NO_TELEMETRY``; an astropy Table or a mapping of arrays) over the frames with telemetry
    (and in ``keep`` when given), None where no frame has a finite value; with the counts
    ``frames`` (in ``keep``) and ``frames_with_telemetry``. Absent columns give None."""
    covered = ~np.asarray(table["NO_TELEMETRY"], dtype=bool)
    use = np.ones(covered.size, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    out: dict[str, float | int | None] = {
        "frames": int(use.sum()),
        "frames_with_telemetry": int((covered & use).sum()),
    }
    names = getattr(table, "colnames", table)  # an astropy Table iterates over rows
    for key, column in SUMMARY_COLUMNS.items():
        if column not in names:
            out[key] = None
            continue
        values = np.asarray(table[column], dtype=float)[covered & use]
        values = values[np.isfinite(values)]
        out[key] = float(np.median(values)) if values.size else None
    return out
