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


def test_simulate_ifs_1_2_turns_the_sky_physically_and_writes_the_real_derotator_keyword(tmp_path) -> None:
    """1.2 (default): companions placed as on the real IFS and INS4 DROT2 = TEL ALT / 2 + 180 as the
    real pupil-tracking headers; 1.1 (kept, cross-talk too) the old sense and alt + 144.5. The
    calibrations are the same bytes; the OBJECT frames differ (the companions moved)."""
    from astropy.io import fits

    assert get_recipe("simulate-ifs").version == "1.2"
    runs = {
        v: run_recipe("simulate-ifs", {}, ["seed=3"], work_dir=tmp_path / v, version=v)
        for v in ("1.1", "1.2")
    }
    objects = {}
    for version, result in runs.items():
        assert result.status == "done", result.error
        for path in result.outputs["raw"]:
            header = fits.getheader(path)
            if header["HIERARCH ESO DPR TYPE"] == "OBJECT":
                objects.setdefault(version, []).append(path)
                alt = header["HIERARCH ESO TEL ALT"]
                legacy = version == "1.1"
                expected = (alt + 144.5) % 360.0 if legacy else alt / 2.0 + 180.0
                assert header["HIERARCH ESO INS4 DROT2 BEGIN"] == pytest.approx(expected, abs=0.01)
    old, new = (fits.getdata(objects[v][0]) for v in ("1.1", "1.2"))
    assert old.shape == new.shape and not (old == new).all()
    darks = [
        [p for p in runs[v].outputs["raw"] if fits.getheader(p)["HIERARCH ESO DPR TYPE"] == "DARK"]
        for v in ("1.1", "1.2")
    ]
    assert fits.getdata(darks[0][0]).tobytes() == fits.getdata(darks[1][0]).tobytes()
