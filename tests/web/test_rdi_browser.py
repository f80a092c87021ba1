"""The RDI pages in the headless browser (tests/web/browser.py): the owner follows the navigation
link, sees their library first and marked, narrows the list to theirs and opens it."""

from __future__ import annotations

from .browser import database_url, shot, sign_in  # noqa: F401 - database_url: SQLite only
from .rdi_world import add_rdi_libraries


def test_rdi_pages_in_the_browser(world, server, chromium_browser):
    from playwright.sync_api import expect

    ids = add_rdi_libraries(world)
    page = chromium_browser.new_page()
    sign_in(page, server, "owner", "/my", check=True)
    page.click("#rdi-nav")
    rows = page.locator("#rdi-libraries tr[data-id]")
    expect(rows).to_have_count(2)
    expect(page.locator('#rdi-libraries tr[data-mine="1"] .rdi-link')).to_have_text("owner-lib")
    page.click("#rdi-mine")
    expect(rows).to_have_count(1)
    shot(page, "rdi-libraries")
    page.click(".rdi-link")
    expect(page).to_have_url(f"{server}/rdi/{ids['owner-lib']}")
    expect(page.locator("#rdi-frames tr")).to_have_count(1 + 3)
    expect(page.locator("#rdi-n-frames")).to_contain_text("3 of 30")
    shot(page, "rdi-library")
    assert chromium_browser.errors == [], chromium_browser.errors
