"""Annulus geometry and rotation-exclusion libraries shared by annular ADI algorithms.

An annular algorithm splits the field into concentric annuli of width ``asize`` px starting at
``radius_int`` px and, for each annulus and frame, builds its reference library only from
frames in which a source at the annulus radius has moved by at least ``delta_rot`` FWHM
(Marois et al. 2006; VIP's ``delta_rot``), so that the companion does not subtract itself.
"""

from __future__ import annotations

import numpy as np

from hcdc.science import geometry

__all__ = ["Annulus", "define_annuli", "rotation_threshold", "exclusion_mask", "closest_frames"]


class Annulus:
    """Pixels ``radius_in <= r < radius_out`` of a frame, as flat indices, with the PA threshold."""

    __slots__ = ("radius_in", "radius_out", "indices", "pa_threshold")

    def __init__(self, radius_in: float, radius_out: float, indices: np.ndarray, pa_threshold: float):
        self.radius_in = radius_in
        self.radius_out = radius_out
        self.indices = indices
        self.pa_threshold = pa_threshold

    @property
    def radius(self) -> float:
        """Mean radius (px)."""
        return 0.5 * (self.radius_in + self.radius_out)


def rotation_threshold(radius: float, fwhm: float, delta_rot: float) -> float:
    """Angle (deg) by which a source at ``radius`` px moves ``delta_rot`` FWHM along its circle."""
    return float(np.degrees(2.0 * np.arctan(delta_rot * fwhm / (2.0 * radius))))


def define_annuli(
    shape: tuple[int, ...],
    fwhm: float,
    asize: float,
    radius_int: float = 0.0,
    delta_rot: float | tuple[float, float] = 1.0,
    radius_out: float | None = None,
    angles: np.ndarray | None = None,
) -> list[Annulus]:
    """Annuli of width ``asize`` px from ``radius_int`` to ``radius_out`` (default: frame edge).

    ``delta_rot``: a number (FWHM) or ``(inner, outer)`` spaced linearly over the annuli (VIP's
    default ``(0.1, 1)``). When ``angles`` are given, a threshold larger than 90 % of the field
    rotation is capped there (otherwise no frame would qualify).
    """
    if asize <= 0:
        raise ValueError(f"annulus width asize must be positive; got {asize}")
    ny, nx = shape[-2], shape[-1]
    if radius_out is None:
        radius_out = min(ny, nx) / 2.0
    n_annuli = int((radius_out - radius_int) // asize)
    if n_annuli < 1:
        raise ValueError(f"no annulus of width {asize} px fits between {radius_int} and {radius_out} px")
    if np.ndim(delta_rot) == 0:
        deltas = np.full(n_annuli, float(delta_rot))
    else:
        lo, hi = delta_rot  # type: ignore[misc]
        deltas = np.linspace(lo, hi, n_annuli)
    rotation_range = None if angles is None else float(np.ptp(np.asarray(angles)))
    r = geometry.distance_map((ny, nx)).ravel()
    annuli = []
    for i in range(n_annuli):
        r_in = radius_int + i * asize
        r_out = r_in + asize
        indices = np.flatnonzero((r >= r_in) & (r < r_out))
        threshold = rotation_threshold(0.5 * (r_in + r_out), fwhm, deltas[i])
        if rotation_range is not None:
            threshold = min(threshold, 0.45 * rotation_range)
        annuli.append(Annulus(r_in, r_out, indices, threshold))
    return annuli


def exclusion_mask(angles: np.ndarray, threshold: float) -> np.ndarray:
    """``allowed[j, i]``: frame ``i`` may enter frame ``j``'s library (|angle difference| >= threshold)."""
    angles = np.asarray(angles, dtype=np.float64)
    return np.abs(angles[:, None] - angles[None, :]) >= threshold


def closest_frames(angles: np.ndarray, threshold: float, nframes: int) -> list[np.ndarray]:
    """For each frame, the ``nframes`` allowed frames closest in angle (half on each side when possible)."""
    angles = np.asarray(angles, dtype=np.float64)
    allowed = exclusion_mask(angles, threshold)
    out = []
    for j in range(angles.size):
        candidates = np.flatnonzero(allowed[j])
        if candidates.size == 0:
            out.append(candidates)
            continue
        diff = angles[candidates] - angles[j]
        before = candidates[diff < 0][np.argsort(-diff[diff < 0])]
        after = candidates[diff > 0][np.argsort(diff[diff > 0])]
        half = nframes // 2
        take_b = min(before.size, max(half, nframes - after.size))
        take_a = min(after.size, nframes - take_b)
        out.append(np.sort(np.concatenate([before[:take_b], after[:take_a]])))
    return out
