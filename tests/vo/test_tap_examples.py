"""Every DALI example of /tap/examples runs on SQLite and PostgreSQL (as anonymous and as admin)."""

from __future__ import annotations

import io

from astropy.io.votable import parse
from fastapi.testclient import TestClient
from web.world import BEFORE

from hcdc.web.app import create_app
from hcdc.web.vo.examples import EXAMPLES


def test_examples_run(world) -> None:
    for user in (None, "admin"):
        client = TestClient(create_app(catalogue=world.catalogue, clock=lambda: BEFORE, secret_key="x"))
        if user:
            client.headers["Authorization"] = f"Bearer {world.tokens[user]}"
        page = client.get("/tap/examples")
        assert page.status_code == 200 and page.text.count('typeof="example"') == len(EXAMPLES)
        for eid, _name, query, _ in EXAMPLES:
            response = client.post("/tap/sync", data={"LANG": "ADQL", "QUERY": query})
            assert response.status_code == 200, (eid, response.text)
            parse(io.BytesIO(response.content)).get_first_table()
