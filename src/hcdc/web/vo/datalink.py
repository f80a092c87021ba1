"""DataLink 1.1 (``/datalink``): what a publisher DID links to, and its provenance (``/datalink/prov``).

``GET|POST /datalink?ID=...[&ID=...][&RESPONSEFORMAT=votable]`` answers one VOTable with the
DataLink 1.1 columns (``ID, access_url, service_def, error_message, semantics, description,
content_type, content_length, content_qualifier, local_semantics, link_auth, link_authorized``),
the rows of each ID together, in the order asked. The links (semantics from the vocabulary
http://www.ivoa.net/rdf/datalink/core):

* a **product** (``ivo://AUTHORITY/product?N``): each FITS file (``#this`` for the main one —
  role ``product`` or ``cube`` —, ``#auxiliary`` for the others), the PNG previews
  (``#preview-image``, ``#preview-plot`` for the contrast curve), the whole product as a zip
  with its sha256 manifest (``#package``), the S/N map and the contrast curve cut out of the
  Level 2 FITS file (``#auxiliary``, ``/datalink/hdu``), its parent products (Level 1 for a
  Level 2 product: ``#progenitor``, pointing to their own DataLink document), the raw files it was
  made from (``#progenitor``) and the calibration files applied (``#progenitor`` with
  ``local_semantics=calibration``: the vocabulary keeps ``#calibration`` for calibrations *not
  yet* applied), the products made from it (``#derivation``), its provenance in the IVOA
  Provenance model as W3C PROV-JSON (``#documentation``, ``local_semantics=provenance``: the
  vocabulary has no ``#provenance`` term) and hcdc's own provenance record (``#documentation``);
* a **raw file** (``file?N``): the file (``#this``), the calibrations associated with its dataset
  (``#calibration``, or ``#dark``/``#flat``/``#bias`` by need), the products made from its
  dataset (``#derivation``) and its PROV-JSON entity;
* an **OIFITS granule** (``granule?N``): its OIFITS file (``#this``).

Rights: every link is decided by :mod:`hcdc.archive.access` for the caller (bearer token or
session, as the REST API). An ID the caller may not see gets exactly the row of an ID that does
not exist (``NotFoundFault: ...``), linked objects the caller may not see are left out, and every
download goes through the REST API's rights-checked routes. ``link_auth`` says whether the linked
object needs an account (``false``: public now; ``true``: visible to the caller only through its
rights), ``link_authorized`` is true on every row returned (what the caller may not use is not
listed).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from hcdc.archive.access import ANONYMOUS, AccessContext
from hcdc.archive.associations import association_view
from hcdc.archive.granules import GranuleRow
from hcdc.archive.identifiers import IdentifierError, parse_publisher_did, publisher_did, vo_authority
from hcdc.archive.models import File
from hcdc.archive.obscore import source_link
from hcdc.archive.pipeline_models import Product, ProductFile, ProvenanceEntry
from hcdc.archive.prov_model import file_provenance, product_provenance
from hcdc.web import views
from hcdc.web.auth import Viewer, viewer
from hcdc.web.params import MAX_ID
from hcdc.web.vo.registry import (
    DATALINK_ID,
    Capability,
    vosi_availability,
    vosi_capabilities,
    xml_response,
)
from hcdc.web.vo.votable import Field as VOField
from hcdc.web.vo.votable import error_document, votable_document

router = APIRouter(prefix="/datalink", tags=["vo"])

DATALINK_MEDIA_TYPE = "application/x-votable+xml;content=datalink"
VOTABLE_MEDIA_TYPE = "application/x-votable+xml"
#: RESPONSEFORMAT values answered (all the same VOTable)
RESPONSE_FORMATS = frozenset(
    {"votable", "application/x-votable+xml", DATALINK_MEDIA_TYPE, "text/xml", "application/x-votable"}
)
#: most IDs answered in one request
MAX_IDS = 200
#: Level 2 FITS extensions served alone as #auxiliary links
AUXILIARY_HDUS = {
    "SNR_MAP": "S/N map of the final image",
    "CONTRAST": "5-sigma contrast curve(s): separation (px, mas), contrast, throughput, noise",
}
#: product file roles that are the product itself (#this)
MAIN_ROLES = ("product", "cube")
PROV_JSON_MEDIA_TYPE = "application/json"


# ------------------------------------------------------------------------------------------------
# the links


@dataclass
class Link:
    """One row of a DataLink document (DataLink 1.1 section 3.2)."""

    id: str
    access_url: str | None = None
    service_def: str | None = None
    error_message: str | None = None
    semantics: str | None = None
    description: str | None = None
    content_type: str | None = None
    content_length: int | None = None  # bytes
    content_qualifier: str | None = None
    local_semantics: str | None = None
    link_auth: str | None = None  # false | optional | true
    link_authorized: bool | None = None

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name, *_ in FIELDS)


#: (name, datatype, ucd, unit, description) of the DataLink 1.1 columns, in the standard's order
FIELDS: tuple[tuple[str, str, str, str | None, str], ...] = (
    ("id", "char", "meta.id;meta.main", None, "Input identifier"),
    ("access_url", "char", "meta.ref.url", None, "Link to data or service"),
    ("service_def", "char", "meta.ref", None, "Reference to a service descriptor resource"),
    ("error_message", "char", "meta.code.error", None, "Error if an access_url cannot be created"),
    ("semantics", "char", "meta.code", None, "Term from the DataLink core vocabulary"),
    ("description", "char", "meta.note", None, "Human-readable text describing this link"),
    ("content_type", "char", "meta.code.mime", None, "Mime-type of the content the link returns"),
    ("content_length", "long", "phys.size;meta.file", "byte", "Size of the download the link returns"),
    ("content_qualifier", "char", "meta.code.class", None, "Product type of the linked resource"),
    ("local_semantics", "char", "meta.code", None, "Semantics of the link local to this service"),
    ("link_auth", "char", "meta.code", None, "Authentication needed: false, optional or true"),
    ("link_authorized", "boolean", "meta.code", None, "Whether the caller is authorised for this link"),
)
FIELD_NAMES = {"id": "ID"}  # VOTable column names differ from the attribute only here


class Faults:
    """Error messages as DataLink 1.1 section 3.4 prefixes them."""

    @staticmethod
    def not_found(did: str) -> str:
        return f"NotFoundFault: {did} is not known to this service"

    @staticmethod
    def usage(message: str) -> str:
        return f"UsageFault: {message}"


class Linker:
    """The links of publisher DIDs for one caller (see the module docstring)."""

    def __init__(self, who: Viewer, base_url: str) -> None:
        self.who = who
        self.conn = who.conn
        self.access: AccessContext = who.access
        self.base = base_url.rstrip("/")
        self.authority = vo_authority(who.state.catalogue.settings)
        self._public = AccessContext(self.conn, ANONYMOUS, who.access.now, who.access.policy)

    # -- URLs -----------------------------------------------------------------------------------
    def file_url(self, file_id: int) -> str:
        return f"{self.base}/api/v1/files/{file_id}/download"

    def product_file_url(self, product_id: int, file_id: int) -> str:
        return f"{self.base}/api/v1/products/{product_id}/files/{file_id}"

    def links_url(self, did: str) -> str:
        from urllib.parse import quote

        return f"{self.base}/datalink?ID={quote(did, safe='')}"

    def prov_url(self, did: str) -> str:
        from urllib.parse import quote

        return f"{self.base}/datalink/prov?ID={quote(did, safe='')}"

    def locate(self, kind: str, number: int) -> str | None:
        """URLs of the PROV-JSON entities (see :data:`hcdc.archive.prov_model.Locator`)."""
        if kind == "file":
            return self.file_url(number)
        if kind == "product":
            return self.links_url(publisher_did(self.authority, "product", number))
        if kind == "productfile":
            pid = self.conn.scalar(select(ProductFile.product_id).where(ProductFile.id == number))
            return None if pid is None else self.product_file_url(pid, number)
        return None

    # -- rights ---------------------------------------------------------------------------------
    def _sees(self, kind: str, number: int) -> bool:
        method = self.access.can_see_file if kind == "file" else self.access.can_see_product
        try:
            return bool(method(number))
        except LookupError:
            return False

    def _auth(self, kind: str, number: int) -> str:
        """``link_auth``: ``false`` when anybody may use the link now, else ``true``."""
        method = self._public.can_see_file if kind == "file" else self._public.can_see_product
        return "false" if method(number) else "true"

    # -- per ID ---------------------------------------------------------------------------------
    def links(self, did: str) -> list[Link]:
        """The rows of one ID: its links, or one row with the error message."""
        try:
            parsed = parse_publisher_did(did, self.authority)
        except IdentifierError as exc:
            if did.strip().lower().startswith("ivo://") and "authority" in str(exc):
                return [Link(did, error_message=Faults.not_found(did))]
            return [Link(did, error_message=Faults.usage(str(exc)))]
        if parsed.key < 1 or parsed.key > MAX_ID:
            return [Link(did, error_message=Faults.not_found(did))]
        if parsed.kind == "product" and self._sees("product", parsed.key):
            return self.product_links(did, parsed.key)
        if parsed.kind == "file" and self._sees("file", parsed.key):
            return self.file_links(did, parsed.key)
        if parsed.kind == "granule":
            granule = self.conn.execute(
                select(GranuleRow.file_id, GranuleRow.access_url).where(GranuleRow.id == parsed.key)
            ).first()
            if granule is not None and granule.file_id is not None and self._sees("file", granule.file_id):
                return self.granule_links(did, granule.file_id)
            if granule is not None and granule.file_id is None and self.access.can_see_granule(parsed.key):
                return self.source_links(did, granule.access_url)
        return [Link(did, error_message=Faults.not_found(did))]

    def _file_link(self, did: str, file_id: int, semantics: str, description: str, **extra: Any) -> Link:
        row = self.conn.execute(select(File.path, File.size).where(File.id == file_id)).one()
        return Link(
            did,
            access_url=self.file_url(file_id),
            semantics=semantics,
            description=f"{description}: {Path(row.path).name}",
            content_type="application/fits",
            content_length=row.size,
            link_auth=self._auth("file", file_id),
            link_authorized=True,
            **extra,
        )

    def product_links(self, did: str, product_id: int) -> list[Link]:
        auth = self._auth("product", product_id)
        product = self.conn.execute(
            select(Product.level, Product.product_type, Product.dataset_id).where(Product.id == product_id)
        ).one()
        qualifier = _product_qualifier(product.product_type)
        out: list[Link] = []
        files = views.product_file_rows(self.who, product_id)
        for f in sorted(files, key=lambda f: (f["role"] not in MAIN_ROLES, f["id"])):
            semantics, local = _file_semantics(f["role"], f["name"], f["media_type"])
            out.append(
                Link(
                    did,
                    access_url=self.product_file_url(product_id, f["id"]),
                    semantics=semantics,
                    description=f"{f['role']} file {f['name']} (sha256 {f['sha256']})",
                    content_type=f["media_type"],
                    content_length=f["size"],
                    content_qualifier=qualifier if semantics == "#this" else None,
                    local_semantics=local,
                    link_auth=auth,
                    link_authorized=True,
                )
            )
        out.append(
            Link(
                did,
                access_url=f"{self.base}/api/v1/products/{product_id}/download",
                semantics="#package",
                description="the whole product as a zip with MANIFEST.sha256",
                content_type="application/zip",
                content_length=None,  # streamed: not known before it is written
                link_auth=auth,
                link_authorized=True,
            )
        )
        out += self._hdu_links(did, product_id, files, auth)
        out += self._progenitor_links(did, product_id)
        out += self._derivation_links(did, product_id, product.dataset_id)
        out.append(
            Link(
                did,
                access_url=self.prov_url(did),
                semantics="#documentation",
                local_semantics="provenance",
                description="provenance down to the raw files: IVOA Provenance DM, W3C PROV-JSON",
                content_type=PROV_JSON_MEDIA_TYPE,
                link_auth=auth,
                link_authorized=True,
            )
        )
        return out

    def _hdu_links(self, did: str, product_id: int, files: list[dict[str, Any]], auth: str) -> list[Link]:
        """#auxiliary links to the S/N map and contrast curve HDUs of the Level 2 FITS file."""
        from astropy.io import fits

        out = []
        for f in files:
            if f["role"] != "product" or f["media_type"] != "application/fits":
                continue
            try:
                path, _ = views.product_file_location(self.who, product_id, f["id"])
                with fits.open(path, lazy_load_hdus=True) as hdus:
                    names = {hdu.name for hdu in hdus}
            except (views.NotFound, OSError, ValueError):
                continue
            for extname, what in AUXILIARY_HDUS.items():
                if extname in names:
                    out.append(
                        Link(
                            did,
                            access_url=f"{self.base}/datalink/hdu?ID={_quote(did)}&FILE={f['id']}&EXTNAME={extname}",
                            semantics="#auxiliary",
                            local_semantics=extname.lower().replace("_", "-"),
                            description=f"{what} ({extname} extension of {f['name']}) as a FITS file",
                            content_type="application/fits",
                            link_auth=auth,
                            link_authorized=True,
                        )
                    )
        return out

    def _progenitor_links(self, did: str, product_id: int) -> list[Link]:
        """Parent products and the raw/calibration files of the whole provenance tree."""
        out: list[Link] = []
        seen_products: set[int] = {product_id}
        seen_files: set[int] = set()
        queue = [product_id]
        while queue:
            current = queue.pop(0)
            record = self.conn.scalar(
                select(ProvenanceEntry.record).where(ProvenanceEntry.product_id == current)
            )
            if not record:
                continue
            for parent_record in record.get("parents") or []:
                parent = self.conn.scalar(
                    select(ProvenanceEntry.product_id).where(ProvenanceEntry.record_id == parent_record)
                )
                if parent is None or parent in seen_products or not self._sees("product", parent):
                    continue
                seen_products.add(parent)
                queue.append(parent)
                kind = self.conn.execute(
                    select(Product.level, Product.product_type).where(Product.id == parent)
                ).one()
                parent_did = publisher_did(self.authority, "product", parent)
                if kind.product_type == "master-calibration":
                    local = "calibration"
                else:
                    local = f"level{kind.level}" if kind.level is not None else None
                out.append(
                    Link(
                        did,
                        access_url=self.links_url(parent_did),
                        semantics="#progenitor",
                        local_semantics=local,
                        description=f"{kind.product_type} {parent_did} this product was made from "
                        "(its DataLink document)",
                        content_type=DATALINK_MEDIA_TYPE,
                        content_qualifier=_product_qualifier(kind.product_type),
                        link_auth=self._auth("product", parent),
                        link_authorized=True,
                    )
                )
            for item in record.get("inputs") or []:
                for f in item.get("files") or []:
                    row = self.conn.execute(
                        select(File.id, File.is_calibration).where(File.sha256 == f.get("sha256")).limit(1)
                    ).first()
                    if row is None or row.id in seen_files or not self._sees("file", row.id):
                        continue
                    seen_files.add(row.id)
                    if row.is_calibration:
                        out.append(
                            self._file_link(
                                did,
                                row.id,
                                "#progenitor",
                                "calibration file applied",
                                local_semantics="calibration",
                            )
                        )
                    else:
                        out.append(
                            self._file_link(did, row.id, "#progenitor", "raw file", local_semantics="raw")
                        )
        return out

    def _derivation_links(self, did: str, product_id: int, dataset_id: int | None) -> list[Link]:
        """Current products whose provenance names this product's run as a parent."""
        record_id = self.conn.scalar(
            select(ProvenanceEntry.record_id).where(ProvenanceEntry.product_id == product_id)
        )
        if dataset_id is None or record_id is None:
            return []
        rows = self.conn.execute(
            select(Product.id, Product.product_type, ProvenanceEntry.record)
            .join(ProvenanceEntry, ProvenanceEntry.product_id == Product.id)
            .where(Product.dataset_id == dataset_id, Product.is_current, Product.id != product_id)
            .order_by(Product.id)
        ).all()
        children = [r for r in rows if record_id in ((r.record or {}).get("parents") or [])]
        links = [
            self._product_link(did, r.id, r.product_type, "#derivation", "made from it") for r in children
        ]
        return [link for link in links if link is not None]

    def _product_link(self, did: str, pid: int, product_type: str, semantics: str, how: str) -> Link | None:
        if not self._sees("product", pid):
            return None
        target = publisher_did(self.authority, "product", pid)
        return Link(
            did,
            access_url=self.links_url(target),
            semantics=semantics,
            description=f"{product_type} {target} {how} (its DataLink document)",
            content_type=DATALINK_MEDIA_TYPE,
            content_qualifier=_product_qualifier(product_type),
            link_auth=self._auth("product", pid),
            link_authorized=True,
        )

    def file_links(self, did: str, file_id: int) -> list[Link]:
        out = [self._file_link(did, file_id, "#this", "raw file")]
        dataset_id, is_calibration = self.conn.execute(
            select(File.dataset_id, File.is_calibration).where(File.id == file_id)
        ).one()
        if dataset_id is not None and not is_calibration:
            try:
                chosen = association_view(self.conn, dataset_id)["chosen"]
            except Exception:  # noqa: BLE001 - a dataset without association: no calibration links
                chosen = []
            for c in chosen:
                if self._sees("file", c["file_id"]):
                    out.append(
                        self._file_link(
                            did,
                            c["file_id"],
                            _calibration_semantics(c["need"]),
                            f"calibration for need {c['need']!r}",
                            local_semantics=c["need"],
                        )
                    )
            products = self.conn.execute(
                select(Product.id, Product.product_type)
                .where(Product.dataset_id == dataset_id, Product.is_current)
                .order_by(Product.id)
            ).all()
            for p in products:
                link = self._product_link(
                    did, p.id, p.product_type, "#derivation", "made from this file's dataset"
                )
                if link is not None:
                    out.append(link)
        out.append(
            Link(
                did,
                access_url=self.prov_url(did),
                semantics="#documentation",
                local_semantics="provenance",
                description="the file as an entity of the IVOA Provenance DM (W3C PROV-JSON)",
                content_type=PROV_JSON_MEDIA_TYPE,
                link_auth=self._auth("file", file_id),
                link_authorized=True,
            )
        )
        return [link for link in out if link is not None]

    def granule_links(self, did: str, file_id: int) -> list[Link]:
        link = self._file_link(did, file_id, "#this", "OIFITS file of the granule")
        return [link]

    def source_links(self, did: str, url: str | None) -> list[Link]:
        """A Level 0 observation log entry (no file here): the exposure's page at its source
        (ObsPortal, the ESO archive), http(s) only; ``#documentation``, as it describes data
        kept elsewhere."""
        link = source_link(url)
        if link is None:
            return [
                Link(did, error_message=f"NotFoundFault: {did} is an observation log entry without data here")
            ]
        return [
            Link(
                did,
                access_url=link,
                semantics="#documentation",
                local_semantics="source",
                description="the exposure at its source (an observation log entry: no file in this archive)",
                content_type="text/html",
                link_auth="false",
                link_authorized=True,
            )
        ]


def _quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _product_qualifier(product_type: str) -> str | None:
    """content_qualifier: the ObsCore ``dataproduct_type`` of a product type (image, cube)."""
    if product_type.startswith("level2"):
        return "image"
    if product_type.startswith("level1"):
        return "cube"
    return None


def _file_semantics(role: str, name: str, media_type: str) -> tuple[str, str | None]:
    """(semantics, local_semantics) of one product file by its role."""
    if role in MAIN_ROLES:
        return "#this", None
    if role == "preview" or media_type.startswith("image/"):
        return ("#preview-plot" if "contrast" in name.lower() else "#preview-image"), "preview"
    if role == "provenance":
        return "#documentation", "hcdc-provenance-record"
    return "#auxiliary", role


def _calibration_semantics(need: str) -> str:
    """The narrower calibration term of the vocabulary for an association need, if any."""
    lowered = need.lower()
    for term in ("dark", "flat", "bias"):
        if term in lowered:
            return f"#{term}"
    return "#calibration"


# ------------------------------------------------------------------------------------------------
# VOTable documents


def links_votable(links: Iterable[Link]) -> bytes:
    """A DataLink 1.1 VOTable (RESOURCE type="results", QUERY_STATUS OK) of ``links``."""
    fields = [(FIELD_NAMES.get(name, name), *rest) for name, *rest in FIELDS]
    infos = [("standardID", "ivo://ivoa.net/std/DataLink#links-1.1")]
    return table_votable(fields, [link.row() for link in links], "links", infos)


def table_votable(
    fields: list[tuple[str, str, str | None, str | None, str]],
    rows: list[tuple[Any, ...]],
    name: str,
    infos: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A VOTable 1.4 result document (TABLEDATA, :func:`hcdc.web.vo.votable.votable_document`) with
    ``fields`` (name, VOTable datatype, UCD, unit, description; ``char`` columns variable-length)
    and ``rows`` (None: null), ``infos`` (name, value) after QUERY_STATUS=OK."""
    columns = [
        VOField(n, datatype, "*" if datatype == "char" else None, unit=unit, ucd=ucd, description=text)
        for n, datatype, ucd, unit, text in fields
    ]
    kinds = [spec[1] for spec in fields]
    rows = [tuple(_xml_safe(v) if kinds[k] == "char" else v for k, v in enumerate(row)) for row in rows]
    return votable_document(
        columns,
        rows,
        serialization="tabledata",
        infos=[(key, value, None) for key, value in infos],
        table_name=name,
    )


def error_votable(message: str) -> bytes:
    """A DALI error document: RESOURCE type="results" with one QUERY_STATUS=ERROR INFO."""
    return error_document(_xml_safe(message))


#: characters XML 1.0 forbids even escaped (C0 controls but tab, newline, carriage return)
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _xml_safe(value: Any) -> Any:
    """A string with the characters XML cannot carry replaced by ``?`` (hostile IDs are echoed)."""
    return _XML_FORBIDDEN.sub("?", value) if isinstance(value, str) else value


def votable_response(body: bytes, status: int = 200, media_type: str = DATALINK_MEDIA_TYPE) -> Response:
    return Response(body, status_code=status, media_type=media_type)


# ------------------------------------------------------------------------------------------------
# routes


async def _parameters(request: Request) -> dict[str, list[str]]:
    """Request parameters (query string and, for POST, the form), names case-insensitive (DALI)."""
    params: dict[str, list[str]] = {}
    items = list(request.query_params.multi_items())
    if request.method == "POST":
        form = await request.form()
        items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    for key, value in items:
        params.setdefault(key.upper(), []).append(value)
    return params


# one route per method: FastAPI would give a GET+POST route one operation id for both
@router.get("", summary="DataLink 1.1 links of publisher DIDs", operation_id="datalink_links_get")
@router.post(
    "", summary="DataLink 1.1 links of publisher DIDs (form parameters)", operation_id="datalink_links_post"
)
async def links(request: Request, who: Viewer = Depends(viewer)) -> Response:
    params = await _parameters(request)
    formats = params.get("RESPONSEFORMAT", [])
    if formats and formats[-1].strip().lower() not in RESPONSE_FORMATS:
        return votable_response(
            error_votable(Faults.usage(f"RESPONSEFORMAT {formats[-1]!r} is not supported: use votable")),
            400,
            VOTABLE_MEDIA_TYPE,
        )
    ids = [i for i in params.get("ID", []) if i.strip()]
    if not ids:
        return votable_response(
            error_votable(Faults.usage("the ID parameter is required")), 400, VOTABLE_MEDIA_TYPE
        )
    if len(ids) > MAX_IDS:
        return votable_response(
            error_votable(Faults.usage(f"{len(ids)} IDs: at most {MAX_IDS} per request")),
            400,
            VOTABLE_MEDIA_TYPE,
        )
    linker = Linker(who, str(request.base_url))
    rows: list[Link] = []
    for did in ids:
        rows += linker.links(did)
    return votable_response(links_votable(rows))


@router.get("/capabilities", summary="VOSI capabilities of the DataLink service")
def capabilities(request: Request) -> Response:
    base = str(request.base_url).rstrip("/")
    return xml_response(vosi_capabilities(base, Capability(DATALINK_ID, f"{base}/datalink", version="1.1")))


@router.get("/availability", summary="VOSI availability of the DataLink service")
def availability() -> Response:
    return xml_response(vosi_availability())


@router.get("/prov", summary="Provenance of a product or file: IVOA Provenance DM as W3C PROV-JSON")
def provenance(request: Request, ID: str = "", who: Viewer = Depends(viewer)) -> JSONResponse:  # noqa: N803
    linker = Linker(who, str(request.base_url))
    try:
        parsed = parse_publisher_did(ID, linker.authority)
    except IdentifierError as exc:
        status, message = (
            (404, Faults.not_found(ID)) if "authority" in str(exc) else (400, Faults.usage(str(exc)))
        )
        return JSONResponse({"error": message}, status_code=status)
    try:
        if parsed.key > MAX_ID or parsed.kind == "granule":
            raise LookupError(ID)
        build = product_provenance if parsed.kind == "product" else file_provenance
        document = build(who.conn, who.access, parsed.key, linker.authority, linker.locate)
    except LookupError:
        return JSONResponse({"error": Faults.not_found(ID)}, status_code=404)
    return JSONResponse(document, media_type=PROV_JSON_MEDIA_TYPE)


@router.get("/hdu", summary="One extension (S/N map, contrast curve) of a Level 2 product file, as FITS")
def hdu(ID: str = "", FILE: int = 0, EXTNAME: str = "", who: Viewer = Depends(viewer)) -> Response:  # noqa: N803
    from astropy.io import fits

    authority = vo_authority(who.state.catalogue.settings)
    try:
        parsed = parse_publisher_did(ID, authority)
    except IdentifierError as exc:
        return JSONResponse({"error": Faults.usage(str(exc))}, status_code=400)
    if EXTNAME not in AUXILIARY_HDUS:
        return JSONResponse(
            {"error": Faults.usage(f"EXTNAME must be one of {', '.join(AUXILIARY_HDUS)}")}, status_code=400
        )
    try:
        if parsed.kind != "product" or not 1 <= parsed.key <= MAX_ID or not 1 <= FILE <= MAX_ID:
            raise views.NotFound(ID)
        path, info = views.product_file_location(who, parsed.key, FILE)
        with fits.open(path) as hdus:
            part = fits.HDUList([fits.PrimaryHDU(), hdus[EXTNAME].copy()])
            buffer = io.BytesIO()
            part.writeto(buffer)
    except (views.NotFound, KeyError, OSError):
        return JSONResponse({"error": Faults.not_found(ID)}, status_code=404)
    name = f"{Path(info['name']).name.split('.')[0]}_{EXTNAME.lower()}.fits"
    return Response(
        buffer.getvalue(),
        media_type="application/fits",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


__all__ = [
    "DATALINK_MEDIA_TYPE",
    "FIELDS",
    "Faults",
    "Link",
    "Linker",
    "error_votable",
    "links_votable",
    "table_votable",
    "router",
]
