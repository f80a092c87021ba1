"""Granule and survey pages over HTTP (SQLite; the browser test and the leak matrix do the
rest): search filters, bad search input, the validation form's refusals (A10, CSRF, quality)."""

from __future__ import annotations

import re

import pytest

from .oi_world import SURVEY, world_with_interferometry  # noqa: F401 - fixture
from .test_portal import _signed_in, token_of

pytestmark = pytest.mark.shared_data


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url


def _listed(text: str) -> set[int]:
    return {int(i) for i in re.findall(r'href="/granules/(\d+)" class="granule-link"', text)}


def test_search_filters_and_bad_input(client_at, world) -> None:
    admin = client_at(user="admin")
    everything = _listed(admin.get("/granules").text)
    assert everything == {g for ids in world.oi.granules.values() for g in ids}
    embargoed = set(world.oi.granules["oi-embargoed"])
    assert _listed(admin.get("/granules?night=2016-05-31").text) == embargoed  # alf Cen A's night
    assert _listed(admin.get("/granules?night=2016-05-30").text) == set()
    assert _listed(admin.get("/granules?wavelength=1.6&target=cen").text) == embargoed
    assert _listed(admin.get("/granules?wavelength=2.2").text) == set()  # PIONIER is H band
    assert _listed(admin.get("/granules?instrument=GRAVITY").text) == set()
    for query, message in (
        ("night=31/05/2016", "night: not a date YYYY-MM-DD"),
        ("wavelength=blue", "wavelength (µm): not a number"),
        ("wavelength=-1", "outside 0-10000"),
        ("level=7", "level: 0 to 3"),
    ):
        response = admin.get(f"/granules?{query}")
        assert response.status_code == 400 and message in response.text, query
    assert admin.get("/granules/999999").status_code == 404


def test_validation_form_refusals(client_at, world) -> None:
    granule = world.oi.granules["oi-open"][0]
    member = client_at()
    _signed_in(member, "member")
    page = member.get(f"/granules/{granule}").text
    assert 'id="validate-form"' not in page and 'id="download-granule"' in page  # public, not theirs
    forged = member.post(
        f"/granules/{granule}/validate",
        data={"csrf_token": token_of(member, f"/granules/{granule}"), "quality": "4", "comment": "x"},
    )
    assert forged.status_code == 403  # A10
    hidden = world.oi.granules["oi-private"][0]
    response = member.post(
        f"/granules/{hidden}/validate", data={"csrf_token": token_of(member), "quality": "4", "comment": "x"}
    )
    assert response.status_code == 404  # not visible: answered as missing
    admin = client_at()
    _signed_in(admin, "admin")
    token = token_of(admin, f"/granules/{granule}")
    assert (
        admin.post(f"/granules/{granule}/validate", data={"quality": "4", "comment": "x"}).status_code == 403
    )
    bad = admin.post(
        f"/granules/{granule}/validate", data={"csrf_token": token, "quality": "9", "comment": "x"}
    )
    assert bad.status_code == 422
    empty = admin.post(
        f"/granules/{granule}/validate", data={"csrf_token": token, "quality": "3", "comment": " "}
    )
    assert empty.status_code == 422 and "needs a comment" in empty.text
    done = admin.post(
        f"/granules/{granule}/validate",
        data={"csrf_token": token, "quality": "3", "comment": "medium", "category": "calibrator"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    new_page = admin.get(done.headers["location"]).text
    assert "3 Quick look" in new_page and "CALIB" in new_page and "medium" in new_page


def test_survey_pages_need_a_member(client_at, world) -> None:
    anonymous = client_at().get(f"/surveys/{SURVEY}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    member = client_at(user="member")
    assert "Survey_Marker_Star_7731" in member.get(f"/surveys/{SURVEY}").text
    assert client_at(user="owner").get(f"/surveys/{SURVEY}").status_code == 404
    assert client_at(user="owner").get("/surveys/nothing").status_code == 404
