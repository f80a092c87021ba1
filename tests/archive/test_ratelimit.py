"""The login rate limit is kept in the catalogue: two application instances (as two worker
processes of ``hcdc serve`` would be) on one data centre count the same failures (SQLite and
PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import re

from fastapi.testclient import TestClient

from hcdc.archive import accounts
from hcdc.archive.access import local_operator
from hcdc.archive.db import write_transaction
from hcdc.archive.ratelimit import LoginLimiter
from hcdc.web.app import create_app

PASSWORD = "correct horse battery staple"


def _login(client: TestClient, name: str, password: str):
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": token, "next": "/my"},
        follow_redirects=False,
    )


def test_two_app_instances_share_the_limit(catalogue):
    with write_transaction(catalogue.engine) as conn:
        for name in ("owner", "coi"):
            accounts.add_user(conn, local_operator(), name, password=PASSWORD)
    first, second = (
        TestClient(create_app(catalogue=catalogue, secret_key="k"), base_url="http://testserver")
        for _ in range(2)
    )
    # 5 failures spread over both "workers": 3 on one, 2 on the other
    for client in (first, second, first, second, first):
        assert _login(client, "owner", "wrong password").status_code == 401
    for client in (first, second):  # each instance refuses, even the right password
        limited = _login(client, "owner", PASSWORD)
        assert limited.status_code == 429, limited.text
        assert 0 < int(limited.headers["retry-after"]) <= 301
    assert _login(second, "coi", PASSWORD).status_code == 303  # another account still may


def test_window_slides_and_success_forgets(catalogue):
    now = [dt.datetime(2026, 12, 6, 12, 0, 0)]
    limiter = LoginLimiter(catalogue.engine, max_failures=3, window_s=60, clock=lambda: now[0])
    other = LoginLimiter(catalogue.engine, max_failures=3, window_s=60, clock=lambda: now[0])
    for _ in range(2):
        limiter.failed("10.0.0.1", "Owner")
    assert other.retry_after("10.0.0.1", "owner") == 0
    other.failed("10.0.0.1", "OWNER ")  # names are compared lowercased and stripped
    assert limiter.retry_after("10.0.0.1", "owner") == 61
    assert limiter.retry_after("10.0.0.2", "owner") == 0  # another address is not limited
    now[0] += dt.timedelta(seconds=30)
    assert 1 <= other.retry_after("10.0.0.1", "owner") <= 31
    now[0] += dt.timedelta(seconds=31)  # the window has passed
    assert other.retry_after("10.0.0.1", "owner") == 0
    for _ in range(3):
        limiter.failed("10.0.0.1", "owner")
    assert other.retry_after("10.0.0.1", "owner") > 0
    other.succeeded("10.0.0.1", "owner")
    assert limiter.retry_after("10.0.0.1", "owner") == 0


def test_many_names_from_one_address_are_limited(catalogue):
    limiter = LoginLimiter(catalogue.engine, max_failures=2, window_s=300)
    for i in range(8):
        limiter.failed("10.0.0.9", f"guess{i}")
    assert limiter.retry_after("10.0.0.9", "someone-new") > 0
    assert limiter.retry_after("10.0.0.8", "someone-new") == 0
