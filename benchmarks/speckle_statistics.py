"""Speckle statistics of the simulator against the sky: the real NACO beta Pic cube vs simulated IRDIS.

Measures, on the real NACO L' cube with beta Pic b removed (NEGFC values of
../shared/data/naco_betapic/README.md) and on simulated IRDIS H2 sequences of the same length
(61 frames), the same derotation angles (81.4 deg of rotation) and the same times, with the old
speckle model (80 Airy speckles whose fluxes breathe by 10 %) and the new evolving field
(:mod:`hcdc.science.simulation.speckles`):

* the frame-to-frame correlation of the speckle pattern versus lag and separation;
* the radial noise profile (1-sigma contrast of one frame, of the cADI and of the PCA-10 image);
* the ratio of the S/N that cADI and full-frame PCA-10 give on injected fakes.

Separations are compared in lambda/D (NACO L': 3.52 px; IRDIS H2: 3.35 px). Writes
``docs/speckle_statistics.png`` and ``benchmarks/out/speckle_statistics.json``, and prints the
table of ``docs/simulation.md``::

    PYTHONPATH=src .venv/bin/python benchmarks/speckle_statistics.py

Times of the NACO frames are not in the files: they are the hour angles at which beta Pic
(Dec -51.07 deg) has the files' parallactic angles seen from Paranal (lat -24.63 deg), 3.3 h in all.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from hcdc.science.simulation import irdis, statistics
from hcdc.science.simulation.sequence import simulate_coronagraphic_sequence
from hcdc.science.simulation.speckles import NACO_LIKE_WITH_LOW_ORDER, make_evolving_speckles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postprocessing_vs_vip import FWHM, ROOT, STAR_FLUX, load_naco  # noqa: E402

NACO_LOD_PX = 3.52  # lambda/D at L' (3.8 um, 8.2 m) in 27.19 mas pixels
#: beta Pic b, NEGFC (VIP 2.1.1, README): separation px, aperture flux ADU; PA from its pixel.
B_SEPARATION_PX, B_FLUX, B_XY = 16.61, 716.9, (61.867, 61.882)
#: Half-width (FWHM) of the strip along the debris disk left out of the NACO noise profiles.
DISK_HALF_WIDTH_FWHM = 1.5
BETA_PIC_DEC_DEG, PARANAL_LAT_DEG = -51.066, -24.627
#: IRDIS H2 (DB_H23 left field) as the night simulator sees it.
H2 = irdis.BandOptics(1593.0, 52.0, 12.255, 8.0)
STAR_FLUX_ADU_S = 2.0e4 * 52.0  # STAR_FLUX_PER_NM x bandwidth (hcdc.instruments.sphere.irdis.simulate)
DIT_S = 64.0
#: Acceptance: every simulated statistic within this factor of the real one.
FACTOR = 1.5


def naco_planet_free() -> dict:
    """NACO cube re-centred, beta Pic b subtracted; derotation angles (hcdc sign); PSF."""
    from hcdc.science import geometry
    from hcdc.science.postprocessing.negfc import remove_companion

    naco = load_naco()
    angles = -naco["pa"]
    _, pa_b = geometry.pixel_to_polar(*B_XY, naco["cube"].shape)
    cube = remove_companion(naco["cube"], angles, naco["psf"], B_SEPARATION_PX, pa_b, B_FLUX)
    return {"cube": cube, "angles": angles, "pa": naco["pa"], "psf": naco["psf"]}


def disk_mask(shape: tuple[int, int], half_width_fwhm: float = DISK_HALF_WIDTH_FWHM) -> np.ndarray:
    """Pixels of the final (raw-angle) image within ``half_width_fwhm`` FWHM of the disk's mid-plane.

    The beta Pic debris disk is edge-on and b lies in it, so the mid-plane is the line through
    the star and b's position: sky-fixed signal that ADI keeps, not speckle noise.
    """
    from hcdc.science import geometry

    cy, cx = geometry.frame_center(shape)
    ux, uy = B_XY[0] - cx, B_XY[1] - cy
    norm = np.hypot(ux, uy)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    distance = np.abs((xx - cx) * uy / norm - (yy - cy) * ux / norm)
    return distance <= half_width_fwhm * FWHM


def hour_angles_s(parallactic_deg: np.ndarray, dec_deg: float, lat_deg: float) -> np.ndarray:
    """Hour angle (s of sidereal time) at which a star of ``dec_deg`` has each parallactic angle."""
    h = np.radians(np.linspace(-179.0, 179.0, 200001))
    phi, dec = np.radians(lat_deg), np.radians(dec_deg)
    q = np.degrees(np.arctan2(np.sin(h), np.tan(phi) * np.cos(dec) - np.sin(dec) * np.cos(h)))
    order = np.argsort(q)  # q is monotonic in h for a star that does not pass the zenith
    return np.interp(parallactic_deg, q[order], h[order]) * 86164.1 / (2 * np.pi)


def simulated(model: str, angles: np.ndarray, times: np.ndarray, seed: int = 1) -> dict:
    """A simulated IRDIS H2 sequence with the ``'old'`` (Airy speckles), ``'evolving'`` (the night
    simulator's default) or ``'new'`` (evolving + low-order field) speckle model."""
    rng = np.random.default_rng(seed)
    if model == "old":
        speckles = irdis.make_speckles(rng)
    elif model == "evolving":  # the night simulator's default (no low-order field)
        speckles = make_evolving_speckles(rng)
    else:  # "new": with the low-order field
        speckles = make_evolving_speckles(rng, **NACO_LIKE_WITH_LOW_ORDER)
    sim = simulate_coronagraphic_sequence(
        optics=H2,
        times_s=times,
        derot_deg=angles,
        speckles=speckles,
        star_flux_adu_s=STAR_FLUX_ADU_S,
        dit_s=DIT_S,
        size=101,
        mask_radius_px=92.5 / 12.255,
        seed=seed,
    )
    return {
        "cube": sim.cube,
        "angles": sim.angles,
        "psf": sim.psf,
        "fwhm": sim.fwhm,
        "star_flux": sim.star_flux,
    }


def median_statistics(runs: list[statistics.SequenceStatistics]) -> statistics.SequenceStatistics:
    """Element-wise median of several realisations (same radii and lags)."""
    fields = (
        "correlation",
        "raw_profile",
        "cadi_profile",
        "pca_profile",
        "fake_contrast",
        "snr_cadi",
        "snr_pca",
    )
    med = {f: np.median(np.stack([getattr(r, f) for r in runs]), axis=0) for f in fields}
    return statistics.SequenceStatistics(
        radii_ld=runs[0].radii_ld, lags=runs[0].lags, ncomp=runs[0].ncomp, **med
    )


def measure_all(seeds: tuple[int, ...] = (1, 2, 3)) -> dict[str, statistics.SequenceStatistics]:
    """Statistics of the real cube and of the two simulated models (median over ``seeds``)."""
    naco = naco_planet_free()
    times = hour_angles_s(naco["pa"], BETA_PIC_DEC_DEG, PARANAL_LAT_DEG)
    out = {
        "naco": statistics.sequence_statistics(
            naco["cube"],
            naco["angles"],
            naco["psf"],
            fwhm=FWHM,
            star_flux=STAR_FLUX,
            lod_px=NACO_LOD_PX,
            final_mask=disk_mask(naco["cube"].shape[-2:]),
        )
    }
    for model in ("old", "new"):
        runs = []
        for seed in seeds:
            sim = simulated(model, naco["angles"], times, seed)
            runs.append(
                statistics.sequence_statistics(
                    sim["cube"],
                    sim["angles"],
                    sim["psf"],
                    fwhm=sim["fwhm"],
                    star_flux=sim["star_flux"],
                    lod_px=H2.lambda_over_d_px(),
                )
            )
        out[model] = median_statistics(runs)
    return out


def ratios(sim: statistics.SequenceStatistics, real: statistics.SequenceStatistics) -> dict[str, np.ndarray]:
    """Simulated / real for each compared statistic (per separation; correlation per lag too)."""
    return {
        "correlation": sim.correlation / real.correlation,
        "raw_profile": sim.raw_profile / real.raw_profile,
        "cadi_profile": sim.cadi_profile / real.cadi_profile,
        "pca_profile": sim.pca_profile / real.pca_profile,
        "snr_ratio": sim.snr_ratio / real.snr_ratio,
    }


def plot(stats: dict[str, statistics.SequenceStatistics], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 8.5))
    axes = fig.subplots(2, 3)
    styles = {
        "naco": ("k", "-", "NACO L' beta Pic (real)"),
        "old": ("tab:red", ":", "old simulator"),
        "new": ("tab:blue", "--", "new simulator"),
    }
    naco = stats["naco"]
    n_frames = 61
    for key, s in stats.items():
        color, ls, label = styles[key]
        for j, lag in enumerate(s.lags):
            if j in (0, len(s.lags) - 1):
                axes[0, 0].plot(
                    s.radii_ld,
                    s.correlation[:, j],
                    color=color,
                    ls=ls,
                    marker="o" if j == 0 else "s",
                    label=f"{label}, lag {lag}",
                )
        i3 = int(np.argmin(np.abs(s.radii_ld - 3.0)))
        i8 = int(np.argmin(np.abs(s.radii_ld - 8.0)))
        axes[0, 1].plot(
            s.lags / (n_frames - 1),
            s.correlation[i3],
            color=color,
            ls=ls,
            marker="o",
            label=f"{label}, 3 l/D",
        )
        axes[0, 1].plot(
            s.lags / (n_frames - 1),
            s.correlation[i8],
            color=color,
            ls=ls,
            marker="s",
            label=f"{label}, 8 l/D",
        )
        axes[0, 2].semilogy(s.radii_ld, s.raw_profile, color=color, ls=ls, marker="o", label=label)
        axes[1, 0].semilogy(s.radii_ld, s.cadi_profile, color=color, ls=ls, marker="o", label=f"{label} cADI")
        axes[1, 0].semilogy(
            s.radii_ld, s.pca_profile, color=color, ls=ls, marker="s", label=f"{label} PCA-{s.ncomp}"
        )
        axes[1, 1].plot(s.radii_ld, s.snr_ratio, color=color, ls=ls, marker="o", label=label)
    for key in ("old", "new"):
        color, ls, label = styles[key]
        r = ratios(stats[key], naco)
        for name, marker in (
            ("raw_profile", "o"),
            ("cadi_profile", "s"),
            ("pca_profile", "^"),
            ("snr_ratio", "D"),
        ):
            axes[1, 2].semilogy(
                naco.radii_ld, r[name], color=color, ls=ls, marker=marker, label=f"{label}: {name}"
            )
    for y in (1 / FACTOR, FACTOR):
        axes[1, 2].axhline(y, color="grey", lw=0.8)
    titles = [
        ("speckle correlation vs separation", "separation (lambda/D)", "correlation"),
        ("speckle correlation vs lag", "lag (fraction of the sequence)", "correlation"),
        ("raw frame: 1-sigma contrast", "separation (lambda/D)", "contrast"),
        ("after ADI: 1-sigma contrast (no throughput)", "separation (lambda/D)", "contrast"),
        ("S/N(cADI) / S/N(PCA-10) on injected fakes", "separation (lambda/D)", "ratio"),
        ("simulated / real", "separation (lambda/D)", "ratio (grey: factor 1.5)"),
    ]
    for ax, (title, xl, yl) in zip(axes.ravel(), titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--png", type=Path, default=ROOT / "docs" / "speckle_statistics.png")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "out" / "speckle_statistics.json")
    args = parser.parse_args()
    start = time.perf_counter()
    stats = measure_all(tuple(args.seeds))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({k: v.to_dict() for k, v in stats.items()}, indent=1))
    plot(stats, args.png)
    naco = stats["naco"]
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {time.perf_counter() - start:.0f} s")
    print("| statistic | r (l/D) | " + " | ".join(f"{r:g}" for r in naco.radii_ld) + " |")
    print("|---|---|" + "---|" * naco.radii_ld.size)
    rows = [
        ("correlation, lag " + str(lag), lambda s, j=j: s.correlation[:, j])
        for j, lag in enumerate(naco.lags)
    ]
    rows += [
        ("raw 1-sigma contrast", lambda s: s.raw_profile),
        ("cADI 1-sigma contrast", lambda s: s.cadi_profile),
        (f"PCA-{naco.ncomp} 1-sigma contrast", lambda s: s.pca_profile),
        ("S/N cADI / S/N PCA", lambda s: s.snr_ratio),
    ]
    worst = {}
    for name, get in rows:
        for key in ("naco", "old", "new"):
            vals = get(stats[key])
            fmt = "{:.2f}" if "correlation" in name or "S/N" in name else "{:.1e}"
            print(f"| {name} | {key} | " + " | ".join(fmt.format(v) for v in vals) + " |")
        for key in ("old", "new"):
            q = get(stats[key]) / get(naco)
            worst.setdefault(key, []).append((name, np.maximum(q, 1 / q)))
    for key in ("old", "new"):
        print(f"# {key}: factor between simulated and real (max over separations; median in brackets):")
        print("#   " + "; ".join(f"{n}: {np.nanmax(q):.2f} ({np.nanmedian(q):.2f})" for n, q in worst[key]))


if __name__ == "__main__":
    main()
