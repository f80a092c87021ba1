"""Detection thresholds for a stated number of false peaks per image: the search over every pixel.

Why: :func:`~hcdc.science.postprocessing.detection.detect_candidates` compares the Mawet et al.
(2014) S/N at **every pixel** with the Student threshold of a false-positive fraction ``fpf`` and
reports the local maxima above it. ``fpf`` is the probability that one S/N value exceeds the
threshold, so "resolution elements x ``fpf``" (~1100 x 2.87e-7 = 3e-4 per 128-px image at
"5 sigma") would be the false detections per image if the map held that many independent values.
It does not: the S/N map is a smooth random field, and the number of its peaks above a high level
``u`` depends on how rough it is, not on a count of elements. On smoothed Gaussian noise hcdc's
detection finds 3.7-5 times "elements x ``fpf``" (benchmarks/RESULTS.md).

Model (random-field theory: Adler 1981, Worsley 1994). Under the noise-only hypothesis the S/N
map is a Student t field of ``nu = n - 2`` degrees of freedom (``n`` apertures on the circle):
``(f0 - mean f_i) / s`` over ``n`` aperture-flux fields that move together with the test
position. At a high threshold the number of its local maxima above ``u`` is close to the Euler
characteristic of the excursion set ``{S/N > u}`` (one blob, one peak, one detection after hcdc's
merging), whose expectation over a region of area ``A`` and boundary length ``L`` is::

    E[peaks] ~ A * rho_2(u) + L / 2 * rho_1(u)
    rho_2(u) = lambda / (2 pi)^(3/2) * c(nu) * u * (1 + u^2/nu)^(-(nu-1)/2)
    rho_1(u) = sqrt(lambda) / (2 pi) * (1 + u^2/nu)^(-(nu-1)/2)
    c(nu) = Gamma((nu+1)/2) / (sqrt(nu/2) Gamma(nu/2))      (-> 1 for a Gaussian field)

(the region's own Euler characteristic term, ``chi * P(T > u)``, is left out: the S/N map's
annulus has ``chi = 0``). ``lambda`` (px^-2) is the variance of the derivative of the unit-variance
aperture-flux fields along one axis, measured on the S/N map itself (:func:`snr_roughness`): for a
t field ``E[(dT/dx)^2] = lambda * nu (nu - 3) / ((nu - 2)(nu - 4))``. ``nu``, and so ``u`` for a
given ``fpf``, change with separation: the sums run over the pixels of the region grouped by
``nu`` (:class:`SearchRegion`), each pixel an area of 1 px^2 and each pixel side on the region's
edge ``pi/4`` px of boundary (a digitised curve's 4-connected edges overcount its length by
``4/pi`` on average).

Threshold (:func:`search_threshold`): the Student threshold of the per-pixel ``fpf`` at which the
expected false peaks of the whole region equal the stated number ``false_alarms`` (e.g. 0.01 per
image), found by root search; every separation keeps the same ``fpf`` (the Student threshold's
shape), the whole image the stated rate. The same threshold then defines the contrast curve
(:class:`SearchThreshold` is a :class:`~hcdc.science.postprocessing.detection.ThresholdProfile`).

Assumptions: the residuals are Gaussian (speckle-dominated residuals have heavier tails: the
null-map calibration of :mod:`~hcdc.science.postprocessing.null_threshold` is for that, and
composes with this one at the ``fpf`` found here), stationary in smoothness over the image (one
``lambda``), and the threshold high enough that excursion blobs are simple (the count of peaks
exceeds the Euler characteristic below ``u ~ 2.5``). Validated against hcdc's detection on
smoothed Gaussian noise in docs/postprocessing.md ("False peaks of the search over every pixel").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize, special, stats

from hcdc.science import geometry
from hcdc.science.postprocessing.detection import GAUSSIAN_5SIGMA_FPF, _dof, student_threshold

__all__ = [
    "SearchRegion",
    "SearchThreshold",
    "euler_densities",
    "expected_false_peaks",
    "search_region",
    "search_threshold",
    "snr_roughness",
    "ROUGHNESS_MIN_DOF",
]

#: Pixels whose S/N has fewer degrees of freedom than this are left out of the roughness estimate:
#: the derivative of a t field has infinite variance for ``nu <= 4`` and a large correction near it.
ROUGHNESS_MIN_DOF = 9.0
#: Around each S/N value above the Student 5-sigma threshold (a source, or its ADI lobes) this many
#: FWHM are left out of the roughness estimate: a bright companion's steep S/N bump would raise it.
ROUGHNESS_EXCLUSION_FWHM = 2.0
#: Bounds of the per-pixel false-positive fraction of :func:`search_threshold`.
FPF_RANGE = (1e-15, 0.2)


def euler_densities(
    u: np.ndarray | float, nu: np.ndarray | float, roughness: float
) -> tuple[np.ndarray, np.ndarray]:
    """Euler-characteristic densities ``(rho_1, rho_2)`` of a 2-D Student t field of ``nu`` degrees
    of freedom above ``u`` (Worsley 1994): ``rho_2`` per px^2 of area, ``rho_1`` per px of half
    the boundary; ``roughness``: ``lambda`` (px^-2) of its component Gaussian fields."""
    u = np.asarray(u, dtype=np.float64)
    nu = np.asarray(nu, dtype=np.float64)
    decay = np.exp(-(nu - 1.0) / 2.0 * np.log1p(u * u / nu))
    gamma_ratio = np.exp(special.gammaln((nu + 1.0) / 2.0) - special.gammaln(nu / 2.0)) / np.sqrt(nu / 2.0)
    rho1 = np.sqrt(roughness) / (2.0 * np.pi) * decay
    rho2 = roughness / (2.0 * np.pi) ** 1.5 * gamma_ratio * u * decay
    return rho1, rho2


@dataclass(frozen=True)
class SearchRegion:
    """The region searched for S/N peaks, grouped by the S/N's degrees of freedom: ``dof`` (the
    distinct ``n - 2``), ``area`` (px^2 of the region at each) and ``half_boundary`` (half the
    boundary length at each, px)."""

    dof: np.ndarray
    area: np.ndarray
    half_boundary: np.ndarray

    @property
    def n_pixels(self) -> int:
        return int(self.area.sum())


def search_region(region: np.ndarray, fwhm: float, within: np.ndarray | None = None) -> SearchRegion:
    """:class:`SearchRegion` of the boolean ``region`` (star on ``(n//2, n//2)``; e.g. the finite
    pixels of the S/N map within the detection's valid area), ``fwhm`` px. ``within`` (bool, same
    shape): only the part of ``region`` there (e.g. a range of separations), its boundary being
    ``region``'s own (a cut through the region is not a boundary of the search)."""
    region = np.asarray(region, dtype=bool)
    if region.ndim != 2 or not region.any():
        raise ValueError("the search region must be a 2-D mask with at least one pixel")
    padded = np.pad(region, 1, constant_values=False)
    outside_sides = sum(
        ~np.roll(padded, shift, axis)[1:-1, 1:-1] for shift in (1, -1) for axis in (0, 1)
    ).astype(np.float64)
    part = region if within is None else region & np.asarray(within, dtype=bool)
    dof = _dof(geometry.distance_map(region.shape)[part], fwhm)
    values, index = np.unique(dof, return_inverse=True)
    area = np.bincount(index, minlength=values.size).astype(np.float64)
    edge = np.bincount(index, weights=outside_sides[part] * (np.pi / 4.0), minlength=values.size)
    return SearchRegion(values, area, edge / 2.0)


def expected_false_peaks(region: SearchRegion, roughness: float, fpf: float) -> float:
    """Expected S/N peaks per image above the Student threshold of per-pixel false-positive
    fraction ``fpf`` in ``region`` for a noise-only t field of ``roughness`` (px^-2; module
    docstring)."""
    u = stats.t.isf(fpf, region.dof)
    rho1, rho2 = euler_densities(u, region.dof, roughness)
    return float(np.sum(region.area * rho2 + region.half_boundary * rho1))


def snr_roughness(snr: np.ndarray, fwhm: float, valid: np.ndarray | None = None) -> float:
    """``lambda`` (px^-2) of the S/N map's component fields (module docstring): the mean of
    ``((dS/dx)^2 + (dS/dy)^2) / 2`` (central differences) divided by the t field's factor
    ``nu (nu - 3) / ((nu - 2)(nu - 4))``, over the finite (and ``valid``) pixels with at least
    :data:`ROUGHNESS_MIN_DOF` degrees of freedom, away from bright sources
    (:data:`ROUGHNESS_EXCLUSION_FWHM` FWHM around S/N values beyond the 5-sigma Student threshold)."""
    snr = np.asarray(snr, dtype=np.float64)
    r = geometry.distance_map(snr.shape)
    gy, gx = np.gradient(snr)
    half_square = (gx * gx + gy * gy) / 2.0
    nu = _dof(r, fwhm)
    use = np.isfinite(half_square) & (nu >= ROUGHNESS_MIN_DOF)
    if valid is not None:
        use &= np.asarray(valid, dtype=bool)
    bright = np.abs(np.where(np.isfinite(snr), snr, 0.0)) > student_threshold(r, fwhm)
    if bright.any():
        radius = ROUGHNESS_EXCLUSION_FWHM * fwhm
        h = int(np.ceil(radius))
        yy, xx = np.mgrid[-h : h + 1, -h : h + 1]
        use &= ~ndimage.binary_dilation(bright, structure=np.hypot(yy, xx) <= radius)
    if use.sum() < 100:
        raise ValueError(f"{int(use.sum())} S/N pixels are too few to measure the map's roughness")
    factor = nu[use] * (nu[use] - 3.0) / ((nu[use] - 2.0) * (nu[use] - 4.0))
    return float(np.mean(half_square[use] / factor))


@dataclass(frozen=True)
class SearchThreshold:
    """A Student threshold whose per-pixel ``fpf`` gives ``false_alarms`` expected false S/N peaks
    per image (module docstring): ``fwhm`` px, ``roughness`` (``lambda``, px^-2, measured on the
    S/N map), ``student_false_alarms`` the expected false peaks per image at the Gaussian 5-sigma
    ``fpf`` (the Student threshold's default), ``n_pixels`` the searched region's pixels."""

    fpf: float
    fwhm: float
    roughness: float
    false_alarms: float
    student_false_alarms: float
    n_pixels: int

    def at(self, separation: np.ndarray | float) -> np.ndarray:
        """S/N threshold at ``separation`` px: ``t.isf(fpf, n - 2)``."""
        return student_threshold(separation, self.fwhm, self.fpf)

    def fpf_of(self, snr: np.ndarray | float, separation: np.ndarray | float) -> np.ndarray:
        """Per-pixel false-positive fraction of an S/N value at ``separation`` px (Student law)."""
        sep = np.asarray(separation, dtype=np.float64)
        return stats.t.sf(np.asarray(snr, dtype=np.float64), _dof(sep, self.fwhm))


def search_threshold(
    snr: np.ndarray, fwhm: float, false_alarms: float, *, valid: np.ndarray | None = None
) -> SearchThreshold:
    """The Student threshold at which ``false_alarms`` false S/N peaks per image are expected
    (e.g. 0.01) in the finite pixels of ``snr`` (and ``valid``), for its measured roughness
    (:func:`snr_roughness`). Module docstring for the model and its assumptions."""
    if not false_alarms > 0:
        raise ValueError(f"false alarms per image must be positive; got {false_alarms}")
    snr = np.asarray(snr, dtype=np.float64)
    region_mask = np.isfinite(snr)
    if valid is not None:
        region_mask &= np.asarray(valid, dtype=bool)
    region = search_region(region_mask, fwhm)
    roughness = snr_roughness(snr, fwhm, valid)

    def excess(log_fpf: float) -> float:
        return np.log(expected_false_peaks(region, roughness, float(np.exp(log_fpf)))) - np.log(false_alarms)

    lo, hi = np.log(FPF_RANGE[0]), np.log(FPF_RANGE[1])
    if excess(hi) < 0 or excess(lo) > 0:
        raise ValueError(
            f"{false_alarms} false alarms per image is out of reach of a per-pixel fpf in {FPF_RANGE}"
        )
    fpf = float(np.exp(optimize.brentq(excess, lo, hi, xtol=1e-10)))
    return SearchThreshold(
        fpf=fpf,
        fwhm=float(fwhm),
        roughness=roughness,
        false_alarms=expected_false_peaks(region, roughness, fpf),
        student_false_alarms=expected_false_peaks(region, roughness, GAUSSIAN_5SIGMA_FPF),
        n_pixels=region.n_pixels,
    )
