"""Issue 16's known answer "the extracted spectrum within 10 % of the injected one per channel for
a companion at S/N >= 20, and the methane feature visible", at the S/N it names.

Definition (docs/ifs.md §4 "What S/N >= 20 means"): the S/N of a per-channel check is the
per-channel S/N of the spectrum (injected contrast / stated 1-sigma error, median over the 35
channels outside the 1.13-1.17 um water band). At S/N 20 the 10 % tolerance is 2 sigma: an
unbiased estimator with honest errors puts ~95 % of the channels within it, so the check asks
>= 90 %. The simulated small YJ night with its companions at twice the default contrasts (6e-4
flat at 180 mas, 4e-4 methane at 300 mas: Level 2 S/N 40 and 79, per-channel S/N ~24-38 on
seed 3) through ``level1-ifs`` 0.6, the workflow's Level 2 and ``l3-companion-spectra`` 1.4.
Measured (seed 3): 100 % of the channels within 10 % for both companions, rms 0.046 / 0.058,
methane band depth 0.53 (truth 0.57) seen at > 10 sigma, the flat companion's at < 2 sigma.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.sphere.ifs.simulate import DEFAULT_COMPANIONS, simulate_ifs_night
from hcdc.pipeline.recipes.postprocess import WORKFLOW_VERSION
from hcdc.pipeline.registry import run_recipe
from hcdc.pipeline.workflows.ifs import IFS_LEVEL2_DEFAULTS


def _band(wl: np.ndarray, contrast: np.ndarray, err: np.ndarray) -> tuple[float, float]:
    """Methane band depth (1 - mean 1140-1170 nm / mean 1240-1260 nm) and its significance, each
    window's error the mean of its channels' errors (the noise is spectrally coherent)."""
    band, cont = (wl >= 1.14) & (wl <= 1.17), (wl >= 1.24) & (wl <= 1.26)
    b, c = float(np.mean(contrast[band])), float(np.mean(contrast[cont]))
    return 1.0 - b / c, (c - b) / math.hypot(float(np.mean(err[band])), float(np.mean(err[cont])))


@pytest.mark.slow
def test_companion_spectra_within_10_percent_at_per_channel_snr_20(tmp_path) -> None:
    companions = [dataclasses.replace(c, contrast=2.0 * c.contrast) for c in DEFAULT_COMPANIONS]
    night = simulate_ifs_night(tmp_path / "raw", mode="YJ", seed=3, scale="small", companions=companions)
    raw = {"raw": [f.path for f in night.files]}
    l1 = run_recipe("level1-ifs", raw, work_dir=tmp_path / "l1", version="0.6")
    params = copy.deepcopy(IFS_LEVEL2_DEFAULTS) | {"compute_contrast": False, "previews": False}
    l2 = run_recipe(
        "l2-postprocess",
        {"level1": l1.outputs["product"]},
        params,
        work_dir=tmp_path / "l2",
        version=WORKFLOW_VERSION,
    )
    inputs = {"level1": l1.outputs["product"], "level2": l2.outputs["product"]}
    l3 = run_recipe("l3-companion-spectra", inputs, work_dir=tmp_path / "l3", version="1.4")
    with fits.open(l3.outputs["product"]) as hdul:
        rows, table = hdul["COMPANIONS"].data, hdul["SPECTRUM"].data
        depths = {}
        for comp in night.companions:
            row = min(
                rows, key=lambda r: abs(r["SEP_MAS"] - comp.separation_mas) + abs(r["PA"] - comp.pa_deg)
            )
            assert abs(row["SEP_MAS"] - comp.separation_mas) < 3.0, row  # the fitted position
            sel = table["ID"] == row["ID"]
            wl, measured, err = (
                np.asarray(table[k][sel], dtype=np.float64)
                for k in ("WAVELENGTH", "CONTRAST", "CONTRAST_ERR")
            )
            truth = comp.contrast_at(night.wavelengths_nm)
            ok = (wl < 1.13) | (wl > 1.17)
            snr = np.median(truth[ok] / err[ok])
            assert snr >= 20.0, (comp.spectrum, snr)  # the S/N the check is about
            ratio = measured[ok] / truth[ok]
            assert np.mean(np.abs(ratio - 1.0) < 0.10) >= 0.9, (comp.spectrum, np.round(ratio, 2))
            depths[comp.spectrum] = _band(wl, measured, err)
    assert depths["methane"][1] > 5.0 and abs(depths["methane"][0] - 0.57) < 0.1, depths
    assert abs(depths["flat"][1]) < 3.0, depths  # no band where there is none
