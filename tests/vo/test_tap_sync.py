"""TAP sync against the access world (SQLite and PostgreSQL): rights, MAXREC/OVERFLOW, formats,
geometry, TAP_SCHEMA, hostile ADQL, VOSI documents."""

from __future__ import annotations

import base64
import io
import json

import pytest
from astropy.io.votable import parse
from fastapi.testclient import TestClient
from web.world import BEFORE, PASSWORD

from hcdc.web.app import create_app

from .vo_tools import votlint


@pytest.fixture
def tap(world):
    def make(user: str | None = None, basic: bool = False, when=BEFORE) -> TestClient:
        client = TestClient(create_app(catalogue=world.catalogue, clock=lambda: when, secret_key="t"))
        if user is not None and basic:
            secret = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
            client.headers["Authorization"] = f"Basic {secret}"
        elif user is not None:
            client.headers["Authorization"] = f"Bearer {world.tokens[user]}"
        return client

    return make


def _query(client, adql, **extra):
    response = client.post("/tap/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql, **extra})
    return response


def _table(response):
    return parse(io.BytesIO(response.content)).get_first_table().to_table()


def _dids(client):
    response = _query(client, "SELECT obs_publisher_did FROM ivoa.obscore")
    assert response.status_code == 200, response.text
    return {str(d) for d in _table(response)["obs_publisher_did"]}


def test_rights_anonymous_owner_other_admin(world, tap) -> None:
    private = f"product?{world.ids['private']['product']}"
    anonymous = _dids(tap())
    owner = _dids(tap("owner"))
    owner_basic = _dids(tap("owner", basic=True))
    other = _dids(tap("other_pi"))
    admin = _dids(tap("admin"))
    assert not any(d.endswith(private) for d in anonymous | other)
    assert any(d.endswith(private) for d in owner) and owner == owner_basic
    assert len(admin) == 12 and anonymous < owner <= admin
    # a query cannot go around the filter: other tables are unknown, subqueries go through it too
    for adql in ("SELECT * FROM obscore_raw", "SELECT * FROM products", "SELECT id FROM files"):
        assert _query(tap(), adql).status_code == 400
    nested = _query(tap(), "SELECT COUNT(*) AS n FROM (SELECT * FROM ivoa.obscore) AS x")
    assert int(_table(nested)["n"][0]) == len(anonymous)
    bad = tap()
    bad.headers["Authorization"] = "Basic " + base64.b64encode(b"owner:wrong").decode()
    assert _query(bad, "SELECT TOP 1 * FROM ivoa.obscore").status_code == 401


@pytest.mark.parametrize("fmt", ["votable", "votable/td", "csv", "json"])
def test_formats_and_overflow(tap, fmt) -> None:
    response = _query(
        tap("admin"), "SELECT * FROM ivoa.obscore ORDER BY obs_publisher_did", MAXREC="5", FORMAT=fmt
    )
    assert response.status_code == 200, response.text
    if fmt.startswith("votable"):
        text = response.text
        assert 'value="OVERFLOW"' in text and len(_table(response)) == 5
        assert 'xtype="adql:REGION"' in text
        votlint(response.content)
    elif fmt == "csv":
        lines = response.text.strip().splitlines()
        assert lines[0].startswith("dataproduct_type,") and len(lines) == 6
    else:
        data = json.loads(response.text)
        assert data["overflow"] and len(data["data"]) == 5


def test_geometry_and_errors(world, tap) -> None:
    admin = tap("admin")
    # the world's files have no positions: give the test a known answer through TAP_SCHEMA and a
    # region around nothing; geometry must run (and agree) on both databases
    response = _query(
        admin,
        "SELECT COUNT(*) AS n FROM ivoa.obscore "
        "WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10, 20, 1))",
    )
    assert response.status_code == 200, response.text
    assert int(_table(response)["n"][0]) == 0
    response = _query(
        admin,
        "SELECT DISTANCE(POINT('ICRS', 0, 0), POINT('ICRS', 3, 4)) AS d, "
        "AREA(CIRCLE('ICRS', 10, 10, 1)) AS a FROM TAP_SCHEMA.schemas WHERE schema_name = 'ivoa'",
    )
    row = _table(response)
    assert float(row["d"][0]) == pytest.approx(4.9977, abs=1e-3) and float(row["a"][0]) == pytest.approx(
        3.1416, rel=1e-3
    )
    columns = _table(
        _query(
            admin, "SELECT column_name, unit, ucd FROM TAP_SCHEMA.columns WHERE table_name = 'ivoa.obscore'"
        )
    )
    assert "s_region" in set(columns["column_name"]) and len(columns) >= 34
    for adql, words in [
        ("DUFF QUERY", "syntax"),
        ("SELECT * FROM ivoa.obscore; DROP TABLE files", "one SELECT"),
        ("SELECT pg_sleep(10) FROM ivoa.obscore", "not allowed"),
        ("DROP TABLE obscore", "only SELECT"),
        ("SELECT nope FROM ivoa.obscore", "unknown column"),
    ]:
        response = _query(admin, adql)
        assert response.status_code == 400 and 'value="ERROR"' in response.text
        assert words in response.text, (adql, response.text)
    assert "LANG" in _query(admin, "SELECT 1", LANG="OOBLECK").text


def test_vosi_documents(tap) -> None:
    client = tap()
    for path in (
        "/tap/capabilities",
        "/tap/availability",
        "/tap/tables",
        "/tap/tables?detail=min",
        "/tap/tables/ivoa.obscore",
    ):
        response = client.get(path)
        assert response.status_code == 200 and response.text.startswith("<?xml"), path
    assert "ivo://ivoa.net/std/ObsCore#core-1.1" in client.get("/tap/capabilities").text


def test_basic_auth_guessing_is_limited_like_the_portal_login(tap) -> None:
    """HTTP Basic on TAP counts failed passwords in the same shared limiter as the portal's login."""
    guesser = tap()
    guesser.headers["Authorization"] = "Basic " + base64.b64encode(b"admin:wrong").decode()
    codes = [_query(guesser, "SELECT TOP 1 * FROM ivoa.obscore").status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    # the right password is refused too while the window lasts: no oracle for the guesser
    right = tap("admin", basic=True)
    assert _query(right, "SELECT TOP 1 * FROM ivoa.obscore").status_code == 429
