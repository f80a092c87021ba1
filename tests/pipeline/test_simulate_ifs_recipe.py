"""The ``simulate-ifs`` recipe: registered, parameters checked, reproducible from its provenance
(same seed and parameters, the same raw files byte for byte)."""

from __future__ import annotations

import json

import pytest

from hcdc.pipeline.errors import ParameterError
from hcdc.pipeline.registry import get_recipe, list_recipes, run_recipe
from hcdc.pipeline.replay import rerun


def test_simulate_ifs_is_registered_and_checks_its_parameters() -> None:
    assert "simulate-ifs" in {r.name for r in list_recipes()}
    with pytest.raises(ParameterError):
        get_recipe("simulate-ifs").parse_params(["mode=K"])


def test_simulate_ifs_recipe_is_reproducible_from_its_provenance(tmp_path) -> None:
    result = run_recipe("simulate-ifs", {}, ["seed=7", "mode=YJH"], work_dir=tmp_path / "a")
    truth = json.loads(result.outputs["truth"].read_text())
    assert (truth["seed"], truth["mode"], truth["comb"]) == (7, "YJH", "OBS_H")
    records = result.provenance.output("raw").files
    assert len(records) == len(result.outputs["raw"]) == 23  # 7 science + 3 darks + 10 flats + 3
    again = rerun(result.provenance.to_json(), tmp_path / "b")
    assert [f.sha256 for f in again.provenance.output("raw").files] == [f.sha256 for f in records]
