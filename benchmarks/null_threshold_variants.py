"""Ways of calibrating the detection threshold on null maps, compared on the speckle benchmark.

The speckle-only realisations of the demo's BB_H sequence of benchmarks/speckle_false_alarms.py
(annular PCA 3, both senses; each sense's null map is the other sense's reduction: inverted
angles), their S/N maps cached in ``CACHE/SEED.npz`` (made on the first run, ~3-6 s a seed on the
2-core VM). For each of the ``2 x seeds`` reductions, the images with a false detection at:

* ``student``: the Student threshold (``l2-postprocess`` 1.4);
* ``v1.5``: the threshold calibrated on the null map (``l2-postprocess`` 1.5; its fit without the
  rings of the Student candidates);
* ``pooled``: one tail fitted to the null map and the data's own S/N map together (both without
  the candidates' rings: :func:`calibrate_threshold` given the two maps);
* ``zonal``: a tail inside ``--split`` FWHM and another outside it (null map only), each zone's
  factor for its separations;
* ``zonal-pooled``: the same with the null and data maps pooled in each zone.

Measured (seeds 1000-1202 and 1260-1343 = 572 reductions, 2026-12-07): images with a 5-sigma false
detection Student 32, 1.5 5, pooled 7, zonal 9, zonal-pooled 7; false detections at fpf 1e-5 per
element 250, 101, 83, 90, 75 (elements x fpf: 5.5; Gaussian noise, 180 images: Student 8 where
1.7 are "expected"). Details: docs/postprocessing.md ("Towards a default: what 1.6 would need")
and benchmarks/RESULTS.md::

    PYTHONPATH=src python benchmarks/null_threshold_variants.py FRAMES 1000 1400 --t0 232.8 \\
        --cache /tmp/speckle-maps
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy import ndimage, stats

from hcdc.science import geometry
from hcdc.science.postprocessing.detection import (
    GAUSSIAN_5SIGMA_FPF,
    _dof,
    detect_candidates,
    student_threshold,
)
from hcdc.science.postprocessing.null_threshold import (
    calibrate_threshold,
    false_alarms_per_image,
    without_rings,
)
from hcdc.science.postprocessing.pca import pca_annular
from hcdc.science.postprocessing.snr import snr_map

sys.path.insert(0, str(Path(__file__).parent))
from speckle_false_alarms import speckle_only_bbh  # noqa: E402 - the benchmarks' folder


class Zonal:
    """A threshold profile with one tail factor inside ``split`` px and another outside it."""

    def __init__(self, inner, outer, split: float, fwhm: float) -> None:
        self.split, self.fwhm, self.fpf = split, fwhm, inner.fpf
        self.fits = (inner, outer)
        self.factors = (inner.tail_factor, outer.tail_factor)

    def factor(self, r):
        return np.where(np.asarray(r, dtype=np.float64) < self.split, *self.factors)

    def at(self, r):
        return self.factor(r) * student_threshold(r, self.fwhm, self.fpf)

    def fpf_of(self, snr, r):
        r = np.asarray(r, dtype=np.float64)
        return stats.t.sf(np.asarray(snr, dtype=np.float64) / self.factor(r), _dof(r, self.fwhm))


def zonal(maps: list[np.ndarray], valid: np.ndarray, fwhm: float, split_fwhm: float, fpf: float) -> Zonal:
    """One tail inside ``split_fwhm`` FWHM, one outside (a zone with too few values: the whole map's)."""
    r = geometry.distance_map(valid.shape)
    fits_ = []
    for zone in (r < split_fwhm * fwhm, r >= split_fwhm * fwhm):
        try:
            fits_.append(calibrate_threshold(maps, fwhm, fpf=fpf, valid=valid & zone))
        except ValueError:
            fits_.append(calibrate_threshold(maps, fwhm, fpf=fpf, valid=valid))
    return Zonal(fits_[0], fits_[1], split_fwhm * fwhm, fwhm)


def variants(null: np.ndarray, data: np.ndarray, valid: np.ndarray, fwhm: float, split: float) -> dict:
    """The threshold profiles compared (module docstring), at the Gaussian 5-sigma ``fpf``."""
    fpf = GAUSSIAN_5SIGMA_FPF
    return {
        "v1.5": calibrate_threshold(null, fwhm, fpf=fpf, valid=valid),
        "pooled": calibrate_threshold([null, data], fwhm, fpf=fpf, valid=valid),
        "zonal": zonal([null], valid, fwhm, split, fpf),
        "zonal-pooled": zonal([null, data], valid, fwhm, split, fpf),
    }


def at_fpf(profile, fpf: float):
    """The same fitted tail(s) at another false-positive fraction per resolution element."""
    if isinstance(profile, Zonal):
        return Zonal(*(replace(p, fpf=fpf) for p in profile.fits), profile.split, profile.fwhm)
    return replace(profile, fpf=fpf)


def cached_maps(path: Path, seed: int, derot: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
    """Both senses' annular-PCA-3 image and S/N map of speckle seed ``seed`` (cached in ``path``)."""
    if path.exists():
        with np.load(path) as saved:
            return {k: saved[k] for k in saved.files}
    sim = speckle_only_bbh(seed, derot, times)
    out = {"fwhm": np.float64(sim.fwhm)}
    for sense, angles in (("physical", -derot), ("old", derot)):
        image = pca_annular(sim.cube, angles, fwhm=sim.fwhm, ncomp=3)
        out[f"{sense}_im"] = image.astype(np.float32)
        out[f"{sense}_snr"] = snr_map(image, sim.fwhm).astype(np.float32)
    np.savez(path, **out)
    return out


def gaussian_maps(maps: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Both 'senses' replaced by independent Gaussian noise smoothed by a Gaussian of the FWHM,
    NaN where the speckle reduction is NaN (the coronagraph's centre)."""
    rng = np.random.default_rng(10_000 + seed)
    fwhm = float(maps["fwhm"])
    out = {"fwhm": maps["fwhm"]}
    for sense in ("physical", "old"):
        image = ndimage.gaussian_filter(rng.standard_normal(maps[f"{sense}_im"].shape), fwhm / 2.3548)
        image[~np.isfinite(maps[f"{sense}_im"])] = np.nan
        out[f"{sense}_im"] = image
        out[f"{sense}_snr"] = snr_map(image, fwhm)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", help="frames.fits of a BB_H Level 1 product (MJD, DEROT)")
    parser.add_argument("first_seed", type=int)
    parser.add_argument("end_seed", type=int)
    parser.add_argument("--t0", type=float, default=0.0, help="time of the first frame (s)")
    parser.add_argument("--cache", type=Path, required=True, help="folder of the cached S/N maps")
    parser.add_argument("--split", type=float, default=5.0, help="zone boundary, FWHM")
    parser.add_argument(
        "--gaussian",
        action="store_true",
        help="instead of the speckle reductions, two independent images of Gaussian noise smoothed to "
        "the FWHM per seed (same field and masked centre): what the Student law's promise means for "
        "the detection's S/N peaks, and how much each calibration raises the threshold without cause",
    )
    parser.add_argument(
        "--fpf-levels",
        default="1e-3,1e-4,1e-5",
        help="also count the detections at these false-positive fractions per resolution element "
        "(all images, the same fit) against the number expected (sum of n(r) fpf over 1-FWHM rings)",
    )
    args = parser.parse_args()
    with fits.open(args.frames) as hdul:
        derot = np.asarray(hdul["DEROT"].data, dtype=float)
        mjd = np.asarray(hdul["FRAMES"].data["MJD"], dtype=float)
    times = (mjd - mjd[0]) * 86400.0 + args.t0
    args.cache.mkdir(parents=True, exist_ok=True)
    levels = [float(x) for x in args.fpf_levels.split(",") if x]
    counts: dict[str, int] = {"student": 0}
    found_at: dict[tuple[str, float], int] = {}
    expected_at: dict[float, float] = {}
    factors: dict[str, list[float]] = {}
    n = 0
    for seed in range(args.first_seed, args.end_seed):
        maps = cached_maps(args.cache / f"{seed}.npz", seed, derot, times)
        if args.gaussian:
            maps = gaussian_maps(maps, seed)
        fwhm = float(maps["fwhm"])
        for sense, other in (("physical", "old"), ("old", "physical")):
            image = maps[f"{sense}_im"].astype(np.float64)
            snr = maps[f"{sense}_snr"].astype(np.float64)
            null = maps[f"{other}_snr"].astype(np.float64)
            student = detect_candidates(snr, fwhm, image=image)
            valid = without_rings(np.ones(snr.shape, dtype=bool), [c.separation for c in student], fwhm)
            n += 1
            counts["student"] += bool(student)
            row: dict = {
                "seed": seed,
                "sense": sense,
                "student": [(round(c.separation, 1), round(c.snr, 2)) for c in student],
            }
            fitted = variants(null, snr, valid, fwhm, args.split)
            for name, profile in fitted.items():
                k = profile.factors if isinstance(profile, Zonal) else (profile.tail_factor,)
                factors.setdefault(name, []).extend(k)
                # A calibrated threshold is never below the Student one: only Student candidates can stay.
                found = detect_candidates(snr, fwhm, image=image, profile=profile) if student else []
                counts[name] = counts.get(name, 0) + bool(found)
                row[name] = (
                    [round(float(x), 3) for x in k],
                    [(round(c.separation, 1), round(c.snr, 2), round(c.threshold, 2)) for c in found],
                )
            if student:
                print(json.dumps(row), flush=True)
            r = geometry.distance_map(snr.shape)[np.isfinite(snr)]
            for fpf in levels:
                profiles = {"student": None, **{k: at_fpf(p, fpf) for k, p in fitted.items()}}
                expected = false_alarms_per_image(profiles["v1.5"], r.min(), r.max())
                expected_at[fpf] = expected_at.get(fpf, 0.0) + expected
                for name, profile in profiles.items():
                    kwargs = {"fpf": fpf} if profile is None else {"profile": profile}
                    hits = len(detect_candidates(snr, fwhm, image=image, **kwargs))
                    found_at[name, fpf] = found_at.get((name, fpf), 0) + hits
    print(f"images with a false detection out of {n}: {counts}")
    for fpf in levels:
        print(
            f"fpf {fpf:g} per element: expected {expected_at[fpf]:.1f} false detections in all;",
            {name: n_found for (name, level), n_found in found_at.items() if level == fpf},
        )
    for name, ks in factors.items():
        print(
            name,
            "factors: median",
            round(float(np.median(ks)), 3),
            "5-95 %",
            np.round(np.percentile(ks, [5, 95]), 3).tolist(),
        )


if __name__ == "__main__":
    main()
