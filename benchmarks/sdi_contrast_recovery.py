"""How often hcdc's detection finds a companion injected at the reported SDI contrast (issue 8).

Simulated IFS-like cube (5 channels 1.0-1.6 µm, 20 frames, 81^2, 40 deg, seed 7, no companion),
SDI with its default parameters through ``run.postprocess`` (the default curve: the final
image's detection limit, fakes in every wavelength; or with ``--fixed`` the former fakes at 10x
the noise and per-wavelength curves). Fakes of flat contrast are injected at the reported
contrast by the tests' own code (``tests/science/postprocessing/conftest.py``, independent of
hcdc's injection and throughput code), ``--pas`` position angles per separation, every half FWHM
from 3 FWHM, and counted as found when ``detect_candidates`` reports them within 1 FWHM::

    PYTHONPATH=src .venv/bin/python benchmarks/sdi_contrast_recovery.py [--fixed] [--pas 16]
        [--throughput-step 0.5]   (throughput sampled every 0.5 FWHM instead of 1)
        [--seeds 7-7]             (several simulated cubes, each with its own curve; counts summed)
        [--json FILE]             (per seed and summed counts, with binomial 1-sigma per separation)
    ... --combine FILE [FILE ...]   (sum the cubes of several --json files, e.g. runs in parallel)

With one cube and 16 angles a separation's share has a binomial 1-sigma of ~12 % at 50 %; more
seeds (independent speckle and noise draws, each reduced and given its own curve) and angles
shrink it as 1/sqrt(seeds x angles).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "science" / "postprocessing"))

from conftest import _count_recoveries  # noqa: E402

from hcdc.science.postprocessing import get_algorithm  # noqa: E402
from hcdc.science.postprocessing.run import postprocess  # noqa: E402
from hcdc.science.simulation.adi import simulate_spectral_cube  # noqa: E402


def one_cube(seed: int, args: argparse.Namespace) -> list[dict]:
    """Recovery counts per row (wavelength) of the cube simulated with ``seed``."""
    sim = simulate_spectral_cube(
        wavelengths=(1.0, 1.15, 1.3, 1.45, 1.6), n_frames=20, size=81, fwhm_ref=3.5, seed=seed
    )
    fwhm = float(np.mean(sim.fwhm))
    options: dict | None = {"fc_snr": 10.0} if args.fixed else None
    if args.throughput_step:
        options = {**(options or {}), "throughput_step": args.throughput_step * fwhm}
    res = postprocess(
        sim.cube,
        sim.angles,
        algorithm="sdi",
        psf=sim.psf,
        wavelengths=sim.wavelengths,
        fwhm=sim.fwhm,
        star_flux=sim.star_flux,
        contrast_options=options,
    )
    sdi = get_algorithm("sdi").function

    def reduce(cube: np.ndarray) -> np.ndarray:
        return sdi(cube, sim.angles, fwhm=np.asarray(sim.fwhm), wavelengths=sim.wavelengths)[0]

    seps = np.arange(3.0 * fwhm, 81 // 2 - fwhm - 2, 0.5 * fwhm)
    rows = (0, len(sim.wavelengths) - 1) if args.fixed else (0,)
    out = []
    for row in rows:
        limits = np.array([res.contrast.at(s, row) for s in seps])
        ok = np.isfinite(limits)
        hits = np.full(len(seps), -1)
        hits[ok] = _count_recoveries(
            sim.cube,
            sim.angles,
            sim.psf,
            reduce,
            fwhm=fwhm,
            separations=seps[ok],
            fluxes=limits[ok, None] * np.asarray(sim.star_flux)[None, :],
            n_pa=args.pas,
        )
        in_fwhm = np.round(seps / fwhm, 1).tolist()
        print(f"seed {seed} row {row} ({sim.wavelengths[row]} µm): separations (FWHM) {in_fwhm}")
        print(f"  contrast {[f'{c:.3g}' for c in limits]}")
        share = 100 * hits[ok].sum() / (args.pas * ok.sum())
        print(f"  found {hits.tolist()} of {args.pas} each (-1: no curve): {share:.0f} % in all", flush=True)
        out.append({"seed": seed, "row": row, "separations_fwhm": in_fwhm,
                    "contrast": limits.tolist(), "found": hits.tolist(), "of": args.pas})  # fmt: skip
    return out


def summarise(cubes: list[dict]) -> dict:
    """Counts summed over cubes per row and separation, printed with the binomial 1-sigma."""
    summary = {}
    for row in sorted({c["row"] for c in cubes}):
        found = np.array([c["found"] for c in cubes if c["row"] == row])
        pas = np.array([c["of"] for c in cubes if c["row"] == row])[:, None]
        tried = np.where(found >= 0, pas, 0).sum(axis=0)
        hits = np.where(found >= 0, found, 0).sum(axis=0)
        share = hits / np.maximum(tried, 1)
        sigma = np.sqrt(share * (1 - share) / np.maximum(tried, 1))
        seeds = sorted({c["seed"] for c in cubes if c["row"] == row})
        print(f"row {row}, cubes {seeds}: found {hits.tolist()} of {tried.tolist()}")
        pct, one_sigma = np.round(100 * share).astype(int).tolist(), np.round(100 * sigma, 1).tolist()
        overall = 100 * hits.sum() / max(tried.sum(), 1)
        print(f"  share {pct} % (1-sigma {one_sigma} %); all {overall:.1f} %")
        summary[str(row)] = {
            "seeds": seeds,
            "found": hits.tolist(),
            "tried": tried.tolist(),
            "share": share.tolist(),
            "sigma": sigma.tolist(),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", action="store_true", help="fakes at 10x the noise (the former curves)")
    parser.add_argument("--pas", type=int, default=16)
    parser.add_argument(
        "--throughput-step", type=float, default=None, help="throughput sampling in FWHM (default 1)"
    )
    parser.add_argument("--seeds", default="7-7", help="range 'a-b' of cube seeds (inclusive)")
    parser.add_argument("--json", default=None, help="write per-seed and summed counts here")
    parser.add_argument("--combine", nargs="+", default=None, help="sum the cubes of earlier --json files")
    args = parser.parse_args()
    if args.combine:
        summarise([c for name in args.combine for c in json.loads(Path(name).read_text())["cubes"]])
        return
    warnings.simplefilter("ignore")
    a, b = (int(v) for v in args.seeds.split("-"))
    wall, cpu = time.perf_counter(), time.process_time()
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "pas": args.pas,
                    "loadavg_before": os.getloadavg(), "cubes": []}  # fmt: skip
    for seed in range(a, b + 1):
        result["cubes"].extend(one_cube(seed, args))
        if args.json:
            Path(args.json).write_text(json.dumps(result))
    result["summed"] = summarise(result["cubes"])
    result["cpu_seconds"] = time.process_time() - cpu
    result["wall_seconds"] = time.perf_counter() - wall
    result["loadavg_after"] = os.getloadavg()
    load = result["loadavg_after"]
    print(f"CPU {result['cpu_seconds']:.0f} s, wall {result['wall_seconds']:.0f} s, load after {load}")
    if args.json:
        Path(args.json).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
