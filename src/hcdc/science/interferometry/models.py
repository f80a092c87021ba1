"""Visibility models (pure numpy/scipy). Angles in mas, spatial frequencies in cycles/rad."""

from __future__ import annotations

import numpy as np
from scipy.special import j1

#: Milliarcseconds to radians.
MAS = np.pi / (180.0 * 3600.0 * 1000.0)


def _x(theta_mas: np.ndarray | float, q: np.ndarray) -> np.ndarray:
    """The Bessel argument π θ q (θ in mas, q = B/λ in cycles per radian), zeros made tiny."""
    x = np.pi * np.asarray(theta_mas, dtype=float) * MAS * q
    # V -> 1 as x -> 0; a tiny x avoids 0/0 while keeping the limit to float precision
    return np.where(x == 0.0, 1e-300, x)


def uniform_disk(theta_mas: np.ndarray | float, q: np.ndarray) -> np.ndarray:
    """Visibility (real, signed) of a uniform disk of angular diameter ``theta_mas`` at spatial
    frequency ``q`` = B/λ: ``2 J1(x) / x`` with ``x = π θ q``. Broadcasts."""
    x = _x(theta_mas, q)
    return 2.0 * j1(x) / x


def limb_darkened_disk(theta_mas: np.ndarray | float, q: np.ndarray, u: float) -> np.ndarray:
    """Visibility of a linearly limb-darkened disk I(μ) = 1 - u (1 - μ) of diameter
    ``theta_mas`` (Hanbury Brown et al. 1974):

    V = [(1-u) J1(x)/x + u (sin x / x - cos x) / x²] / [(1-u)/2 + u/3].
    ``u = 0`` is the uniform disk. Broadcasts.
    """
    if not 0.0 <= u <= 1.0:
        raise ValueError(f"limb-darkening coefficient u={u} must be in [0, 1]")
    x = _x(theta_mas, q)
    small = x < 1e-4  # series of (sin x/x - cos x)/x² = 1/3 - x²/30 (cancellation otherwise)
    xs = np.where(small, 1.0, x)
    term = np.where(small, 1.0 / 3.0 - x * x / 30.0, (np.sin(xs) / xs - np.cos(xs)) / (xs * xs))
    return ((1.0 - u) * j1(x) / x + u * term) / ((1.0 - u) / 2.0 + u / 3.0)


def binary(
    u_m: np.ndarray,
    v_m: np.ndarray,
    wavelength_m: np.ndarray,
    *,
    flux_ratio: float,
    dra_mas: float,
    ddec_mas: float,
    theta1_mas: float = 0.0,
    theta2_mas: float = 0.0,
) -> np.ndarray:
    """Complex visibility of a binary: a primary uniform disk ``theta1_mas`` at the phase
    centre and a secondary uniform disk ``theta2_mas`` at (``dra_mas`` east, ``ddec_mas``
    north), with ``flux_ratio`` = F2 / F1 (> 0)."""
    q = np.hypot(u_m, v_m) / wavelength_m
    phase = -2.0 * np.pi * (u_m * dra_mas + v_m * ddec_mas) * MAS / wavelength_m
    v1 = uniform_disk(theta1_mas, q) if theta1_mas > 0 else 1.0
    v2 = uniform_disk(theta2_mas, q) if theta2_mas > 0 else 1.0
    return (v1 + flux_ratio * v2 * np.exp(1j * phase)) / (1.0 + flux_ratio)
