"""How often hcdc's detection finds a companion injected at the reported SDI contrast (issue 8).

Simulated IFS-like cube (5 channels 1.0-1.6 µm, 20 frames, 81^2, 40 deg, seed 7, no companion),
SDI with its default parameters through ``run.postprocess`` (the default curve: the final
image's detection limit, fakes in every wavelength; or with ``--fixed`` the former fakes at 10x
the noise and per-wavelength curves). Fakes of flat contrast are injected at the reported
contrast by the tests' own code (``tests/science/postprocessing/conftest.py``, independent of
hcdc's injection and throughput code), ``--pas`` position angles per separation, every half FWHM
from 3 FWHM, and counted as found when ``detect_candidates`` reports them within 1 FWHM::

    PYTHONPATH=src .venv/bin/python benchmarks/sdi_contrast_recovery.py [--fixed] [--pas 16]
        [--throughput-step 0.5]   (throughput sampled every 0.5 FWHM instead of 1)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "science" / "postprocessing"))

from conftest import _count_recoveries  # noqa: E402

from hcdc.science.postprocessing import get_algorithm  # noqa: E402
from hcdc.science.postprocessing.run import postprocess  # noqa: E402
from hcdc.science.simulation.adi import simulate_spectral_cube  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixed", action="store_true", help="fakes at 10x the noise (the former curves)")
    parser.add_argument("--pas", type=int, default=16)
    parser.add_argument(
        "--throughput-step", type=float, default=None, help="throughput sampling in FWHM (default 1)"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    sim = simulate_spectral_cube(
        wavelengths=(1.0, 1.15, 1.3, 1.45, 1.6), n_frames=20, size=81, fwhm_ref=3.5, seed=7
    )
    fwhm = float(np.mean(sim.fwhm))
    options: dict | None = {"fc_snr": 10.0} if args.fixed else None
    if args.throughput_step:
        options = {**(options or {}), "throughput_step": args.throughput_step * fwhm}
    res = postprocess(
        sim.cube,
        sim.angles,
        algorithm="sdi",
        psf=sim.psf,
        wavelengths=sim.wavelengths,
        fwhm=sim.fwhm,
        star_flux=sim.star_flux,
        contrast_options=options,
    )
    sdi = get_algorithm("sdi").function

    def reduce(cube: np.ndarray) -> np.ndarray:
        return sdi(cube, sim.angles, fwhm=np.asarray(sim.fwhm), wavelengths=sim.wavelengths)[0]

    seps = np.arange(3.0 * fwhm, 81 // 2 - fwhm - 2, 0.5 * fwhm)
    rows = (0, len(sim.wavelengths) - 1) if args.fixed else (0,)
    for row in rows:
        limits = np.array([res.contrast.at(s, row) for s in seps])
        ok = np.isfinite(limits)
        hits = _count_recoveries(
            sim.cube,
            sim.angles,
            sim.psf,
            reduce,
            fwhm=fwhm,
            separations=seps[ok],
            fluxes=limits[ok, None] * np.asarray(sim.star_flux)[None, :],
            n_pa=args.pas,
        )
        in_fwhm = np.round(seps[ok] / fwhm, 1).tolist()
        print(f"row {row} ({sim.wavelengths[row]} µm): separations (FWHM) {in_fwhm}")
        print(f"  contrast {[f'{c:.3g}' for c in limits[ok]]}")
        share = 100 * hits.sum() / (args.pas * hits.size)
        print(f"  found {hits.tolist()} of {args.pas} each: {share:.0f} % in all")


if __name__ == "__main__":
    main()
