"""The team's actions besides the admin page (hcdc.web.review), on SQLite and PostgreSQL: validate
or flag a product (A4: admins and operators; a product the caller may not see answers 404), set a
user's quota (A1: admins; the quota then decides A6), cancel or retry a job through the API
(admins). Portal forms need the session's CSRF token; every action lands in the audit log."""

from __future__ import annotations

from hcdc.archive import accounts
from hcdc.archive.access import AccessContext, load_principal

from .test_portal import _signed_in, token_of
from .world import BEFORE


def _audit(world) -> list[str]:
    with world.catalogue.engine.connect() as conn:
        return [a["action"] for a in accounts.list_audit(conn)]


def _status(world, pid: int) -> dict:
    with world.catalogue.engine.connect() as conn:
        return accounts.product_status(conn, [pid])[pid]


def test_review_through_the_api(client_at, world):
    pid = world.ids["private"]["product"]
    url = f"/api/v1/products/{pid}/review"
    admin = client_at(user="admin")
    assert admin.post(url, json={"status": "flagged"}).status_code == 422  # a flag needs a reason
    assert admin.post(url, json={"status": "bogus"}).status_code == 422
    answer = admin.post(url, json={"status": "flagged", "reason": "centring failed"})
    assert answer.status_code == 200, answer.text
    assert _status(world, pid) == {"review": "flagged", "reason": "centring failed", "delayed_until": None}
    assert admin.get(f"/api/v1/products/{pid}").json()["review"] == "flagged"
    # the owner sees the product but may not review it; another PI may not even see it
    assert client_at(user="owner").post(url, json={"status": "validated"}).status_code == 403
    hidden = client_at(user="other_pi").post(url, json={"status": "validated"})
    assert hidden.status_code == 404 and hidden.json()["detail"] == f"no product {pid}"
    assert client_at().post(url, json={"status": "validated"}).status_code == 401  # anonymous
    assert admin.post(url, json={"status": "validated"}).status_code == 200
    assert _status(world, pid)["review"] == "validated"
    assert _audit(world).count("product.flag") == 1 and "product.validate" in _audit(world)


def test_review_from_the_product_page(client_at, world):
    pid = world.ids["public"]["product"]
    owner = client_at()
    _signed_in(owner, "owner")
    assert 'id="review-form"' not in owner.get(f"/products/{pid}").text  # the form is for the team
    refused = owner.post(
        f"/products/{pid}/review", data={"csrf_token": token_of(owner), "status": "validated"}
    )
    assert refused.status_code == 403
    admin = client_at()
    _signed_in(admin, "admin")
    page = admin.get(f"/products/{pid}").text
    assert 'id="review-form"' in page
    assert admin.post(f"/products/{pid}/review", data={"status": "validated"}).status_code == 403  # no CSRF
    done = admin.post(
        f"/products/{pid}/review",
        data={"csrf_token": token_of(admin, f"/products/{pid}"), "status": "flagged", "reason": "stripes"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/products/{pid}"
    assert "flagged: stripes" in admin.get(f"/products/{pid}").text


def _can_submit(world, name: str) -> bool:
    with world.catalogue.engine.connect() as conn:
        return bool(AccessContext(conn, load_principal(conn, name), BEFORE).can_submit_job())


def test_quota_set_by_an_admin_decides_submissions(client_at, world):
    assert _can_submit(world, "coi")
    url = "/api/v1/admin/users/coi/quota"
    assert client_at(user="owner").put(url, json={"max_jobs": 5}).status_code == 403
    admin = client_at(user="admin")
    assert admin.put(url, json={"max_jobs": -1}).status_code == 422
    assert admin.put("/api/v1/admin/users/nobody/quota", json={"max_jobs": 1}).status_code == 422
    assert admin.put(url, json={"max_jobs": 0}).status_code == 200
    assert not _can_submit(world, "coi")  # A6: no job at once
    closed = {"max_jobs": 3, "access_from": "2025-01-01T00:00:00", "access_until": "2026-01-01T00:00:00"}
    assert admin.put(url, json=closed).status_code == 200
    assert not _can_submit(world, "coi")  # BEFORE is 2026-06-01: the window has closed
    # from the admin page
    session = client_at()
    _signed_in(session, "admin")
    page = session.get("/admin").text
    assert 'action="/admin/users/coi/quota"' in page and 'value="2025-01-01"' in page
    token = token_of(session, "/admin")
    bad = session.post("/admin/users/coi/quota", data={"csrf_token": token, "max_jobs": "many"})
    assert bad.status_code == 422 and "not a whole number" in bad.text
    ok = session.post(
        "/admin/users/coi/quota",
        data={"csrf_token": token, "max_jobs": "2", "access_from": "", "access_until": "2030-01-01"},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    assert _can_submit(world, "coi")
    assert _audit(world).count("quota.set") == 3


def test_jobs_cancelled_and_retried_through_the_api(client_at, world):
    owner, admin = client_at(user="owner"), client_at(user="admin")
    assert owner.post(f"/api/v1/jobs/{world.job}/cancel").status_code == 403  # A1: admins
    assert admin.post(f"/api/v1/jobs/{world.job}/explode").status_code == 422
    answer = admin.post(f"/api/v1/jobs/{world.job}/cancel")
    assert answer.json() == {"id": world.job, "action": "cancel", "changed": True}
    assert admin.get(f"/api/v1/jobs/{world.job}").json()["state"] == "cancelled"
    assert admin.post(f"/api/v1/jobs/{world.job}/cancel").json()["changed"] is False
    assert admin.post(f"/api/v1/jobs/{world.job}/retry").status_code == 200
    assert admin.get(f"/api/v1/jobs/{world.job}").json()["state"] == "queued"
    assert admin.post("/api/v1/jobs/999999/retry").status_code == 404
    assert _audit(world).count("job.cancel") == 1 and "job.retry" in _audit(world)
