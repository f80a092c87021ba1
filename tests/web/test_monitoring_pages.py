"""The staff monitoring pages (/admin/monitoring/...): refused to anonymous and to users, the
simulated AO night's conditions and report for admins and operators (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re

import numpy as np
import pytest

from hcdc.archive import accounts
from hcdc.archive.access import local_operator
from hcdc.archive.ingest import ingest
from hcdc.archive.monitoring_report import CSV_COLUMNS, monitoring_report, problem_rows
from hcdc.archive.telemetry import night_overview

from .world import BEFORE, PASSWORD

NIGHT = dt.date(2018, 11, 30)
PAGES = [
    f"/admin/monitoring/night/{NIGHT}",
    f"/admin/monitoring/report?from={NIGHT}&to={NIGHT}",
    f"/admin/monitoring/report?from={NIGHT}&to={NIGHT}&format=csv",
]


@pytest.fixture(scope="module")
def ao_night(tmp_path_factory):
    """The default simulated IRDIS night (DBI then CI sequence) with its SPARTA files."""
    from hcdc.instruments.sphere.irdis.simulate import simulate_irdis_night

    return simulate_irdis_night(tmp_path_factory.mktemp("ao-night") / "raw", seed=21, ao_telemetry=True)


@pytest.fixture
def monitored(world, ao_night):
    """The web world with the simulated night ingested and an operator account (token in world.tokens)."""
    summary = ingest(world.catalogue, [ao_night.out_dir], workers=1)
    assert summary.quarantined == 0
    with world.catalogue.engine.begin() as conn:
        accounts.add_user(conn, local_operator(), "night_operator", role="operator", password=PASSWORD)
        token = accounts.create_token(conn, local_operator(), "night_operator", days=3650, now=BEFORE)
        world.tokens["night_operator"] = token.secret
    return world


def test_monitoring_pages_are_refused_to_anonymous_and_users(monitored, client_at):
    for url in PAGES:
        assert client_at().get(url, follow_redirects=False).status_code == 401, url
        for user in ("owner", "member", "other_pi"):
            response = client_at(BEFORE, user).get(url, follow_redirects=False)
            assert response.status_code == 403, (user, url)
            assert "DB_H23" not in response.text and "strehl" not in response.text.lower()


def _chart(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="night-data">(.*?)</script>', html, re.S)
    assert found, "no chart data in the page"
    return json.loads(found.group(1))


@pytest.mark.parametrize("staff", ["admin", "night_operator"])
def test_staff_see_the_simulated_night(monitored, client_at, staff):
    client = client_at(BEFORE, staff)
    response = client.get(f"/admin/monitoring/night/{NIGHT}")
    assert response.status_code == 200, response.text[:300]
    with monitored.catalogue.engine.connect() as conn:
        truth = night_overview(conn, local_operator(), NIGHT, monitored.catalogue.storage_root, now=BEFORE)
    chart = _chart(response.text)
    samples = truth.series["mjd"].size
    assert samples > 100 and len(chart["time"]) == len(chart["strehl"]) == samples
    np.testing.assert_allclose(np.array(chart["strehl"], dtype=float), truth.series["strehl"])
    np.testing.assert_allclose(np.array(chart["tau0_ms"], dtype=float), truth.series["tau0_s"] * 1e3)
    assert [s["label"].split()[-1] for s in chart["sequences"]] == ["DB_H23", "BB_H"]
    assert chart["sequences"][0]["start"] < chart["sequences"][0]["end"] <= chart["sequences"][1]["start"]
    assert chart["time"][0].startswith("2018-12-01T") or chart["time"][0].startswith("2018-11-30T")
    assert f"{truth.summary()['strehl_median']:.3f}" in response.text
    assert "/static-lib/plotly.min.js" in response.text and "/static/monitoring.js" in response.text
    # a night without telemetry: no chart, said so
    empty = client.get("/admin/monitoring/night/2018-06-01")
    assert empty.status_code == 200 and 'id="no-telemetry"' in empty.text and "night-data" not in empty.text
    assert client.get("/admin/monitoring/night/30-11-2018").status_code == 422


def test_staff_get_the_report_and_its_csv(monitored, client_at):
    client = client_at(BEFORE, "night_operator")
    page = client.get(f"/admin/monitoring/report?from={NIGHT}&to={NIGHT}")
    assert page.status_code == 200, page.text[:300]
    with monitored.catalogue.engine.connect() as conn:
        report = monitoring_report(
            conn, local_operator(), NIGHT, NIGHT, monitored.catalogue.storage_root, now=BEFORE
        )
    rows = problem_rows(report)
    assert len(report["datasets"]) == 2
    for entry in report["datasets"]:
        assert f'data-dataset="{entry["dataset_id"]}"' in page.text
        assert f"{entry['conditions']['strehl_median']:.3f}" in page.text
    assert page.text.count('class="problem"') == len(rows)
    link = re.search(r'href="([^"]*format=csv)" id="report-csv"', page.text).group(1).replace("&amp;", "&")
    download = client.get(link)
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    parsed = list(csv.DictReader(io.StringIO(download.text)))
    assert tuple(csv.DictReader(io.StringIO(download.text)).fieldnames) == CSV_COLUMNS
    assert [(r["dataset_id"], r["category"], r["item"]) for r in parsed] == [
        (str(r["dataset_id"]), r["category"], r["item"]) for r in rows
    ]
    # a strict Strehl limit makes both datasets' conditions a problem
    strict = client.get(f"/admin/monitoring/report?from={NIGHT}&to={NIGHT}&strehl_min=0.99&format=csv")
    categories = [r["category"] for r in csv.DictReader(io.StringIO(strict.text))]
    assert categories.count("conditions") >= 2
    # bad input: named in a 422 page
    for query, words in (
        ("from=2018-13-01", "from must be a date"),
        ("from=2018-12-01&to=2018-11-30", "ends"),
        ("from=2018-01-01&to=2018-12-31", "at most"),
        ("strehl_min=high", "strehl_min must be a number"),
        ("format=xls", "format must be"),
    ):
        bad = client.get(f"/admin/monitoring/report?{query}")
        assert bad.status_code == 422 and words in bad.text, (query, bad.status_code)


def test_admin_page_and_staff_navigation_link_the_monitoring(monitored, client_at):
    page = client_at(BEFORE, "admin").get("/admin")
    assert 'href="/admin/monitoring/report" id="monitoring-link"' in page.text
    for user, shown in (("admin", True), ("night_operator", True), ("owner", False), (None, False)):
        home = client_at(BEFORE, user).get("/")
        assert ('id="monitoring-nav"' in home.text) is shown, user
