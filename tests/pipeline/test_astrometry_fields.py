"""Astrometric calibration fields measured automatically (issue 15): classified at ingest
(DPR TYPE OBJECT,ASTROMETRY -> file class ASTROMETRY), queued on a registered reference field,
measured by the worker (recipe astrometric-field, workflow irdis-astrometry), recorded once in
the True North / plate-scale series, and the series' trend shows a known drift."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from hcdc.archive.access import AccessDenied, load_principal, local_operator
from hcdc.archive.accounts import add_user, list_audit
from hcdc.archive.astrometry_monitor import astrometric_trend, reference_fields, register_reference_field
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import File
from hcdc.archive.pipeline_models import Product
from hcdc.cli import app
from hcdc.instruments.sphere import constants as sc
from hcdc.instruments.sphere.irdis.astrometric_field import simulate_irdis_astrometric_field
from hcdc.pipeline.operations.astrometry import astrometry_hook, queue_astrometry
from hcdc.pipeline.operations.worker import Worker
from hcdc.pipeline.recipes.astrometric_field import PRODUCT_TYPE
from hcdc.science.simulation.astrometric_field import FieldSpec

#: True North drifting by +0.05 deg per year over three yearly fields (plate scale constant)
TRUTHS = [("2026-01-10", -1.75), ("2027-01-10", -1.70), ("2028-01-10", -1.65)]


@pytest.fixture
def catalogue(tmp_path, database_url):
    cat = init_data_centre(tmp_path / "dc", database_url=database_url)
    yield cat
    cat.close()


def test_fields_classified_queued_measured_recorded_and_trended(catalogue, tmp_path):
    folder = tmp_path / "raw"
    fields = []
    for date, tn in TRUTHS:
        # the same seed: the same stars (one reference list) and the same noise, rotated
        fields.append(
            simulate_irdis_astrometric_field(
                folder / date, seed=40, true_north_deg=tn, date_obs=f"{date}T03:00:00.000"
            )
        )
    # a field elsewhere on the sky: no registered reference, so reported and not queued
    elsewhere = simulate_irdis_astrometric_field(
        folder / "elsewhere", FieldSpec(ra0_deg=10.0, dec0_deg=-30.0), seed=9
    )
    ingest(catalogue, [folder])
    with catalogue.engine.connect() as conn:
        classes = conn.execute(select(File.type, File.file_class, File.category).where(File.is_current)).all()
    assert len(classes) == 4
    assert {tuple(c) for c in classes} == {("OBJECT,ASTROMETRY", "ASTROMETRY", "CALIB")}

    # nothing registered: every field is reported, none queued
    first = queue_astrometry(catalogue)
    assert first.queued == [] and len(first.without_reference) == 4

    with catalogue.engine.begin() as conn:
        add_user(conn, local_operator(), "user1")
        user = load_principal(conn, "user1")
        with pytest.raises(AccessDenied, match="R1"):
            register_reference_field(
                conn, user, catalogue.storage_root, name="x", catalogue=fields[0]["catalogue"], source="x"
            )
        field_id = register_reference_field(
            conn,
            local_operator(),
            catalogue.storage_root,
            name="NGC 3603 (simulated)",
            catalogue=fields[0]["catalogue"],
            source="simulated reference list (hcdc simulator, seed 40)",
        )
        with pytest.raises(ValueError, match="already registered"):
            register_reference_field(
                conn,
                local_operator(),
                catalogue.storage_root,
                name="NGC 3603 (simulated)",
                catalogue=fields[0]["catalogue"],
                source="again",
            )
        (registered,) = reference_fields(conn, local_operator())
        with pytest.raises(AccessDenied):
            reference_fields(conn, user)
    assert registered["id"] == field_id and registered["n_stars"] == 40
    assert registered["ra_deg"] == pytest.approx(168.7875, abs=3e-3)  # mean of the stars
    second = queue_astrometry(catalogue)
    assert len(second.queued) == 3 and second.without_reference == [str(_stored(catalogue, elsewhere))]
    assert queue_astrometry(catalogue).queued == []  # queued once

    with Worker(catalogue, processes=0) as worker:
        outcomes = worker.run(once=True)
    assert [o.state for o in outcomes] == ["done"] * 3, [o.error for o in outcomes]
    # the watcher's hook records the finished measurements and passes the poll on
    seen = []
    astrometry_hook(catalogue, on_poll=seen.append)(poll := SimpleNamespace())
    assert seen == [poll]
    third = poll.astrometry
    assert len(third.recorded) == 3 and third.queued == []
    assert queue_astrometry(catalogue).recorded == []  # recorded once

    with catalogue.engine.connect() as conn:
        products = conn.execute(
            select(Product.id, Product.level, Product.workflow, Product.summary).where(
                Product.product_type == PRODUCT_TYPE
            )
        ).all()
        trend = astrometric_trend(conn, local_operator(), "SPHERE", "IRDIS", nsigma=3)
        with pytest.raises(AccessDenied):
            astrometric_trend(conn, user)
        actions = [a["action"] for a in list_audit(conn, action="monitoring.astrometry")]
    assert len(products) == 3 and {p.workflow for p in products} == {"irdis-astrometry"}
    assert actions.count("monitoring.astrometry.field") == 1
    assert actions.count("monitoring.astrometry.measure") == 3
    (series,) = trend["series"]
    assert series["filter"] == "DB_H23"
    tn, scale = series["true_north"], series["plate_scale"]
    assert [p["epoch"] for p in tn["points"]] == [d for d, _ in TRUTHS]
    for point, (_, truth) in zip(tn["points"], TRUTHS, strict=True):
        assert abs(point["value"] - truth) < 3 * point["error"]
    # the known drift: +0.05 deg/yr, found within 3 errors and flagged; the scale does not drift
    assert abs(tn["slope_per_year"] - 0.05) < 3 * tn["slope_err_per_year"]
    assert tn["drift_flagged"] and tn["slope_err_per_year"] < 0.01
    assert not scale["drift_flagged"]
    assert abs(scale["mean"] - sc.IRDIS_PIXEL_SCALE_MAS) < 3 * scale["mean_err"] + 0.002

    # the CLI: trend as JSON (staff), refused to a user
    runner = CliRunner()
    root = ["--root", str(tmp_path / "dc")]
    out = runner.invoke(app, ["monitor", "astrometry", "trend", "--json", *root])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["series"][0]["true_north"]["drift_flagged"] is True
    table = runner.invoke(app, ["monitor", "astrometry", "trend", *root])
    assert table.exit_code == 0 and "DB_H23" in table.stdout
    refused = runner.invoke(app, ["monitor", "astrometry", "trend", "--as", "user1", *root])
    assert refused.exit_code != 0


def _stored(catalogue, paths) -> str:
    from hcdc.archive.storage import resolve_stored_path

    with catalogue.engine.connect() as conn:
        row = conn.execute(
            select(File.storage, File.stored_path).where(File.path == str(paths["fits"].resolve()))
        ).one()
    return str(resolve_stored_path(row.storage, row.stored_path, catalogue.storage_root))


def test_cli_field_add_fields_queue(catalogue, tmp_path):
    """`hcdc monitor astrometry field-add|fields|queue`: staff register a field and queue the
    ingested field file on it; a user is refused; a bad list names its file."""
    paths = simulate_irdis_astrometric_field(tmp_path / "raw", seed=3)
    ingest(catalogue, [tmp_path / "raw"])
    with catalogue.engine.begin() as conn:
        add_user(conn, local_operator(), "user1")
    runner = CliRunner()
    root = ["--root", str(tmp_path / "dc")]
    add = [
        "monitor",
        "astrometry",
        "field-add",
        str(paths["catalogue"]),
        "--name",
        "NGC 3603",
        "--source",
        "sim",
    ]
    refused = runner.invoke(app, [*add, "--as", "user1", *root])
    assert refused.exit_code != 0 and "R1" in refused.output
    added = runner.invoke(app, [*add, "--radius", "20", "--json", *root])
    assert added.exit_code == 0, added.output
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    wrong = runner.invoke(
        app, ["monitor", "astrometry", "field-add", str(bad), "--name", "b", "--source", "s", *root]
    )
    assert wrong.exit_code != 0 and "bad.csv" in wrong.output
    listed = json.loads(runner.invoke(app, ["monitor", "astrometry", "fields", "--json", *root]).stdout)
    (field,) = listed["fields"]
    assert field["id"] == json.loads(added.stdout)["id"] and field["radius_arcsec"] == 20.0
    queued = runner.invoke(app, ["monitor", "astrometry", "queue", "--json", *root])
    assert queued.exit_code == 0, queued.output
    result = json.loads(queued.stdout)
    assert len(result["queued"]) == 1 and result["without_reference"] == [] and result["recorded"] == []
    assert runner.invoke(app, ["monitor", "astrometry", "queue", "--as", "user1", *root]).exit_code != 0


def test_field_with_dpr_type_object_recognised_by_position(catalogue, tmp_path):
    """The DPR TYPE of real field files is not confirmed: a field-tracking file typed plain
    ``OBJECT`` (file class SCIENCE) whose pointing lies in a registered field is queued and
    measured like an ``OBJECT,ASTROMETRY`` one; the same in pupil tracking, and an ``OBJECT``
    file elsewhere, are left alone (science, not reported)."""
    from astropy.io import fits

    folder = tmp_path / "raw"
    typed_object = simulate_irdis_astrometric_field(
        folder / "object_sky", seed=40, true_north_deg=-1.62, dpr_type="OBJECT", dpr_catg="SCIENCE"
    )
    pupil = simulate_irdis_astrometric_field(
        folder / "object_elev", seed=41, dpr_type="OBJECT", dpr_catg="SCIENCE"
    )
    with fits.open(pupil["fits"], mode="update") as hdul:
        hdul[0].header["HIERARCH ESO INS4 DROT2 MODE"] = "ELEV"
    simulate_irdis_astrometric_field(
        folder / "object_elsewhere",
        FieldSpec(ra0_deg=10.0, dec0_deg=-30.0),
        seed=9,
        dpr_type="OBJECT",
        dpr_catg="SCIENCE",
    )
    typed_std = simulate_irdis_astrometric_field(
        folder / "std_sky", seed=40, true_north_deg=-1.62, dpr_type="STD,ASTROMETRY", dpr_catg="CALIB"
    )
    ingest(catalogue, [folder])
    with catalogue.engine.connect() as conn:
        classes = conn.execute(select(File.type, File.file_class).where(File.is_current)).all()
    assert sorted(tuple(c) for c in classes) == [("OBJECT", "SCIENCE")] * 3 + [("STD,ASTROMETRY", "STD")]
    assert queue_astrometry(catalogue).as_dict()["queued"] == []  # no field registered: nothing
    with catalogue.engine.begin() as conn:
        register_reference_field(
            conn,
            local_operator(),
            catalogue.storage_root,
            name="NGC 3603 (simulated)",
            catalogue=typed_object["catalogue"],
            source="simulated reference list (hcdc simulator, seed 40)",
        )
    poll = queue_astrometry(catalogue)
    assert len(poll.queued) == 2 and poll.without_reference == []
    assert sorted(poll.by_position) == sorted(_stored(catalogue, p) for p in (typed_object, typed_std))
    with Worker(catalogue, processes=0) as worker:
        outcomes = worker.run(once=True)
    assert [o.state for o in outcomes] == ["done"] * 2, [o.error for o in outcomes]
    with catalogue.engine.connect() as conn:
        summaries = list(
            conn.execute(select(Product.summary).where(Product.product_type == PRODUCT_TYPE)).scalars()
        )
    assert len(summaries) == 2
    for summary in summaries:
        assert abs(summary["true_north_deg"] - (-1.62)) < 3 * summary["true_north_err_deg"]
        scale_err = 3 * summary["plate_scale_err_mas"] + 1e-3
        assert abs(summary["plate_scale_mas"] - sc.IRDIS_PIXEL_SCALE_MAS) < scale_err
