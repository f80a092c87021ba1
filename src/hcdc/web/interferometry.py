"""REST API of the OiDB granules, ``/api/v1/granules``: what the caller may see now.

Read through the request's catalogue facade (``who.catalogue.granules``,
:mod:`hcdc.archive.catalogue_granules`), filtered in SQL by
:func:`hcdc.archive.access.visible_granules_clause` (rules R11-R14:
collection embargo from ``t_max``, calibrators public, data PI / team / delegates); the bytes
of a granule's file are served by ``/api/v1/files/{id}/download``, which obeys R14 through the
file rules.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from hcdc.archive.catalogue import NotFound
from hcdc.web import views
from hcdc.web.auth import Viewer, ViewerRoute, viewer

router = APIRouter(prefix="/api/v1", route_class=ViewerRoute)

#: most granules one request returns
MAX_GRANULES = 1000


@router.get("/granules", tags=["interferometry"], summary="OiDB granules the caller may see")
def granules(
    who: Viewer = Depends(viewer),
    target: str | None = Query(None, max_length=128, description="substring of target_name, any case"),
    instrument: str | None = Query(None, max_length=64, description="INSNAME prefix, any case"),
    collection: str | None = Query(None, max_length=128),
    level: int | None = Query(None, ge=0, le=3, description="calib_level"),
    all_versions: bool = Query(False, description="include superseded versions"),
    limit: int = Query(100, ge=1, le=MAX_GRANULES),
) -> dict[str, Any]:
    rows = who.catalogue.granules.search(
        target=target,
        instrument=instrument,
        collection=collection,
        level=level,
        all_versions=all_versions,
        limit=limit,
    )
    return {"count": len(rows), "limit": limit, "items": views.jsonable(rows)}


# --------------------------------------------------------------------------------------------
# survey tracking: visible to the survey's group (and staff) only, see archive.access


def _survey_status(who: Viewer, name: str) -> dict[str, Any]:
    from fastapi import HTTPException

    try:
        return who.catalogue.granules.survey(name)
    except NotFound:
        # the same answer for a missing survey and one of another group
        raise HTTPException(status_code=404, detail=f"no survey {name!r}") from None


@router.get("/surveys", tags=["interferometry"], summary="Surveys the caller follows")
def surveys(who: Viewer = Depends(viewer)) -> dict[str, Any]:
    rows = who.catalogue.granules.surveys()
    return {"count": len(rows), "items": views.jsonable(rows)}


@router.get(
    "/surveys/{name}", tags=["interferometry"], summary="A survey's counts per stage and late targets"
)
def survey_summary(name: str, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    status = _survey_status(who, name)
    keep = ("survey", "group", "as_of", "targets", "counts", "reached", "late")
    return views.jsonable({k: status[k] for k in keep})


@router.get("/surveys/{name}/targets", tags=["interferometry"], summary="Every target's stage and history")
def survey_targets(name: str, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    status = _survey_status(who, name)
    return {"count": len(status["items"]), "items": views.jsonable(status["items"])}


@router.get("/surveys/{name}/targets/{target}", tags=["interferometry"], summary="One target's history")
def survey_target(name: str, target: str, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    from fastapi import HTTPException

    from hcdc.archive.interferometry_calibrators import name_key

    status = _survey_status(who, name)
    for item in status["items"]:
        if name_key(item["name"]) == name_key(target):
            return views.jsonable(item)
    raise HTTPException(status_code=404, detail=f"no target {target!r} in survey {name!r}")


@router.get(
    "/surveys/{name}/late", tags=["interferometry"], summary="Targets past their due date, not validated"
)
def survey_late(name: str, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    status = _survey_status(who, name)
    late = [i for i in status["items"] if i["late"]]
    return {"count": len(late), "items": views.jsonable(late)}
