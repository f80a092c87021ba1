"""The expected-contrast model fitted on the catalogue's own products flags the one product
whose contrast is much worse than its conditions predict, in ``hcdc monitor expected`` and in
the quality-control report (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import json

from typer.testing import CliRunner

from archive.contrast_world import DEGRADED, LAW, NIGHT0, build_contrast_world
from hcdc.archive.access import local_operator
from hcdc.archive.db import init_data_centre
from hcdc.archive.monitoring_report import monitoring_report, problem_rows
from hcdc.archive.telemetry import expected_contrast
from hcdc.cli import app


def test_degraded_product_flagged(tmp_path, database_url):
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        ids = build_contrast_world(catalogue)
        bad = ids["level2"][DEGRADED]
        with catalogue.engine.connect() as conn:
            result = expected_contrast(conn, local_operator())
            assert result["flagged"] == [bad]
            (model_02, model_05) = (m["model"] for m in result["models"])
            assert model_05["features"] == ["seeing", "tau0", "field_rotation"] and model_05["products"] == 14
            for name in ("seeing", "tau0", "field_rotation"):
                assert abs(model_05["coefficients"][name] - LAW[name]) < 0.3
            night = NIGHT0 + dt.timedelta(days=DEGRADED)
            report = monitoring_report(conn, local_operator(), night, night, catalogue.storage_root)
        (entry,) = report["datasets"]
        assert [f["product_id"] for f in entry["contrast_worse_than_expected"]] == [bad]
        (row,) = [r for r in problem_rows(report) if r["category"] == "contrast_worse_than_expected"]
        assert row["item"] == f"p{bad}" and 4 < row["value"] < 16 and row["limit"] == 3.0
        assert "at 0.2 arcsec" in row["detail"] and report["nights"][0]["contrast_problems"] == 1
        root = ["--root", str(catalogue.settings.root)]
        shown = CliRunner().invoke(app, ["monitor", "expected", "--json", *root])
        assert shown.exit_code == 0, shown.output
        assert json.loads(shown.stdout)["flagged"] == [bad]
        text = CliRunner().invoke(app, ["monitor", "expected", "--flagged", *root])
        assert text.exit_code == 0 and f"p{bad}" in text.stdout and "flagged: p" in text.stdout
        # a stricter factor and scatter limit flag nothing
        strict = CliRunner().invoke(app, ["monitor", "expected", "--factor", "20", "--json", *root])
        assert json.loads(strict.stdout)["flagged"] == []
        refused = CliRunner().invoke(app, ["monitor", "expected", "--factor", "0.5", *root])
        assert refused.exit_code != 0 and "--factor" in refused.output
    finally:
        catalogue.close()
