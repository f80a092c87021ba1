"""Administration pages (``/admin``) and the PI page (``/pi``).

Administration (admins only, rule A1 of :mod:`hcdc.archive.access`): system health (database
and its schema revision, storage space, workers holding a live lease, queue depth), statistics,
quality control (failed jobs, flagged products, datasets with missing calibrations), accounts
(add, change role, disable/enable: :mod:`hcdc.archive.accounts`, audited there), jobs (cancel,
retry: audited here) and the audit log. Every form carries the CSRF token.

The PI page lists the programmes the signed-in user leads (admins: all) and their products'
release dates; a delay is set from there or from the product page (rule A3).
"""

from __future__ import annotations

import datetime as dt
import shutil
import statistics
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select, text, true

from hcdc.archive import accounts
from hcdc.archive.access import AccessDenied
from hcdc.archive.access_models import ProductReview, Programme
from hcdc.archive.db import current_revision, head_revision, write_transaction
from hcdc.archive.models import Dataset, File, MissingCalibration
from hcdc.archive.pipeline_models import Job
from hcdc.archive.search import Criteria, archive_counts, search_jobs, search_products
from hcdc.pipeline.operations import jobs as jq
from hcdc.web.auth import CSRF_FIELD, Viewer, check_csrf, viewer
from hcdc.web.params import ObjectId
from hcdc.web.portal import PortalError, render
from hcdc.web.review import ReviewError, job_action

router = APIRouter(include_in_schema=False)


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
    now = who.state.clock()
    workers = who.conn.execute(
        select(Job.worker_id, func.count())
        .where(Job.state == "running", Job.lease_expires_at > now)
        .group_by(Job.worker_id)
    ).all()
    out["workers"] = {str(w): int(n) for w, n in workers}
    out["queue"] = jq.count_by_state(engine)
    return out


def processing_times(who: Viewer, last: int = 1000) -> list[dict[str, Any]]:
    """Wall time (s) of the ``last`` finished jobs, per workflow: count, median, mean, longest;
    and how many of them failed. Computed in Python from start and end times (the same on
    SQLite and PostgreSQL)."""
    rows = who.conn.execute(
        select(Job.workflow, Job.state, Job.started_at, Job.finished_at)
        .where(Job.state.in_(("done", "failed")), Job.started_at.is_not(None), Job.finished_at.is_not(None))
        .order_by(Job.finished_at.desc())
        .limit(last)
    ).all()
    per: dict[str, dict[str, Any]] = {}
    for r in rows:
        entry = per.setdefault(r.workflow or "(default)", {"seconds": [], "failed": 0})
        entry["seconds"].append((r.finished_at - r.started_at).total_seconds())
        entry["failed"] += r.state == "failed"
    out = []
    for name, entry in sorted(per.items()):
        seconds = entry["seconds"]
        out.append(
            {
                "workflow": name,
                "jobs": len(seconds),
                "failed": entry["failed"],
                "median_s": statistics.median(seconds),
                "mean_s": statistics.fmean(seconds),
                "max_s": max(seconds),
            }
        )
    return out


def quality(who: Viewer) -> dict[str, Any]:
    """Quality-control figures: failed jobs, flagged products, missing calibrations per night."""
    missing = who.conn.execute(
        select(Dataset.night, func.count(func.distinct(Dataset.id)))
        .join(MissingCalibration, MissingCalibration.dataset_id == Dataset.id)
        .where(MissingCalibration.required)
        .group_by(Dataset.night)
        .order_by(Dataset.night.desc())
        .limit(30)
    ).all()
    flagged = who.conn.execute(
        select(ProductReview.product_id, ProductReview.reason)
        .where(ProductReview.status == "flagged")
        .order_by(ProductReview.product_id.desc())
        .limit(50)
    ).all()
    failed = search_jobs(who.conn, true(), "failed", 0, 20).rows
    return {
        "missing_by_night": [(str(n), int(c)) for n, c in missing],
        "flagged": [dict(r._mapping) for r in flagged],
        "failed_jobs": failed,
        "files": who.conn.scalar(select(func.count()).select_from(File).where(File.is_current)),
    }


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    _require_admin(who)
    return render(
        request,
        who,
        "admin.html",
        health=health(who),
        stats=archive_counts(who.conn, true(), true()),
        qc=quality(who),
        times=processing_times(who),
        users=accounts.list_users(who.conn),
        jobs=search_jobs(who.conn, true(), None, 0, 50).rows,
        audit=accounts.list_audit(who.conn, limit=50),
        roles=("admin", "operator", "user", "public"),
        default_quota=who.state.policy.quota_max_jobs,
    )


async def _form(request: Request, who: Viewer) -> dict[str, str]:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    _require_admin(who)
    return {k: str(v) for k, v in form.items()}


def _act(who: Viewer, action: Any) -> None:
    try:
        with write_transaction(who.state.catalogue.engine) as conn:
            action(conn)
    except accounts.AccountError as exc:
        raise PortalError(422, str(exc)) from None
    except AccessDenied as exc:
        raise PortalError(403, str(exc)) from None


@router.post("/admin/users")
async def admin_add_user(request: Request, who: Viewer = Depends(viewer)) -> Response:
    form = await _form(request, who)
    _act(
        who,
        lambda conn: accounts.add_user(
            conn,
            who.user,
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

    def change(conn: Any) -> None:
        if form.get("role"):
            accounts.set_role(conn, who.user, name, form["role"])
        if form.get("active") in ("true", "false"):
            accounts.set_active(conn, who.user, name, form["active"] == "true")

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
    query = select(Programme.prog_id, Programme.title, Programme.period_months).order_by(Programme.prog_id)
    if not who.user.is_admin:
        query = query.where(Programme.pi_user_id == who.user.id)
    programmes = []
    for row in who.conn.execute(query):
        products = search_products(
            who.conn, Criteria(programme=row.prog_id, limit=500, sort="night"), who.access.products_clause()
        ).rows
        status = accounts.product_status(who.conn, [p["id"] for p in products])
        for p in products:
            p["public_date"] = who.access.product_public_date(p["id"])
            p.update(status[p["id"]])
            try:
                base, latest = who.access.release_window(p["id"])
                p["can_delay"] = bool(who.access.can_delay_release(p["id"], base))
                p["latest"] = latest
            except (LookupError, AccessDenied):
                p["can_delay"], p["latest"] = False, None
        programmes.append({**dict(row._mapping), "products": products})
    today = dt.datetime.combine(who.state.clock().date(), dt.time())
    return render(request, who, "pi.html", programmes=programmes, today=today)


__all__ = ["health", "quality", "router"]
