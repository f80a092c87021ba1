"""5-sigma contrast curves with the small-sample (Student) correction of Mawet et al. (2014).

At separation ``r`` px the final image's noise is the standard deviation of the fluxes in the
``n = floor(2 pi r / fwhm)`` non-overlapping 1-FWHM apertures around the circle, with mean
``mu``. The detection limit in aperture flux is ``tau * noise + mu`` where, for a Gaussian
``sigma`` (5) false-alarm probability ``p = 1 - Phi(sigma)``, the Student correction gives
``tau = t_{n-1}^{-1}(1 - p) * sqrt(1 + 1/n)``. Dividing by the algorithm throughput (fake
companions, :mod:`throughput`) and the star's aperture flux gives the contrast. Noise, mean and
residual level are smoothed with a Savitzky-Golay filter (window ~2 FWHM), as VIP's
``contrast_curve`` does, so the two can be compared number for number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal, stats

from hcdc.science.postprocessing.throughput import (
    ThroughputCurve,
    default_separations,
    noise_per_annulus,
    run_algorithm,
    throughput_curve,
)

__all__ = [
    "ContrastCurve",
    "contrast_curve",
    "image_contrast_curve",
    "smooth_profile",
    "smoothing_window",
    "student_factor",
]


def student_factor(separation: np.ndarray | float, fwhm: float, sigma: float = 5.0) -> np.ndarray:
    """Multiplier of the aperture noise giving the same false-alarm probability as a Gaussian ``sigma``."""
    n = np.floor(2.0 * np.pi * np.asarray(separation, dtype=np.float64) / fwhm)
    n = np.maximum(n, 2.0)
    return stats.t.ppf(stats.norm.cdf(sigma), n - 1.0) * np.sqrt(1.0 + 1.0 / n)


@dataclass(frozen=True)
class ContrastCurve:
    """A detection-limit curve. Contrasts are ratios of aperture fluxes (companion / star)."""

    separation: np.ndarray  # px
    contrast: np.ndarray  # sigma-level contrast, Student-corrected (or Gaussian if student=False)
    contrast_gaussian: np.ndarray  # the same without the small-sample correction
    throughput: np.ndarray  # algorithm throughput at each separation (interpolated)
    noise: np.ndarray  # aperture-flux standard deviation (smoothed), image units
    residual_level: np.ndarray  # mean aperture flux (smoothed)
    sigma: float
    fwhm: float
    star_flux: float
    throughput_curve: ThroughputCurve

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
) -> ContrastCurve:
    """``sigma`` contrast curve of a final ``image`` whose algorithm ``throughput`` is known.

    Every ``step`` px from 1 FWHM to the edge: aperture noise and mean of the image
    (:func:`~hcdc.science.postprocessing.throughput.noise_per_annulus`), smoothed over ~2 FWHM
    when ``smooth``, and the throughput interpolated linearly. The limit is
    ``(factor * noise + mean) / throughput / star_flux`` with ``factor`` the Student small-sample
    factor (:func:`student_factor`) or ``sigma`` (Gaussian); NaN where the throughput is not
    positive. :func:`contrast_curve` measures the throughput and calls this.
    """
    separations = default_separations(image.shape, fwhm, step)
    noise, mean = noise_per_annulus(image, fwhm, separations)
    window = smoothing_window(separations.size, fwhm) if smooth else 0
    noise_s, mean_s = smooth_profile(noise, window), smooth_profile(mean, window)
    tp = throughput.at(separations)
    factor = student_factor(separations, fwhm, sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        good = tp > 0
        contrast_t = np.where(good, (factor * noise_s + mean_s) / tp / star_flux, np.nan)
        contrast_g = np.where(good, (sigma * noise_s + mean_s) / tp / star_flux, np.nan)
    return ContrastCurve(
        separation=separations,
        contrast=contrast_t if student else contrast_g,
        contrast_gaussian=contrast_g,
        throughput=tp,
        noise=noise_s,
        residual_level=mean_s,
        sigma=float(sigma),
        fwhm=float(fwhm),
        star_flux=float(star_flux),
        throughput_curve=throughput,
    )


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
    student: bool = True,
    step: float = 1.0,
    nbranch: int = 1,
    pa: float = 270.0,
    fc_snr: float = 100.0,
    fc_rad_sep: int = 3,
    throughput_step: float | None = None,
    smooth: bool = True,
    cache: bool = True,
) -> ContrastCurve:
    """``sigma`` contrast curve of ``algorithm`` on ``cube`` every ``step`` px from 1 FWHM to the edge.

    ``cube`` must be free of real companions (remove them first, e.g. with
    :func:`hcdc.science.characterization.negfc.negfc_fit` and a negative injection). ``psf``:
    odd square with unit flux in a 1-FWHM aperture; ``star_flux``: the star's flux in the same
    aperture and units as the cube. Throughput from :func:`throughput_curve` (same ``nbranch``,
    ``pa``, ``fc_snr``, ``fc_rad_sep``) sampled every ``throughput_step`` px (default 1 FWHM;
    1.0 with ``fc_rad_sep=3`` reproduces VIP 2.1.1, whose fakes overlap), interpolated linearly to
    the curve's separations. Noise and mean are smoothed (Savitzky-Golay, ~2 FWHM window) as VIP.
    """
    if star_flux <= 0:
        raise ValueError(f"star_flux must be positive; got {star_flux}")
    params = dict(params or {})
    image = run_algorithm(algorithm, cube, angles, fwhm=fwhm, cache=cache, **params)
    shape = np.asarray(cube).shape
    tp = throughput_curve(
        cube,
        angles,
        psf,
        fwhm=fwhm,
        algorithm=algorithm,
        params=params,
        nbranch=nbranch,
        pa=pa,
        fc_snr=fc_snr,
        fc_rad_sep=fc_rad_sep,
        cache=cache,
        separations=default_separations(shape, fwhm, throughput_step or fwhm),
    )
    return image_contrast_curve(
        image, tp, fwhm=fwhm, star_flux=star_flux, sigma=sigma, student=student, step=step, smooth=smooth
    )
