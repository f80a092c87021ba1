"""Simple correction of instrumental polarisation (IP) from an annulus of the image.

Polarisation created **before** the half-wave plate (telescope and the first SPHERE mirrors) is
not removed by the double difference/ratio: it appears as ``Q_ip = p_q I`` and ``U_ip = p_u I``.
This module implements the **simple** empirical method (e.g. Canovas et al. 2011; de Boer et al.
2020, sect. 3.3 "star polarisation"): measure ``p_q = median(Q/I)`` and ``p_u = median(U/I)`` in
an annulus where the star light dominates and the astrophysical polarisation averages out, then
subtract ``p_q I`` and ``p_u I``. It also removes any genuine unresolved stellar polarisation.
IRDAP's full Mueller-matrix model of the telescope and instrument (which also corrects the
cross-talk that reduces the polarimetric efficiency) is **not** implemented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcdc.science.geometry import frame_center

__all__ = ["InstrumentalPolarisation", "correct_instrumental_polarisation"]


@dataclass(frozen=True)
class InstrumentalPolarisation:
    """Fractional IP measured in the annulus and the corrected Stokes maps.

    ``p_q``, ``p_u``: median ``Q/I``, ``U/I`` in the annulus (dimensionless); ``n_pixels``: number
    of finite annulus pixels with ``I > 0`` used; ``q``, ``u``: corrected maps.
    """

    p_q: float
    p_u: float
    n_pixels: int
    q: np.ndarray
    u: np.ndarray


def correct_instrumental_polarisation(
    i: np.ndarray,
    q: np.ndarray,
    u: np.ndarray,
    r_in: float,
    r_out: float,
    center_yx: tuple[float, float] | None = None,
) -> InstrumentalPolarisation:
    """Subtract ``I * median(Q/I)`` and ``I * median(U/I)`` measured in the annulus ``[r_in, r_out)``.

    ``i``, ``q``, ``u``: 2-D Stokes maps (same units); ``r_in``, ``r_out``: annulus radii in pixels
    about ``center_yx`` (star ``(y, x)``, default the frame centre). Raises ``ValueError`` if the
    annulus holds fewer than 10 usable pixels.
    """
    i, q, u = (np.asarray(a, dtype=float) for a in (i, q, u))
    if not (i.shape == q.shape == u.shape) or i.ndim != 2:
        raise ValueError(f"I, Q, U must be 2-D maps of one shape, got {i.shape}, {q.shape}, {u.shape}")
    if not 0 <= r_in < r_out:
        raise ValueError(f"annulus needs 0 <= r_in < r_out, got r_in={r_in}, r_out={r_out}")
    cy, cx = frame_center(i.shape) if center_yx is None else center_yx
    y, x = np.indices(i.shape, dtype=float)
    r = np.hypot(y - cy, x - cx)
    use = (r >= r_in) & (r < r_out) & (i > 0) & np.isfinite(i) & np.isfinite(q) & np.isfinite(u)
    n = int(use.sum())
    if n < 10:
        raise ValueError(f"annulus {r_in}-{r_out} px holds only {n} usable pixels (need >= 10)")
    p_q = float(np.median(q[use] / i[use]))
    p_u = float(np.median(u[use] / i[use]))
    return InstrumentalPolarisation(p_q=p_q, p_u=p_u, n_pixels=n, q=q - p_q * i, u=u - p_u * i)
