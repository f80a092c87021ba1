"""Benchmark: Level 2 fake-injection reductions run serially and on several threads (issue 8).

The self-consistent contrast curve (fakes at the limit it reports, 12 branches, a fixed point and
a saturation probe) costs ~180 reductions per wavelength plane; ``hcdc.runtime.blas.map_tasks``
runs the independent ones (one branch's fakes reduced together) on ``task_threads()`` threads.
This script times, for 1 thread and for N threads, alternately, with the caches cleared:

* ``naco``: the default 5-sigma contrast curve of the real NACO beta Pic cube (61 x 101^2, PCA 10);
* ``irdis2``: ``run.postprocess`` (what the ``l2-postprocess`` recipe runs) on a simulated
  two-wavelength IRDIS-like cube (2 x 48 x 121^2, annular PCA 3 as the demo, one companion),
  detections, photometry, throughput map and one contrast curve per wavelength;

and checks that the N-thread results are bit-identical to the serial ones. The machine is
shared, so each configuration is repeated and the minimum wall time is the figure to quote::

    PYTHONPATH=src .venv/bin/python benchmarks/parallel_level2.py [--threads 2] [--repeats 3] [--case naco]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hcdc.runtime.blas import TASK_THREADS_VARIABLE  # noqa: E402
from hcdc.science.postprocessing import contrast, throughput  # noqa: E402
from hcdc.science.postprocessing.run import postprocess  # noqa: E402
from hcdc.science.simulation.adi import simulate_spectral_cube  # noqa: E402


def naco_case():
    from postprocessing_vs_vip import FWHM, STAR_FLUX, load_naco

    naco = load_naco()

    def run():
        curve = contrast.contrast_curve(
            naco["cube"], -naco["pa"], naco["psf"], fwhm=FWHM, star_flux=STAR_FLUX, params={"ncomp": 10}
        )
        return [curve.contrast, curve.throughput_curve.branches, curve.throughput_curve.snr_per_flux]

    return run


def irdis2_case():
    sim = simulate_spectral_cube(
        wavelengths=(1.593, 1.667),
        n_frames=48,
        size=121,
        fwhm_ref=4.0,
        rotation=40.0,
        companions=[(30.0, 120.0, 4e-4)],
        seed=3,
    )

    def run():
        result = postprocess(
            sim.cube,
            sim.angles,
            algorithm="pca_annular",
            psf=sim.psf,
            params={"ncomp": 3},
            wavelengths=sim.wavelengths,
        )
        out = [result.image, result.image_throughput_corrected, result.snr_map]
        out += [result.contrast.contrast] if result.contrast else []
        return out

    return run


CASES = {"naco": naco_case, "irdis2": irdis2_case}


def timed(run, threads: int):
    os.environ[TASK_THREADS_VARIABLE] = str(threads)
    throughput.clear_cache()
    wall, cpu = time.perf_counter(), time.process_time()
    out = run()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def identical(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (x is None and y is None) or np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(a, b, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", choices=sorted(CASES), action="append")
    args = parser.parse_args()
    print(
        f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}"
    )
    for name in args.case or sorted(CASES):
        run = CASES[name]()
        walls: dict[int, list[float]] = {1: [], args.threads: []}
        cpus: dict[int, list[float]] = {1: [], args.threads: []}
        reference = None
        same = True
        for _ in range(args.repeats):
            for threads in (1, args.threads):
                wall, cpu, out = timed(run, threads)
                walls[threads].append(wall)
                cpus[threads].append(cpu)
                if reference is None:
                    reference = out
                else:
                    same &= identical(reference, out)
        print(f"{name}: load {os.getloadavg()[0]:.1f} after; identical to serial: {same}")
        for threads in walls:
            print(
                f"  {threads} thread(s): wall min {min(walls[threads]):.2f} s "
                f"(all {', '.join(f'{w:.1f}' for w in walls[threads])}), "
                f"CPU min {min(cpus[threads]):.2f} s"
            )
        print(f"  speed-up (min wall): {min(walls[1]) / min(walls[args.threads]):.2f}x")


if __name__ == "__main__":
    main()
