"""What the browser tests share: Debian's chromium driven by Playwright (no browser download),
pages that record their script errors, signing in, screenshots.

The fixtures are in ``tests/web/conftest.py``: ``chromium`` (the executable; the test is skipped
with a reason when it is absent, and fails under CI, ``CI=true``), ``chromium_browser`` (a
launched :class:`Chromium`, closed after the test) and ``server`` (a live uvicorn server on the
access world). Browser tests run on SQLite: a module imports :func:`database_url` from here.

chromium comes from the project's set-up (``.ci/setup-browser``, run by ``.ci/run`` and ``make
browser``); ``HCDC_CHROMIUM`` names another executable. ``HCDC_SCREENSHOTS`` names a folder where
:func:`shot` saves a full-page screenshot of each page it is given (the docs' screenshots).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .world import PASSWORD

CHROMIUM = Path(os.environ.get("HCDC_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = os.environ.get("HCDC_SCREENSHOTS")  # a folder: save a screenshot of each page there
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Browser tests run on SQLite (the server runs in a thread of the test's process)."""
    return sqlite_url


def shot(page: Any, name: str) -> None:
    """Save a full-page screenshot of ``page`` as ``NAME.png`` when ``HCDC_SCREENSHOTS`` is set."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


class Chromium:
    """A launched chromium whose pages record their script errors in :attr:`errors`.

    ``errors`` gets every uncaught script error (``pageerror``) and, for pages opened with
    ``console=True`` (the default), every ``console.error`` message, among them the browser's
    own reports of CSP violations and of resources that failed to load.
    """

    def __init__(self, browser: Any) -> None:
        self.browser = browser
        self.errors: list[str] = []

    def watch(self, page: Any, *, console: bool = True) -> Any:
        """Record ``page``'s script errors (and console errors when ``console``); returns it."""
        if console:
            page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        return page

    def new_page(self, *, console: bool = True, accept_downloads: bool = False) -> Any:
        """A page in a new browser context (its own cookies) of the usual size, watched."""
        context = self.browser.new_context(accept_downloads=accept_downloads, viewport=VIEWPORT)
        return self.watch(context.new_page(), console=console)


@contextmanager
def launched(executable: Path) -> Iterator[Chromium]:
    """Launch ``executable`` with Playwright; closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=["--no-sandbox"])
        try:
            yield Chromium(browser)
        finally:
            browser.close()


def sign_in(
    page: Any,
    base: str,
    name: str,
    next: str | None = None,
    *,
    password: str = PASSWORD,
    check: bool = False,
) -> None:
    """Sign in as ``name`` (by default with the access world's password) on the login page of
    the server at ``base``, sent on to ``next``; with ``check``, wait until the page says who is
    signed in."""
    page.goto(f"{base}/login" + (f"?next={next}" if next else ""))
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("#sign-in")
    if check:
        from playwright.sync_api import expect

        expect(page.locator("#who")).to_contain_text(name)
