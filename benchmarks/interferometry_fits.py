"""Uniform-disk fits of every real OIFITS file: hcdc against the reference's scipy baseline.

The baseline (../shared/reference/interferometry.md section 5, "scipy grid+LS": 28 files in
1.8 s) reads each file with astropy, evaluates χ² on a 600-point θ grid, then runs
``scipy.optimize.least_squares`` from the best grid point; it is re-implemented here so that
both run on the same machine, in the same process, back to back. hcdc reads the files with
:func:`hcdc.instruments.oifits_data.read_observables` and fits with
:func:`hcdc.science.interferometry.fitting.fit_diameter` (grid set by the data + Brent).

Usage: python benchmarks/interferometry_fits.py [--rounds 3] [--data ../shared/data/oifits/real]
Prints per-file diameters of both and the timings (wall, including reading), plus the load.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from astropy.io import fits
from scipy.optimize import least_squares
from scipy.special import j1

from hcdc.instruments.oifits_data import read_observables
from hcdc.science.interferometry.fitting import FitError, fit_diameter
from hcdc.science.interferometry.models import MAS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("HCDC_SHARED_DATA", REPO.parent / "shared" / "data")) / "oifits" / "real"


def baseline_read(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Unflagged VIS2 of a single-target file with astropy: (B/λ, V², σ)."""
    q, v2, err = [], [], []
    with fits.open(path) as hdul:
        waves = {h.header.get("INSNAME"): h.data["EFF_WAVE"] for h in hdul[1:] if h.name == "OI_WAVELENGTH"}
        for h in hdul[1:]:
            if h.name != "OI_VIS2":
                continue
            d = h.data
            wl = waves[h.header.get("INSNAME")]
            shape = (len(d), wl.size)
            b = np.hypot(d["UCOORD"], d["VCOORD"])[:, None]
            qq = np.broadcast_to(b / wl[None, :], shape)
            data, error = d["VIS2DATA"].reshape(shape), d["VIS2ERR"].reshape(shape)
            ok = ~d["FLAG"].reshape(shape) & np.isfinite(data) & (error > 0)
            q.append(qq[ok])
            v2.append(data[ok])
            err.append(error[ok])
    if not q:
        return None
    return np.concatenate(q), np.concatenate(v2), np.concatenate(err)


def baseline_fit(q: np.ndarray, v2: np.ndarray, err: np.ndarray) -> float:
    """600-point grid (0.1-100 mas, log) then least_squares; θ [mas]."""

    def model(theta: np.ndarray) -> np.ndarray:
        x = np.pi * theta * MAS * q
        return (2 * j1(x) / x) ** 2

    grid = np.geomspace(0.1, 100.0, 600)
    chi2 = [np.sum(((model(t) - v2) / err) ** 2) for t in grid]
    start = grid[int(np.argmin(chi2))]
    fit = least_squares(lambda p: (model(p[0]) - v2) / err, [start])
    return float(fit.x[0])


def _chi2(theta: float, q: np.ndarray, v2: np.ndarray, err: np.ndarray) -> float:
    x = np.pi * theta * MAS * q
    return float(np.sum((((2 * j1(x) / x) ** 2) - v2) ** 2 / err**2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    files = sorted(p for p in args.data.iterdir() if p.is_file())
    print(
        f"{platform.node()} {platform.processor() or platform.machine()} {os.cpu_count()} CPU, "
        f"Python {platform.python_version()}, load before {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, tuple[float | None, float | None]] = {}
    timings: dict[str, list[float]] = {"baseline": [], "hcdc": []}
    for _ in range(args.rounds):
        started = time.perf_counter()
        n_base = 0
        for path in files:
            data = baseline_read(path)
            if data is None or data[0].size < 2:
                continue
            results.setdefault(path.name, (None, None))
            results[path.name] = (baseline_fit(*data), results[path.name][1])
            n_base += 1
        timings["baseline"].append(time.perf_counter() - started)
        started = time.perf_counter()
        n_hcdc = 0
        for path in files:
            try:
                fit = fit_diameter(read_observables(path), "ud")
            except FitError:
                continue
            results[path.name] = (results.get(path.name, (None, None))[0], fit.params["theta_mas"])
            n_hcdc += 1
        timings["hcdc"].append(time.perf_counter() - started)
    print(f"load after {os.getloadavg()[0]:.1f}")
    print(
        "\n| file | baseline θ_UD [mas] | hcdc θ_UD [mas] | relative difference | χ² baseline / χ² hcdc |"
        "\n|---|---|---|---|---|"
    )
    for name, (base, ours) in sorted(results.items()):
        diff = abs(ours - base) / base if base and ours else float("nan")
        data = baseline_read(args.data / name)
        assert data is not None
        ratio = _chi2(base, *data) / _chi2(ours, *data)
        print(f"| {name} | {base:.4f} | {ours:.4f} | {diff:.1e} | {ratio:.6f} |")
    print(f"\n| method | files | wall s per round (min / median of {args.rounds}) |\n|---|---|---|")
    for label, n in (("baseline (astropy + 600-point grid + least_squares)", n_base), ("hcdc", n_hcdc)):
        key = "baseline" if label.startswith("baseline") else "hcdc"
        print(f"| {label} | {n} | {min(timings[key]):.3f} / {statistics.median(timings[key]):.3f} |")


if __name__ == "__main__":
    main()
