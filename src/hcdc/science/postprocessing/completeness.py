"""Completeness contrast curves: the contrast at which a chosen fraction of companions is detected.

A detection limit (:mod:`~hcdc.science.postprocessing.contrast`) is the contrast at which a
companion is detected about half the time. Survey statistics need the contrast at which nearly all
companions are detected at the same false-alarm rate (Jensen-Clem et al. 2018, AJ 155, 19: the
true-positive fraction at a fixed false-positive fraction). Here it is measured, not modelled:
fakes are injected at ``n_fakes`` position angles per separation, at a ladder of contrasts starting
from the detection limit, the cube is reduced, and each fake counts as recovered when hcdc's
detection (:func:`~hcdc.science.postprocessing.detection.detect_candidates`, Student threshold
of false-positive fraction ``fpf``, positions refined on the image, ADI side lobes dropped) reports
a candidate within ``match_radius`` of it. The completeness contrast is interpolated (in log
contrast) between the last level below and the first level at or above the wanted fraction.

The S/N map that the detection thresholds is computed only around the fakes (the Mawet S/N of
every pixel within the detection's search radius, :func:`~hcdc.science.postprocessing.throughput.ring_snr`),
the same values as the full map there at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcdc.runtime.blas import SMALL_PROBLEM, map_tasks
from hcdc.science import geometry
from hcdc.science.postprocessing.base import get_algorithm
from hcdc.science.postprocessing.contrast import ContrastCurve, contrast_curve, group_fakes
from hcdc.science.postprocessing.detection import (
    GAUSSIAN_5SIGMA_FPF,
    SEARCH_RADIUS_FWHM,
    ThresholdProfile,
    detect_candidates,
)
from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.snr import aperture_positions, snr_map_region
from hcdc.science.postprocessing.throughput import peak_pixels, ring_snr

__all__ = ["CompletenessCurve", "completeness_curve", "local_snr_map"]

_GOLDEN_ANGLE = 137.50776405  # deg: PAs of successive separations never line up


@dataclass(frozen=True)
class CompletenessCurve:
    """Contrast at which ``completeness`` of the injected fakes are recovered, per separation."""

    separation: np.ndarray  # (n,) px
    contrast: np.ndarray  # (n,) NaN where the ladder never reached the wanted fraction
    completeness: float  # wanted fraction (e.g. 0.95)
    fpf: float  # false-positive fraction of the detection
    levels: np.ndarray  # (n_levels, n) contrasts injected (NaN: level not needed there)
    recovered: np.ndarray  # (n_levels, n) fraction of the fakes recovered at each level
    n_fakes: int  # fakes per level and separation

    def at(self, separation: np.ndarray | float) -> np.ndarray:
        """Contrast interpolated (log-linearly) at ``separation`` px; NaN outside the curve."""
        finite = np.isfinite(self.contrast) & (self.contrast > 0)
        return np.exp(
            np.interp(
                separation, self.separation[finite], np.log(self.contrast[finite]), left=np.nan, right=np.nan
            )
        )


def local_snr_map(
    image: np.ndarray, xs: np.ndarray, ys: np.ndarray, fwhm: float, radius: float
) -> np.ndarray:
    """Mawet S/N of ``image`` within ``radius`` px of the points ``(xs, ys)`` (NaN elsewhere)."""
    out = np.full(image.shape, np.nan)
    for x, y in zip(np.atleast_1d(xs), np.atleast_1d(ys), strict=True):
        px, py = peak_pixels(float(x), float(y), fwhm, image.shape, radius)
        rings = [aperture_positions(a, b, fwhm, image.shape) for a, b in zip(px, py, strict=True)]
        out[py.astype(int), px.astype(int)] = ring_snr(image, image, rings, fwhm)
    return out


def _interpolate(levels: np.ndarray, fractions: np.ndarray, wanted: float) -> float:
    """Log contrast at which the (running-maximum) recovered fraction first reaches ``wanted``."""
    frac = np.maximum.accumulate(fractions)
    hit = np.flatnonzero(frac >= wanted)
    if hit.size == 0:
        return np.nan
    k = int(hit[0])
    if k == 0:
        return float(levels[0])  # reached at the first level: an upper bound
    f0, f1 = frac[k - 1], frac[k]
    t = (wanted - f0) / (f1 - f0)
    return float(np.exp(np.log(levels[k - 1]) + t * (np.log(levels[k]) - np.log(levels[k - 1]))))


def completeness_curve(
    cube: np.ndarray,
    angles: np.ndarray,
    psf: np.ndarray,
    *,
    fwhm: float,
    star_flux: float,
    algorithm: str = "pca",
    params: dict | None = None,
    completeness: float = 0.95,
    fpf: float = GAUSSIAN_5SIGMA_FPF,
    separations: np.ndarray | None = None,
    n_fakes: int = 20,
    start: ContrastCurve | None = None,
    ladder: float = 1.25,
    max_levels: int = 8,
    fc_rad_sep: int = 3,
    match_radius: float | None = None,
    pa: float = 0.0,
    threads: int | None = None,
    profile: ThresholdProfile | None = None,
) -> CompletenessCurve:
    """Contrast at which ``completeness`` of fakes are recovered by hcdc's detection (module docstring).

    ``cube`` must be free of real companions; ``psf`` has unit flux in a 1-FWHM aperture and
    ``star_flux`` is in the same aperture and units as the cube. ``separations`` (px): default
    every FWHM from 2 FWHM to where the S/N map ends. Level ``k`` injects fakes at ``start(r) *
    ladder**k`` (``start``: the detection-limit curve at ``fpf``, :func:`contrast_curve`, computed
    when not given), ``n_fakes`` per separation at position angles ``pa + 360 j / n_fakes`` (plus
    a golden-angle turn per separation), up to ``max_levels`` levels; separations drop out once
    they reach ``completeness``. Fakes share a run when ``fc_rad_sep`` samples apart and of similar
    flux (:func:`~hcdc.science.postprocessing.contrast.group_fakes`). ``match_radius``: default 1 FWHM.
    Cost: about ``n_fakes x levels x runs per level`` reductions, run on up to ``threads``
    threads (default :func:`hcdc.runtime.blas.task_threads`; cubes below
    :data:`~hcdc.runtime.blas.SMALL_PROBLEM` elements), with the same result as serially.
    ``profile``: the detection's S/N threshold per separation instead of the Student one of
    ``fpf`` (e.g. calibrated on a null map, :mod:`~hcdc.science.postprocessing.null_threshold`),
    for the detection that counts the fakes and for ``start`` when computed here.
    """
    if not 0 < completeness < 1:
        raise ValueError(f"completeness must be in (0, 1); got {completeness}")
    if n_fakes < 1 or max_levels < 1 or not ladder > 1:
        raise ValueError("need n_fakes >= 1, max_levels >= 1 and ladder > 1")
    params = dict(params or {})
    cube = np.asarray(cube, dtype=np.float32)
    angles = np.asarray(angles, dtype=np.float64)
    shape = cube.shape[-2:]
    if separations is None:
        r_max = snr_map_region(shape, fwhm)[1] - fwhm / 2.0
        separations = np.arange(2.0 * fwhm, r_max, fwhm)
    seps = np.asarray(separations, dtype=np.float64)
    if start is None:
        start = contrast_curve(
            cube,
            angles,
            psf,
            fwhm=fwhm,
            star_flux=star_flux,
            algorithm=algorithm,
            params=params,
            fpf=fpf,
            profile=profile,
        )
    base = np.asarray(start.at(seps), dtype=np.float64)
    spec = get_algorithm(algorithm)
    radius = SEARCH_RADIUS_FWHM * fwhm + 1.0
    match = fwhm if match_radius is None else float(match_radius)
    rotation = float(np.ptp(angles))
    levels = np.full((max_levels, seps.size), np.nan)
    recovered = np.full((max_levels, seps.size), np.nan)
    todo = np.isfinite(base)
    for level in range(max_levels):
        idx = np.flatnonzero(todo)
        if idx.size == 0:
            break
        contrast = base[idx] * ladder**level
        levels[level, idx] = contrast
        hits = np.zeros(idx.size)
        # Every (position-angle set, run) of the level is an independent reduction: on up to
        # ``threads`` threads (hcdc.runtime.blas.map_tasks), each counting its own hits.
        runs = [
            (
                run,
                seps[idx[run]],
                (pa + 360.0 * j / n_fakes + _GOLDEN_ANGLE * idx[run]) % 360.0,
                contrast[run],
            )
            for j in range(n_fakes)
            for run in group_fakes(contrast * star_flux, fc_rad_sep)
        ]

        def found_fakes(task: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
            _, run_seps, pas, run_contrast = task
            fake_cube = inject_companions(cube, angles, psf, run_seps, pas, run_contrast * star_flux)
            image = np.asarray(spec.function(fake_cube, angles, fwhm=fwhm, **params))
            xy = [geometry.polar_to_pixel(s, p, shape) for s, p in zip(run_seps, pas, strict=True)]
            xs, ys = np.array([q[0] for q in xy]), np.array([q[1] for q in xy])
            snr = local_snr_map(image, xs, ys, fwhm, radius)
            found = detect_candidates(snr, fwhm, fpf=fpf, image=image, rotation=rotation, profile=profile)
            return np.array([any(np.hypot(c.x - x, c.y - y) <= match for c in found) for x, y in xy])

        small = cube.size < SMALL_PROBLEM
        for (run, *_), hit in zip(runs, map_tasks(found_fakes, runs, threads if small else 1), strict=True):
            hits[run] += hit
        recovered[level, idx] = hits / n_fakes
        todo[idx[hits / n_fakes >= completeness]] = False
    result = np.array(
        [
            _interpolate(
                levels[np.isfinite(levels[:, i]), i], recovered[np.isfinite(levels[:, i]), i], completeness
            )
            if np.isfinite(base[i])
            else np.nan
            for i in range(seps.size)
        ]
    )
    return CompletenessCurve(seps, result, float(completeness), float(fpf), levels, recovered, int(n_fakes))
