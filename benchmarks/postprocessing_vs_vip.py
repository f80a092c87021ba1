"""Benchmark: hcdc post-processing vs VIP (vip_hci) on the real NACO beta Pic cube, plus SPHERE-sized cubes.

Both packages get the same input (the cube re-centred here once, the normalised PSF, the raw
angles) and matched parameters; the script checks that the outputs agree (S/N of beta Pic b per
algorithm, NEGFC position and flux, 5-sigma contrast curve) and prints time ratios against VIP's
default rotation (``imlib='vip-fft'``) and its fastest (``imlib='opencv'``).

VIP is installed only for this benchmark, in a separate virtual environment (never a project
dependency)::

    python -m venv .venv-bench && echo '*' > .venv-bench/.gitignore
    .venv-bench/bin/pip install vip_hci==2.1.1 opencv-python-headless
    .venv/bin/python benchmarks/postprocessing_vs_vip.py [--sphere irdis] [--vip-negfc]

Without that environment (``--vip-python`` missing) only hcdc runs and VIP's numbers measured on
this machine type (../shared/reference/postprocessing.md) are used for the ratios.

Conventions: VIP's ``angle_list`` derotates with the opposite sign of hcdc's derotation angles,
so hcdc gets ``-pa`` where VIP gets ``pa`` (raw angles of the files, no north correction).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from astropy.io import fits

from hcdc.science import geometry
from hcdc.science.postprocessing import adi, base, contrast, pca, snr, throughput
from hcdc.science.postprocessing.detection import fit_gaussian_2d
from hcdc.science.postprocessing.negfc import negfc_fit, remove_companion
from hcdc.science.postprocessing.photometry import normalize_psf

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("HCDC_SHARED_DATA", ROOT.parent / "shared" / "data")) / "naco_betapic"
FWHM = 4.6
STAR_FLUX = 764939.6
PLSC = 0.02719
SEPARATIONS = (0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2)
# VIP 2.1.1 on this machine type, ../shared/reference/postprocessing.md (used when VIP is absent).
VIP_REFERENCE = {
    "vip-fft": {
        "pca10": 2.75,
        "pca_annular5": 5.13,
        "cadi": 3.68,
        "snr_map": 15.4,
        "contrast": 13.4,
        "negfc": 219.6,
    },
    "opencv": {"pca10": 0.093, "pca_annular5": 1.43, "cadi": 0.091, "contrast": 1.14},
}

VIP_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, warnings
    warnings.filterwarnings("ignore")
    import numpy as np
    from vip_hci.psfsub import pca, pca_annular, median_sub
    from vip_hci.metrics import snr, snrmap, contrast_curve
    from vip_hci.fm import firstguess, cube_planet_free
    d = np.load(sys.argv[1])
    cfg = json.loads(sys.argv[2])
    cube, psf, pa = d["cube"].astype(float), d["psf"].astype(float), d["pa"].astype(float)
    free = d["free"].astype(float)
    xy, fwhm, rep = tuple(cfg["xy"]), cfg["fwhm"], cfg["repeats"]
    out = {}
    def timed(name, f, n):
        ts = []
        for _ in range(n):
            t = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t)
        out[name] = {"time": float(np.median(ts))}
        return r
    for imlib in ("vip-fft", "opencv"):
        o = out.setdefault(imlib, {})
        def timed_lib(name, f, n, o=o):
            ts = []
            for _ in range(n):
                t = time.perf_counter(); r = f(); ts.append(time.perf_counter() - t)
            o[name] = {"time": float(np.median(ts))}
            return r
        im = timed_lib("pca10", lambda: pca(cube, pa, ncomp=10, imlib=imlib, verbose=False), rep)
        o["pca10"]["snr"] = float(snr(im, xy, fwhm))
        np.save(cfg["out"] + f"/vip_pca10_{imlib}.npy", im)
        im = timed_lib("pca_annular5", lambda: pca_annular(cube, pa, fwhm=fwhm, ncomp=5, imlib=imlib, nproc=1,
                                                       verbose=False), 1)
        o["pca_annular5"]["snr"] = float(snr(im, xy, fwhm))
        im = timed_lib("cadi", lambda: median_sub(cube, pa, fwhm=fwhm, imlib=imlib, verbose=False), rep)
        o["cadi"]["snr"] = float(snr(im, xy, fwhm))
        cc = timed_lib("contrast", lambda: contrast_curve(free, pa, psf, fwhm, 0.02719, cfg["star"], algo=pca,
                   sigma=5, nbranch=1, ncomp=10, imlib=imlib, verbose=False, plot=False), 1)
        o["contrast"]["curve"] = [float(np.interp(s, cc["distance_arcsec"], cc["sensitivity_student"]))
                                  for s in cfg["seps"]]
    im = np.load(cfg["out"] + "/vip_pca10_vip-fft.npy")
    m = timed("snr_map", lambda: snrmap(im, fwhm, nproc=1, verbose=False), 1)
    out["snr_map"]["at_b"] = float(m[int(round(xy[1])), int(round(xy[0]))])
    if cfg["negfc"]:
        r = timed("negfc", lambda: firstguess(cube, pa, psf, ncomp=10, planets_xy_coord=[xy], fwhm=fwhm,
                  annulus_width=13, aperture_radius=2, imlib="opencv", interpolation="lanczos4",
                  f_range=np.linspace(100, 2000, 40),
                  simplex=True, verbose=False), 1)
        out["negfc"]["r_theta_f"] = [float(r[0][0]), float(r[1][0]), float(r[2][0])]
    print(json.dumps(out))
    """
)


def timed(function, repeats: int = 3) -> tuple[float, object]:
    """Median wall time (s) of ``repeats`` calls and the last result."""
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def load_naco() -> dict:
    """Cube re-centred on (50, 50) (negative Gaussian per frame), centred unit-aperture PSF, raw angles."""
    cube = fits.getdata(DATA / "naco_betapic_cube.fits").astype(np.float32)
    pa = fits.getdata(DATA / "naco_betapic_pa.fits").astype(np.float64).ravel()
    psf = fits.getdata(DATA / "naco_betapic_psf.fits").astype(np.float64)
    shifts = [fit_gaussian_2d(f, 51, 51, box=9, fwhm=FWHM, negative=True) for f in cube]
    cube = geometry.shift_frames(
        cube, np.array([50 - s.y for s in shifts]), np.array([50 - s.x for s in shifts])
    )
    c = psf.shape[0] // 2
    fit = fit_gaussian_2d(psf, c, c, box=9, fwhm=FWHM)
    psf = normalize_psf(geometry.shift_frame(psf, c - fit.y, c - fit.x), FWHM, size=19)
    return {"cube": cube.astype(np.float32), "pa": pa, "psf": psf}


def run_hcdc(naco: dict, repeats: int) -> dict:
    cube, angles, psf = naco["cube"], -naco["pa"], naco["psf"]
    res: dict = {}
    t, im = timed(lambda: pca.pca(cube, angles, fwhm=FWHM, ncomp=10), repeats)
    fit = fit_gaussian_2d(im, 62, 62, box=9, fwhm=FWHM)
    xy = (fit.x, fit.y)
    res["xy"] = xy
    res["pca10"] = {"time": t, "snr": snr.snr_at(im, *xy, FWHM).snr}
    t, im_m = timed(
        lambda: pca.pca(cube, angles, fwhm=FWHM, ncomp=10, scaling=None, interpolation="bicubic"), repeats
    )
    res["pca10_vip_settings"] = {"time": t, "snr": snr.snr_at(im_m, *xy, FWHM).snr}
    t, ims = timed(lambda: pca.pca(cube, angles, fwhm=FWHM, ncomp=[5, 10, 20]), repeats)
    res["pca_5_10_20_one_pass"] = {"time": t, "snr": [snr.snr_at(i, *xy, FWHM).snr for i in ims]}
    t, im = timed(lambda: pca.pca_annular(cube, angles, fwhm=FWHM, ncomp=5), repeats)
    res["pca_annular5"] = {"time": t, "snr": snr.snr_at(im, *xy, FWHM).snr}
    t, im = timed(lambda: adi.cadi(cube, angles, fwhm=FWHM, interpolation="bicubic"), repeats)
    res["cadi"] = {"time": t, "snr": snr.snr_at(im, *xy, FWHM).snr}
    snr._CACHE.clear()
    t_cold, m = timed(lambda: snr.snr_map(im_m, FWHM), 1)
    t_warm, m = timed(lambda: snr.snr_map(im_m, FWHM), repeats)
    res["snr_map"] = {
        "time": t_cold,
        "time_cached_geometry": t_warm,
        "at_b": float(m[int(round(xy[1])), int(round(xy[0]))]),
        "max": float(np.nanmax(m)),
    }
    sep, pa_b = geometry.pixel_to_polar(*xy, im.shape)
    t, r = timed(
        lambda: negfc_fit(
            cube, angles, psf, fwhm=FWHM, separation=sep, pa=pa_b, star_flux=STAR_FLUX, uncertainty_trials=0
        ),
        1,
    )
    res["negfc"] = {
        "time": t,
        "r_theta_f": [r.separation, r.theta, r.flux],
        "contrast": r.contrast,
        "evaluations": r.n_evaluations,
    }
    t, r6 = timed(
        lambda: negfc_fit(
            cube, angles, psf, fwhm=FWHM, separation=sep, pa=pa_b, star_flux=STAR_FLUX, uncertainty_trials=6
        ),
        1,
    )
    res["negfc_with_uncertainties"] = {"time": t, "errors": [r6.separation_err, r6.pa_err, r6.flux_err]}
    free = remove_companion(cube, angles, psf, r.separation, r.pa, r.flux)
    res["free"] = free

    def curve(params, step, **options):
        throughput.clear_cache()
        return contrast.contrast_curve(
            free,
            angles,
            normalize_psf(psf, FWHM, 15),
            fwhm=FWHM,
            star_flux=STAR_FLUX,
            params=params,
            throughput_step=step,
            **options,
        )

    # VIP's formula and fakes (S/N 100, every pixel), to compare with VIP number for number.
    vip_way = {"criterion": "vip", "fc_snr": 100.0}
    t, cc = timed(lambda: curve({"ncomp": 10, "scaling": None}, 1.0, **vip_way), repeats)
    res["contrast_vip_sampling"] = {"time": t, "curve": [float(cc.at(s / PLSC)) for s in SEPARATIONS]}
    # The previous default (VIP's formula, fakes at 10x the noise), for the timing.
    t, _ = timed(lambda: curve({"ncomp": 10}, None, criterion="vip", fc_snr=10.0), repeats)
    res["contrast_fixed_fakes"] = {"time": t}
    # hcdc's default: its detection's limit, throughput fakes iterated to it.
    t, cc = timed(lambda: curve({"ncomp": 10}, None), repeats)
    res["contrast"] = {"time": t, "curve": [float(cc.at(s / PLSC)) for s in SEPARATIONS]}
    t, _ = timed(
        lambda: contrast.contrast_curve(
            free, angles, normalize_psf(psf, FWHM, 15), fwhm=FWHM, star_flux=STAR_FLUX, params={"ncomp": 10}
        ),
        repeats,
    )
    res["contrast_cached_throughput"] = {"time": t}
    return res


def run_vip(vip_python: Path, naco: dict, hc: dict, out: Path, repeats: int, negfc: bool) -> dict | None:
    if not vip_python.exists():
        return None
    npz = out / "naco_input.npz"
    np.savez(npz, cube=naco["cube"], psf=naco["psf"], pa=naco["pa"], free=hc["free"])
    cfg = {
        "xy": list(hc["xy"]),
        "fwhm": FWHM,
        "repeats": repeats,
        "star": STAR_FLUX,
        "seps": list(SEPARATIONS),
        "out": str(out),
        "negfc": negfc,
    }
    script = out / "vip_run.py"
    script.write_text(VIP_SCRIPT)
    proc = subprocess.run(
        [str(vip_python), str(script), str(npz), json.dumps(cfg)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        print("VIP run failed:\n" + proc.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


SPHERE_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import numpy as np
    from hcdc.science.postprocessing import pca, snr
    nfr, n = int(sys.argv[1]), int(sys.argv[2])
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:n, 0:n] - n // 2
    env = (1e3 / (1 + (x * x + y * y) / 100.0)).astype(np.float32)
    base = rng.standard_normal((n, n)).astype(np.float32)
    drift = rng.standard_normal((n, n)).astype(np.float32)
    cube = np.empty((nfr, n, n), dtype=np.float32)
    for k in range(nfr):
        t = k / nfr
        cube[k] = env * (base + 0.3 * t * drift) + rng.standard_normal((n, n), dtype=np.float32)
    angles = np.linspace(-40, 40, nfr)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter(); im = pca.pca(cube, angles, fwhm=4.0, ncomp=10); t_pca = time.perf_counter() - t
    # Exact S/N map within 100 px (the cost grows as r^3: the full 1024^2 frame takes minutes).
    t = time.perf_counter()
    m = snr.snr_map(im, 4.0, r_max=min(100, n // 2 - 8))
    t_snr = time.perf_counter() - t
    print(json.dumps({"frames": nfr, "size": n, "cube_MiB": cube.nbytes / 2**20, "pca10_s": t_pca,
                      "snr_map_s": t_snr, "rss_before_MiB": rss0 / 1024,
                      "peak_rss_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
    """
)


def run_sphere(kind: str) -> dict:
    """Full-frame PCA 10 + exact S/N map on a SPHERE-sized synthetic cube, in a child process (peak RSS)."""
    frames, size = {"ifs": (100, 290), "irdis": (300, 1024)}[kind]
    proc = subprocess.run(
        [sys.executable, "-c", SPHERE_CHILD, str(frames), str(size)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_sphere_table(which: str) -> None:
    """Print the SPHERE-sized table for ``which`` ('ifs', 'irdis', 'both' or 'none')."""
    if which == "none":
        return
    print("\n## SPHERE-sized synthetic cubes (hcdc full-frame PCA 10 + exact S/N map, child process)\n")
    print("| cube | size (MiB) | PCA 10 (s) | S/N map r <= 100 px (s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for kind in ["ifs", "irdis"] if which == "both" else [which]:
        s = run_sphere(kind)
        print(
            f"| {kind.upper()} {s['frames']} x {s['size']}^2 | {s['cube_MiB']:.0f} "
            f"| {s['pca10_s']:.2f} | "
            f"{s['snr_map_s']:.2f} | {s['peak_rss_MiB']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vip-python", type=Path, default=ROOT / ".venv-bench" / "bin" / "python")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sphere", choices=["none", "ifs", "irdis", "both"], default="ifs")
    parser.add_argument("--vip-negfc", action="store_true", help="also run VIP's NEGFC (minutes)")
    parser.add_argument("--only-sphere", action="store_true", help="skip the NACO comparison")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "postprocessing")
    parser.add_argument(
        "--workers",
        type=int,
        choices=[1, 2],
        default=None,
        help="hcdc threads for derotation and annular-PCA eigen-decompositions (default: min(2, cores))",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.workers is not None:
        base._WORKERS = args.workers  # read at call time by derotate_and_collapse and pca_annular
    print(
        f"# machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load {os.getloadavg()[0]:.1f}; python {platform.python_version()}, numpy {np.__version__}; "
        f"hcdc worker threads {base._WORKERS}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )
    if args.only_sphere:
        run_sphere_table(args.sphere)
        return
    naco = load_naco()
    hc = run_hcdc(naco, args.repeats)
    print(
        f"# load average after the hcdc runs: {' / '.join(f'{v:.1f}' for v in os.getloadavg())} (1/5/15 min)"
    )
    with tempfile.TemporaryDirectory(dir=args.out) as tmp:
        vip = run_vip(args.vip_python, naco, hc, Path(tmp), args.repeats, args.vip_negfc)
    source = "measured now" if vip else "reference numbers (postprocessing.md), VIP not run"
    print(f"\n## NACO beta Pic (61 x 101 x 101), VIP: {source}\n")
    print(
        "| step | hcdc (s) | VIP vip-fft (s) | VIP opencv (s) | speed-up vs vip-fft / opencv "
        "| S/N at b hcdc / VIP |"
    )
    print("|---|---|---|---|---|---|")
    rows = [
        ("pca10", "full-frame PCA 10 PCs"),
        ("pca_annular5", "annular PCA 5 PCs (VIP defaults)"),
        ("cadi", "cADI median, full frame"),
        ("snr_map", "exact S/N map"),
        ("contrast", "5-sigma contrast curve (PCA 10; hcdc: its detection limit)"),
        ("negfc", "NEGFC (r, theta, flux)"),
    ]
    for key, label in rows:
        t = hc[key]["time"]
        fft = (
            (vip or {}).get("vip-fft", {}).get(key, {}).get("time")
            if vip
            else VIP_REFERENCE["vip-fft"].get(key)
        )
        ocv = (
            (vip or {}).get("opencv", {}).get(key, {}).get("time")
            if vip
            else VIP_REFERENCE["opencv"].get(key)
        )
        if vip and key in ("snr_map", "negfc"):
            fft = vip.get(key, {}).get("time", VIP_REFERENCE["vip-fft"].get(key))
            ocv = None
        ratio = " / ".join(f"{v / t:.0f}x" if v else "-" for v in (fft, ocv))
        s_h = hc[key].get("snr", hc[key].get("at_b"))
        s_v = (vip or {}).get("vip-fft", {}).get(key, {}).get("snr") if vip else None
        if vip and key == "snr_map":
            s_v = vip["snr_map"].get("at_b")
        snr_txt = (
            f"{s_h:.2f} / {s_v:.2f}" if isinstance(s_h, float) and s_v else (f"{s_h:.2f}" if s_h else "")
        )
        fmt = lambda v: f"{v:.3g}" if v else "-"  # noqa: E731
        print(f"| {label} | {t:.3g} | {fmt(fft)} | {fmt(ocv)} | {ratio} | {snr_txt} |")
    print(
        f"\nhcdc details: PCA 10 with VIP's settings (no mean subtraction, bicubic): "
        f"{hc['pca10_vip_settings']['time']:.3g} s, S/N {hc['pca10_vip_settings']['snr']:.2f}; "
        f"PCA 5/10/20 in one pass {hc['pca_5_10_20_one_pass']['time']:.3g} s, S/N "
        f"{', '.join(f'{v:.2f}' for v in hc['pca_5_10_20_one_pass']['snr'])}; S/N map with cached geometry "
        f"{hc['snr_map']['time_cached_geometry']:.3g} s; contrast curve with cached throughput "
        f"{hc['contrast_cached_throughput']['time']:.3g} s; previous default curve (VIP formula, fakes "
        f"at 10x the noise) {hc['contrast_fixed_fakes']['time']:.3g} s; NEGFC with 6 injection-recovery "
        "trials "
        f"{hc['negfc_with_uncertainties']['time']:.3g} s, errors (r px, PA deg, flux) "
        f"{', '.join(f'{v:.3g}' for v in hc['negfc_with_uncertainties']['errors'])}"
    )
    r, th, f = hc["negfc"]["r_theta_f"]
    print(
        f"NEGFC hcdc: r {r:.3f} px, theta {th:.2f} deg, flux {f:.1f} "
        f"(contrast {hc['negfc']['contrast']:.3e}, "
        f"{hc['negfc']['evaluations']} evaluations)"
        + (
            f"; VIP: {vip['negfc']['r_theta_f']}"
            if vip and "negfc" in vip
            else "; VIP 2.1.1 (reference): 16.61, 44.73, 716.9"
        )
    )
    print('\n| sep (") | hcdc VIP-way | VIP vip-fft | VIP opencv | ratio | hcdc default (detection limit) |')
    print("|---|---|---|---|---|---|")
    ref = [5.08e-3, 3.25e-3, 8.43e-4, 4.36e-4, 2.14e-4, 1.34e-4, 8.67e-5, 4.50e-5]
    vf = vip["vip-fft"]["contrast"]["curve"] if vip else ref
    vo = vip["opencv"]["contrast"]["curve"] if vip else [None] * len(ref)
    for i, s in enumerate(SEPARATIONS):
        h = hc["contrast_vip_sampling"]["curve"][i]
        print(
            f"| {s} | {h:.3g} | {vf[i]:.3g} | {vo[i]:.3g} | {h / vf[i]:.2f} "
            f"| {hc['contrast']['curve'][i]:.3g} |"
            if vo[i]
            else f"| {s} | {h:.3g} | {vf[i]:.3g} | - | {h / vf[i]:.2f} | {hc['contrast']['curve'][i]:.3g} |"
        )
    run_sphere_table(args.sphere)
    hc.pop("free")
    (args.out / "results.json").write_text(json.dumps({"hcdc": hc, "vip": vip}, indent=1, default=float))


if __name__ == "__main__":
    main()
