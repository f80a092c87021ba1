"""The Target Data Base in the portal and the REST API (hcdc.web.tdb), on SQLite and PostgreSQL:
target search by alias and cone, a target's page, candidates by verdict, detections filters, the
candidate page's astrometry chart and colour-magnitude diagrams, and rule R15 for each caller
(a candidate partly made of survey data shows the visible epochs only, with a recomputed verdict).
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from .tdb_world import ERI51, NAME, add_51eri_b, add_product_candidates, detection_uid
from .world import AFTER, BEFORE


@pytest.fixture
def tdb(world, shared_data):
    return {"eri": add_51eri_b(world, shared_data), "products": add_product_candidates(world)}


def test_target_search_by_alias_cone_and_verdict(world, tdb, client_at) -> None:
    client = client_at(BEFORE)
    found = client.get("/api/v1/targets", params={"name": "51ERIbhost(test)"}).json()
    assert [t["name"] for t in found["items"]] == [NAME]
    item = found["items"][0]
    assert item["distance_pc"] == pytest.approx(1000 / ERI51["parallax_mas"])
    assert item["candidates"] == {"bound": 1} and item["n_detections"] == 10  # 4 epochs are survey data
    cone = {"ra": ERI51["ra_deg"] + 5 / 3600, "dec": ERI51["dec_deg"], "radius": 6}
    assert [t["name"] for t in client.get("/api/v1/targets", params=cone).json()["items"]] == [NAME]
    cone["radius"] = 4  # 5" away (times cos dec ~ 1): outside
    assert client.get("/api/v1/targets", params=cone).json()["total"] == 0
    bound = client.get("/api/v1/targets", params={"verdict": "bound"}).json()
    assert [t["name"] for t in bound["items"]] == [NAME]
    assert client.get("/api/v1/targets", params={"max_distance_pc": 20}).json()["total"] == 0
    assert client.get("/api/v1/targets", params={"spectral_type": "F0"}).json()["total"] == 1
    # bad criteria are named errors
    response = client.get("/api/v1/targets", params={"ra": 10, "dec": 5})
    assert response.status_code == 422 and "ra, dec and radius" in response.text
    assert client.get("/api/v1/targets", params={"verdict": "maybe"}).status_code == 422
    # a NUL character (PostgreSQL refuses it) is a named parameter error, on the page too
    for path, key in (("/api/v1/targets", "name"), ("/api/v1/targets", "spectral_type"),
                      ("/api/v1/detections", "target"), ("/api/v1/detections", "survey")):  # fmt: skip
        response = client.get(path, params={key: "51\x00Eri"})
        assert response.status_code == 422 and "NUL" in response.text, (path, key)
    page = client.get("/targets", params={"name": "a\x00b"})
    assert page.status_code == 200 and "NUL character" in page.text


def test_target_page_and_api_show_values_sources_and_what_the_caller_may_see(world, tdb, client_at) -> None:
    tid = tdb["eri"]["target"]
    anonymous = client_at(BEFORE).get(f"/api/v1/targets/{tid}").json()
    member = client_at(BEFORE, "member").get(f"/api/v1/targets/{tid}").json()
    assert (
        anonymous["parallax_mas"] == ERI51["parallax_mas"]
        and anonymous["sources"]["parallax_mas"] == "import"
    )
    assert "51 Eri b host (test)" in anonymous["aliases"]
    assert len(anonymous["observations"]) == 10 and len(member["observations"]) == 14
    assert anonymous["n_detections"] == 10 and member["n_detections"] == 14
    (a,), (m,) = anonymous["candidates"], member["candidates"]
    assert m["verdict_basis"] == "all detections" and m["status"] == "bound" and m["n_detections"] == 14
    # the stored verdict rests on survey epochs: anonymous gets the test on its 10 epochs
    assert a["verdict_basis"].startswith("recomputed") and a["n_detections"] == 10
    assert a["status"] == "bound" and a["statistic"]["n_epochs"] == 10
    assert m["statistic"]["n_epochs"] == 14
    # after the survey's release date everyone sees everything
    assert client_at(AFTER).get(f"/api/v1/targets/{tid}").json()["n_detections"] == 14
    page = client_at(BEFORE).get(f"/targets/{tid}")
    assert page.status_code == 200
    assert "derosa:0" in page.text and "derosa:13" not in page.text
    assert client_at(BEFORE, "member").get(f"/targets/{tid}").text.count('class="detection-row"') == 14
    assert client_at(BEFORE).get("/targets/999999").status_code == 404
    assert client_at(BEFORE).get("/api/v1/targets/999999").status_code == 404


def test_candidates_by_verdict_follow_the_products_rights(world, tdb, client_at) -> None:
    def listed(user, **params):
        items = client_at(BEFORE, user).get("/api/v1/candidates", params=params).json()["items"]
        return {c["label"] for c in items}

    assert listed(None) == {"c-public", "cc1"}
    assert listed("member") == {"c-public", "c-survey", "cc1"}
    assert listed("owner") == {"c-public", "c-private", "c-embargoed", "c-delayed", "cc1"}
    assert listed(None, verdict="bound") == {"cc1"}
    # "still undetermined, not observed since": the products' epochs are 2020-2026, 51 Eri b's 2014-2018
    assert listed("owner", verdict="undetermined", last_epoch_before="2024-06-01") == {
        "c-delayed",
        "c-public",
    }
    assert listed("owner", last_epoch_before="2014-12-19") == set()
    page = client_at(BEFORE, "member").get("/candidates").text
    assert set(re.findall(r'class="candidate-link">([^<]+)<', page)) == {"c-public", "c-survey", "cc1"}
    assert listed("member", verdict="undetermined") == {"c-public", "c-survey"}
    hidden = tdb["products"]["private"]
    assert client_at(BEFORE).get(f"/api/v1/candidates/{hidden}").status_code == 404
    assert client_at(BEFORE).get(f"/candidates/{hidden}").status_code == 404
    assert client_at(BEFORE, "owner").get(f"/api/v1/candidates/{hidden}").json()["label"] == "c-private"
    assert client_at(BEFORE).get("/api/v1/candidates", params={"verdict": "x"}).status_code == 422


def test_detection_filters(world, tdb, client_at) -> None:
    client = client_at(BEFORE, "member")

    def uids(**params):
        return {d["uid"] for d in client.get("/api/v1/detections", params=params).json()["items"]}

    eri = {f"derosa:{n}" for n in range(14)}
    assert uids(target="51 eri b host (TEST)") == eri
    assert uids(target="nobody at all") == set()
    # the first epoch is 2014-12-18, the second 2015-01-30
    assert uids(target=NAME, date_to="2014-12-18") == {"derosa:0"}
    assert uids(target=NAME, date_from="2014-12-19", date_to="2015-01-30") == {"derosa:1"}
    seps = {
        d["uid"]: d["separation_mas"]
        for d in client.get("/api/v1/detections", params={"target": NAME}).json()["items"]
    }
    assert uids(target=NAME, min_separation=454) == {u for u, s in seps.items() if s >= 454}
    assert uids(target=NAME, max_contrast=1e-6) == set()
    assert uids(min_contrast=1e-6, max_contrast=2e-6) == eri
    assert uids(status="bound") == eri
    product_detections = {detection_uid(world.ids[k]["product"]) for k in ("public", "survey")}
    assert uids(status="undetermined") == product_detections
    # the portal's form gives the same rows
    page = client.get(
        "/detections", params={"target": NAME, "date_from": "2014-12-19", "date_to": "2015-01-30"}
    )
    assert re.findall(r"<code>(derosa:\d+)</code>", page.text) == ["derosa:1"]
    bad = client.get("/detections", params={"date_from": "yesterday"})
    assert bad.status_code == 200 and 'id="search-error"' in bad.text
    # R15: anonymous sees no survey epoch
    anonymous = client_at(BEFORE).get("/api/v1/detections", params={"target": NAME}).json()
    assert {d["uid"] for d in anonymous["items"]} == {f"derosa:{n}" for n in range(10)}


def _figures(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="tdb-figures">(.*?)</script>', html, re.S)
    assert match, "no figures element"
    return json.loads(match.group(1))


def test_candidate_page_charts_the_astrometry_and_the_cmd(world, tdb, client_at, shared_data) -> None:
    from hcdc.web.tdb import _references

    world.catalogue.settings.level3_references = shared_data / "level3" / "cmd"
    _references.cache_clear()
    cid = tdb["eri"]["candidate"]
    page = client_at(BEFORE, "member").get(f"/candidates/{cid}")
    assert page.status_code == 200
    assert 'id="verdict">bound<' in page.text
    figures = _figures(page.text)
    traces = figures["astrometry"]["data"]
    measured = [t for t in traces if "error_x" in t]
    assert len(measured) == 1 and len(measured[0]["x"]) == 14
    assert any(t["name"].endswith("background track") for t in traces)
    # J and H give the J-H diagram only; the references are drawn with the candidate
    (cmd,) = figures["cmd"]
    kinds = {t["name"]: len(t["x"]) for t in cmd["data"]}
    assert kinds["detection"] == 1 and kinds["field dwarf"] > 100 and kinds["young companion"] > 10
    (point,) = [t for t in cmd["data"] if t["name"] == "detection"]
    assert point["x"][0] == pytest.approx(19.04 - 18.99)
    assert point["y"][0] == pytest.approx(19.04 + 5 * __import__("math").log10(ERI51["parallax_mas"]) - 10)
    # anonymous: ten epochs charted, the verdict recomputed on them
    anonymous = client_at(BEFORE).get(f"/candidates/{cid}")
    assert "recomputed" in anonymous.text
    assert len([t for t in _figures(anonymous.text)["astrometry"]["data"] if "error_x" in t][0]["x"]) == 10


def test_target_and_archive_cmds_gather_the_candidates(world, tdb, client_at, shared_data) -> None:
    from hcdc.web.tdb import _references

    world.catalogue.settings.level3_references = shared_data / "level3" / "cmd"
    _references.cache_clear()
    for path in (f"/targets/{tdb['eri']['target']}", "/candidates"):
        (cmd,) = _figures(client_at(BEFORE).get(path).text)["cmd"]  # J-H: the only diagram with data
        (point,) = [t for t in cmd["data"] if t["name"] == "detection"]
        assert point["text"][0].startswith(f"{NAME} cc1") and len(point["x"]) == 1
    # a target without photometry says so
    assert 'id="no-cmd"' in client_at(BEFORE).get(f"/targets/{world.ids['public']['target']}").text


def test_candidate_without_host_astrometry_or_photometry_says_why(world, tdb, client_at) -> None:
    cid = tdb["products"]["public"]
    page = client_at(BEFORE).get(f"/candidates/{cid}")
    assert page.status_code == 200
    assert 'id="no-astrometry-chart"' in page.text and "pmra_masyr" in page.text
    assert 'id="no-cmd"' in page.text


def test_script_json_cannot_close_its_element() -> None:
    from hcdc.web.tdb import script_json

    text = script_json({"name": "</script><script>alert(1)</script>", "at": dt.date(2020, 1, 1)})
    assert "<" not in text and json.loads(text)["name"].startswith("</script>")


def test_admin_regroups_a_detection_and_the_candidates_are_tested_again(world, tdb, client_at) -> None:
    from sqlalchemy import select

    from hcdc.archive import accounts
    from hcdc.archive.tdb_models import Candidate, Detection

    from .test_portal import _signed_in, token_of

    tid, cid = tdb["eri"]["target"], tdb["eri"]["candidate"]
    with world.catalogue.engine.connect() as conn:
        last = conn.scalar(select(Detection.id).where(Detection.uid == "derosa:13"))
    owner = client_at(BEFORE)
    _signed_in(owner, "owner")
    assert 'id="regroup-form"' not in owner.get(f"/targets/{tid}").text
    denied = owner.post(f"/targets/{tid}/regroup", data={"csrf_token": token_of(owner), "detection": last})
    assert denied.status_code == 403
    admin = client_at(BEFORE)
    _signed_in(admin, "admin")
    page = admin.get(f"/targets/{tid}")
    assert 'id="regroup-form"' in page.text
    token = token_of(admin, f"/targets/{tid}")
    assert admin.post(f"/targets/{tid}/regroup", data={"detection": last}).status_code == 403  # no CSRF
    moved = admin.post(
        f"/targets/{tid}/regroup",
        data={"csrf_token": token, "detection": last, "label": "b"},
        follow_redirects=False,
    )
    assert moved.status_code == 303
    with world.catalogue.engine.connect() as conn:
        b = conn.execute(select(Candidate).where(Candidate.target_id == tid, Candidate.label == "b")).one()
        rest = conn.execute(select(Candidate).where(Candidate.id == cid)).one()
        audit = accounts.list_audit(conn, limit=5)
    # one epoch alone cannot be tested; the 13 left are tested again (still bound)
    assert b.grouped_by == "admin" and b.status == "undetermined" and b.statistic["tested"] is False
    assert rest.status == "bound" and rest.statistic["n_epochs"] == 13
    assert any(a["action"] == "tdb.regroup" for a in audit)
    # a detection of another target is refused
    other = tdb["products"]["public"]
    with world.catalogue.engine.connect() as conn:
        foreign = conn.scalar(select(Detection.id).where(Detection.candidate_id == other))
    response = admin.post(
        f"/targets/{tid}/regroup", data={"csrf_token": token, "detection": foreign, "label": "x"}
    )
    assert response.status_code == 404
