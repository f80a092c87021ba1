"""schemathesis against the OpenAPI document: requests generated from the schema of every API
operation, sent as the owner (token) or anonymously, never get a server error (5xx). SQLite: the
leak matrix covers both databases; this is about input handling."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcdc.web.app import create_app

from .world import BEFORE

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")


@pytest.fixture
def database_url(sqlite_url):
    return sqlite_url


def test_no_server_error(world):
    app = create_app(catalogue=world.catalogue, clock=lambda: BEFORE, secret_key="fuzz")
    api = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 19
    seen: set[str] = set()

    @given(case=st.one_of([op.as_strategy() for op in operations]), as_owner=st.booleans())
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case, as_owner: bool) -> None:
        headers = dict(case.headers or {})
        headers.pop("Authorization", None)
        if as_owner:
            headers["Authorization"] = f"Bearer {world.tokens['owner']}"
        case.headers = headers
        response = case.call()
        seen.add(f"{case.method} {case.path}")
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} {case.query} {case.body}: "
            f"{response.status_code} {response.text[:300]}"
        )

    run()
    assert len(seen) >= 15, seen  # most operations were exercised
