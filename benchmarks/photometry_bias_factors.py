"""Usage: python benchmarks/photometry_bias_factors.py SEP_PX CONTRAST DRAWS (e.g. 14 2e-3 12).
Where does the ~10 % low photometry at 14 px come from? Per draw: the pipeline's contrast, and
its two factors (signal / throughput) against the companion's own: its throughput measured with the
exact companion model removed (same reduction), and its signal at the true position."""

import json
import sys

import numpy as np

from hcdc.science.postprocessing.fakes import inject_companions
from hcdc.science.postprocessing.photometry import aperture_sums
from hcdc.science.postprocessing.run import postprocess
from hcdc.science.postprocessing.snr import snr_at
from hcdc.science.postprocessing.throughput import run_algorithm
from hcdc.science.simulation.adi import simulate_adi_cube

SEP, CONTRAST = float(sys.argv[1]), float(sys.argv[2])
rows = []
for seed in range(int(sys.argv[3])):
    sim = simulate_adi_cube(
        n_frames=16,
        size=61,
        fwhm=4.0,
        rotation=60.0,
        companions=[(SEP, 30.0 + 37.0 * seed, CONTRAST)],
        seed=seed,
    )
    res = postprocess(
        sim.cube,
        sim.angles,
        algorithm="pca",
        params={"ncomp": 3},
        psf=sim.psf,
        fwhm=4.0,
        star_flux=sim.star_flux,
        compute_contrast=False,
        astrometric_errors=False,
        detection_threshold=3.0,
    )
    t = sim.companions[0]
    if not res.detections:
        continue
    det = min(res.detections, key=lambda d: np.hypot(d.x - t.x, d.y - t.y))
    if np.hypot(det.x - t.x, det.y - t.y) > 2:
        continue
    from hcdc.science.postprocessing.run import prepare_psfs

    psf = prepare_psfs(sim.psf, 1, 4.0)[0][0]
    image = res.image
    clean = inject_companions(sim.cube, sim.angles, psf, t.separation, t.pa, -t.flux)  # exact removal
    image_clean = run_algorithm("pca", clean, sim.angles, fwhm=4.0, cache=False, ncomp=3)
    own_tp = float(aperture_sums(image - image_clean, np.array([t.x]), np.array([t.y]), 2.0)[0]) / t.flux
    sig_det = snr_at(image, det.x, det.y, 4.0).signal
    sig_true = snr_at(image, t.x, t.y, 4.0).signal
    raw_true = float(aperture_sums(image, np.array([t.x]), np.array([t.y]), 2.0)[0])
    flux = det.contrast * sim.star_flux
    fake_tp = sig_det / flux  # the pipeline's throughput (signal / flux)
    rows.append(
        dict(
            seed=seed,
            snr=det.snr,
            ratio=det.contrast / CONTRAST,
            fake_tp=fake_tp,
            own_tp=own_tp,
            sig_det=sig_det / t.flux,
            sig_true=sig_true / t.flux,
            raw_true=raw_true / t.flux,
            dpos=float(np.hypot(det.x - t.x, det.y - t.y)),
        )
    )
    print(json.dumps({k: round(v, 3) for k, v in rows[-1].items()}), flush=True)
a = {k: np.mean([r[k] for r in rows]) for k in rows[0]}
print("MEAN", json.dumps({k: round(float(v), 3) for k, v in a.items()}), "n", len(rows))
