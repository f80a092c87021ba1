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

import pytest

from .browser import database_url, shot, sign_in  # noqa: F401 - database_url: the fixture (SQLite)
from .world import PASSWORD

pytestmark = pytest.mark.browser


def test_sign_in_search_product_charts_download(chromium_browser, server, world, tmp_path):
    from playwright.sync_api import expect

    pid = world.ids["private"]["product"]
    page = chromium_browser.new_page(accept_downloads=True)
    page.goto(server + "/")
    shot(page, "home")
    page.click("#login-link")
    page.fill("#name", "owner")
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    expect(page.locator("#who")).to_contain_text("owner")
    page.goto(server + "/search?kind=products")
    page.fill("#f-target", "51 eri")
    page.click("#search-button")
    expect(page.locator("#result-count")).to_contain_text("4 results")  # the owner's four
    shot(page, "search")
    page.click(f'a.result-link[href="/products/{pid}"]')
    expect(page).to_have_url(f"{server}/products/{pid}")
    # plotly draws both charts: an SVG plot with traces in each
    expect(page.locator('#contrast-chart[data-drawn="1"] .main-svg').first).to_be_visible(timeout=15000)
    expect(page.locator('#snr-chart[data-drawn="1"] .main-svg').first).to_be_visible(timeout=15000)
    assert page.locator("#contrast-chart .scatterlayer .trace").count() >= 1
    assert page.locator("#snr-chart .heatmaplayer image, #snr-chart .hm image").count() >= 1
    shot(page, "product")
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
    shot(page, "reduce")
    page.fill('input[name="irdis-l1-l2:level2.ncomp"]', "2")
    page.click("#wf-irdis-l1-l2 button[type=submit]")
    expect(page.locator("#job-state")).to_have_text("queued")
    shot(page, "job")
    page.goto(server + "/my")
    expect(page.locator("#my-jobs")).to_contain_text("irdis-l1-l2")
    shot(page, "my-data")
    # the administrator cancels that job from the admin page; the action is in the audit log
    page.click("#logout")
    sign_in(page, server, "admin", check=True)
    page.click("#admin-link")
    expect(page.locator("#health-table")).to_contain_text("reachable (sqlite)")
    page.locator("#jobs-table tr", has_text="irdis-l1-l2").first.locator("button", has_text="Cancel").click()
    expect(page.locator("#audit-table")).to_contain_text("job.cancel")
    expect(page.locator("#jobs-table")).to_contain_text("cancelled")
    assert not chromium_browser.errors, chromium_browser.errors  # no CSP violation, no script error
