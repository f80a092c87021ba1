"""Rotation of Stokes Q, U maps: turn the image **and** the polarisation vectors together.

Turning an image changes the position angle of every feature; its polarisation angles must turn
by the same amount, which rotates the Stokes vector by **twice** the angle:
``Q' + iU' = (Q + iU) exp(2i alpha)``. Rotating Q and U as plain images (the Level 2 ``derotate``
alone) leaves the polarisation pointing the old way and leaks ``Q_phi`` into ``U_phi``.

Sense (the one of :func:`hcdc.science.geometry.rotate_frame`): a positive ``angle`` turns the content
counter-clockwise on a north-up / east-left display, so position angles (east of north) and
polarisation angles both **increase** by ``angle``.
"""

from __future__ import annotations

import numpy as np

from hcdc.science.geometry import rotate_frame

__all__ = ["rotate_stokes", "derotate_stokes"]


def rotate_stokes(
    q: np.ndarray, u: np.ndarray, angle_deg: float, order: int = 3, fill_value: float = np.nan
) -> tuple[np.ndarray, np.ndarray]:
    """Turn 2-D Stokes maps ``q``, ``u`` counter-clockwise by ``angle_deg`` about the frame centre.

    Image resampling is :func:`hcdc.science.geometry.rotate_frame` (spline ``order``, outside
    pixels ``fill_value``); the Stokes vector is then turned by ``2 * angle_deg``, so the angle of
    linear polarisation increases by ``angle_deg``. Stokes I rotates as a plain image. Inputs
    must be finite: a NaN poisons the whole map through the spline prefilter (fill first).
    """
    q = np.asarray(q, dtype=float)
    u = np.asarray(u, dtype=float)
    if q.shape != u.shape or q.ndim != 2:
        raise ValueError(f"Q and U must be 2-D maps of one shape, got {q.shape} and {u.shape}")
    q_r = rotate_frame(q, angle_deg, order=order, fill_value=fill_value)
    u_r = rotate_frame(u, angle_deg, order=order, fill_value=fill_value)
    c, s = np.cos(np.radians(2.0 * angle_deg)), np.sin(np.radians(2.0 * angle_deg))
    return c * q_r - s * u_r, s * q_r + c * u_r


def derotate_stokes(
    q_cube: np.ndarray, u_cube: np.ndarray, angles: np.ndarray, order: int = 3, fill_value: float = np.nan
) -> tuple[np.ndarray, np.ndarray]:
    """Derotate ``(frames, y, x)`` Stokes cubes: frame ``k`` turned clockwise by ``angles[k]`` degrees.

    ``angles`` are the derotation angles of :func:`hcdc.science.geometry.derotate` (turning a frame
    clockwise by its angle puts north up); the polarisation angles decrease by the same amount.
    """
    q_cube = np.asarray(q_cube, dtype=float)
    u_cube = np.asarray(u_cube, dtype=float)
    angles = np.asarray(angles, dtype=float).ravel()
    if q_cube.shape != u_cube.shape or q_cube.ndim != 3 or q_cube.shape[0] != angles.size:
        raise ValueError(
            f"derotate_stokes needs two (frames, y, x) cubes of one shape and one angle per frame; "
            f"got {q_cube.shape}, {u_cube.shape} and {angles.size} angles"
        )
    pairs = [
        rotate_stokes(q, u, -a, order=order, fill_value=fill_value)
        for q, u, a in zip(q_cube, u_cube, angles, strict=True)
    ]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])
