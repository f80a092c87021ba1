"""The portal's pages (server-rendered with Jinja2; templates in ``hcdc/web/templates``).

Pages never decide rights: they read and write through the request's catalogue facade
(``who.catalogue``; :mod:`hcdc.web.views` wraps it for the pages), which asks
:mod:`hcdc.archive.access`, and link to the API's downloads. Every form that changes something
carries the session's CSRF token; login is rate-limited per client address and account name.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from hcdc import __version__
from hcdc.archive import accounts
from hcdc.archive.access import AccessDenied
from hcdc.archive.search import Criteria, SearchError
from hcdc.web import views
from hcdc.web.actions import ActionError, dataset_workflows, request_reduction
from hcdc.web.auth import (
    CSRF_FIELD,
    Viewer,
    ViewerRoute,
    check_csrf,
    client_address,
    csrf_token,
    state_of,
    viewer,
)
from hcdc.web.params import CRITERIA_FIELDS, ObjectId, criteria_from_mapping

router = APIRouter(include_in_schema=False, route_class=ViewerRoute)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

#: at most this many rows in a CSV / VOTable export
EXPORT_LIMIT = 10_000

#: kind of search -> the catalogue facade's method
SEARCHES = {"products": "search_products", "datasets": "search_datasets", "files": "search_files"}
COLUMNS = {
    "products": [
        "id",
        "level",
        "type",
        "target",
        "instrument",
        "mode",
        "night",
        "setup",
        "prog_id",
        "algorithm",
        "n_detections",
        "contrast_05",
        "created_at",
    ],
    "datasets": ["id", "instrument", "mode", "target", "night", "setup", "prog_id", "n_files", "exposure_s"],
    "files": [
        "id",
        "name",
        "instrument",
        "type",
        "night",
        "target",
        "filter",
        "dit",
        "ndit",
        "prog_id",
        "seeing",
        "tau0",
        "airmass",
        "sha256",
    ],
}
SORTABLE = {
    "products": {"id", "target", "night", "level", "instrument", "created_at"},
    "datasets": {"id", "night", "target", "instrument"},
    "files": {"id", "target", "instrument"},
}
_SORT_KEY = {"created_at": "created", "n_files": "files"}


class PortalError(Exception):
    """An error page with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def render(
    request: Request, who: Viewer | None, name: str, status: int = 200, **context: Any
) -> HTMLResponse:
    # error pages have no Viewer: the principal the request was resolved to, if it got that far
    user = who.user if who is not None else getattr(request.state, "principal", None)
    context.update(
        request=request,
        user=user,
        signed_in=bool(who.signed_in) if who is not None else user is not None and user.member_id is not None,
        csrf=csrf_token(request),
        csrf_field=CSRF_FIELD,
        version=__version__,
    )
    return templates.TemplateResponse(request, name, context, status_code=status)


def error_page(request: Request, exc: PortalError) -> HTMLResponse:
    return render(request, None, "error.html", status=exc.status, message=exc.message)


def _found(call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except views.NotFound as exc:
        raise PortalError(404, str(exc)) from None


# -- home, login ------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def home(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    counts = who.catalogue.stats()
    return render(request, who, "home.html", counts=counts)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, who: Viewer = Depends(viewer), next: str = "/") -> HTMLResponse:
    return render(request, who, "login.html", next=_local(next), error=None)


def _local(target: str) -> str:
    """Only same-site paths as redirect targets (no open redirect)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    name, password = str(form.get("name") or "").strip(), str(form.get("password") or "")
    target = _local(str(form.get("next") or "/"))
    state = state_of(request)
    client = client_address(request)
    wait = state.limiter.retry_after(client, name)
    if wait:
        response = render(
            request,
            None,
            "login.html",
            status=429,
            next=target,
            error=f"too many failed sign-ins: try again in {wait} s",
        )
        response.headers["Retry-After"] = str(wait)
        return response
    with state.catalogue.engine.begin() as conn:
        principal = accounts.authenticate_password(conn, name, password, now=state.clock())
    if principal is None:
        state.limiter.failed(client, name)
        return render(request, None, "login.html", status=401, next=target, error="wrong name or password")
    state.limiter.succeeded(client, name)
    request.session.clear()  # a new session (and CSRF token) at each sign-in: no fixation
    request.session["uid"] = principal.id
    csrf_token(request)
    return RedirectResponse(target, status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    request.session.clear()
    return RedirectResponse("/", status_code=303)


# -- search -----------------------------------------------------------------------------------------


def _criteria(request: Request, kind: str) -> tuple[Criteria | None, str | None]:
    values = dict(request.query_params)
    if values.get("sort"):
        values["sort"] = _SORT_KEY.get(values["sort"], values["sort"])
    try:
        return criteria_from_mapping(values), None
    except SearchError as exc:
        return None, str(exc)


@router.get("/search", response_class=HTMLResponse)
def search(request: Request, who: Viewer = Depends(viewer), kind: str = "products") -> HTMLResponse:
    if kind not in SEARCHES:
        raise PortalError(404, f"no search of {kind!r}; choose products, datasets or files")
    criteria, error = _criteria(request, kind)
    page = None
    if criteria is not None:
        try:
            page = getattr(who.catalogue, SEARCHES[kind])(criteria)
        except SearchError as exc:
            error = str(exc)
    query = {k: v for k, v in request.query_params.items() if k in CRITERIA_FIELDS or k == "kind"}

    def link(**changes: Any) -> str:
        merged = {**query, "kind": kind, **{k: str(v) for k, v in changes.items()}}
        return "/search?" + urlencode({k: v for k, v in merged.items() if v != ""})

    return render(
        request,
        who,
        "search.html",
        kind=kind,
        page=page,
        error=error,
        columns=COLUMNS[kind],
        sortable=SORTABLE[kind],
        values=query,
        link=link,
        criteria=criteria,
    )


@router.get("/search/export")
def export(
    request: Request, who: Viewer = Depends(viewer), kind: str = "products", format: str = "csv"
) -> Response:
    if kind not in SEARCHES or format not in ("csv", "votable"):
        raise PortalError(404, "export kind must be products, datasets or files, format csv or votable")
    values = {k: v for k, v in request.query_params.items() if k not in ("offset", "limit")}
    try:
        criteria = criteria_from_mapping(values, default_limit=1)
        rows: list[dict[str, Any]] = []
        search = getattr(who.catalogue, SEARCHES[kind])
        while len(rows) < EXPORT_LIMIT:
            criteria.offset, criteria.limit = len(rows), min(500, EXPORT_LIMIT - len(rows))
            page = search(criteria)
            rows.extend(page.rows)
            if not page.rows or len(rows) >= page.total:
                break
    except SearchError as exc:
        raise PortalError(422, str(exc)) from None
    columns = COLUMNS[kind]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="hcdc-{kind}-{stamp}.csv"'},
        )
    return Response(
        votable_bytes(rows, columns, kind),
        media_type="application/x-votable+xml",
        headers={"Content-Disposition": f'attachment; filename="hcdc-{kind}-{stamp}.vot"'},
    )


def votable_bytes(rows: list[dict[str, Any]], columns: list[str], kind: str) -> bytes:
    """A VOTable (astropy) of the result rows; missing values masked."""
    import numpy as np
    from astropy.io.votable import from_table
    from astropy.table import MaskedColumn, Table

    table = Table()
    for name in columns:
        values = [row.get(name) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, bool) for v in present):
            data, fill = [bool(v) if v is not None else False for v in values], False
        elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            data, fill = [v if v is not None else 0 for v in values], 0
        elif present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present):
            data, fill = [float(v) if v is not None else np.nan for v in values], np.nan
        else:
            data, fill = [str(v) if v is not None else "" for v in values], ""
        table[name] = MaskedColumn(data, mask=[v is None for v in values], fill_value=fill)
    table.meta["description"] = f"hcdc {kind} search"
    out = io.BytesIO()
    from_table(table).to_xml(out)
    return out.getvalue()


# -- objects ----------------------------------------------------------------------------------------


@router.get("/files/{file_id}", response_class=HTMLResponse)
def file_page(request: Request, file_id: ObjectId, who: Viewer = Depends(viewer)) -> HTMLResponse:
    return render(request, who, "file.html", f=_found(views.file_view, who, file_id))


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(request: Request, dataset_id: ObjectId, who: Viewer = Depends(viewer)) -> HTMLResponse:
    return render(request, who, "dataset.html", d=_found(views.dataset_view, who, dataset_id))


@router.get("/products/{product_id}", response_class=HTMLResponse)
def product_page(request: Request, product_id: ObjectId, who: Viewer = Depends(viewer)) -> HTMLResponse:
    record = _found(views.product_record, who, product_id)  # read once, shown twice
    p = _found(views.product_view, who, product_id, record)
    charts = _found(views.product_charts, who, product_id, p["files"])
    tree = _found(views.provenance_tree, who, product_id, 0, record)
    delay = None
    if who.signed_in and p.get("public_date") is not None:
        try:
            base, latest = who.access.release_window(product_id)
            if who.access.can_delay_release(product_id, base):
                delay = {"scheduled": base, "latest": latest}
        except (LookupError, AccessDenied):
            delay = None
    return render(
        request,
        who,
        "product.html",
        p=p,
        tree=tree,
        delay=delay,
        charts_json=json.dumps(charts) if charts else None,
    )


@router.post("/products/{product_id}/delay")
async def delay_release(request: Request, product_id: ObjectId, who: Viewer = Depends(viewer)) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    _found(views.product_view, who, product_id)
    try:
        until = dt.datetime.fromisoformat(str(form.get("until") or ""))
    except ValueError:
        raise PortalError(422, "the new release date must be a date YYYY-MM-DD") from None
    reason = str(form.get("reason") or "").strip()
    try:
        who.catalogue.delay_release(product_id, until, reason)
    except (AccessDenied, accounts.AccountError) as exc:
        raise PortalError(403 if isinstance(exc, AccessDenied) else 422, str(exc)) from None
    return RedirectResponse(_local(str(form.get("next") or f"/products/{product_id}")), status_code=303)


# -- my data, reductions ----------------------------------------------------------------------------


@router.get("/my", response_class=HTMLResponse)
def my_data(request: Request, who: Viewer = Depends(viewer)) -> Response:
    if not who.signed_in:
        return RedirectResponse("/login?next=/my", status_code=303)
    mine = who.catalogue.my_programmes()
    pi, coi = mine["pi"], mine["coi"]
    programmes = sorted(set(pi) | set(coi))
    products = []
    for prog in programmes:
        products.extend(who.catalogue.search_products(Criteria(programme=prog, limit=200)).rows)
    jobs = who.catalogue.search_jobs(None, 0, 50).rows
    return render(request, who, "my.html", pi=pi, coi=coi, products=products, jobs=jobs)


@router.get("/datasets/{dataset_id}/reduce", response_class=HTMLResponse)
def reduce_form(request: Request, dataset_id: ObjectId, who: Viewer = Depends(viewer)) -> Response:
    if not who.signed_in:
        return RedirectResponse(f"/login?next=/datasets/{dataset_id}/reduce", status_code=303)
    d = _found(views.dataset_view, who, dataset_id)
    decision = who.access.can_submit_job(dataset_id)
    return render(
        request,
        who,
        "reduce.html",
        d=d,
        workflows=dataset_workflows(),
        decision=decision,
        error=None,
        defaults=_defaults(),
    )


def _defaults() -> dict[str, dict[str, str]]:
    """The text each parameter field starts with, per workflow (the workflow's default)."""
    out: dict[str, dict[str, str]] = {}
    for wf in dataset_workflows():
        fields = out.setdefault(wf["name"], {})
        for node in wf["nodes"]:
            for p in node["parameters"]:
                value = p["default"]
                fields[f"{node['name']}.{p['name']}"] = (
                    json.dumps(value)
                    if isinstance(value, dict | list)
                    else ("" if value is None else str(value))
                )
    return out


@router.post("/datasets/{dataset_id}/reduce", response_class=HTMLResponse)
async def reduce(request: Request, dataset_id: ObjectId, who: Viewer = Depends(viewer)) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    if not who.signed_in:
        raise PortalError(401, "sign in to request a reduction")
    workflow = str(form.get("workflow") or "")
    defaults = _defaults().get(workflow, {})
    parameters = {}
    prefix = f"{workflow}:"
    for key, value in form.multi_items():
        if key.startswith(prefix):
            name, text = key[len(prefix) :], str(value).strip()
            if name in defaults and text != defaults[name]:
                parameters[name] = text if text else None
    try:
        job_id = request_reduction(who, dataset_id, workflow, parameters)
    except LookupError as exc:
        raise PortalError(404, str(exc)) from None
    except (ActionError, AccessDenied) as exc:
        d = _found(views.dataset_view, who, dataset_id)
        return render(
            request,
            who,
            "reduce.html",
            status=422 if isinstance(exc, ActionError) else 403,
            d=d,
            workflows=dataset_workflows(),
            decision=who.access.can_submit_job(dataset_id),
            error=str(exc),
            defaults=defaults and _defaults(),
        )
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: ObjectId, who: Viewer = Depends(viewer)) -> HTMLResponse:
    j = _found(views.job_view, who, job_id)
    return render(request, who, "job.html", j=j, log=views.jsonable(who.catalogue.job_log(job_id)))


__all__ = ["PortalError", "error_page", "router", "votable_bytes"]
