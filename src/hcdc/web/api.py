"""The REST API, ``/api/v1`` (JSON; the OpenAPI document is ``/api/v1/openapi.json``).

Every route reads and writes through the catalogue facade (``who.catalogue``,
:class:`hcdc.pipeline.operations.catalogue.ProcessingCatalogue`, a
:class:`hcdc.archive.catalogue.UserCatalogue` with the processing queue): files, datasets,
products, provenance, counts, jobs, reduction requests, and the administration
(``who.catalogue.admin()``).

Authentication: ``Authorization: Bearer <token>`` (``hcdc user token NAME``) or the portal's
session cookie (writes then need the ``X-CSRF-Token`` header); without either, the caller is the
public account. Every route asks :mod:`hcdc.archive.access` through the request's
:class:`~hcdc.web.auth.Viewer`; an object the caller may not see is answered 404, exactly as one
that does not exist. Lists are paginated: ``{"total", "offset", "limit", "items"}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from pydantic_core import to_json

from hcdc.archive.access import RULES_VERSION, AccessDenied
from hcdc.archive.accounts import AccountError
from hcdc.archive.catalogue import AdminCatalogue, NotFound
from hcdc.archive.search import Criteria, SearchError
from hcdc.pipeline.operations.jobs import JOB_STATES
from hcdc.web import views
from hcdc.web.actions import ActionError, dataset_workflows, request_reduction
from hcdc.web.auth import Viewer, ViewerRoute, check_api_write, viewer
from hcdc.web.downloads import file_response, zip_response
from hcdc.web.params import MAX_ID, ObjectId, api_criteria, criteria_openapi

router = APIRouter(prefix="/api/v1", route_class=ViewerRoute)


def _not_found(exc: Exception) -> HTTPException:
    return HTTPException(404, str(exc))


def _search(search: Any, criteria: Criteria) -> Response:
    """One page of a catalogue facade search (``who.catalogue.search_*``) as JSON.

    Serialised here, by pydantic's serialiser (the same bytes as the route's ``Page`` model
    gives), rather than returned as a dict: FastAPI would then validate the page against ``Page``
    in one more worker-thread call (~0.1 ms of CPU per hand-over, benchmarks/RESULTS.md). The
    route still documents ``Page``."""
    try:
        page = views.jsonable(search(criteria).as_dict())
    except SearchError as exc:
        raise HTTPException(422, str(exc)) from None
    return Response(to_json(page), media_type="application/json")


class Page(BaseModel):
    total: int = Field(description="matches the caller may see")
    offset: int
    limit: int
    items: list[dict[str, Any]]


@router.get("/me", tags=["account"], summary="Who the API thinks you are")
def me(who: Viewer = Depends(viewer)) -> dict[str, Any]:
    return {
        "name": who.user.name,
        "role": who.user.role,
        "authenticated_by": who.via,
        "rules_version": RULES_VERSION,
    }


@router.get("/stats", tags=["archive"], summary="What the archive holds that you may see")
def stats(who: Viewer = Depends(viewer)) -> dict[str, Any]:
    return who.catalogue.stats()


# -- files ----------------------------------------------------------------------------------------


@router.get(
    "/files",
    tags=["files"],
    summary="Search raw and calibration files",
    response_model=Page,
    openapi_extra=criteria_openapi(),
)
def files(who: Viewer = Depends(viewer), criteria: Criteria = Depends(api_criteria)) -> Response:
    return _search(who.catalogue.search_files, criteria)


@router.get("/files/{file_id}", tags=["files"], summary="One file's metadata")
def file(file_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        return views.jsonable(who.catalogue.file(file_id))
    except NotFound as exc:
        raise _not_found(exc) from None


@router.get("/files/{file_id}/download", tags=["files"], summary="Download a file (streamed)")
def file_download(file_id: ObjectId, who: Viewer = Depends(viewer)) -> Any:
    try:
        path, name, sha256 = who.catalogue.file_location(file_id)
    except NotFound as exc:
        raise _not_found(exc) from None
    if not path.is_file():
        raise HTTPException(410, f"file {file_id} is catalogued but its bytes are not reachable")
    return file_response(path, name, "application/fits", sha256)


# -- datasets -------------------------------------------------------------------------------------


@router.get(
    "/datasets",
    tags=["datasets"],
    summary="Search datasets",
    response_model=Page,
    openapi_extra=criteria_openapi(),
)
def datasets(who: Viewer = Depends(viewer), criteria: Criteria = Depends(api_criteria)) -> Response:
    return _search(who.catalogue.search_datasets, criteria)


@router.get("/datasets/{dataset_id}", tags=["datasets"], summary="A dataset: files, calibrations, products")
def dataset(dataset_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        return views.dataset_view(who, dataset_id)  # + whether the caller may request a reduction
    except NotFound as exc:
        raise _not_found(exc) from None


# -- products -------------------------------------------------------------------------------------


@router.get(
    "/products",
    tags=["products"],
    summary="Search products",
    response_model=Page,
    openapi_extra=criteria_openapi(),
)
def products(who: Viewer = Depends(viewer), criteria: Criteria = Depends(api_criteria)) -> Response:
    return _search(who.catalogue.search_products, criteria)


@router.get("/products/{product_id}", tags=["products"], summary="A product: files, detections, status")
def product(product_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        return views.jsonable(who.catalogue.product(product_id))
    except NotFound as exc:
        raise _not_found(exc) from None


@router.get(
    "/products/{product_id}/charts",
    tags=["products"],
    summary="Contrast curves, S/N map and detections of a Level 2 product",
)
def product_charts(product_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        charts = views.product_charts(who, product_id)
    except views.NotFound as exc:
        raise _not_found(exc) from None
    if charts is None:
        raise HTTPException(404, f"product {product_id} has no Level 2 FITS file")
    return charts


@router.get(
    "/products/{product_id}/provenance", tags=["products"], summary="Provenance tree to the raw files"
)
def product_provenance(product_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        return views.jsonable(who.catalogue.provenance(product_id))
    except NotFound as exc:
        raise _not_found(exc) from None


@router.get("/products/{product_id}/files/{file_id}", tags=["products"], summary="Download one product file")
def product_file(
    product_id: ObjectId,
    file_id: ObjectId,
    who: Viewer = Depends(viewer),
    inline: bool = Query(False, description="show in the browser (previews) instead of saving"),
) -> Any:
    try:
        path, info = who.catalogue.product_file(product_id, file_id)
    except NotFound as exc:
        raise _not_found(exc) from None
    return file_response(path, info["name"], info["media_type"], info["sha256"], inline=inline)


@router.get(
    "/products/{product_id}/download",
    tags=["products"],
    summary="The whole product as a streamed zip with MANIFEST.sha256",
)
def product_zip(product_id: ObjectId, who: Viewer = Depends(viewer)) -> Any:
    try:
        members = who.catalogue.product_zip_members(product_id)
    except NotFound as exc:
        raise _not_found(exc) from None
    return zip_response(members, f"hcdc-product-{product_id}")


# -- processing -----------------------------------------------------------------------------------


@router.get("/workflows", tags=["processing"], summary="Workflows that reduce a dataset, with parameters")
def workflows() -> list[dict[str, Any]]:
    return views.jsonable(dataset_workflows())


class JobRequest(BaseModel):
    dataset_id: int = Field(ge=1, le=MAX_ID, description="a dataset you may see")
    workflow: str = Field("irdis-l1-l2", description="see GET /workflows")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description='overrides, "node.parameter" or "parameter": value, validated by the recipes',
        examples=[{"level2.ncomp": 2}],
    )


@router.get("/jobs", tags=["processing"], summary="Your jobs (all jobs for staff)", response_model=Page)
def jobs(
    who: Viewer = Depends(viewer),
    state: str | None = Query(None, description=f"one of {', '.join(JOB_STATES)}"),
    offset: int = Query(0, ge=0, le=MAX_ID),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    if state is not None and state not in JOB_STATES:
        raise HTTPException(422, f"state must be one of {', '.join(JOB_STATES)}")
    return views.jsonable(who.catalogue.search_jobs(state, offset, limit).as_dict())


@router.get("/jobs/{job_id}", tags=["processing"], summary="A job: state, progress, log, products")
def job(job_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        return views.job_view(who, job_id)
    except views.NotFound as exc:
        raise _not_found(exc) from None


@router.post("/jobs", tags=["processing"], status_code=201, summary="Request a reduction of a dataset")
def submit_job(body: JobRequest, request: Request, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    check_api_write(request, who)
    try:
        job_id = request_reduction(who, body.dataset_id, body.workflow, body.parameters)
    except LookupError as exc:
        raise _not_found(exc) from None
    except ActionError as exc:
        raise HTTPException(422, str(exc)) from None
    except AccessDenied as exc:
        raise HTTPException(403, str(exc)) from None
    return {"id": job_id, "url": f"/api/v1/jobs/{job_id}"}


# -- administration -------------------------------------------------------------------------------


def _admin(who: Viewer) -> AdminCatalogue:
    """The administration sub-facade (rule A1), or 403."""
    decision = who.access.can_manage()
    if not decision:
        raise HTTPException(403, f"not allowed ({decision.rule}): {decision.reason}")
    return who.catalogue.admin()


@router.get("/admin/users", tags=["admin"], summary="Accounts (admins only)")
def admin_users(who: Viewer = Depends(viewer)) -> list[dict[str, Any]]:
    return views.jsonable(_admin(who).users())


class NewUser(BaseModel):
    name: str
    role: str = Field("user", description="admin, operator, user or public")
    password: str | None = Field(None, description="none: token login only")
    full_name: str | None = None
    email: str | None = None


class UserChange(BaseModel):
    role: str | None = None
    active: bool | None = None


def _account_action(request: Request, who: Viewer, action: Any) -> Any:
    """Run ``action(admin)`` (a write through the administration sub-facade); refusals 403/422."""
    check_api_write(request, who)
    admin = _admin(who)
    try:
        return action(admin)
    except (AccountError, AccessDenied) as exc:
        raise HTTPException(422 if isinstance(exc, AccountError) else 403, str(exc)) from None


@router.post("/admin/users", tags=["admin"], status_code=201, summary="Create an account (admins only)")
def admin_add_user(body: NewUser, request: Request, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    def add(admin: AdminCatalogue) -> dict[str, Any]:
        uid = admin.add_user(
            body.name,
            role=body.role,
            password=body.password,
            full_name=body.full_name,
            email=body.email,
        )
        return {"id": uid, "name": body.name, "role": body.role}

    return _account_action(request, who, add)


@router.patch(
    "/admin/users/{name}", tags=["admin"], summary="Change an account's role or state (admins only)"
)
def admin_change_user(name: str, body: UserChange, request: Request, who: Viewer = Depends(viewer)) -> dict:
    def change(admin: AdminCatalogue) -> dict[str, Any]:
        admin.change_user(name, role=body.role, active=body.active)
        return {"name": name, "role": body.role, "active": body.active}

    return _account_action(request, who, change)


@router.get("/admin/audit", tags=["admin"], summary="The audit log, newest first (admins only)")
def admin_audit(
    who: Viewer = Depends(viewer),
    action: str | None = Query(None, description="action prefix, e.g. user."),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    return views.jsonable(_admin(who).audit_log(limit=limit, action=action))


__all__ = ["router"]
