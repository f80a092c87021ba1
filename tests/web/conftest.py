"""Fixtures of the web tests: the access world (tests/web/world.py) on SQLite and PostgreSQL, and
clients of the application at a chosen date."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from hcdc.web.app import create_app

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
