"""CPU time of the fake passes of a contrast curve on a memory-mapped cube: full-frame PCA's full
passes against ``incremental_fakes`` (issue 8, item 6), and the agreement of their results.

Writes ``--frames`` x ``--size``^2 float32 frames (the frame model of
``large_cube_contrast.py``: halo x (static + drifting speckles) + white noise) to ``cube.npy`` in
``--dir``, opens it memory-mapped, and measures, alternately ``--rounds`` times, one throughput
curve with the detection S/N of its fakes (``throughput_curve(..., detection=True)``: what the
contrast curve's fixed-point iterations run, one branch, ``fc_rad_sep`` 3, i.e. 3 passes of
fakes every 3 FWHM with their S/N rings) and one with fakes at one separation on 4 branches (what
the photometry of a detection runs), with the full passes and with ``incremental_fakes``. CPU
time is this process's (``getrusage``: both worker threads); the cube's own statistics for the
incremental route are computed once before (pass 1 computes them in a real run). Per pixel the
costs scale with the frame area (Gram matrix frames^2 x pixels, derotation frames x pixels), so
550 frames of 320^2 stand for the 550 x 2048^2 cube at 1/41 of its pixels.

    python benchmarks/incremental_fakes.py --frames 550 --size 320 --dir /tmp/hcdc_fakes
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rel_diff(new: np.ndarray, old: np.ndarray) -> float:
    """Largest relative difference where the old value is not 0 (throughputs are clipped at 0)."""
    keep = old != 0
    return float(np.max(np.abs(new[keep] / old[keep] - 1.0))) if keep.any() else 0.0


def write_cube(path: Path, frames: int, size: int, seed: int = 2026) -> None:
    """The large_cube_contrast frame model, without the companion, saved as .npy."""
    from large_cube_contrast import speckle_pattern

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] - size // 2
    envelope = (1e3 / (1.0 + (x * x + y * y) / 100.0)).astype(np.float32)
    static = envelope * speckle_pattern(size, rng, 4.0)
    drift = envelope * speckle_pattern(size, rng, 4.0)
    cube = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(frames, size, size))
    for k in range(frames):
        cube[k] = static + np.float32(0.3 * k / frames) * drift + rng.standard_normal((size, size))
    cube.flush()
    del cube


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=550)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--ncomp", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/hcdc_fakes"))
    args = parser.parse_args()

    from hcdc.science.postprocessing import pca, throughput
    from hcdc.science.simulation.adi import gaussian_psf

    args.dir.mkdir(parents=True, exist_ok=True)
    path = args.dir / "cube.npy"
    if not path.exists():
        write_cube(path, args.frames, args.size)
    cube = np.load(path, mmap_mode="r")
    angles = np.linspace(-40.0, 40.0, cube.shape[0])
    fwhm = 4.0
    psf = gaussian_psf(fwhm, size=31)
    seps = throughput.default_separations(cube.shape, fwhm, fwhm)
    cases = {
        "contrast (1 branch, 3 passes, S/N rings)": {"separations": seps, "nbranch": 1, "detection": True},
        "photometry (4 branches, 1 separation)": {"separations": [40.0], "nbranch": 4},
    }
    flux = 50.0
    pca.clear_statistics()
    t0 = cpu()
    base = throughput.run_algorithm("pca", cube, angles, fwhm=fwhm, cache=False, ncomp=args.ncomp)
    pca.pca(cube, angles, fwhm=fwhm, ncomp=args.ncomp, incremental_fakes=True)  # statistics kept
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "shape": list(cube.shape),
        "ncomp": args.ncomp,
        "load_before": [round(v, 2) for v in os.getloadavg()],
        "pass1_cpu_s (two PCA runs)": round(cpu() - t0, 1),
        "cases": {},
    }
    del base
    for name, case in cases.items():
        times: dict[str, list[float]] = {"full": [], "incremental": []}
        curves = {}
        for _ in range(args.rounds):
            for route in ("full", "incremental"):
                params = {"ncomp": args.ncomp} | (
                    {"incremental_fakes": True} if route == "incremental" else {}
                )
                t = cpu()
                curves[route] = throughput.throughput_curve(
                    cube, angles, psf, fwhm=fwhm, params=params, fake_flux=flux, cache=False, **case
                )
                times[route].append(round(cpu() - t, 2))
        full, inc = curves["full"], curves["incremental"]
        entry = {
            "passes": len(throughput.fake_passes(len(case["separations"]), np.zeros(case["nbranch"]), 3)),
            "cpu_s": times,
            "speed_up": round(min(times["full"]) / min(times["incremental"]), 2),
            "throughput_max_rel_diff": rel_diff(inc.branches, full.branches),
            "throughput_range": [float(full.branches.min()), float(full.branches.max())],
        }
        if full.snr_per_flux is not None:
            entry["snr_max_rel_diff"] = rel_diff(inc.snr_per_flux, full.snr_per_flux)
        result["cases"][name] = entry
        print(json.dumps({name: entry}), flush=True)
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
