"""Administration pages and the PI page (SQLite): health, statistics, QC, users, jobs (cancel and
retry), audit log; only admins (A1); every admin action audited. The PI's release dates."""

from __future__ import annotations

import re

import pytest

from hcdc.archive import accounts

from .test_portal import _signed_in, token_of


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url


def test_only_admins_reach_the_admin_pages(client_at):
    assert client_at().get("/admin").status_code == 401
    owner = client_at()
    _signed_in(owner, "owner")
    assert owner.get("/admin").status_code == 403
    token = token_of(owner)
    assert owner.post("/admin/users", data={"csrf_token": token, "name": "x"}).status_code == 403


def test_admin_manages_users_and_jobs_and_everything_is_audited(client_at, world):
    admin = client_at()
    _signed_in(admin, "admin")
    page = admin.get("/admin")
    assert page.status_code == 200
    assert "reachable (sqlite)" in page.text and "GiB free" in page.text and "queued 1" in page.text
    token = token_of(admin, "/admin")
    admin.post(
        "/admin/users", data={"csrf_token": token, "name": "carol", "role": "user", "password": "a long one"}
    )
    admin.post("/admin/users/carol", data={"csrf_token": token, "role": "operator", "active": "false"})
    admin.post(f"/admin/jobs/{world.job}/cancel", data={"csrf_token": token})
    admin.post(f"/admin/jobs/{world.job}/retry", data={"csrf_token": token})
    assert admin.post("/admin/jobs/1/explode", data={"csrf_token": token}).status_code == 404
    with world.catalogue.engine.connect() as conn:
        users = {u["name"]: u for u in accounts.list_users(conn)}
        actions = [a["action"] for a in accounts.list_audit(conn)]
    assert users["carol"]["role"] == "operator" and not users["carol"]["active"]
    assert {"user.add", "user.role", "user.disable", "job.cancel", "job.retry"} <= set(actions), actions
    audit_table = admin.get("/admin").text.split('id="audit-table"')[1]
    assert "job.retry" in audit_table and "admin" in audit_table
    refused = admin.post("/admin/users", data={"name": "nocsrf"})
    assert refused.status_code == 403


def test_pi_page_lists_release_dates_and_delays(client_at, world):
    owner = client_at()
    _signed_in(owner, "owner")
    page = owner.get("/pi").text
    assert "0104.C-0007" in page and "0999.C-0001" not in page
    listed = set(map(int, re.findall(r'href="/products/(\d+)"', page)))
    assert listed == {world.ids[k]["product"] for k in ("private", "embargoed", "delayed", "public")}
    assert "2027-06-01" in page  # the delayed one
    pid = world.ids["embargoed"]["product"]
    response = owner.post(
        f"/products/{pid}/delay",
        data={"csrf_token": token_of(owner, "/pi"), "until": "2027-01-01", "reason": "paper", "next": "/pi"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/pi"
    assert "2027-01-01" in owner.get("/pi").text
    other = client_at()
    _signed_in(other, "other_pi")
    assert str(pid) not in re.findall(r'href="/products/(\d+)"', other.get("/pi").text)


def test_processing_times_per_workflow(client_at, world):
    import datetime as dt

    from sqlalchemy import update

    from hcdc.archive.pipeline_models import Job

    start = dt.datetime(2026, 5, 1, 12, 0)
    with world.catalogue.engine.begin() as conn:  # the world's job, as if a worker had run it
        conn.execute(
            update(Job)
            .where(Job.id == world.job)
            .values(state="done", started_at=start, finished_at=start + dt.timedelta(seconds=12.5))
        )
    admin = client_at()
    _signed_in(admin, "admin")
    table = admin.get("/admin").text.split('id="processing-times"')[1].split("</table>")[0]
    row = re.search(r"<tr><td>([^<]+)</td>((?:<td class=\"num\">[^<]*</td>){5})</tr>", table)
    cells = re.findall(r">([^<]*)</td>", row.group(2))
    assert cells == ["1", "0", "12.5", "12.5", "12.5"], table
