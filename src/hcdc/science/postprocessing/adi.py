"""Classical ADI (cADI, Marois et al. 2006): median reference subtraction, full frame or annular."""

from __future__ import annotations

import numpy as np

from hcdc.science.postprocessing.annuli import closest_frames, define_annuli
from hcdc.science.postprocessing.base import check_adi_inputs, derotate_and_collapse, register_algorithm

__all__ = ["cadi"]

MODES = ("fullfr", "annular")


@register_algorithm("cadi", supports_output_mask=True)
def cadi(
    cube: np.ndarray,
    angles: np.ndarray,
    *,
    fwhm: float,
    mode: str = "fullfr",
    asize: float = 4.0,
    radius_int: float = 0.0,
    delta_rot: float | tuple[float, float] = 0.5,
    nframes: int = 4,
    collapse: str = "median",
    interpolation: str = "bilinear",
    output_mask: np.ndarray | None = None,
) -> np.ndarray:
    """Classical ADI: subtract a median reference frame from every frame, derotate, combine.

    ``mode='fullfr'``: the reference is the median of the whole cube. ``mode='annular'``: in
    annuli of ``asize`` px from ``radius_int``, frame ``j``'s reference is the median of the
    ``nframes`` frames closest in angle among those rotated by at least ``delta_rot`` FWHM at the
    annulus radius (VIP ``median_sub`` with ``mode='annular'``). ``output_mask`` (bool (y, x)):
    compute only those final pixels, the others are 0 (see :func:`derotate_and_collapse`).
    """
    cube, angles = check_adi_inputs(cube, angles, fwhm)
    if mode not in MODES:
        raise ValueError(f"unknown cADI mode {mode!r}; use one of {MODES}")
    if mode == "fullfr":
        residuals = cube - np.median(cube, axis=0)[None]
        return derotate_and_collapse(residuals, angles, collapse, interpolation, output_mask=output_mask)
    if nframes < 1:
        raise ValueError(f"nframes must be >= 1; got {nframes}")
    nfr = cube.shape[0]
    flat = cube.reshape(nfr, -1)
    residuals = np.zeros_like(flat)
    for ann in define_annuli(cube.shape, fwhm, asize, radius_int, delta_rot, angles=angles):
        xa = flat[:, ann.indices]
        libraries = closest_frames(angles, ann.pa_threshold, nframes)
        for j, lib in enumerate(libraries):
            if lib.size == 0:
                raise ValueError(
                    f"annulus {ann.radius_in:.1f}-{ann.radius_out:.1f} px: frame {j} has no "
                    f"frame rotated by {ann.pa_threshold:.2f} deg or more"
                )
            residuals[j, ann.indices] = xa[j] - np.median(xa[lib], axis=0)
    return derotate_and_collapse(
        residuals.reshape(cube.shape), angles, collapse, interpolation, output_mask=output_mask
    )
