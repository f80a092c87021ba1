"""TAP 1.1 service at ``/tap``: synchronous ADQL queries, VOSI capabilities, availability and tables.

Who asks: ``Authorization: Basic`` (account name and password), ``Authorization: Bearer`` (a
personal token, as the REST API) or nobody (the public account). Every query is compiled by
:func:`hcdc.archive.adql.compile_adql` with ``ivoa.obscore`` replaced by the caller's
rights-filtered subquery (``archive/access.py`` decides), run in a read-only transaction with a
statement timeout, and truncated at MAXREC (with the OVERFLOW INFO).

Parameters (names case-insensitive, unknown ones ignored): ``REQUEST=doQuery`` (optional),
``LANG`` = ADQL, ADQL-2.0 or ADQL-2.1, ``QUERY``, ``MAXREC`` (default 10 000, at most 1 000 000;
0 returns the metadata only), ``FORMAT``/``RESPONSEFORMAT`` (see :data:`hcdc.web.vo.votable.FORMATS`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine

from hcdc.archive.access import AccessContext, Policy, Principal
from hcdc.archive.accounts import authenticate_password
from hcdc.archive.adql import AdqlError
from hcdc.archive.catalogue_vo import VoCatalogue
from hcdc.archive.identifiers import vo_authority
from hcdc.archive.obscore import ColumnSpec
from hcdc.archive.tap_query import STATEMENT_TIMEOUT_S, TapRows, execute_adql
from hcdc.archive.tap_query import table_sources as table_sources  # re-exported
from hcdc.archive.tap_schema import PUBLISHED_TABLES
from hcdc.archive.tap_upload import (
    MAX_UPLOAD_BYTES,
    UploadedTable,
    UploadError,
    parse_upload_parameter,
    read_upload,
)
from hcdc.web.auth import WebState, client_address, resolve_principal, state_of
from hcdc.web.vo.votable import Field, FormatError, error_document, field_for_values, render, serialization_of

DEFAULT_MAXREC = 10_000
HARD_MAXREC = 1_000_000
LANGS = ("ADQL", "ADQL-2.0", "ADQL-2.1")
VOTABLE = "application/x-votable+xml"

router = APIRouter()


def service_base(request: Request) -> str:
    """The absolute URL under which the VO services are served (no trailing slash)."""
    return str(request.base_url).rstrip("/")


# --------------------------------------------------------------------------------------------
# who asks


def vo_principal(request: Request, state: WebState) -> Principal:
    """HTTP Basic (name:password), else the web app's bearer token / session / public account."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            name, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name = password = ""
        client = client_address(request)
        wait = state.limiter.retry_after(client, name)  # the portal's limit on guessing passwords
        if wait:
            raise HTTPException(
                429, f"too many failed sign-ins: try again in {wait} s", {"Retry-After": str(wait)}
            )
        with state.catalogue.engine.begin() as conn:
            principal = authenticate_password(conn, name, password, now=state.clock()) if name else None
        if principal is None:
            state.limiter.failed(client, name)
            raise HTTPException(
                401, "wrong account name or password", {"WWW-Authenticate": 'Basic realm="hcdc"'}
            )
        state.limiter.succeeded(client, name)
        return principal
    with state.catalogue.engine.connect() as conn:  # resolve_principal reads (and commits a token's use)
        principal, _ = resolve_principal(request, state, conn)
    return principal


# --------------------------------------------------------------------------------------------
# queries


@contextmanager
def open_vo(state: WebState, user: Principal) -> Iterator[VoCatalogue]:
    """The VO part of the catalogue facade for ``user`` (:attr:`UserCatalogue.vo`), on its own
    read connection and the application's clock and policy; closed on exit."""
    with state.catalogue.engine.connect() as conn:
        access = AccessContext(conn, user, state.clock(), state.policy, memo=True)
        yield state.catalogue.for_access(access).vo


@contextmanager
def vo_catalogue(request: Request) -> Iterator[VoCatalogue]:
    """:func:`open_vo` for the caller of ``request`` (:func:`vo_principal`)."""
    state = state_of(request)
    with open_vo(state, vo_principal(request, state)) as vo:
        yield vo


def _field(name: str, spec: ColumnSpec | None, values: list[Any]) -> Field:
    if spec is None:
        return field_for_values(name, values)
    return Field(
        name, spec.datatype, spec.arraysize, spec.unit, spec.ucd, spec.utype, spec.xtype, spec.description
    )


@dataclass
class QueryResult:
    fields: list[Field]
    rows: list[tuple[Any, ...]]
    overflow: bool


def query_result(answer: TapRows) -> QueryResult:
    """The VOTable FIELDs of an answer (published metadata, else guessed from the values)."""
    fields = [
        _field(name, spec, [row[i] for row in answer.rows])
        for i, (name, spec) in enumerate(zip(answer.names, answer.columns, strict=True))
    ]
    return QueryResult(fields, answer.rows, answer.overflow)


def run_adql(
    engine: Engine,
    query: str,
    user: Principal,
    now: dt.datetime,
    *,
    maxrec: int,
    authority: str,
    base_url: str,
    policy: Policy,
    timeout_s: float = STATEMENT_TIMEOUT_S,
    uploads: Sequence[UploadedTable] = (),
) -> QueryResult:
    """One ADQL query for ``user`` on ``engine`` with its VOTable FIELDs, for tools and tests
    (benchmarks/vo_cone.py); the routes run theirs through the facade
    (:meth:`hcdc.archive.catalogue_vo.VoCatalogue.run_adql`)."""
    return query_result(
        execute_adql(
            engine,
            query,
            user,
            now,
            maxrec=maxrec,
            authority=authority,
            base_url=base_url,
            policy=policy,
            timeout_s=timeout_s,
            uploads=uploads,
        )
    )


def tap_parameters(request: Request, form: Any | None) -> dict[str, str]:
    """Request parameters, names upper-cased (TAP: case-insensitive names); form values win.

    Repeated ``UPLOAD`` parameters are joined with ``;`` (DALI allows both forms); multipart file
    parts are not parameters (inline uploads, read by :func:`form_parts`)."""
    items = [(k.upper(), v) for k, v in request.query_params.multi_items()]
    if form:
        pairs = form.multi_items() if hasattr(form, "multi_items") else form.items()
        items += [(k.upper(), v) for k, v in pairs if isinstance(v, str)]
    params: dict[str, str] = {}
    uploads: list[str] = []
    for key, value in items:
        if key == "UPLOAD":
            uploads.append(value)
        else:
            params[key] = value
    if uploads:
        params["UPLOAD"] = ";".join(u for u in uploads if u.strip())
    return params


#: reads the bytes of one multipart part by name (None when absent)
PartReader = Callable[[str], bytes | None]


def form_parts(form: Any | None) -> PartReader:
    """A :data:`PartReader` over a parsed multipart form (file parts and, as UTF-8, text parts)."""

    def read(name: str) -> bytes | None:
        if not form:
            return None
        value = form.get(name)
        if value is None:  # part names are case-insensitive, as TAP parameter names
            value = next((v for k, v in form.multi_items() if k.lower() == name.lower()), None)
        if value is None:
            return None
        if isinstance(value, str):
            return value.encode("utf-8")
        value.file.seek(0)
        return value.file.read(MAX_UPLOAD_BYTES + 1)

    return read


def load_uploads(
    upload: str | None, parts: PartReader, *, vo: VoCatalogue, base_url: str
) -> list[UploadedTable]:
    """The tables of the UPLOAD parameter: inline parts (``param:X``) or results of the caller's own
    async jobs on this service (``{base}/tap/async/JOB/results/result``); any other URL is refused
    (the server does not reach other hosts). UploadError names the table and the reason."""
    if not upload:
        return []
    tables, total = [], 0
    for ref in parse_upload_parameter([upload]):
        part = ref.inline_part
        if part is not None:
            data = parts(part)
            if data is None:
                raise UploadError(
                    f"UPLOAD {ref.name}: the request has no part named {part!r} "
                    "(send the VOTable as a multipart/form-data part of that name)"
                )
        else:
            data = _own_job_result(ref.uri, vo=vo, base_url=base_url)
            if data is None:
                raise UploadError(
                    f"UPLOAD {ref.name}: {ref.uri!r} cannot be read: this server does not fetch other "
                    f"hosts; send the table inline (UPLOAD={ref.name},param:{ref.name} with a multipart part "
                    f"{ref.name!r}) or name a completed result of your own jobs here "
                    f"({base_url}/tap/async/JOB/results/result)"
                )
        total += len(data)
        if total > MAX_UPLOAD_BYTES:
            raise UploadError(f"the uploaded tables exceed the limit of {MAX_UPLOAD_BYTES} bytes together")
        tables.append(read_upload(ref.name, data))
    return tables


def _own_job_result(uri: str, *, vo: VoCatalogue, base_url: str) -> bytes | None:
    prefix, suffix = f"{base_url}/tap/async/", "/results/result"
    if not (uri.startswith(prefix) and uri.endswith(suffix)):
        return None
    job_id = uri[len(prefix) : -len(suffix)]
    if not job_id or "/" in job_id:
        return None
    return vo.result_bytes(job_id)  # the caller's own completed job only


def check_parameters(params: Mapping[str, str]) -> tuple[str, int, str]:
    """(query, maxrec, serialization) of a TAP request, or AdqlError naming the bad parameter."""
    lang = params.get("LANG")
    if lang is None:
        raise AdqlError("LANG is missing: use LANG=ADQL")
    if lang.upper() not in LANGS:
        raise AdqlError(f"unsupported LANG {lang!r}: use one of {', '.join(LANGS)}")
    query = params.get("QUERY")
    if not query:
        raise AdqlError("QUERY is missing")
    maxrec = params.get("MAXREC", str(DEFAULT_MAXREC))
    try:
        limit = int(maxrec)
    except ValueError:
        raise AdqlError(f"MAXREC must be an integer, not {maxrec!r}") from None
    if limit < 0:
        raise AdqlError("MAXREC must not be negative")
    try:
        serialization = serialization_of(params.get("RESPONSEFORMAT") or params.get("FORMAT"))
    except FormatError as exc:
        raise AdqlError(str(exc)) from None
    return query, min(limit, HARD_MAXREC), serialization


def error_response(message: str, status: int = 400) -> Response:
    return Response(error_document(message), status_code=status, media_type=VOTABLE)


async def read_form(request: Request) -> Any | None:
    """The POST form (multipart parts up to the upload limit), None for GET; UploadError when the
    body is larger than the upload limit allows."""
    if request.method != "POST":
        return None
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_UPLOAD_BYTES + 1_000_000:
        raise UploadError(f"request body of {length} bytes: uploads are limited to {MAX_UPLOAD_BYTES} bytes")
    return await request.form(max_part_size=MAX_UPLOAD_BYTES + 1)


def execute_request(request: Request, params: Mapping[str, str], parts: PartReader) -> tuple[bytes, str]:
    """Run a sync TAP request for the caller, through the catalogue facade; (body, media type)
    or AdqlError."""
    state = state_of(request)
    with vo_catalogue(request) as vo:
        query, maxrec, serialization = check_parameters(params)
        base = service_base(request)
        uploads = load_uploads(params.get("UPLOAD"), parts, vo=vo, base_url=base)
        answer = vo.run_adql(
            query,
            maxrec=maxrec,
            authority=vo_authority(state.catalogue.settings),
            base_url=base,
            uploads=uploads,
        )
    result = query_result(answer)
    return render(result.fields, result.rows, serialization, overflow=result.overflow)


@router.api_route("/tap/sync", methods=["GET", "POST"], include_in_schema=False)
async def tap_sync(request: Request) -> Response:
    try:
        form = await read_form(request)
    except UploadError as exc:
        return error_response(str(exc), 413)
    params = tap_parameters(request, form)
    try:
        body, media_type = execute_request(request, params, form_parts(form))
    except AdqlError as exc:
        return error_response(str(exc))
    return Response(body, media_type=media_type)


# --------------------------------------------------------------------------------------------
# VOSI


@router.get("/tap/availability", include_in_schema=False)
def tap_availability() -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<avl:availability xmlns:avl="http://www.ivoa.net/xml/VOSIAvailability/v1.0">'
        "<avl:available>true</avl:available>"
        "<avl:note>hcdc TAP service is accepting queries</avl:note></avl:availability>\n"
    )
    return Response(body, media_type="text/xml")


OUTPUT_FORMATS = (
    ("application/x-votable+xml", "votable", "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2"),
    (
        "application/x-votable+xml;serialization=tabledata",
        "votable/td",
        "ivo://ivoa.net/std/TAPRegExt#output-votable-td",
    ),
    ("text/csv;header=present", "csv", None),
    ("application/json", "json", None),
)
GEOMETRY_FORMS = (
    "POINT",
    "CIRCLE",
    "POLYGON",
    "BOX",
    "CONTAINS",
    "INTERSECTS",
    "DISTANCE",
    "AREA",
    "COORD1",
    "COORD2",
)


def capabilities_document(base: str) -> str:
    tap = f"{base}/tap"

    def vosi(standard: str, path: str) -> str:
        return (
            f'<capability standardID="ivo://ivoa.net/std/VOSI#{standard}">'
            '<interface xsi:type="vs:ParamHTTP">'
            f'<accessURL use="full">{escape(tap)}/{path}</accessURL></interface>'
            "</capability>"
        )

    formats = "".join(
        f"<outputFormat{' ivo-id=' + quoteattr(ivo) if ivo else ''}><mime>{escape(mime)}</mime>"
        f"<alias>{alias}</alias></outputFormat>"
        for mime, alias, ivo in OUTPUT_FORMATS
    )
    geometry = "".join(f"<feature><form>{form}</form></feature>" for form in GEOMETRY_FORMS)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<cap:capabilities xmlns:cap="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
        'xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0" '
        'xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0" '
        'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">'
        '<interface role="std" version="1.1" xsi:type="vs:ParamHTTP">'
        f'<accessURL use="full">{escape(tap)}</accessURL></interface>'
        '<dataModel ivo-id="ivo://ivoa.net/std/ObsCore#core-1.1">ObsCore-1.1</dataModel>'
        "<language><name>ADQL</name>"
        '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>'
        '<version ivo-id="ivo://ivoa.net/std/ADQL#v2.1">2.1</version>'
        "<description>ADQL 2.1 parsed by sqlglot; geometry by pgSphere (PostgreSQL) "
        "or hcdc's functions (SQLite)</description>"
        f'<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">{geometry}</languageFeatures>'
        '<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-string">'
        "<feature><form>LOWER</form></feature><feature><form>UPPER</form></feature>"
        "<feature><form>ILIKE</form></feature></languageFeatures>"
        '<languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adql-offset">'
        "<feature><form>OFFSET</form></feature></languageFeatures>"
        "</language>"
        f"{formats}"
        '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-inline"/>'
        # mandatory with uploads (TAPRegExt §2.4); only this service's own job results are read
        '<uploadMethod ivo-id="ivo://ivoa.net/std/TAPRegExt#upload-http"/>'
        f"<retentionPeriod><default>{7 * 86400}</default><hard>{30 * 86400}</hard></retentionPeriod>"
        f"<executionDuration><default>{STATEMENT_TIMEOUT_S}</default>"
        f"<hard>{STATEMENT_TIMEOUT_S}</hard></executionDuration>"
        f'<outputLimit><default unit="row">{DEFAULT_MAXREC}</default>'
        f'<hard unit="row">{HARD_MAXREC}</hard></outputLimit>'
        f'<uploadLimit><hard unit="byte">{MAX_UPLOAD_BYTES}</hard></uploadLimit>'
        "</capability>"
        f"{vosi('capabilities', 'capabilities')}{vosi('availability', 'availability')}"
        f"{vosi('tables-1.1', 'tables')}"
        '<capability standardID="ivo://ivoa.net/std/DALI#examples">'
        '<interface xsi:type="vr:WebBrowser">'
        f'<accessURL use="full">{escape(tap)}/examples</accessURL></interface>'
        "</capability>"
        "</cap:capabilities>\n"
    )


@router.get("/tap/capabilities", include_in_schema=False)
def tap_capabilities(request: Request) -> Response:
    return Response(capabilities_document(service_base(request)), media_type="text/xml")


def _column_xml(c: ColumnSpec) -> str:
    parts = [f"<column><name>{escape(c.name)}</name>"]
    if c.description:
        parts.append(f"<description>{escape(c.description)}</description>")
    if c.unit:
        parts.append(f"<unit>{escape(c.unit)}</unit>")
    if c.ucd:
        parts.append(f"<ucd>{escape(c.ucd)}</ucd>")
    if c.utype:
        parts.append(f"<utype>{escape(c.utype)}</utype>")
    size = f" arraysize={quoteattr(c.arraysize)}" if c.arraysize else ""
    xtype = f" extendedType={quoteattr(c.xtype)}" if c.xtype else ""
    parts.append(f'<dataType xsi:type="vs:VOTableType"{size}{xtype}>{c.datatype}</dataType>')
    for flag, on in (("indexed", c.indexed), ("primary", c.principal), ("std", c.std)):
        if on:
            parts.append(f"<flag>{flag}</flag>")
    parts.append("</column>")
    return "".join(parts)


def tables_document(detail_min: bool = False, only: str | None = None) -> str:
    schemas: dict[str, list[str]] = {}
    for table in PUBLISHED_TABLES:
        if only is not None and table.qualified.lower() != only.lower():
            continue
        columns = "" if detail_min else "".join(_column_xml(c) for c in table.columns)
        if not detail_min:
            columns += "".join(
                f"<foreignKey><targetTable>{escape(target)}</targetTable><fkColumn><fromColumn>{escape(a)}"
                f"</fromColumn><targetColumn>{escape(b)}</targetColumn></fkColumn></foreignKey>"
                for _key, target, a, b in table.foreign_keys
            )
        utype = f"<utype>{escape(table.utype)}</utype>" if table.utype else ""
        schemas.setdefault(table.schema, []).append(
            f'<table type="table"><name>{escape(table.qualified)}</name>'
            f"<description>{escape(table.description)}</description>{utype}{columns}</table>"
        )
    ns = (
        'xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
        'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
    )
    if only is not None:
        tables = [t for ts in schemas.values() for t in ts]
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + tables[0].replace(
            "<table ", f"<vosi:table {ns} ", 1
        ).replace("</table>", "</vosi:table>")
    body = "".join(
        f"<schema><name>{escape(name)}</name>{''.join(tables)}</schema>" for name, tables in schemas.items()
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<vosi:tableset {ns}>{body}</vosi:tableset>\n'


@router.get("/tap/tables", include_in_schema=False)
def tap_tables(request: Request) -> Response:
    detail = request.query_params.get("detail", "").lower()
    return Response(tables_document(detail_min=detail == "min"), media_type="text/xml")


@router.get("/tap/tables/{name}", include_in_schema=False)
def tap_table(name: str) -> Response:
    if not any(t.qualified.lower() == name.lower() for t in PUBLISHED_TABLES):
        raise HTTPException(404, f"no table {name!r} (see /tap/tables)")
    return Response(tables_document(only=name), media_type="text/xml")


__all__ = [
    "DEFAULT_MAXREC",
    "HARD_MAXREC",
    "QueryResult",
    "capabilities_document",
    "check_parameters",
    "execute_request",
    "form_parts",
    "load_uploads",
    "open_vo",
    "query_result",
    "read_form",
    "router",
    "run_adql",
    "service_base",
    "table_sources",
    "tables_document",
    "vo_catalogue",
    "vo_principal",
]
