"""Exact S/N map: this tree's compiled kernel against an earlier commit's, same frame, same process.

Issue 8, item 6 (exact S/N map of a full 1024^2 frame <= 10 s, identical values). The earlier
commit's ``snr.py`` is read with ``git show COMMIT:src/hcdc/science/postprocessing/snr.py`` and
imported from a temporary file (its numba kernel compiled there), so both kernels run on the
same random frame, alternately, ``--repeat`` times each; CPU seconds of the process
(``time.process_time``, all worker threads) and wall seconds per call, and whether the maps are
equal bit for bit (``np.array_equal``)::

    python benchmarks/snr_map_kernels.py [--size 1024] [--fwhm 4] [--against a182671] [--repeat 2]

Prints one JSON object (machine line, load averages, times, equality, largest difference).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sphere_sized import machine  # noqa: E402

from hcdc.science.postprocessing import snr  # noqa: E402


def load_commit_snr(commit: str, folder: Path):
    """The ``snr`` module of ``commit``, imported from a file in ``folder``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:src/hcdc/science/postprocessing/snr.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = folder / f"snr_{commit}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"snr_{commit}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--fwhm", type=float, default=4.0)
    parser.add_argument("--against", default="a182671", help="earlier commit whose kernel is compared")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    image = np.random.default_rng(1).standard_normal((args.size, args.size)).astype(np.float32)
    result = {
        "machine": machine(),
        "size": args.size,
        "fwhm": args.fwhm,
        "against": args.against,
        "loadavg_before": os.getloadavg()[0],
        "cpu_seconds": {},
        "wall_seconds": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        kernels = {"earlier": load_commit_snr(args.against, Path(tmp)), "this tree": snr}
        for module in kernels.values():
            module.snr_map(image[:64, :64], args.fwhm, method="compiled")  # compile
        maps = {}
        for _ in range(args.repeat):
            for name, module in kernels.items():
                wall, cpu = time.perf_counter(), time.process_time()
                maps[name] = module.snr_map(image, args.fwhm, method="compiled")
                result["cpu_seconds"].setdefault(name, []).append(round(time.process_time() - cpu, 2))
                result["wall_seconds"].setdefault(name, []).append(round(time.perf_counter() - wall, 2))
    a, b = maps["earlier"], maps["this tree"]
    result["identical"] = bool(np.array_equal(a, b, equal_nan=True))
    result["max_abs_difference"] = float(np.nanmax(np.abs(a - b)))
    result["finite_pixels"] = int(np.isfinite(b).sum())
    result["loadavg_after"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
