"""Ranking RDI reference frames by correlation and similar conditions (issue 15): known answers
for the conditions distance and the combined score; weight 0 is the correlation ranking."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hcdc.science.postprocessing.rdi import conditions_distance, rank_references

SCIENCE = {"SEEING": 0.8, "TAU0": 5e-3, "STREHL": 0.6}


def test_conditions_distance_known_values():
    frames = {
        "SEEING": np.array([0.8, 1.6, 0.4, 1.6, np.nan, 0.8]),
        "TAU0": np.array([5e-3, 5e-3, 5e-3, np.nan, np.nan, 2.5e-3]),
        "STREHL": np.array([0.6, 0.6, 0.6, np.nan, np.nan, 0.3]),
    }
    d = conditions_distance(frames, SCIENCE)
    ln2 = math.log(2)
    # same conditions; seeing x2 (one of three quantities); seeing /2 (symmetric); seeing x2
    # alone known; no telemetry; tau0 and Strehl halved
    assert d[:4] == pytest.approx([0.0, ln2 / math.sqrt(3), ln2 / math.sqrt(3), ln2])
    assert np.isnan(d[4])
    assert d[5] == pytest.approx(ln2 * math.sqrt(2 / 3))
    # a reference without a quantity: only the others count
    assert conditions_distance(frames, {"SEEING": 0.8})[1] == pytest.approx(ln2)
    assert np.isnan(conditions_distance(frames, {})).all()


def test_rank_references_known_order_and_default():
    corr = np.array([0.90, 0.88, 0.86, 0.50, 0.87])
    dist = np.array([math.log(3), 0.0, 0.1, 0.0, np.nan])
    # weight 0 (the default) and no distance: correlation alone, exactly argsort(-corr)
    assert rank_references(corr).tolist() == [0, 1, 4, 2, 3]
    assert rank_references(corr, dist, 0.0).tolist() == np.argsort(-corr, kind="stable").tolist()
    # weight 0.1: scores 0.790, 0.880, 0.850, 0.500 and the unknown one at the worst known
    # distance ln 3: 0.760
    assert rank_references(corr, dist, 0.1).tolist() == [1, 2, 0, 4, 3]
    assert rank_references(corr, dist, 0.1, n_keep=2).tolist() == [1, 2]
    # a large weight: conditions first, correlation among equals
    assert rank_references(corr, dist, 10.0).tolist() == [1, 3, 2, 0, 4]
    with pytest.raises(ValueError, match=">= 0"):
        rank_references(corr, dist, -1.0)
    with pytest.raises(ValueError, match="differ"):
        rank_references(corr, dist[:3], 1.0)


def test_conditions_distance_counts_wind_and_airmass():
    """Wind speed and airmass count like the others (log ratios, rms over the five); the airmass
    alone (a frame without telemetry has one, from its pointing) does not make a frame comparable;
    a subset of quantities is the distance over those only."""
    science = {"SEEING": 0.8, "TAU0": 5e-3, "STREHL": 0.6, "WIND": 10.0, "AIRMASS": 1.1}
    nan = np.nan
    frames = {
        "SEEING": np.array([0.8, 0.8, 0.8, nan, 0.8]),
        "TAU0": np.array([5e-3, 5e-3, 5e-3, nan, 5e-3]),
        "STREHL": np.array([0.6, 0.6, 0.6, nan, 0.6]),
        "WIND": np.array([10.0, 20.0, 10.0, nan, 5.0]),
        "AIRMASS": np.array([1.1, 1.1, 2.2, 1.1, 2.2]),
    }
    d = conditions_distance(frames, science)
    ln2 = math.log(2)
    # identical; wind x2; airmass x2; no telemetry (airmass only); wind /2 and airmass x2
    assert d[[0, 1, 2, 4]] == pytest.approx(
        [0.0, ln2 / math.sqrt(5), ln2 / math.sqrt(5), ln2 * math.sqrt(2 / 5)]
    )
    assert np.isnan(d[3])
    old = conditions_distance(frames, science, ("SEEING", "TAU0", "STREHL"))
    assert old[[0, 1, 2, 4]] == pytest.approx([0.0] * 4) and np.isnan(old[3])
    assert conditions_distance(frames, science, ("WIND",))[1] == pytest.approx(ln2)
    with pytest.raises(ValueError, match="unknown conditions quantity"):
        conditions_distance(frames, science, ("HUMIDITY",))
