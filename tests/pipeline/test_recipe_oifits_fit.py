"""Recipe ``oifits-fit`` on the real OIFITS files: every target of every file fitted (or the
reason why not), the reference's diameters, a process pool giving the same numbers."""

from __future__ import annotations

import json

import pytest

from hcdc.pipeline.errors import ParameterError
from hcdc.pipeline.registry import get_recipe

pytestmark = pytest.mark.shared_data

FILES = (
    "real/PIONIER_alfCenA_2016-05-31.fits",
    "real/PIONIER_AXCir_merged.oifits",
    "real/GRAVITY_HD58647_2020-01-27.fits",
    "real/MIDI_NGC5128_2005.oifits",  # OI_VIS only: no V2 to fit
    "synthetic/oitools_bigtest2.fits",  # three targets
)


def test_bulk_uniform_disk_fits(shared_data, tmp_path):
    recipe = get_recipe("oifits-fit")()
    files = [shared_data / "oifits" / f for f in FILES]
    inline = recipe.run({"oifits": files}, ["model=ud"], work_dir=tmp_path / "a")
    pooled = recipe.run({"oifits": files}, ["model=ud", "workers=2"], work_dir=tmp_path / "b")
    rows = json.loads(inline.outputs["fits"].read_text())["results"]
    by_target = {r["target"]: r for r in rows}
    assert round(by_target["Alpha_Cen_A"]["params"]["theta_mas"], 4) == 8.2797
    assert round(by_target["AX_CIR"]["params"]["theta_mas"], 4) == 0.9315
    assert round(by_target["HD_58647"]["params"]["theta_mas"], 4) == 3.5726
    assert "0 usable V2" in by_target["NGC5128"]["error"]
    assert {"alp_ori", "alp_tau", "irc_+10216"} <= set(by_target)
    summary = inline.outputs["summary"]
    assert summary["files"] == 5 and summary["fitted"] + summary["not_fitted"] == len(rows) == 7
    pooled_rows = json.loads(pooled.outputs["fits"].read_text())["results"]
    assert [r.get("params") for r in pooled_rows] == [r.get("params") for r in rows]


def test_parameters_are_checked():
    with pytest.raises(ParameterError, match="model"):
        get_recipe("oifits-fit").parse_params(["model=gaussian"])
    with pytest.raises(ParameterError, match="ld_coefficient"):
        get_recipe("oifits-fit").parse_params(["ld_coefficient=2"])
