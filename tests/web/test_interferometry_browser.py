"""Interferometry pages in the real browser (Playwright + Debian's chromium, as test_browser.py),
on the access world with real OIFITS granules and a survey (tests/web/oi_world.py): the data PI
searches granules by instrument, wavelength and night, opens the embargoed one, validates it
from the page (a new archived version appears, with the flag and the comment) and downloads it;
a survey member follows the survey; another user gets 404 for the survey and the embargoed
granule, and the public granule's page offers no validation."""

from __future__ import annotations

import hashlib

import pytest

from .browser import database_url, shot, sign_in  # noqa: F401 - database_url: the fixture (SQLite)
from .oi_world import SURVEY, world_with_interferometry  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.shared_data]


def test_granules_and_survey_pages_in_the_browser(chromium_browser, server, world, tmp_path):
    from playwright.sync_api import expect

    embargoed = world.oi.granules["oi-embargoed"][0]
    page = chromium_browser.new_page(accept_downloads=True)

    # anonymous: the public and calibrator granules only, no survey link
    page.goto(server + "/granules")
    expect(page.locator("#granules a.granule-link")).to_have_count(2)
    assert page.locator("#surveys-link").count() == 0

    sign_in(page, server, "owner", "/granules")
    expect(page.locator("#who")).to_contain_text("owner")
    expect(page.locator("#granules a.granule-link")).to_have_count(3)  # + the embargoed one
    page.fill("#g-instrument", "pionier")
    page.fill("#g-wavelength", "1.7")  # µm, inside PIONIER's H band
    page.fill("#g-night", "2016-05-31")
    page.click("#granule-search")
    links = page.locator("#granules a.granule-link")
    expect(links).to_have_count(1)
    shot(page, "granules")
    links.first.click()
    expect(page).to_have_url(f"{server}/granules/{embargoed}")
    expect(page.locator("#release")).to_contain_text("2028-05-")
    expect(page.locator("#release")).to_contain_text("embargoed")
    expect(page.locator("#rights")).to_have_text("secure")
    expect(page.locator("#quality")).to_have_text("0 Unknown")
    expect(page.locator("#validations")).to_contain_text("not validated yet")

    # validation from the page: a new version, flagged, with the comment
    page.select_option("#v-quality", "4")
    page.fill("#v-comment", "V2 fine on 6 baselines")
    page.click("#v-submit")
    expect(page.locator("#quality")).to_have_text("4 Science ready")
    new_granule = int(page.url.rsplit("/", 1)[-1])
    assert new_granule != embargoed
    expect(page.locator("#validations .comment")).to_have_text("V2 fine on 6 baselines")
    expect(page.locator("#versions tbody tr")).to_have_count(2)
    expect(page.locator("#versions")).to_contain_text("(current)")
    shot(page, "granule")
    with page.expect_download() as info:
        page.click("#download-granule")
    saved = tmp_path / "granule.fits"
    info.value.save_as(saved)
    from astropy.io import fits

    with fits.open(saved) as hdul:
        assert hdul[0].header["HIERARCH QUALITY LEVEL"] == 4
    assert hashlib.sha256(saved.read_bytes()).hexdigest() != world.oi.sha256["oi-embargoed"]
    # the old version stays reachable from the versions table
    page.click(f'#versions a[href="/granules/{embargoed}"]')
    expect(page.locator("#superseded")).to_be_visible()
    page.click("#logout")

    # the survey's member follows it
    sign_in(page, server, "member", "/surveys")
    page.click(f'#surveys a.survey-link:has-text("{SURVEY}")')
    expect(page.locator("h1")).to_contain_text(SURVEY)
    expect(page.locator("#survey-targets tbody tr")).to_have_count(5)
    expect(page.locator("#count-planned")).to_have_text("4")  # alf Eri observed (calibrator)
    shot(page, "survey")
    # ... but not the embargoed granule (the browser logs the expected 404)
    assert not chromium_browser.errors, chromium_browser.errors
    response = page.goto(f"{server}/granules/{new_granule}")
    assert response.status == 404
    chromium_browser.errors.clear()
    page.context.clear_cookies()

    # another user: the survey is answered as missing; the public granule has no validate form
    sign_in(page, server, "other_pi", "/surveys")
    expect(page.locator("#surveys")).to_contain_text("no survey")
    assert page.goto(f"{server}/surveys/{SURVEY}").status == 404
    chromium_browser.errors.clear()  # that 404 was expected
    page.goto(f"{server}/granules/{world.oi.granules['oi-open'][0]}")
    expect(page.locator("#quality")).to_be_visible()
    assert page.locator("#validate-form").count() == 0
    assert not chromium_browser.errors, chromium_browser.errors
