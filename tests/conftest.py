"""Shared test fixtures.

* ``shared_data``: path to ../shared/data. Tests that need it skip with a clear reason when it
  is absent, except under CI (``CI=true``), where its absence is a failure.
* ``database_url``: parametrized over SQLite and PostgreSQL; each test gets a fresh, empty
  database (a new PostgreSQL database, dropped afterwards). PostgreSQL is reached at
  ``HCDC_TEST_PG_URL`` (default: the local server on 127.0.0.1:5432, trust auth). Outside CI an
  unreachable server skips the PostgreSQL half; under CI it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HCDC_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
PG_ADMIN_URL = os.environ.get("HCDC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
UNDER_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _need(condition: bool, reason: str) -> None:
    if condition:
        return
    if UNDER_CI:
        pytest.fail(f"{reason} (required under CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real observations in ../shared/data."""
    _need(SHARED_DATA.is_dir(), f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


def _pg_connect(dbname: str | None = None):
    import psycopg

    url = PG_ADMIN_URL if dbname is None else PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{dbname}"
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    try:
        with _pg_connect() as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


@contextmanager
def _fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (SQLAlchemy + psycopg 3 URL), dropped afterwards."""
    name = f"hcdc_test_{uuid.uuid4().hex[:12]}"
    with _pg_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with _pg_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_url(postgres_available: bool):
    """URL of a fresh, empty PostgreSQL database (SQLAlchemy + psycopg 3), dropped afterwards."""
    _need(postgres_available, f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    with _fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request, tmp_path_factory, postgres_available: bool):
    """Like ``database_url``, but one database for a whole test module: for modules whose tests
    only read what a module-scoped fixture built once."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('module-db') / 'catalog.sqlite'}"
        return
    _need(postgres_available, f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    with _fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request) -> str:
    """A fresh empty database, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
