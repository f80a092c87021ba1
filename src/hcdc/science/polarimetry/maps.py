"""Polarisation maps from Stokes I, Q, U: polarised intensity, degree and angle, Q_phi/U_phi.

Conventions: north up / east left; ``Q > 0`` is polarisation along north-south, ``U > 0`` along
45 deg east of north; angles in degrees **east of north** (:mod:`hcdc.science.polarimetry`).
"""

from __future__ import annotations

import numpy as np

from hcdc.science.geometry import frame_center

__all__ = [
    "polarised_intensity",
    "degree_of_linear_polarisation",
    "angle_of_linear_polarisation",
    "position_angle_from_star",
    "azimuthal_stokes",
]


def polarised_intensity(q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Linearly polarised intensity ``P = sqrt(Q^2 + U^2)`` (units of Q, U).

    Biased high where the signal-to-noise ratio is low (noise adds in quadrature); prefer
    :func:`azimuthal_stokes` ``Q_phi`` for centro-symmetric discs.
    """
    return np.hypot(np.asarray(q, dtype=float), np.asarray(u, dtype=float))


def degree_of_linear_polarisation(i: np.ndarray, q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Degree of linear polarisation ``P / I`` (dimensionless, 0..1); NaN where ``I <= 0``."""
    i = np.asarray(i, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(i > 0, polarised_intensity(q, u) / i, np.nan)


def angle_of_linear_polarisation(q: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Angle of linear polarisation ``0.5 arctan2(U, Q)`` in degrees east of north, in ``[0, 180)``.

    A pure ``+Q`` field gives 0 deg (north-south), ``+U`` 45 deg, ``-Q`` 90 deg (east-west).
    """
    return (0.5 * np.degrees(np.arctan2(np.asarray(u, dtype=float), np.asarray(q, dtype=float)))) % 180.0


def position_angle_from_star(
    shape: tuple[int, ...], center_yx: tuple[float, float] | None = None
) -> np.ndarray:
    """Position angle ``phi`` (deg east of north) of every pixel as seen from the star.

    ``center_yx`` is the star position ``(y, x)`` in pixels (sub-pixel allowed); default is
    :func:`hcdc.science.geometry.frame_center`. North is +y (PA 0), east is -x (PA 90). The
    star pixel itself gets PA 0 (its ``Q_phi`` is meaningless).
    """
    cy, cx = frame_center(shape) if center_yx is None else center_yx
    y, x = np.indices(shape[-2:], dtype=float)
    return np.degrees(np.arctan2(-(x - cx), y - cy)) % 360.0


def azimuthal_stokes(
    q: np.ndarray, u: np.ndarray, center_yx: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Azimuthal Stokes ``(Q_phi, U_phi)`` about the star.

    ``Q_phi = -Q cos(2 phi) - U sin(2 phi)``, ``U_phi = Q sin(2 phi) - U cos(2 phi)``, with ``phi``
    from :func:`position_angle_from_star` (``center_yx`` = star ``(y, x)``, default the frame
    centre). Polarisation perpendicular to the direction of the star (a scattering disc) gives
    ``Q_phi = P > 0`` and ``U_phi = 0``; radial polarisation gives ``Q_phi < 0``. ``q`` and ``u``
    may carry leading axes; the last two are ``(y, x)``.
    """
    q = np.asarray(q, dtype=float)
    u = np.asarray(u, dtype=float)
    if q.shape != u.shape:
        raise ValueError(f"Q and U must have the same shape, got {q.shape} and {u.shape}")
    two_phi = np.radians(2.0 * position_angle_from_star(q.shape, center_yx))
    c, s = np.cos(two_phi), np.sin(two_phi)
    return -q * c - u * s, q * s - u * c
