"""Administration pages (``/admin``) and the PI page (``/pi``).

Administration (admins only, rule A1 of :mod:`hcdc.archive.access`): system health (database
and its schema revision, storage space, workers holding a live lease, queue depth), statistics,
quality control (failed jobs, flagged products, datasets with missing calibrations), accounts
(add, change role, disable/enable: :mod:`hcdc.archive.accounts`, audited there), jobs (cancel,
retry: audited by the facade) and the audit log. Every form carries the CSRF token. The pages
read and write through the administration sub-facade (``who.catalogue.admin()``,
:class:`hcdc.archive.catalogue_admin.AdminCatalogue`) and the processing queue of the request's
:class:`~hcdc.pipeline.operations.catalogue.ProcessingCatalogue`.

The PI page lists the programmes the signed-in user leads (admins: all) and their products'
release dates; a delay is set from there or from the product page (rule A3).
"""

from __future__ import annotations

import datetime as dt
import shutil
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import text

from hcdc.archive.access import AccessDenied
from hcdc.archive.accounts import AccountError
from hcdc.archive.catalogue import AdminCatalogue
from hcdc.archive.db import current_revision, head_revision
from hcdc.archive.search import Criteria
from hcdc.web.auth import CSRF_FIELD, Viewer, ViewerRoute, check_csrf, viewer
from hcdc.web.params import ObjectId
from hcdc.web.portal import PortalError, render
from hcdc.web.review import ReviewError, job_action

router = APIRouter(include_in_schema=False, route_class=ViewerRoute)


def _require_admin(who: Viewer) -> None:
    decision = who.access.can_manage()
    if not decision:
        raise PortalError(403 if who.signed_in else 401, f"not allowed ({decision.rule}): {decision.reason}")


def health(who: Viewer) -> dict[str, Any]:
    """Database, schema, storage, workers and queue, as a person reads them."""
    engine = who.state.catalogue.engine
    out: dict[str, Any] = {}
    try:
        who.conn.execute(text("SELECT 1"))
        out["database"] = f"reachable ({engine.dialect.name})"
        revision, head = current_revision(engine), head_revision()
        out["schema"] = f"{revision}" + ("" if revision == head else f" (expected {head}: run hcdc init)")
    except Exception as exc:  # noqa: BLE001 - a health page reports, it does not fail
        out["database"] = f"unreachable: {exc}"
    storage = who.state.catalogue.storage_root
    try:
        usage = shutil.disk_usage(storage)
        out["storage"] = f"{storage}: {usage.free / 2**30:.1f} GiB free of {usage.total / 2**30:.1f} GiB"
    except OSError as exc:
        out["storage"] = f"{storage}: {exc}"
    out["workers"] = who.catalogue.admin().workers(who.state.clock())
    out["queue"] = who.catalogue.queue_counts()
    return out


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    _require_admin(who)
    admin = who.catalogue.admin()
    return render(
        request,
        who,
        "admin.html",
        health=health(who),
        stats=admin.stats(),
        qc=admin.quality(),
        times=admin.processing_times(),
        users=admin.users(),
        jobs=admin.search_jobs(None, 0, 50).rows,
        audit=admin.audit_log(limit=50),
        roles=("admin", "operator", "user", "public"),
        default_quota=who.state.policy.quota_max_jobs,
    )


async def _form(request: Request, who: Viewer) -> dict[str, str]:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    _require_admin(who)
    return {k: str(v) for k, v in form.items()}


def _act(who: Viewer, action: Any) -> None:
    """Run ``action(admin)``, a write through the administration sub-facade; refusals 403/422."""
    try:
        action(who.catalogue.admin())
    except AccountError as exc:
        raise PortalError(422, str(exc)) from None
    except AccessDenied as exc:
        raise PortalError(403, str(exc)) from None


@router.post("/admin/users")
async def admin_add_user(request: Request, who: Viewer = Depends(viewer)) -> Response:
    form = await _form(request, who)
    _act(
        who,
        lambda admin: admin.add_user(
            form.get("name", "").strip(),
            role=form.get("role", "user"),
            password=form.get("password") or None,
            full_name=form.get("full_name") or None,
            email=form.get("email") or None,
        ),
    )
    return RedirectResponse("/admin#users", status_code=303)


@router.post("/admin/users/{name}")
async def admin_change_user(request: Request, name: str, who: Viewer = Depends(viewer)) -> Response:
    form = await _form(request, who)

    def change(admin: AdminCatalogue) -> None:
        active = form["active"] == "true" if form.get("active") in ("true", "false") else None
        admin.change_user(name, role=form.get("role") or None, active=active)

    _act(who, change)
    return RedirectResponse("/admin#users", status_code=303)


@router.post("/admin/jobs/{job_id}/{action}")
async def admin_job(
    request: Request, job_id: ObjectId, action: str, who: Viewer = Depends(viewer)
) -> Response:
    await _form(request, who)
    try:
        job_action(who, job_id, action)  # audited there
    except ReviewError as exc:
        raise PortalError(exc.status, exc.message) from None
    return RedirectResponse("/admin#jobs", status_code=303)


# -- the PI page ------------------------------------------------------------------------------------


@router.get("/pi", response_class=HTMLResponse)
def pi_page(request: Request, who: Viewer = Depends(viewer)) -> Response:
    if not who.signed_in:
        return RedirectResponse("/login?next=/pi", status_code=303)
    programmes = []
    for row in who.catalogue.led_programmes():
        products = who.catalogue.search_products(
            Criteria(programme=row["prog_id"], limit=500, sort="night")
        ).rows
        status = who.catalogue.product_status([p["id"] for p in products])
        for p in products:
            p["public_date"] = who.access.product_public_date(p["id"])
            p.update(status[p["id"]])
            try:
                base, latest = who.access.release_window(p["id"])
                p["can_delay"] = bool(who.access.can_delay_release(p["id"], base))
                p["latest"] = latest
            except (LookupError, AccessDenied):
                p["can_delay"], p["latest"] = False, None
        programmes.append({**row, "products": products})
    today = dt.datetime.combine(who.state.clock().date(), dt.time())
    return render(request, who, "pi.html", programmes=programmes, today=today)


__all__ = ["health", "router"]
