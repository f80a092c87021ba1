"""The Target Data Base pages in a real browser (Playwright driving Debian's chromium, see
test_browser.py): search a target by alias, open its page, follow its candidate and see the
astrometry chart and the colour-magnitude diagram drawn by the portal's plotly (CSP without inline
scripts, no script error); a survey member sees the survey epochs that anonymous does not."""

from __future__ import annotations

import pytest
from helpers.live_server import serve_app

from .browser import database_url, shot, sign_in  # noqa: F401 - database_url: the fixture (SQLite)
from .tdb_world import NAME, add_51eri_b
from .world import BEFORE

pytestmark = pytest.mark.browser


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


def test_target_search_page_and_candidate_charts(chromium_browser, server):
    from playwright.sync_api import expect

    page = chromium_browser.new_page()
    page.goto(server + "/")
    page.click("#targets-link")
    page.fill("#f-name", "51 eri b host (test)")
    page.click("#target-search")
    expect(page.locator("#result-count")).to_contain_text("1 target")
    expect(page.locator("#targets")).to_contain_text("1 bound")
    shot(page, "tdb-targets")
    page.click(f'a.target-link:has-text("{NAME}")')
    expect(page.locator("#target-name")).to_have_text(NAME)
    expect(page.locator("#target-values")).to_contain_text("33.4390")
    assert page.locator("tr.detection-row").count() == 10  # 4 epochs are survey data
    shot(page, "tdb-target")
    page.click("a.candidate-link")
    expect(page.locator("#verdict")).to_have_text("bound")
    expect(page.locator('#astrometry-chart[data-drawn="1"] .main-svg').first).to_be_visible(timeout=15000)
    expect(page.locator('#cmd-chart-0[data-drawn="1"] .main-svg').first).to_be_visible(timeout=15000)
    assert page.locator("#astrometry-chart .scatterlayer .trace").count() >= 3
    assert page.locator("#cmd-chart-0 .scatterlayer .trace").count() >= 3  # dwarfs, companions, it
    shot(page, "tdb-candidate")
    # the survey member sees all 14 epochs
    sign_in(page, server, "member", check=True)
    page.goto(server + "/targets?name=51+eri+b+host")
    page.click("a.target-link")
    assert page.locator("tr.detection-row").count() == 14
    assert not chromium_browser.errors, chromium_browser.errors
