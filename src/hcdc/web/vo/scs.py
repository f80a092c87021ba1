"""Simple Cone Search 1.03 over the Target Data Base: ``/scs/targets`` and ``/scs/detections``.

``GET /scs/targets?RA=&DEC=&SR=[&VERB=1|2|3]`` (ICRS degrees; SR the radius in degrees, 0..180)
answers the targets whose position lies within SR of (RA, DEC), nearest first, as a VOTable with
one column each of UCD ``ID_MAIN``, ``POS_EQ_RA_MAIN`` and ``POS_EQ_DEC_MAIN`` (SCS 1.03 section 3)
and the distance ``_r`` (deg). ``/scs/detections`` does the same for companion detections: each
detection's position is its host target's plus its measured offsets (dRA*, dDec in mas; the host's
position when the offsets are unknown, i.e. the PA was measured in the detector frame).

Rights: targets are public (rule R15); detections are filtered by
:func:`hcdc.archive.access.visible_tdb_reductions_clause` for the caller (bearer token or session):
both are read through the request's catalogue facade (``who.catalogue.targets``; the queries are
:mod:`hcdc.archive.tdb_cone`).
Errors (missing or out-of-range parameters) are a VOTable with ``INFO name="Error"`` (SCS 1.03
section 3.3), HTTP 200 as the standard asks.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from hcdc.archive.tdb_cone import angular_distance as angular_distance  # re-exported
from hcdc.web.auth import Viewer, ViewerRoute, viewer
from hcdc.web.vo.datalink import table_votable, votable_response
from hcdc.web.vo.registry import SCS_ID, Capability, vosi_availability, vosi_capabilities, xml_response

router = APIRouter(prefix="/scs", tags=["vo"], route_class=ViewerRoute)

#: most rows answered (larger cones are truncated; an INFO says so)
MAX_ROWS = 10_000


class ConeError(ValueError):
    """A cone-search request that cannot be answered; the message says why."""


def cone_parameters(params: dict[str, str]) -> tuple[float, float, float, int]:
    """(ra, dec, sr in degrees, verbosity) from the request, checked (SCS 1.03 section 3)."""
    values = {}
    for name, low, high in (("RA", 0.0, 360.0), ("DEC", -90.0, 90.0), ("SR", 0.0, 180.0)):
        text = params.get(name)
        if text is None or not text.strip():
            raise ConeError(f"parameter {name} is required (ICRS degrees)")
        try:
            value = float(text)
        except ValueError:
            raise ConeError(f"{name}={text!r} is not a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise ConeError(f"{name}={text!r} is outside [{low:g}, {high:g}] degrees")
        values[name] = value
    verb_text = params.get("VERB", "2").strip() or "2"
    verb = int(verb_text) if verb_text in ("1", "2", "3") else 2
    return values["RA"] % 360.0, values["DEC"], values["SR"], verb


TARGET_FIELDS = {
    1: [
        ("id", "long", "ID_MAIN", None, "Target Data Base target id"),
        ("ra", "double", "POS_EQ_RA_MAIN", "deg", "ICRS right ascension"),
        ("dec", "double", "POS_EQ_DEC_MAIN", "deg", "ICRS declination"),
    ],
    2: [
        ("name", "char", "meta.id", None, "Target name"),
        ("_r", "double", "pos.angDistance", "deg", "Distance from the cone centre"),
        ("simbad_id", "char", "meta.id.cross", None, "SIMBAD main identifier"),
        ("spectral_type", "char", "src.spType", None, "Spectral type"),
        ("mag_h", "double", "phot.mag;em.IR.H", "mag", "H magnitude"),
    ],
    3: [
        ("pmra", "double", "pos.pm;pos.eq.ra", "mas/yr", "Proper motion mu_alpha* (includes cos dec)"),
        ("pmdec", "double", "pos.pm;pos.eq.dec", "mas/yr", "Proper motion mu_delta"),
        ("parallax", "double", "pos.parallax", "mas", "Parallax"),
        ("mag_k", "double", "phot.mag;em.IR.K", "mag", "K magnitude"),
        ("age_myr", "double", "time.age", "Myr", "Age"),
    ],
}
DETECTION_FIELDS = {
    1: [
        ("id", "long", "ID_MAIN", None, "Target Data Base detection id"),
        ("ra", "double", "POS_EQ_RA_MAIN", "deg", "ICRS right ascension of the detection"),
        ("dec", "double", "POS_EQ_DEC_MAIN", "deg", "ICRS declination of the detection"),
    ],
    2: [
        ("target", "char", "meta.id", None, "Host target name"),
        ("_r", "double", "pos.angDistance", "deg", "Distance from the cone centre"),
        ("separation_mas", "double", "pos.angDistance", "mas", "Separation from the host star"),
        ("pa_deg", "double", "pos.posAng", "deg", "Position angle, east of north"),
        ("contrast", "double", "phot.flux;arith.ratio", None, "Flux ratio to the host star"),
        ("snr", "double", "stat.snr", None, "Signal-to-noise ratio"),
        ("offsets_known", "boolean", "meta.code", None, "False: position of the host (PA not on sky)"),
    ],
    3: [
        ("magnitude", "double", "phot.mag", "mag", "Apparent magnitude in the filter"),
        ("filter", "char", "instr.filter", None, "Filter"),
        ("instrument", "char", "instr", None, "Instrument"),
        ("date_jd", "double", "time.epoch", "d", "Julian date of the observation"),
    ],
}


def _fields(table: dict[int, list[tuple[Any, ...]]], verb: int) -> list[tuple[Any, ...]]:
    return [f for level in range(1, verb + 1) for f in table[level]]


def target_rows(who: Viewer, ra: float, dec: float, sr: float, verb: int) -> tuple[list[tuple], bool]:
    """Targets within the cone, nearest first (``who.catalogue.targets.cone``), and whether
    MAX_ROWS truncated them."""
    found = who.catalogue.targets.cone(ra, dec, sr)
    names = [f[0] for f in _fields(TARGET_FIELDS, verb)]
    return [tuple(v[n] for n in names) for v in found[:MAX_ROWS]], len(found) > MAX_ROWS


def detection_rows(who: Viewer, ra: float, dec: float, sr: float, verb: int) -> tuple[list[tuple], bool]:
    """Detections the caller may see within the cone, nearest first
    (``who.catalogue.targets.cone_detections``), and whether MAX_ROWS truncated them."""
    found = who.catalogue.targets.cone_detections(ra, dec, sr)
    names = [f[0] for f in _fields(DETECTION_FIELDS, verb)]
    return [tuple(v[n] for n in names) for v in found[:MAX_ROWS]], len(found) > MAX_ROWS


def error_response(message: str) -> Response:
    """SCS 1.03 error: a VOTable whose RESOURCE holds ``INFO name="Error"`` (HTTP 200)."""
    from xml.sax.saxutils import quoteattr

    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<VOTABLE version="1.4" xmlns="http://www.ivoa.net/xml/VOTable/v1.3">\n'
        f'<RESOURCE type="results">\n<INFO name="Error" value={quoteattr(message)}/>\n'
        "</RESOURCE>\n</VOTABLE>\n"
    )
    return Response(body.encode(), media_type="text/xml")


def _cone(request: Request, who: Viewer, fields: dict[int, list[tuple]], rows_of: Any, name: str) -> Response:
    params = {k.upper(): v for k, v in request.query_params.items()}
    try:
        ra, dec, sr, verb = cone_parameters(params)
    except ConeError as exc:
        return error_response(str(exc))
    rows, truncated = rows_of(who, ra, dec, sr, verb)
    infos = [("standardID", SCS_ID)]
    if truncated:
        infos.append(("Warning", f"more than {MAX_ROWS} rows: the nearest {MAX_ROWS} are returned"))
    return votable_response(table_votable(_fields(fields, verb), rows, name, infos), media_type="text/xml")


@router.get("/targets", summary="Simple Cone Search 1.03 over the Target Data Base targets")
def targets(request: Request, who: Viewer = Depends(viewer)) -> Response:
    return _cone(request, who, TARGET_FIELDS, target_rows, "targets")


@router.get("/detections", summary="Simple Cone Search 1.03 over the detections you may see")
def detections(request: Request, who: Viewer = Depends(viewer)) -> Response:
    return _cone(request, who, DETECTION_FIELDS, detection_rows, "detections")


def _vosi_capabilities(request: Request, table: str) -> Response:
    base = str(request.base_url).rstrip("/")
    return xml_response(
        vosi_capabilities(base, Capability(SCS_ID, f"{base}/scs/{table}", use="base", version="1.03"))
    )


@router.get("/targets/capabilities", summary="VOSI capabilities of the target cone search")
def targets_capabilities(request: Request) -> Response:
    return _vosi_capabilities(request, "targets")


@router.get("/detections/capabilities", summary="VOSI capabilities of the detection cone search")
def detections_capabilities(request: Request) -> Response:
    return _vosi_capabilities(request, "detections")


@router.get("/targets/availability", summary="VOSI availability of the target cone search")
@router.get("/detections/availability", summary="VOSI availability of the detection cone search")
def availability() -> Response:
    return xml_response(vosi_availability())


__all__ = ["ConeError", "angular_distance", "cone_parameters", "router"]
