"""``/api/v1/granules`` and the downloads of an OIFITS file in a CHARA collection, before and after
its embargo, for anonymous, the data PI, a delegate and another user (SQLite and PostgreSQL):
the API obeys rules R11-R14 of hcdc.archive.access."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hcdc.archive import accounts
from hcdc.archive.access import MONTH_DAYS, datetime_of_mjd, local_operator
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.interferometry import CollectionSpec, add_collection, delegate_granules
from hcdc.web.app import create_app

pytestmark = pytest.mark.shared_data

SPICA = "simulated/ASPRO2_CHARA_SPICA_zetOph.fits"
T_MAX = 60076.341170906555  # the file's last MJD (oitools_granules.csv), 2023-05-12 08:11 UTC


@pytest.fixture
def centre(tmp_path: Path, database_url: str, shared_data: Path):
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    source = tmp_path / "zetOph.fits"
    shutil.copy(shared_data / "oifits" / SPICA, source)
    ingest(catalogue, [source], workers=1)
    admin = local_operator()
    tokens = {}
    with catalogue.engine.begin() as conn:
        for name in ("pi", "deleg", "other"):
            accounts.add_user(conn, admin, name)
            tokens[name] = accounts.create_token(
                conn, admin, name, now=dt.datetime(2023, 1, 1), days=3650
            ).secret
        add_collection(conn, admin, CollectionSpec("spica-issp", "chara", owner="pi", facility="CHARA"))
        delegate_granules(conn, admin, "deleg", "spica-issp")
    yield catalogue, tokens
    catalogue.close()


def _client(catalogue, when: dt.datetime, token: str | None) -> TestClient:
    app = create_app(catalogue=catalogue, clock=lambda: when, secret_key="test-secret")
    client = TestClient(app, base_url="http://testserver")
    if token:
        client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_granules_api_and_downloads_obey_the_collection_embargo(centre) -> None:
    catalogue, tokens = centre
    release = datetime_of_mjd(T_MAX + 18 * MONTH_DAYS)  # CHARA: 18 months
    before, after = release - dt.timedelta(days=2), release + dt.timedelta(days=2)
    for who, sees_before in ((None, False), ("other", False), ("pi", True), ("deleg", True)):
        for when, sees in ((before, sees_before), (after, True)):
            client = _client(catalogue, when, tokens.get(who))
            listed = client.get("/api/v1/granules").json()
            assert listed["count"] == (1 if sees else 0), (who, when)
            file_status = client.get("/api/v1/files/1").status_code
            download = client.get("/api/v1/files/1/download")
            assert (file_status, download.status_code) == ((200, 200) if sees else (404, 404)), (who, when)
            if sees:
                item = listed["items"][0]
                assert (item["collection"], item["data_rights"], item["target_name"]) == (
                    "spica-issp",
                    "secure",
                    "Zeta Oph",
                )
                assert item["obs_release_date"].startswith(f"{release:%Y-%m-%d}")
                assert download.content[:6] == b"SIMPLE"
            # the file search never lists what the file page hides
            files = client.get("/api/v1/files?limit=500").json()
            assert files["total"] == (1 if sees else 0), (who, when)
