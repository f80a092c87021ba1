"""The Target Data Base in the portal (``/targets``, ``/candidates/{id}``) and the REST API
(``/api/v1/targets``, ``/api/v1/candidates``, ``/api/v1/detections``).

Rights are those of rule R15 (:mod:`hcdc.archive.access`): targets are public, their
observations, reductions, detections and candidates are read through the Target Data Base of the
request's catalogue facade (``who.catalogue.targets``, :mod:`hcdc.archive.catalogue_tdb`), which
filters them in SQL by the caller's rules; a hidden candidate answers 404 exactly like a missing
one. Charts (astrometry against the background
track, colour-magnitude diagrams) are plotly figures drawn by ``static/tdb.js`` with the plotly
served by the portal (offline).
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hcdc.archive import tdb_views as tv
from hcdc.archive.access import AccessDenied
from hcdc.archive.tdb_models import CANDIDATE_STATUSES
from hcdc.web import views
from hcdc.web.auth import CSRF_FIELD, Viewer, ViewerRoute, check_csrf, viewer
from hcdc.web.params import MAX_ID, ObjectId
from hcdc.web.portal import PortalError, render

router = APIRouter(route_class=ViewerRoute)

#: most detections one request returns
MAX_DETECTIONS = 1000
_VERDICT_PATTERN = "^(" + "|".join(CANDIDATE_STATUSES) + ")$"


@lru_cache(maxsize=4)
def _references(folder: str | None) -> list[Any]:
    return tv.load_references(Path(folder) if folder else None)


def references_of(who: Viewer) -> list[Any]:
    """The CMD reference objects of the data centre's ``level3_references`` folder (cached)."""
    settings = who.state.catalogue.settings
    folder = settings.level3_references
    if folder is not None and not folder.is_absolute():
        folder = settings.root / folder
    return _references(str(folder) if folder is not None else None)


def script_json(value: Any) -> str:
    """JSON for a ``<script type="application/json">`` element: ``<``, ``>`` and ``&`` escaped, so
    that a name holding ``</script>`` cannot end the element (target names come from headers)."""
    text = json.dumps(views.jsonable(value), default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# --------------------------------------------------------------------------------------------
# REST API


def _target_criteria(
    name: str | None = Query(None, max_length=128, description="any alias, substring, any case/spacing"),
    ra: float | None = Query(None, ge=0, lt=360, description="cone centre right ascension, deg (ICRS)"),
    dec: float | None = Query(None, ge=-90, le=90, description="cone centre declination, deg (ICRS)"),
    radius: float | None = Query(None, gt=0, le=36000, description="cone radius, arcsec"),
    spectral_type: str | None = Query(None, max_length=32, description="spectral type prefix, e.g. A5, M"),
    max_distance_pc: float | None = Query(None, gt=0, description="distance at most (from the parallax), pc"),
    min_age_myr: float | None = Query(None, ge=0, description="age at least, Myr"),
    max_age_myr: float | None = Query(None, ge=0, description="age at most, Myr"),
    verdict: str | None = Query(
        None, pattern=_VERDICT_PATTERN, description="with a candidate of this verdict you may see"
    ),
    with_detections: bool | None = Query(None, description="with (true) or without (false) detections"),
) -> dict[str, Any]:
    return {
        "name": name,
        "ra": ra,
        "dec": dec,
        "radius_arcsec": radius,
        "spectral_type": spectral_type,
        "max_distance_pc": max_distance_pc,
        "min_age_myr": min_age_myr,
        "max_age_myr": max_age_myr,
        "verdict": verdict,
        "with_detections": with_detections,
    }


def _search_targets(who: Viewer, criteria: dict[str, Any], limit: int, offset: int) -> dict[str, Any]:
    try:
        return who.catalogue.targets.search(**criteria, limit=limit, offset=offset)
    except tv.TdbQueryError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None


@router.get("/api/v1/targets", tags=["targets"], summary="Search the Target Data Base's targets")
def api_targets(
    who: Viewer = Depends(viewer),
    criteria: dict[str, Any] = Depends(_target_criteria),
    limit: int = Query(100, ge=1, le=tv.MAX_ROWS),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> dict[str, Any]:
    page = _search_targets(who, criteria, limit, offset)
    return {"total": page["total"], "limit": limit, "offset": offset, "items": views.jsonable(page["items"])}


@router.get(
    "/api/v1/targets/{target_id}",
    tags=["targets"],
    summary="A target: values with sources, aliases, your observations, reductions, detections, candidates",
)
def api_target(target_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        return views.jsonable(who.catalogue.targets.target(target_id))
    except tv.TdbNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


@router.get("/api/v1/candidates", tags=["targets"], summary="Companion candidates you may see")
def api_candidates(
    who: Viewer = Depends(viewer),
    verdict: str | None = Query(
        None, pattern=_VERDICT_PATTERN, description="bound, background, undetermined"
    ),
    target_id: int | None = Query(None, ge=1, le=MAX_ID, description="of this target"),
    last_epoch_before: dt.date | None = Query(
        None, description="latest epoch you may see before this date (not observed since), YYYY-MM-DD"
    ),
    limit: int = Query(100, ge=1, le=tv.MAX_ROWS),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> dict[str, Any]:
    before = None if last_epoch_before is None else dt.datetime.combine(last_epoch_before, dt.time())
    page = who.catalogue.targets.candidates(
        target_id=target_id,
        verdict=verdict,
        last_epoch_before=before,
        limit=limit,
        offset=offset,
    )
    return {"total": page["total"], "limit": limit, "offset": offset, "items": views.jsonable(page["items"])}


@router.get(
    "/api/v1/candidates/{candidate_id}",
    tags=["targets"],
    summary="A candidate: verdict, statistic and the detections you may see",
)
def api_candidate(candidate_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        return views.jsonable(who.catalogue.targets.candidate(candidate_id))
    except tv.TdbNotFound as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


@router.get("/api/v1/detections", tags=["targets"], summary="Detections you may see, filtered")
def api_detections(
    who: Viewer = Depends(viewer),
    target: str | None = Query(None, max_length=128, description="target name or alias (resolved offline)"),
    target_id: int | None = Query(None, ge=1, le=MAX_ID),
    date_from: dt.date | None = Query(None, description="observed on or after (YYYY-MM-DD, UTC)"),
    date_to: dt.date | None = Query(None, description="observed on or before (YYYY-MM-DD, UTC)"),
    min_separation: float | None = Query(None, ge=0, description="separation at least, mas"),
    max_separation: float | None = Query(None, ge=0, description="separation at most, mas"),
    min_contrast: float | None = Query(None, ge=0, description="contrast (flux ratio) at least"),
    max_contrast: float | None = Query(None, ge=0, description="contrast (flux ratio) at most"),
    min_snr: float | None = Query(None, description="S/N at least"),
    status: str | None = Query(
        None, pattern="^(bound|background|undetermined|ungrouped)$", description="its candidate's verdict"
    ),
    survey: str | None = Query(None, max_length=128, description="observation's survey"),
    limit: int = Query(100, ge=1, le=MAX_DETECTIONS),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> dict[str, Any]:
    criteria = dict(locals())
    criteria.pop("who")
    try:
        rows = find_detections(who, **criteria)
    except tv.TdbQueryError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    return {"count": len(rows), "limit": limit, "offset": offset, "items": views.jsonable(rows)}


def find_detections(who: Viewer, **criteria: Any) -> list[dict[str, Any]]:
    """The caller's visible detections matching the criteria of ``/api/v1/detections``
    (:meth:`hcdc.archive.catalogue_tdb.TargetCatalogue.detections`); raises ``TdbQueryError``."""
    return who.catalogue.targets.detections(**criteria)


# --------------------------------------------------------------------------------------------
# portal pages

_FORM_FIELDS = {
    "name": str,
    "ra": float,
    "dec": float,
    "radius": float,
    "spectral_type": str,
    "max_distance_pc": float,
    "min_age_myr": float,
    "max_age_myr": float,
    "verdict": str,
}


def _form_criteria(request: Request) -> tuple[dict[str, Any], dict[str, str], str | None]:
    """Criteria from the search form (empty field: no criterion), the raw values, an error."""
    values = {k: request.query_params.get(k, "").strip() for k in _FORM_FIELDS}
    criteria: dict[str, Any] = {}
    for key, kind in _FORM_FIELDS.items():
        text = values[key]
        if not text:
            continue
        try:
            criteria[key] = kind(text)
        except ValueError:
            return {}, values, f"{key} must be a number, got {text!r}"
    if "radius" in criteria:
        criteria["radius_arcsec"] = criteria.pop("radius")
    return criteria, values, None


_DETECTION_FIELDS: dict[str, Any] = {
    "target": str,
    "date_from": dt.date.fromisoformat,
    "date_to": dt.date.fromisoformat,
    "min_separation": float,
    "max_separation": float,
    "min_contrast": float,
    "max_contrast": float,
    "min_snr": float,
    "status": str,
    "survey": str,
}


@router.get("/detections", response_class=HTMLResponse, include_in_schema=False)
def detections_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    """Search the detections the caller may see (the filters of ``/api/v1/detections``)."""
    values = {k: request.query_params.get(k, "").strip() for k in _DETECTION_FIELDS}
    rows, error = None, None
    try:
        criteria = {k: kind(values[k]) for k, kind in _DETECTION_FIELDS.items() if values[k]}
        if criteria.get("status") not in (None, "bound", "background", "undetermined", "ungrouped"):
            raise tv.TdbQueryError("status must be bound, background, undetermined or ungrouped")
        rows = find_detections(who, **criteria, limit=MAX_DETECTIONS)
    except ValueError as exc:  # TdbQueryError, or a date / number that does not parse
        error = str(exc) if isinstance(exc, tv.TdbQueryError) else f"bad value: {exc}"
    query = urlencode({k: v for k, v in values.items() if v})
    return render(
        request,
        who,
        "tdb_detections.html",
        rows=rows,
        error=error,
        values=values,
        api_link="/api/v1/detections" + (f"?{query}" if query else ""),
    )


@router.get("/targets", response_class=HTMLResponse, include_in_schema=False)
def targets_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    criteria, values, error = _form_criteria(request)
    page = None
    if error is None:
        try:
            page = who.catalogue.targets.search(**criteria, limit=tv.MAX_ROWS)
        except tv.TdbQueryError as exc:
            error = str(exc)
    query = urlencode({k: v for k, v in values.items() if v})
    return render(
        request,
        who,
        "tdb_targets.html",
        page=page,
        error=error,
        values=values,
        verdicts=CANDIDATE_STATUSES,
        api_link="/api/v1/targets" + (f"?{query}" if query else ""),
    )


@router.get("/targets/{target_id}", response_class=HTMLResponse, include_in_schema=False)
def target_page(request: Request, target_id: ObjectId, who: Viewer = Depends(viewer)) -> HTMLResponse:
    try:
        t = who.catalogue.targets.target(target_id)
    except tv.TdbNotFound as exc:
        raise PortalError(404, str(exc)) from None
    cmds = who.catalogue.targets.cmd_of_candidates(references_of(who), target_id, t["name"])
    return render(
        request,
        who,
        "tdb_target.html",
        t=t,
        cmds=cmds,
        figures_json=script_json({"astrometry": None, "cmd": [d["figure"] for d in cmds["diagrams"]]}),
        can_regroup=bool(who.access.can_manage()),
    )


@router.get("/candidates", response_class=HTMLResponse, include_in_schema=False)
def archive_cmd_page(request: Request, who: Viewer = Depends(viewer)) -> HTMLResponse:
    """Every candidate the caller may see, by verdict, and the archive's colour-magnitude diagrams."""
    tdb = who.catalogue.targets
    candidates = tdb.candidates()["items"]
    cmds = tdb.cmd_of_candidates(references_of(who))
    return render(
        request,
        who,
        "tdb_candidates.html",
        candidates=candidates,
        cmds=cmds,
        figures_json=script_json({"astrometry": None, "cmd": [d["figure"] for d in cmds["diagrams"]]}),
    )


@router.post("/targets/{target_id}/regroup", include_in_schema=False)
async def regroup(request: Request, target_id: ObjectId, who: Viewer = Depends(viewer)) -> Response:
    """An admin's regrouping (A1): put a detection of this target in the candidate ``label`` (new
    if needed; empty: in none), test the candidates it left and joined again, audit it."""
    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    decision = who.access.can_manage()
    if not decision:
        raise PortalError(403 if who.signed_in else 401, f"not allowed ({decision.rule}): {decision.reason}")
    label = str(form.get("label") or "").strip()
    if len(label) > 64 or "\x00" in label:
        raise PortalError(422, "a candidate label has at most 64 characters")
    try:
        detection_id = int(str(form.get("detection") or ""))
    except ValueError:
        raise PortalError(422, "choose a detection") from None
    try:
        who.catalogue.targets.regroup(target_id, detection_id, label or None)
    except tv.TdbNotFound as exc:
        raise PortalError(404, str(exc)) from None
    except AccessDenied as exc:
        raise PortalError(403, str(exc)) from None
    return RedirectResponse(f"/targets/{target_id}#candidates", status_code=303)


@router.get("/candidates/{candidate_id}", response_class=HTMLResponse, include_in_schema=False)
def candidate_page(request: Request, candidate_id: ObjectId, who: Viewer = Depends(viewer)) -> HTMLResponse:
    tdb = who.catalogue.targets
    try:
        c = tdb.candidate(candidate_id)
        chart = tdb.astrometry_chart(candidate_id)
        cmds = tdb.cmd_charts(candidate_id, references_of(who))
    except tv.TdbNotFound as exc:
        raise PortalError(404, str(exc)) from None
    figures = {"astrometry": chart["figure"], "cmd": [d["figure"] for d in cmds["diagrams"]]}
    return render(
        request,
        who,
        "tdb_candidate.html",
        c=c,
        chart=chart,
        cmds=cmds,
        figures_json=script_json(figures),
    )


__all__ = ["MAX_DETECTIONS", "find_detections", "references_of", "router", "script_json"]
