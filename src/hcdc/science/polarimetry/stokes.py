"""Stokes I, Q, U from the ordinary/extraordinary beams of a half-wave-plate cycle.

An ideal dual-beam polarimeter records, at a HWP position that selects the Stokes parameter
``S`` (``+Q, -Q, +U, -U``), the ordinary beam ``o = (I + S)/2`` and the extraordinary beam
``e = (I - S)/2`` (same units as the frames, e.g. ADU/s). Two methods combine the ``+`` and ``-``
positions of one parameter (Tinbergen 1996; Canovas et al. 2011; de Boer et al. 2020):

* **double difference**: ``X+ = o+ - e+``, ``X- = o- - e-``; ``S = (X+ - X-)/2``,
  ``I_S = (o+ + e+ + o- + e-)/2``. A constant beam transmission mismatch
  (``o = t_o (I+S)/2``, ``e = t_e (I-S)/2``) leaves ``S / I_S`` exact.
* **double ratio**: ``R = sqrt((o+/e+) / (o-/e-))``; ``S = I_S (R - 1)/(R + 1)``. Transmission
  ratios cancel exactly, also when the total flux changes between the two HWP positions, but it
  is undefined (NaN) where a beam is ``<= 0`` (background-limited pixels).

Both remove polarisation created **after** the HWP; polarisation created before it (telescope,
first mirrors) is not removed: :mod:`hcdc.science.polarimetry.instrumental`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "HWP_STOKES",
    "HWP_ANGLES_DEG",
    "StokesImages",
    "double_difference",
    "double_ratio",
    "stokes_from_beams",
    "hwp_stokes_label",
    "HWPCycles",
    "group_hwp_cycles",
]

#: Order of the HWP positions along the ``hwp`` axis of a beam array; values of the header keyword
#: ``OCS DPI H2RT STOKES``.
HWP_STOKES: tuple[str, str, str, str] = ("Qplus", "Qminus", "Uplus", "Uminus")
#: Nominal HWP angles (deg) of the four positions, in the order of :data:`HWP_STOKES` (the HWP
#: turns the polarisation by twice its angle; the raw encoder value ``INS4 DROT3`` carries an
#: offset, 152.15 deg in IRDAP, that the instrument layer removes).
HWP_ANGLES_DEG: tuple[float, float, float, float] = (0.0, 45.0, 22.5, 67.5)

Method = Literal["double_difference", "double_ratio"]


@dataclass(frozen=True)
class StokesImages:
    """Stokes maps of one HWP cycle (or a combination of cycles), same units as the beams.

    ``i_q`` and ``i_u`` are the total intensities of the Q and U measurements; ``i`` is their mean.
    """

    i: np.ndarray
    q: np.ndarray
    u: np.ndarray
    i_q: np.ndarray
    i_u: np.ndarray


def _as_float_beams(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=float) for a in arrays]
    shape = out[0].shape
    for a in out[1:]:
        if a.shape != shape:
            raise ValueError(f"beams must have the same shape, got {shape} and {a.shape}")
    return out


def double_difference(
    o_plus: np.ndarray, e_plus: np.ndarray, o_minus: np.ndarray, e_minus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Stokes ``S`` (Q or U) and its intensity ``I_S`` by the double difference.

    ``o_plus``/``e_plus`` are the ordinary/extraordinary beams at the ``S+`` HWP position (Q+ or
    U+), ``o_minus``/``e_minus`` at ``S-``; any units, same shape. Returns ``(S, I_S)`` with
    ``S = ((o+ - e+) - (o- - e-)) / 2`` and ``I_S = (o+ + e+ + o- + e-) / 2``.
    """
    op, ep, om, em = _as_float_beams(o_plus, e_plus, o_minus, e_minus)
    return 0.5 * ((op - ep) - (om - em)), 0.5 * (op + ep + om + em)


def double_ratio(
    o_plus: np.ndarray, e_plus: np.ndarray, o_minus: np.ndarray, e_minus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Stokes ``S`` (Q or U) and its intensity ``I_S`` by the double ratio.

    ``R = sqrt((o+/e+) / (o-/e-))`` and ``S = I_S (R - 1) / (R + 1)`` with the same ``I_S`` as the
    double difference. Pixels where any beam is ``<= 0`` or not finite give ``S = NaN`` (the ratio
    is undefined there), never a silent zero.
    """
    op, ep, om, em = _as_float_beams(o_plus, e_plus, o_minus, e_minus)
    i_s = 0.5 * (op + ep + om + em)
    valid = (op > 0) & (ep > 0) & (om > 0) & (em > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt((op * em) / (ep * om))
        s = i_s * (r - 1.0) / (r + 1.0)
    return np.where(valid, s, np.nan), i_s


def stokes_from_beams(beams: np.ndarray, method: Method = "double_difference") -> StokesImages:
    """Stokes I, Q, U of one or more HWP cycles.

    ``beams`` has shape ``(..., 4, 2, ny, nx)``: HWP position in the order of :data:`HWP_STOKES`
    (Q+, Q-, U+, U-), then beam (0 = ordinary/left, 1 = extraordinary/right), both beams already
    on a common grid centred on the star. Leading axes (cycles) are kept; combine them with
    ``np.mean``/``np.median`` afterwards. ``method`` is ``"double_difference"`` or
    ``"double_ratio"``.
    """
    beams = np.asarray(beams, dtype=float)
    if beams.ndim < 4 or beams.shape[-4:-2] != (4, 2):
        raise ValueError(
            f"beams must have shape (..., 4, 2, ny, nx) [HWP Q+ Q- U+ U-, beam o/e], got {beams.shape}"
        )
    combine = {"double_difference": double_difference, "double_ratio": double_ratio}.get(method)
    if combine is None:
        raise ValueError(f"unknown method {method!r}: use 'double_difference' or 'double_ratio'")
    qp, qm, up, um = (beams[..., k, :, :, :] for k in range(4))
    q, i_q = combine(qp[..., 0, :, :], qp[..., 1, :, :], qm[..., 0, :, :], qm[..., 1, :, :])
    u, i_u = combine(up[..., 0, :, :], up[..., 1, :, :], um[..., 0, :, :], um[..., 1, :, :])
    return StokesImages(i=0.5 * (i_q + i_u), q=q, u=u, i_q=i_q, i_u=i_u)


def hwp_stokes_label(hwp_angle_deg: float, tolerance_deg: float = 1.0) -> str:
    """HWP position label (``"Qplus"``, ``"Qminus"``, ``"Uplus"``, ``"Uminus"``) of a HWP angle.

    ``hwp_angle_deg`` is the half-wave-plate angle in degrees **after** removing the encoder
    offset (IRDIS: ``INS4 DROT3 BEGIN - 152.15``, IRDAP's value). A HWP at ``a`` turns the
    polarisation by ``2a``, so ``a`` and ``a + 90`` are the same position. Raises ``ValueError``
    when the angle is not within ``tolerance_deg`` of 0, 22.5, 45 or 67.5 (mod 90).
    """
    for label, nominal in zip(HWP_STOKES, HWP_ANGLES_DEG, strict=True):
        if abs((hwp_angle_deg - nominal + 45.0) % 90.0 - 45.0) <= tolerance_deg:
            return label
    raise ValueError(
        f"HWP angle {hwp_angle_deg:.3f} deg is not within {tolerance_deg} deg of a Q+/Q-/U+/U- position "
        "(0, 45, 22.5, 67.5 deg mod 90)"
    )


@dataclass(frozen=True)
class HWPCycles:
    """Complete HWP cycles found in a time-ordered frame sequence.

    ``cycles``: one ``(i_qplus, i_qminus, i_uplus, i_uminus)`` tuple of frame indices per complete
    cycle; ``dropped``: indices of frames in no complete cycle (sorted).
    """

    cycles: list[tuple[int, int, int, int]]
    dropped: list[int]


def group_hwp_cycles(labels: list[str]) -> HWPCycles:
    """Group a **time-ordered** list of HWP labels (:data:`HWP_STOKES` values) into complete cycles.

    A cycle is ``Qplus, Qminus, Uplus, Uminus`` in this order, consecutive in the list (the IRDIS
    DPI template order). A cycle broken by a missing or out-of-order position is dropped whole, as
    IRDAP removes incomplete HWP cycles: the double difference/ratio needs the ``+`` and ``-``
    frames close in time. Raises ``ValueError`` naming an unknown label.
    """
    for k, label in enumerate(labels):
        if label not in HWP_STOKES:
            raise ValueError(f"frame {k}: unknown HWP label {label!r} (expected one of {HWP_STOKES})")
    cycles: list[tuple[int, int, int, int]] = []
    k = 0
    while k + 4 <= len(labels):
        if tuple(labels[k : k + 4]) == HWP_STOKES:
            cycles.append((k, k + 1, k + 2, k + 3))
            k += 4
        else:
            k += 1
    used = {i for cycle in cycles for i in cycle}
    return HWPCycles(cycles=cycles, dropped=[i for i in range(len(labels)) if i not in used])
