"""The service in the VO Registry: its VOResource record and the VOSI documents of DataLink.

* ``GET /vo/resource.xml``: the VOResource 1.1 record of the whole service, a
  ``vs:CatalogService`` (VODataService 1.2) with one capability per protocol served — TAP 1.1
  (``tr:TableAccess``, TAPRegExt), SIA 2.0 query, DataLink 1.1 links, Simple Cone Search —, each
  with its interface and access URL, ready to hand to a publishing registry (e.g. the RofR).
* ``GET /datalink/capabilities``, ``/datalink/availability``: VOSI 1.1 documents of the DataLink
  service (``ivo://ivoa.net/std/DataLink#links-1.1`` plus the VOSI capabilities).

Everything comes from the data centre's settings (``vo_authority``, ``vo_title``,
``vo_publisher``, ``vo_contact_name``, ``vo_contact_email``; defaults below when a setting is
absent) and from the URL the record is asked at (the access URLs).
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from hcdc import __version__
from hcdc.archive.identifiers import vo_authority

router = APIRouter(tags=["vo"])

NS = {
    "ri": "http://www.ivoa.net/xml/RegistryInterface/v1.0",
    "vr": "http://www.ivoa.net/xml/VOResource/v1.0",
    "vs": "http://www.ivoa.net/xml/VODataService/v1.1",
    "tr": "http://www.ivoa.net/xml/TAPRegExt/v1.0",
    "cap": "http://www.ivoa.net/xml/VOSICapabilities/v1.0",
    "avl": "http://www.ivoa.net/xml/VOSIAvailability/v1.0",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
for _prefix, _uri in NS.items():
    ET.register_namespace(_prefix, _uri)

XSI_TYPE = f"{{{NS['xsi']}}}type"
DATALINK_ID = "ivo://ivoa.net/std/DataLink#links-1.1"
SIA2_ID = "ivo://ivoa.net/std/SIA#query-2.0"
SCS_ID = "ivo://ivoa.net/std/ConeSearch"
TAP_ID = "ivo://ivoa.net/std/TAP"
VOSI = {
    "capabilities": "ivo://ivoa.net/std/VOSI#capabilities",
    "availability": "ivo://ivoa.net/std/VOSI#availability",
    "tables": "ivo://ivoa.net/std/VOSI#tables",
}
DEFAULTS = {
    "vo_title": "hcdc high-angular-resolution data centre",
    "vo_publisher": "hcdc data centre",
    "vo_contact_name": "hcdc data centre team",
    "vo_contact_email": "",
}
DESCRIPTION = (
    "Raw frames, calibrated Level 1 cubes and post-processed Level 2 products (final images, S/N "
    "maps, contrast curves, detections) of high-angular-resolution instruments, with their "
    "provenance; OIFITS granules of optical interferometry. Proprietary and embargoed data are "
    "served only to authorised accounts (HTTP bearer tokens)."
)


def setting(settings: Any, name: str) -> str:
    return str(getattr(settings, name, None) or DEFAULTS[name])


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    prefix, _, local = tag.rpartition(":")
    element = ET.SubElement(parent, f"{{{NS[prefix]}}}{local}" if prefix else local, attrib)
    if text is not None:
        element.text = text
    return element


@dataclass(frozen=True)
class Capability:
    """One capability: standard id, its interface's access URL, ``use`` and version."""

    standard_id: str
    access_url: str
    use: str = "full"  # full | base | post | dir
    version: str | None = None
    role: str = "std"
    extra: dict[str, Any] = field(default_factory=dict)


def _capability(parent: ET.Element, cap: Capability) -> ET.Element:
    attrib = {"standardID": cap.standard_id}
    if cap.standard_id == TAP_ID:
        attrib[XSI_TYPE] = "tr:TableAccess"
    element = _sub(parent, "capability", **attrib)
    interface = {XSI_TYPE: "vs:ParamHTTP", "role": cap.role}
    if cap.version:
        interface["version"] = cap.version
    node = _sub(element, "interface", **interface)
    _sub(node, "accessURL", cap.access_url, use=cap.use)
    if cap.standard_id == TAP_ID:
        _tap_details(element)
    return element


def _tap_details(element: ET.Element) -> None:
    """TAPRegExt content of the TAP capability: ObsCore, ADQL, output formats, limits."""
    _sub(element, "dataModel", "ObsCore-1.1", **{"ivo-id": "ivo://ivoa.net/std/ObsCore#core-1.1"})
    language = _sub(element, "language")
    _sub(language, "name", "ADQL")
    _sub(language, "version", "2.0", **{"ivo-id": "ivo://ivoa.net/std/ADQL#v2.0"})
    _sub(language, "version", "2.1", **{"ivo-id": "ivo://ivoa.net/std/ADQL#v2.1"})
    _sub(language, "description", "ADQL 2.1 on the catalogue (pgSphere geometry on PostgreSQL)")
    for mime, ivo_id, alias in (
        ("application/x-votable+xml", "ivo://ivoa.net/std/TAPRegExt#output-votable-binary2", "votable"),
        (
            "application/x-votable+xml;serialization=TABLEDATA",
            "ivo://ivoa.net/std/TAPRegExt#output-votable-td",
            "votable/td",
        ),
        ("text/csv", "ivo://ivoa.net/std/TAPRegExt#output-csv", "csv"),
    ):
        output = _sub(element, "outputFormat", **{"ivo-id": ivo_id})
        _sub(output, "mime", mime)
        _sub(output, "alias", alias)


def capabilities(base: str) -> list[Capability]:
    """The capabilities of the whole service at ``base`` (no trailing slash)."""
    return [
        Capability(TAP_ID, f"{base}/tap", use="base", version="1.1"),
        Capability(SIA2_ID, f"{base}/sia/query", use="base", version="2.0"),
        Capability(DATALINK_ID, f"{base}/datalink", use="full", version="1.1"),
        Capability(SCS_ID, f"{base}/scs/targets", use="base", version="1.03"),
    ]


def resource_record(settings: Any, base: str, now: dt.datetime) -> bytes:
    """The VOResource record (``ri:Resource`` of type ``vs:CatalogService``) of the service."""
    stamp = now.replace(microsecond=0).isoformat().removesuffix("+00:00")
    root = ET.Element(
        f"{{{NS['ri']}}}Resource",
        {XSI_TYPE: "vs:CatalogService", "created": stamp, "updated": stamp, "status": "active"},
    )
    _sub(root, "title", setting(settings, "vo_title"))
    _sub(root, "shortName", "hcdc")
    _sub(root, "identifier", f"ivo://{vo_authority(settings)}/vo")
    curation = _sub(root, "curation")
    _sub(curation, "publisher", setting(settings, "vo_publisher"))
    _sub(curation, "version", __version__)
    contact = _sub(curation, "contact")
    _sub(contact, "name", setting(settings, "vo_contact_name"))
    if setting(settings, "vo_contact_email"):
        _sub(contact, "email", setting(settings, "vo_contact_email"))
    content = _sub(root, "content")
    for subject in ("High angular resolution", "Direct imaging", "Exoplanets", "Interferometry"):
        _sub(content, "subject", subject)
    _sub(content, "description", DESCRIPTION)
    _sub(content, "referenceURL", f"{base}/")
    _sub(content, "type", "Archive")
    _sub(content, "contentLevel", "Research")
    _sub(
        root,
        "rights",
        "Public data are free to use; proprietary data (ESO-style periods, product embargo, PI "
        "release delays) are served only to their programme's team and delegates.",
    )
    for cap in capabilities(base):
        _capability(root, cap)
    return _document(root)


def vosi_capabilities(base: str, service: Capability) -> bytes:
    """VOSI capabilities of one service: its own capability and the VOSI ones."""
    root = ET.Element(f"{{{NS['cap']}}}capabilities")
    _capability(root, service)
    root_url = service.access_url.removesuffix("/")
    for name in ("capabilities", "availability"):
        _capability(root, Capability(VOSI[name], f"{root_url}/{name}", use="full"))
    return _document(root)


def vosi_availability(note: str | None = None) -> bytes:
    root = ET.Element(f"{{{NS['avl']}}}availability")
    _sub(root, "avl:available", "true")
    if note:
        _sub(root, "avl:note", note)
    return _document(root)


def _document(root: ET.Element) -> bytes:
    # xsi:type values name the VODataService and TAPRegExt types by prefix: declare them (ElementTree
    # declares only the namespaces of element and attribute names)
    for prefix in ("vs", "tr"):
        root.set(f"xmlns:{prefix}", NS[prefix])
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def xml_response(body: bytes) -> Response:
    return Response(body, media_type="text/xml")


@router.get("/vo/resource.xml", summary="VOResource record of the service (for the VO Registry)")
def resource(request: Request) -> Response:
    state = request.app.state.hcdc
    base = str(request.base_url).rstrip("/")
    return xml_response(resource_record(state.catalogue.settings, base, state.clock()))


__all__ = [
    "DATALINK_ID",
    "SCS_ID",
    "SIA2_ID",
    "TAP_ID",
    "Capability",
    "capabilities",
    "resource_record",
    "router",
    "vosi_availability",
    "vosi_capabilities",
]
