"""The Target Data Base pages in a real browser (Playwright driving Debian's chromium, see
test_browser.py): search a target by alias, open its page, follow its candidate and see the
astrometry chart and the colour-magnitude diagram drawn by the portal's plotly (CSP without inline
scripts, no script error); a survey member sees the survey epochs that anonymous does not."""

from __future__ import annotations

import pytest
from helpers.live_server import serve_app

from .tdb_world import NAME, add_51eri_b
from .test_browser import _shot, chromium  # noqa: F401 - the fixture
from .world import BEFORE, PASSWORD

pytestmark = pytest.mark.browser


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url


@pytest.fixture
def server(world, shared_data):
    from hcdc.web.app import create_app
    from hcdc.web.tdb import _references

    add_51eri_b(world, shared_data)
    world.catalogue.settings.level3_references = shared_data / "level3" / "cmd"
    _references.cache_clear()
    app = create_app(catalogue=world.catalogue, clock=lambda: BEFORE, secret_key="browser-test")
    with serve_app(app) as base:
        yield base


def test_target_search_page_and_candidate_charts(chromium, server):  # noqa: F811 - the fixture
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server + "/")
            page.click("#targets-link")
            page.fill("#f-name", "51 eri b host (test)")
            page.click("#target-search")
            expect(page.locator("#result-count")).to_contain_text("1 target")
            expect(page.locator("#targets")).to_contain_text("1 bound")
            _shot(page, "tdb-targets")
            page.click(f'a.target-link:has-text("{NAME}")')
            expect(page.locator("#target-name")).to_have_text(NAME)
            expect(page.locator("#target-values")).to_contain_text("33.4390")
            assert page.locator("tr.detection-row").count() == 10  # 4 epochs are survey data
            _shot(page, "tdb-target")
            page.click("a.candidate-link")
            expect(page.locator("#verdict")).to_have_text("bound")
            expect(page.locator('#astrometry-chart[data-drawn="1"] .main-svg').first).to_be_visible(
                timeout=15000
            )
            expect(page.locator('#cmd-chart-0[data-drawn="1"] .main-svg').first).to_be_visible(timeout=15000)
            assert page.locator("#astrometry-chart .scatterlayer .trace").count() >= 3
            assert page.locator("#cmd-chart-0 .scatterlayer .trace").count() >= 3  # dwarfs, companions, it
            _shot(page, "tdb-candidate")
            # the survey member sees all 14 epochs
            page.goto(server + "/login")
            page.fill("#name", "member")
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            expect(page.locator("#who")).to_contain_text("member")
            page.goto(server + "/targets?name=51+eri+b+host")
            page.click("a.target-link")
            assert page.locator("tr.detection-row").count() == 14
            assert not errors, errors
        finally:
            browser.close()
