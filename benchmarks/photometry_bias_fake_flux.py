"""Usage: python benchmarks/photometry_bias_fake_flux.py SEP_PX CONTRAST DRAWS (e.g. 14 2e-3 12).
Photometry fakes as bright as the detection's *flux* (signal / throughput, iterated twice) instead
of fc_snr = its S/N (i.e. its reduced signal, fainter by the throughput): contrast / truth per draw."""

import sys

import numpy as np

from hcdc.science.postprocessing.negfc import remove_companion
from hcdc.science.postprocessing.run import postprocess, prepare_psfs
from hcdc.science.postprocessing.snr import snr_at
from hcdc.science.postprocessing.throughput import throughput_curve
from hcdc.science.simulation.adi import simulate_adi_cube

SEP, CONTRAST = float(sys.argv[1]), float(sys.argv[2])
old, new = [], []
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
    dets = [d for d in res.detections if np.hypot(d.x - t.x, d.y - t.y) < 2]
    if not dets:
        continue
    det = dets[0]
    psf = prepare_psfs(sim.psf, 1, 4.0)[0][0]
    cube = sim.cube.astype(np.float32)
    signal = snr_at(res.image, det.x, det.y, 4.0).signal

    def tp(c, flux, sim=sim, psf=psf, det=det):
        curve = throughput_curve(
            c,
            sim.angles,
            psf,
            fwhm=4.0,
            algorithm="pca",
            params={"ncomp": 3},
            separations=[det.separation_px],
            nbranch=6,
            pa=det.pa_deg + 30.0,
            fake_flux=flux,
            fc_rad_sep=1,
            cache=False,
        )
        return float(np.mean(curve.branches[:, 0]))

    flux = det.contrast * sim.star_flux  # the pipeline's estimate (fakes at S/N x noise)
    for _ in range(2):  # fakes at the current flux estimate, on the cube with the companion removed
        clean = remove_companion(cube, sim.angles, psf, det.separation_px, det.pa_deg, flux)
        flux = signal / tp(clean, flux)
    old.append(det.contrast / CONTRAST)
    new.append(flux / t.flux)
    print(seed, round(old[-1], 3), round(new[-1], 3), flush=True)
print(
    "MEAN old",
    round(float(np.mean(old)), 3),
    "+-",
    round(float(np.std(old) / np.sqrt(len(old))), 3),
    "new",
    round(float(np.mean(new)), 3),
    "+-",
    round(float(np.std(new) / np.sqrt(len(new))), 3),
    "n",
    len(old),
)
