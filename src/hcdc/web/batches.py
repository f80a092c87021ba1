"""Batches of jobs and job logs on the web: the portal's ``/batches`` pages and the REST API's
``/api/v1/batches`` and ``/api/v1/jobs/{id}/log``.

A batch is submitted by dataset ids (API) or by a selection ("every dataset of target X / night
Y / instrument Z" that the user may see, portal and API); it is followed on its page (its jobs
with live progress, polled from the API), cancelled or retried as a whole. Reads go through the
catalogue facade (``who.catalogue``: :meth:`~hcdc.archive.catalogue.UserCatalogue.batches`,
``batch``, ``job_log``), writes through :mod:`hcdc.pipeline.operations.batches`; every decision is
:mod:`hcdc.archive.access`'s (R10, A6, A11). A batch or job the caller may not see is answered
404, as one that does not exist.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from hcdc.archive.access import AccessDenied
from hcdc.archive.batches import datasets_matching
from hcdc.archive.catalogue import NotFound
from hcdc.pipeline.operations import batches as ops
from hcdc.pipeline.operations.jobs import JobError
from hcdc.web import views
from hcdc.web.actions import ActionError, dataset_workflows, parameter_strings
from hcdc.web.auth import CSRF_FIELD, Viewer, ViewerRoute, check_api_write, check_csrf, viewer
from hcdc.web.params import MAX_ID, ObjectId
from hcdc.web.portal import PortalError, render

router = APIRouter(route_class=ViewerRoute)

BATCH_ACTIONS = ("cancel", "retry")


class BatchRefused(Exception):
    """A refused or malformed batch request: HTTP ``status`` and a message for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _selected(
    who: Viewer, target: str | None, night: str | None, instrument: str | None
) -> tuple[list[int], dict]:
    """The datasets the user may see of a target / night / instrument, and the selection as asked."""
    target = (target or "").strip() or None
    instrument = (instrument or "").strip() or None
    night_date = None
    if night and night.strip():
        try:
            night_date = dt.date.fromisoformat(night.strip())
        except ValueError:
            raise BatchRefused(422, f"night {night!r} is not a date YYYY-MM-DD") from None
    if target is None and night_date is None and instrument is None:
        raise BatchRefused(422, "select datasets by target, night or instrument (or give dataset ids)")
    ids = datasets_matching(
        who.conn, who.access.datasets_clause(), target=target, night=night_date, instrument=instrument
    )
    selection = {
        "target": target,
        "night": night_date.isoformat() if night_date else None,
        "instrument": instrument,
    }
    if not ids:
        what = ", ".join(f"{k} {v}" for k, v in selection.items() if v)
        raise BatchRefused(422, f"no dataset you may see matches {what}")
    return ids, {k: v for k, v in selection.items() if v}


def submit(
    who: Viewer,
    *,
    dataset_ids: list[int] | None,
    target: str | None,
    night: str | None,
    instrument: str | None,
    workflow: str,
    parameters: dict[str, Any],
    label: str | None,
) -> tuple[int, list[int]]:
    """Queue a batch for the asking user; returns ``(batch id, job ids)``."""
    if not who.signed_in:
        raise BatchRefused(401, "sign in to submit a batch")
    for name, text in (("target", target), ("night", night), ("instrument", instrument), ("label", label)):
        if text is not None and "\x00" in text:
            raise BatchRefused(422, f"{name}: a NUL character is not allowed")
    names = {w["name"] for w in dataset_workflows()}
    if workflow not in names:
        raise BatchRefused(
            422, f"unknown workflow {workflow!r} for a dataset; choose one of {', '.join(sorted(names))}"
        )
    if dataset_ids:
        ids, selection = list(dataset_ids), {"datasets": list(dataset_ids)}
    else:
        ids, selection = _selected(who, target, night, instrument)
    if label is None and "datasets" not in selection:
        label = "every dataset of " + ", ".join(f"{k} {v}" for k, v in selection.items())
    try:
        strings = parameter_strings(parameters)
        return ops.submit_batch(
            who.state.catalogue,
            who.user,
            ids,
            workflow=workflow,
            parameters=strings,
            label=(label or "").strip() or None,
            selection=selection,
            now=who.access.now,
            policy=who.state.policy,
        )
    except LookupError as exc:
        raise BatchRefused(404, str(exc)) from None
    except (ops.BatchError, ActionError, JobError) as exc:
        raise BatchRefused(422, str(exc)) from None
    except AccessDenied as exc:
        raise BatchRefused(403, str(exc)) from None


def act(who: Viewer, batch_id: int, action: str) -> list[int]:
    """Cancel or retry a batch (A11); returns the ids of the jobs changed."""
    if action not in BATCH_ACTIONS:
        raise BatchRefused(404, f"no batch action {action!r} (cancel or retry)")
    try:
        if action == "cancel":
            return ops.cancel_batch(who.state.catalogue, who.user, batch_id, now=who.access.now)
        return ops.retry_batch(
            who.state.catalogue, who.user, batch_id, now=who.access.now, policy=who.state.policy
        )
    except LookupError:
        raise BatchRefused(404, f"no batch with id {batch_id}") from None
    except AccessDenied as exc:
        raise BatchRefused(403, str(exc)) from None
    except JobError as exc:  # a job changed state meanwhile
        raise BatchRefused(409, str(exc)) from None


def _batch(who: Viewer, batch_id: int) -> dict[str, Any]:
    try:
        return views.jsonable(who.catalogue.batch(batch_id))
    except NotFound as exc:
        raise BatchRefused(404, str(exc)) from None


def _log(who: Viewer, job_id: int, after: int = 0) -> list[dict[str, Any]]:
    try:
        return views.jsonable(who.catalogue.job_log(job_id, after=after))
    except NotFound as exc:
        raise BatchRefused(404, str(exc)) from None


# -- portal -------------------------------------------------------------------------------------


def _page_error(exc: BatchRefused) -> PortalError:
    return PortalError(exc.status, exc.message)


@router.get("/batches", response_class=HTMLResponse)
def batches_page(request: Request, who: Viewer = Depends(viewer)) -> Response:
    if not who.signed_in:
        return RedirectResponse("/login?next=/batches", status_code=303)
    page = who.catalogue.batches(limit=100)
    return render(
        request,
        who,
        "batches.html",
        batches=views.jsonable(page.rows),
        total=page.total,
        workflows=dataset_workflows(),
        error=None,
        form={},
    )


@router.post("/batches", response_class=HTMLResponse)
async def batches_submit(request: Request, who: Viewer = Depends(viewer)) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    values = {k: str(form.get(k) or "") for k in ("target", "night", "instrument", "workflow", "label")}
    try:
        batch_id, _jobs = submit(
            who,
            dataset_ids=None,
            target=values["target"],
            night=values["night"],
            instrument=values["instrument"],
            workflow=values["workflow"],
            parameters={},
            label=values["label"].strip() or None,
        )
    except BatchRefused as exc:
        if exc.status == 401:
            raise _page_error(exc) from None
        page = who.catalogue.batches(limit=100)
        return render(
            request,
            who,
            "batches.html",
            status=exc.status,
            batches=views.jsonable(page.rows),
            total=page.total,
            workflows=dataset_workflows(),
            error=exc.message,
            form=values,
        )
    return RedirectResponse(f"/batches/{batch_id}", status_code=303)


@router.get("/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(request: Request, batch_id: ObjectId, who: Viewer = Depends(viewer)) -> Response:
    if not who.signed_in:
        return RedirectResponse(f"/login?next=/batches/{batch_id}", status_code=303)
    try:
        b = _batch(who, batch_id)
    except BatchRefused as exc:
        raise _page_error(exc) from None
    return render(request, who, "batch.html", b=b)


@router.post("/batches/{batch_id}/{action}")
async def batch_action_form(
    request: Request, batch_id: ObjectId, action: str, who: Viewer = Depends(viewer)
) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    try:
        act(who, batch_id, action)
    except BatchRefused as exc:
        raise _page_error(exc) from None
    return RedirectResponse(f"/batches/{batch_id}", status_code=303)


# -- REST API -----------------------------------------------------------------------------------


class BatchRequest(BaseModel):
    dataset_ids: list[Annotated[int, Field(ge=1, le=MAX_ID)]] | None = Field(
        None, max_length=ops.MAX_BATCH_JOBS, description="datasets you may see (or select below)"
    )
    target: str | None = Field(None, max_length=128, description="every dataset of this target you may see")
    night: str | None = Field(None, max_length=10, description="every dataset of this night (YYYY-MM-DD)")
    instrument: str | None = Field(None, max_length=32, description="every dataset of this instrument")
    workflow: str = Field("irdis-l1-l2", description="see GET /workflows")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description='overrides, "node.parameter" or "parameter": value'
    )
    label: str | None = Field(None, max_length=255, description="a name for the batch")


def _http(exc: BatchRefused) -> HTTPException:
    return HTTPException(exc.status, exc.message)


@router.get("/api/v1/batches", tags=["processing"], summary="Your batches of jobs (all batches for staff)")
def batches_api(
    who: Viewer = Depends(viewer),
    offset: int = Query(0, ge=0, le=MAX_ID),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    return views.jsonable(who.catalogue.batches(offset=offset, limit=limit).as_dict())


@router.get(
    "/api/v1/batches/{batch_id}",
    tags=["processing"],
    summary="A batch: its state, job counts per state, progress and jobs",
)
def batch_api(batch_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        return _batch(who, batch_id)
    except BatchRefused as exc:
        raise _http(exc) from None


@router.post("/api/v1/batches", tags=["processing"], status_code=201, summary="Submit a batch of reductions")
def batch_submit_api(body: BatchRequest, request: Request, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    check_api_write(request, who)
    try:
        batch_id, jobs = submit(
            who,
            dataset_ids=body.dataset_ids,
            target=body.target,
            night=body.night,
            instrument=body.instrument,
            workflow=body.workflow,
            parameters=body.parameters,
            label=body.label,
        )
    except BatchRefused as exc:
        raise _http(exc) from None
    return {"id": batch_id, "jobs": jobs, "url": f"/api/v1/batches/{batch_id}"}


@router.post(
    "/api/v1/batches/{batch_id}/{action}",
    tags=["processing"],
    summary="Cancel the active jobs of a batch, or retry its failed and cancelled ones",
)
def batch_action_api(
    batch_id: ObjectId, action: Literal["cancel", "retry"], request: Request, who: Viewer = Depends(viewer)
) -> dict[str, Any]:
    check_api_write(request, who)
    try:
        changed = act(who, batch_id, action)
    except BatchRefused as exc:
        raise _http(exc) from None
    return {"id": batch_id, "action": action, "jobs": changed}


@router.get("/api/v1/jobs/{job_id}/log", tags=["processing"], summary="A job's log, line by line")
def job_log_api(
    job_id: ObjectId,
    who: Viewer = Depends(viewer),
    after: int = Query(0, ge=0, le=2**62, description="only lines after this line id (to follow a job)"),
) -> dict[str, Any]:
    try:
        lines = _log(who, job_id, after)
    except BatchRefused as exc:
        raise _http(exc) from None
    return {"job_id": job_id, "lines": lines}


__all__ = ["BATCH_ACTIONS", "BatchRefused", "act", "router", "submit"]
