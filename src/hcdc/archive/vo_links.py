"""DataLink 1.1 links of publisher DIDs, for one user: what ``/datalink`` answers
(:mod:`hcdc.web.vo.datalink` writes them as a VOTable), built through the catalogue facade
(:attr:`hcdc.archive.catalogue.UserCatalogue.vo`).

Semantics come from the vocabulary http://www.ivoa.net/rdf/datalink/core: a **product**'s files
(``#this``, ``#auxiliary``, previews), its zip (``#package``), the S/N map and contrast HDUs
(``#auxiliary``), parent products, raw and calibration files (``#progenitor``), products made
from it (``#derivation``) and its provenance (``#documentation``); a **raw file** (``#this``),
its dataset's calibrations (``#calibration`` or narrower), products of its dataset
(``#derivation``), its PROV-JSON entity; an **OIFITS granule**: its file (``#this``); a **Level 0
observation log entry** without a file: the exposure's page at its source (``#documentation``,
``local_semantics=source``, http(s) only).

Rights: every link is decided by :mod:`hcdc.archive.access` for the facade's user. An ID the user
may not see gets exactly the row of an ID that does not exist (``NotFoundFault``), linked objects
the user may not see are left out, and downloads are the REST API's rights-checked routes.
``link_auth``: ``false`` when the linked object is public now, ``true`` when the user sees it only
through their rights.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hcdc.archive.access import ANONYMOUS, AccessContext
from hcdc.archive.associations import association_view
from hcdc.archive.catalogue_errors import NotFound
from hcdc.archive.identifiers import IdentifierError, parse_publisher_did, publisher_did
from hcdc.archive.interferometry_models import GranuleRow
from hcdc.archive.models import File
from hcdc.archive.obscore import source_link
from hcdc.archive.pipeline_models import Product, ProductFile, ProvenanceEntry

if TYPE_CHECKING:
    from hcdc.archive.catalogue_errors import VoSession

DATALINK_MEDIA_TYPE = "application/x-votable+xml;content=datalink"
#: Level 2 FITS extensions served alone as #auxiliary links
AUXILIARY_HDUS = {
    "SNR_MAP": "S/N map of the final image",
    "CONTRAST": "5-sigma contrast curve(s): separation (px, mas), contrast, throughput, noise",
}
#: product file roles that are the product itself (#this)
MAIN_ROLES = ("product", "cube")
PROV_JSON_MEDIA_TYPE = "application/json"
#: the largest catalogue id (a DID's key beyond it is unknown)
MAX_KEY = 2**31 - 1


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
    """The links of publisher DIDs for the user of a catalogue facade (see the module docstring),
    at the service ``base_url``, DIDs of ``authority``."""

    def __init__(self, catalogue: VoSession, *, authority: str, base_url: str) -> None:
        self.catalogue = catalogue
        self.conn = catalogue.conn
        self.access: AccessContext = catalogue.access
        self.base = base_url.rstrip("/")
        self.authority = authority
        self._public = AccessContext(self.conn, ANONYMOUS, catalogue.access.now, catalogue.access.policy)

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
        if parsed.key < 1 or parsed.key > MAX_KEY:
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
        files = self.catalogue.product_files(product_id)
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
                path, _ = self.catalogue.product_file(product_id, f["id"])
                with fits.open(path, lazy_load_hdus=True) as hdus:
                    names = {hdu.name for hdu in hdus}
            except (NotFound, OSError, ValueError):
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


__all__ = [
    "AUXILIARY_HDUS",
    "DATALINK_MEDIA_TYPE",
    "FIELDS",
    "MAIN_ROLES",
    "MAX_KEY",
    "PROV_JSON_MEDIA_TYPE",
    "Faults",
    "Link",
    "Linker",
]
