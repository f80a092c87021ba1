"""Detection thresholds whose false-alarm rate is measured on the data: an empirical null S/N map.

Why: :func:`~hcdc.science.postprocessing.detection.student_threshold` assumes that the S/N of a
pixel (Mawet et al. 2014) follows a Student t law with ``n - 2`` degrees of freedom when there is
no source (independent Gaussian resolution elements). Speckle-dominated residuals have heavier
tails: on 80 speckle-only realisations of the demo's BB_H sequence, 5 images had a false detection
at the Student threshold of the Gaussian 5-sigma false-positive fraction (S/N 5.6-9.2), where the
Student law promises ~3e-4 per image counting resolution elements (hcdc's search of every S/N
pixel gives ~0.003 on Gaussian noise: :mod:`~hcdc.science.postprocessing.search_threshold`;
docs/postprocessing.md, "Empirical detection threshold").

Null sample (Pairet et al. 2019, the "inverse STIM map"): the same cube reduced with **inverted
derotation angles** (``-angles``). The residual frames of ADI algorithms whose reference selection
depends only on angle differences (PCA, annular PCA, LOCI, cADI) are identical; turning them the
other way smears a real companion over twice the field rotation (its flux no longer adds up on one
position) while the speckle residuals keep their statistics. Its S/N map
(:func:`~hcdc.science.postprocessing.snr.snr_map`) is a noise-only realisation of the data's S/N
map, at the cost of one more reduction.

Tail model. Each null pixel's S/N ``s`` at separation ``r`` px is turned into the Gaussian
deviate of its Student p-value, ``z = Phi^-1(1 - t_{n-2}(s))`` (``n``: the apertures on the
circle, as the S/N counts them), which is standard normal if the Student law holds. Speckle
residuals give ``z`` a heavier tail; measured on 25 speckle-only realisations of the demo's BB_H
sequence (annular PCA 3, both senses, ~600,000 pixels), ``P(z > x)`` is 1.9, 5.7 and 23 times the
Gaussian tail at 3, 4 and 5, close to a Student law of ~40 degrees of freedom, while the core
(``P(z > 1)``) is Gaussian. So the null ``z`` is modelled as ``t_nu``, ``nu`` fitted by maximum
likelihood on the valid null pixels (one pixel in ``(fwhm/2)^2``; ``nu`` kept within
:data:`NU_RANGE`): Gaussian noise gives ``nu`` at or near the upper bound, one speckle map of the
demo 22-1000 (median ~50).

The threshold of false-positive fraction ``fpf`` **per resolution element** (the meaning of the
Student ``fpf``: 2.87e-7 = Gaussian 5 sigma) at separation ``r`` is ``k * t.isf(fpf, n - 2)``
with ``k = t_nu^-1(1 - fpf) / Phi^-1(1 - fpf)`` (:attr:`EmpiricalThreshold.tail_factor`): the
Student threshold scaled by how much further out the null tail puts the same probability (exact
where ``n`` is large, where the Student and Gaussian laws coincide; near the star a multiplicative
extrapolation). ``k >= 1`` by construction: a null map never lowers the threshold below what
independent Gaussian elements allow. The expected false detections per image are
``sum_r n(r) * fpf`` over rings 1 FWHM apart (:func:`false_alarms_per_image`).

A scale per separation (the interquartile range of ``z`` in 2-FWHM bands, floored at 1) was
tried and left out: on the 80 speckle realisations it removed no further false detection, and on
Gaussian noise its sampling noise raised the threshold by up to 20 % near the star, where a band
holds few resolution elements.

Measured alternatives (docs/postprocessing.md, "Empirical detection threshold"): on the 160
speckle-only reductions of the benchmark (80 seeds, both senses, each with the other as null map)
the plug-in ``nu`` leaves 2 images with a false detection against 8 at the Student threshold; using
``nu`` only when :func:`tail_evidence` >= 1.64 (else Gaussian) leaves 5; a predictive threshold
(``nu`` averaged over its likelihood, flat in ``1/nu``) leaves none but raises the threshold by
1.19-1.39 on Gaussian noise and by 1.28-1.38 on the NACO beta Pic cube, whose null map is
Gaussian-like (plug-in: 1.007), losing beta Pic b in annular PCA 3 (S/N 8.0): a map of ~1000
resolution elements cannot exclude a Student tail of ~30 degrees of freedom. The plug-in is used.

Real companions: the inverted-angle reduction smears a companion along its circle but does not
remove its light, which would fatten the null tail at its separation; :func:`without_rings`
leaves out of the fit the rings of the candidates found at the Student threshold.

Several null maps (:func:`calibrate_threshold` given a stack): one tail fitted to all of them,
e.g. the null map and the data's own S/N map without the candidates' rings. Measured on 572
speckle reductions it lowers the false detections at fpf 1e-5 per element by ~18 % but not those
at 5 sigma; it is not used by a recipe (docs/postprocessing.md, "Towards a default").

What the model does not do: ``nu`` of one map is uncertain (a map of the demo holds ~1000
independent resolution elements: the fitted factor scatters 1.03-1.34 from one speckle
realisation to the next; on smoothed Gaussian noise half of the 61-101 px maps fit ``nu`` = 30-110
by chance, a threshold 5-20 % too high, the other half the Gaussian bound), and a tail heavier
than a Student law beyond ``P ~ 1e-5`` is not seen at all. The rates it gives are measured in
docs/postprocessing.md ("Empirical detection threshold").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from hcdc.science import geometry
from hcdc.science.postprocessing.detection import GAUSSIAN_5SIGMA_FPF, _dof, student_threshold

__all__ = [
    "EmpiricalThreshold",
    "calibrate_threshold",
    "false_alarms_per_image",
    "inverted_angles",
    "NU_RANGE",
    "tail_evidence",
    "without_rings",
    "gaussian_deviates",
    "fit_tail_dof",
]

#: Range of the fitted Student degrees of freedom of the null tail (upper bound: Gaussian).
NU_RANGE = (3.0, 1000.0)


def inverted_angles(angles: np.ndarray) -> np.ndarray:
    """Derotation angles (deg) of the null reduction: ``-angles`` (Pairet et al. 2019's inverse
    STIM map uses the opposite parallactic angles; the angle differences, and therefore the
    reference frames every ADI algorithm picks, are the same)."""
    return -np.asarray(angles, dtype=np.float64)


@dataclass(frozen=True)
class EmpiricalThreshold:
    """A detection threshold calibrated on a null S/N map (module docstring): ``nu``, the fitted
    Student degrees of freedom of the null deviates ``z``; ``fpf``, the false-positive fraction per
    resolution element; ``fwhm`` px; ``n_pixels``, the null pixels the fit used; ``evidence``, how
    strongly the null map prefers that tail to a Gaussian one (:func:`tail_evidence`: ~0 for
    Gaussian noise, below 0.7 in 9 of 10 smoothed Gaussian maps; demo speckle maps: median 2)."""

    nu: float
    fpf: float
    fwhm: float
    n_pixels: int
    evidence: float = float("nan")

    @property
    def tail_factor(self) -> float:
        """``k = t_nu^-1(1 - fpf) / Phi^-1(1 - fpf)`` (>= 1): how much the null tail moves the threshold."""
        return float(max(stats.t.isf(self.fpf, self.nu) / stats.norm.isf(self.fpf), 1.0))

    def at(self, separation: np.ndarray | float) -> np.ndarray:
        """S/N threshold at ``separation`` px: ``k * t.isf(fpf, n - 2)``."""
        return self.tail_factor * student_threshold(separation, self.fwhm, self.fpf)

    def fpf_of(self, snr: np.ndarray | float, separation: np.ndarray | float) -> np.ndarray:
        """False-positive fraction per resolution element of an S/N value at ``separation`` px
        under the calibrated null law, ``t.sf(snr / k, n - 2)`` (``fpf`` at the threshold)."""
        sep = np.asarray(separation, dtype=np.float64)
        return stats.t.sf(np.asarray(snr, dtype=np.float64) / self.tail_factor, _dof(sep, self.fwhm))


def gaussian_deviates(snr: np.ndarray, separation: np.ndarray, fwhm: float) -> np.ndarray:
    """``z = Phi^-1(1 - t_{n-2}(snr))``: the Gaussian deviate of each S/N value's Student p-value
    at its ``separation`` px (standard normal under the Student null law)."""
    return stats.norm.isf(stats.t.sf(np.asarray(snr, dtype=np.float64), _dof(np.asarray(separation), fwhm)))


def fit_tail_dof(z: np.ndarray) -> float:
    """Maximum-likelihood Student degrees of freedom of ``z`` (location 0, scale 1), within
    :data:`NU_RANGE` (the upper bound stands for Gaussian)."""
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z)]
    if z.size < 20:
        raise ValueError(f"{z.size} null values are too few to fit a tail")
    lo, hi = np.log(NU_RANGE[0]), np.log(NU_RANGE[1])
    fit = optimize.minimize_scalar(
        lambda lnu: -float(np.sum(stats.t.logpdf(z, np.exp(lnu)))), bounds=(lo, hi), method="bounded"
    )
    return float(np.exp(fit.x))


def tail_evidence(z: np.ndarray, nu: float, n_independent: float) -> float:
    """Evidence for a ``t_nu`` tail against a Gaussian one: twice the log-likelihood ratio of the
    values ``z``, scaled from ``z.size`` to ``n_independent`` independent values (neighbouring
    S/N pixels are nearly equal: the ratio over all pixels overstates the evidence)."""
    z = np.asarray(z, dtype=np.float64)
    ratio = float(np.sum(stats.t.logpdf(z, nu)) - np.sum(stats.norm.logpdf(z)))
    return 2.0 * ratio * n_independent / max(z.size, 1)


def without_rings(
    valid: np.ndarray, separations: np.ndarray | list[float], fwhm: float, half_width_fwhm: float = 1.0
) -> np.ndarray:
    """``valid`` (bool, star on ``(n//2, n//2)``) less the rings within ``half_width_fwhm`` FWHM of
    each of ``separations`` px: the null-map pixels that a real companion's smeared light can
    reach (its ADI lobes and the arc it is smeared over stay at its separation)."""
    out = np.array(valid, dtype=bool)
    r = geometry.distance_map(out.shape)
    for sep in np.asarray(separations, dtype=np.float64).ravel():
        out &= np.abs(r - sep) > half_width_fwhm * fwhm
    return out


def calibrate_threshold(
    null_snr: np.ndarray | Sequence[np.ndarray],
    fwhm: float,
    *,
    fpf: float = GAUSSIAN_5SIGMA_FPF,
    valid: np.ndarray | None = None,
) -> EmpiricalThreshold:
    """The detection threshold of false-positive fraction ``fpf`` per resolution element,
    calibrated on ``null_snr`` (the S/N map of a noise-only realisation of the data, e.g. the
    inverted-angle reduction's; NaN outside the S/N map's annulus; star on ``(n//2, n//2)``, ``fwhm``
    px). ``valid`` (bool, same shape): only these pixels are used (e.g.
    :func:`~hcdc.science.postprocessing.detection.valid_detection_area`). Module docstring for the
    model.

    ``null_snr`` may also be a stack (or sequence) of such maps (same shape, same ``valid``): one tail is
    fitted to the pooled values of all of them and the evidence counts the independent elements
    of all (several noise-only realisations of the same data tighten ``nu``: on smoothed Gaussian
    noise the 90th percentile of the factor of 61-px maps goes from 1.27 with one map to 1.18 with
    two, docs/postprocessing.md). One 2-D array gives exactly the one-map fit of
    ``l2-postprocess`` 1.5.
    """
    stack = np.asarray(null_snr, dtype=np.float64)
    if stack.ndim not in (2, 3) or stack.shape[0] == 0:
        raise ValueError(f"null S/N map must be 2-D (or a stack of 2-D maps); got shape {stack.shape}")
    maps = [stack] if stack.ndim == 2 else list(stack)
    if not 0 < fpf < 0.5:
        raise ValueError(f"fpf must be in (0, 0.5); got {fpf}")
    zs, independent = [], 0.0
    for m in maps:
        z, n_independent = _thinned_deviates(m, fwhm, valid)
        zs.append(z)
        independent += n_independent
    z = zs[0] if len(zs) == 1 else np.concatenate(zs)
    nu = fit_tail_dof(z)
    evidence = tail_evidence(z, nu, independent)
    return EmpiricalThreshold(nu, float(fpf), float(fwhm), int(z.size), evidence)


def _thinned_deviates(
    null_snr: np.ndarray, fwhm: float, valid: np.ndarray | None
) -> tuple[np.ndarray, float]:
    """The Gaussian deviates ``z`` of one null S/N map's valid pixels, one pixel in
    ``(fwhm/2)^2`` (neighbouring S/N pixels are nearly the same value), and the number of
    independent resolution elements of the map (one per 1-FWHM aperture area)."""
    use = np.isfinite(null_snr)
    if valid is not None:
        use &= np.asarray(valid, dtype=bool)
    if not use.any():
        raise ValueError("the null S/N map has no finite (valid) pixel")
    radii = geometry.distance_map(null_snr.shape)
    z = gaussian_deviates(null_snr[use], radii[use], fwhm)
    step = max(1, int(fwhm // 2))
    yy, xx = np.indices(null_snr.shape)
    thin = ((yy % step == 0) & (xx % step == 0))[use]
    return z[thin], use.sum() / (np.pi * fwhm**2 / 4.0)


def false_alarms_per_image(threshold: EmpiricalThreshold, r_min: float, r_max: float) -> float:
    """Expected false detections per image between ``r_min`` and ``r_max`` px at
    ``threshold.fpf`` per resolution element: ``sum n(r) * fpf`` over rings 1 FWHM apart (``n``:
    the resolution elements on the ring, as the S/N counts them). This counts elements, not the
    S/N peaks that detection finds by searching every pixel (4-10 times more on Gaussian noise:
    :func:`~hcdc.science.postprocessing.search_threshold.expected_false_peaks`)."""
    rings = np.arange(r_min, r_max, threshold.fwhm)
    n = _dof(rings, threshold.fwhm) + 2.0
    return float(np.sum(n) * threshold.fpf)
