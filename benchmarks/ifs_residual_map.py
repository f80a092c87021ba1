"""Residual map of the IFS spectra positions and wavelengths on a simulated night (docs/ifs.md).

Simulates a small IFS night (or uses ``--night DIR`` written by ``hcdc simulate ifs``), calibrates
it (``calibrate_ifs``) and plots, per lenslet at its detector position: the white-lamp position
residuals around the affine grid model (x, y) and the error of the calibrated rows of the middle
channel against the simulator's truth. Writes ``docs/ifs_residual_map.png`` and prints the
statistics. Usage: ``python benchmarks/ifs_residual_map.py [--mode YJ] [--seed 5] [--out PNG]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from hcdc.instruments.sphere.ifs.extraction import (  # noqa: E402
    bad_pixel_map,
    calibrate_frame,
    calibrate_ifs,
    detector_flat,
    mean_frame,
)
from hcdc.instruments.sphere.ifs.simulate import simulate_ifs_night  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", default="YJ", choices=["YJ", "YJH"])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("docs/ifs_residual_map.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        night = simulate_ifs_night(Path(tmp), mode=args.mode, seed=args.seed, crosstalk=False)
        dark = mean_frame(night.select("DARK")[0].path)
        flat, flat_bad = detector_flat(
            mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=10.0)[0].path),
            mean_frame(night.select("FLAT,LAMP", lamp="BB", dit=1.65)[0].path),
        )
        bad = bad_pixel_map(mean_frame(night.select("DARK,BACKGROUND", dit=4.0)[0].path), flat_bad)
        ifu = next(f for f in night.files if f.dpr_type == "FLAT,LAMP" and f.dpr_tech == "IFU")
        frames = (night.select("SPECPOS,LAMP")[0], night.select("WAVE,LAMP")[0], ifu)
        calibration = calibrate_ifs(
            *(calibrate_frame(mean_frame(f.path), dark, flat, bad) for f in frames), args.mode
        )
    distance, index = cKDTree(night.grid.trace_xy).query(calibration.trace_xy)
    ok = distance < 1.0
    xy = calibration.trace_xy[ok]
    res = calibration.residual_xy[ok]
    mid = 0.5 * (night.mode.wave_min_nm + night.mode.wave_max_nm)
    rows = xy[:, 1] + calibration.solution.offset(mid)[ok]
    truth_rows = night.grid.trace_xy[index[ok], 1] + night.mode.trace_offset_px(mid)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6), constrained_layout=True)
    for ax, values, title in (
        (axes[0], res[:, 0], "white lamp: x - affine model (px)"),
        (axes[1], res[:, 1], "white lamp: y - affine model (px)"),
        (axes[2], rows - truth_rows, f"calibrated row of {mid:.0f} nm - truth (px)"),
    ):
        lim = float(np.nanpercentile(np.abs(values), 99))
        sc_ = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=2, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xlabel("detector x (px)")
        fig.colorbar(sc_, ax=ax, shrink=0.8)
        print(f"{title}: median {np.nanmedian(values):+.4f}, rms {np.nanstd(values):.4f}, 99% |.| {lim:.4f}")
    axes[0].set_ylabel("detector y (px)")
    fig.suptitle(f"IFS-{args.mode}, simulated small night (seed {args.seed}), {ok.sum()} spectra")
    fig.savefig(args.out, dpi=56)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
