"""Frame selection by AO conditions and by correlation with the median frame."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.science.monitoring.selection import SelectionCriteria, image_correlation, select_frames

TABLE = {
    "STREHL": np.array([0.90, 0.60, 0.85, np.nan, 0.80, 0.95]),
    "TAU0": np.array([5e-3, 6e-3, 1.5e-3, np.nan, 4e-3, 3e-3]),
    "SEEING": np.array([0.6, 0.7, 1.3, np.nan, 0.8, 0.5]),
    "DTTS_FLUX": np.array([4e4, 2e4, 3.5e4, np.nan, 3e4, 4e4]),
    "NO_TELEMETRY": np.array([False, False, False, True, False, False]),
}


def test_thresholds_reject_with_reasons():
    sel = select_frames(TABLE, SelectionCriteria(strehl_min=0.7, tau0_min_s=2e-3, seeing_max=1.0))
    assert sel.keep.tolist() == [True, False, False, False, True, True]
    assert sel.reasons[1] == ["strehl 0.6 < 0.7"]
    assert sel.reasons[2] == ["tau0 0.0015 < 0.002", "seeing 1.3 > 1"]
    assert sel.reasons[3] == ["telemetry missing"]
    assert sel.summary() == {
        "frames": 6,
        "kept": 3,
        "rejected_by": {"strehl": 1, "tau0": 1, "seeing": 1, "telemetry": 1},
    }


def test_frames_without_telemetry_can_be_kept_unjudged():
    sel = select_frames(TABLE, SelectionCriteria(strehl_min=0.7, require_telemetry=False))
    assert sel.keep.tolist() == [True, False, True, True, True, True]


def test_quantile_keeps_the_best_strehl_frames():
    sel = select_frames(TABLE, SelectionCriteria(strehl_quantile=0.5))
    # median of the 5 measured Strehls is 0.85: keep 0.90, 0.85, 0.95
    assert sel.keep.tolist() == [True, False, True, False, False, True]
    assert sel.reasons[4] == ["strehl 0.8 < 0.85 (quantile 0.5)"]
    assert SelectionCriteria(strehl_quantile=0.5).as_dict()["strehl_quantile"] == 0.5
    with pytest.raises(ValueError, match="quantile"):
        SelectionCriteria(strehl_quantile=1.0)


def test_image_correlation_finds_the_odd_frame():
    rng = np.random.default_rng(0)
    pattern = rng.normal(size=(16, 16))
    cube = np.stack([pattern + 0.1 * rng.normal(size=(16, 16)) for _ in range(6)])
    cube[4] = rng.normal(size=(16, 16))  # a frame unlike the others (e.g. a loop opening)
    scores = image_correlation(cube)
    assert scores[4] < 0.3 and np.delete(scores, 4).min() > 0.95
    sel = select_frames(TABLE, SelectionCriteria(correlation_min=0.9, require_telemetry=False), scores)
    assert sel.keep.tolist() == [True, True, True, True, False, True]
    with pytest.raises(ValueError, match="image_scores"):
        select_frames(TABLE, SelectionCriteria(correlation_min=0.9))
    with pytest.raises(KeyError, match="DTTS_FLUX"):
        select_frames({"NO_TELEMETRY": TABLE["NO_TELEMETRY"]}, SelectionCriteria(dtts_flux_min=1.0))
