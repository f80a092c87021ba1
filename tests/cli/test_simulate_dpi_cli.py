"""``hcdc simulate irdis-dpi``: raw DPI files with their HWP positions and the polarimetric truth
(``--json``), and one-line errors for bad options."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from hcdc.cli import app


def test_simulate_irdis_dpi_json_and_errors(tmp_path: Path) -> None:
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(app, ["simulate", "irdis-dpi", str(tmp_path / "raw"), "--cycles", "1", "--json"])
    assert result.exit_code == 0, result.stderr
    night = json.loads(result.stdout)
    objects = [f for f in night["files"] if f["dpr_type"] == "OBJECT"]
    assert [f["hwp"] for f in objects] == ["Qplus", "Qminus", "Uplus", "Uminus"]
    assert night["polarimetry"]["instrument"] == "mueller" and night["polarimetry"]["filter"] == "DP_0_BB_H"
    assert night["polarimetry"]["ip_q"] == 0.0  # the model makes the instrumental polarisation
    assert Path(night["truth_fits"]).is_file() and all(Path(f["path"]).is_file() for f in night["files"])

    bad_scale = runner.invoke(app, ["simulate", "irdis-dpi", str(tmp_path / "x"), "--scale", "huge"])
    assert bad_scale.exit_code == 2 and "unknown scale 'huge'" in bad_scale.stderr
    bad_ip = runner.invoke(
        app, ["simulate", "irdis-dpi", str(tmp_path / "y"), "--instrument", "ideal", "--ip-q", "0.5"]
    )
    assert bad_ip.exit_code == 1 and "instrumental polarisation must be below 20 %" in bad_ip.stderr
    bad_tracking = runner.invoke(app, ["simulate", "irdis-dpi", str(tmp_path / "z"), "--tracking", "STAT"])
    assert bad_tracking.exit_code == 1 and "tracking must be PUPIL or FIELD" in bad_tracking.stderr
