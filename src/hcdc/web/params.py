"""Search criteria from a request: typed query parameters for the API (documented in OpenAPI),
and a tolerant reader of the portal's form fields (empty field = no criterion)."""

from __future__ import annotations

import copy
import datetime as dt
import inspect
import typing
from collections.abc import Mapping
from dataclasses import fields
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError, create_model

from hcdc.archive.search import MAX_PAGE_SIZE, Criteria, SearchError

_TYPES: dict[str, type] = {
    "ra": float,
    "dec": float,
    "radius": float,
    "seeing_max": float,
    "tau0_min": float,
    "airmass_max": float,
    "contrast_05_max": float,
    "level": int,
    "offset": int,
    "limit": int,
    "night_from": dt.date,
    "night_to": dt.date,
    "has_detections": bool,
    "descending": bool,
}
#: ids are 32-bit integer columns (PostgreSQL ``integer``); larger numbers name nothing
MAX_ID = 2**31 - 1
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID, description="catalogue id")]
CRITERIA_FIELDS = tuple(f.name for f in fields(Criteria))


def criteria_from_mapping(values: Mapping[str, Any], default_limit: int = 50) -> Criteria:
    """Criteria from form or query fields (strings); raises :class:`SearchError` naming the field."""
    kwargs: dict[str, Any] = {"limit": default_limit}
    for name in CRITERIA_FIELDS:
        raw = values.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        text = str(raw).strip()
        kind = _TYPES.get(name, str)
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0", "yes", "no", "on"):
                    raise ValueError(text)
                kwargs[name] = text.lower() in ("true", "1", "yes", "on")
            elif kind is dt.date:
                kwargs[name] = dt.date.fromisoformat(text)
            else:
                kwargs[name] = kind(text)
        except ValueError:
            what = {bool: "true or false", dt.date: "a date YYYY-MM-DD", int: "an integer", float: "a number"}
            raise SearchError(f"{name} must be {what.get(kind, 'text')}, got {text!r}") from None
    criteria = Criteria(**kwargs)
    criteria.check()
    return criteria


def _declared_criteria(
    target: str | None = Query(None, description="target name (substring, case-insensitive)"),
    ra: float | None = Query(None, description="cone centre right ascension, deg (ICRS)"),
    dec: float | None = Query(None, description="cone centre declination, deg (ICRS)"),
    radius: float | None = Query(None, description="cone radius, arcsec"),
    instrument: str | None = Query(None, description="instrument, e.g. SPHERE"),
    mode: str | None = Query(None, description="instrument mode, e.g. DBI"),
    filter: str | None = Query(None, description="filter (substring of the setup), e.g. DB_H23"),
    night_from: dt.date | None = Query(None, description="first night (start date), inclusive"),
    night_to: dt.date | None = Query(None, description="last night (start date), inclusive"),
    programme: str | None = Query(None, description="ESO programme id, with or without run letter"),
    seeing_max: float | None = Query(None, description="seeing at most, arcsec (some file of the data)"),
    tau0_min: float | None = Query(None, description="coherence time at least, s"),
    airmass_max: float | None = Query(None, description="airmass at most"),
    level: int | None = Query(None, ge=0, le=3, description="product level (0-3)"),
    product_type: str | None = Query(None, description="product type, e.g. level2-image"),
    algorithm: str | None = Query(None, description="Level 2 algorithm, e.g. pca_annular"),
    has_detections: bool | None = Query(
        None, description="products with (true) or without (false) detections"
    ),
    contrast_05_max: float | None = Query(None, gt=0, description='5-sigma contrast reached at 0.5" at most'),
    sort: str = Query("id", description="sort key (id, target, night, level, instrument, created, ...)"),
    descending: bool = Query(True, description="sort in descending order"),
    offset: int = Query(0, ge=0, le=MAX_ID, description="first result (0-based)"),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE, description="results per page"),
) -> Criteria:
    """The API's search parameters: their names, types, bounds and descriptions, declared once.
    :func:`api_criteria` validates a request's query string against them (one pydantic model,
    :data:`_CRITERIA_QUERY`) and the search routes document them (:func:`criteria_openapi`);
    FastAPI does not call this function."""
    values = dict(locals())
    return Criteria(**{k: values[k] for k in CRITERIA_FIELDS})


def _query_model() -> type[BaseModel]:
    """A pydantic model of :func:`_declared_criteria`'s parameters (same types and bounds: FastAPI's
    ``Query`` is a pydantic ``FieldInfo``)."""
    hints = typing.get_type_hints(_declared_criteria)
    parameters = inspect.signature(_declared_criteria).parameters
    return create_model("CriteriaQuery", **{name: (hints[name], p.default) for name, p in parameters.items()})


def _documented_operation() -> dict[str, Any]:
    """The OpenAPI ``parameters`` and ``422`` response FastAPI writes for :func:`_declared_criteria`'s
    parameters (of a route that takes them one by one)."""
    route = APIRoute("/", _declared_criteria, response_model=None)
    operation = get_openapi(title="", version="", routes=[route])["paths"]["/"]["get"]
    return {"parameters": operation["parameters"], "responses": {"422": operation["responses"]["422"]}}


_CRITERIA_QUERY = _query_model()
_CRITERIA_OPENAPI = _documented_operation()


def criteria_openapi() -> dict[str, Any]:
    """``openapi_extra`` of a route that takes :func:`api_criteria`: the same parameters and 422
    response as if it declared them (the OpenAPI document is unchanged)."""
    return copy.deepcopy(_CRITERIA_OPENAPI)


async def api_criteria(request: Request) -> Criteria:
    """FastAPI dependency: the search criteria of an API call, from its query string.

    Validated in one call of a pydantic model of the declared parameters; a bad value is
    answered 422 with FastAPI's own error list (``loc`` ``["query", name]``), as if the route
    declared them. Not 22 parameters of the dependency's signature: FastAPI's per-parameter
    bookkeeping cost ~0.14 ms of CPU per request, ~17 % of a search's samples in the server,
    against ~3 µs for the model (benchmarks/RESULTS.md, "Tenth round"). ``async``: it only reads
    the query string, so FastAPI runs it on the event loop, not in a worker thread."""
    try:
        query = _CRITERIA_QUERY.model_validate(dict(request.query_params))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError([{**e, "loc": ("query", *e["loc"])} for e in errors]) from None
    return Criteria(**{name: getattr(query, name) for name in CRITERIA_FIELDS})


__all__ = [
    "CRITERIA_FIELDS",
    "MAX_ID",
    "ObjectId",
    "api_criteria",
    "criteria_from_mapping",
    "criteria_openapi",
]
