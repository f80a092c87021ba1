"""An IFS-like user cube on disk (39 channels 0.96-1.35 um, 4 frames, 81 px, 2 deg of rotation,
seed 0) with its parallactic angles, PSF and wavelengths, as ``hcdc postprocess`` takes them: the
spectral Level 2 tests' input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from hcdc.science.simulation.adi import simulate_spectral_cube


def write_spectral_user_files(
    folder: Path, companions: list[tuple[float, float, float]]
) -> tuple[dict[str, Path], object]:
    """``(files by input name, the simulation)`` for ``companions`` (separation px, PA deg, contrast)."""
    sim = simulate_spectral_cube(
        wavelengths=tuple(np.linspace(0.96, 1.35, 39)),
        n_frames=4,
        size=81,
        fwhm_ref=3.0,
        rotation=2.0,
        companions=companions,
        seed=0,
    )
    folder.mkdir()
    files = {name: folder / f"{name}.fits" for name in ("cube", "angles", "psf", "wavelengths")}
    fits.writeto(files["cube"], sim.cube)
    # parallactic angles: hcdc turns the frames by -parallactic, i.e. by the simulation's angles
    fits.writeto(files["angles"], -np.asarray(sim.angles, dtype=np.float64))
    fits.writeto(files["psf"], (sim.psf * sim.star_flux[:, None, None]).astype(np.float32))
    fits.writeto(files["wavelengths"], np.asarray(sim.wavelengths, dtype=np.float64))
    return files, sim
