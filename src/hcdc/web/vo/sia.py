"""SIA 2.0 query service over ``ivoa.obscore``: ``/sia/query`` and its VOSI documents.

``GET``/``POST /sia/query`` with the SIA 2.0 parameters (:mod:`hcdc.archive.sia` parses them and
builds the query), plus ``MAXREC`` (default :data:`DEFAULT_MAXREC`, at most :data:`HARD_MAXREC`;
``QUERY_STATUS=OVERFLOW`` after the table when more rows matched) and ``RESPONSEFORMAT`` (or
``FORMAT``: VOTable binary2 by default, tabledata, CSV, JSON). The answer is a VOTable with the
ObsCore columns of the rows the caller may see (HTTP Basic, bearer token or session, as TAP).
A bad parameter is a VOTable error document (``QUERY_STATUS=ERROR``, message naming the
parameter) with HTTP 400. ``/sia/capabilities`` and ``/sia/availability`` are VOSI 1.1 (also
under ``/sia/query/``, where the capabilities document places them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hcdc.archive.identifiers import vo_authority
from hcdc.archive.obscore import OBSCORE_COLUMNS
from hcdc.archive.sia import SiaError
from hcdc.web.auth import state_of
from hcdc.web.vo.registry import SIA2_ID, Capability, vosi_availability, vosi_capabilities, xml_response
from hcdc.web.vo.tap import error_response, service_base, vo_catalogue
from hcdc.web.vo.votable import Field, FormatError, render, serialization_of

router = APIRouter(prefix="/sia", tags=["vo"])

DEFAULT_MAXREC = 1000
HARD_MAXREC = 100_000

FIELDS = [
    Field(c.name, c.datatype, c.arraysize, c.unit, c.ucd, c.utype, c.xtype, c.description)
    for c in OBSCORE_COLUMNS
]


async def request_parameters(request: Request) -> dict[str, list[str]]:
    """Every value of every parameter (names upper-cased), from the query string and a POST form."""
    params: dict[str, list[str]] = {}
    items: list[tuple[str, Any]] = list(request.query_params.multi_items())
    if request.method == "POST":
        items += list((await request.form()).multi_items())
    for name, value in items:
        if isinstance(value, str):
            params.setdefault(name.upper(), []).append(value)
    return params


def maxrec_of(params: Mapping[str, Sequence[str]]) -> int:
    values = params.get("MAXREC") or [str(DEFAULT_MAXREC)]
    text = values[-1].strip()
    if not text.isdigit():
        raise SiaError("MAXREC", f"{values[-1]!r} is not a non-negative integer")
    return min(int(text), HARD_MAXREC)


def format_of(params: Mapping[str, Sequence[str]]) -> str:
    values = params.get("RESPONSEFORMAT") or params.get("FORMAT") or [""]
    try:
        return serialization_of(values[-1])
    except FormatError as exc:
        raise SiaError("RESPONSEFORMAT", str(exc)) from None


# one route per method: FastAPI would give a GET+POST route one operation id for both
@router.get("/query", summary="SIA 2.0 query over ObsCore", operation_id="sia_query_get")
@router.post("/query", summary="SIA 2.0 query over ObsCore (form parameters)", operation_id="sia_query_post")
async def query(request: Request) -> Response:
    params = await request_parameters(request)
    state = state_of(request)
    with vo_catalogue(request) as vo:  # the catalogue facade, for the caller
        try:
            maxrec, serialization = maxrec_of(params), format_of(params)
            rows, overflow = vo.sia_query(
                params,
                maxrec=maxrec,
                authority=vo_authority(state.catalogue.settings),
                base_url=service_base(request),
            )
        except SiaError as exc:
            return error_response(str(exc))
    body, media_type = render(FIELDS, rows, serialization, overflow=overflow)
    return Response(body, media_type=media_type)


def _capabilities(request: Request) -> Response:
    base = service_base(request)
    return xml_response(
        vosi_capabilities(base, Capability(SIA2_ID, f"{base}/sia/query", use="base", version="2.0"))
    )


def _availability() -> Response:
    return xml_response(vosi_availability())


for _root in ("", "/query"):
    router.add_api_route(
        f"{_root}/capabilities", _capabilities, methods=["GET"], summary="VOSI capabilities of SIA 2.0"
    )
    router.add_api_route(
        f"{_root}/availability", _availability, methods=["GET"], summary="VOSI availability of SIA 2.0"
    )


__all__ = ["DEFAULT_MAXREC", "FIELDS", "HARD_MAXREC", "router"]
