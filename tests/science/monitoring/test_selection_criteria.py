"""Frame-selection criteria as a recipe parameter, field rotation, the FRAMESEL table and the
conditions medians (pure functions)."""

from __future__ import annotations

import numpy as np
import pytest

from hcdc.archive.products import variant_lineage
from hcdc.science.monitoring.conditions import conditions_medians
from hcdc.science.monitoring.selection import (
    SelectionCriteria,
    field_rotation_deg,
    select_frames,
    selection_hdu,
)


def test_criteria_from_mapping():
    c = SelectionCriteria.from_mapping({"strehl_quantile": 0.3, "tau0_min_s": 3e-3})
    assert c.needs_conditions and c.active and c.key() == SelectionCriteria.from_mapping(c.as_dict()).key()
    assert c.key() != SelectionCriteria.from_mapping({"strehl_quantile": 0.4}).key()
    assert c.describe() == "tau0 >= 0.003 s, strehl >= its 0.3 quantile, telemetry required"
    assert not SelectionCriteria.from_mapping({"correlation_min": 0.5}).needs_conditions
    for bad, message in (
        ({"strehl": 0.5}, "unknown"),
        ({}, "at least one"),
        ({"strehl_min": "high"}, "must be a number"),
        ({"strehl_min": True}, "must be a number"),
        ({"strehl_quantile": 1.5}, r"\[0, 1\)"),
        ({"strehl_min": 0.5, "require_telemetry": 1}, "true or false"),
    ):
        with pytest.raises(ValueError, match=message):
            SelectionCriteria.from_mapping(bad)


def test_field_rotation_through_180():
    assert field_rotation_deg([170.0, 175.0, 180.0, -175.0, -170.0]) == pytest.approx(20.0)
    assert field_rotation_deg([-10.0, 5.0, 30.0]) == pytest.approx(40.0)


def test_selection_table_and_medians():
    table = {
        "NO_TELEMETRY": np.array([False, False, False, True]),
        "STREHL": np.array([0.9, 0.5, 0.8, np.nan]),
        "TAU0": np.array([4e-3, 1e-3, 3e-3, np.nan]),
    }
    selection = select_frames(table, SelectionCriteria(strehl_min=0.6, require_telemetry=True))
    assert selection.keep.tolist() == [True, False, True, False]
    hdu = selection_hdu(selection, table)
    assert hdu.data["USED"].tolist() == [True, False, True, False]
    assert hdu.data["REASON"][1] == "strehl 0.5 < 0.6" and hdu.data["REASON"][3] == "telemetry missing"
    assert "SEEING" not in hdu.columns.names and hdu.header["NUSED"] == 2
    medians = conditions_medians(table, selection.keep)
    assert medians["strehl_median"] == pytest.approx(0.85) and medians["frames"] == 2
    assert medians["seeing_median_arcsec"] is None  # no such column
    assert conditions_medians(table)["frames_with_telemetry"] == 3


def test_variant_lineage():
    assert variant_lineage("dataset/3/level2-image", "frames-selected-ab12") == (
        "dataset/3/level2-image/frames-selected-ab12"
    )
    with pytest.raises(ValueError):
        variant_lineage("dataset/3/level2-image", "a/b")
