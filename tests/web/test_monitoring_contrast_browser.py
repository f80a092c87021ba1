"""The contrast-versus-conditions chart draws in chromium (plotly, no console error), with the
flagged product marked."""

from __future__ import annotations

import pytest
from archive.contrast_world import build_contrast_world

from .test_browser import _shot, chromium, database_url, server  # noqa: F401 - fixtures
from .world import PASSWORD

pytestmark = pytest.mark.browser


def test_contrast_chart_draws(chromium, server, world):  # noqa: F811 - fixtures
    from playwright.sync_api import expect, sync_playwright

    build_contrast_world(world.catalogue)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server}/login?next=/admin/monitoring/report")
            page.fill("#name", "admin")
            page.fill("#password", PASSWORD)
            page.click("#sign-in")
            page.click("#contrast-link")
            chart = page.locator("#contrast-chart")
            # plotly's first draw of three log panels can take seconds on a loaded machine
            expect(chart).to_have_attribute("data-drawn", "1", timeout=30000)
            # two separations x three panels, and the measured = expected line
            assert chart.locator(".scatterlayer .trace").count() == 7
            expect(page.locator('#contrast-products tr[data-flagged="1"]')).to_have_count(1)
            _shot(page, "monitoring-contrast")
            assert errors == [], errors
        finally:
            browser.close()
