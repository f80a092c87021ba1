"""One simulated companion through Level 2 (the photometry tests' draw): a 16-frame, 61-px ADI
cube with a companion at ``separation`` px and ``contrast`` (PA varied with the seed), reduced by
PCA 3 at a S/N threshold of 3, without contrast curve or astrometric errors."""

from __future__ import annotations

from typing import Any

import numpy as np

from hcdc.science.postprocessing.run import postprocess
from hcdc.science.simulation.adi import simulate_adi_cube


def reduce_one_companion(seed: int, separation: float, contrast: float, **options: Any):  # noqa: ANN201
    """``(result, index of the detection nearest the companion, the companion's truth)``;
    ``options`` go to :func:`postprocess` (e.g. ``aperture_noise_errors``)."""
    sim = simulate_adi_cube(
        n_frames=16,
        size=61,
        fwhm=4.0,
        rotation=60.0,
        companions=[(separation, 30.0 + 37.0 * seed, contrast)],
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
        **options,
    )
    truth = sim.companions[0]
    i = int(np.argmin([np.hypot(d.x - truth.x, d.y - truth.y) for d in res.detections]))
    det = res.detections[i]
    assert np.hypot(det.x - truth.x, det.y - truth.y) < 2.0 and det.photometry == "injection"
    return res, i, truth
