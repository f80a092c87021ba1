"""REST survey tracking (SQLite and PostgreSQL): ``/api/v1/surveys...`` answers the survey's
group (and staff) only; anyone else, signed in or not, gets the same 404 as for a survey
that does not exist."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hcdc.archive import accounts
from hcdc.archive.access import local_operator
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.interferometry import CollectionSpec, add_collection
from hcdc.archive.interferometry_survey import import_targets
from hcdc.web.app import create_app

pytestmark = pytest.mark.shared_data

TARGETS = Path(__file__).parents[1] / "data" / "survey" / "issp_targets.csv"
NOW = dt.datetime(2026, 6, 1)


@pytest.fixture
def centre(tmp_path: Path, database_url: str, shared_data: Path):
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    source = tmp_path / "PIONIER_alfCenA_2016-05-31.fits"
    shutil.copy(shared_data / "oifits" / "real" / source.name, source)
    admin = local_operator()
    tokens = {}
    with catalogue.engine.begin() as conn:
        for name in ("member", "other"):
            accounts.add_user(conn, admin, name)
            tokens[name] = accounts.create_token(conn, admin, name, now=NOW, days=30).secret
        accounts.add_group(conn, admin, "issp")
        accounts.set_group_members(conn, admin, "issp", add=["member"])
        add_collection(
            conn, admin, CollectionSpec("pionier-l2", "public", calib_level=2, instrument="PIONIER")
        )
        import_targets(conn, admin, "ISSP", str(TARGETS), "issp")
    ingest(catalogue, [source], workers=1)
    yield catalogue, tokens
    catalogue.close()


def _client(catalogue, token: str | None) -> TestClient:
    client = TestClient(create_app(catalogue=catalogue, clock=lambda: NOW, secret_key="test-secret"))
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


PATHS = ("/api/v1/surveys/ISSP", "/api/v1/surveys/ISSP/targets", "/api/v1/surveys/ISSP/late",
         "/api/v1/surveys/ISSP/targets/alpha_cen_a")  # fmt: skip


def test_group_member_follows_the_survey(centre) -> None:
    catalogue, tokens = centre
    client = _client(catalogue, tokens["member"])
    summary = client.get("/api/v1/surveys/ISSP").json()
    assert summary["group"] == "issp" and summary["targets"] == 4
    assert summary["counts"]["calibrated"] == 1 and summary["counts"]["planned"] == 3
    # due 2020-01-01 and none validated: all three dated targets are late
    assert sorted(summary["late"]) == ["Alpha_Cen_A", "alf Eri", "bet Ari"]
    late = client.get("/api/v1/surveys/ISSP/late").json()
    assert late["count"] == 3 and "Alpha_Cen_A" in {i["name"] for i in late["items"]}
    target = client.get("/api/v1/surveys/ISSP/targets/alpha_cen_a").json()
    assert [h["stage"] for h in target["history"]] == ["planned", "observed", "reduced", "calibrated"]
    assert client.get("/api/v1/surveys/ISSP/targets/nobody").status_code == 404
    assert [s["name"] for s in client.get("/api/v1/surveys").json()["items"]] == ["ISSP"]


@pytest.mark.parametrize("who", [None, "other"])
def test_others_get_the_same_404(centre, who: str | None) -> None:
    catalogue, tokens = centre
    client = _client(catalogue, tokens[who] if who else None)
    for path in PATHS:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"detail": "no survey 'ISSP'"}
        # the same answer as for a survey that does not exist
        assert client.get(path.replace("ISSP", "NOPE", 1)).json() == {"detail": "no survey 'NOPE'"}
    assert client.get("/api/v1/surveys").json()["items"] == []
