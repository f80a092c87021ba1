"""False alarms of the speckle-limited S/N map: the demo's BB_H sequence with speckles only.

Renders the night simulator's speckle model (:func:`hcdc.science.simulation.speckles.make_evolving_speckles`,
NACO-tuned defaults) through :func:`hcdc.science.simulation.sequence.simulate_coronagraphic_sequence`
at the times and angles of a demo BB_H Level 1 product (``frames.fits``: MJD and DEROT), with no
companion and no detector, for many speckle seeds; reduces each realisation with annular PCA 3
(the IRDIS default) turning the frames in the physical sense (``-DEROT``) and in hcdc's old one
(``+DEROT``), and counts the false detections of :func:`detect_candidates` (Student threshold at
the Gaussian 5-sigma FPF) and, as ``l2-postprocess`` 1.5 detects, at the threshold calibrated on
the null map (:mod:`hcdc.science.postprocessing.null_threshold`; each sense's null map is the
other sense's reduction: inverted angles; keys ``*-null``, and ``*-nu-k`` the fitted tail's
degrees of freedom and threshold factor). Measured (seed 2026 demo's BB_H, seeds 1000-1079,
2026-12-07): Student: 5 and 3 images of 80 with a false detection (physical / old sense), S/N
5.6-9.2, where independent Student-t resolution elements would give ~3e-4 per image
(docs/main_job.md); calibrated: 1 and 1 (S/N 9.21 against 8.93, 6.0 against 5.89; factors
1.01-1.39, median 1.15; docs/postprocessing.md, "Empirical detection threshold")::

    hcdc demo /tmp/demo --scale small        # then
    PYTHONPATH=src .venv/bin/python benchmarks/speckle_false_alarms.py \\
        /tmp/demo/storage/products/job-2/attempt-1/level1/level1/frames.fits 1000 1080 --t0 232.8

``--t0``: seconds from the night's first exposure to the first frame (232.8 s for seed 2026), so
that seed ``speckle_seed`` of the demo's truth reproduces its speckles.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from astropy.io import fits

from hcdc.science.postprocessing.detection import detect_candidates
from hcdc.science.postprocessing.null_threshold import calibrate_threshold, without_rings
from hcdc.science.postprocessing.pca import pca_annular
from hcdc.science.postprocessing.snr import snr_map
from hcdc.science.simulation import irdis
from hcdc.science.simulation.adi import SimulatedADI
from hcdc.science.simulation.sequence import simulate_coronagraphic_sequence
from hcdc.science.simulation.speckles import NACO_LIKE_ENVELOPE, make_evolving_speckles


def speckle_only_bbh(seed: int, derot: np.ndarray, times: np.ndarray) -> SimulatedADI:
    """The demo's BB_H sequence without companion: speckles of ``seed`` (NACO-like envelope), the
    demo's star flux, background, leak and 7.5-px mask on 128 px, at derotation angles ``derot``
    (deg, hcdc Level 1 ``DEROT``) and times ``times`` (s). The other speckle benchmarks
    (``null_threshold_variants.py``, ``null_threshold_contrast.py``) reduce the same sequences."""
    return simulate_coronagraphic_sequence(
        optics=irdis.BandOptics(1625.0, 290.0, 12.255, 8.0),  # BB_H
        times_s=times,
        derot_deg=-derot,
        speckles=make_evolving_speckles(np.random.default_rng(seed), envelope=NACO_LIKE_ENVELOPE),
        star_flux_adu_s=5.8e6,
        dit_s=8.0,
        size=128,
        background_adu_s=7.0,
        coronagraph_leak=0.003,
        mask_radius_px=7.5,
        seed=seed,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frames", help="frames.fits of a BB_H Level 1 product (MJD, DEROT)")
    parser.add_argument("first_seed", type=int)
    parser.add_argument("end_seed", type=int)
    parser.add_argument("--t0", type=float, default=0.0, help="time of the first frame (s)")
    args = parser.parse_args()
    with fits.open(args.frames) as hdul:
        derot = np.asarray(hdul["DEROT"].data, dtype=float)
        mjd = np.asarray(hdul["FRAMES"].data["MJD"], dtype=float)
    times = (mjd - mjd[0]) * 86400.0 + args.t0
    counts = {"physical": 0, "old": 0, "physical-null": 0, "old-null": 0}
    for seed in range(args.first_seed, args.end_seed):
        sim = speckle_only_bbh(seed, derot, times)
        row: dict = {"seed": seed}
        reduced = {}
        for sense, angles in (("physical", -derot), ("old", derot)):
            image = pca_annular(sim.cube, angles, fwhm=sim.fwhm, ncomp=3)
            reduced[sense] = (image, snr_map(image, sim.fwhm))
        for sense, other in (("physical", "old"), ("old", "physical")):
            image, snr = reduced[sense]
            student = detect_candidates(snr, sim.fwhm, image=image)
            # Each sense's null map is the other's reduction (inverted angles), its fit without the
            # rings of the Student candidates, as l2-postprocess 1.5 does.
            valid = without_rings(np.ones(snr.shape, dtype=bool), [c.separation for c in student], sim.fwhm)
            profile = calibrate_threshold(reduced[other][1], sim.fwhm, valid=valid)
            for key, kwargs in ((sense, {}), (f"{sense}-null", {"profile": profile})):
                found = student if not kwargs else detect_candidates(snr, sim.fwhm, image=image, **kwargs)
                row[key] = [
                    (round(c.separation, 1), round(c.pa, 1), round(c.snr, 2), round(c.threshold, 2))
                    for c in found
                ]
                counts[key] += bool(found)
            row[f"{sense}-nu-k"] = [round(profile.nu, 1), round(profile.tail_factor, 3)]
        print(json.dumps(row), flush=True)
    n = args.end_seed - args.first_seed
    print(f"images with a false detection out of {n}: {counts}")


if __name__ == "__main__":
    main()
