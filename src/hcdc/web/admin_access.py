"""Administration of who may see what: groups (``/admin/groups``), programmes
(``/admin/programmes``) and delegations (``/admin/delegations``).

Admins only (rule A1 of :mod:`hcdc.archive.access`, checked here to refuse the page, by the
administration sub-facade ``who.catalogue.admin()`` that every read and change goes through, and
again by :mod:`hcdc.archive.accounts` inside every change, which also writes the audit log). Every
form carries the CSRF token; a refused or invalid change answers an error page (403, 422) and
changes nothing (one transaction).

* Groups: create (name, description), add and remove members.
* Programmes: create or update (ESO ``prog_id``, PI, co-Is, proprietary period, title, survey
  group) and import a CSV file (columns of :data:`hcdc.archive.accounts.CSV_COLUMNS`; all or
  nothing).
* Delegations: grant a user a programme or one dataset (optional expiry, reason), revoke.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from hcdc.archive import accounts
from hcdc.web.admin import _act, _form, _require_admin
from hcdc.web.auth import CSRF_FIELD, Viewer, ViewerRoute, check_csrf, viewer
from hcdc.web.params import ObjectId
from hcdc.web.portal import PortalError, render

router = APIRouter(include_in_schema=False, route_class=ViewerRoute)

#: the largest programme CSV the portal accepts (bytes): a programme is one short line
MAX_CSV_BYTES = 1 << 20


def _names(raw: str) -> list[str]:
    """User names separated by commas, semicolons or spaces."""
    return [n for n in re.split(r"[,;\s]+", raw) if n]


def _page(request: Request, who: Viewer, name: str, **context: Any) -> HTMLResponse:
    _require_admin(who)
    users = [u["name"] for u in who.catalogue.admin().users() if u["role"] != "public"]
    return render(request, who, name, users=users, **context)


@router.get("/admin/groups", response_class=HTMLResponse)
def groups_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    _require_admin(who)
    return _page(request, who, "admin_groups.html", groups=who.catalogue.admin().groups())


@router.post("/admin/groups")
async def add_group(request: Request, who: Viewer = Depends(viewer)) -> Response:
    form = await _form(request, who)
    _act(
        who,
        lambda admin: admin.add_group(
            form.get("name", "").strip(), form.get("description", "").strip() or None
        ),
    )
    return RedirectResponse("/admin/groups", status_code=303)


@router.post("/admin/groups/{name}/members")
async def group_members(request: Request, name: str, who: Viewer = Depends(viewer)) -> Response:
    form = await _form(request, who)
    add, remove = _names(form.get("add", "")), _names(form.get("remove", ""))
    if not add and not remove:
        raise PortalError(422, "name at least one user to add or remove")
    _act(who, lambda admin: admin.set_group_members(name, add, remove))
    return RedirectResponse("/admin/groups", status_code=303)


@router.get("/admin/programmes", response_class=HTMLResponse)
def programmes_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    _require_admin(who)
    return _page(
        request,
        who,
        "admin_programmes.html",
        programmes=who.catalogue.admin().programmes(),
        groups=[g["name"] for g in who.catalogue.admin().groups()],
        csv_columns=accounts.CSV_COLUMNS,
    )


def _period(raw: str) -> int | None:
    if not raw.strip():
        return None
    try:
        return int(raw)
    except ValueError:
        raise PortalError(422, f"proprietary period must be a whole number of months, got {raw!r}") from None


@router.post("/admin/programmes")
async def save_programme(request: Request, who: Viewer = Depends(viewer)) -> Response:
    form = await _form(request, who)
    spec = accounts.ProgrammeSpec(
        prog_id=form.get("prog_id", ""),
        pi=form.get("pi", "").strip() or None,
        cois=tuple(_names(form.get("cois", ""))),
        period_months=_period(form.get("period_months", "")),
        title=form.get("title", "").strip() or None,
        group=form.get("group", "").strip() or None,
    )
    replace = form.get("replace") == "true"
    _act(who, lambda admin: admin.save_programme(spec, replace=replace))
    return RedirectResponse("/admin/programmes", status_code=303)


@router.post("/admin/programmes/import")
async def import_programmes(request: Request, who: Viewer = Depends(viewer)) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    _require_admin(who)
    upload = form.get("csv")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise PortalError(422, "choose a CSV file of programmes to import")
    data = await upload.read(MAX_CSV_BYTES + 1)
    source = f"uploaded file {upload.filename}"
    if len(data) > MAX_CSV_BYTES:
        raise PortalError(422, f"{source}: larger than {MAX_CSV_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PortalError(422, f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        specs = accounts.parse_programme_csv(text, source)
    except accounts.AccountError as exc:
        raise PortalError(422, str(exc)) from None
    _act(who, lambda admin: admin.import_programmes(specs, source))
    return RedirectResponse("/admin/programmes", status_code=303)


@router.get("/admin/delegations", response_class=HTMLResponse)
def delegations_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    _require_admin(who)
    return _page(
        request,
        who,
        "admin_delegations.html",
        delegations=who.catalogue.admin().delegations(),
        programmes=[p["prog_id"] for p in who.catalogue.admin().programmes()],
    )


def _expiry(raw: str) -> dt.datetime | None:
    """An expiry date ``YYYY-MM-DD`` (UTC, end of that day is not implied: the delegation ends at
    00:00 UTC of that date), or None."""
    if not raw.strip():
        return None
    try:
        return dt.datetime.combine(dt.date.fromisoformat(raw.strip()), dt.time())
    except ValueError:
        raise PortalError(422, f"expiry must be a date YYYY-MM-DD, got {raw!r}") from None


def _dataset_id(raw: str) -> int | None:
    if not raw.strip():
        return None
    if not raw.strip().isdigit() or int(raw) > 2**31 - 1:
        raise PortalError(422, f"dataset must be a catalogue id (a whole number), got {raw!r}")
    return int(raw)


@router.post("/admin/delegations")
async def grant(request: Request, who: Viewer = Depends(viewer)) -> Response:
    form = await _form(request, who)
    prog_id = form.get("prog_id", "").strip() or None
    dataset_id = _dataset_id(form.get("dataset_id", ""))
    expires = _expiry(form.get("expires", ""))
    _act(
        who,
        lambda admin: admin.delegate(
            form.get("grantee", "").strip(),
            prog_id=prog_id,
            dataset_id=dataset_id,
            expires_at=expires,
            reason=form.get("reason", "").strip() or None,
        ),
    )
    return RedirectResponse("/admin/delegations", status_code=303)


@router.post("/admin/delegations/{delegation_id}/revoke")
async def revoke(request: Request, delegation_id: ObjectId, who: Viewer = Depends(viewer)) -> Response:
    await _form(request, who)
    _act(who, lambda admin: admin.revoke_delegation(delegation_id))
    return RedirectResponse("/admin/delegations", status_code=303)


__all__ = ["MAX_CSV_BYTES", "router"]
