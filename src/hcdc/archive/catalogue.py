"""The catalogue facade: a data centre as one user sees it.

In the spirit of Rubin's ``daf_butler.Butler``, one object puts the three parts of the archive
behind one interface, so that callers stop threading ``(conn, storage_root)`` and a principal
through every function:

* the **registry** (SQL): search products, a product's description, its files and versions;
* the **datastore** (files under the storage root): where a product's file is, opened for
  reading, the members of a product's zip — never outside the storage root;
* **provenance**: a product's record and its tree of parent products down to the raw files.

A :class:`UserCatalogue` is opened *for one principal*: with
:meth:`hcdc.archive.db.Catalogue.as_user` (its own read connection), or on a connection and an
:class:`~hcdc.archive.access.AccessContext` that a caller already holds (a web request). It never
decides anything itself: every "may this user see it" goes to :mod:`hcdc.archive.access`. An
object the user may not see is answered exactly as one that does not exist (:class:`NotFound`),
so nobody learns that a hidden id exists.

What goes through the facade today, and what does not yet, is listed in docs/architecture.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, select

from hcdc.archive import accounts
from hcdc.archive import products as prod
from hcdc.archive.access import AccessContext, Principal
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Product, ProductFile
from hcdc.archive.search import Criteria, Page, search_products

__all__ = ["MAX_PROVENANCE_DEPTH", "NotFound", "UserCatalogue"]

#: how deep a provenance tree goes (products made from products ...)
MAX_PROVENANCE_DEPTH = 6


class NotFound(LookupError):
    """No such object, or one the user may not see (the same answer for both)."""


class UserCatalogue:
    """The registry, the datastore and provenance of a data centre, as ``access.user`` sees them.

    ``conn`` is an open connection (reads only), ``storage_root`` the data centre's storage root,
    ``access`` the decisions for the user on that connection (its clock and policy).
    """

    def __init__(self, conn: Connection, storage_root: str | Path, access: AccessContext) -> None:
        self.conn = conn
        self.storage_root = Path(storage_root)
        self.access = access

    @property
    def user(self) -> Principal:
        return self.access.user

    def _require(self, kind: str, number: int) -> None:
        """Raise :class:`NotFound` unless access.py lets the user see this object."""
        method = {
            "file": self.access.can_see_file,
            "dataset": self.access.can_see_dataset,
            "product": self.access.can_see_product,
        }[kind]
        try:
            decision = method(number)
        except LookupError:
            raise NotFound(f"no {kind} with id {number}") from None
        if not decision:
            raise NotFound(f"no {kind} with id {number}")

    # -- registry -------------------------------------------------------------------------------

    def search_products(self, criteria: Criteria) -> Page:
        """One page of the current products matching ``criteria`` that the user may see
        (:func:`hcdc.archive.search.search_products`; raises its ``SearchError``)."""
        return search_products(self.conn, criteria, self.access.products_clause())

    def list_products(self, **filters: Any) -> list[dict[str, Any]]:
        """Products the user may see, newest first (:func:`hcdc.archive.products.list_products`
        filters: level, dataset_id, product_type, target, all_versions, limit)."""
        return prod.list_products(self.conn, visible=self.access.products_clause(), **filters)

    def product_detail(self, product_id: int) -> dict[str, Any]:
        """The catalogue's whole record of a product the user may see, storage paths included
        (:func:`hcdc.archive.products.product_detail`): for tools that run next to the store
        (the command line); services show :meth:`product` instead."""
        self._require("product", product_id)
        detail = prod.product_detail(self.conn, product_id, self.storage_root)
        if detail is None:
            raise NotFound(f"no product with id {product_id}")
        return detail

    def product(self, product_id: int) -> dict[str, Any]:
        """A product as a service shows it: description, files (by id, no server path),
        detections, contrast at standard separations, review mark, release date, the versions
        and parent products the user may see, its dataset (flagged when hidden)."""
        detail = self.product_detail(product_id)
        for key in ("storage_dir", "previews"):
            detail.pop(key, None)
        detail["files"] = self.product_files(product_id)
        detail["versions"] = [v for v in detail["versions"] if self.access.can_see_product(v["id"])]
        summary = detail.get("summary") or {}
        summary.pop("outputs", None)  # worker-side paths
        detail["detections"] = summary.get("detections") or []
        detail["contrast_at"] = summary.get("contrast_at") or []
        status = accounts.product_status(self.conn, [product_id])[product_id]
        detail["review"] = status["review"]
        detail["review_reason"] = status["reason"]
        detail["delayed_until"] = status["delayed_until"]
        detail["public_date"] = self.access.product_public_date(product_id)
        if detail.get("dataset_id") is not None:
            ds = self.conn.execute(
                select(Dataset.instrument, Dataset.mode, Dataset.night, Dataset.setup, Dataset.prog_id).where(
                    Dataset.id == detail["dataset_id"]
                )
            ).first()
            detail["dataset"] = dict(ds._mapping) if ds is not None else None
            detail["dataset_visible"] = bool(self.access.can_see_dataset(detail["dataset_id"]))
        provenance = detail.get("provenance") or {}
        provenance["parent_products"] = [
            p
            for p in provenance.get("parent_products") or []
            if p is not None and self.access.can_see_product(p)
        ]
        return detail

    def product_files(self, product_id: int) -> list[dict[str, Any]]:
        """The files of a product the user may see, by id: name, role, sha256, size, media type."""
        self._require("product", product_id)
        rows = self.conn.execute(
            select(
                ProductFile.id,
                ProductFile.role,
                ProductFile.path,
                ProductFile.sha256,
                ProductFile.size,
                ProductFile.media_type,
            )
            .where(ProductFile.product_id == product_id)
            .order_by(ProductFile.role, ProductFile.path)
        ).all()
        return [
            {
                "id": r.id,
                "name": Path(r.path).name,
                "role": r.role,
                "sha256": r.sha256,
                "size": r.size,
                "media_type": r.media_type,
            }
            for r in rows
        ]

    # -- datastore ------------------------------------------------------------------------------

    def stored_path(self, relative: str) -> Path:
        """The storage root joined with a catalogued relative path; it must stay inside the
        storage root once resolved (symbolic links included) and be a file: no traversal,
        whatever the row says."""
        root = self.storage_root.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise NotFound(f"file {relative!r} is not in the store")
        return path

    def product_file(self, product_id: int, file_id: int) -> tuple[Path, dict[str, Any]]:
        """(path in the store, file row) of one file of a product the user may see."""
        self._require("product", product_id)
        row = self.conn.execute(
            select(ProductFile).where(ProductFile.id == file_id, ProductFile.product_id == product_id)
        ).first()
        if row is None:
            raise NotFound(f"no file {file_id} in product {product_id}")
        return self.stored_path(row.path), {
            "id": row.id,
            "name": Path(row.path).name,
            "path": row.path,
            "role": row.role,
            "sha256": row.sha256,
            "size": row.size,
            "media_type": row.media_type,
        }

    def open_product_file(self, product_id: int, file_id: int) -> IO[bytes]:
        """One file of a product the user may see, opened for reading (binary); close it."""
        path, _ = self.product_file(product_id, file_id)
        return path.open("rb")

    def product_zip_members(self, product_id: int) -> list[tuple[Path, dict[str, Any]]]:
        """Every file of a product the user may see, with its path inside the product's zip
        (``arcname``: relative to the product's directory)."""
        storage_dir = self.conn.scalar(select(Product.storage_dir).where(Product.id == product_id))
        out = []
        for row in self.product_files(product_id):
            path, info = self.product_file(product_id, row["id"])
            try:
                inside = Path(info["path"]).relative_to(storage_dir).as_posix()
            except ValueError:
                inside = info["name"]
            out.append((path, {**info, "arcname": inside}))
        return out

    # -- provenance -----------------------------------------------------------------------------

    def provenance_record(self, product_id: int) -> dict[str, Any]:
        """The provenance record of a product the user may see (JSON dict of a
        :class:`hcdc.pipeline.provenance.ProvenanceRecord`, as the worker stored it)."""
        self._require("product", product_id)
        try:
            return prod.get_record(self.conn, product_id)
        except LookupError:
            raise NotFound(f"no product with id {product_id}") from None

    def provenance(self, product_id: int, depth: int = 0) -> dict[str, Any]:
        """A product the user may see, its parent products (those the user may see; others
        named as hidden) and, at the leaves, the input files with their checksums and catalogue
        ids (None for a file the user may not see)."""
        record = self.provenance_record(product_id)
        node: dict[str, Any] = {
            "product_id": product_id,
            "recipe": f"{record['recipe']} {record['recipe_version']}",
            "parameters": record.get("parameters"),
            "software_version": record.get("software_version"),
            "git_commit": record.get("git_commit"),
            "started": record.get("started"),
            "finished": record.get("finished"),
            "inputs": [],
            "parents": [],
        }
        for item in record.get("inputs") or []:
            files = []
            for f in item.get("files") or []:
                file_id = self.conn.scalar(
                    select(File.id)
                    .where(File.sha256 == f.get("sha256"), File.is_current)
                    .order_by(File.id)
                    .limit(1)
                )
                if file_id is not None and not self.access.can_see_file(file_id):
                    file_id = None
                files.append(
                    {"name": Path(str(f.get("path", ""))).name, "sha256": f.get("sha256"), "file_id": file_id}
                )
            node["inputs"].append({"name": item.get("name"), "kind": item.get("kind"), "files": files})
        for parent_record in record.get("parents") or []:
            parent = prod.product_of_record(self.conn, parent_record)
            if parent is None or depth >= MAX_PROVENANCE_DEPTH:
                continue
            if self.access.can_see_product(parent):
                node["parents"].append(self.provenance(parent, depth + 1))
            else:
                node["parents"].append({"product_id": None, "hidden": True})
        return node
