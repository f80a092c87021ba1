"""Benchmark: hcdc's IRDIS DPI reduction vs IRDAP on the same simulated raw files (issue #17).

IRDAP (https://github.com/robvanholstein/IRDAP, PyPI ``irdap``) is the reference pipeline for
IRDIS DPI. It is installed only for this comparison, in a separate virtual environment, never a
project dependency. IRDAP 1.3.5 needs older libraries than today's (``matplotlib.cm.get_cmap``,
top-level ``photutils.CircularAperture``, 1-element-array-to-int conversions), so pin them::

    python -m venv /tmp/irdap-venv
    /tmp/irdap-venv/bin/pip install irdap==1.3.5 "numpy<2.4" "matplotlib<3.9" "photutils<2"
    PYTHONPATH=src .venv/bin/python benchmarks/dpi_vs_irdap.py --work /tmp/dpi-bench \\
        --irdap-python /tmp/irdap-venv/bin/python

Steps: (1) simulate a **full-size** (1024 x 2048, IRDAP's hard-coded geometry) DPI sequence with one
DIT per file (``simulate_irdis_dpi_night``, ``--cycles`` HWP cycles; skipped when ``--work/raw``
exists); (2) hcdc: ``reduce_irdis`` (Level 1 with the simulated darks, backgrounds and flats) then
``reduce_dpi`` (double difference, annulus IP correction); (3) IRDAP ``irdap -r`` in ``--work/irdap``
on the science files only (OBJECT, CENTER, FLUX, SKY; ``perform_adi = False``): IRDAP builds its
bad-pixel map and flat from FLAT/DARK **pairs at several DITs**, which the ESO calibration plan
simulated here (5 lamp levels at one DIT) does not provide, so it falls back on its static flat and
bad-pixel map of the real detector; only the first OBJECT,CENTER file is given (see the results for
why); (4) both Qphi maps against the truth, ring by ring, with each pipeline's star centre (hcdc: the
centre of pixel ``(n//2, n//2)``; IRDAP: the corner between pixels ``511`` and ``512``).

The simulation goes through the Mueller-matrix instrument model (``--instrument mueller``, default;
``--tracking PUPIL`` or ``FIELD``) and hcdc reduces it with ``irdis-dpi`` 1.1 (model-based
correction); ``--instrument ideal`` reproduces the earlier ideal-instrument run with 1.0.
``--skip-irdap-run`` reuses an earlier IRDAP reduction in ``--work/irdap``. Printed: per 2-px ring,
Qphi / truth for each pipeline (after one scale factor per pipeline, since the units differ:
hcdc ADU/s x mean beam transmission; IRDAP counts per DIT), the ratio IRDAP / hcdc, Uphi rms over
Qphi peak, the AoLP offset on the disc and the position angle of the ring's bright side (the
image derotation sense).
"""

from __future__ import annotations

import argparse
import configparser
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from hcdc.instruments.sphere.irdis import level1 as l1
from hcdc.instruments.sphere.irdis.dpi_reduction import DPIOptions, read_dpi_product, reduce_dpi
from hcdc.instruments.sphere.irdis.simulate import SimulationScale, read_simulation_truth
from hcdc.instruments.sphere.irdis.simulate_dpi import DEFAULT_RING, simulate_irdis_dpi_night

#: Full IRDIS frame, one DIT per file (IRDAP hard-codes the 1024 x 2048 geometry).
IRDAP_SCALE = SimulationScale(
    "full-1dit", 1.0, object_ndit=1, center_ndit=1, flux_ndit=1, sky_ndit=1, calib_ndit=2
)


def _ring_stats(q_phi, u_phi, aolp, pi, center_yx, truth_fn, radii):
    """Per 2-px ring: mean Qphi, mean truth, mean PI; disc-wide Uphi rms and AoLP offset (deg)."""
    y, x = np.indices(q_phi.shape, dtype=float)
    dy, dx = y - center_yx[0], x - center_yx[1]
    r = np.hypot(dx, dy)
    pa = np.degrees(np.arctan2(-dx, dy)) % 360.0
    truth = truth_fn(r, pa)
    rows = []
    for r0 in radii:
        ring = (r >= r0) & (r < r0 + 2) & np.isfinite(q_phi)
        rows.append((r0, float(np.mean(q_phi[ring])), float(np.mean(truth[ring])), float(np.mean(pi[ring]))))
    disc = (truth > 0.3 * truth.max()) & np.isfinite(q_phi)
    offset = (aolp - (pa + 90.0) + 90.0) % 180.0 - 90.0
    # PA of the bright side of the ring (first azimuthal harmonic of Qphi): the image derotation
    # sense and angle (the truth's bright side is at DEFAULT_RING.asymmetry_pa_deg)
    annulus = (r > 25) & (r < 35) & np.isfinite(q_phi)
    harmonic = np.sum(q_phi[annulus] * np.exp(1j * np.radians(pa[annulus])))
    return (
        rows,
        float(np.std(u_phi[disc])),
        float(np.mean(offset[disc])),
        float(np.median(np.abs(offset[disc]))),
        float(np.degrees(np.angle(harmonic)) % 360.0),
    )


def _hcdc(raw_dir: Path, work: Path, instrument: str) -> Path:
    raw = sorted(raw_dir.glob("SPHER.*.fits"))
    l1_dir = work / "hcdc_level1"
    t0 = time.perf_counter()
    if not (l1_dir / "science_cube.fits").is_file():
        l1.reduce_irdis(l1.roles_from_headers(raw), l1_dir, l1.Level1Options(science_dim=300))
    t1 = time.perf_counter()
    options = DPIOptions(previews=False, instrument_model=instrument == "mueller")
    path = reduce_dpi(l1_dir, raw, work / "hcdc_dpi", options)
    print(f"hcdc: Level 1 {t1 - t0:.1f} s, DPI {time.perf_counter() - t1:.1f} s")
    return path


def _irdap(raw_dir: Path, work: Path, python: str, run: bool) -> Path:
    folder = work / "irdap"
    if run:
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "raw").mkdir(parents=True)
        centers = 0
        for path in sorted(raw_dir.glob("SPHER.*.fits")):
            header = fits.getheader(path)
            if header["HIERARCH ESO DPR CATG"] != "SCIENCE":
                continue
            if header["HIERARCH ESO DPR TYPE"] == "OBJECT,CENTER":
                centers += 1
                if centers > 1:
                    continue
            shutil.copy(path, folder / "raw" / path.name)
        subprocess.run([python, "-m", "irdap", "-c"], cwd=folder, check=True, capture_output=True)
        config = folder / "config.conf"
        text = config.read_text().replace(
            "perform_adi                     = True", "perform_adi                     = False"
        )
        config.write_text(text)
        t0 = time.perf_counter()
        with open(folder / "run.log", "w") as log:
            subprocess.run(
                [python, "-W", "ignore", "-m", "irdap", "-r"],
                cwd=folder,
                check=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        print(f"IRDAP: {time.perf_counter() - t0:.1f} s")
    parser = configparser.ConfigParser()
    parser.read(folder / "config.conf")
    found = sorted((folder / "reduced_pdi" / "star_pol_subtr").glob("*_Q_phi_star_pol_subtr.fits"))
    if not found:
        raise SystemExit(f"{folder}: no IRDAP Q_phi product (see {folder / 'run.log'})")
    return found[0]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--irdap-python", default=None, help="python of the IRDAP venv (omit: hcdc only)")
    parser.add_argument("--skip-irdap-run", action="store_true")
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--instrument", choices=("mueller", "ideal"), default="mueller", help="simulated instrument model"
    )
    parser.add_argument("--tracking", choices=("PUPIL", "FIELD"), default="PUPIL")
    args = parser.parse_args()
    raw_dir = args.work / "raw"
    if not (raw_dir / "simulation_truth.json").is_file():
        t0 = time.perf_counter()
        simulate_irdis_dpi_night(
            raw_dir,
            seed=args.seed,
            scale=IRDAP_SCALE,
            n_cycles=args.cycles,
            instrument=args.instrument,
            tracking=args.tracking,
        )
        print(f"simulated {raw_dir} in {time.perf_counter() - t0:.0f} s")
    truth, _maps = read_simulation_truth(raw_dir)
    scale = truth["polarimetry"]["stokes_scale"] if "polarimetry" in truth else 1.0

    def ring_truth(r, pa):
        return DEFAULT_RING.polarised_brightness(r, pa)

    radii = list(range(22, 40, 2))
    hcdc_path = _hcdc(raw_dir, args.work, truth["polarimetry"].get("instrument", "ideal"))
    product = read_dpi_product(hcdc_path)
    n = product.q_phi.shape[0]
    results = {
        "hcdc": _ring_stats(
            product.q_phi, product.u_phi, product.aolp, product.pi, (n // 2, n // 2), ring_truth, radii
        )
    }
    ip_q, ip_u = (np.round(np.asarray(product.cycles[c]), 5).tolist() for c in ("IP_Q", "IP_U"))
    print(f"hcdc IP per cycle: q {ip_q} u {ip_u}")
    if args.irdap_python:
        q_phi_path = _irdap(raw_dir, args.work, args.irdap_python, not args.skip_irdap_run)
        stem = str(q_phi_path).replace("_Q_phi_star_pol_subtr.fits", "")
        q_phi = fits.getdata(q_phi_path).astype(float)
        u_phi = fits.getdata(f"{stem}_U_phi_star_pol_subtr.fits").astype(float)
        aolp = fits.getdata(f"{stem}_AoLP_star_pol_subtr.fits").astype(float)
        pi = fits.getdata(f"{stem}_I_pol_star_pol_subtr.fits").astype(float)
        m = q_phi.shape[0]
        results["IRDAP"] = _ring_stats(q_phi, u_phi, aolp, pi, ((m - 1) / 2, (m - 1) / 2), ring_truth, radii)
    print(f"truth: ring {DEFAULT_RING}; hcdc maps expected at {scale:.4f} x truth (mean beam transmission)")
    for column, label in ((1, "Qphi"), (3, "PI")):
        # one scale factor per pipeline (units differ), then the ring-by-ring shape
        scales = {
            name: float(np.median([row[column] / row[2] for row in rows]))
            for name, (rows, *_rest) in results.items()
        }
        header = "ring (px) " + " ".join(f"{name + f' {label}/truth/scale':>26}" for name in results)
        if len(results) == 2:
            header += f" {'IRDAP/hcdc':>12}"
        print(header)
        for k, r0 in enumerate(radii):
            line = f"{r0:>2}-{r0 + 2:<6}"
            values = []
            for name, (rows, *_rest) in results.items():
                values.append(rows[k][column] / rows[k][2] / scales[name])
                line += f" {values[-1]:>26.4f}"
            if len(values) == 2:
                line += f" {values[1] / values[0]:>12.4f}"
            print(line)
        print(f"scale {label}/truth: " + ", ".join(f"{name} {value:.4g}" for name, value in scales.items()))
    for name, (rows, u_rms, aolp_mean, aolp_med, bright_pa) in results.items():
        peak = max(row[1] for row in rows)
        print(
            f"{name}: Uphi rms / Qphi ring peak {u_rms / peak:.4f}; "
            f"AoLP offset mean {aolp_mean:+.3f} deg, median |offset| {aolp_med:.3f} deg; "
            f"bright side at PA {bright_pa:.1f} deg (truth {DEFAULT_RING.asymmetry_pa_deg:.1f})"
        )


if __name__ == "__main__":
    main()
