"""Contrast curves (detection limits) that mean what they say, and the throughput behind them.

At separation ``r`` px the final image's noise is measured in the ``n = floor(2 pi r / fwhm)``
non-overlapping 1-FWHM apertures around the circle (standard deviation ``noise``, mean ``mu``),
smoothed with a Savitzky-Golay filter (window ~2 FWHM) as VIP's ``contrast_curve`` does. The
limit in aperture flux, divided by the algorithm throughput (fake companions, :mod:`throughput`)
and the star's aperture flux, is the contrast. Two criteria (``criterion``):

* ``'detection'`` (default): the flux of a companion whose expected S/N equals the threshold of
  hcdc's own detection (:func:`hcdc.science.postprocessing.detection.detect_candidates`) at
  the false-positive fraction ``fpf`` (default the Gaussian tail of ``sigma``: 2.87e-7 for 5).
  The noise is the Mawet et al. (2014) S/N denominator ``std(ddof=1) * sqrt(1 + 1/(n-1))`` of
  the fake-free image's apertures (``= noise * n / (n - 1)``), the threshold the Student
  ``t.isf(fpf, n - 2)`` of :func:`~hcdc.science.postprocessing.detection.student_threshold`
  (Gaussian ``norm.isf(fpf)`` with ``student=False``); ``mu`` is not added because the S/N
  subtracts the background mean.
* ``'vip'``: VIP 2.1.1's formula ``t_{n-1}^{-1}(1 - p) * sqrt(1 + 1/n) * noise + mu`` with
  ``p = 1 - Phi(sigma)`` (:func:`student_factor`), to compare number for number.

The throughput depends on the fakes' brightness (PCA-like algorithms absorb bright sources more),
so by default (``fc_snr=None``) it is measured with fakes **at the limit being reported**,
iterated to a fixed point (:func:`limit_throughput`): a companion injected at the reported
contrast then comes out of the reduction with the threshold S/N on average, and hcdc's detection
finds it about half the time, which is what "5 sigma" means with a threshold at 5 sigma (measured
on the real NACO beta Pic cube and on simulations: docs/postprocessing.md). ``fc_snr=x`` injects
fakes at ``x`` times the aperture noise instead (VIP: 100, whose throughput is that of much
brighter sources). For survey statistics, :mod:`~hcdc.science.postprocessing.completeness` gives
the contrast at which a chosen fraction of fakes is recovered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal, stats

from hcdc.science.postprocessing.detection import ThresholdProfile, student_threshold
from hcdc.science.postprocessing.fakes import InjectedCube
from hcdc.science.postprocessing.throughput import (
    ThroughputCurve,
    default_separations,
    noise_per_annulus,
    run_algorithm,
    throughput_curve,
)

__all__ = [
    "CRITERIA",
    "ContrastCurve",
    "contrast_curve",
    "curve_fpf",
    "image_contrast_curve",
    "detection_throughput",
    "FakeMeasure",
    "fixed_point_throughput",
    "limit_flux_profile",
    "noise_profile",
    "group_fakes",
    "limit_throughput",
    "MAX_FLUX_RATIO",
    "MIN_THROUGHPUT",
    "SATURATION_CLEAR",
    "SATURATION_GAIN",
    "smooth_profile",
    "smoothing_window",
    "student_factor",
]


#: Contrast criteria: hcdc's detection threshold (default) or VIP 2.1.1's formula.
CRITERIA = ("detection", "vip")


def _shape(cube: np.ndarray | InjectedCube) -> tuple[int, ...]:
    """The cube's shape without reading it (an :class:`InjectedCube` is not made into an array)."""
    return tuple(cube.shape) if isinstance(cube, np.ndarray | InjectedCube) else np.shape(cube)


def curve_fpf(sigma: float = 5.0, fpf: float | None = None) -> float:
    """False-positive fraction of a curve: ``fpf`` when given, else the Gaussian tail beyond ``sigma``."""
    value = float(stats.norm.sf(sigma)) if fpf is None else float(fpf)
    if not 0 < value < 0.5:
        raise ValueError(f"the false-positive fraction must be in (0, 0.5); got {value}")
    return value


def student_factor(separation: np.ndarray | float, fwhm: float, sigma: float = 5.0) -> np.ndarray:
    """Multiplier of the aperture noise giving the same false-alarm probability as a Gaussian ``sigma``."""
    n = np.floor(2.0 * np.pi * np.asarray(separation, dtype=np.float64) / fwhm)
    n = np.maximum(n, 2.0)
    return stats.t.ppf(stats.norm.cdf(sigma), n - 1.0) * np.sqrt(1.0 + 1.0 / n)


@dataclass(frozen=True)
class ContrastCurve:
    """A detection-limit curve. Contrasts are ratios of aperture fluxes (companion / star)."""

    separation: np.ndarray  # px
    contrast: np.ndarray  # limit contrast, Student-corrected (or Gaussian if student=False)
    contrast_gaussian: np.ndarray  # the same with the Gaussian threshold (no small-sample correction)
    throughput: np.ndarray  # algorithm throughput at each separation (interpolated)
    noise: np.ndarray  # aperture-flux standard deviation (smoothed), image units
    residual_level: np.ndarray  # mean aperture flux (smoothed)
    sigma: float
    fwhm: float
    star_flux: float
    throughput_curve: ThroughputCurve
    criterion: str = "detection"  # see CRITERIA
    fpf: float = float(stats.norm.sf(5.0))  # false-positive fraction of the detection criterion
    #: S/N threshold at each separation when it came from a threshold profile (e.g. calibrated on
    #: a null map: :mod:`~hcdc.science.postprocessing.null_threshold`); None: Student/Gaussian
    threshold: np.ndarray | None = None

    def at(self, separation: np.ndarray | float) -> np.ndarray:
        """Contrast interpolated (log-linearly) at ``separation`` px; NaN outside the curve."""
        finite = np.isfinite(self.contrast) & (self.contrast > 0)
        return np.exp(
            np.interp(
                separation, self.separation[finite], np.log(self.contrast[finite]), left=np.nan, right=np.nan
            )
        )

    def magnitudes(self) -> np.ndarray:
        """Contrast in magnitudes (-2.5 log10 contrast)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return -2.5 * np.log10(self.contrast)


def smoothing_window(n_samples: int, fwhm: float) -> int:
    """Odd Savitzky-Golay window of ~2 FWHM samples (at most ``n_samples - 1``) used for curves."""
    window = min(n_samples - 2, int(2 * fwhm))
    return window + 1 - window % 2


def smooth_profile(values: np.ndarray, window: int) -> np.ndarray:
    """Savitzky-Golay smoothing (quadratic, ``window`` samples); unchanged when too short to smooth."""
    if window < 3 or values.size <= window:
        return values
    return signal.savgol_filter(values, window_length=window, polyorder=2, mode="nearest")


def _check_criterion(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ValueError(f"unknown contrast criterion {criterion!r}; choose one of {CRITERIA}")


def noise_profile(
    image: np.ndarray, separations: np.ndarray, *, fwhm: float, smooth: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aperture statistics of a fake-free final ``image`` at ``separations`` px (evenly spaced).

    Returns ``(noise, mean, mawet)``: the standard deviation (ddof=0) and mean of the ``n`` 1-FWHM
    aperture fluxes around each circle (:func:`~hcdc.science.postprocessing.throughput.noise_per_annulus`),
    smoothed over ~2 FWHM of samples when ``smooth``, and the Mawet S/N denominator of the same
    apertures, ``std(ddof=1) * sqrt(1 + 1/(n-1)) = noise * n / (n - 1)``.
    """
    separations = np.asarray(separations, dtype=np.float64)
    noise, mean = noise_per_annulus(image, fwhm, separations)
    window = smoothing_window(separations.size, fwhm) if smooth else 0
    noise, mean = smooth_profile(noise, window), smooth_profile(mean, window)
    n = np.maximum(np.floor(2.0 * np.pi * separations / fwhm), 2.0)
    return noise, mean, noise * n / (n - 1.0)


def _thresholds(
    separations: np.ndarray,
    fwhm: float,
    sigma: float,
    fpf: float | None,
    student: bool,
    criterion: str,
    profile: ThresholdProfile | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """S/N thresholds ``(student or gaussian, gaussian)`` of ``criterion`` at ``separations``;
    with a ``profile`` (detection criterion only) the first is ``profile.at(separations)``."""
    if profile is not None:
        if criterion != "detection":
            raise ValueError("a threshold profile is a detection criterion: criterion must be 'detection'")
        p = curve_fpf(sigma, fpf)
        return np.asarray(profile.at(separations), dtype=np.float64), np.full(
            separations.shape, stats.norm.isf(p)
        )
    if criterion == "detection":
        p = curve_fpf(sigma, fpf)
        gaussian = np.full(separations.shape, stats.norm.isf(p))
        return (student_threshold(separations, fwhm, p) if student else gaussian), gaussian
    gaussian = np.full(separations.shape, float(sigma))
    return (student_factor(separations, fwhm, sigma) if student else gaussian), gaussian


def limit_flux_profile(
    image: np.ndarray,
    separations: np.ndarray,
    *,
    fwhm: float,
    sigma: float = 5.0,
    fpf: float | None = None,
    student: bool = True,
    criterion: str = "detection",
    smooth: bool = True,
    profile: ThresholdProfile | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Limit in recovered aperture flux (before throughput) of a fake-free final ``image``.

    At each of ``separations`` (px, evenly spaced): the flux a companion must keep after the
    reduction to sit at the threshold of ``criterion`` (module docstring), from the statistics of
    :func:`noise_profile`. Returns ``(limit, limit_gaussian, noise, mean)`` in image units x
    pixels: the Student (or, with ``student=False``, Gaussian) limit, the Gaussian one, and the
    smoothed standard deviation and mean of the apertures. ``profile``: the detection's S/N
    threshold per separation instead of the Student one (:func:`_thresholds`).
    """
    _check_criterion(criterion)
    separations = np.asarray(separations, dtype=np.float64)
    noise, mean, mawet = noise_profile(image, separations, fwhm=fwhm, smooth=smooth)
    threshold, gaussian = _thresholds(separations, fwhm, sigma, fpf, student, criterion, profile)
    if criterion == "detection":
        return threshold * mawet, gaussian * mawet, noise, mean
    return threshold * noise + mean, gaussian * noise + mean, noise, mean


def detection_throughput(
    throughput: ThroughputCurve, image: np.ndarray, fwhm: float, *, step: float = 1.0, smooth: bool = True
) -> np.ndarray:
    """What hcdc's detection sees of a fake, as a throughput, at ``throughput.separations``.

    ``T_det = <S/N per injected flux> x noise``: the branch mean of the fakes' measured S/N
    (``throughput.snr_per_flux``) times the Mawet noise of the fake-free ``image``
    (:func:`noise_profile`, sampled every ``step`` px) at the same separation, so that a companion
    of flux ``f`` has an expected S/N of ``f * T_det / noise``. It is lower than the photometric
    throughput where a companion's own ADI lobes raise the noise of its ring. The photometric
    throughput when the fakes' S/N was not measured.
    """
    if throughput.snr_per_flux is None:
        return throughput.throughput
    grid = default_separations(image.shape, fwhm, step)
    mawet = noise_profile(image, grid, fwhm=fwhm, smooth=smooth)[2]
    per_flux = np.maximum(throughput.snr_per_flux.mean(axis=0), 0.0)
    return per_flux * np.interp(throughput.separations, grid, mawet)


def image_contrast_curve(
    image: np.ndarray,
    throughput: ThroughputCurve,
    *,
    fwhm: float,
    star_flux: float,
    sigma: float = 5.0,
    student: bool = True,
    step: float = 1.0,
    smooth: bool = True,
    criterion: str = "detection",
    fpf: float | None = None,
    profile: ThresholdProfile | None = None,
) -> ContrastCurve:
    """Contrast curve of a final ``image`` whose algorithm ``throughput`` is known.

    Every ``step`` px from 1 FWHM to the edge: the limit flux of :func:`limit_flux_profile`
    (``criterion``, ``sigma``/``fpf``, ``student``, ``smooth``) divided by the throughput
    (interpolated linearly) and ``star_flux``; NaN where the throughput is not positive.
    ``profile``: the detection's S/N threshold per separation instead of the Student one (then
    recorded in the curve's ``threshold``).
    :func:`contrast_curve` measures the throughput and calls this.
    """
    separations = default_separations(image.shape, fwhm, step)
    limit, gaussian, noise_s, mean_s = limit_flux_profile(
        image,
        separations,
        fwhm=fwhm,
        sigma=sigma,
        fpf=fpf,
        student=student,
        criterion=criterion,
        smooth=smooth,
        profile=profile,
    )
    tp = throughput.at(separations)
    # The detection criterion divides by what the detection sees of a companion (its Mawet signal
    # over the noise of its ring, which its own ADI lobes raise), VIP's by the photometric throughput.
    seen = tp
    if criterion == "detection":
        sampled = detection_throughput(throughput, image, fwhm, step=step, smooth=smooth)
        known = sampled > 0
        samples = throughput.separations
        # Interpolated between the samples where a companion reaches the threshold; NaN (0 here)
        # nearer to a sample where none does, not an interpolation towards zero.
        seen = np.interp(separations, samples[known], sampled[known]) if known.any() else np.zeros(tp.shape)
        nearest = np.argmin(np.abs(separations[:, None] - samples[None, :]), axis=1)
        seen = np.where(known[nearest], seen, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = seen > 0
        contrast = np.where(good, limit / seen / star_flux, np.nan)
        contrast_g = np.where(good, gaussian / seen / star_flux, np.nan)
    return ContrastCurve(
        separation=separations,
        contrast=contrast,
        contrast_gaussian=contrast_g,
        throughput=tp,
        noise=noise_s,
        residual_level=mean_s,
        sigma=float(sigma),
        fwhm=float(fwhm),
        star_flux=float(star_flux),
        throughput_curve=throughput,
        criterion=criterion,
        fpf=curve_fpf(sigma, fpf) if criterion == "detection" else float(stats.norm.sf(sigma)),
        threshold=None if profile is None else np.asarray(profile.at(separations), dtype=np.float64),
    )


#: Below this (photometric) throughput a fake is taken as destroyed: its flux is no longer raised.
MIN_THROUGHPUT = 0.02
#: Below this gain in S/N for twice the flux, a separation is saturated (see limit_throughput).
SATURATION_GAIN = 1.1
#: Probing for saturation stops at the first separation whose S/N gains this much for twice the flux.
SATURATION_CLEAR = 1.3
#: Fakes sharing one run of the algorithm differ in flux by at most this factor (see limit_throughput).
MAX_FLUX_RATIO = 4.0


def group_fakes(fluxes: np.ndarray, spacing: int) -> list[np.ndarray]:
    """Groups of indices of fakes (ordered by separation) that can share a run of the algorithm:
    ``spacing`` samples apart at least, fluxes within :data:`MAX_FLUX_RATIO` of one another (first
    fit, brightest first)."""
    runs: list[list[int]] = []
    for i in np.argsort(-fluxes, kind="stable"):
        for run in runs:
            if min(abs(i - k) for k in run) >= spacing and fluxes[run[0]] <= MAX_FLUX_RATIO * fluxes[i]:
                run.append(int(i))
                break
        else:
            runs.append([int(i)])
    return [np.sort(np.array(run)) for run in runs]


def limit_throughput(
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    algorithm: str = "pca",
    params: dict | None = None,
    separations: np.ndarray | None = None,
    sigma: float = 5.0,
    fpf: float | None = None,
    student: bool = True,
    criterion: str = "detection",
    step: float = 1.0,
    smooth: bool = True,
    nbranch: int = 12,
    pa: float = 270.0,
    fc_rad_sep: int = 3,
    max_iter: int = 4,
    rtol: float = 0.05,
    cache: bool = True,
    threads: int | None = None,
    profile: ThresholdProfile | None = None,
) -> ThroughputCurve:
    """Throughput of fakes injected at the detection limit they define (a fixed point).

    With ``criterion='detection'`` the limit at separation ``r`` is the injected flux ``f`` whose
    fakes have, on average over ``nbranch`` branches from ``pa``, the detection threshold as
    their S/N (``snr_per_flux`` of :func:`~hcdc.science.postprocessing.throughput.throughput_curve`):
    ``f * s(f) = threshold``. With ``'vip'`` it is the flux whose recovered aperture flux is the
    limit of :func:`limit_flux_profile`: ``f * T(f) = L``. A first photometric throughput (one
    branch, fakes at ``L``) gives the first guess ``f = L / T``; then ``f <- wanted / (value per
    flux at f)`` is repeated until every separation changes by less than ``rtol`` (at most
    ``max_iter`` measurements; a flux is raised at most tenfold per step). Where the photometric
    throughput is below :data:`MIN_THROUGHPUT`, or a brighter fake no longer gains S/N (the
    algorithm absorbs it), or (detection criterion) fakes of twice the limit flux gain less than
    :data:`SATURATION_GAIN` in S/N (their own ADI lobes fill the few apertures of their ring;
    probed from the star outwards until a separation gains :data:`SATURATION_CLEAR`), no
    companion reliably reaches the threshold (e.g. within ~2 FWHM of the star with
    full-frame PCA): the separation is given up, its ``snr_per_flux`` set to 0 and the contrast
    curve is NaN there. Returns the last measurement of every separation; its
    ``fake_fluxes`` are the fluxes injected.

    Fakes share a run of the algorithm only when ``fc_rad_sep`` samples apart and within
    :data:`MAX_FLUX_RATIO` in flux: the limit flux falls steeply with separation, and in
    full-frame PCA one bright inner fake lowers the throughput of the fainter ones in its run
    (measured on NACO: a 2-FWHM fake at its limit lowers the throughput at 5 FWHM by ~30 %).
    The branches of each measurement run on up to ``threads`` threads
    (:func:`~hcdc.science.postprocessing.throughput.throughput_curve`; same result as serially).
    ``profile``: the detection's S/N threshold per separation instead of the Student one.
    """
    params = dict(params or {})
    shape = _shape(cube)
    image = run_algorithm(algorithm, cube, angles, fwhm=fwhm, cache=cache, **params)
    seps = np.asarray(
        default_separations(shape, fwhm, fwhm) if separations is None else separations, dtype=np.float64
    )
    reduction = {"fwhm": fwhm, "algorithm": algorithm, "params": params, "cache": cache, "threads": threads}

    def measure(
        separations: np.ndarray, fluxes: np.ndarray, nbranch: int, fc_rad_sep: int, detection: bool
    ) -> list[ThroughputCurve]:
        return [
            throughput_curve(
                cube,
                angles,
                psf,
                **reduction,
                separations=separations,
                nbranch=nbranch,
                pa=pa,
                fc_rad_sep=fc_rad_sep,
                fake_flux=fluxes,
                detection=detection,
                fpf=curve_fpf(sigma, fpf),
            )
        ]

    return fixed_point_throughput(
        measure,
        image,
        fwhm=fwhm,
        separations=seps,
        sigma=sigma,
        fpf=fpf,
        student=student,
        criterion=criterion,
        step=step,
        smooth=smooth,
        nbranch=nbranch,
        pa=pa,
        fc_rad_sep=fc_rad_sep,
        max_iter=max_iter,
        rtol=rtol,
        profile=profile,
    )[0]


#: measure(separations, fake fluxes, nbranch, fc_rad_sep, detection) -> throughput curves of the
#: fakes, one per output image of the reduction; the first is the image the limit is defined on.
FakeMeasure = Callable[[np.ndarray, np.ndarray, int, int, bool], list[ThroughputCurve]]


def fixed_point_throughput(
    measure: FakeMeasure,
    image: np.ndarray,
    *,
    fwhm: float,
    separations: np.ndarray,
    sigma: float = 5.0,
    fpf: float | None = None,
    student: bool = True,
    criterion: str = "detection",
    step: float = 1.0,
    smooth: bool = True,
    nbranch: int = 12,
    pa: float = 270.0,
    fc_rad_sep: int = 3,
    max_iter: int = 4,
    rtol: float = 0.05,
    profile: ThresholdProfile | None = None,
) -> list[ThroughputCurve]:
    """The fixed point of :func:`limit_throughput` for any reduction, given as ``measure``.

    ``image`` is the fake-free output the limit is defined on (the first curve ``measure``
    returns); ``measure`` injects fakes of the given fluxes at ``separations`` on ``nbranch``
    branches from ``pa`` (fakes ``fc_rad_sep`` samples apart in one run), reduces the cube the way
    ``image`` was made and returns one :class:`ThroughputCurve` per output image (with
    ``snr_per_flux`` when ``detection``). The fixed point, the given-up separations and the
    saturation probe are decided on the first output; the other outputs (e.g. the per-wavelength
    images of a spectral algorithm, :mod:`~hcdc.science.postprocessing.spectral_throughput`)
    keep the measurements of the same fakes, and are zeroed where the first is given up.
    Returns one curve per output. ``profile``: the detection's S/N threshold per separation
    instead of the Student one (:func:`_thresholds`).
    """
    seps = np.asarray(separations, dtype=np.float64)
    grid = default_separations(image.shape, fwhm, step)
    limit, *_ = limit_flux_profile(
        image,
        grid,
        fwhm=fwhm,
        sigma=sigma,
        fpf=fpf,
        student=student,
        criterion=criterion,
        smooth=smooth,
        profile=profile,
    )
    noise_floor = noise_per_annulus(image, fwhm, seps)[0]
    # VIP's criterion adds the (often negative) residual mean: keep the target at least 1 noise.
    target = np.maximum(np.interp(seps, grid, limit), noise_floor)
    detection = criterion == "detection"
    # The detection criterion aims at the threshold S/N itself (measured on each fake); VIP's at the
    # recovered aperture flux ``target``. Both as "wanted value / (value per injected flux)".
    wanted = _thresholds(seps, fwhm, sigma, fpf, student, criterion, profile)[0] if detection else target
    first = measure(seps, target, 1, fc_rad_sep, False)
    flux = target / np.maximum(first[0].throughput, MIN_THROUGHPUT)
    outputs = len(first)
    branches = np.zeros((outputs, nbranch, seps.size))
    per_flux = np.zeros((outputs, nbranch, seps.size))
    reached = np.zeros(seps.size)  # value (S/N or recovered flux) at the last flux
    reached_flux = np.zeros(seps.size)  # ... and that flux

    def measure_runs(idx: np.ndarray, fluxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Photometric throughput and value per flux (outputs, nbranch, n) of fakes ``fluxes`` at
        ``seps[idx]``, in runs of fakes that can share a reduction (:func:`group_fakes`)."""
        photometric = np.zeros((outputs, nbranch, idx.size))
        values = np.zeros((outputs, nbranch, idx.size))
        for run in group_fakes(fluxes, fc_rad_sep):
            for o, tp in enumerate(measure(seps[idx[run]], fluxes[run], nbranch, 1, detection)):
                photometric[o][:, run] = tp.branches
                if tp.snr_per_flux is not None or not detection:
                    values[o][:, run] = tp.snr_per_flux if detection else tp.branches
        return photometric, values

    active = np.ones(seps.size, dtype=bool)
    for iteration in range(max(1, max_iter)):
        idx = np.flatnonzero(active)
        branches[:, :, idx], per_flux[:, :, idx] = measure_runs(idx, flux[idx])
        measured = per_flux[0][:, idx].mean(axis=0)
        value = measured * flux[idx]
        # Given up: destroyed, or brighter without gaining (the algorithm absorbs the excess). Only
        # a *brighter* fake: after an overshoot the flux comes down, and its value with it.
        lost = (branches[0][:, idx].mean(axis=0) < MIN_THROUGHPUT) | (measured <= 0)
        brighter = (reached[idx] > 0) & (flux[idx] > reached_flux[idx])
        lost |= brighter & (value <= reached[idx]) & (value < wanted[idx] * (1.0 - rtol))
        reached[idx], reached_flux[idx] = value, flux[idx]
        new = np.minimum(wanted[idx] / np.where(lost, 1.0, measured), 10.0 * flux[idx])
        moving = ~lost & (np.abs(new / flux[idx] - 1.0) > rtol)
        per_flux[:, :, idx[lost]] = 0.0
        active[idx[~moving]] = False
        if not moving.any() or iteration == max(1, max_iter) - 1:
            break  # ``flux`` stays the flux of the last measurement
        flux[idx[moving]] = new[moving]
    if detection:
        # Saturation: close to the star a companion's own ADI lobes fill the few apertures of its
        # ring, and its S/N stops growing with its flux (simulation, 2 FWHM: 8-10 from 1e-3 to
        # 1.6e-2 contrast, below the threshold of 11); the fixed point there is a coincidence
        # of noise and the limit is not reachable. Twice the flux must gain SATURATION_GAIN.
        # The gain grows with separation (NACO and simulations: 0.6-0.7 at 2 FWHM, 1.25-1.4 at 3,
        # 1.5-1.9 beyond), so separations are probed from the star outwards, two at a time (fakes
        # 2 samples apart do not share a run), until one gains SATURATION_CLEAR.
        reachable = np.flatnonzero(per_flux[0].mean(axis=0) > 0)
        for start in range(0, reachable.size, 2):
            idx = reachable[start : start + 2]
            doubled = measure_runs(idx, 2.0 * flux[idx])[1][0].mean(axis=0) * 2.0 * flux[idx]
            gain = doubled / (per_flux[0][:, idx].mean(axis=0) * flux[idx])
            per_flux[:, :, idx[gain < SATURATION_GAIN]] = 0.0
            if np.any(gain >= SATURATION_CLEAR):
                break
    branch_pas = (pa + 360.0 * np.arange(nbranch) / nbranch) % 360.0
    return [
        ThroughputCurve(seps, branches[o], branch_pas, flux, per_flux[o] if detection else None)
        for o in range(outputs)
    ]


def contrast_curve(
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    star_flux: float,
    algorithm: str = "pca",
    params: dict | None = None,
    sigma: float = 5.0,
    fpf: float | None = None,
    criterion: str = "detection",
    student: bool = True,
    step: float = 1.0,
    nbranch: int | None = None,
    pa: float = 270.0,
    fc_snr: float | None = None,
    fc_rad_sep: int | None = None,
    throughput_step: float | None = None,
    smooth: bool = True,
    max_iter: int = 5,
    rtol: float = 0.05,
    cache: bool = True,
    threads: int | None = None,
    profile: ThresholdProfile | None = None,
) -> ContrastCurve:
    """Detection-limit contrast curve of ``algorithm`` on ``cube`` every ``step`` px from 1 FWHM to the edge.

    ``cube`` must be free of real companions (remove them first, e.g. with
    :func:`hcdc.science.postprocessing.negfc.negfc_fit` and a negative injection). ``psf``:
    odd square with unit flux in a 1-FWHM aperture; ``star_flux``: the star's flux in the same
    aperture and units as the cube. ``criterion``, ``sigma``, ``fpf`` and ``student``: the
    detection criterion (module docstring; by default hcdc's detection at the Gaussian 5-sigma
    false-positive fraction). Throughput sampled every ``throughput_step`` px (default 1 FWHM)
    along ``nbranch`` branches from ``pa``, interpolated linearly to the curve's separations; its
    fakes are at the reported limit (:func:`limit_throughput`: ``max_iter``, ``rtol``, default 12
    branches) unless ``fc_snr`` fixes them at ``fc_snr`` times the aperture
    noise (default 1 branch, fakes ``fc_rad_sep`` = 3 samples apart).
    ``criterion='vip', fc_snr=100, throughput_step=1.0`` with PCA ``scaling=None`` reproduces VIP
    2.1.1's ``contrast_curve`` (its fakes overlap). The fake-injection reductions run on up to
    ``threads`` threads (default :func:`hcdc.runtime.blas.task_threads`), with the same result.
    ``profile``: the detection's S/N threshold per separation (e.g. calibrated on the data's
    null map, :mod:`~hcdc.science.postprocessing.null_threshold`) instead of the Student one;
    the fakes then aim at that threshold and the curve records it (``threshold``).
    """
    if star_flux <= 0:
        raise ValueError(f"star_flux must be positive; got {star_flux}")
    _check_criterion(criterion)
    params = dict(params or {})
    image = run_algorithm(algorithm, cube, angles, fwhm=fwhm, cache=cache, **params)
    shape = _shape(cube)
    separations = default_separations(shape, fwhm, throughput_step or fwhm)
    common = {"fwhm": fwhm, "algorithm": algorithm, "params": params, "pa": pa, "threads": threads}
    if fc_snr is None:
        tp = limit_throughput(
            cube,
            angles,
            psf,
            **common,
            separations=separations,
            sigma=sigma,
            fpf=fpf,
            student=student,
            criterion=criterion,
            step=step,
            smooth=smooth,
            nbranch=nbranch or 12,
            fc_rad_sep=fc_rad_sep or 3,
            max_iter=max_iter,
            rtol=rtol,
            cache=cache,
            profile=profile,
        )
    else:
        tp = throughput_curve(
            cube,
            angles,
            psf,
            **common,
            nbranch=nbranch or 1,
            fc_snr=fc_snr,
            fc_rad_sep=fc_rad_sep or 3,
            cache=cache,
            separations=separations,
        )
    return image_contrast_curve(
        image,
        tp,
        fwhm=fwhm,
        star_flux=star_flux,
        sigma=sigma,
        student=student,
        step=step,
        smooth=smooth,
        criterion=criterion,
        fpf=fpf,
        profile=profile,
    )
