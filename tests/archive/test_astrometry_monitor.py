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


def test_cli_measure_simulated_field(catalogue, tmp_path):
    """`hcdc monitor astrometry measure` on a simulated IRDIS field (true True North -1.62 deg,
    plate scale 12.262 mas/px, POSANG 25 deg, IRDIS anamorphism): the stored values equal the
    truth within their measured errors, the source names the file, both audit entries are
    written; a non-staff account is refused, a list of another field gives a clear error."""
    from hcdc.instruments.sphere.irdis.astrometric_field import simulate_irdis_astrometric_field
    from hcdc.science.simulation.astrometric_field import FieldSpec

    paths = simulate_irdis_astrometric_field(
        tmp_path / "field", FieldSpec(scale_mas=12.262), seed=3, posang_deg=25.0, true_north_deg=-1.62
    )
    truth = json.loads(paths["truth"].read_text())
    root = ["--root", str(catalogue.settings.root)]
    runner = CliRunner()
    args = ["monitor", "astrometry", "measure", str(paths["fits"]), "--catalogue", str(paths["catalogue"])]
    measured = runner.invoke(app, [*args, "--json", *root])
    assert measured.exit_code == 0, measured.output
    result = json.loads(measured.stdout)
    assert abs(result["true_north_deg"] - truth["true_north_deg"]) < 3 * result["true_north_err_deg"]
    assert abs(result["plate_scale_mas"] - truth["plate_scale_mas"]) < 3 * result["plate_scale_err_mas"]
    assert 0 < result["true_north_err_deg"] < 0.02 and 0 < result["plate_scale_err_mas"] < 0.005
    assert result["fit"]["used"] >= 15 and result["epoch"] == "2026-03-15" and result["filter"] == "DB_H23"
    # the right field of the frame gives the same answer
    right = json.loads(runner.invoke(app, [*args, "--channel", "right", "--no-store", "--json"]).stdout)
    assert right["id"] is None
    assert abs(right["true_north_deg"] - truth["true_north_deg"]) < 3 * right["true_north_err_deg"]
    with catalogue.engine.begin() as conn:
        series = astrometric_series(conn, local_operator(), "SPHERE", "IRDIS")
        audit = list_audit(conn, action="monitoring.astrometry")
        add_user(conn, local_operator(), "user2")
    (row,) = series["measurements"]
    assert row["id"] == result["id"] and row["filter"] == "DB_H23" and row["epoch"] == "2026-03-15"
    assert row["true_north_deg"] == pytest.approx(result["true_north_deg"])
    assert "astrometric_field.fits" in row["source"] and "reference_list.csv" in row["source"]
    # 0.13 deg from the assumed -1.75 with an error of a few 0.001 deg: flagged
    assert row["true_north"]["flagged"]
    actions = sorted(a["action"] for a in audit)
    assert actions == ["monitoring.astrometry.add", "monitoring.astrometry.measure"]
    refused = runner.invoke(app, [*args, "--as", "user2", *root])
    assert refused.exit_code != 0 and "R1" in refused.output
    other = simulate_irdis_astrometric_field(tmp_path / "other", seed=8)
    bad = runner.invoke(app, [*args[:4], "--catalogue", str(other["catalogue"]), "--no-store"])
    assert bad.exit_code != 0 and "astrometric_field.fits" in bad.output and "at least 6" in bad.output
    nocsv = tmp_path / "nocols.csv"
    nocsv.write_text("name,ra\nx,1\n")
    bad = runner.invoke(app, [*args[:4], "--catalogue", str(nocsv), "--no-store"])
    assert bad.exit_code != 0 and "ra_deg and dec_deg" in bad.output


def test_measured_time_series_flags_a_drift(catalogue, tmp_path):
    """Three simulated astrometric fields months apart, True North -1.75, -1.75 then -1.45 deg
    (a 0.3 deg drift): measured and stored, the series flags only the third epoch against the
    assumed -1.75, and every stored value is its truth within 3 of its measured errors."""
    from hcdc.archive.astrometry_monitor import add_measured_calibration
    from hcdc.instruments.sphere.irdis.astrometric_field import (
        measure_irdis_field,
        simulate_irdis_astrometric_field,
    )

    truths = [("2026-01-10", -1.75), ("2026-04-10", -1.75), ("2026-07-10", -1.45)]
    with catalogue.engine.begin() as conn:
        for k, (date, tn) in enumerate(truths):
            paths = simulate_irdis_astrometric_field(
                tmp_path / date, seed=20 + k, true_north_deg=tn, date_obs=f"{date}T03:00:00.000"
            )
            add_measured_calibration(
                conn, local_operator(), measure_irdis_field(paths["fits"], paths["catalogue"], bootstrap=100)
            )
        series = astrometric_series(conn, local_operator(), "SPHERE", "IRDIS", nsigma=5)
    rows = series["measurements"]
    assert [m["epoch"] for m in rows] == [d for d, _ in truths]
    assert [m["true_north"]["flagged"] for m in rows] == [False, False, True]
    for m, (_, tn) in zip(rows, truths, strict=True):
        assert abs(m["true_north_deg"] - tn) < 3 * m["true_north_err_deg"]
        assert abs(m["plate_scale_mas"] - sc.IRDIS_PIXEL_SCALE_MAS) < 3 * m["plate_scale_err_mas"]
        assert not m["plate_scale"]["flagged"]


def test_migration_0024_downgrades_and_upgrades(catalogue) -> None:
    """0024_astrometry_monitor (the registered reference fields) goes down to the revision before
    it (whatever the chain puts there) and back up to head."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    from hcdc.archive.db import alembic_config, current_revision, head_revision

    config = alembic_config()
    before = ScriptDirectory.from_config(config).get_revision("0024_astrometry_monitor").down_revision
    assert "astrometric_reference_fields" in inspect(catalogue.engine).get_table_names()
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, before)
    names = set(inspect(catalogue.engine).get_table_names())
    assert "astrometric_reference_fields" not in names and "astrometric_calibrations" in names
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert "astrometric_reference_fields" in inspect(catalogue.engine).get_table_names()
    assert current_revision(catalogue.engine) == head_revision()
