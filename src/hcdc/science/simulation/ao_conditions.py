"""Time-correlated atmospheric conditions and the AO correction they allow (for simulations).

Seeing and wind speed follow independent Ornstein–Uhlenbeck processes in their logarithm, so
that each is log-normal (as site statistics are) with an exponential autocorrelation
``exp(-|dt| / tau)``. The process is sampled exactly (no discretisation error) at any times:

    x(t + dt) = mu + (x(t) - mu) e^(-dt/tau) + sigma sqrt(1 - e^(-2 dt/tau)) N(0, 1)

The default parameters (:class:`TurbulenceModel`) are typical of Paranal and are assumptions,
stated here once: median DIMM seeing ~0.8" with a log-normal spread of ~0.3 (ESO's site
statistics show 0.5" to 1.5" nights); a turbulence-weighted wind of ~10 m/s (which with r0 at
0.8" gives tau0 ~ 4 ms, Paranal's median); correlation times of 20-30 min, the scale over which
a seeing monitor's record wanders.

The Strehl ratio of the AO correction follows an extended Maréchal budget (assumed SAXO-like:
40 x 40 subapertures over 8 m, 2 ms loop delay, 0.05 rad² of static aberrations):

    sigma² = 0.28 (d / r0_lambda)^(5/3)  (fitting)  +  (t_lag / tau0_lambda)^(5/3)  (servo lag)
             + sigma²_static ;   Strehl = exp(-sigma²)

with r0 and tau0 scaled from 500 nm by lambda^(6/5). It gives Strehl ~0.85 in H in median
conditions and ~0.5-0.6 for 1.5" seeing and fast wind, the range SPHERE reports.
The coronagraphic residual halo scales like the scattered light ``1 - Strehl``
(:func:`halo_factor`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcdc.science.monitoring.conditions import SEEING_WAVELENGTH_M, r0_from_seeing, tau0_s

__all__ = [
    "TurbulenceModel",
    "AoSystem",
    "ornstein_uhlenbeck",
    "simulate_turbulence",
    "expected_strehl",
    "halo_factor",
]


@dataclass(frozen=True)
class TurbulenceModel:
    """Log-normal, exponentially correlated seeing (arcsec at 500 nm) and wind speed (m/s).

    ``*_median``: median of the process; ``*_sigma_ln``: standard deviation of its natural
    logarithm; ``*_tau_s``: correlation time (s).
    """

    seeing_median: float = 0.8
    seeing_sigma_ln: float = 0.3
    seeing_tau_s: float = 1500.0
    wind_median: float = 10.0
    wind_sigma_ln: float = 0.35
    wind_tau_s: float = 1800.0


@dataclass(frozen=True)
class AoSystem:
    """Parameters of the Strehl budget: subaperture size (m), loop delay (s), static
    aberrations (rad²) and the science wavelength (m)."""

    subaperture_m: float = 8.0 / 40.0
    lag_s: float = 2.0e-3
    static_rad2: float = 0.05
    wavelength_m: float = 1.65e-6


def ornstein_uhlenbeck(
    rng: np.random.Generator, times_s: np.ndarray, mean: float, sigma: float, tau_s: float
) -> np.ndarray:
    """One OU path at increasing ``times_s`` (s): stationary mean ``mean``, standard deviation
    ``sigma``, correlation time ``tau_s``; the first value is drawn from the stationary law."""
    t = np.asarray(times_s, dtype=float)
    if t.ndim != 1 or (t.size > 1 and np.any(np.diff(t) < 0)):
        raise ValueError("times_s must be a 1-d array of non-decreasing times")
    if not (sigma >= 0 and tau_s > 0):
        raise ValueError(f"need sigma >= 0 and tau_s > 0; got sigma={sigma}, tau_s={tau_s}")
    out = np.empty(t.size)
    if t.size == 0:
        return out
    out[0] = mean + sigma * rng.standard_normal()
    decay = np.exp(-np.diff(t) / tau_s)
    noise = rng.standard_normal(t.size - 1)
    for k in range(1, t.size):
        d = decay[k - 1]
        out[k] = mean + (out[k - 1] - mean) * d + sigma * np.sqrt(1.0 - d * d) * noise[k - 1]
    return out


def simulate_turbulence(
    rng: np.random.Generator, times_s: np.ndarray, model: TurbulenceModel | None = None
) -> dict[str, np.ndarray]:
    """True conditions at ``times_s``: ``seeing`` (arcsec), ``r0_m`` (m at 500 nm),
    ``wind_m_s`` (m/s) and ``tau0_s`` (s)."""
    m = model or TurbulenceModel()
    seeing = np.exp(
        ornstein_uhlenbeck(rng, times_s, np.log(m.seeing_median), m.seeing_sigma_ln, m.seeing_tau_s)
    )
    wind = np.exp(ornstein_uhlenbeck(rng, times_s, np.log(m.wind_median), m.wind_sigma_ln, m.wind_tau_s))
    r0 = r0_from_seeing(seeing)
    return {"seeing": seeing, "r0_m": r0, "wind_m_s": wind, "tau0_s": tau0_s(r0, wind)}


def expected_strehl(
    r0_m: np.ndarray | float, wind_m_s: np.ndarray | float, system: AoSystem | None = None
) -> np.ndarray:
    """Strehl ratio (0-1) at ``system.wavelength_m`` for r0 (m at 500 nm) and wind (m/s), from
    the budget of the module docstring."""
    s = system or AoSystem()
    chromatic = (s.wavelength_m / SEEING_WAVELENGTH_M) ** 1.2
    r0_lambda = np.asarray(r0_m, dtype=float) * chromatic
    tau0_lambda = tau0_s(r0_m, wind_m_s) * chromatic
    variance = (
        0.28 * (s.subaperture_m / r0_lambda) ** (5 / 3) + (s.lag_s / tau0_lambda) ** (5 / 3) + s.static_rad2
    )
    return np.exp(-variance)


def halo_factor(strehl: np.ndarray | float, reference_strehl: float) -> np.ndarray:
    """Residual-halo intensity relative to the reference conditions: (1 - SR) / (1 - SR_ref)."""
    if not 0.0 <= reference_strehl < 1.0:
        raise ValueError(f"reference Strehl must be in [0, 1); got {reference_strehl}")
    return (1.0 - np.asarray(strehl, dtype=float)) / (1.0 - reference_strehl)
