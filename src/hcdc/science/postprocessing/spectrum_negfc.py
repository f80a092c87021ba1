"""A companion's spectrum by negative fake companions fitted per channel (NEGFC per channel) in
an ASDI ``mode='single'`` reduction (:func:`hcdc.science.postprocessing.sdi.asdi`).

Inputs: the Level 1 cube (wavelengths, frames, y, x) with its derotation angles, wavelengths
(µm), per-channel PSFs normalised to unit 1-FWHM-aperture flux and their FWHM (px), the ASDI
parameters of the Level 2 reduction (``ncomp``, ``mask_center_px``, ``collapse``) and the
companion's position on the Level 2 (north-up) image, fixed from the collapsed image.

Why not injection–recovery (:mod:`~hcdc.science.postprocessing.spectrum`)
--------------------------------------------------------------------------
ASDI single builds one PCA basis from every channel and frame; the companion is in that basis, so
the reduction is not linear in it: fakes of another brightness or spectrum at other position
angles do not calibrate it channel by channel (measured: rms of the ratio to the truth 0.2–0.3 on
the simulated IFS night, docs/ifs.md §4). Here the companion is removed instead: a negative copy
of the PSF with flux ``f[w]`` in channel ``w`` is subtracted from the cube *before* the
reduction, and ``f`` is the spectrum that makes the companion vanish. At the right ``f`` the
companion is gone from the data and from the PCA basis alike, so no throughput or
self-subtraction correction is needed; the PSF model must be right (the Level 1 PSF).

Figure of merit (Marois et al. 2010, Wertz et al. 2017 as VIP's NEGFC, here per channel): channel
``w``'s objective is the sum of squares of its per-wavelength residual image in an aperture of
radius ``aperture_radius`` x FWHM[w] around the companion. The 39 fluxes are found by coordinate
descent: a flat-contrast first guess (one scalar minimisation of the sum over channels), then
sweeps in which each channel's flux minimises its own objective with the others fixed (the basis
depends on all of them), until the largest change is below ``tol`` of the spectrum's scale.

Speed: what does not depend on ``f`` is precomputed once (:class:`AsdiNegfcProblem`): the
rescaled, centre-masked, mean-subtracted library ``D`` (channels x frames, pixels) and its Gram
matrix, the unit companion ``M`` in the same geometry, and the cross products ``M Dᵀ`` and
``M Mᵀ``; the Gram matrix of the library with the negative fakes is then an update of a few
N x N products (N = channels x frames), one ``eigh``, and the residuals are computed only at the
rescaled pixels that the apertures' pixels sample. Unscaling (1/λ rescaling) and derotation are
folded into one bilinear resampling per aperture pixel and frame (the reduction uses a cubic
spline for the first; this changes the figure of merit slightly, not the fact that it is zero
without the companion). One evaluation takes a few ms on a 39 x 4-frame, 145 px cube.

Errors (measured, not assumed; as :func:`~hcdc.science.postprocessing.negfc.negfc_fit`): the
fitted companion is removed from the cube, its fitted spectrum injected at ``n_trials`` other
position angles at the same separation (>= 1.5 FWHM of chord from it), each refitted the same
way (at a position offset by ±1σ of the given position error, when there is one); the
per-channel error is the root mean square of (fit − injected) over the trials (noise, the fit's
own bias and a misplaced model together). With ``bias_correction`` (``l3-companion-spectra`` 1.3)
the trials' mean (fit − injected) is subtracted from the spectrum and the error is their scatter
about it.

Position: fixed where it is given, or fitted with the fluxes (``fit_position``,
:func:`fit_spectrum_and_position`: one sub-pixel position shared by all channels). Measured on
the simulated IFS nights the fit finds the simulated position within 0.08 px but the spectra were
not better than at Level 2's position (docs/ifs.md §4), so the recipes do not use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize

from hcdc.runtime.blas import blas_threads
from hcdc.science import geometry
from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.pca import _matrix
from hcdc.science.postprocessing.sdi import check_spectral_inputs, rescale_frames

__all__ = [
    "AsdiNegfcProblem",
    "NegfcSpectrum",
    "fit_spectrum",
    "fit_spectrum_and_position",
    "negfc_spectrum",
    "trial_position_angles",
]


@dataclass
class NegfcSpectrum:
    """A companion's NEGFC spectrum: per wavelength (µm) the contrast (companion / star flux in a
    1-FWHM aperture) and its 1-sigma error, the fitted aperture flux (cube units); where it was
    fitted (px from the star, deg east of north); the trials' position angles and their
    (fit − injected) contrasts (trials, wavelengths); objective evaluations and Newton steps of the fit."""

    wavelengths_um: np.ndarray
    contrast: np.ndarray
    contrast_err: np.ndarray
    flux: np.ndarray
    separation_px: float
    pa_deg: float
    trial_pas_deg: np.ndarray
    trial_errors: np.ndarray
    n_evaluations: int
    steps: int
    #: per-channel mean of ``trial_errors`` subtracted from ``contrast`` (``bias_correction``);
    #: zeros without it
    bias: np.ndarray | None = None

    @property
    def snr(self) -> np.ndarray:
        """Contrast / error per wavelength."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.contrast / self.contrast_err


def _rescaled_matrix(cube: np.ndarray, scale: np.ndarray, mask_center_px: float | None, centre: bool):
    """(channels x frames, pixels) float64 matrix of the rescaled cube, as ASDI single builds it."""
    rescaled = np.concatenate([rescale_frames(cube[w], scale[w]) for w in range(cube.shape[0])])
    return _matrix(rescaled, "temp-mean" if centre else None, mask_center_px).astype(np.float64)


class AsdiNegfcProblem:
    """Per-channel NEGFC objective of one companion in one cube (module doc, "Speed").

    ``x``, ``y``: the companion on the north-up image (px, star at ``(n//2, n//2)``);
    ``aperture_radius`` in FWHM of each channel.
    """

    def __init__(
        self,
        cube: np.ndarray,
        angles: np.ndarray,
        wavelengths: np.ndarray,
        psfs: np.ndarray,
        fwhm: np.ndarray,
        *,
        x: float,
        y: float,
        ncomp: int,
        mask_center_px: float | None = None,
        collapse: str = "median",
        aperture_radius: float = 1.0,
        model_xy: tuple[float, float] | None = None,
    ):
        cube, angles, wl = check_spectral_inputs(cube, angles, wavelengths)
        n_wl, n_fr, ny, nx = cube.shape
        if collapse not in ("median", "mean"):
            raise ValueError(f"unknown collapse {collapse!r}")
        if not 1 <= ncomp <= n_wl * n_fr:
            raise ValueError(f"ncomp={ncomp} must be between 1 and wavelengths x frames ({n_wl * n_fr})")
        self.n_wl, self.n_fr, self.shape = n_wl, n_fr, (ny, nx)
        self.ncomp, self.collapse = int(ncomp), collapse
        self.fwhm = np.broadcast_to(np.asarray(fwhm, dtype=np.float64), (n_wl,)).copy()
        self.scale = wl.max() / wl
        self.x, self.y = float(x), float(y)
        self._angles, self._psfs, self._mask = angles, psfs, mask_center_px
        data = _rescaled_matrix(cube, self.scale, mask_center_px, centre=True)
        self.gram = data @ data.T
        self._sampling(angles, aperture_radius)
        self.data_used = data[:, self.used]
        self._data = data
        self.n_evaluations = 0
        self.move_model(*((x, y) if model_xy is None else model_xy))

    def move_model(self, x: float, y: float) -> None:
        """Put the negative companion's model at ``(x, y)`` (px on the north-up image); the
        aperture stays where the problem was built (:meth:`__init__`'s ``x``, ``y``)."""
        shape = (self.n_wl, self.n_fr, *self.shape)
        cy, cx = geometry.frame_center(shape)
        self.model_x, self.model_y = float(x), float(y)
        self.separation = float(math.hypot(x - cx, y - cy))
        self.pa = float(geometry.pixel_to_polar(x, y, shape)[1])
        unit = inject_companions(
            np.zeros(shape, dtype=np.float32), self._angles, self._psfs, self.separation, self.pa, 1.0
        )
        model = _rescaled_matrix(unit, self.scale, self._mask, centre=False)
        support = np.flatnonzero(np.any(model != 0.0, axis=0))
        self.cross = model[:, support] @ self._data[:, support].T  # M Dᵀ
        self.model_gram = model[:, support] @ model[:, support].T  # M Mᵀ
        self.model_used = model[:, self.used]

    def _sampling(self, angles: np.ndarray, aperture_radius: float) -> None:
        """Per channel: the aperture pixels on the final image and, per frame, the four bilinear
        taps (rescaled-pixel index, weight) each one reads (derotation then 1/λ unscaling)."""
        ny, nx = self.shape
        cy, cx = geometry.frame_center(self.shape)
        yy, xx = np.mgrid[0:ny, 0:nx]
        a = np.radians(np.asarray(angles, dtype=np.float64))[:, None]
        taps, pixels = [], []
        for w in range(self.n_wl):
            inside = np.hypot(xx - self.x, yy - self.y) <= aperture_radius * self.fwhm[w]
            dy, dx = yy[inside] - cy, xx[inside] - cx
            if dy.size < 4:
                raise ValueError("the NEGFC aperture holds fewer than 4 pixels")
            # derotated pixel (dy, dx) of frame k samples frame k at the offset turned by +angle,
            # and the original geometry at offset d samples the rescaled frame at s_w * d
            x_in = self.scale[w] * (np.cos(a) * dx - np.sin(a) * dy) + cx
            y_in = self.scale[w] * (np.sin(a) * dx + np.cos(a) * dy) + cy
            x0, y0 = np.floor(x_in).astype(np.intp), np.floor(y_in).astype(np.intp)
            tx, ty = x_in - x0, y_in - y0
            cols, weights = [], []
            for oy, ox, wt in (
                (0, 0, (1 - tx) * (1 - ty)),
                (0, 1, tx * (1 - ty)),
                (1, 0, (1 - tx) * ty),
                (1, 1, tx * ty),
            ):
                cols.append(np.clip(y0 + oy, 0, ny - 1) * nx + np.clip(x0 + ox, 0, nx - 1))
                weights.append(wt)
            taps.append((np.stack(cols), np.stack(weights)))
            pixels.append(np.flatnonzero(inside.ravel()))
        self.used, inverse = np.unique(np.concatenate([c.ravel() for c, _ in taps]), return_inverse=True)
        self.taps, start = [], 0
        for cols, weights in taps:
            self.taps.append((inverse[start : start + cols.size].reshape(cols.shape), weights))
            start += cols.size
        self.aperture_pixels = pixels

    def residuals(self, flux: np.ndarray) -> np.ndarray:
        """(channels x frames, used pixels) residuals of ASDI single with ``-flux[w]`` x PSF_w
        subtracted at the companion's position in every channel ``w``."""
        f = np.repeat(np.asarray(flux, dtype=np.float64), self.n_fr)
        fa = f[:, None] * self.cross
        fa -= fa.mean(axis=0)  # C F M Dᵀ (rows centred as the library is)
        fbf = f[:, None] * self.model_gram * f[None, :]
        fbf = fbf - fbf.mean(axis=0) - fbf.mean(axis=1)[:, None] + fbf.mean()
        gram = self.gram - fa - fa.T + fbf
        n = gram.shape[0]
        # only the top ncomp eigenvectors: ~4x faster than the full eigh at 156 rows, 5x at 468
        _, top = linalg.eigh(gram, subset_by_index=[n - self.ncomp, n - 1])
        fake = f[:, None] * self.model_used
        sub = self.data_used - (fake - fake.mean(axis=0))
        self.n_evaluations += 1
        return sub - top @ (top.T @ sub)

    def aperture_values(self, residual: np.ndarray, w: int) -> np.ndarray:
        """Channel ``w``'s per-wavelength image at its aperture pixels from :meth:`residuals`."""
        cols, weights = self.taps[w]
        rows = residual[w * self.n_fr : (w + 1) * self.n_fr]
        frame = np.arange(self.n_fr)[:, None]
        derotated = sum(weights[t] * rows[frame, cols[t]] for t in range(4))
        return np.median(derotated, axis=0) if self.collapse == "median" else derotated.mean(axis=0)

    def channel_objective(self, flux: np.ndarray, w: int) -> float:
        """Sum of squares of channel ``w``'s residual image in its aperture."""
        return float(np.sum(self.aperture_values(self.residuals(flux), w) ** 2))

    def total_objective(self, flux: np.ndarray) -> float:
        """Sum over channels of :meth:`channel_objective` (one basis for all)."""
        return float(np.sum(self.all_values(flux) ** 2))

    def all_values(self, flux: np.ndarray) -> np.ndarray:
        """Every channel's residual image at its aperture pixels, concatenated (the least-squares
        residual vector of the fit)."""
        res = self.residuals(flux)
        return np.concatenate([self.aperture_values(res, w) for w in range(self.n_wl)])


def first_guess(problem: AsdiNegfcProblem, star_fluxes: np.ndarray) -> np.ndarray:
    """Fluxes of the flat contrast (``c x star_fluxes``) that minimises the sum of all channels'
    objectives (one scalar bounded minimisation)."""
    star = np.asarray(star_fluxes, dtype=np.float64)
    upper = 10.0 * float(np.max(np.abs(problem.data_used))) / float(np.max(star))
    res = optimize.minimize_scalar(
        lambda c: problem.total_objective(c * star),
        bounds=(-0.1 * upper, upper),
        method="bounded",
        options={"xatol": 1e-4 * upper},
    )
    return res.x * star


def fit_spectrum(
    problem: AsdiNegfcProblem,
    star_fluxes: np.ndarray,
    start: np.ndarray | None = None,
    *,
    tol: float = 1e-3,
    max_steps: int = 10,
) -> tuple[np.ndarray, int]:
    """Fluxes (cube units, aperture flux per channel) at which every channel's objective is at its
    minimum in that channel's flux, the others fixed (module doc), from the flat first guess
    (:func:`first_guess`) unless ``start`` is given. Returns the fluxes and the Newton steps made.

    Each step linearises every channel's aperture residuals ``r_w`` in all fluxes (Jacobian ``J``
    by forward differences, one evaluation per channel) and solves the 39 conditions
    ``J_wwᵀ (r_w + Σ_v J_wv Δ_v) = 0`` together: ``J_wv`` (v ≠ w) is the coupling of the channels
    through the PCA basis, which made coordinate descent converge slowly (a factor ~0.75 per
    sweep). Minimising the sum of all channels' objectives instead is not the same estimator: it
    lets a faint channel's flux lower a bright channel's residual through the basis (measured on
    the simulated IFS night: the methane band 25–40 % high).
    """
    star = np.asarray(star_fluxes, dtype=np.float64)
    flux = first_guess(problem, star) if start is None else np.asarray(start, dtype=np.float64).copy()
    scale = max(float(np.median(np.abs(flux))), 1e-30)
    bounds = np.cumsum([0] + [p.size for p in problem.aperture_pixels])
    blocks = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    step = 1e-2 * scale
    steps = 0
    while steps < max_steps:
        steps += 1
        base = problem.all_values(flux)
        jac = np.empty((base.size, problem.n_wl))
        for v in range(problem.n_wl):
            probe = flux.copy()
            probe[v] += step
            jac[:, v] = (problem.all_values(probe) - base) / step
        system = np.array([jac[blocks[w], w] @ jac[blocks[w], :] for w in range(problem.n_wl)])
        rhs = -np.array([jac[blocks[w], w] @ base[blocks[w]] for w in range(problem.n_wl)])
        delta = np.linalg.lstsq(system, rhs, rcond=None)[0]
        flux = flux + delta
        if np.max(np.abs(delta)) < tol * scale:
            break
    return flux, steps


def fit_spectrum_and_position(
    problem: AsdiNegfcProblem,
    star_fluxes: np.ndarray,
    *,
    tol: float = 1e-3,
    tol_px: float = 0.005,
    max_steps: int = 10,
    step_px: float = 0.05,
    max_move_px: float = 0.5,
) -> tuple[np.ndarray, int]:
    """:func:`fit_spectrum` with the companion's position fitted too: one sub-pixel ``(x, y)`` on
    the sky shared by every channel (the model of each channel is injected there, so the
    rescaling puts it at ``λ``-scaled radii in the rescaled frames as it should), the aperture
    kept where ``problem`` was built. Each Newton step adds to the 39 per-channel flux conditions
    the two conditions of a minimum of the *sum* of all channels' objectives in ``x`` and ``y``
    (Gauss–Newton; the position's Jacobian columns by moving the model ``step_px``), each move
    capped at ``max_move_px``. Leaves ``problem``'s model at the fitted position
    (``problem.model_x``, ``problem.model_y``, ``separation``, ``pa``); returns fluxes and steps."""
    star = np.asarray(star_fluxes, dtype=np.float64)
    flux = first_guess(problem, star)
    scale = max(float(np.median(np.abs(flux))), 1e-30)
    bounds = np.cumsum([0] + [p.size for p in problem.aperture_pixels])
    blocks = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    step = 1e-2 * scale
    n = problem.n_wl
    steps = 0
    while steps < max_steps:
        steps += 1
        x0, y0 = problem.model_x, problem.model_y
        base = problem.all_values(flux)
        jac = np.empty((base.size, n + 2))
        for v in range(n):
            probe = flux.copy()
            probe[v] += step
            jac[:, v] = (problem.all_values(probe) - base) / step
        for k, (dx, dy) in enumerate(((step_px, 0.0), (0.0, step_px))):
            problem.move_model(x0 + dx, y0 + dy)
            jac[:, n + k] = (problem.all_values(flux) - base) / step_px
        system = np.empty((n + 2, n + 2))
        rhs = np.empty(n + 2)
        for w in range(n):
            system[w] = jac[blocks[w], w] @ jac[blocks[w], :]
            rhs[w] = -(jac[blocks[w], w] @ base[blocks[w]])
        system[n:] = jac[:, n:].T @ jac
        rhs[n:] = -(jac[:, n:].T @ base)
        delta = np.linalg.lstsq(system, rhs, rcond=None)[0]
        move = float(np.hypot(delta[n], delta[n + 1]))
        if move > max_move_px:
            delta *= max_move_px / move
            move = max_move_px
        flux = flux + delta[:n]
        problem.move_model(x0 + delta[n], y0 + delta[n + 1])
        if np.max(np.abs(delta[:n])) < tol * scale and move < tol_px:
            break
    return flux, steps


def trial_position_angles(separation_px: float, pa_deg: float, fwhm_px: float, n_trials: int) -> np.ndarray:
    """``n_trials`` position angles (deg) evenly spaced around the ring at ``separation_px``,
    the companion's own ± ``1.5 fwhm_px`` left free (spacing below 3 FWHM where the ring is
    too short for them all: each trial is reduced alone, so they only need to miss the
    companion)."""
    if n_trials < 2:
        raise ValueError(f"need >= 2 trials; got {n_trials}")
    half_chord = 1.5 * fwhm_px / separation_px
    if half_chord >= 1.0:
        raise ValueError(
            f"separation {separation_px:.1f} px is too small for trials 3 FWHM from the companion"
        )
    gap = math.degrees(2.0 * math.asin(half_chord))  # 3 FWHM of arc each side of the companion
    free = 360.0 - 2.0 * gap
    return np.mod(pa_deg + gap + free * np.arange(n_trials) / (n_trials - 1), 360.0)


def negfc_spectrum(
    cube: np.ndarray,
    angles: np.ndarray,
    wavelengths_um: np.ndarray,
    psfs: np.ndarray,
    star_fluxes: np.ndarray,
    fwhm: np.ndarray,
    *,
    x: float,
    y: float,
    ncomp: int,
    mask_center_px: float | None = None,
    collapse: str = "median",
    aperture_radius: float = 1.0,
    n_trials: int = 6,
    tol: float = 1e-3,
    position_err: tuple[float, float] | None = None,
    bias_correction: bool = False,
    fit_position: bool = False,
) -> NegfcSpectrum:
    """Contrast spectrum of the companion at ``(x, y)`` (px on the north-up image) by NEGFC per
    channel in ASDI single with ``ncomp`` components (module doc). ``psfs`` (wavelengths, s, s)
    with unit 1-FWHM-aperture flux, ``star_fluxes`` the star's 1-FWHM-aperture flux per channel
    (cube units), ``fwhm`` per channel (px). ``n_trials`` injection–recovery trials for the errors
    (0: none, errors NaN). ``position_err``: the 1-sigma error of the fixed position (radial px,
    PA deg; Level 2's astrometric errors): each trial is then fitted at its injected position
    offset by (±1, ±1) x that error in turn, so the errors include the spectrum's change with a
    misplaced model (measured on the small IFS night, seed 1: a 0.2-0.3 px offset tilts the
    spectrum by ±20 % from blue to red, since the PSF's width scales with λ).

    ``bias_correction`` (``l3-companion-spectra`` 1.3): the trials' mean (fit − injected) per
    channel is the estimator's bias where the truth is known (a misplaced model, the part of the
    companion the basis still absorbs); it is subtracted from the contrast, and the error is then
    the trials' scatter about their mean, inflated by ``sqrt(1 + 1/n_trials)`` for the mean's own
    uncertainty. ``fit_position``: the position is fitted with the fluxes
    (:func:`fit_spectrum_and_position`), for the companion and for every trial (started at the
    trial's offset position); ``separation_px``/``pa_deg`` are then the fitted ones."""
    cube = np.asarray(cube, dtype=np.float32)
    wl = np.asarray(wavelengths_um, dtype=np.float64)
    star = np.asarray(star_fluxes, dtype=np.float64)
    psfs = np.asarray(psfs, dtype=np.float64)
    if cube.ndim != 4 or psfs.shape[0] != wl.size or star.size != wl.size:
        raise ValueError(
            f"need a (wavelengths, frames, y, x) cube with one PSF, star flux and wavelength per channel; "
            f"got cube {cube.shape}, PSF {psfs.shape}, {star.size} fluxes, {wl.size} wavelengths"
        )
    fwhm = np.broadcast_to(np.asarray(fwhm, dtype=np.float64), wl.shape).copy()

    def problem_at(data: np.ndarray, px: float, py: float) -> AsdiNegfcProblem:
        return AsdiNegfcProblem(
            data,
            angles,
            wl,
            psfs,
            fwhm,
            x=px,
            y=py,
            ncomp=ncomp,
            mask_center_px=mask_center_px,
            collapse=collapse,
            aperture_radius=aperture_radius,
        )

    def fit(problem: AsdiNegfcProblem) -> tuple[np.ndarray, int]:
        if fit_position:
            return fit_spectrum_and_position(problem, star, tol=tol)
        return fit_spectrum(problem, star, tol=tol)

    with blas_threads(cube.size):
        problem = problem_at(cube, x, y)
        flux, steps = fit(problem)
        evaluations = problem.n_evaluations
        sep, pa = problem.separation, problem.pa
        errors = np.empty((0, wl.size))
        pas = np.empty(0)
        if n_trials > 0:
            pas = trial_position_angles(sep, pa, float(fwhm.max()), n_trials)
            empty = inject_companions(cube, angles, psfs, sep, pa, -flux[None, :])
            rows = []
            signs = ((1, 1), (-1, 1), (1, -1), (-1, -1))
            dr, dpa = (0.0, 0.0) if position_err is None else (float(v) for v in position_err)
            for j, trial_pa in enumerate(pas):
                trial_cube = inject_companions(empty, angles, psfs, sep, trial_pa, flux[None, :])
                sr, sp = signs[j % 4]
                tx, ty = geometry.polar_to_pixel(sep + sr * dr, trial_pa + sp * dpa, cube.shape)
                trial = problem_at(trial_cube, tx, ty)
                fit_flux, _ = fit(trial)
                evaluations += trial.n_evaluations
                rows.append((fit_flux - flux) / star)
            errors = np.array(rows)
    contrast = flux / star
    bias = np.zeros(wl.size)
    if not errors.size:
        err = np.full(wl.size, np.nan)
    elif bias_correction:
        bias = errors.mean(axis=0)
        contrast = contrast - bias
        n = errors.shape[0]
        err = np.sqrt(np.sum((errors - bias) ** 2, axis=0) / (n - 1) * (1.0 + 1.0 / n))
    else:
        err = np.sqrt(np.mean(errors**2, axis=0))
    return NegfcSpectrum(
        wavelengths_um=wl,
        contrast=contrast,
        contrast_err=err,
        flux=flux,
        separation_px=sep,
        pa_deg=pa,
        trial_pas_deg=pas,
        trial_errors=errors,
        n_evaluations=evaluations,
        steps=steps,
        bias=bias,
    )
