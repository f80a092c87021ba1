"""REST API of the OiDB granules, ``/api/v1/granules``: what the caller may see now.

Filtered in SQL by :func:`hcdc.archive.access.visible_granules_clause` (rules R11-R14:
collection embargo from ``t_max``, calibrators public, data PI / team / delegates); the bytes
of a granule's file are served by ``/api/v1/files/{id}/download``, which obeys R14 through the
file rules.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query

from hcdc.archive.granules import list_granules
from hcdc.web import views
from hcdc.web.auth import Viewer, viewer

router = APIRouter(prefix="/api/v1")

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
    rows = list_granules(
        who.conn,
        visible=who.access.granules_clause(),
        target=target,
        instrument=instrument,
        collection=collection,
        level=level,
        all_versions=all_versions,
        limit=limit,
    )
    return {"count": len(rows), "limit": limit, "items": views.jsonable(rows)}
