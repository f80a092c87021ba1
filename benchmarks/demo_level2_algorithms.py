"""Which Level 2 algorithm suits the demo's simulated IRDIS sequences: cADI, annular PCA, full-frame PCA.

Runs :func:`hcdc.science.postprocessing.run.postprocess` (what the ``l2-postprocess`` recipe runs)
with each candidate on the Level 1 products of a finished demo (``hcdc demo DIR``) and matches the
detections with the injected companions (``raw/<night>/simulation_truth.json``)::

    hcdc demo /tmp/demo && PYTHONPATH=src .venv/bin/python benchmarks/demo_level2_algorithms.py /tmp/demo

Prints, per Level 1 product and algorithm: S/N, separation/PA/contrast offsets of each companion
found, the number of detections matching nothing, and the 5-sigma contrast at 0.25" and 0.5".
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hcdc.instruments.sphere.constants import IRDIS_PIXEL_SCALE_MAS
from hcdc.instruments.sphere.irdis.level1 import read_level1
from hcdc.pipeline.operations.demo import match_detections
from hcdc.science.postprocessing.run import postprocess

CANDIDATES: list[tuple[str, dict]] = [
    ("cadi", {}),
    *[("pca_annular", {"ncomp": k}) for k in (1, 2, 3, 4, 5)],
    *[("pca", {"ncomp": k}) for k in (1, 2, 3, 5, 10)],
]


def level1_products(demo: Path) -> list[Path]:
    """Level 1 product folders of a demo directory (one per reduced dataset)."""
    return sorted(
        {p.parent for p in demo.glob("storage/products/job-*/attempt-*/level1/level1/science_cube.fits")}
    )


def truth_for(product: Path, demo: Path) -> tuple[str, list[dict]]:
    """(filter combination, injected companions) of the night whose files made ``product``."""
    level1 = read_level1(product)
    filt = str(level1.header.get("HCDC FILTER", ""))
    for truth_file in sorted(demo.glob("raw/*/simulation_truth.json")):
        truth = json.loads(truth_file.read_text())
        if filt and filt in truth.get("wavelengths_nm", {}):
            return filt, truth["companions"]
    truth = json.loads(sorted(demo.glob("raw/*/simulation_truth.json"))[0].read_text())
    return filt, truth["companions"]


def evaluate(product: Path, demo: Path, algorithm: str, params: dict) -> dict:
    level1 = read_level1(product)
    psf = level1.psf_cube.mean(axis=1) if level1.psf_cube.shape[1] else None
    filt, truth = truth_for(product, demo)
    start = time.perf_counter()
    result = postprocess(
        level1.cube,
        level1.derot,
        algorithm=algorithm,
        psf=psf,
        wavelengths=level1.wavelengths_um,
        pixel_scale_mas=IRDIS_PIXEL_SCALE_MAS,
        params=params,
    )
    summary = result.summary(separations_arcsec=(0.25, 0.5))
    dets = [dict(d, filter=filt) for d in summary["detections"]]
    matched = match_detections(dets, truth)
    found = {}
    for m in matched:
        if m["true_separation_mas"] is None:
            continue
        key = int(m["true_separation_mas"])
        if key not in found or m["snr"] > found[key]["snr"]:
            found[key] = m
    contrast = {c["separation_arcsec"]: c["contrast"] for c in summary["contrast_at"]}
    return {
        "filter": filt,
        "algorithm": algorithm,
        "params": params,
        "seconds": round(time.perf_counter() - start, 1),
        "found": {
            k: {
                "snr": round(float(m["snr"]), 1),
                "d_sep_mas": round(m["separation_mas"] - m["true_separation_mas"], 1),
                "d_pa_deg": round((m["pa_deg"] - m["true_pa_deg"] + 180) % 360 - 180, 2),
                "contrast_error": round(m["contrast"] / m["true_contrast"] - 1, 3)
                if m.get("contrast") is not None
                else None,
            }
            for k, m in sorted(found.items())
        },
        "missed": sorted(int(c["separation_mas"]) for c in truth if int(c["separation_mas"]) not in found),
        "false": sum(1 for m in matched if m["true_separation_mas"] is None),
        "contrast_5sigma": contrast,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demo", type=Path, help="directory of a finished `hcdc demo`")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    for product in level1_products(args.demo):
        for algorithm, params in CANDIDATES:
            row = evaluate(product, args.demo, algorithm, params)
            rows.append(row)
            label = algorithm + "".join(f" {k}={v}" for k, v in params.items())
            found = "; ".join(
                f"{k} mas S/N {v['snr']} dsep {v['d_sep_mas']} dPA {v['d_pa_deg']} dC {v['contrast_error']}"
                for k, v in row["found"].items()
            )
            c = row["contrast_5sigma"]
            print(
                f"{row['filter']:7s} {label:22s} {found or '-'} | missed {row['missed']} | "
                f"false {row['false']} | "
                f'5sig 0.25" {c.get(0.25)} 0.5" {c.get(0.5)} | {row["seconds"]} s',
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
