"""Contrast versus conditions end to end: a simulated IRDIS sequence with SPARTA files goes
through the queue (``irdis-l1-l2``: Level 1 then annular PCA); its Level 2 contrast at the
standard separations is joined with the Level 1 cube's median conditions through provenance,
for those who may see both, and ``hcdc monitor contrast`` shows and plots it. Its second
CENTER frame is spoiled (one waffle spot displaced), so the monitoring report must list the
Level 1 product's centring fall-backs."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from hcdc.archive import products as prod
from hcdc.archive.access import load_principal, local_operator
from hcdc.archive.accounts import add_user, create_token
from hcdc.archive.associations import associate_all
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset
from hcdc.archive.monitoring_report import monitoring_report, problem_rows
from hcdc.archive.telemetry import contrast_conditions
from hcdc.cli import app
from hcdc.instruments.sphere.irdis.centring_report import is_fallback
from hcdc.pipeline.operations.worker import Worker, queue_datasets
from hcdc.web.app import create_app


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night

    out = tmp_path_factory.mktemp("night") / "raw"
    return simulate_irdis_night(
        out, seed=9, sequences=DEFAULT_SEQUENCES[:1], ao_telemetry=True, bad_center=True
    )


def test_level2_contrast_joined_with_level1_conditions(night, tmp_path: Path, database_url: str):
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    try:
        assert ingest(catalogue, [night.out_dir], workers=1).quarantined == 0
        associate_all(catalogue.engine)
        with catalogue.engine.connect() as conn:
            (dataset_id,) = conn.scalars(select(Dataset.id)).all()
        # 64 px frames reach 0.39": contrast at 0.2" and 0.3", none at 0.5" and 1"
        queue_datasets(catalogue, [dataset_id], workflow="irdis-l1-l2", parameters=["level1.science_dim=64"])
        with Worker(catalogue, processes=0) as worker:
            outcomes = worker.run(once=True)
        assert [o.state for o in outcomes] == ["done"], outcomes[0].error
        with catalogue.engine.connect() as conn:
            products = {p["level"]: p for p in prod.list_products(conn)}
            l1 = prod.product_detail(conn, products[1]["id"], catalogue.storage_root)
            l2 = prod.product_detail(conn, products[2]["id"], catalogue.storage_root)
            (row,) = contrast_conditions(conn, local_operator())
        assert row["product_id"] == l2["id"] and row["level1_product_id"] == l1["id"]
        assert row["dataset_id"] == dataset_id and row["night"] == "2018-11-30"
        conditions = l1["summary"]["ao_conditions"]
        for key in ("strehl_median", "seeing_median_arcsec", "tau0_median_s", "wind_median_m_s"):
            assert row[key] == conditions[key] and row[key] is not None
        stored = {c["separation_arcsec"]: c["contrast"] for c in l2["summary"]["contrast_at"]}
        assert {c["separation_arcsec"]: c["contrast"] for c in row["contrast"]} == stored
        assert 0 < stored[0.3][0] < stored[0.2][0] < 1e-2 and stored[1.0] == [None, None]

        root = ["--root", str(catalogue.settings.root)]
        runner = CliRunner()
        png = tmp_path / "contrast.png"
        shown = runner.invoke(app, ["monitor", "contrast", "--json", "--plot", str(png), *root])
        assert shown.exit_code == 0, shown.output
        payload = json.loads(shown.stdout)
        assert [p["product_id"] for p in payload["products"]] == [l2["id"]]
        # one product: no correlation can be computed, and it says so (null, not a number)
        assert payload["correlations"]["0.2"]["seeing"]["spearman_rho"] is None
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        text = runner.invoke(app, ["monitor", "contrast", "--wavelength", "1", *root])
        assert (
            text.exit_code == 0 and f"p{l2['id']}" in text.stdout and f"{stored[0.2][1]:.2e}" in text.stdout
        )
        assert (
            json.loads(
                runner.invoke(app, ["monitor", "contrast", "--target", "vega", "--json", *root]).stdout
            )["products"]
            == []
        )
        with catalogue.engine.begin() as conn:
            add_user(conn, local_operator(), "stranger")
        with catalogue.engine.connect() as conn:
            stranger = load_principal(conn, "stranger")
            # proprietary in 2019: nothing; public by now
            assert contrast_conditions(conn, stranger, now=dt.datetime(2019, 1, 1)) == []
            assert [r["product_id"] for r in contrast_conditions(conn, stranger)] == [l2["id"]]
        # the spoiled (last) CENTER frame is rescued by three spots; every OBJECT frame lies
        # between the two CENTER frames and interpolates with it: all fell back
        with catalogue.engine.connect() as conn:
            report = monitoring_report(
                conn, local_operator(), dt.date(2018, 11, 30), dt.date(2018, 11, 30), catalogue.storage_root
            )
        (entry,) = report["datasets"]
        (centring,) = entry["centring"]
        frames = l1["summary"]["frames"]
        assert centring["product_id"] == l1["id"] and centring["frames"] == frames > 0
        assert centring["fallback_frames"] == frames and centring["not_ok_frames"] == 0
        assert centring["methods"] == {"waffle+waffle-3spot": 2 * frames}  # two DBI wavelengths
        (row,) = [r for r in problem_rows(report) if r["category"] == "centring_fallback"]
        assert (row["item"], row["value"], row["limit"]) == (f"p{l1['id']}", frames, frames)
        assert report["nights"][0]["centring_fallbacks"] == 1
        # the administrators' quality-control page lists it too (a signed-in admin's page)
        with catalogue.as_user(local_operator()) as view:
            (qc,) = view.admin().quality()["centring"]
        assert qc == centring
        client = TestClient(create_app(catalogue=catalogue, secret_key="test-secret"))
        with catalogue.engine.begin() as conn:
            add_user(conn, local_operator(), "boss", role="admin")
            client.headers["Authorization"] = (
                f"Bearer {create_token(conn, local_operator(), 'boss', days=1).secret}"
            )
        table = client.get("/admin").text.split('id="qc-centring"')[1].split("</table>")[0]
        assert f'href="/products/{l1["id"]}"' in table and "waffle+waffle-3spot" in table
        # as the stranger saw nothing in 2019, the product's centring is not in that report
        with catalogue.engine.connect() as conn:
            hidden = monitoring_report(
                conn,
                stranger,
                dt.date(2018, 11, 30),
                dt.date(2018, 11, 30),
                catalogue.storage_root,
                now=dt.datetime(2019, 1, 1),
            )
        assert hidden["datasets"] == []
    finally:
        catalogue.close()


def test_planned_and_fallback_centring_methods():
    assert not is_fallback("waffle") and not is_fallback("waffle+waffle")
    assert is_fallback("waffle+waffle-3spot") and is_fallback("symmetry") and is_fallback("default")
