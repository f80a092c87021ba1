"""The contrast-versus-conditions and True North / plate-scale charts draw in chromium (plotly,
no console error), with the flagged product marked."""

from __future__ import annotations

import pytest
from archive.contrast_world import build_contrast_world

from .browser import database_url, shot, sign_in  # noqa: F401 - database_url: the fixture (SQLite)

pytestmark = pytest.mark.browser


def test_contrast_chart_draws(chromium_browser, server, world):
    import datetime as dt

    from playwright.sync_api import expect

    from hcdc.archive.access import local_operator
    from hcdc.archive.astrometry_monitor import add_astrometric_calibration

    build_contrast_world(world.catalogue)
    with world.catalogue.engine.begin() as conn:
        for epoch in (dt.date(2016, 3, 1), dt.date(2019, 5, 1)):
            add_astrometric_calibration(
                conn,
                local_operator(),
                instrument="SPHERE",
                arm="IRDIS",
                epoch=epoch,
                true_north_deg=-1.75,
                true_north_err_deg=0.08,
                plate_scale_mas=12.255,
                plate_scale_err_mas=0.009,
                source="Maire et al. 2016",
            )
    page = chromium_browser.new_page()
    sign_in(page, server, "admin", "/admin/monitoring/report")
    page.click("#contrast-link")
    chart = page.locator("#contrast-chart")
    # plotly's first draw of three log panels can take seconds on a loaded machine
    expect(chart).to_have_attribute("data-drawn", "1", timeout=30000)
    # two separations x three panels, and the measured = expected line
    assert chart.locator(".scatterlayer .trace").count() == 7
    expect(page.locator('#contrast-products tr[data-flagged="1"]')).to_have_count(1)
    shot(page, "monitoring-contrast")
    page.goto(f"{server}/admin/monitoring/astrometry")
    chart = page.locator("#astrometry-chart")
    expect(chart).to_have_attribute("data-drawn", "1", timeout=30000)
    # True North and plate scale of IRDIS, the two assumed constants and the two fitted drift
    # lines of the trend
    assert chart.locator(".scatterlayer .trace").count() == 6
    shot(page, "monitoring-astrometry")
    assert chromium_browser.errors == [], chromium_browser.errors
