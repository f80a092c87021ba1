"""True North / plate-scale monitoring: measured values stored with their sources (staff only,
audited), listed against the pipeline's assumed constants with the deviations flagged, by the
API, the CLI (add, CSV import, list) and on both databases."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from typer.testing import CliRunner

from hcdc.archive.access import AccessDenied, load_principal, local_operator
from hcdc.archive.accounts import add_user, list_audit
from hcdc.archive.astrometry_monitor import add_astrometric_calibration, astrometric_series
from hcdc.cli import app
from hcdc.instruments.sphere import constants as sc

MAIRE = "Maire et al. 2016, SPIE 9908, 990834 (IRDIS H2)"


def test_store_and_series(catalogue):
    with catalogue.engine.begin() as conn:
        add_user(conn, local_operator(), "user1")
        first = add_astrometric_calibration(
            conn,
            local_operator(),
            instrument="sphere",
            arm="irdis",
            filter="H2",
            epoch=dt.date(2016, 3, 1),
            true_north_deg=-1.75,
            true_north_err_deg=0.08,
            plate_scale_mas=12.255,
            plate_scale_err_mas=0.009,
            source=MAIRE,
        )
        # a (made-up) later epoch off by 0.5 deg: 6 sigma
        add_astrometric_calibration(
            conn,
            local_operator(),
            instrument="SPHERE",
            arm="IRDIS",
            epoch=dt.date(2019, 5, 1),
            true_north_deg=-2.25,
            true_north_err_deg=0.08,
            source="test value",
        )
        user = load_principal(conn, "user1")
        with pytest.raises(AccessDenied, match="R1"):
            add_astrometric_calibration(
                conn, user, instrument="SPHERE", epoch=dt.date(2020, 1, 1), true_north_deg=-1.7, source="x"
            )
        for bad, words in (
            ({"true_north_deg": None}, "True North value, a plate scale"),
            ({"source": " "}, "source"),
            ({"true_north_deg": 200.0}, "within"),
            ({"plate_scale_mas": -1.0, "true_north_deg": None}, "positive"),
            ({"true_north_err_deg": -0.1}, ">= 0"),
        ):
            kwargs = {
                "instrument": "SPHERE",
                "epoch": dt.date(2020, 1, 1),
                "true_north_deg": -1.7,
                "source": "x",
            } | bad
            with pytest.raises(ValueError, match=words):
                add_astrometric_calibration(conn, local_operator(), **kwargs)
        series = astrometric_series(conn, local_operator(), "SPHERE", "IRDIS")
        with pytest.raises(AccessDenied):
            astrometric_series(conn, user)
        audit = list_audit(conn, action="monitoring.astrometry")
    first_row, second = series["measurements"]
    assert first_row["id"] == first and first_row["arm"] == "IRDIS" and first_row["source"] == MAIRE
    assert (
        first_row["true_north"]["difference"] == pytest.approx(0.0) and not first_row["true_north"]["flagged"]
    )
    assert first_row["plate_scale"]["difference"] == pytest.approx(12.255 - sc.IRDIS_PIXEL_SCALE_MAS)
    assert second["true_north"]["significance"] == pytest.approx(6.25) and second["true_north"]["flagged"]
    assert second["plate_scale"]["difference"] is None
    assert len(audit) == 2


def test_cli_add_import_list(catalogue, tmp_path):
    root = ["--root", str(catalogue.settings.root)]
    runner = CliRunner()
    added = runner.invoke(
        app,
        [
            "monitor",
            "astrometry",
            "add",
            "--epoch",
            "2016-03-01",
            "--arm",
            "IRDIS",
            "--true-north",
            "-1.75",
            "--true-north-err",
            "0.08",
            "--source",
            MAIRE,
            "--json",
            *root,
        ],
    )
    assert added.exit_code == 0, added.output
    csv_file = tmp_path / "values.csv"
    csv_file.write_text(
        "epoch,instrument,arm,filter,plate_scale_mas,plate_scale_err_mas,source\n"
        "2017-01-01,SPHERE,IRDIS,H2,12.25,0.01,report A\n"
        "2018-01-01,SPHERE,IFS,,7.46,0.02,report B\n"
    )
    imported = runner.invoke(app, ["monitor", "astrometry", "import", str(csv_file), "--json", *root])
    assert imported.exit_code == 0, imported.output and len(json.loads(imported.stdout)["ids"]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("epoch,instrument,source,plate_scale_mas\n2017-01-01,SPHERE,x,big\n")
    refused = runner.invoke(app, ["monitor", "astrometry", "import", str(bad), *root])
    assert refused.exit_code != 0 and "line 2" in refused.output and "plate_scale_mas" in refused.output
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("epoch,instrument,source,colour\n")
    assert (
        "unknown column"
        in runner.invoke(app, ["monitor", "astrometry", "import", str(unknown), *root]).output
    )
    listed = json.loads(runner.invoke(app, ["monitor", "astrometry", "list", "--json", *root]).stdout)
    assert [m["epoch"] for m in listed["measurements"]] == ["2016-03-01", "2017-01-01", "2018-01-01"]
    text = runner.invoke(app, ["monitor", "astrometry", "list", "--arm", "IFS", *root])
    assert text.exit_code == 0 and "report B" in text.stdout and "report A" not in text.stdout
