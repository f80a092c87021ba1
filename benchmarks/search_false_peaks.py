"""False S/N peaks of hcdc's detection against the random-field prediction, and the threshold for a
stated number of false peaks per image (``l2-postprocess`` 1.6's ``false_alarms_per_image``).

Gaussian noise (default): the images of ``null_threshold_variants.py --gaussian`` (independent
Gaussian noise smoothed by a Gaussian of the FWHM, two per seed, 128 px, FWHM 4 px), their S/N
maps, and for each stated number ``N`` of ``--targets`` the per-pixel ``fpf`` that
:func:`~hcdc.science.postprocessing.search_threshold.search_threshold` finds for it on that map.
Counted: the detections of :func:`detect_candidates` (with the image: refined, merged, positive
sources) at that threshold, in all and per band of separation, against the expected false peaks
(:func:`expected_false_peaks` over each band, with the map's own roughness), and the images with
at least one (against ``1 - exp(-N)``); the same at the Student 5-sigma threshold (the default).

Speckle (``--frames FRAMES --cache DIR``): the cached annular-PCA-3 reductions of the demo's BB_H
speckle-only sequence of ``null_threshold_variants.py`` (both senses; each sense's null map is
the other's), counting the images with a false detection at the Student threshold, at the
threshold for ``N`` false peaks, and with that threshold's ``fpf`` calibrated on the null map
(``calibrated_threshold`` with ``false_alarms_per_image``).

Measured: benchmarks/RESULTS.md ("False peaks of the search over every pixel")::

    PYTHONPATH=src python benchmarks/search_false_peaks.py 0 500          # Gaussian noise
    PYTHONPATH=src python benchmarks/search_false_peaks.py 1000 1100 --frames FRAMES --t0 232.8 \\
        --cache /tmp/speckle-maps
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from astropy.io import fits

from hcdc.science import geometry
from hcdc.science.postprocessing.detection import GAUSSIAN_5SIGMA_FPF, detect_candidates
from hcdc.science.postprocessing.null_threshold import calibrate_threshold, without_rings
from hcdc.science.postprocessing.search_threshold import (
    expected_false_peaks,
    search_region,
    search_threshold,
    snr_roughness,
)

sys.path.insert(0, str(Path(__file__).parent))
from null_threshold_variants import cached_maps, gaussian_maps  # noqa: E402 - the benchmarks' folder

#: Bands of separation (px) in which counts and predictions are compared.
BANDS = ((4.0, 12.0), (12.0, 24.0), (24.0, 40.0), (40.0, 64.0))


def gaussian_template(size: int = 128, fwhm: float = 4.0) -> dict[str, np.ndarray]:
    """What :func:`gaussian_maps` needs of a speckle reduction: its shape, FWHM and NaN pixels
    (annular PCA leaves none: every pixel finite)."""
    blank = np.zeros((size, size), dtype=np.float32)
    return {"fwhm": np.float64(fwhm), "physical_im": blank, "old_im": blank}


def band_counts(candidates, bands=BANDS) -> list[int]:
    return [sum(lo <= c.separation < hi for c in candidates) for lo, hi in bands]


def gaussian_run(args) -> None:
    targets = [float(x) for x in args.targets.split(",")]
    template = gaussian_template()
    fwhm = float(template["fwhm"])
    keys = ["student", *(f"N={t:g}" for t in targets)]
    found = {k: np.zeros(len(BANDS), int) for k in keys}
    predicted = {k: np.zeros(len(BANDS)) for k in keys}
    images_with = dict.fromkeys(keys, 0)
    thresholds: dict[str, list[float]] = {k: [] for k in keys}
    lams, n = [], 0
    t_cpu = time.process_time()
    for seed in range(args.first_seed, args.end_seed):
        maps = gaussian_maps(template, seed)
        for sense in ("physical", "old"):
            image, snr = maps[f"{sense}_im"], maps[f"{sense}_snr"]
            region = np.isfinite(snr)
            r = geometry.distance_map(snr.shape)
            parts = [search_region(region, fwhm, (r >= lo) & (r < hi)) for lo, hi in BANDS]
            lam = snr_roughness(snr, fwhm)
            lams.append(lam)
            n += 1
            fpfs = {"student": GAUSSIAN_5SIGMA_FPF}
            for t, key in zip(targets, keys[1:], strict=True):
                fpfs[key] = search_threshold(snr, fwhm, t).fpf
            for key, fpf in fpfs.items():
                hits = detect_candidates(snr, fwhm, image=image, fpf=fpf)
                found[key] += band_counts(hits)
                images_with[key] += bool(hits)
                predicted[key] += [expected_false_peaks(p, lam, fpf) for p in parts]
                thresholds[key].append(float(-np.log10(fpf)))
    cpu = time.process_time() - t_cpu
    print(
        f"{n} Gaussian-noise images of 128 px, FWHM {fwhm}; roughness {np.mean(lams):.4f} "
        f"+- {np.std(lams):.4f} px^-2; {cpu:.0f} s CPU"
    )
    print("bands (px):", BANDS)
    for key in keys:
        total_f, total_p = int(found[key].sum()), float(predicted[key].sum())
        pull = (total_f - total_p) / np.sqrt(max(total_p, 1e-12))
        stated = None if key == "student" else float(key[2:])
        row = {
            "threshold": key,
            "median -log10 fpf": round(float(np.median(thresholds[key])), 2),
            "found": total_f,
            "predicted": round(total_p, 2),
            "pull": round(float(pull), 2),
            "found per band": found[key].tolist(),
            "predicted per band": np.round(predicted[key], 2).tolist(),
            "images with a false peak": images_with[key],
            "per image": round(images_with[key] / n, 4),
            "per-image error": round(np.sqrt(max(images_with[key], 1)) / n, 4),
        }
        if stated is not None:
            row["images expected (1 - exp(-N))"] = round(n * (1 - np.exp(-stated)), 2)
        print(json.dumps(row), flush=True)


def speckle_run(args) -> None:
    targets = [float(x) for x in args.targets.split(",")]
    with fits.open(args.frames) as hdul:
        derot = np.asarray(hdul["DEROT"].data, dtype=float)
        mjd = np.asarray(hdul["FRAMES"].data["MJD"], dtype=float)
    times = (mjd - mjd[0]) * 86400.0 + args.t0
    args.cache.mkdir(parents=True, exist_ok=True)
    keys = ["student", "calibrated"] + [
        f"{kind} N={t:g}" for t in targets for kind in ("search", "search+cal")
    ]
    images_with = dict.fromkeys(keys, 0)
    n, student_peaks, lams = 0, [], []
    for seed in range(args.first_seed, args.end_seed):
        maps = cached_maps(args.cache / f"{seed}.npz", seed, derot, times)
        fwhm = float(maps["fwhm"])
        for sense, other in (("physical", "old"), ("old", "physical")):
            image = maps[f"{sense}_im"].astype(np.float64)
            snr = maps[f"{sense}_snr"].astype(np.float64)
            null = maps[f"{other}_snr"].astype(np.float64)
            n += 1
            student = detect_candidates(snr, fwhm, image=image)
            valid = without_rings(np.ones(snr.shape, dtype=bool), [c.separation for c in student], fwhm)
            calibrated = calibrate_threshold(null, fwhm, valid=valid)
            found = {
                "student": student,
                "calibrated": detect_candidates(snr, fwhm, image=image, profile=calibrated),
            }
            for t in targets:
                search = search_threshold(snr, fwhm, t)
                lams.append(search.roughness)
                student_peaks.append(search.student_false_alarms)
                found[f"search N={t:g}"] = detect_candidates(snr, fwhm, image=image, profile=search)
                both = replace(calibrated, fpf=search.fpf)
                found[f"search+cal N={t:g}"] = detect_candidates(snr, fwhm, image=image, profile=both)
            for key, hits in found.items():
                images_with[key] += bool(hits)
            if student:
                print(
                    json.dumps(
                        {
                            "seed": seed,
                            "sense": sense,
                            "k": round(calibrated.tail_factor, 3),
                            **{
                                k: [(round(c.separation, 1), round(c.snr, 2)) for c in v]
                                for k, v in found.items()
                            },
                        }
                    ),
                    flush=True,
                )
    print(
        f"{n} speckle reductions; roughness median {np.median(lams):.4f} px^-2; expected false peaks "
        f"at the Student 5-sigma threshold (Gaussian model) median {np.median(student_peaks):.4f} per image"
    )
    print("images with a false detection:", json.dumps(images_with))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first_seed", type=int)
    parser.add_argument("end_seed", type=int)
    parser.add_argument(
        "--targets", default="3,1,0.3,0.1,0.03,0.01", help="stated false peaks per image, comma-separated"
    )
    parser.add_argument("--frames", type=Path, help="frames.fits of a BB_H Level 1 product: speckle mode")
    parser.add_argument("--t0", type=float, default=0.0, help="time of the first frame (s)")
    parser.add_argument("--cache", type=Path, help="folder of the cached speckle S/N maps")
    args = parser.parse_args()
    if args.frames is not None:
        if args.cache is None:
            parser.error("--frames needs --cache")
        speckle_run(args)
    else:
        gaussian_run(args)


if __name__ == "__main__":
    main()
