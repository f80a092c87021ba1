"""Portal pages of interferometry: OiDB granules and survey tracking.

* ``/granules``: search the granules the caller may see (target, instrument, night, wavelength,
  collection, level; current versions unless asked), filtered in SQL by
  ``access.granules_clause`` (rules R11-R14);
* ``/granules/{granule_id}``: one granule with its quality flag, OIFITS validation counts, the
  validations people recorded (who, when, flag, comment), its file's versions, its data rights
  and embargo end, and a download link when the caller may read the file (R14); a granule the
  caller may not see is answered 404, as one that does not exist;
* ``POST /granules/{granule_id}/validate``: a person's validation of the granule's file (the
  SPICA ``spica_L2gen`` step, as ``hcdc oi validate``): quality 1-4 and a comment, allowed by
  rule A10; a new archived version with ``HIERARCH QUALITY LEVEL`` results;
* ``/surveys`` and ``/surveys/{name}``: survey tracking (planned → observed → reduced →
  calibrated → validated → published per target, late targets) for the survey's group and staff
  only (rule R16; others get 404, anonymous callers the sign-in page).

Units: wavelengths are entered and shown in µm (stored in m, OiDB's ``em_min``/``em_max``);
a night is the UTC date whose 00:00 is the granule's ``night_id`` (round(MJD), OiDB's night).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hcdc.archive.catalogue import NotFound
from hcdc.archive.granules import QUALITY_LABELS, date_of_night_id, night_id_of_date
from hcdc.web.auth import CSRF_FIELD, Viewer, ViewerRoute, check_csrf, viewer
from hcdc.web.params import ObjectId
from hcdc.web.portal import PortalError, render

router = APIRouter(include_in_schema=False, route_class=ViewerRoute)

#: most granules one search page lists
PAGE_LIMIT = 500
#: columns of the granule search results, in order
RESULT_COLUMNS = (
    "id",
    "target_name",
    "instrument_name",
    "night",
    "em_min_um",
    "em_max_um",
    "calib_level",
    "quality",
    "collection",
    "data_rights",
)


#: search fields the REST endpoint ``/api/v1/granules`` takes too (linked from the page)
_API_FILTERS = ("target", "instrument", "collection", "level")


def _float(text: str | None, what: str) -> float | None:
    if text is None or not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise PortalError(400, f"{what}: not a number ({text[:40]!r})") from None
    if not 0 < value < 1e4:
        raise PortalError(400, f"{what}: {value} is outside 0-10000")
    return value


def _date(text: str | None) -> dt.date | None:
    if text is None or not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise PortalError(400, f"night: not a date YYYY-MM-DD ({text[:40]!r})") from None


def _level(text: str | None) -> int | None:
    if text is None or not text.strip():
        return None
    if text.strip() not in ("0", "1", "2", "3"):
        raise PortalError(400, f"level: 0 to 3, not {text[:10]!r}")
    return int(text)


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    """A granule row with the page's derived fields (night, µm, quality label)."""
    return {
        **row,
        "night": date_of_night_id(round(row["t_min"])).isoformat(),
        "em_min_um": None if row["em_min"] is None else round(row["em_min"] * 1e6, 4),
        "em_max_um": None if row["em_max"] is None else round(row["em_max"] * 1e6, 4),
        "quality": f"{row['quality_level']} {QUALITY_LABELS.get(row['quality_level'], '')}".strip(),
    }


@router.get("/granules", response_class=HTMLResponse)
def granule_search(
    request: Request,
    who: Viewer = Depends(viewer),
    target: str | None = None,
    instrument: str | None = None,
    night: str | None = None,
    wavelength: str | None = None,
    collection: str | None = None,
    level: str | None = None,
    all_versions: str | None = None,
) -> HTMLResponse:
    values = {
        "target": target or "",
        "instrument": instrument or "",
        "night": night or "",
        "wavelength": wavelength or "",
        "collection": collection or "",
        "level": level or "",
        "all_versions": all_versions or "",
    }
    day = _date(night)
    microns = _float(wavelength, "wavelength (µm)")
    rows = who.catalogue.granules.search(
        target=(target or "").strip()[:128] or None,
        instrument=(instrument or "").strip()[:64] or None,
        collection=(collection or "").strip()[:128] or None,
        level=_level(level),
        night_id=None if day is None else night_id_of_date(day),
        wavelength=None if microns is None else microns * 1e-6,
        all_versions=all_versions == "true",
        limit=PAGE_LIMIT + 1,
    )
    more = len(rows) > PAGE_LIMIT
    return render(
        request,
        who,
        "granules.html",
        values=values,
        rows=[_shown(r) for r in rows[:PAGE_LIMIT]],
        more=more,
        columns=RESULT_COLUMNS,
        api="/api/v1/granules?" + urlencode({k: v for k, v in values.items() if v and k in _API_FILTERS}),
    )


@router.get("/granules/{granule_id}", response_class=HTMLResponse)
def granule_page(request: Request, granule_id: ObjectId, who: Viewer = Depends(viewer)) -> HTMLResponse:
    try:  # missing and hidden answered alike
        detail = who.catalogue.granules.granule_detail(granule_id)
    except NotFound as exc:
        raise PortalError(404, str(exc)) from None
    return render(
        request,
        who,
        "granule.html",
        g=_shown(detail["granule"]),
        file_id=detail["file_id"],
        can_download=detail["can_download"],
        can_validate=who.signed_in and detail["can_validate"],
        validations=detail["validations"],
        versions=detail["versions"],
        now=who.access.now,
    )


@router.post("/granules/{granule_id}/validate")
async def validate_granule(request: Request, granule_id: ObjectId, who: Viewer = Depends(viewer)) -> Response:
    from hcdc.archive.access import AccessDenied
    from hcdc.archive.interferometry import InterferometryError

    form = await request.form()
    check_csrf(request, str(form.get(CSRF_FIELD) or ""))
    try:
        file_id = who.catalogue.granules.file_of(granule_id)
    except NotFound as exc:
        raise PortalError(404, str(exc)) from None
    if not who.signed_in:
        raise PortalError(403, "sign in to validate")
    try:
        quality = int(str(form.get("quality") or ""))
    except ValueError:
        raise PortalError(422, "quality: 1 (trash), 2 (poor), 3 (medium) or 4 (science ready)") from None
    calibrator = {"science": False, "calibrator": True}.get(str(form.get("category") or ""))
    try:
        record = who.catalogue.granules.validate(file_id, quality, str(form.get("comment") or ""), calibrator)
    except AccessDenied as exc:
        raise PortalError(403, str(exc)) from None
    except (InterferometryError, ValueError) as exc:
        raise PortalError(422, str(exc)) from None
    new_id = who.catalogue.granules.successor(granule_id, record["new_file"])
    return RedirectResponse(f"/granules/{new_id or granule_id}", status_code=303)


@router.get("/surveys", response_class=HTMLResponse)
def survey_list(request: Request, who: Viewer = Depends(viewer)) -> Response:
    if not who.signed_in:
        return RedirectResponse("/login?next=/surveys", status_code=303)
    return render(request, who, "surveys.html", surveys=who.catalogue.granules.surveys())


@router.get("/surveys/{name}", response_class=HTMLResponse)
def survey_page(request: Request, name: str, who: Viewer = Depends(viewer)) -> Response:
    from hcdc.archive.interferometry_survey import STAGES

    if not who.signed_in:
        return RedirectResponse(f"/login?{urlencode({'next': f'/surveys/{name}'})}", status_code=303)
    try:
        status = who.catalogue.granules.survey(name)
    except NotFound:
        # the same answer for a missing survey and one of another group (R16)
        raise PortalError(404, f"no survey {name!r}") from None
    return render(request, who, "survey.html", s=status, stages=STAGES)
