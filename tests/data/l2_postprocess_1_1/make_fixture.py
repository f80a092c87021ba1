"""Make the ``l2-postprocess`` 1.1 fixture: a small user cube, its 1.1 provenance record and product.

Run once with main's code from before 1.2 (commit e088c51), so the record and product are what
1.1 wrote:  PYTHONPATH=<checkout of e088c51>/src python tests/data/l2_postprocess_1_1/make_fixture.py
The record's input paths are absolute; tests/pipeline/test_postprocess_versions.py moves them to
where the fixture lies. Regenerating with 1.2's code would defeat the test: don't.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits

from hcdc.pipeline.registry import run_recipe
from hcdc.science.simulation.adi import simulate_adi_cube

HERE = Path(__file__).resolve().parent


def main() -> None:
    sim = simulate_adi_cube(n_frames=16, size=61, fwhm=4.0, companions=[(14.0, 130.0, 1.0e-2)], seed=5)
    header = fits.Header()
    header["BUNIT"] = "ADU"
    header["PIXSCALE"] = 12.255
    # 1.1 ignored this declaration (parallactic default); 1.2 honours it
    header["HIERARCH HCDC ANGCONV"] = "derotation"
    # float64: 1.1 cast a user cube to float32, 1.2 keeps its dtype
    fits.writeto(HERE / "cube.fits", sim.cube.astype(np.float64), header, overwrite=True)
    np.savetxt(HERE / "angles.txt", -sim.angles)
    fits.writeto(HERE / "psf.fits", (sim.psf * 1.0e6).astype(np.float32), overwrite=True)  # star flux 1e6
    inputs = {"cube": HERE / "cube.fits", "angles": HERE / "angles.txt", "psf": HERE / "psf.fits"}
    with tempfile.TemporaryDirectory() as work:
        result = run_recipe(
            "l2-postprocess",
            inputs,
            {"algorithm": "pca", "ncomp": 3, "previews": False, "contrast_options": {"nbranch": 1}},
            work_dir=work,
        )
        assert result.status == "done" and result.version == "1.1", (result.version, result.error)
        shutil.copy(result.outputs["product"], HERE / "level2_pca.fits")
        result.provenance.save(HERE / "provenance.json")


if __name__ == "__main__":
    main()
