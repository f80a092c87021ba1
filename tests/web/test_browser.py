"""A real browser (Playwright driving Debian's chromium, no browser download) against a real
uvicorn server on the access world: sign in, search, open a product page and see its charts
drawn by plotly (served by the portal, CSP without inline scripts), download a file and check
its checksum, request a reduction and see its job page, cancel it from the admin page.

chromium comes from the project's set-up (``.ci/setup-browser``, run by ``.ci/run`` and ``make
browser``). Without it the test is skipped with a reason, except under CI (``CI=true``), where
it fails.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from helpers.live_server import serve_app

from .world import PASSWORD

CHROMIUM = Path(os.environ.get("HCDC_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = os.environ.get("HCDC_SCREENSHOTS")  # a folder: save a screenshot of each page there

pytestmark = pytest.mark.browser


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is absent: run .ci/setup-browser (as root) or set HCDC_CHROMIUM"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    return CHROMIUM


@pytest.fixture
def server(world):

    from hcdc.web.app import create_app

    from .world import BEFORE

    app = create_app(catalogue=world.catalogue, clock=lambda: BEFORE, secret_key="browser-test")
    with serve_app(app) as base:
        yield base


def _shot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def test_sign_in_search_product_charts_download(chromium, server, world, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    pid = world.ids["private"]["product"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/")
            _shot(page, "home")
            page.click("#login-link")
            page.fill("#name", "owner")
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            expect(page.locator("#who")).to_contain_text("owner")
            page.goto(server + "/search?kind=products")
            page.fill("#f-target", "51 eri")
            page.click("#search-button")
            expect(page.locator("#result-count")).to_contain_text("4 results")  # the owner's four
            _shot(page, "search")
            page.click(f'a.result-link[href="/products/{pid}"]')
            expect(page).to_have_url(f"{server}/products/{pid}")
            # plotly draws both charts: an SVG plot with traces in each
            expect(page.locator('#contrast-chart[data-drawn="1"] .main-svg').first).to_be_visible(
                timeout=15000
            )
            expect(page.locator('#snr-chart[data-drawn="1"] .main-svg').first).to_be_visible(timeout=15000)
            assert page.locator("#contrast-chart .scatterlayer .trace").count() >= 1
            assert page.locator("#snr-chart .heatmaplayer image, #snr-chart .hm image").count() >= 1
            _shot(page, "product")
            link = page.locator("#product-files a.file-download").first
            name = link.inner_text()
            with page.expect_download() as info:
                link.click()
            saved = tmp_path / name
            info.value.save_as(saved)
            row = page.locator("#product-files tr", has_text=name).locator("code").inner_text()
            assert hashlib.sha256(saved.read_bytes()).hexdigest() == row
            # a reduction request, then its job page follows the job
            page.goto(f"{server}/datasets/{world.ids['embargoed']['dataset']}")
            page.click("#request-reduction")
            _shot(page, "reduce")
            page.fill('input[name="irdis-l1-l2:level2.ncomp"]', "2")
            page.click("#wf-irdis-l1-l2 button[type=submit]")
            expect(page.locator("#job-state")).to_have_text("queued")
            _shot(page, "job")
            page.goto(server + "/my")
            expect(page.locator("#my-jobs")).to_contain_text("irdis-l1-l2")
            _shot(page, "my-data")
            # the administrator cancels that job from the admin page; the action is in the audit log
            page.click("#logout")
            page.goto(server + "/login")
            page.fill("#name", "admin")
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            expect(page.locator("#who")).to_contain_text("admin")
            page.click("#admin-link")
            expect(page.locator("#health-table")).to_contain_text("reachable (sqlite)")
            page.locator("#jobs-table tr", has_text="irdis-l1-l2").first.locator(
                "button", has_text="Cancel"
            ).click()
            expect(page.locator("#audit-table")).to_contain_text("job.cancel")
            expect(page.locator("#jobs-table")).to_contain_text("cancelled")
            assert not errors, errors  # no CSP violation, no script error
        finally:
            browser.close()
