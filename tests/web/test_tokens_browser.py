"""The "my tokens" page in the real browser (Playwright + Debian's chromium, as in
test_browser.py): create a token (its secret shown once), use it on the API, revoke it and see
the API refuse it."""

from __future__ import annotations

import httpx
import pytest

from .test_browser import _shot, chromium, database_url, server  # noqa: F401 - fixtures
from .world import PASSWORD

pytestmark = pytest.mark.browser


def test_create_use_and_revoke_a_token(chromium, server):  # noqa: F811 - fixtures
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/login?next=/my/tokens")
            page.fill("#name", "coi")
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            expect(page).to_have_url(server + "/my/tokens")
            page.fill("#token-form input[name=label]", "notebook")
            page.fill("#token-form input[name=days]", "30")
            page.click("#token-form button[type=submit]")
            secret = page.locator("#new-token-secret").inner_text().strip()
            assert secret.startswith("hcdc_")
            _shot(page, "tokens")
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
            assert errors == []
        finally:
            browser.close()
