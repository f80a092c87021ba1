"""Calibrator vetting on the calibrator's own data: is it the single star its catalogue entry
says it is?

A calibrator is assumed to be a uniform disk of its catalogue (JSDC) diameter. Two tests, both
χ²_r of the calibrator's own calibrated observables against a uniform disk (UD):

* **closure phases**: a UD is centro-symmetric, so its closure phase is 0° (or 180° when an odd
  number of the triangle's baselines lie past a null); a binary (any asymmetry) gives
  other values. ``cp_chi2_r`` is χ²_r of T3PHI against the nearer of 0° / 180°. This is the
  binarity test that does not depend on the calibration of V²;
* **V²**: ``vis2_chi2_r_catalogue`` at the catalogue diameter and ``vis2_chi2_r_fit`` at the
  best UD (:func:`hcdc.science.interferometry.fitting.fit_diameter`, searched around the
  catalogue diameter when one is given). A bad V² fit alone is not taken as binarity
  (calibrated V² often carry unmodelled systematics: α Cen A gives χ²_r 18.5 for a UD); it
  is reported, and a fitted diameter that differs from the catalogue's by more than
  ``diameter_sigma`` combined σ is flagged.

Angles in mas, closure phases in degrees.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hcdc.science.interferometry.fitting import FitError, Observables, fit_diameter
from hcdc.science.interferometry.models import uniform_disk

#: χ²_r of the closure phases against a UD above which a calibrator is a suspected binary.
#: Chosen from the real files (docs/interferometry.md, "Calibrator vetting"): the single
#: stars give 0.9-12 (α Cen A 1.45, AX Cir 1.0, β Cnc 8.1 and α CMa 11.6 with MATISSE, whose
#: closure phases carry more systematics), the binary ο Leo (GRAVITY) 1022.
CP_CHI2_R_BINARY = 20.0
#: Number of combined σ between the fitted and the catalogue UD diameter that is flagged.
DIAMETER_SIGMA = 5.0


@dataclass
class ResidualTest:
    """Result of :func:`residual_test` (χ²_r are NaN when there is nothing to test)."""

    n_vis2: int
    n_t3: int
    catalogue_ud_mas: float | None
    fitted_ud_mas: float | None
    fitted_ud_err_mas: float | None
    vis2_chi2_r_catalogue: float
    vis2_chi2_r_fit: float
    cp_chi2_r: float
    binary_suspected: bool
    diameter_inconsistent: bool
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()
        }


def _vis2_chi2_r(data: Observables, theta_mas: float) -> float:
    resid = (uniform_disk(theta_mas, data.q) ** 2 - data.vis2) / data.vis2_err
    return float(resid @ resid) / max(data.vis2.size - 1, 1)


def ud_closure_phase(data: Observables, theta_mas: float) -> np.ndarray:
    """Closure phases [deg] of a UD of ``theta_mas`` on the triangles of ``data``: 0 or 180
    (the sign of the product of the three real visibilities)."""
    u3, v3 = -(data.t3_u1 + data.t3_u2), -(data.t3_v1 + data.t3_v2)
    product = np.ones(data.t3phi.size)
    for u, v in ((data.t3_u1, data.t3_v1), (data.t3_u2, data.t3_v2), (u3, v3)):
        product *= uniform_disk(theta_mas, np.hypot(u, v) / data.t3_wavelength)
    return np.where(product < 0, 180.0, 0.0)


def _cp_chi2_r(data: Observables) -> float:
    """χ²_r of the closure phases against centro-symmetry: each residual is the distance to the
    nearer of 0° and 180°. Not to the UD's own 0/180 pattern: near a null the sign of a
    baseline's visibility flips with a diameter change far below its error, and the data's
    closure phase there is 0 or 180 with equal right (a simulated 6 mas disk scored χ²_r 540
    against the pattern of its fitted 5.9987 mas)."""
    if data.t3phi.size == 0:
        return math.nan
    diff = (data.t3phi + 90.0) % 180.0 - 90.0  # distance to the nearest multiple of 180°
    resid = diff / data.t3phi_err
    return float(resid @ resid) / data.t3phi.size


def residual_test(
    data: Observables,
    catalogue_ud_mas: float | None = None,
    catalogue_ud_err_mas: float | None = None,
    *,
    cp_threshold: float = CP_CHI2_R_BINARY,
    diameter_sigma: float = DIAMETER_SIGMA,
) -> ResidualTest:
    """Test a calibrator's own V² / closure phases against a uniform disk of its catalogue
    diameter ``catalogue_ud_mas`` (JSDC UDD of the band) [mas]; see the module docstring."""
    notes: list[str] = []
    fitted = fitted_err = None
    try:
        fit = fit_diameter(data, "ud", theta0_mas=catalogue_ud_mas)
        fitted, fitted_err = fit.params["theta_mas"], fit.errors_scaled["theta_mas"]
        notes.extend(fit.warnings)
    except FitError as exc:
        notes.append(str(exc))
    vis2_cat = _vis2_chi2_r(data, catalogue_ud_mas) if catalogue_ud_mas and data.vis2.size else math.nan
    vis2_fit = _vis2_chi2_r(data, fitted) if fitted is not None else math.nan
    cp = _cp_chi2_r(data)
    if data.t3phi.size == 0:
        notes.append("no usable closure phase: binarity not tested on the data")
    inconsistent = False
    if fitted is not None and catalogue_ud_mas:
        sigma = math.hypot(fitted_err or 0.0, catalogue_ud_err_mas or 0.0)
        inconsistent = sigma > 0 and abs(fitted - catalogue_ud_mas) > diameter_sigma * sigma
        if inconsistent:
            notes.append(
                f"fitted UD {fitted:.4g} ± {sigma:.2g} mas differs from the catalogue's "
                f"{catalogue_ud_mas:.4g} mas by more than {diameter_sigma:g} σ"
            )
    return ResidualTest(
        n_vis2=int(data.vis2.size),
        n_t3=int(data.t3phi.size),
        catalogue_ud_mas=catalogue_ud_mas,
        fitted_ud_mas=fitted,
        fitted_ud_err_mas=fitted_err,
        vis2_chi2_r_catalogue=vis2_cat,
        vis2_chi2_r_fit=vis2_fit,
        cp_chi2_r=cp,
        binary_suspected=bool(math.isfinite(cp) and cp > cp_threshold),
        diameter_inconsistent=inconsistent,
        notes=notes,
    )
