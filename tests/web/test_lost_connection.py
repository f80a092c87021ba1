"""A web request after PostgreSQL dropped the pool's connections (a restarted server, terminated
backends): reading requests are answered, not failed (``hcdc.web.app.RetryLostConnection``; the
pool pings a connection only after it sat idle, so the first statement on a dead connection
fails). Real PostgreSQL: its backends are terminated with ``pg_terminate_backend``."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from hcdc.web.app import RetryLostConnection, create_app


def _terminate_backends(database_url: str) -> int:
    """Terminates every other session of the test database; the number terminated."""
    url = make_url(database_url)
    admin = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (url.database,),
        ).fetchall()
    return len(rows)


@pytest.fixture
def pg_world(request, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("terminating server sessions is a PostgreSQL matter")
    return request.getfixturevalue("world")  # built only on PostgreSQL


def test_reads_after_the_servers_sessions_were_terminated_are_answered(pg_world, database_url):
    app = create_app(catalogue=pg_world.catalogue, secret_key="test-secret")
    client = TestClient(app, base_url="http://testserver")
    client.headers["Authorization"] = f"Bearer {pg_world.tokens['owner']}"
    before = client.get("/api/v1/products")
    assert before.status_code == 200
    page = f"/products/{pg_world.ids['public']['product']}"
    assert client.get(page).status_code == 200

    assert _terminate_backends(database_url) >= 1  # the pool's connections, used a moment ago
    after = client.get("/api/v1/products")
    assert after.status_code == 200
    assert after.json() == before.json()

    assert _terminate_backends(database_url) >= 1
    assert client.get(page).status_code == 200


def _app_failing(times: int, after_start: bool = False):
    """An ASGI app whose first ``times`` calls fail as on a dead connection (after sending the
    response's start when ``after_start``), then answer 200; ``calls`` counts its calls."""
    calls = []

    async def app(scope, receive, send):
        calls.append(await receive())
        if after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        if len(calls) <= times:
            raise DBAPIError(
                "SELECT 1", {}, OSError("server closed the connection"), connection_invalidated=True
            )
        if not after_start:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app, calls


def _call(app, method: str) -> list[dict]:
    sent = []
    messages = iter([{"type": "http.request", "body": b"x=1", "more_body": False}])

    async def receive():
        return next(messages, {"type": "http.disconnect"})

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/", "headers": []}
    asyncio.run(RetryLostConnection(app)(scope, receive, send))
    return sent


def test_a_read_is_run_once_more_with_its_body_replayed():
    app, calls = _app_failing(1)
    sent = _call(app, "GET")
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert calls == [{"type": "http.request", "body": b"x=1", "more_body": False}] * 2


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_a_write_is_not_repeated(method):
    app, calls = _app_failing(1)
    with pytest.raises(DBAPIError):
        _call(app, method)
    assert len(calls) == 1


def test_a_read_fails_once_its_response_started_or_twice():
    app, calls = _app_failing(1, after_start=True)
    with pytest.raises(DBAPIError):
        _call(app, "GET")
    assert len(calls) == 1
    app, calls = _app_failing(2)
    with pytest.raises(DBAPIError):
        _call(app, "GET")
    assert len(calls) == 2
