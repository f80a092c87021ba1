"""Bias or noise? NEGFC spectra of the same simulated companions under many speckle realisations
(issue 16, docs/ifs.md §4 "Seed 3's water-band shift").

For one seed: the simulated small YJ night with speckles and the same night without them
(``speckle_level=0``: same detector, lenslet grid, star position, companions, angles; only the
evolving speckles are gone), both through ``level1-ifs`` and ``l2-postprocess`` as
``companion_spectra_seeds.py`` runs them. Their Level 1 cubes' difference ``D`` (oriented and
cropped as ``l3-companion-spectra`` does) holds the speckles and the photon noise, not the
companions. Each companion's spectrum is then fitted (NEGFC per channel, ``l3-companion-spectra``
1.2's fit without trials, at the speckled night's Level 2 position) on

* the speckle-free cube ``S`` (the estimator's bias at this geometry, with photon noise only);
* ``S + rot(D, phi)`` for ``phi`` = 0, 360/n, ... (``phi`` = 0 is the speckled night itself; the
  rotated ones are other speckle fields of the same statistics, at the same geometry).

Per companion and channel: ratio to the truth without speckles, the mean and rms of the ratio over
the realisations, the seed's own (``phi`` = 0) excursion in units of that rms, and the per-channel
errors of ``l3-companion-spectra`` 1.2 (its trials) on the speckled night when that product
exists::

    PYTHONPATH=src .venv/bin/python benchmarks/companion_spectra_realisations.py --seed 3 \\
        [--rotations 8] [--work /tmp/companion-spectra-seeds] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from astropy.io import fits
from companion_spectra_seeds import level2_of, matching_row, night_name


def recipe_inputs(paths: dict[str, str]) -> dict:
    """The Level 1 cube, angles, wavelengths, PSFs, star fluxes, FWHMs and the Level 2 detections
    and ASDI parameters, prepared as ``l3-companion-spectra`` prepares them."""
    from hcdc.pipeline.recipes.postprocess import PostprocessParameters, _level1_inputs
    from hcdc.science.orientation import oriented_cube
    from hcdc.science.postprocessing.products import read_product
    from hcdc.science.postprocessing.run import crop_slices, prepare_psfs

    level2 = read_product(paths["level2"])
    data = _level1_inputs(Path(paths["level1"]), PostprocessParameters(algorithm=level2.algorithm))
    cube = oriented_cube(data["cube"], data["orientation"])
    size = level2.image.shape[-1]
    ys, xs = crop_slices(cube.shape, (size - 1) / 2)
    wavelengths = np.asarray(data["wavelengths"], dtype=np.float64)
    psfs, fwhms, fluxes = prepare_psfs(oriented_cube(data["psf"], data["orientation"]), wavelengths.size)
    return {
        "cube": np.ascontiguousarray(cube[:, :, ys, xs], dtype=np.float32),
        "angles": np.asarray(data["angles"], dtype=np.float64),
        "wavelengths": wavelengths,
        "psfs": np.stack(psfs),
        "fluxes": np.asarray(fluxes),
        "fwhms": np.asarray(fwhms),
        "detections": level2.detections,
        "params": level2.params,
        "pixel_scale_mas": level2.pixel_scale_mas,
    }


def matched(detections, comp: dict, pixel_scale_mas: float):
    """The Level 2 detection of a truth companion (within 5 mas and 2 deg), or None."""
    for d in sorted(detections, key=lambda d: -d.snr):
        if (
            abs(d.separation_px * pixel_scale_mas - comp["separation_mas"]) < 5.0
            and abs((d.pa_deg - comp["pa_deg"] + 180.0) % 360.0 - 180.0) < 2.0
        ):
            return d
    return None


def rotated(cube: np.ndarray, angle_deg: float) -> np.ndarray:
    """Every frame of ``cube`` turned by ``angle_deg`` about the star (NaN outside filled with 0)."""
    from hcdc.science.geometry import rotate_frame

    if angle_deg == 0.0:
        return cube
    out = np.empty_like(cube)
    for w in range(cube.shape[0]):
        for k in range(cube.shape[1]):
            out[w, k] = rotate_frame(cube[w, k], angle_deg, fill_value=0.0)
    return out


def fit(inputs: dict, cube: np.ndarray, x: float, y: float) -> np.ndarray:
    """The contrast spectrum of ``l3-companion-spectra`` 1.2's fit (no trials) at ``(x, y)``."""
    from hcdc.science.postprocessing.spectrum_negfc import negfc_spectrum

    params = inputs["params"]
    result = negfc_spectrum(
        cube,
        inputs["angles"],
        inputs["wavelengths"],
        inputs["psfs"],
        inputs["fluxes"],
        inputs["fwhms"],
        x=x,
        y=y,
        ncomp=int(params.get("ncomp", 10)),
        mask_center_px=params.get("mask_center_px"),
        collapse=str(params.get("collapse", "median")),
        n_trials=0,
    )
    return result.contrast


def trial_errors(work: Path, night: str, comp: dict) -> np.ndarray | None:
    """``l3-companion-spectra`` 1.2's per-channel errors of ``comp`` on ``night``, when present."""
    path = work / night / "l3-1.2" / "companion_spectra.fits"
    if not path.exists():
        return None
    with fits.open(path) as hdul:
        companions, spectrum = hdul["COMPANIONS"].data, hdul["SPECTRUM"].data
    row = matching_row(companions, comp)
    return None if row is None else np.asarray(spectrum["CONTRAST_ERR"][spectrum["ID"] == row["ID"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--rotations", type=int, default=8, help="speckle realisations (rotations of D)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/companion-spectra-seeds"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    paths, truth = level2_of(args.seed, "small", args.work)
    clean_paths, _ = level2_of(args.seed, "small", args.work, speckle_level=0.0)
    speckled, clean = recipe_inputs(paths), recipe_inputs(clean_paths)
    difference = speckled["cube"] - clean["cube"]
    scale = float(speckled["pixel_scale_mas"])
    phis = 360.0 * np.arange(args.rotations) / args.rotations
    results = []
    for comp in truth:
        det = matched(speckled["detections"], comp, scale)
        if det is None:
            print(f"{comp['spectrum']}: not detected")
            continue
        true = np.asarray(comp["contrast"])
        # the speckle-free night's own PSFs and star fluxes: its Level 1 is the same but for noise
        bias = fit(clean, clean["cube"], det.x, det.y) / true
        ratios = np.array(
            [fit(clean, clean["cube"] + rotated(difference, phi), det.x, det.y) / true for phi in phis]
        )
        spread = ratios.std(axis=0, ddof=1)
        err = trial_errors(args.work, night_name("small", args.seed), comp)
        row = {
            "seed": args.seed,
            "spectrum": comp["spectrum"],
            "wavelength_um": [float(v) for v in speckled["wavelengths"]],
            "ratio_speckle_free": [float(v) for v in bias],
            "ratio_realisations": ratios.tolist(),
            "phi_deg": phis.tolist(),
            "ratio_rms_over_realisations": [float(v) for v in spread],
            "trial_error_over_truth": None if err is None else [float(v) for v in err / true],
        }
        results.append(row)
        where = f"Level 2 at {det.separation_px * scale:.2f} mas, {det.pa_deg:.2f} deg"
        print(f"{comp['spectrum']} (seed {args.seed}, {where})")
        print("  lambda (nm)        ", np.round(speckled["wavelengths"] * 1000).astype(int))
        print("  no speckles        ", np.round(bias, 2))
        print("  phi = 0 (the night)", np.round(ratios[0], 2))
        print("  mean of rotations  ", np.round(ratios.mean(axis=0), 2))
        print("  rms of rotations   ", np.round(spread, 2))
        print("  (phi=0 - mean)/rms ", np.round((ratios[0] - ratios.mean(axis=0)) / spread, 1))
        if err is not None:
            print("  1.2 error / truth  ", np.round(err / true, 2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
