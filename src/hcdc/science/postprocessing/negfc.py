"""Negative fake companion (NEGFC) fit of a companion's separation, position angle and flux.

Method (Marois et al. 2010; Lagrange et al. 2010; Wertz et al. 2017): inject a *negative* copy of
the PSF at trial parameters ``(r, PA, f)`` into the ADI cube, post-process it with PCA restricted
to an annulus around the companion, and minimise the sum of absolute residuals in an aperture
(radius ``aperture_radius`` FWHM) centred on the first-guess position. The best parameters make
the companion vanish. Uncertainties come from injection-recovery: the fitted companion is removed
from the cube, copies with the fitted flux are injected at the same separation at other position
angles, refitted, and the scatter of (fit - truth) is reported (it includes speckle noise and the
fit's own bias, which a curvature estimate would not).

Speed: everything that does not depend on the trial parameters is precomputed once: the annulus
pixels, for every frame and aperture pixel the bilinear derotation taps, and the cube restricted
to the annulus. One evaluation then costs a small Gram matrix (frames x frames), one eigh and a
median over frames of ~100 aperture pixels (a few ms on a 61-frame, 101-px cube).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from hcdc.runtime.blas import blas_threads
from hcdc.science import geometry
from hcdc.science.postprocessing.fakes import companion_positions, inject_companions, shifted_psfs

__all__ = ["NegfcResult", "NegfcProblem", "negfc_fit", "remove_companion"]


@dataclass(frozen=True)
class NegfcResult:
    """Best-fit companion (sky position on the north-up image) with 1-sigma uncertainties."""

    separation: float  # px
    pa: float  # deg east of north
    flux: float  # aperture flux (cube units; PSF with unit 1-FWHM aperture flux)
    x: float  # pixel on the final image
    y: float
    separation_err: float = np.nan
    pa_err: float = np.nan
    flux_err: float = np.nan
    contrast: float = np.nan  # flux / star_flux when star_flux was given
    contrast_err: float = np.nan
    metric: float = np.nan  # objective at the optimum
    n_evaluations: int = 0
    trials: np.ndarray = field(default_factory=lambda: np.empty((0, 3)))  # (fit - truth) per injection trial

    @property
    def theta(self) -> float:
        """VIP's theta (deg counter-clockwise from +x) of the fitted position."""
        return geometry.pa_to_theta(self.pa)


class NegfcProblem:
    """Precomputed objective ``metric(r, pa, flux)`` for one cube and first-guess position."""

    def __init__(
        self,
        cube: np.ndarray,
        angles: np.ndarray,
        psf: np.ndarray,
        *,
        fwhm: float,
        separation: float,
        pa: float,
        ncomp: int = 10,
        annulus_width: float | None = None,
        aperture_radius: float = 2.0,
        collapse: str = "median",
        scaling: str | None = "temp-mean",
    ):
        cube = np.asarray(cube, dtype=np.float32)
        angles = np.asarray(angles, dtype=np.float64).ravel()
        if cube.ndim != 3 or cube.shape[0] != angles.size:
            raise ValueError(
                f"need a (frames, y, x) cube and one angle per frame; got {cube.shape}, {angles.size}"
            )
        if collapse not in ("median", "mean"):
            raise ValueError(f"unknown collapse {collapse!r}")
        if scaling not in (None, "temp-mean"):
            raise ValueError(f"unknown scaling {scaling!r}")
        psf = np.asarray(psf, dtype=np.float64)
        if psf.ndim != 2 or psf.shape[0] != psf.shape[1] or psf.shape[0] % 2 == 0:
            raise ValueError(f"the PSF must be an odd square image; got {psf.shape}")
        nfr, ny, nx = cube.shape
        self.shape = (ny, nx)
        self.angles = angles
        self.psf = psf
        self.fwhm = float(fwhm)
        self.ncomp = int(ncomp)
        self.collapse = collapse
        self.scaling = scaling
        if not 1 <= self.ncomp < nfr:
            raise ValueError(f"ncomp must be between 1 and {nfr - 1}; got {ncomp}")
        width = 3.0 * fwhm if annulus_width is None else float(annulus_width)
        r_map = geometry.distance_map((ny, nx)).ravel()
        r_in, r_out = max(separation - width / 2.0, 0.0), separation + width / 2.0
        self.annulus = np.flatnonzero((r_map >= r_in) & (r_map < r_out))
        lookup = np.full(ny * nx, -1, dtype=np.intp)
        lookup[self.annulus] = np.arange(self.annulus.size)
        self.lookup = lookup
        self.data = cube.reshape(nfr, -1)[:, self.annulus].astype(np.float64)
        # Aperture on the final image around the first guess (fixed during the fit, as VIP).
        self.x0, self.y0 = geometry.polar_to_pixel(separation, pa, (ny, nx))
        yy, xx = np.mgrid[0:ny, 0:nx]
        in_aperture = (np.hypot(xx - self.x0, yy - self.y0) <= aperture_radius * fwhm).ravel()
        aperture = np.flatnonzero(in_aperture & (r_map >= r_in) & (r_map < r_out))
        if aperture.size < 4:
            raise ValueError("the NEGFC aperture holds fewer than 4 pixels; check the first guess")
        self.aperture = aperture
        self._derotation_taps(aperture, nfr, ny, nx)
        self.n_evaluations = 0

    def _derotation_taps(self, aperture: np.ndarray, nfr: int, ny: int, nx: int) -> None:
        """Bilinear taps (annulus column, weight) of every aperture pixel in every frame."""
        cy, cx = geometry.frame_center((ny, nx))
        dy = aperture // nx - cy
        dx = aperture % nx - cx
        a = np.radians(self.angles)[:, None]
        # Derotated pixel (dy, dx) of frame k samples frame k at the offset turned by +angle.
        x_in = np.cos(a) * dx - np.sin(a) * dy + cx
        y_in = np.sin(a) * dx + np.cos(a) * dy + cy
        x0 = np.floor(x_in).astype(np.intp)
        y0 = np.floor(y_in).astype(np.intp)
        tx, ty = x_in - x0, y_in - y0
        cols = []
        weights = []
        for oy, ox, w in (
            (0, 0, (1 - tx) * (1 - ty)),
            (0, 1, tx * (1 - ty)),
            (1, 0, (1 - tx) * ty),
            (1, 1, tx * ty),
        ):
            yy = np.clip(y0 + oy, 0, ny - 1)
            xx = np.clip(x0 + ox, 0, nx - 1)
            col = self.lookup[yy * nx + xx]
            weights.append(np.where(col >= 0, w, 0.0))  # taps outside the annulus read residual 0
            cols.append(np.maximum(col, 0))
        used = np.unique(np.concatenate([c.ravel() for c in cols]))
        remap = np.full(self.annulus.size, -1, dtype=np.intp)
        remap[used] = np.arange(used.size)
        self.used = used  # annulus columns whose residuals are needed
        self.tap_cols = np.stack([remap[c] for c in cols])  # (4, frames, aperture)
        self.tap_weights = np.stack(weights)
        self.frame_index = np.arange(nfr)[None, :, None]

    def model(self, separation: float, pa: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Unit-flux companion restricted to the annulus: (frame index, annulus column, value) triplets."""
        nfr = self.angles.size
        ny, nx = self.shape
        x, y = companion_positions(separation, pa, self.angles, self.shape)
        ix, iy = np.rint(x).astype(np.intp), np.rint(y).astype(np.intp)
        stamps = shifted_psfs(self.psf, x - ix, y - iy)
        h = self.psf.shape[0] // 2
        oy, ox = np.mgrid[-h : h + 1, -h : h + 1]
        py = iy[:, None, None] + oy[None]
        px = ix[:, None, None] + ox[None]
        inside = (py >= 0) & (py < ny) & (px >= 0) & (px < nx)
        col = np.where(inside, self.lookup[np.clip(py, 0, ny - 1) * nx + np.clip(px, 0, nx - 1)], -1)
        keep = col >= 0
        frames = np.broadcast_to(np.arange(nfr)[:, None, None], col.shape)
        return frames[keep], col[keep], stamps[keep]

    def aperture_values(self, separation: float, pa: float, flux: float) -> np.ndarray:
        """Post-processed values at the aperture pixels after injecting ``-flux`` at (separation, pa)."""
        data = self.data.copy()
        if flux != 0.0:
            frames, cols, values = self.model(separation, pa)
            data[frames, cols] -= flux * values
        if self.scaling == "temp-mean":
            data -= data.mean(axis=0)
        gram = data @ data.T
        _, vectors = np.linalg.eigh(gram)
        top = vectors[:, -self.ncomp :]
        sub = data[:, self.used]
        residual = sub - top @ (top.T @ sub)
        derotated = np.zeros(self.tap_cols.shape[1:])
        for t in range(4):
            derotated += self.tap_weights[t] * residual[self.frame_index[0], self.tap_cols[t]]
        self.n_evaluations += 1
        if self.collapse == "median":
            return np.median(derotated, axis=0)
        return derotated.mean(axis=0)

    def metric(self, separation: float, pa: float, flux: float) -> float:
        """Sum of absolute post-processed values in the aperture (VIP's ``'sum'`` figure of merit)."""
        return float(np.abs(self.aperture_values(separation, pa, flux)).sum())


def _fit_once(
    problem: NegfcProblem, separation: float, pa: float, flux_guess: float | None, xatol: float
) -> tuple[np.ndarray, float]:
    """Flux from a grid at the first-guess position, then a 3-D Nelder-Mead simplex.

    The figure of merit is rough in flux (the PCA basis changes with the residual), so the first
    guess comes from a dense logarithmic grid (as VIP's ``firstguess``) rather than a local search.
    """
    if flux_guess is None or not flux_guess > 0:
        # Upper bound: a companion brighter than ~10x the annulus' brightest pixel x the PSF's
        # aperture-to-peak ratio would dominate the data; the grid spans three decades below it.
        upper = 10.0 * float(np.max(np.abs(problem.data))) / float(problem.psf.max())
        grid = np.geomspace(upper * 1e-3, upper, 40)
        values = [problem.metric(separation, pa, f) for f in grid]
        flux_guess = float(grid[int(np.argmin(values))])
    f0 = max(flux_guess, 1e-12)
    start = np.array([separation, pa, 1.0])
    # Simplex steps: ~0.1 FWHM in separation and along the circle, 10 % in flux.
    step_pa = np.degrees(0.1 * problem.fwhm / separation)
    simplex = np.array(
        [start, start + [0.1 * problem.fwhm, 0, 0], start + [0, step_pa, 0], start + [0, 0, 0.1]]
    )
    res = optimize.minimize(
        lambda p: problem.metric(p[0], p[1], p[2] * f0),
        start,
        method="Nelder-Mead",
        options={
            "initial_simplex": simplex,
            "xatol": xatol,
            "fatol": 1e-6 * max(_metric_scale(problem), 1e-30),
            "maxfev": 600,
        },
    )
    best = np.array([res.x[0], res.x[1] % 360.0, res.x[2] * f0])
    return best, float(res.fun)


def _metric_scale(problem: NegfcProblem) -> float:
    """Typical metric value (used to set an absolute tolerance)."""
    return float(np.abs(problem.data[:, problem.used]).mean() * problem.aperture.size)


def remove_companion(
    cube: np.ndarray, angles: np.ndarray, psf: np.ndarray, separation: float, pa: float, flux: float
) -> np.ndarray:
    """The cube with a companion of ``flux`` at (separation px, pa deg) subtracted (planet-free cube)."""
    return inject_companions(cube, angles, psf, separation, pa, -flux)


def negfc_fit(
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    separation: float,
    pa: float,
    flux_guess: float | None = None,
    star_flux: float | None = None,
    ncomp: int = 10,
    annulus_width: float | None = None,
    aperture_radius: float = 2.0,
    collapse: str = "median",
    scaling: str | None = "temp-mean",
    uncertainty_trials: int = 6,
    xatol: float = 1e-3,
) -> NegfcResult:
    """Fit separation (px), PA (deg east of north) and aperture flux of a companion by NEGFC.

    ``separation``/``pa``: first guess (e.g. a centroid on the PCA image); ``psf`` odd square with
    unit flux in a 1-FWHM aperture, so ``flux`` is the companion's aperture flux and
    ``contrast = flux / star_flux``. PCA with ``ncomp`` components in an annulus of
    ``annulus_width`` px (default 3 FWHM) around the companion; the figure of merit is the sum of
    absolute residuals within ``aperture_radius`` FWHM of the first guess. ``uncertainty_trials``
    injection-recovery trials (0 to skip) give the 1-sigma uncertainties.
    """
    if separation <= fwhm:
        raise ValueError(f"separation {separation:.2f} px is within 1 FWHM of the star")

    def problem_at(data: np.ndarray, r: float, theta: float) -> NegfcProblem:
        return NegfcProblem(
            data,
            angles,
            psf,
            fwhm=fwhm,
            separation=r,
            pa=theta,
            ncomp=ncomp,
            annulus_width=annulus_width,
            aperture_radius=aperture_radius,
            collapse=collapse,
            scaling=scaling,
        )

    with blas_threads(np.asarray(cube).size):
        return _negfc_fit(
            problem_at, cube, angles, psf, separation, pa, flux_guess, star_flux, uncertainty_trials, xatol
        )


def _negfc_fit(
    problem_at: Callable[[np.ndarray, float, float], NegfcProblem],
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    separation: float,
    pa: float,
    flux_guess: float | None,
    star_flux: float | None,
    uncertainty_trials: int,
    xatol: float,
) -> NegfcResult:
    """Body of :func:`negfc_fit` (BLAS threads already limited); ``problem_at(cube, r, pa)`` builds
    the NEGFC problem with the fit's settings around a first guess ``(r, pa)``."""
    problem = problem_at(cube, separation, pa)
    best, value = _fit_once(problem, separation, pa, flux_guess, xatol)
    evaluations = problem.n_evaluations
    r_fit, pa_fit, f_fit = (float(v) for v in best)
    trials = np.empty((0, 3))
    errs = (np.nan, np.nan, np.nan)
    if uncertainty_trials > 0:
        empty = remove_companion(cube, angles, psf, r_fit, pa_fit, f_fit)
        offsets = pa_fit + 360.0 * (np.arange(uncertainty_trials) + 0.5) / (uncertainty_trials + 0.5)
        rows = []
        for trial_pa in offsets % 360.0:
            trial_cube = inject_companions(empty, angles, psf, r_fit, trial_pa, f_fit)
            trial = problem_at(trial_cube, r_fit, trial_pa)
            fit, _ = _fit_once(trial, r_fit, trial_pa, f_fit, xatol)
            evaluations += trial.n_evaluations
            dpa = (fit[1] - trial_pa + 180.0) % 360.0 - 180.0
            rows.append([fit[0] - r_fit, dpa, fit[2] - f_fit])
        trials = np.array(rows)
        # Root-mean-square of (fit - truth): scatter and bias together.
        errs = tuple(float(v) for v in np.sqrt(np.mean(trials**2, axis=0)))
    x, y = geometry.polar_to_pixel(r_fit, pa_fit, problem.shape)
    contrast = f_fit / star_flux if star_flux else np.nan
    contrast_err = errs[2] / star_flux if star_flux else np.nan
    return NegfcResult(
        r_fit,
        pa_fit,
        f_fit,
        x,
        y,
        errs[0],
        errs[1],
        errs[2],
        contrast,
        contrast_err,
        value,
        evaluations,
        trials,
    )
