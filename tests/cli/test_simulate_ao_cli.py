"""``hcdc simulate irdis --ao-telemetry`` writes SPARTA files next to the science sequence."""

from __future__ import annotations

import json

from astropy.io import fits
from typer.testing import CliRunner

from hcdc.cli import app


def test_simulate_with_ao_telemetry(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "simulate",
            "irdis",
            str(tmp_path),
            "--sequence",
            "DB_H23",
            "--ao-telemetry",
            "--json",
            "--seed",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    truth = json.loads(result.stdout)["ao_telemetry"]
    assert truth["sample_s"] == 30.0 and len(truth["files"]) >= 3
    for name in truth["files"]:
        header = fits.getheader(tmp_path / name)
        assert header["HIERARCH ESO DPR TYPE"] == "OBJECT,AO"
        assert header["ORIGFILE"].startswith("SPHERE_GEN_SPARTA")
    saved = json.loads((tmp_path / "simulation_truth.json").read_text())["ao_telemetry"]
    assert saved["files"] == truth["files"] and len(saved["mjd"]) == len(saved["truth"]["strehl"])
    plain = runner.invoke(
        app, ["simulate", "irdis", str(tmp_path / "plain"), "--sequence", "DB_H23", "--json"]
    )
    assert json.loads(plain.stdout)["ao_telemetry"] is None
