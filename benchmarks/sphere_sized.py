"""SPHERE-sized Level 2: full-frame PCA on an IRDIS cube, the exact S/N map of a full frame, PCA on
a memory-mapped cube; time, peak memory relative to the cube, and the machine's load.

Each measurement runs in a fresh child process so that its peak resident memory (``VmHWM`` from
``/proc/self/status``, reset with ``/proc/self/clear_refs`` just before the measured call) is its
own. The peak quoted is the whole process (interpreter and libraries included) divided by the
cube's size; "extra" is the peak minus the resident memory just before the call (which already
holds the cube), over the cube's size.

Usage (from the repository root, with the project's virtualenv)::

    python benchmarks/sphere_sized.py pca [--frames 300 --size 1024] [--route tiled|memory] [--repeat 1]
    python benchmarks/sphere_sized.py snrmap [--size 1024] [--fwhm 4] [--method compiled|numpy]
    python benchmarks/sphere_sized.py memmap [--frames 300 --size 1024] [--path /tmp/cube.fits]
    python benchmarks/sphere_sized.py contrast [--frames 300 --size 1024] [--path /tmp/cube.fits]

``memmap`` / ``contrast``: full-frame PCA 10 / the default 5-sigma contrast curve (PCA 10,
throughput from fakes) of a FITS cube on disk, opened with ``memmap=True`` (written first, 16
frames at a time, if ``--path`` does not exist); the bounded quantity is the memory allocated
(tracemalloc), since the file's pages count as resident while the page cache holds them.

``--route memory`` forces the in-memory route that every cube took before the tiled one (the
"before" figure; it needs ~2.6x the cube). The synthetic cube is speckle-like: a fixed pattern
times a 1/(1 + r^2/100) envelope, a slow drift and white noise, angles spread over 80 degrees.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np

    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")

    def speckle_cube(nfr, n, out=None, seed=0):
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:n, 0:n] - n // 2
        env = (1e3 / (1 + (x * x + y * y) / 100.0)).astype(np.float32)
        base = rng.standard_normal((n, n)).astype(np.float32)
        drift = rng.standard_normal((n, n)).astype(np.float32)
        cube = np.empty((nfr, n, n), dtype=np.float32) if out is None else out
        for k in range(nfr):
            cube[k] = env * (base + 0.3 * (k / nfr) * drift) + rng.standard_normal((n, n), dtype=np.float32)
        return cube

    args = json.loads(sys.argv[1])
    from hcdc.science.postprocessing import pca, snr
    result = {"loadavg_before": os.getloadavg()[0]}
    if args["what"] == "pca":
        cube = speckle_cube(args["frames"], args["size"])
        angles = np.linspace(-40, 40, args["frames"])
        if args["route"] == "memory":
            pca.TILED_ELEMENTS = 1 << 62  # the in-memory route (residual cube + banded derotation)
        # compile the tiled route's kernels before the measurement
        pca._pca_tiled(cube[:8, :64, :64], angles[:8], [2], "median", "temp-mean", None, None)
        times, cpu = [], []
        for _ in range(args["repeat"]):
            rss0 = status("VmRSS"); reset_peak()
            t = time.perf_counter(); c = time.process_time()
            image = pca.pca(cube, angles, fwhm=4.0, ncomp=10)
            times.append(time.perf_counter() - t); cpu.append(time.process_time() - c)
        result.update(cube_bytes=cube.nbytes, seconds=times, cpu_seconds=cpu, rss_before=rss0,
                      peak=status("VmHWM"),
                      image_rms=float(np.sqrt(np.mean(image.astype(np.float64) ** 2))))
    elif args["what"] in ("memmap", "contrast"):
        from astropy.io import fits
        path = args["path"]
        nfr, n = args["frames"], args["size"]
        if not os.path.exists(path):  # written 16 frames at a time: never in memory whole
            header = fits.Header()
            header["SIMPLE"], header["BITPIX"], header["NAXIS"] = True, -32, 3
            header["NAXIS1"], header["NAXIS2"], header["NAXIS3"] = n, n, nfr
            header.tofile(path)
            with open(path, "rb+") as handle:  # data padded to whole 2880-byte FITS blocks
                handle.seek(len(header.tostring()) + -(-4 * nfr * n * n // 2880) * 2880 - 1)
                handle.write(b"\\0")
            with fits.open(path, mode="update", memmap=True) as hdul:
                data = hdul[0].data
                for k0 in range(0, nfr, 16):
                    part = speckle_cube(min(16, nfr - k0), n, seed=k0)
                    data[k0 : k0 + part.shape[0]] = part
                hdul.flush()
                del data  # unmap the writer's view (else its pages stay counted in the RSS)
        angles = np.linspace(-40, 40, nfr)
        # The mapped file's pages count in the resident memory as they are read (page cache,
        # given back under pressure): the bounded quantity is the memory allocated, traced here.
        import tracemalloc
        from hcdc.science.postprocessing import contrast  # imported before tracing starts
        from hcdc.science.postprocessing.photometry import normalize_psf
        with fits.open(path, memmap=True) as hdul:
            cube = hdul[0].data  # big-endian float32, memory-mapped
            warm = np.ascontiguousarray(cube[:8, :64, :64], dtype=np.float32)
            pca._pca_tiled(warm, angles[:8], [2], "median", "temp-mean", None, None)
            tracemalloc.start()
            rss0 = status("VmRSS"); reset_peak()
            t = time.perf_counter(); c = time.process_time()
            if args["what"] == "memmap":
                pca.pca(cube, angles, fwhm=4.0, ncomp=10)
            else:
                y, x = np.mgrid[0:19, 0:19] - 9
                psf = normalize_psf(np.exp(-(x * x + y * y) / (2 * 1.7**2)), 4.0, size=19)
                curve = contrast.contrast_curve(cube, angles, psf, fwhm=4.0, star_flux=1e6,
                                                params={"ncomp": 10}, cache=False)
                result["contrast_points"] = int(np.size(curve.separation))
            elapsed = time.perf_counter() - t
            result.update(cube_bytes=4 * nfr * n * n, seconds=[elapsed], rss_before=rss0,
                          cpu_seconds=[time.process_time() - c],
                          peak=status("VmHWM"), traced_peak=tracemalloc.get_traced_memory()[1],
                          rss_anon=status("RssAnon"), dtype=str(cube.dtype))
    elif args["what"] == "snrmap":
        n = args["size"]
        rng = np.random.default_rng(1)
        image = rng.standard_normal((n, n)).astype(np.float32)
        snr.snr_map(image[:64, :64], args["fwhm"], method=args["method"])  # compile the kernel
        rss0 = status("VmRSS"); reset_peak()
        t = time.perf_counter(); c = time.process_time()
        m = snr.snr_map(image, args["fwhm"], method=args["method"])
        result.update(seconds=[time.perf_counter() - t], cpu_seconds=[time.process_time() - c],
                      rss_before=rss0, peak=status("VmHWM"),
                      finite=int(np.isfinite(m).sum()))
    result["loadavg_after"] = os.getloadavg()[0]
    print(json.dumps(result))
    """
)


def run_child(**args) -> dict:
    """Run one measurement in a fresh interpreter; its JSON result."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)], capture_output=True, text=True, env=env
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    """One line naming the machine, the date and the software."""
    import numpy
    import scipy

    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?"
    )
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} CPUs ({cpu}), "
        f"Python {platform.python_version()}, numpy {numpy.__version__}, scipy {scipy.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["pca", "snrmap", "memmap", "contrast"])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--route", choices=["tiled", "memory"], default="tiled")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--fwhm", type=float, default=4.0)
    parser.add_argument("--method", choices=["compiled", "numpy"], default="compiled")
    parser.add_argument("--path", default="/tmp/hcdc_sphere_sized_cube.fits")
    args = parser.parse_args()
    print(machine())
    r = run_child(**vars(args))
    gib = 2**30
    line = f"{args.what}: time(s) {', '.join(f'{t:.2f}' for t in r['seconds'])}"
    line += f" (CPU s, both threads: {', '.join(f'{t:.2f}' for t in r['cpu_seconds'])})"
    if "cube_bytes" in r:
        cube = r["cube_bytes"]
        line += (
            f"; cube {cube / gib:.2f} GiB; peak RSS {r['peak'] / gib:.2f} GiB"
            f" = {r['peak'] / cube:.2f}x the cube"
            f" (extra over the resident memory before the call: {(r['peak'] - r['rss_before']) / cube:.2f}x)"
        )
    else:
        line += (
            f"; peak RSS {r['peak'] / 2**20:.0f} MiB ({(r['peak'] - r['rss_before']) / 2**20:.0f} MiB extra)"
        )
    if "traced_peak" in r:
        traced = r["traced_peak"]
        line += f"; allocated (tracemalloc) peak {traced / 2**20:.0f} MiB = {traced / cube:.3f}x"
    print(line + f"; load average {r['loadavg_before']:.2f} before, {r['loadavg_after']:.2f} after")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
