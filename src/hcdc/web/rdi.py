"""RDI reference libraries on the web (docs/rdi.md): the REST reads (the libraries the caller may
see, one library with its frames) and the portal pages ``/rdi`` (the list, the viewer's own
marked and first with ``?mine=1`` only theirs) and ``/rdi/{id}`` (set-up, selection, frames per
source product, the best frames). Rule R18 of :mod:`hcdc.archive.access` decides, through the
catalogue facade (:attr:`~hcdc.archive.catalogue.UserCatalogue.rdi`); a library the caller may
not see is answered 404, as one that does not exist."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from hcdc.archive.catalogue import NotFound
from hcdc.web import views
from hcdc.web.auth import Viewer, ViewerRoute, viewer
from hcdc.web.params import MAX_ID, ObjectId
from hcdc.web.portal import PortalError, render

router = APIRouter(route_class=ViewerRoute)


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


#: best frames shown on a library's page
PAGE_FRAMES = 20


@router.get("/rdi", response_class=HTMLResponse)
def libraries_page(request: Request, who: Viewer = Depends(viewer), mine: bool = False) -> HTMLResponse:
    libraries = views.jsonable(who.catalogue.rdi.list(None))
    name = who.user.name if who.signed_in else None
    for lib in libraries:
        lib["mine"] = name is not None and lib["built_by"] == name
    if mine:
        libraries = [lib for lib in libraries if lib["mine"]]
    libraries.sort(key=lambda lib: not lib["mine"])  # the viewer's own first (stable: newest first)
    return render(request, who, "rdi.html", libraries=libraries, mine=mine)


@router.get("/rdi/{library_id}", response_class=HTMLResponse)
def library_page(request: Request, library_id: ObjectId, who: Viewer = Depends(viewer)) -> HTMLResponse:
    try:
        lib = views.jsonable(who.catalogue.rdi.show(library_id))
    except NotFound as exc:
        raise PortalError(404, str(exc)) from None
    return render(request, who, "rdi_library.html", lib=lib, frames=lib.get("frames", [])[:PAGE_FRAMES])
