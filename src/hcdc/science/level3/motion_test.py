"""The proper-motion test: is a candidate bound to its host star, a background star, or is it
too early to say?

Three hypotheses, each a linear-Gaussian model of the stacked offsets y = (ra_1, dec_1, ...,
ra_n, dec_n) [mas], with measurement covariance C (block diagonal, from each epoch's errors) and
an unknown offset at the first epoch (flat prior, fitted by generalised least squares):

(a) ``comoving``: a companion sharing the host's proper motion and parallax and moving on its
    orbit. The orbital motion is a Gaussian process per axis with the squared-exponential kernel
    ``s^2 exp(-dt^2 / 2 l^2)`` whose scales come from the circular orbit at the projected
    separation r = sep / parallax [au] around the host mass M [Msun]: period P = sqrt(r^3 / M)
    yr, ``l = P / 2 pi``, ``s = sep / sqrt(2)`` (per-axis rms of a circular orbit of radius sep).
    Over short baselines this is a linear motion with a per-axis rms speed ``s / l`` equal to the
    circular speed's per-axis rms, and an acceleration of the order of GM/r^2; over long ones the
    companion stays within about its separation (beta Pic b crosses the star and comes back).
(b) ``background``: a stationary background star, offset(t) = offset_1 - [D(t) - D(t_1)] (see
    :mod:`.background`); the host's proper-motion and parallax errors are marginalised
    (Gaussian).
(c) ``background_pm``: as (b) plus the background star's own proper motion and parallax, with
    zero-mean Gaussian priors (default 10 mas/yr per axis and 0.5 mas: faint field stars behind
    nearby young hosts, kiloparsecs away).

Per hypothesis: chi2 = r' S^-1 r of the residuals with S = C + K (K the hypothesis' prior
covariance), dof = 2n - 2, its p-value, and the log evidence (marginal likelihood; the flat prior
of the first offset is common to the three and cancels in their ratios).

Verdict (thresholds in :class:`MotionTestSettings`, documented in docs/level3.md):

1. ``undetermined`` with fewer than 2 epochs, or when the data cannot separate a co-moving object
   from the background track: the track's motion relative to the host, measured in units of the
   errors (``power_chi2``: the chi2 a motionless companion would get under (b)), must reach 25
   (a 5-sigma displacement);
2. ``bound`` when ln B = ln Z(a) - max(ln Z(b), ln Z(c)) >= 5 (odds above 150:1) and (a) fits
   (p >= 0.001);
3. ``background`` when ln B <= -5 and the better background hypothesis fits (p >= 0.001);
4. otherwise ``undetermined`` (the reason says why: evidence not decisive, or no hypothesis fits).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import linalg, stats

from hcdc.science.level3.astrometry import RelativeAstrometry
from hcdc.science.level3.background import (
    DAYS_PER_YEAR,
    HostStar,
    background_track,
    background_track_error,
    parallax_factors,
)

Verdict = Literal["bound", "background", "undetermined"]
HYPOTHESES = ("comoving", "background", "background_pm")


@dataclass(frozen=True)
class MotionTestSettings:
    """Priors and thresholds of the test (units: Msun, mas/yr, mas)."""

    host_mass_msun: float = 1.0  # used when the HostStar has no mass
    # per-axis rms proper motions of background stars, hypothesis (c): an equal-weight mixture of
    # Gaussians (heavier tails than one Gaussian: most background stars are slow, a few are fast)
    background_pm_sigmas: tuple[float, ...] = (5.0, 15.0, 45.0)
    background_parallax_sigma: float = 0.5  # rms parallax of background stars, hypothesis (c)
    min_power_chi2: float = 25.0  # the background track must move >= 5 sigma relative to a static object
    ln_bayes_threshold: float = 5.0  # |ln B| needed for a verdict (odds ~150:1)
    min_p_value: float = 1e-3  # the winning hypothesis must fit the data at least this well
    max_error_scale: float = 3.0  # beyond this rescaling of the errors, no hypothesis fits


@dataclass(frozen=True)
class HypothesisFit:
    """One hypothesis fitted to one object's astrometry."""

    name: str
    chi2: float
    dof: int
    p_value: float
    ln_evidence: float
    ra0: float  # fitted offset at the reference (first) epoch [mas]
    dec0: float


@dataclass(frozen=True)
class OrbitalScale:
    """The scales of hypothesis (a)'s orbital motion prior."""

    mass_msun: float
    separation_mas: float
    separation_au: float
    period_yr: float
    timescale_yr: float  # l = P / 2 pi
    amplitude_mas: float  # s, per axis
    speed_mas_yr: float  # s / l, per-axis rms speed


@dataclass(frozen=True)
class MotionTestResult:
    """Verdict and the statistics behind it for one object (see the module docstring)."""

    name: str
    verdict: Verdict
    reason: str
    n_epochs: int
    baseline_yr: float
    ref_mjd: float
    power_chi2: float
    ln_bayes_factor: float  # ln Z(comoving) - max ln Z(background, background_pm)
    error_scale: float  # factor applied to the errors (>= 1; Birge ratio of the best hypothesis)
    hypotheses: dict[str, HypothesisFit]
    orbital_scale: OrbitalScale
    last_mjd: float
    # stationary-background prediction at the last epoch, from the first epoch's measurement
    predicted_background_ra: float
    predicted_background_dec: float
    predicted_background_ra_err: float
    predicted_background_dec_err: float
    observed_last_ra: float
    observed_last_dec: float
    settings: MotionTestSettings = field(default_factory=MotionTestSettings)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN and infinities become None)."""
        return _json_safe(asdict(self))


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# -- the linear-Gaussian machinery ------------------------------------------------------------


def _design(n: int) -> np.ndarray:
    """(2n, 2): the unknown constant offset (ra0, dec0) in the stacked (ra, dec) order."""
    a = np.zeros((2 * n, 2))
    a[0::2, 0] = 1.0
    a[1::2, 1] = 1.0
    return a


def _block_diag(cov: np.ndarray) -> np.ndarray:
    n = cov.shape[0]
    out = np.zeros((2 * n, 2 * n))
    for i in range(n):
        out[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = cov[i]
    return out


def _gls(y: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(chi2, ln evidence, fitted constant offset) of y ~ N(mean + A x0, cov) with x0 flat."""
    n2 = y.size
    a = _design(n2 // 2)
    factor = linalg.cho_factor(cov, lower=True)
    resid0 = y - mean
    s_a = linalg.cho_solve(factor, a)
    fisher = a.T @ s_a
    x0 = np.linalg.solve(fisher, s_a.T @ resid0)
    resid = resid0 - a @ x0
    chi2 = float(resid @ linalg.cho_solve(factor, resid))
    logdet_s = 2.0 * float(np.sum(np.log(np.diag(factor[0]))))
    logdet_f = float(np.linalg.slogdet(fisher)[1])
    ln_z = -0.5 * (chi2 + logdet_s + logdet_f + (n2 - 2) * math.log(2.0 * math.pi))
    return chi2, ln_z, x0


def _stack(astro: RelativeAstrometry) -> tuple[np.ndarray, np.ndarray]:
    y = np.empty(2 * len(astro))
    y[0::2], y[1::2] = astro.ra, astro.dec
    return y, _block_diag(astro.cov)


def orbital_scale_at(separation_mas: float, parallax_mas: float, mass_msun: float) -> OrbitalScale:
    """Scales of the orbital-motion prior of a companion at ``separation_mas`` from a host of
    ``parallax_mas`` and ``mass_msun`` (circular orbit of radius the projected separation)."""
    sep = max(float(separation_mas), 1e-3)
    r_au = sep / parallax_mas
    period = math.sqrt(r_au**3 / mass_msun)
    ell = period / (2.0 * math.pi)
    amp = sep / math.sqrt(2.0)
    return OrbitalScale(mass_msun, sep, r_au, period, ell, amp, amp / ell)


def orbital_scale(astro: RelativeAstrometry, host: HostStar, settings: MotionTestSettings) -> OrbitalScale:
    """Scales of the orbital-motion prior from the mean separation, the parallax and the mass."""
    mass = host.mass_msun if host.mass_msun is not None else settings.host_mass_msun
    return orbital_scale_at(float(np.mean(np.hypot(astro.ra, astro.dec))), host.parallax, mass)


def _host_vectors(astro: RelativeAstrometry, host: HostStar, ref_mjd: float) -> dict[str, np.ndarray]:
    """Stacked derivatives of the host displacement D(t) - D(t_ref) with respect to pmra, pmdec
    and parallax (each (2n,))."""
    n = len(astro)
    dt = (astro.mjd - ref_mjd) / DAYS_PER_YEAR
    f_ra, f_dec = parallax_factors(host.ra_deg, host.dec_deg, np.append(astro.mjd, ref_mjd))
    g = {k: np.zeros(2 * n) for k in ("pmra", "pmdec", "parallax")}
    g["pmra"][0::2] = dt
    g["pmdec"][1::2] = dt
    g["parallax"][0::2] = f_ra[:-1] - f_ra[-1]
    g["parallax"][1::2] = f_dec[:-1] - f_dec[-1]
    return g


def _fit(name: str, y: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> HypothesisFit:
    chi2, ln_z, x0 = _gls(y, mean, cov)
    dof = y.size - 2
    p = float(stats.chi2.sf(chi2, dof)) if dof > 0 else float("nan")
    return HypothesisFit(name, chi2, dof, p, ln_z, float(x0[0]), float(x0[1]))


def _mixture_fit(name: str, components: list[HypothesisFit]) -> HypothesisFit:
    """An equal-weight mixture of priors: its evidence is the mean of the components' evidences;
    chi2 and the fitted offset are those of the most probable component."""
    ln_z = np.array([f.ln_evidence for f in components])
    best = components[int(np.argmax(ln_z))]
    mixed = float(np.logaddexp.reduce(ln_z) - math.log(len(components)))
    return HypothesisFit(name, best.chi2, best.dof, best.p_value, mixed, best.ra0, best.dec0)


def fit_hypotheses(
    astro: RelativeAstrometry,
    host: HostStar,
    settings: MotionTestSettings | None = None,
    error_scale: float = 1.0,
) -> tuple[dict[str, HypothesisFit], float, OrbitalScale]:
    """Fit (a), (b), (c) to sorted astrometry whose errors are multiplied by ``error_scale``;
    returns (fits by name, power_chi2, orbital scale)."""
    settings = settings or MotionTestSettings()
    y, c = _stack(astro)
    c = c * error_scale**2
    ref = float(astro.mjd[0])
    g = _host_vectors(astro, host, ref)
    bg_mean = -(host.pmra * g["pmra"] + host.pmdec * g["pmdec"] + host.parallax * g["parallax"])
    host_cov = (
        host.pmra_err**2 * np.outer(g["pmra"], g["pmra"])
        + host.pmdec_err**2 * np.outer(g["pmdec"], g["pmdec"])
        + host.parallax_err**2 * np.outer(g["parallax"], g["parallax"])
    )
    pm_outer = np.outer(g["pmra"], g["pmra"]) + np.outer(g["pmdec"], g["pmdec"])
    own_plx = settings.background_parallax_sigma**2 * np.outer(g["parallax"], g["parallax"])
    scale = orbital_scale(astro, host, settings)
    dt = (astro.mjd[:, None] - astro.mjd[None, :]) / DAYS_PER_YEAR
    orbit_cov = np.kron(scale.amplitude_mas**2 * np.exp(-0.5 * (dt / scale.timescale_yr) ** 2), np.eye(2))
    fits = {
        "comoving": _fit("comoving", y, np.zeros_like(y), c + orbit_cov),
        "background": _fit("background", y, bg_mean, c + host_cov),
        "background_pm": _mixture_fit(
            "background_pm",
            [
                _fit("background_pm", y, bg_mean, c + host_cov + own_plx + sigma**2 * pm_outer)
                for sigma in settings.background_pm_sigmas
            ],
        ),
    }
    # Power: chi2 of a motionless companion under (b), with the measurement errors only.
    power, _, _ = _gls(np.zeros_like(y), -bg_mean, c)
    return fits, power, scale


def best_fit(fits: dict[str, HypothesisFit]) -> HypothesisFit:
    """The hypothesis of highest evidence."""
    return max(fits.values(), key=lambda f: f.ln_evidence)


def decide(
    fits: dict[str, HypothesisFit],
    power_chi2: float,
    n_epochs: int,
    settings: MotionTestSettings,
    error_scale: float = 1.0,
) -> tuple[Verdict, str, float]:
    """(verdict, reason, ln B) from the fitted hypotheses (rules in the module docstring)."""
    if n_epochs < 2:
        return "undetermined", "a single epoch cannot show motion", float("nan")
    a = fits["comoving"]
    bg = max(fits["background"], fits["background_pm"], key=lambda f: f.ln_evidence)
    ln_b = a.ln_evidence - bg.ln_evidence
    if error_scale > settings.max_error_scale:
        return (
            "undetermined",
            f"no hypothesis fits: the errors would have to be {error_scale:.1f} times larger "
            f"(limit {settings.max_error_scale:g}) for the best one ({best_fit(fits).name}); "
            "check the astrometry",
            ln_b,
        )
    if power_chi2 < settings.min_power_chi2:
        return (
            "undetermined",
            f"baseline too short or errors too large: the background track moves only "
            f"{math.sqrt(max(power_chi2, 0.0)):.1f} sigma (need {math.sqrt(settings.min_power_chi2):.0f})",
            ln_b,
        )
    t = settings.ln_bayes_threshold
    if ln_b >= t and a.p_value >= settings.min_p_value:
        return "bound", f"co-moving favoured, ln B = {ln_b:.1f} >= {t:g}; p(comoving) = {a.p_value:.3g}", ln_b
    if ln_b <= -t and bg.p_value >= settings.min_p_value:
        return (
            "background",
            f"{bg.name} favoured, ln B = {ln_b:.1f} <= -{t:g}; p({bg.name}) = {bg.p_value:.3g}",
            ln_b,
        )
    best = a if ln_b > 0 else bg
    if best.p_value < settings.min_p_value:
        why = f"no hypothesis fits (best: {best.name}, p = {best.p_value:.2g}); check the astrometry"
    else:
        why = f"evidence not decisive: ln B = {ln_b:.1f} (need |ln B| >= {t:g})"
    return "undetermined", why, ln_b


def motion_test(
    astro: RelativeAstrometry, host: HostStar, settings: MotionTestSettings | None = None
) -> MotionTestResult:
    """Run the proper-motion test on one object's relative astrometry (any epoch order)."""
    settings = settings or MotionTestSettings()
    astro = astro.sorted()
    n = len(astro)
    first, last = float(astro.mjd[0]), float(astro.mjd[-1])
    error_scale = 1.0
    if n >= 2:
        fits, power, scale = fit_hypotheses(astro, host, settings)
        best = best_fit(fits)
        # Errors of heterogeneous instruments are often underestimated: when even the best
        # hypothesis has chi2/dof > 1, scale all errors by its Birge ratio and fit again.
        if best.chi2 > best.dof:
            error_scale = math.sqrt(best.chi2 / best.dof)
            fits, power, scale = fit_hypotheses(astro, host, settings, error_scale)
    else:
        fits, power, scale = {}, 0.0, orbital_scale(astro, host, settings)
    verdict, reason, ln_b = decide(fits, power, n, settings, error_scale)
    pred_ra, pred_dec = background_track(host, first, astro.ra[0], astro.dec[0], [last])
    pred_cov = astro.cov[0] + background_track_error(host, first, [last])[0]
    return MotionTestResult(
        name=astro.name,
        verdict=verdict,
        reason=reason,
        n_epochs=n,
        baseline_yr=astro.baseline_yr,
        ref_mjd=first,
        power_chi2=float(power),
        ln_bayes_factor=float(ln_b),
        error_scale=float(error_scale),
        hypotheses=fits,
        orbital_scale=scale,
        last_mjd=last,
        predicted_background_ra=float(pred_ra[0]),
        predicted_background_dec=float(pred_dec[0]),
        predicted_background_ra_err=float(math.sqrt(pred_cov[0, 0])),
        predicted_background_dec_err=float(math.sqrt(pred_cov[1, 1])),
        observed_last_ra=float(astro.ra[-1]),
        observed_last_dec=float(astro.dec[-1]),
        settings=settings,
    )
