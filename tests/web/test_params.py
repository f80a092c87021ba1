"""The API's search parameters: ``api_criteria`` (one pydantic model over the query string) gives
what FastAPI's own validation of the declared parameters gives (``_declared_criteria``, one
parameter at a time): the same criteria, the same 422 errors, the same OpenAPI document."""

from __future__ import annotations

import dataclasses

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from hcdc.archive.search import Criteria
from hcdc.web.params import _declared_criteria, api_criteria, criteria_openapi

QUERIES = [
    "",
    "target=T123&limit=50",
    "target=&ra=10.5&dec=-30&radius=2",
    "night_from=2024-01-02&night_to=2024-02-01&level=2&has_detections=yes&descending=0",
    "programme=100.C-0000&sort=target&offset=7&limit=1&seeing_max=1e3&contrast_05_max=1e-5",
    "target=a&target=b&unknown=1",  # the last of repeated values; unknown names ignored
    "ra=abc",
    "level=4&limit=0&offset=-1",
    "night_from=2024-13-01&has_detections=maybe&contrast_05_max=0",
    "limit=100000000000000000000&descending=",
]


def _app(dependency) -> TestClient:
    app = FastAPI()

    @app.get("/search")
    def search(criteria: Criteria = Depends(dependency)) -> dict:
        return dataclasses.asdict(criteria)

    return TestClient(app)


@pytest.mark.parametrize("query", QUERIES)
def test_api_criteria_validates_as_fastapi_does(query: str) -> None:
    declared = _app(_declared_criteria).get(f"/search?{query}")
    fast = _app(api_criteria).get(f"/search?{query}")
    assert (fast.status_code, fast.json()) == (declared.status_code, declared.json())


def test_search_routes_document_the_declared_parameters() -> None:
    """The search routes' OpenAPI operations list the parameters as a route declaring them would."""
    app = FastAPI()

    @app.get("/declared")
    def declared(criteria: Criteria = Depends(_declared_criteria)) -> None: ...

    @app.get("/fast", openapi_extra=criteria_openapi())
    def fast(criteria: Criteria = Depends(api_criteria)) -> None: ...

    paths = app.openapi()["paths"]
    operation = {k: v for k, v in paths["/fast"]["get"].items() if k not in ("summary", "operationId")}
    reference = {k: v for k, v in paths["/declared"]["get"].items() if k not in ("summary", "operationId")}
    assert operation == reference and len(operation["parameters"]) == len(dataclasses.fields(Criteria))
