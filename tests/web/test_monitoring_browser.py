"""The night monitoring chart in the real browser (Playwright + Debian's chromium, as in
test_browser.py): an admin follows the report to the simulated night, whose plotly chart draws
its four condition curves and the two science sequences without a console error."""

from __future__ import annotations

import pytest

from hcdc.archive.ingest import ingest

from .browser import database_url, shot, sign_in  # noqa: F401 - database_url: the fixture (SQLite)
from .test_monitoring_pages import NIGHT, ao_night  # noqa: F401 - fixture

pytestmark = pytest.mark.browser


def test_night_chart_draws_in_the_browser(chromium_browser, server, world, ao_night):  # noqa: F811 - ao_night
    from playwright.sync_api import expect

    assert ingest(world.catalogue, [ao_night.out_dir], workers=1).quarantined == 0
    page = chromium_browser.new_page()
    sign_in(page, server, "admin", "/admin")
    page.click("#monitoring-link")
    page.fill('#report-form input[name="from"]', NIGHT.isoformat())
    page.fill('#report-form input[name="to"]', NIGHT.isoformat())
    page.click('#report-form button[type="submit"]')
    expect(page.locator("#report-datasets tr[data-dataset]")).to_have_count(2)
    shot(page, "monitoring-report")
    page.click(f'#report-nights a[href="/admin/monitoring/night/{NIGHT}"]')
    chart = page.locator("#night-chart")
    # plotly's first draw can take seconds on a loaded machine (as test_monitoring_contrast_browser.py)
    expect(chart).to_have_attribute("data-drawn", "1", timeout=30000)
    # seeing, zenith seeing, tau0, Strehl and the DIMM points; a shaded span per sequence
    assert chart.locator(".scatterlayer .trace").count() == 5
    assert chart.locator(".shapelayer path").count() >= 2
    expect(chart.locator(".annotation-text", has_text="DB_H23")).to_have_count(1)
    shot(page, "monitoring-night")
    assert chromium_browser.errors == [], chromium_browser.errors
