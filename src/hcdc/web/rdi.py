"""REST reads of the RDI reference libraries (docs/rdi.md): the libraries the caller may see and
one library with its frames. Rule R18 of :mod:`hcdc.archive.access` decides, through the
catalogue facade (:attr:`~hcdc.archive.catalogue.UserCatalogue.rdi`); a library the caller may
not see is answered 404, as one that does not exist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query

from hcdc.archive.catalogue import NotFound
from hcdc.web import views
from hcdc.web.auth import Viewer, viewer
from hcdc.web.params import MAX_ID, ObjectId

router = APIRouter()


@router.get("/api/v1/rdi/libraries", tags=["rdi"], summary="RDI reference libraries you may see")
def libraries_api(
    who: Viewer = Depends(viewer),
    product: int | None = Query(None, ge=1, le=MAX_ID, description="only those of this science product"),
) -> list[dict[str, Any]]:
    return views.jsonable(who.catalogue.rdi.list(product))


@router.get(
    "/api/v1/rdi/libraries/{library_id}",
    tags=["rdi"],
    summary="An RDI library: set-up, selection, provenance and its frames with their correlation",
)
def library_api(library_id: ObjectId, who: Viewer = Depends(viewer)) -> dict[str, Any]:
    try:
        return views.jsonable(who.catalogue.rdi.show(library_id))
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
