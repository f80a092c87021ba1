"""Known companions against the calibrated-threshold variants, on one Level 1 product.

Runs ``hcdc postprocess`` (in process) on a Level 1 product twice: ``l2-postprocess`` 1.4 (its
detections at the Student threshold) and 1.5, keeping the null S/N map and the fit's valid pixels
that 1.5 calibrates on (a wrapper around ``run.calibrate_threshold`` records its arguments; the
result is unchanged). Then each variant of benchmarks/null_threshold_variants.py is fitted on
those maps (pooled: with the data's own S/N map from the product) and its threshold printed at
each 1.4 detection. Measured (2026-12-07, docs/postprocessing.md "Towards a default"): the Level 1
test's crop (seed 3 'small' DBI, annular PCA 1, crop 50) and the demo's BB_H and DB_H23
(annular PCA 3)::

    PYTHONPATH=src python benchmarks/null_threshold_cases.py LEVEL1_DIR --ncomp 1 --crop 50
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from null_threshold_variants import Zonal, variants  # noqa: E402

import hcdc.science.postprocessing.run as run  # noqa: E402
from hcdc.cli import app  # noqa: E402
from hcdc.instruments.sphere.irdis import level1  # noqa: E402
from hcdc.science.postprocessing.detection import GAUSSIAN_5SIGMA_FPF, student_threshold  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("level1", type=Path, help="a Level 1 product folder (science cube, frames, PSF)")
    parser.add_argument("--algorithm", default="pca_annular")
    parser.add_argument("--ncomp", default="3")
    parser.add_argument("--crop", default=None, help="--crop-radius of hcdc postprocess")
    parser.add_argument("--split", type=float, default=5.0, help="zone boundary of the zonal variants, FWHM")
    args = parser.parse_args()
    recorded: dict = {}
    calibrate = run.calibrate_threshold

    def recording(null_snr, fwhm, **kwargs):
        recorded.update(null=np.asarray(null_snr, dtype=np.float64), valid=kwargs.get("valid"), fwhm=fwhm)
        return calibrate(null_snr, fwhm, **kwargs)

    run.calibrate_threshold = recording
    base = [str(args.level1 / level1.SCIENCE_CUBE), "--angles", str(args.level1 / level1.FRAMES)]
    base += [
        "--psf",
        str(args.level1 / level1.PSF_CUBE),
        "--algorithm",
        args.algorithm,
        "--ncomp",
        args.ncomp,
    ]
    base += [] if args.crop is None else ["--crop-radius", args.crop]
    summaries = {}
    with tempfile.TemporaryDirectory() as tmp:
        for version in ("1.4", "1.5"):
            out = ["--no-contrast", "--out", f"{tmp}/{version}", "--json", "--recipe-version", version]
            result = CliRunner().invoke(app, ["postprocess", *base, *out])
            if result.exit_code != 0:
                raise SystemExit(result.output)
            summaries[version] = json.loads(result.stdout)
        data = fits.getdata(summaries["1.5"]["files"]["product"], "SNR_MAP").astype(np.float64)
    fwhm = float(recorded["fwhm"])
    detections = summaries["1.4"]["detections"]
    seps = np.array([d["separation_px"] for d in detections])
    print(
        "1.4 detections (sep px, S/N):",
        [(round(d["separation_px"], 1), round(d["snr"], 2)) for d in detections],
    )
    print(
        "1.5 detections (sep px, S/N):",
        [(round(d["separation_px"], 1), round(d["snr"], 2)) for d in summaries["1.5"]["detections"]],
    )
    print(
        "Student threshold there:", np.round(student_threshold(seps, fwhm, GAUSSIAN_5SIGMA_FPF), 2).tolist()
    )
    for name, profile in variants(recorded["null"], data, recorded["valid"], fwhm, args.split).items():
        factors = profile.factors if isinstance(profile, Zonal) else (profile.tail_factor,)
        nus = [f.nu for f in profile.fits] if isinstance(profile, Zonal) else [profile.nu]
        print(
            f"{name}: nu {np.round(nus, 1).tolist()} factor {np.round(factors, 3).tolist()}"
            f" threshold at the 1.4 detections {np.round(profile.at(seps), 2).tolist()}"
        )


if __name__ == "__main__":
    main()
