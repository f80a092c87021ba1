"""Fixtures of the web tests: the access world (tests/web/world.py) on SQLite and PostgreSQL,
clients of the application at a chosen date, and the browser tests' chromium and live server
(tests/web/browser.py)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hcdc.web.app import create_app

from .browser import CHROMIUM, Chromium, launched
from .world import BEFORE, L2Source, World, build_world, make_l2_source


@pytest.fixture(scope="session")
def l2_source(tmp_path_factory) -> L2Source:
    return make_l2_source(tmp_path_factory.mktemp("l2source"))


@pytest.fixture
def world(tmp_path: Path, database_url: str, l2_source: L2Source) -> World:
    w = build_world(tmp_path, database_url, l2_source)
    yield w
    w.catalogue.close()


@pytest.fixture
def client_at(world: World) -> Callable[..., TestClient]:
    """``client_at(date, user=None)``: a client of the app whose clock says ``date``, sending
    ``user``'s bearer token (None: anonymous)."""

    def make(when: dt.datetime = BEFORE, user: str | None = None) -> TestClient:
        app = create_app(catalogue=world.catalogue, clock=lambda: when, secret_key="test-secret")
        client = TestClient(app, base_url="http://testserver")
        if user is not None:
            client.headers["Authorization"] = f"Bearer {world.tokens[user]}"
        return client

    return make


# --------------------------------------------------------------------------------------------
# browser tests (tests/web/browser.py)


@pytest.fixture
def chromium() -> Path:
    """Debian's chromium for Playwright: skipped with a reason when absent (failed under CI)."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is absent: run .ci/setup-browser (as root) or set HCDC_CHROMIUM"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    return CHROMIUM


@pytest.fixture
def chromium_browser(chromium: Path) -> Iterator[Chromium]:
    """A launched chromium (:class:`tests.web.browser.Chromium`), closed after the test."""
    with launched(chromium) as browser:
        yield browser


@pytest.fixture
def server(world: World) -> Iterator[str]:
    """A live uvicorn server on the access world (its clock at ``BEFORE``); yields its base URL."""
    from helpers.live_server import serve_app

    app = create_app(catalogue=world.catalogue, clock=lambda: BEFORE, secret_key="browser-test")
    with serve_app(app) as base:
        yield base
