"""Portal pages rendered by the server (SQLite): home, search, exports, dataset, product, my data,
reduction request and job page, release delay by the PI."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from astropy.io.votable import parse_single_table

from .world import AFTER, PASSWORD


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url


def _signed_in(client, name="owner"):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    client.post("/login", data={"name": name, "password": PASSWORD, "csrf_token": token})
    return token_of(client)


def token_of(client, path="/my") -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text).group(1)


def test_home_counts_what_the_caller_may_see(client_at):
    anonymous = client_at().get("/").text
    assert "Products per level" in anonymous and re.search(r">L2</a></td><td class=\"num\">1<", anonymous)
    admin = client_at(user="admin").get("/").text
    assert re.search(r">L2</a></td><td class=\"num\">6<", admin)


def test_search_sort_page_and_export(client_at, world):
    client = client_at(AFTER)  # everything public
    page = client.get(
        "/search",
        params={"kind": "products", "target": "eri", "limit": 4, "sort": "id", "descending": "false"},
    )
    ids = [int(i) for i in re.findall(r'href="/products/(\d+)" class="result-link"', page.text)]
    assert ids == sorted(world.ids[k]["product"] for k in world.ids)[:4]
    assert "6 results" in page.text and 'id="next"' in page.text
    nxt = re.search(r'href="([^"]+)" id="next"', page.text).group(1).replace("&amp;", "&")
    second = client.get(nxt).text
    assert len(re.findall(r'class="result-link"', second)) == 2 and 'id="prev"' in second
    bad = client.get("/search", params={"kind": "products", "night_from": "yesterday"})
    assert "night_from must be a date" in bad.text
    rows = list(csv.DictReader(io.StringIO(client.get("/search/export?kind=products&format=csv").text)))
    assert len(rows) == 6 and rows[0]["target"] == "51 Eri" and rows[0]["algorithm"]
    table = parse_single_table(io.BytesIO(client.get("/search/export?kind=datasets&format=votable").content))
    assert len(table.to_table()) == 6
    files = client.get("/search", params={"kind": "files", "programme": "0999.C-0001"}).text
    assert "1 result" in files


def test_dataset_and_product_pages(client_at, world):
    client = client_at(AFTER)
    ds, pid = world.ids["public"]["dataset"], world.ids["public"]["product"]
    dataset = client.get(f"/datasets/{ds}").text
    assert f'href="/products/{pid}"' in dataset and "DB_H23" in dataset
    product = client.get(f"/products/{pid}").text
    data = json.loads(
        re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', product, re.S).group(1)
    )
    assert data["curves"] and data["snr_map"]["z"]
    assert 'src="/static-lib/plotly.min.js"' in product and "<script>" not in product  # no inline script
    assert f"/api/v1/products/{pid}/download" in product and "sha256" in product
    assert f'href="/files/{world.ids["public"]["file"]}"' in product  # provenance down to the raw file
    js = client.get("/static-lib/plotly.min.js")
    assert (
        js.status_code == 200 and len(js.content) > 1_000_000 and "javascript" in js.headers["content-type"]
    )


def test_request_a_reduction_from_the_form(client_at, world):
    client = client_at()
    ds = world.ids["embargoed"]["dataset"]
    assert client.get(f"/datasets/{ds}/reduce", follow_redirects=False).status_code == 303  # sign in first
    token = _signed_in(client)
    form = client.get(f"/datasets/{ds}/reduce").text
    assert 'name="irdis-l1-l2:level2.ncomp"' in form
    bad = client.post(
        f"/datasets/{ds}/reduce",
        data={"csrf_token": token, "workflow": "irdis-l1-l2", "irdis-l1-l2:level2.ncomp": "zero"},
    )
    assert bad.status_code == 422 and "ncomp" in bad.text
    done = client.post(
        f"/datasets/{ds}/reduce",
        data={"csrf_token": token, "workflow": "irdis-l1-l2", "irdis-l1-l2:level2.ncomp": "2"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"].startswith("/jobs/")
    job = client.get(done.headers["location"]).text
    assert "queued" in job and "level2.ncomp=2" in job and 'src="/static/portal.js"' in job


def test_pi_delays_a_release_from_the_product_page(client_at, world):
    client = client_at()
    pid = world.ids["private"]["product"]
    _signed_in(client)
    page = client.get(f"/products/{pid}").text
    assert 'id="delay-form"' in page
    token = token_of(client, f"/products/{pid}")
    response = client.post(
        f"/products/{pid}/delay",
        data={"csrf_token": token, "until": "2028-06-01", "reason": "thesis"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert "delayed by the PI until 2028-06-01" in client.get(f"/products/{pid}").text
    coi = client_at()
    _signed_in(coi, "coi")
    assert 'id="delay-form"' not in coi.get(f"/products/{pid}").text  # only the PI (A3)
    forged = coi.post(
        f"/products/{pid}/delay",
        data={"csrf_token": token_of(coi, f"/products/{pid}"), "until": "2028-07-01", "reason": "x"},
    )
    assert forged.status_code == 403
