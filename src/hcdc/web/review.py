"""What the data-centre team does from the web besides the admin page: validate or flag a product
(rule A4, on the product page and ``POST /api/v1/products/{id}/review``), set a user's processing
quota (rule A1, on the admin page and ``PUT /api/v1/admin/users/{name}/quota``), cancel or retry a
job through the API (``POST /api/v1/jobs/{id}/cancel|retry``, as the admin page does).

Every action goes through the request's catalogue facade (``who.catalogue``:
:class:`~hcdc.pipeline.operations.catalogue.ProcessingCatalogue`); rights are decided by
:mod:`hcdc.archive.access` through :mod:`hcdc.archive.accounts`, which also writes each action to
the audit log; a product the caller may not see is answered 404 before any rule about reviewing
it is asked.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from hcdc.archive.accounts import AccountError
from hcdc.archive.catalogue import AccessDenied
from hcdc.pipeline.operations.catalogue import JOB_ACTIONS
from hcdc.pipeline.operations.jobs import JobError
from hcdc.web.auth import CSRF_FIELD, Viewer, ViewerRoute, check_api_write, check_csrf, viewer
from hcdc.web.params import ObjectId
from hcdc.web.portal import PortalError

router = APIRouter(route_class=ViewerRoute)


class ReviewError(Exception):
    """A refused or malformed team action: HTTP ``status`` and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _write(action: Any) -> Any:
    """Run ``action()`` (a write through the facade); refusals become :class:`ReviewError`."""
    try:
        return action()
    except AccountError as exc:
        raise ReviewError(422, str(exc)) from None
    except AccessDenied as exc:
        raise ReviewError(403, str(exc)) from None
    except LookupError as exc:
        raise ReviewError(404, str(exc)) from None


def review(who: Viewer, product_id: int, status: str, reason: str | None) -> None:
    """Validate or flag a product (A4) the caller may see."""
    if not who.catalogue.visible("product", product_id):  # answered like one that does not exist
        raise ReviewError(404, f"no product {product_id}")
    _write(lambda: who.catalogue.review_product(product_id, status, reason))


def set_quota(
    who: Viewer, name: str, max_jobs: int, access_from: dt.datetime | None, access_until: dt.datetime | None
) -> None:
    """Set a user's maximum of concurrent jobs and access window (A1)."""
    _write(lambda: who.catalogue.admin().set_quota(name, max_jobs, access_from, access_until))


def job_action(who: Viewer, job_id: int, action: str) -> bool:
    """Cancel or retry a job (admins, A1); the change goes to the audit log. Returns whether the
    job changed (cancelling a job that has ended changes nothing)."""
    decision = who.access.can_manage()
    if not decision:
        raise ReviewError(403, f"not allowed ({decision.rule}): {decision.reason}")
    try:
        return who.catalogue.job_action(job_id, action)
    except JobError as exc:
        raise ReviewError(422, str(exc)) from None
    except (LookupError, ValueError) as exc:  # no such job (NotFound), no such action
        raise ReviewError(404, str(exc)) from None


def _http(exc: ReviewError) -> HTTPException:
    return HTTPException(exc.status, exc.message)


def _portal(exc: ReviewError) -> PortalError:
    return PortalError(exc.status, exc.message)


def _date(text: str | None, field: str) -> dt.datetime | None:
    if not text or not text.strip():
        return None
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReviewError(422, f"{field}: {text!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM)") from None


# -- portal forms -----------------------------------------------------------------------------------


@router.post("/products/{product_id}/review")
async def review_form(request: Request, product_id: ObjectId, who: Viewer = Depends(viewer)) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    try:
        review(who, product_id, str(form.get("status") or ""), str(form.get("reason") or ""))
    except ReviewError as exc:
        raise _portal(exc) from None
    return RedirectResponse(f"/products/{product_id}", status_code=303)


@router.post("/admin/users/{name}/quota")
async def quota_form(request: Request, name: str, who: Viewer = Depends(viewer)) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    try:
        text = str(form.get("max_jobs") or "").strip()
        if not text.isdigit():
            raise ReviewError(422, f"max_jobs: {text!r} is not a whole number >= 0")
        set_quota(
            who,
            name,
            int(text),
            _date(str(form.get("access_from") or ""), "access_from"),
            _date(str(form.get("access_until") or ""), "access_until"),
        )
    except ReviewError as exc:
        raise _portal(exc) from None
    return RedirectResponse("/admin#users", status_code=303)


# -- REST API ---------------------------------------------------------------------------------------


class ReviewRequest(BaseModel):
    status: Literal["validated", "flagged"]
    reason: str | None = Field(None, description="why a product is flagged (required to flag)")


class QuotaRequest(BaseModel):
    max_jobs: int = Field(ge=0, description="jobs queued or running at once")
    access_from: dt.datetime | None = Field(None, description="the access window opens (UTC)")
    access_until: dt.datetime | None = Field(None, description="the access window closes (UTC)")


@router.post(
    "/api/v1/products/{product_id}/review",
    tags=["products"],
    summary="Validate or flag a product (admins and operators)",
)
def review_api(
    product_id: ObjectId, body: ReviewRequest, request: Request, who: Viewer = Depends(viewer)
) -> dict[str, Any]:
    check_api_write(request, who)
    try:
        review(who, product_id, body.status, body.reason)
    except ReviewError as exc:
        raise _http(exc) from None
    return {"product_id": product_id, "review": body.status, "reason": body.reason}


@router.put("/api/v1/admin/users/{name}/quota", tags=["admin"], summary="Set a user's quota (admins only)")
def quota_api(
    name: str, body: QuotaRequest, request: Request, who: Viewer = Depends(viewer)
) -> dict[str, Any]:
    check_api_write(request, who)
    try:
        set_quota(who, name, body.max_jobs, body.access_from, body.access_until)
    except ReviewError as exc:
        raise _http(exc) from None
    return {"name": name, **body.model_dump(mode="json")}


@router.post(
    "/api/v1/jobs/{job_id}/{action}", tags=["processing"], summary="Cancel or retry a job (admins only)"
)
def job_action_api(
    job_id: ObjectId, action: Literal["cancel", "retry"], request: Request, who: Viewer = Depends(viewer)
) -> dict[str, Any]:
    check_api_write(request, who)
    try:
        changed = job_action(who, job_id, action)
    except ReviewError as exc:
        raise _http(exc) from None
    return {"id": job_id, "action": action, "changed": changed}


__all__ = ["JOB_ACTIONS", "ReviewError", "job_action", "review", "router", "set_quota"]
