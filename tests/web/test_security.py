"""OWASP basics of the portal: session cookie flags, CSRF on forms, login rate limit, security
headers, no open redirect, disabled accounts lose their session (SQLite; the logic is not
database-specific, the leak matrix covers both databases)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import update

from hcdc.archive.access_models import User
from hcdc.web.app import CONTENT_SECURITY_POLICY

from .world import PASSWORD


@pytest.fixture
def database_url(sqlite_url):  # these tests run on SQLite only
    return sqlite_url


def _csrf(client, path="/login") -> str:
    page = client.get(path)
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def _login(client, name="owner", password=PASSWORD, next_="/my"):
    token = _csrf(client)
    return client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": token, "next": next_},
        follow_redirects=False,
    )


def test_session_cookie_flags_and_sign_in_out(client_at):
    client = client_at()
    response = _login(client)
    assert response.status_code == 303 and response.headers["location"] == "/my"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "hcdc_session=" in cookie
    assert client.get("/api/v1/me").json()["name"] == "owner"
    my = client.get("/my")
    assert my.status_code == 200 and "0104.C-0007" in my.text and my.headers["cache-control"] == "no-store"
    token = re.search(r'name="csrf_token" value="([^"]+)"', my.text).group(1)
    client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert client.get("/api/v1/me").json()["name"] == "public"


def test_secure_cookie_over_https(world):
    from fastapi.testclient import TestClient

    from hcdc.web.app import create_app

    app = create_app(catalogue=world.catalogue, secure_cookies=True, secret_key="k")
    client = TestClient(app, base_url="https://testserver")
    response = _login(client)
    assert "secure" in response.headers["set-cookie"].lower()
    assert response.headers["strict-transport-security"].startswith("max-age=")


def test_forms_need_the_csrf_token(client_at, world):
    client = client_at()
    _csrf(client)
    refused = client.post("/login", data={"name": "owner", "password": PASSWORD}, follow_redirects=False)
    assert refused.status_code == 403
    wrong = client.post(
        "/login", data={"name": "owner", "password": PASSWORD, "csrf_token": "forged"}, follow_redirects=False
    )
    assert wrong.status_code == 403
    _login(client)
    ds = world.ids["private"]["dataset"]
    assert client.post(f"/datasets/{ds}/reduce", data={"workflow": "irdis-l1-l2"}).status_code == 403
    # a cookie-authenticated API write needs the X-CSRF-Token header; a token-authenticated one does not
    assert client.post("/api/v1/jobs", json={"dataset_id": ds}).status_code == 403
    token = _csrf(client, "/my")
    made = client.post("/api/v1/jobs", json={"dataset_id": ds}, headers={"X-CSRF-Token": token})
    assert made.status_code == 201, made.text


def test_login_is_rate_limited(client_at):
    client = client_at()
    for _ in range(5):
        assert _login(client, password="wrong password").status_code == 401
    limited = _login(client, password=PASSWORD)  # even the right password waits
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    other = _login(client, name="coi")  # another account from the same address still may
    assert other.status_code == 303


def test_security_headers_everywhere(client_at, world):
    client = client_at()
    for path in ("/", "/api/v1/products", f"/products/{world.ids['public']['product']}", "/nope"):
        headers = client.get(path).headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY", path
        assert headers["referrer-policy"] == "same-origin", path
    assert (
        "script-src 'self'" in CONTENT_SECURITY_POLICY
        and "unsafe-inline" not in CONTENT_SECURITY_POLICY.split("style-src")[0]
    )


def test_no_open_redirect_after_login(client_at):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = _login(client_at(), next_=target)
        assert response.headers["location"] == "/", target


def test_a_disabled_account_loses_its_session_and_tokens(client_at, world):
    client = client_at()
    _login(client)
    with world.catalogue.engine.begin() as conn:
        conn.execute(update(User).where(User.name == "owner").values(is_active=False))
    assert client.get("/api/v1/me").json()["name"] == "public"
    assert client_at(user="owner").get("/api/v1/me").status_code == 401
