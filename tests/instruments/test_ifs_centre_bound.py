"""The star centre per channel on the 'small' IFS field, where the waffle spots leave the cube
towards the red (``level1-ifs`` 0.6, docs/ifs.md §3.3).

On a 'small' (1024^2) YJ night the spots (13.72 lambda/D: 340-480 mas) fall outside the +-370 mas
field from ~1.1 um on. Before their fit fails its error grows and its centre drifts: measured on
seed 3's first CENTER file, channels 12-22 drift by up to 0.6 px from the truth while their fit
errors go from 0.2 to 1.3 px; the channels with errors <= 0.15 px are within 0.1 px.
``trusted_centres`` keeps a channel's own centre only within that bound (0.6); the others take
the median of the trusted ones, as the channels without spots always did.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.ifs_center_cube import calibrated_center_cube

from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.ifs.extraction import (
    waffle_centers,
)
from hcdc.instruments.sphere.ifs.sequence import trusted_centres
from hcdc.instruments.sphere.ifs.simulate import simulate_ifs_night
from hcdc.pipeline.recipes.level1_ifs import MAX_CENTER_ERR_PX


def test_trusted_centres_rule() -> None:
    errors = np.array([0.05, 0.12, 0.15, 0.4, 1.3, np.inf])
    assert trusted_centres(errors, None).tolist() == [True] * 5 + [False]  # level1-ifs <= 0.5
    assert trusted_centres(errors, 0.15).tolist() == [True, True, True, False, False, False]
    # no channel within the bound: every channel with spots keeps its own centre (old rule)
    assert trusted_centres(np.array([0.3, 0.5, np.inf]), 0.15).tolist() == [True, True, False]


@pytest.mark.slow
def test_small_field_centres_within_the_issue_bound_only_with_the_error_bound(tmp_path) -> None:
    night = simulate_ifs_night(tmp_path / "raw", mode="YJ", seed=3, scale="small")
    calibration, center, cube, _ = calibrated_center_cube(night)
    centres, errors, _ = waffle_centers(cube, calibration.wavelengths_nm, "x")
    truth = cube.shape[-1] // 2 + np.mean(center.star_xy_mas, axis=0) / sc.IFS_PIXEL_SCALE_MAS

    def used(max_err: float | None) -> np.ndarray:  # as reduce_sequence fills the channels
        xy = centres.copy()
        good = trusted_centres(errors, max_err)
        xy[~good] = np.median(xy[good], axis=0)
        return np.hypot(*(xy - truth).T)

    old, new = used(None), used(MAX_CENTER_ERR_PX)
    assert np.max(old) > 0.3, np.round(old, 2)  # the drift of the spots leaving the field
    assert np.all(new < 0.1), np.round(new, 2)  # the issue's bound, every channel
