"""Fits of uniform-disk, limb-darkened-disk and binary models to V² (and closure phases).

Local minima are the main risk of automated fits (on α Cen A a local fit from 3 mas lands at
5.23 mas, χ²_r ≈ 1.5e5, instead of 8.28 mas: ../shared/reference/interferometry.md section 5),
so every fit is **global then local**:

* diameters: χ²(θ) on a grid whose step is 1/16 of the shortest period of V²(θ) in the data
  (``1 / q_max`` with q = B/λ), from 0 to where the shortest baseline has resolved the disk
  well past its first null (``x = π θ q_min = 12``); or, with a given starting diameter
  (a JSDC UDD, say), the same grid restricted to [θ0/2, 2 θ0]. The best grid point is refined
  with Brent's bounded method between its neighbours;
* binaries: a grid over the secondary's position (step 1/3 of the resolution λ/B_max, up to
  ``max_sep_mas``) and flux ratios, then a Levenberg-Marquardt refinement from the best starts.

Uncertainties are formal (χ² curvature / Jacobian, i.e. ``(JᵀJ)⁻¹`` with the data errors as
given) and also scaled by √χ²_r (``*_err_scaled``), since calibrated OIFITS errors often
miss systematic terms; both are reported, nothing is a fixed constant.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares, minimize_scalar

from hcdc.science.interferometry.models import binary, limb_darkened_disk, uniform_disk

#: Grid points per shortest period of V²(θ) (see the module docstring).
GRID_POINTS_PER_PERIOD = 16
#: Bessel argument at the shortest baseline where the diameter grid stops.
X_MAX_SHORTEST = 12.0
#: Variable scaling of the binary refinement (``least_squares``' ``x_scale``) over
#: (log10 f, Δα [mas], Δδ [mas], θ1 [mas]): fixed, so the refinement depends on the data and the
#: start only. ``'jac'`` (MINPACK's scaling by the Jacobian's column norms, scipy ≥ 1.16's default
#: for ``method='lm'``) is what ``oifits-fit`` 1.0 used; it is kept for reruns of that version.
BINARY_X_SCALE = 1.0


@dataclass
class Observables:
    """Calibrated, usable (unflagged, finite, positive error) observables of one target.

    V²: ``u``, ``v`` [m], ``wavelength`` [m], ``vis2``, ``vis2_err``; closure phases: the two
    baselines ``t3_u1, t3_v1, t3_u2, t3_v2`` [m] (the third is minus their sum),
    ``t3_wavelength`` [m], ``t3phi``, ``t3phi_err`` [deg].
    """

    u: np.ndarray
    v: np.ndarray
    wavelength: np.ndarray
    vis2: np.ndarray
    vis2_err: np.ndarray
    t3_u1: np.ndarray = field(default_factory=lambda: np.empty(0))
    t3_v1: np.ndarray = field(default_factory=lambda: np.empty(0))
    t3_u2: np.ndarray = field(default_factory=lambda: np.empty(0))
    t3_v2: np.ndarray = field(default_factory=lambda: np.empty(0))
    t3_wavelength: np.ndarray = field(default_factory=lambda: np.empty(0))
    t3phi: np.ndarray = field(default_factory=lambda: np.empty(0))
    t3phi_err: np.ndarray = field(default_factory=lambda: np.empty(0))
    name: str = ""

    @property
    def q(self) -> np.ndarray:
        """Spatial frequencies B/λ of the V² points [cycles/rad]."""
        return np.hypot(self.u, self.v) / self.wavelength


@dataclass
class FitResult:
    """One model fit: parameters and their formal and √χ²_r-scaled 1σ errors, χ², χ²_r, the
    number of points fitted, the number of model evaluations, and the fit's wall time [s]."""

    model: str
    name: str
    params: dict[str, float]
    errors: dict[str, float]
    errors_scaled: dict[str, float]
    chi2: float
    chi2_r: float
    n_points: int
    n_evaluations: int
    elapsed_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FitError(ValueError):
    """The data cannot constrain the model (no usable point, no baseline)."""


def _check(data: Observables, need_t3: bool = False) -> None:
    if data.vis2.size < 2:
        raise FitError(f"{data.name or 'data'}: {data.vis2.size} usable V2 point(s), at least 2 are needed")
    if not np.any(data.q > 0):
        raise FitError(f"{data.name or 'data'}: every V2 point has a zero baseline")
    if need_t3 and data.t3phi.size == 0:
        raise FitError(f"{data.name or 'data'}: no usable closure phase (a binary fit needs T3PHI)")


def diameter_grid(q: np.ndarray, theta0_mas: float | None = None) -> np.ndarray:
    """The grid of diameters [mas] searched by :func:`fit_diameter` (see the module docstring)."""
    from hcdc.science.interferometry.models import MAS

    q = q[q > 0]
    step = 1.0 / (q.max() * MAS) / GRID_POINTS_PER_PERIOD
    if theta0_mas is not None:
        if not theta0_mas > 0:
            raise ValueError(f"starting diameter {theta0_mas} mas must be > 0")
        low, high = theta0_mas / 2.0, theta0_mas * 2.0
    else:
        low, high = step, X_MAX_SHORTEST / (math.pi * q.min() * MAS)
    n = max(8, int(math.ceil((high - low) / step)) + 1)
    return np.linspace(low, high, n)


def _chi2_profile(
    model: Callable[[np.ndarray], np.ndarray], grid: np.ndarray, data: Observables
) -> np.ndarray:
    """χ²(θ) for every θ of ``grid`` (chunked: a grid x points matrix can be large)."""
    q, weight = data.q, 1.0 / data.vis2_err
    out = np.empty(grid.size)
    chunk = max(1, 2_000_000 // max(q.size, 1))
    for start in range(0, grid.size, chunk):
        theta = grid[start : start + chunk, None]
        resid = (model(theta, q[None, :]) ** 2 - data.vis2[None, :]) * weight[None, :]
        out[start : start + chunk] = np.einsum("ij,ij->i", resid, resid)
    return out


def fit_diameter(
    data: Observables,
    model: str = "ud",
    *,
    ld_coefficient: float = 0.0,
    theta0_mas: float | None = None,
) -> FitResult:
    """Fit a uniform (``model='ud'``) or linearly limb-darkened (``'ld'``, coefficient
    ``ld_coefficient``) disk to the V² of ``data``; global grid, then Brent refinement.

    Returns θ [mas] in ``params['theta_mas']`` with formal and scaled 1σ errors.
    """
    import time

    started = time.perf_counter()
    _check(data)
    if model == "ud":

        def vis(theta: np.ndarray, q: np.ndarray) -> np.ndarray:
            return uniform_disk(theta, q)
    elif model == "ld":

        def vis(theta: np.ndarray, q: np.ndarray) -> np.ndarray:
            return limb_darkened_disk(theta, q, ld_coefficient)
    else:
        raise ValueError(f"unknown diameter model {model!r} (ud or ld)")
    grid = diameter_grid(data.q, theta0_mas)
    profile = _chi2_profile(vis, grid, data)
    best = int(np.argmin(profile))
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, grid.size - 1)]
    q, weight = data.q, 1.0 / data.vis2_err

    def chi2(theta: float) -> float:
        resid = (vis(theta, q) ** 2 - data.vis2) * weight
        return float(resid @ resid)

    result = minimize_scalar(chi2, bounds=(low, high), method="bounded", options={"xatol": 1e-10 * high})
    theta = float(result.x)
    # formal error from the Jacobian of the residuals (Gauss-Newton curvature, as least squares)
    h = max(theta * 1e-6, 1e-9)
    jac = (vis(theta + h, q) ** 2 - vis(theta - h, q) ** 2) / (2 * h) * weight
    sigma = float(1.0 / math.sqrt(jac @ jac)) if np.any(jac) else math.inf
    chi2_min = float(result.fun)
    dof = max(data.vis2.size - 1, 1)
    chi2_r = chi2_min / dof
    warnings = []
    if best in (0, grid.size - 1):
        warnings.append(
            f"best diameter at the edge of the searched range [{grid[0]:.4g}, {grid[-1]:.4g}] mas: "
            "the data do not constrain it (unresolved, over-resolved, or a wrong starting diameter)"
        )
    params = {"theta_mas": theta}
    if model == "ld":
        params["ld_coefficient"] = ld_coefficient
    return FitResult(
        model=model,
        name=data.name,
        params=params,
        errors={"theta_mas": sigma},
        errors_scaled={"theta_mas": sigma * math.sqrt(chi2_r)},
        chi2=chi2_min,
        chi2_r=chi2_r,
        n_points=int(data.vis2.size),
        n_evaluations=int(grid.size + result.nfev + 2),
        elapsed_s=time.perf_counter() - started,
        warnings=warnings,
    )


def _binary_residuals(p: np.ndarray, data: Observables) -> np.ndarray:
    """Weighted residuals of V² and closure phases for p = (log10 flux ratio, Δα, Δδ, θ1)."""
    ratio, dra, ddec, theta1 = 10.0 ** p[0], p[1], p[2], abs(p[3])
    vis = binary(
        data.u, data.v, data.wavelength, flux_ratio=ratio, dra_mas=dra, ddec_mas=ddec, theta1_mas=theta1
    )
    r_v2 = (np.abs(vis) ** 2 - data.vis2) / data.vis2_err
    if data.t3phi.size == 0:
        return r_v2
    return np.concatenate([r_v2, _closure_residuals(ratio, dra, ddec, theta1, data)])


def _closure_phase(ratio: float, dra: float, ddec: float, theta1: float, data: Observables) -> np.ndarray:
    """Model closure phases [deg] of the binary on the T3 triangles of ``data``."""
    wl = data.t3_wavelength
    u3, v3 = -(data.t3_u1 + data.t3_u2), -(data.t3_v1 + data.t3_v2)
    product = np.ones(wl.size, dtype=complex)
    for uu, vv in ((data.t3_u1, data.t3_v1), (data.t3_u2, data.t3_v2), (u3, v3)):
        product *= binary(uu, vv, wl, flux_ratio=ratio, dra_mas=dra, ddec_mas=ddec, theta1_mas=theta1)
    return np.degrees(np.angle(product))


def _closure_residuals(ratio: float, dra: float, ddec: float, theta1: float, data: Observables) -> np.ndarray:
    model = _closure_phase(ratio, dra, ddec, theta1, data)
    # phase difference wrapped into [-180, 180)
    diff = (model - data.t3phi + 180.0) % 360.0 - 180.0
    return diff / data.t3phi_err


def fit_binary(
    data: Observables,
    *,
    max_sep_mas: float = 50.0,
    flux_ratios: Sequence[float] = (0.02, 0.1, 0.3, 0.7),
    theta1_mas: float | None = None,
    starts: int = 5,
    x_scale: float | str = BINARY_X_SCALE,
) -> FitResult:
    """Fit a binary (primary uniform disk θ1 at the centre, unresolved secondary at (Δα east,
    Δδ north) with flux ratio f = F2/F1) to V² and closure phases.

    Global step: χ² on a grid of positions (step λ_min / (3 B_max), |Δα|, |Δδ| ≤
    ``max_sep_mas``) x ``flux_ratios``, with θ1 fixed at the uniform-disk fit of the V² (or
    ``theta1_mas``); then Levenberg-Marquardt on (log f, Δα, Δδ, θ1) from the ``starts`` best
    grid points; the lowest χ² wins. Parameters: ``flux_ratio``, ``dra_mas``, ``ddec_mas``,
    ``sep_mas``, ``pa_deg`` (east of north), ``theta1_mas``. ``x_scale``: the refinement's
    variable scaling (:data:`BINARY_X_SCALE`; ``'jac'`` reproduces ``oifits-fit`` 1.0). The same
    data give the same bits on every run (``tests/science/interferometry/test_fit_determinism.py``).
    """
    import time

    from hcdc.science.interferometry.models import MAS

    started = time.perf_counter()
    _check(data, need_t3=True)
    if theta1_mas is None:
        theta1_mas = fit_diameter(data, "ud").params["theta_mas"]
    resolution = float(np.min(data.wavelength) / np.max(np.hypot(data.u, data.v))) / MAS
    step = resolution / 3.0  # the χ² basin of the true position is ~λ/(2 B_max) wide
    axis = np.arange(-max_sep_mas, max_sep_mas + step / 2, step)
    dra_grid, ddec_grid = (a.ravel() for a in np.meshgrid(axis, axis))
    evaluations = 0
    candidates: list[tuple[float, np.ndarray]] = []
    for ratio in flux_ratios:
        chi2 = _grid_chi2(data, ratio, dra_grid, ddec_grid, theta1_mas)
        evaluations += chi2.size
        for index in np.argsort(chi2)[:starts]:
            start = np.array([math.log10(ratio), dra_grid[index], ddec_grid[index], theta1_mas])
            candidates.append((float(chi2[index]), start))
    candidates.sort(key=lambda c: c[0])
    best = None
    for _, start in candidates[:starts]:
        fit = least_squares(_binary_residuals, start, args=(data,), method="lm", x_scale=x_scale)
        evaluations += fit.nfev
        if best is None or fit.cost < best.cost:
            best = fit
    assert best is not None
    n = int(best.fun.size)
    chi2_min = float(2.0 * best.cost)
    dof = max(n - 4, 1)
    chi2_r = chi2_min / dof
    try:
        cov = np.linalg.inv(best.jac.T @ best.jac)
        sig = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        sig = np.full(4, math.inf)
    logf, dra, ddec, theta1 = best.x
    ratio = float(10.0**logf)
    sep = math.hypot(dra, ddec)
    params = {
        "flux_ratio": ratio,
        "dra_mas": float(dra),
        "ddec_mas": float(ddec),
        "sep_mas": sep,
        "pa_deg": math.degrees(math.atan2(dra, ddec)) % 360.0,
        "theta1_mas": abs(float(theta1)),
    }
    errors = {
        "flux_ratio": float(ratio * math.log(10) * sig[0]),
        "dra_mas": float(sig[1]),
        "ddec_mas": float(sig[2]),
        "theta1_mas": float(sig[3]),
    }
    return FitResult(
        model="binary",
        name=data.name,
        params=params,
        errors=errors,
        errors_scaled={k: v * math.sqrt(chi2_r) for k, v in errors.items()},
        chi2=chi2_min,
        chi2_r=chi2_r,
        n_points=n,
        n_evaluations=evaluations,
        elapsed_s=time.perf_counter() - started,
    )


def _grid_chi2(
    data: Observables, ratio: float, dra: np.ndarray, ddec: np.ndarray, theta1: float
) -> np.ndarray:
    """χ² (V² + closure phases) of binaries with flux ratio ``ratio`` at every grid position."""
    out = np.zeros(dra.size)
    chunk = max(1, 4_000_000 // max(data.vis2.size + 3 * data.t3phi.size, 1))
    q = data.q
    v1 = uniform_disk(theta1, q) if theta1 > 0 else np.ones_like(q)
    from hcdc.science.interferometry.models import MAS

    for start in range(0, dra.size, chunk):
        a, d = dra[start : start + chunk, None] * MAS, ddec[start : start + chunk, None] * MAS
        phase = -2.0 * np.pi * (data.u * a + data.v * d) / data.wavelength
        vis = (v1 + ratio * np.exp(1j * phase)) / (1.0 + ratio)
        r = (np.abs(vis) ** 2 - data.vis2) / data.vis2_err
        total = np.einsum("ij,ij->i", r, r)
        if data.t3phi.size:
            wl = data.t3_wavelength
            u3, v3 = -(data.t3_u1 + data.t3_u2), -(data.t3_v1 + data.t3_v2)
            product = np.ones((a.shape[0], wl.size), dtype=complex)
            for uu, vv in ((data.t3_u1, data.t3_v1), (data.t3_u2, data.t3_v2), (u3, v3)):
                qq = np.hypot(uu, vv) / wl
                vv1 = uniform_disk(theta1, qq) if theta1 > 0 else 1.0
                ph = -2.0 * np.pi * (uu * a + vv * d) / wl
                product *= (vv1 + ratio * np.exp(1j * ph)) / (1.0 + ratio)
            diff = (np.degrees(np.angle(product)) - data.t3phi + 180.0) % 360.0 - 180.0
            rt = diff / data.t3phi_err
            total += np.einsum("ij,ij->i", rt, rt)
        out[start : start + chunk] = total
    return out


def fit_many(
    datasets: Iterable[Observables],
    fit: Callable[[Observables], FitResult],
    executor: Executor | None = None,
) -> list[FitResult | FitError]:
    """Apply ``fit`` to every dataset (in order), inline or on ``executor`` (a process pool,
    a Dask client's executor...). A dataset the model cannot fit gives its :class:`FitError`
    in place of a result instead of stopping the batch."""
    if executor is None:
        return [_safe(fit, d) for d in datasets]
    futures = [executor.submit(_safe, fit, d) for d in datasets]
    return [f.result() for f in futures]


def _safe(fit: Callable[[Observables], FitResult], data: Observables) -> FitResult | FitError:
    try:
        return fit(data)
    except FitError as exc:
        return exc
