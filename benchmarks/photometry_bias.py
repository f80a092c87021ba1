"""Where the ~10 % low Level 2 photometry at 14 px comes from, and what fixes it (issue 8).

Usage::

    python benchmarks/photometry_bias.py factors SEP_PX CONTRAST DRAWS     # e.g. 14 2e-3 12
    python benchmarks/photometry_bias.py fake-flux SEP_PX CONTRAST DRAWS
    python benchmarks/photometry_bias.py versions SEP_PX CONTRAST DRAWS     # 1.5 vs 1.6 photometry

Each draw simulates a small ADI cube (:func:`simulate_adi_cube`, 16 frames, 61 px, FWHM 4 px,
60 deg of rotation) with one companion at ``SEP_PX`` and ``CONTRAST``, reduces it with PCA 3
(detection threshold 3) and keeps the detection within 2 px of the truth.

* ``factors``: the pipeline's contrast and its two factors (signal / throughput) against the
  companion's own: its throughput measured with the exact companion model removed (same
  reduction), and its signal at the true position. One JSON line per draw, then the means.
* ``fake-flux``: photometry fakes as bright as the detection's *flux* (signal / throughput,
  iterated twice, on the cube with the companion removed) instead of at ``fc_snr`` = its S/N
  (its reduced signal, fainter by the throughput): contrast / truth per draw, old and new.
* ``versions``: the whole :func:`postprocess` as ``l2-postprocess`` 1.5 and 1.6 run it (fakes at
  the S/N, or ``photometry_fakes_at_flux``; 1.4's photometric errors, astrometric errors): per
  draw contrast / truth, the pull (contrast - truth) / CONTRAST_ERR, 1.6's iterations, and the
  astrometric pulls (measured - true separation and PA over their errors), both versions. The
  frame is 61 px, or wider for companions beyond 20 px.

Measured numbers: docs/postprocessing.md ("Photometry at small separations").
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.negfc import remove_companion
from hcdc.science.postprocessing.photometry import aperture_sums
from hcdc.science.postprocessing.products import Detection, PostprocessResult
from hcdc.science.postprocessing.run import postprocess, prepare_psfs
from hcdc.science.postprocessing.snr import snr_at
from hcdc.science.postprocessing.throughput import run_algorithm, throughput_curve
from hcdc.science.simulation.adi import SimulatedADI, simulate_adi_cube

FWHM = 4.0
PCA = {"ncomp": 3}


@dataclass
class Draw:
    """One simulated cube, its Level 2 result and the detection of its companion."""

    seed: int
    sim: SimulatedADI
    result: PostprocessResult
    detection: Detection
    psf: np.ndarray  # the normalised PSF stamp the pipeline injects


def detected_draws(
    separation: float, contrast: float, draws: int, missing: bool = False, **options: object
) -> Iterator[Draw | None]:
    """The draws whose companion is detected within 2 px of its true position (with ``missing``
    None for the others); ``options`` go to :func:`postprocess` (default: no astrometric errors)."""
    for seed in range(draws):
        sim = simulate_adi_cube(
            n_frames=16,
            size=max(61, 2 * int(separation + 10) + 1),
            fwhm=FWHM,
            rotation=60.0,
            companions=[(separation, 30.0 + 37.0 * seed, contrast)],
            seed=seed,
        )
        try:
            res = postprocess(
                sim.cube,
                sim.angles,
                algorithm="pca",
                params=PCA,
                psf=sim.psf,
                fwhm=FWHM,
                star_flux=sim.star_flux,
                compute_contrast=False,
                detection_threshold=3.0,
                **{"astrometric_errors": False, **options},  # type: ignore[arg-type]
            )
        except ValueError as exc:  # e.g. a candidate at exactly fwhm/2 + 1 px, refused by snr_at
            print(f"seed {seed}: {exc}", flush=True)
            if missing:
                yield None
            continue
        t = sim.companions[0]
        near = [d for d in res.detections if np.hypot(d.x - t.x, d.y - t.y) <= 2.0]
        if near:
            det = min(near, key=lambda d: np.hypot(d.x - t.x, d.y - t.y))
            yield Draw(seed, sim, res, det, prepare_psfs(sim.psf, 1, FWHM)[0][0])
        elif missing:
            yield None


def _aperture(image: np.ndarray, x: float, y: float) -> float:
    return float(aperture_sums(image, np.array([x]), np.array([y]), FWHM / 2.0)[0])


def factors(draw: Draw, contrast: float) -> dict[str, float]:
    """The pipeline's contrast split into signal and throughput, against the companion's own."""
    sim, det, t = draw.sim, draw.detection, draw.sim.companions[0]
    image = draw.result.image
    clean = inject_companions(sim.cube, sim.angles, draw.psf, t.separation, t.pa, -t.flux)  # exact removal
    image_clean = run_algorithm("pca", clean, sim.angles, fwhm=FWHM, cache=False, **PCA)
    sig_det = snr_at(image, det.x, det.y, FWHM).signal
    return dict(
        seed=draw.seed,
        snr=det.snr,
        ratio=det.contrast / contrast,
        fake_tp=sig_det / (det.contrast * sim.star_flux),  # the pipeline's throughput (signal / flux)
        own_tp=_aperture(image - image_clean, t.x, t.y) / t.flux,
        sig_det=sig_det / t.flux,
        sig_true=snr_at(image, t.x, t.y, FWHM).signal / t.flux,
        raw_true=_aperture(image, t.x, t.y) / t.flux,
        dpos=float(np.hypot(det.x - t.x, det.y - t.y)),
    )


def flux_with_fakes_at_flux(draw: Draw, iterations: int = 2) -> float:
    """The companion's flux with photometry fakes at the current flux estimate (not its S/N)."""
    sim, det = draw.sim, draw.detection
    cube = sim.cube.astype(np.float32)
    signal = snr_at(draw.result.image, det.x, det.y, FWHM).signal
    flux = det.contrast * sim.star_flux  # the pipeline's estimate (fakes at S/N x noise)
    for _ in range(iterations):  # fakes on the cube with the companion removed
        clean = remove_companion(cube, sim.angles, draw.psf, det.separation_px, det.pa_deg, flux)
        curve = throughput_curve(
            clean,
            sim.angles,
            draw.psf,
            fwhm=FWHM,
            algorithm="pca",
            params=PCA,
            separations=[det.separation_px],
            nbranch=6,
            pa=det.pa_deg + 30.0,
            fake_flux=flux,
            fc_rad_sep=1,
            cache=False,
        )
        flux = signal / float(np.mean(curve.branches[:, 0]))
    return flux


def versions(separation: float, contrast: float, draws: int) -> list[dict[str, float]]:
    """1.5 against 1.6 photometry (and astrometric errors) on the same draws."""
    options = {"aperture_noise_errors": True, "astrometric_errors": True}
    rows = []
    for old, new in zip(
        detected_draws(separation, contrast, draws, True, **options),
        detected_draws(separation, contrast, draws, True, photometry_fakes_at_flux=True, **options),
        strict=True,
    ):
        if old is None or new is None:
            continue
        t = old.sim.companions[0]
        row: dict[str, float] = {"seed": old.seed, "snr": old.detection.snr}
        for name, draw in (("old", old), ("new", new)):
            d = draw.detection
            row[f"{name}_ratio"] = d.contrast / contrast
            row[f"{name}_pull"] = (d.contrast - contrast) / d.contrast_err
            row[f"{name}_sep_pull"] = (d.separation_px - t.separation) / d.separation_err_px
            dpa = (d.pa_deg - t.pa + 180.0) % 360.0 - 180.0
            row[f"{name}_pa_pull"] = dpa / d.pa_err_deg
        fakes = new.result.photometry_fakes[new.result.detections.index(new.detection)]
        row["iterations"] = fakes["iterations"]
        row["converged"] = float(fakes["converged"])
        rows.append(row)
        print(json.dumps({k: round(float(v), 3) for k, v in row.items()}), flush=True)
    return rows


def _mean_and_error(values: list[float]) -> str:
    return f"{np.mean(values):.3f} +- {np.std(values) / np.sqrt(len(values)):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("factors", "fake-flux", "versions"))
    parser.add_argument("separation", type=float, help="companion separation (px)")
    parser.add_argument("contrast", type=float, help="companion contrast")
    parser.add_argument("draws", type=int, help="number of simulated cubes (seeds 0..N-1)")
    parser.add_argument("--iterations", type=int, default=2, help="fake-flux: measurements (default 2)")
    args = parser.parse_args()
    rows: list[dict[str, float]] = []
    if args.what == "versions":
        rows = versions(args.separation, args.contrast, args.draws)
        if not rows:
            raise SystemExit("no draw detected its companion")
        keys = [k for k in rows[0] if k != "seed"]
        print("MEAN", {k: _mean_and_error([r[k] for r in rows]) for k in keys}, "n", len(rows))
        rms = {k: f"{np.sqrt(np.mean(np.square([r[k] for r in rows]))):.2f}" for k in keys if "pull" in k}
        print("RMS", rms)
        return
    for draw in detected_draws(args.separation, args.contrast, args.draws):
        if args.what == "factors":
            row = factors(draw, args.contrast)
        else:
            truth = draw.sim.companions[0].flux
            row = dict(
                seed=draw.seed,
                old=draw.detection.contrast / args.contrast,
                new=flux_with_fakes_at_flux(draw, args.iterations) / truth,
            )
        rows.append(row)
        print(json.dumps({k: round(float(v), 3) for k, v in row.items()}), flush=True)
    if not rows:
        raise SystemExit("no draw detected its companion")
    keys = [k for k in rows[0] if k != "seed"]
    print("MEAN", {k: _mean_and_error([r[k] for r in rows]) for k in keys}, "n", len(rows))


if __name__ == "__main__":
    main()
