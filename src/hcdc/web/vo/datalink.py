"""DataLink 1.1 (``/datalink``): what a publisher DID links to, and its provenance (``/datalink/prov``).

``GET|POST /datalink?ID=...[&ID=...][&RESPONSEFORMAT=votable]`` answers one VOTable with the
DataLink 1.1 columns (``ID, access_url, service_def, error_message, semantics, description,
content_type, content_length, content_qualifier, local_semantics, link_auth, link_authorized``),
the rows of each ID together, in the order asked. The links (semantics from the vocabulary
http://www.ivoa.net/rdf/datalink/core):

* a **product** (``ivo://AUTHORITY/product?N``): each FITS file (``#this`` for the main one —
  role ``product`` or ``cube`` —, ``#auxiliary`` for the others), the PNG previews
  (``#preview-image``, ``#preview-plot`` for the contrast curve), the whole product as a zip
  with its sha256 manifest (``#package``), the S/N map and the contrast curve cut out of the
  Level 2 FITS file (``#auxiliary``, ``/datalink/hdu``), its parent products (Level 1 for a
  Level 2 product: ``#progenitor``, pointing to their own DataLink document), the raw files it was
  made from (``#progenitor``) and the calibration files applied (``#progenitor`` with
  ``local_semantics=calibration``: the vocabulary keeps ``#calibration`` for calibrations *not
  yet* applied), the products made from it (``#derivation``), its provenance in the IVOA
  Provenance model as W3C PROV-JSON (``#documentation``, ``local_semantics=provenance``: the
  vocabulary has no ``#provenance`` term) and hcdc's own provenance record (``#documentation``);
* a **raw file** (``file?N``): the file (``#this``), the calibrations associated with its dataset
  (``#calibration``, or ``#dark``/``#flat``/``#bias`` by need), the products made from its
  dataset (``#derivation``) and its PROV-JSON entity;
* an **OIFITS granule** (``granule?N``): its OIFITS file (``#this``).

Rights: every link is decided by :mod:`hcdc.archive.access` for the caller (bearer token or
session, as the REST API). An ID the caller may not see gets exactly the row of an ID that does
not exist (``NotFoundFault: ...``), linked objects the caller may not see are left out, and every
download goes through the REST API's rights-checked routes. ``link_auth`` says whether the linked
object needs an account (``false``: public now; ``true``: visible to the caller only through its
rights), ``link_authorized`` is true on every row returned (what the caller may not use is not
listed).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from hcdc.archive.catalogue_errors import NotFound
from hcdc.archive.identifiers import IdentifierError, parse_publisher_did, vo_authority
from hcdc.archive.vo_links import (
    AUXILIARY_HDUS,
    DATALINK_MEDIA_TYPE,
    FIELD_NAMES,
    FIELDS,
    PROV_JSON_MEDIA_TYPE,
    Faults,
    Link,
    Linker,
)
from hcdc.web.auth import Viewer, ViewerRoute, viewer
from hcdc.web.params import MAX_ID
from hcdc.web.vo.registry import (
    DATALINK_ID,
    Capability,
    vosi_availability,
    vosi_capabilities,
    xml_response,
)
from hcdc.web.vo.votable import Field as VOField
from hcdc.web.vo.votable import error_document, votable_document

router = APIRouter(prefix="/datalink", tags=["vo"], route_class=ViewerRoute)

VOTABLE_MEDIA_TYPE = "application/x-votable+xml"
#: RESPONSEFORMAT values answered (all the same VOTable)
RESPONSE_FORMATS = frozenset(
    {"votable", "application/x-votable+xml", DATALINK_MEDIA_TYPE, "text/xml", "application/x-votable"}
)
#: most IDs answered in one request
MAX_IDS = 200


# ------------------------------------------------------------------------------------------------
# VOTable documents


def links_votable(links: Iterable[Link]) -> bytes:
    """A DataLink 1.1 VOTable (RESOURCE type="results", QUERY_STATUS OK) of ``links``."""
    fields = [(FIELD_NAMES.get(name, name), *rest) for name, *rest in FIELDS]
    infos = [("standardID", "ivo://ivoa.net/std/DataLink#links-1.1")]
    return table_votable(fields, [link.row() for link in links], "links", infos)


def table_votable(
    fields: list[tuple[str, str, str | None, str | None, str]],
    rows: list[tuple[Any, ...]],
    name: str,
    infos: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A VOTable 1.4 result document (TABLEDATA, :func:`hcdc.web.vo.votable.votable_document`) with
    ``fields`` (name, VOTable datatype, UCD, unit, description; ``char`` columns variable-length)
    and ``rows`` (None: null), ``infos`` (name, value) after QUERY_STATUS=OK."""
    columns = [
        VOField(n, datatype, "*" if datatype == "char" else None, unit=unit, ucd=ucd, description=text)
        for n, datatype, ucd, unit, text in fields
    ]
    kinds = [spec[1] for spec in fields]
    rows = [tuple(_xml_safe(v) if kinds[k] == "char" else v for k, v in enumerate(row)) for row in rows]
    return votable_document(
        columns,
        rows,
        serialization="tabledata",
        infos=[(key, value, None) for key, value in infos],
        table_name=name,
    )


def error_votable(message: str) -> bytes:
    """A DALI error document: RESOURCE type="results" with one QUERY_STATUS=ERROR INFO."""
    return error_document(_xml_safe(message))


#: characters XML 1.0 forbids even escaped (C0 controls but tab, newline, carriage return)
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _xml_safe(value: Any) -> Any:
    """A string with the characters XML cannot carry replaced by ``?`` (hostile IDs are echoed)."""
    return _XML_FORBIDDEN.sub("?", value) if isinstance(value, str) else value


def votable_response(body: bytes, status: int = 200, media_type: str = DATALINK_MEDIA_TYPE) -> Response:
    return Response(body, status_code=status, media_type=media_type)


# ------------------------------------------------------------------------------------------------
# routes


def _linker(who: Viewer, request: Request) -> Linker:
    """The links of the request's user, through the catalogue facade."""
    authority = vo_authority(who.state.catalogue.settings)
    return who.catalogue.vo.linker(authority=authority, base_url=str(request.base_url))


async def _parameters(request: Request) -> dict[str, list[str]]:
    """Request parameters (query string and, for POST, the form), names case-insensitive (DALI)."""
    params: dict[str, list[str]] = {}
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    for key, value in items:
        params.setdefault(key.upper(), []).append(value)
    return params


# one route per method: FastAPI would give a GET+POST route one operation id for both
@router.get("", summary="DataLink 1.1 links of publisher DIDs", operation_id="datalink_links_get")
@router.post(
    "", summary="DataLink 1.1 links of publisher DIDs (form parameters)", operation_id="datalink_links_post"
)
async def links(request: Request, who: Viewer = Depends(viewer)) -> Response:
    params = await _parameters(request)
    formats = params.get("RESPONSEFORMAT", [])
    if formats and formats[-1].strip().lower() not in RESPONSE_FORMATS:
        return votable_response(
            error_votable(Faults.usage(f"RESPONSEFORMAT {formats[-1]!r} is not supported: use votable")),
            400,
            VOTABLE_MEDIA_TYPE,
        )
    ids = [i for i in params.get("ID", []) if i.strip()]
    if not ids:
        return votable_response(
            error_votable(Faults.usage("the ID parameter is required")), 400, VOTABLE_MEDIA_TYPE
        )
    if len(ids) > MAX_IDS:
        return votable_response(
            error_votable(Faults.usage(f"{len(ids)} IDs: at most {MAX_IDS} per request")),
            400,
            VOTABLE_MEDIA_TYPE,
        )
    linker = _linker(who, request)
    rows: list[Link] = []
    for did in ids:
        rows += linker.links(did)
    return votable_response(links_votable(rows))


@router.get("/capabilities", summary="VOSI capabilities of the DataLink service")
def capabilities(request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    return xml_response(vosi_capabilities(base, Capability(DATALINK_ID, f"{base}/datalink", version="1.1")))


@router.get("/availability", summary="VOSI availability of the DataLink service")
def availability() -> Response:
    return xml_response(vosi_availability())


@router.get("/prov", summary="Provenance of a product or file: IVOA Provenance DM as W3C PROV-JSON")
def provenance(request: Request, ID: str = "", who: Viewer = Depends(viewer)) -> JSONResponse:  # noqa: N803
    linker = _linker(who, request)
    try:
        parsed = parse_publisher_did(ID, linker.authority)
    except IdentifierError as exc:
        status, message = (
            (404, Faults.not_found(ID)) if "authority" in str(exc) else (400, Faults.usage(str(exc)))
        )
        return JSONResponse({"error": message}, status_code=status)
    try:
        if parsed.key > MAX_ID or parsed.kind == "granule":
            raise LookupError(ID)
        document = who.catalogue.vo.provenance(
            parsed.kind, parsed.key, authority=linker.authority, locate=linker.locate
        )
    except LookupError:
        return JSONResponse({"error": Faults.not_found(ID)}, status_code=404)
    return JSONResponse(document, media_type=PROV_JSON_MEDIA_TYPE)


@router.get("/hdu", summary="One extension (S/N map, contrast curve) of a Level 2 product file, as FITS")
def hdu(ID: str = "", FILE: int = 0, EXTNAME: str = "", who: Viewer = Depends(viewer)) -> Response:  # noqa: N803
    from astropy.io import fits

    authority = vo_authority(who.state.catalogue.settings)
    try:
        parsed = parse_publisher_did(ID, authority)
    except IdentifierError as exc:
        return JSONResponse({"error": Faults.usage(str(exc))}, status_code=400)
    if EXTNAME not in AUXILIARY_HDUS:
        return JSONResponse(
            {"error": Faults.usage(f"EXTNAME must be one of {', '.join(AUXILIARY_HDUS)}")}, status_code=400
        )
    try:
        if parsed.kind != "product" or not 1 <= parsed.key <= MAX_ID or not 1 <= FILE <= MAX_ID:
            raise NotFound(ID)
        path, info = who.catalogue.product_file(parsed.key, FILE)
        with fits.open(path) as hdus:
            part = fits.HDUList([fits.PrimaryHDU(), hdus[EXTNAME].copy()])
            buffer = io.BytesIO()
            part.writeto(buffer)
    except (NotFound, KeyError, OSError):
        return JSONResponse({"error": Faults.not_found(ID)}, status_code=404)
    name = f"{Path(info['name']).name.split('.')[0]}_{EXTNAME.lower()}.fits"
    return Response(
        buffer.getvalue(),
        media_type="application/fits",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


__all__ = [
    "DATALINK_MEDIA_TYPE",
    "FIELDS",
    "Faults",
    "Link",
    "Linker",
    "error_votable",
    "links_votable",
    "table_votable",
    "router",
]
