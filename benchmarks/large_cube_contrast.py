"""A multi-GB memory-mapped cube through hcdc's Level 2 path to a 5-sigma contrast curve: wall
time and peak memory (issue 8, item 6: "a 9 GB cube's contrast curve in bounded memory").

Two steps, each runnable alone::

    python benchmarks/large_cube_contrast.py build --frames 2200 --size 1024 --dir /tmp/hcdc_large
    python benchmarks/large_cube_contrast.py run --dir /tmp/hcdc_large [--how recipe|cli] [--ncomp 10]
        [--incremental]

``build`` writes, into ``--dir``, ``cube.fits`` (frames, y, x) big-endian float32 (BITPIX -32;
e.g. 2200 x 1024^2 or 550 x 2048^2 = 8.6 GiB = 9.2 GB), ``angles.txt`` (derotation angles,
hcdc's clockwise convention: ``--angle-convention hcdc-clockwise``) and ``psf.fits`` (off-axis
PSF). The cube is appended ``--block`` frames at a time after its header: no more than one
block is ever in memory. The frame model is deliberately cheap (the project's
instrument simulators, :mod:`hcdc.science.simulation`, model a SPHERE frame in detail at ~0.1-1 s
a frame, i.e. 4-40 min of CPU for 2200 frames on this shared 2-core machine): a coronagraphic
halo ``I0 / (1 + r^2 / 100)`` times a speckle pattern (white noise smoothed to the PSF's size,
the sum of a static pattern and one drifting linearly over the sequence, which is what ADI/PCA
removes), plus unit white noise, plus one companion injected with the project's own injection
(:func:`hcdc.science.postprocessing.fakes.companion_positions`, ``shifted_psfs``,
``add_stamps``: the same stamps as the throughput fakes) at ``--sep`` px, PA 30 deg.

``run`` post-processes ``cube.fits`` in a fresh child process, either through the
``l2-postprocess`` recipe exactly as ``hcdc postprocess`` calls it (``--how recipe``: the recipe's
per-stage timings come back too) or through the command line itself (``--how cli``:
``python -m hcdc postprocess cube.fits --angles angles.txt --psf psf.fits ...``). Both open the
cube memory-mapped (:func:`hcdc.science.fits_inputs.read_fits_array`). Memory is sampled from
the parent every 0.25 s in ``/proc/<child>/status``: the peak of ``RssAnon`` (memory the
process allocated: the bounded quantity) and of ``RssFile`` (the mapped file's pages that are
resident: page cache, which the kernel reclaims under pressure and which can reach the file's
size without anything being allocated), plus ``VmHWM`` (their sum's peak) read just before the
child exits and ``getrusage(RUSAGE_CHILDREN).ru_maxrss``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: IRDIS plate scale (mas/px): the summary reports contrasts at standard separations with it.
PIXEL_SCALE_MAS = 12.25
FWHM_PX = 4.0


# ------------------------------------------------------------------------------------------ build


def gaussian_psf(fwhm: float, size: int = 31, peak: float = 1.0) -> np.ndarray:
    """Odd square circular Gaussian of ``fwhm`` px and ``peak``, centred on its central pixel."""
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    y, x = np.mgrid[0:size, 0:size] - size // 2
    return peak * np.exp(-(x * x + y * y) / (2.0 * sigma**2))


def speckle_pattern(n: int, rng: np.random.Generator, fwhm: float) -> np.ndarray:
    """Unit-variance white noise smoothed to speckles of ~``fwhm`` px (float32 (n, n))."""
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal((n, n)), fwhm / 2.355)
    return (field / field.std()).astype(np.float32)


def write_cube(
    directory: Path,
    frames: int,
    size: int,
    *,
    block: int,
    seed: int,
    sep: float,
    contrast: float,
    halo: float,
    rotation: float,
) -> dict:
    """Write ``cube.fits``, ``angles.txt`` and ``psf.fits`` into ``directory`` (see module doc)."""
    from astropy.io import fits

    from hcdc.science.postprocessing import fakes
    from hcdc.science.postprocessing.photometry import normalize_psf

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cube.fits"
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    angles = np.linspace(-rotation / 2.0, rotation / 2.0, frames)  # derotation angles (deg)
    np.savetxt(directory / "angles.txt", angles, fmt="%.6f")
    star_psf = gaussian_psf(FWHM_PX, 31, peak=halo * 100.0)  # off-axis star: 100x the halo's peak
    fits.PrimaryHDU(star_psf.astype(np.float32)).writeto(directory / "psf.fits", overwrite=True)
    # The companion as postprocess() normalises the PSF: unit 1-FWHM-aperture flux times the
    # star's aperture flux times the contrast.
    unit_psf = normalize_psf(star_psf, FWHM_PX)
    from hcdc.science.postprocessing.run import star_flux_from_psf

    star_flux = star_flux_from_psf(star_psf, FWHM_PX)
    companion_flux = contrast * star_flux

    header = fits.Header()
    header["SIMPLE"], header["BITPIX"], header["NAXIS"] = True, -32, 3
    header["NAXIS1"], header["NAXIS2"], header["NAXIS3"] = size, size, frames
    header["PIXSCALE"] = (PIXEL_SCALE_MAS, "mas/px")
    header.tofile(path, overwrite=True)

    y, x = np.mgrid[0:size, 0:size] - size // 2
    envelope = (halo / (1.0 + (x * x + y * y) / 100.0)).astype(np.float32)
    static = envelope * speckle_pattern(size, rng, FWHM_PX)
    drift = envelope * speckle_pattern(size, rng, FWHM_PX)
    del x, y
    xs, ys = fakes.companion_positions(sep, 30.0, angles, (frames, size, size))
    # Appended block by block with plain writes (a writable memory map would keep the written
    # pages mapped, and counted in this process's resident memory, until it is closed).
    with open(path, "ab") as handle:
        for k0 in range(0, frames, block):
            k1 = min(frames, k0 + block)
            part = np.empty((k1 - k0, size, size), dtype=np.float32)
            for j, k in enumerate(range(k0, k1)):
                part[j] = static + np.float32(0.3 * k / frames) * drift
                part[j] += rng.standard_normal((size, size), dtype=np.float32)
            ix, iy = np.rint(xs[k0:k1]).astype(int), np.rint(ys[k0:k1]).astype(int)
            stamps = fakes.shifted_psfs(unit_psf, xs[k0:k1] - ix, ys[k0:k1] - iy)
            fakes.add_stamps(part, stamps, ix, iy, companion_flux)
            handle.write(part.astype(">f4").tobytes())  # FITS: big-endian
            del part
        handle.write(b"\0" * (-(4 * frames * size * size) % 2880))  # whole 2880-byte FITS blocks
    return {
        "path": str(path),
        "frames": frames,
        "size": size,
        "bytes": path.stat().st_size,
        "write_seconds": round(time.perf_counter() - t0, 1),
        "companion": {"separation_px": sep, "pa_deg": 30.0, "contrast": contrast},
        "star_flux": star_flux,
        "frame_model": "halo x (static + drifting smoothed speckles) + unit white noise + companion",
    }


# -------------------------------------------------------------------------------------------- run

RECIPE_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from hcdc.pipeline.recipe import RecipeContext
    from hcdc.pipeline.registry import get_recipe
    import hcdc.science.postprocessing  # registers the algorithms

    args = json.loads(sys.argv[1])
    d = Path(args["dir"])
    files = {"cube": d / "cube.fits", "angles": d / "angles.txt", "psf": d / "psf.fits"}
    params = {
        "algorithm": "pca", "algorithm_params": {"ncomp": args["ncomp"]}, "fwhm": args["fwhm"],
        **({"algorithm_params": {"ncomp": args["ncomp"], "incremental_fakes": True}}
           if args.get("incremental") else {}),
        "pixel_scale_mas": args["pixel_scale"], "compute_contrast": True,
        "angle_convention": "hcdc-clockwise", "output_stem": "cube_pca",
    }
    t = time.perf_counter()
    seen = set()

    def on_progress(stage, done, total):  # each stage's start and end, for a log of a long run
        if (stage, done == total) not in seen:
            seen.add((stage, done == total))
            print(f"{time.perf_counter() - t:8.1f} s  {stage} {done}/{total}", file=sys.stderr, flush=True)

    context = RecipeContext(work_dir=Path(args["out"]), on_progress=on_progress)
    result = get_recipe("l2-postprocess")().run(files, params, context)
    summary = result.outputs["summary"]
    print(json.dumps({"seconds": time.perf_counter() - t, "timings": context.timings,
                      "summary": summary}, default=str))
    """
)


def _status(pid: int) -> dict[str, int]:
    """RssAnon, RssFile, VmRSS and VmHWM (bytes) of process ``pid`` (empty once it has exited)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                key = line.split(":", 1)[0]
                if key in ("RssAnon", "RssFile", "VmRSS", "VmHWM"):
                    out[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def run_child(command: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``command``, sampling its memory every 0.25 s; its output and the memory peaks. The
    child's stderr (stage log) goes to ``log``, with a memory line every 30 s."""
    peaks = {"RssAnon": 0, "RssFile": 0, "VmRSS": 0, "VmHWM": 0}
    with tempfile.TemporaryFile("w+") as out, open(log, "w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out, stderr=err, text=True, env=env, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            last = 0.0
            while not done.is_set():
                now = _status(proc.pid)
                for key, value in now.items():
                    peaks[key] = max(peaks[key], value)
                if time.perf_counter() - last >= 30.0 and now:
                    last = time.perf_counter()
                    mib = {k: v // 2**20 for k, v in now.items()}
                    err.write(
                        f"# {last - t0:8.1f} s  RssAnon {mib.get('RssAnon')} MiB (peak "
                        f"{peaks['RssAnon'] // 2**20}), RssFile {mib.get('RssFile')} MiB, "
                        f"load {os.getloadavg()[0]:.1f}\n"
                    )
                    err.flush()
                done.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        completed = subprocess.CompletedProcess(command, code, out.read(), err.read())
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peaks.update(
        wall_seconds=round(wall, 1),
        cpu_seconds=round(usage.ru_utime + usage.ru_stime, 1),
        ru_maxrss_children=usage.ru_maxrss * 1024,
    )
    return completed, peaks


def run(directory: Path, how: str, ncomp: int, incremental: bool = False) -> dict:
    """Post-process ``directory/cube.fits`` (recipe or CLI) in a child; timings, memory, results.
    ``incremental``: PCA's ``incremental_fakes`` (fakes' Gram matrices updated from the cube's)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    tag = f"{how}_incremental" if incremental else how
    out = directory / f"out_{tag}"
    out.mkdir(exist_ok=True)
    if how == "recipe":
        args = {"dir": str(directory), "out": str(out), "ncomp": ncomp, "fwhm": FWHM_PX,
                "pixel_scale": PIXEL_SCALE_MAS, "incremental": incremental}  # fmt: skip
        command = [sys.executable, "-c", RECIPE_CHILD, json.dumps(args)]
    else:
        command = [
            sys.executable, "-m", "hcdc", "postprocess", str(directory / "cube.fits"),
            "--angles", str(directory / "angles.txt"), "--angle-convention", "hcdc-clockwise",
            "--psf", str(directory / "psf.fits"), "--fwhm", str(FWHM_PX), "--ncomp", str(ncomp),
            "--pixel-scale", str(PIXEL_SCALE_MAS), "--out", str(out), "--json",
        ] + (["--param", "incremental_fakes=true"] if incremental else [])  # fmt: skip
    load_before = os.getloadavg()
    completed, memory = run_child(command, env, directory / f"run_{tag}.log")
    if completed.returncode != 0:
        raise RuntimeError(f"{how} run failed ({completed.returncode}):\n{completed.stderr[-4000:]}")
    if how == "recipe":
        payload = json.loads(completed.stdout.strip().splitlines()[-1])
        summary, timings = payload["summary"], payload["timings"]
    else:
        summary, timings = json.loads(completed.stdout), None
    cube_bytes = (directory / "cube.fits").stat().st_size
    gib = 2**30
    return {
        "how": how,
        "incremental_fakes": incremental,
        "cube_gib": round(cube_bytes / gib, 3),
        "shape": _cube_shape(directory / "cube.fits"),
        "ncomp": ncomp,
        "wall_seconds": memory["wall_seconds"],
        "cpu_seconds": memory["cpu_seconds"],
        "stage_seconds": timings,
        "peak_rss_anon_gib": round(memory["RssAnon"] / gib, 3),
        "peak_rss_anon_over_cube": round(memory["RssAnon"] / cube_bytes, 3),
        "peak_rss_file_gib": round(memory["RssFile"] / gib, 3),
        "vm_hwm_gib": round(memory["VmHWM"] / gib, 3),
        "ru_maxrss_children_gib": round(memory["ru_maxrss_children"] / gib, 3),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in os.getloadavg()],
        "detections": [
            {k: d.get(k) for k in ("separation_px", "pa_deg", "snr", "contrast")}
            for d in summary["detections"]
        ],
        "contrast_at": summary["contrast_at"],
        "warnings": summary["warnings"],
    }


def _cube_shape(path: Path) -> list[int]:
    from astropy.io import fits

    header = fits.getheader(path)
    return [header["NAXIS3"], header["NAXIS2"], header["NAXIS1"]]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["build", "run", "both"])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/hcdc_large_cube"))
    parser.add_argument("--frames", type=int, default=2200)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--block", type=int, default=16, help="frames written at a time")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--sep", type=float, default=40.0, help="companion separation (px)")
    parser.add_argument("--contrast", type=float, default=2e-5, help="companion contrast")
    parser.add_argument("--halo", type=float, default=1e3, help="halo peak (cube units)")
    parser.add_argument("--rotation", type=float, default=80.0, help="field rotation (deg)")
    parser.add_argument("--how", choices=["recipe", "cli"], default="recipe")
    parser.add_argument("--ncomp", type=int, default=10)
    parser.add_argument(
        "--incremental", action="store_true", help="PCA's incremental_fakes (default: the full passes)"
    )
    args = parser.parse_args()
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count()}
    if args.what in ("build", "both"):
        result["build"] = write_cube(
            args.dir, args.frames, args.size, block=args.block, seed=args.seed, sep=args.sep,
            contrast=args.contrast, halo=args.halo, rotation=args.rotation,
        )  # fmt: skip
        print(json.dumps(result["build"]), flush=True)
    if args.what in ("run", "both"):
        result["run"] = run(args.dir, args.how, args.ncomp, args.incremental)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
