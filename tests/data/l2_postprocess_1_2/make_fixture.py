"""Make the ``l2-postprocess`` 1.2 fixture: two small user cubes (one with an off-axis PSF, one
without) with their 1.2 provenance records and products.

Run once with main's code from before 1.3 (commit a182671), so the records and products are what
1.2 wrote:  PYTHONPATH=<checkout of a182671>/src python tests/data/l2_postprocess_1_2/make_fixture.py
The records' input paths are absolute; tests/pipeline/test_postprocess_versions.py moves them to
where the fixture lies. Regenerating with 1.3's code would defeat the test: don't.
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
    sim = simulate_adi_cube(n_frames=16, size=61, fwhm=4.0, companions=[(14.0, 130.0, 3.0e-3)], seed=6)
    header = fits.Header()
    header["BUNIT"] = "ADU"
    header["PIXSCALE"] = 12.255
    fits.writeto(HERE / "cube.fits", sim.cube.astype(np.float32), header, overwrite=True)
    np.savetxt(HERE / "angles.txt", -sim.angles)  # parallactic = -derotation
    fits.writeto(HERE / "psf.fits", (sim.psf * 1.0e6).astype(np.float32), overwrite=True)  # star flux 1e6
    cases = {
        "with_psf": {"cube": HERE / "cube.fits", "angles": HERE / "angles.txt", "psf": HERE / "psf.fits"},
        "no_psf": {"cube": HERE / "cube.fits", "angles": HERE / "angles.txt"},
    }
    for name, inputs in cases.items():
        params = {"algorithm": "pca", "ncomp": 3, "previews": False, "contrast_options": {"nbranch": 1},
                  "output_stem": name}  # fmt: skip
        if name == "no_psf":
            params["fwhm"] = 4.0
        with tempfile.TemporaryDirectory() as work:
            result = run_recipe("l2-postprocess", inputs, params, work_dir=work)
            assert result.status == "done" and result.version == "1.2", (result.version, result.error)
            shutil.copy(result.outputs["product"], HERE / f"{name}_L2.fits")
            result.provenance.save(HERE / f"{name}_provenance.json")


if __name__ == "__main__":
    main()
