"""The "my tokens" page in the real browser (Playwright + Debian's chromium, as in
test_browser.py): create a token (its secret shown once), use it on the API, revoke it and see
the API refuse it."""

from __future__ import annotations

import httpx
import pytest

from .browser import database_url, shot, sign_in  # noqa: F401 - database_url: the fixture (SQLite)

pytestmark = pytest.mark.browser


def test_create_use_and_revoke_a_token(chromium_browser, server):
    from playwright.sync_api import expect

    page = chromium_browser.new_page()
    sign_in(page, server, "coi", "/my/tokens")
    expect(page).to_have_url(server + "/my/tokens")
    page.fill("#token-form input[name=label]", "notebook")
    page.fill("#token-form input[name=days]", "30")
    page.click("#token-form button[type=submit]")
    secret = page.locator("#new-token-secret").inner_text().strip()
    assert secret.startswith("hcdc_")
    shot(page, "tokens")
    me = httpx.get(server + "/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json()["name"] == "coi"
    page.goto(server + "/my/tokens")
    assert secret not in page.content()  # shown once only
    row = page.locator(f'#tokens tr[data-prefix="{secret.split("_")[1]}"]')
    expect(row.locator(".state")).to_have_text("active")
    row.locator("button.revoke").click()
    expect(row.locator(".state")).to_have_text("revoked")
    refused = httpx.get(server + "/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401
    assert chromium_browser.errors == [], chromium_browser.errors
