"""Pipeline products in the catalogue: registration (atomic, versioned), listing, provenance.

How a product gets into the data centre:

1. A recipe or workflow writes its outputs into a *staging* directory under the storage root
   (``products/<name>.tmp``).
2. :func:`publish_directory` renames the staging directory to its final name in one atomic
   ``rename`` (same file system), so a final directory is always complete; the provenance
   records are rewritten to the final paths (:func:`relocate_record`) and saved next to the
   outputs.
3. :func:`register_products` writes the product rows, their files (sha256, size, media type)
   and provenance in **one transaction** (the caller may add its own statements to it, e.g.
   completing the job). A product belongs to a *lineage* (a dataset and a product type); a new
   product in a lineage gets the next version and becomes the current one, the previous versions
   are kept with ``is_current`` false.

What makes it safe: a process killed before step 3 commits leaves at most an unregistered
directory (never rows pointing at missing files); the database's unique constraints
(``(lineage, version)``, one current version per lineage, ``(job_id, node)``) mean that a
retried job, or two registrations racing, cannot produce duplicates: the loser's transaction
fails and is retried on fresh data (:func:`register_products` returns the existing products
when a job's nodes are already registered).

Storage layout: ``<storage_root>/products/job-<id>/attempt-<n>/<node>/...`` for jobs,
``<storage_root>/products/rerun-<product id>-<stamp>/...`` for reruns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import mimetypes
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from hcdc.archive.models import Dataset, File, utcnow
from hcdc.archive.obscore import sync_product_rows
from hcdc.archive.pipeline_models import Product, ProductFile, ProductSource, ProvenanceEntry
from hcdc.archive.storage import resolve_stored_path
from hcdc.archive.transactions import write_transaction
from hcdc.science.checksums import sha256_file

PRODUCTS_DIR = "products"

_MEDIA_TYPES = {
    ".fits": "application/fits",
    ".fit": "application/fits",
    ".fz": "application/fits",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain",
    ".csv": "text/csv",
}


class ProductError(RuntimeError):
    """A product operation cannot proceed; the message says why."""


def media_type(path: str | Path) -> str:
    """The media type of a product file from its name (FITS, PNG, JSON, ...)."""
    name = str(path).lower()
    if name.endswith(".gz"):
        return "application/gzip"
    suffix = Path(name).suffix
    return _MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


# --------------------------------------------------------------------------------------------
# staging and publishing files


def staging_dir(storage_root: Path, name: str) -> Path:
    """A fresh, empty staging directory ``products/<name>.tmp`` (a leftover is removed)."""
    path = Path(storage_root) / PRODUCTS_DIR / f"{name}.tmp"
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _fsync_tree(root: Path, mode: int | None = None) -> None:
    """Flush every file of ``root`` to disk (so the rename publishes complete files), giving each
    the permission bits ``mode`` when set (the data centre's ``file_mode``, as ingest's copies)."""
    for member in root.rglob("*"):
        if member.is_file():
            fd = os.open(member, os.O_RDONLY)
            try:
                if mode is not None:
                    os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)


def publish_directory(staging: Path, final: Path, mode: int | None = None) -> Path:
    """Rename a complete staging directory to ``final`` atomically (and durably).

    A leftover ``final`` from an earlier, unregistered attempt is replaced. ``mode``: permission
    bits for every published file (the data centre's ``file_mode``); None keeps what they have.
    """
    _fsync_tree(staging, mode)
    if final.exists():
        shutil.rmtree(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, final)
    return final


def relocate_record(record: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    """A copy of a provenance record (JSON dict) whose file paths under ``old`` now point under
    ``new`` (the files' sha256 are unchanged by a rename)."""
    import copy

    old_s, new_s = str(Path(old)), str(Path(new))
    data = copy.deepcopy(record)
    for item in [*data.get("inputs", []), *data.get("outputs", [])]:
        for f in item.get("files", []):
            if f["path"] == old_s or f["path"].startswith(old_s + os.sep):
                f["path"] = new_s + f["path"][len(old_s) :]
    return data


def relocate_value(value: Any, old: Path, new: Path) -> Any:
    """An output value (path, list, dict of paths) with paths under ``old`` moved under ``new``."""
    if isinstance(value, Path):
        try:
            return Path(new) / value.relative_to(old)
        except ValueError:
            return value
    if isinstance(value, list):
        return [relocate_value(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: relocate_value(v, old, new) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------------------------
# registering


@dataclass
class FileSpec:
    """One file of a product to register: absolute path and role."""

    path: Path
    role: str


@dataclass
class ProductSpec:
    """Everything needed to register one product (see :func:`register_products`)."""

    lineage: str
    recipe: str
    recipe_version: str
    record: dict[str, Any]  # a ProvenanceRecord as JSON (model_dump(mode='json'))
    storage_dir: Path  # absolute; files are stored relative to the storage root
    files: list[FileSpec]
    level: int | None = None
    product_type: str = ""
    dataset_id: int | None = None
    target: str | None = None
    job_id: int | None = None
    node: str | None = None
    workflow: str | None = None
    workflow_version: str | None = None
    summary: dict[str, Any] | None = None
    rerun_of_id: int | None = None
    status: str = "done"
    hashes: dict[str, tuple[str, int]] = field(default_factory=dict)


def collect_files(node_dir: Path, outputs: Mapping[str, Any]) -> list[FileSpec]:
    """Every file under a recipe's output directory, with its role.

    The role is the name of the output the file is (or lies inside), ``preview`` for PNG
    images, ``provenance`` for ``provenance.json``, else ``auxiliary``.
    """
    owners: list[tuple[Path, str]] = []
    for name, value in outputs.items():
        if isinstance(value, Path):
            owners.append((value.resolve(), name))
    specs = []
    for member in sorted(Path(node_dir).rglob("*")):
        if not member.is_file():
            continue
        resolved = member.resolve()
        role = next((name for owner, name in owners if resolved == owner or owner in resolved.parents), None)
        if role is None:
            if member.name == "provenance.json":
                role = "provenance"
            elif member.suffix.lower() == ".png":
                role = "preview"
            else:
                role = "auxiliary"
        elif member.suffix.lower() == ".png":
            role = "preview"
        specs.append(FileSpec(member, role))
    return specs


def _relative(path: Path, storage_root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(Path(storage_root).resolve()).as_posix()
    except ValueError as exc:
        raise ProductError(f"{path} is not under the storage root {storage_root}") from exc


def _hash_files(spec: ProductSpec) -> None:
    for f in spec.files:
        key = str(f.path)
        if key not in spec.hashes:
            spec.hashes[key] = (sha256_file(f.path), f.path.stat().st_size)


def _register_one(conn: Connection, spec: ProductSpec, storage_root: Path, now: dt.datetime) -> int:
    if spec.job_id is not None and spec.node is not None:
        existing = conn.scalar(
            select(Product.id).where(Product.job_id == spec.job_id, Product.node == spec.node)
        )
        if existing is not None:  # an earlier attempt of this job registered it already
            return existing
    latest = conn.scalar(select(func.max(Product.version)).where(Product.lineage == spec.lineage)) or 0
    conn.execute(
        update(Product)
        .where(Product.lineage == spec.lineage, Product.is_current)
        .values(is_current=False, superseded_at=now)
    )
    product_id = conn.execute(
        insert(Product)
        .values(
            lineage=spec.lineage,
            version=latest + 1,
            is_current=True,
            level=spec.level,
            product_type=spec.product_type,
            dataset_id=spec.dataset_id,
            target=spec.target,
            job_id=spec.job_id,
            node=spec.node,
            recipe=spec.recipe,
            recipe_version=spec.recipe_version,
            workflow=spec.workflow,
            workflow_version=spec.workflow_version,
            status=spec.status,
            storage_dir=_relative(spec.storage_dir, storage_root),
            summary=spec.summary,
            rerun_of_id=spec.rerun_of_id,
            created_at=now,
        )
        .returning(Product.id)
    ).scalar_one()
    rows = []
    for f in spec.files:
        sha, size = spec.hashes[str(f.path)]
        rows.append(
            {
                "product_id": product_id,
                "role": f.role,
                "path": _relative(f.path, storage_root),
                "sha256": sha,
                "size": size,
                "media_type": media_type(f.path),
            }
        )
    if rows:
        conn.execute(insert(ProductFile), rows)
    record = spec.record
    conn.execute(
        insert(ProvenanceEntry).values(
            product_id=product_id,
            record_id=record["id"],
            recipe=record["recipe"],
            recipe_version=record["recipe_version"],
            workflow=record.get("workflow"),
            workflow_version=record.get("workflow_version"),
            parameters=record.get("parameters") or {},
            software_version=record.get("software_version"),
            git_commit=record.get("git_commit"),
            host=record.get("host"),
            started=record.get("started"),
            finished=record.get("finished"),
            record=record,
        )
    )
    return product_id


def register_products(
    engine: Engine,
    specs: Iterable[ProductSpec],
    storage_root: Path,
    *,
    within: Callable[[Connection, list[int]], None] | None = None,
    attempts: int = 5,
) -> list[int]:
    """Register products (rows, files, provenance) in one transaction; returns their ids.

    ``within(conn, product_ids)`` runs inside the same transaction before the commit (raise to
    roll everything back). A unique-constraint conflict with a concurrent registration rolls
    back and retries on fresh data, up to ``attempts`` times.
    """
    specs = list(specs)
    for spec in specs:
        _hash_files(spec)  # outside the transaction: hashing large files must not hold locks
    for attempt in range(1, attempts + 1):
        try:
            with write_transaction(engine) as conn:
                now = utcnow()
                ids = [_register_one(conn, spec, storage_root, now) for spec in specs]
                sync_product_rows(conn, ids)  # their ObsCore rows (ivoa.obscore)
                if within is not None:
                    within(conn, ids)
            return ids
        except (IntegrityError, OperationalError):
            if attempt == attempts:
                raise
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def link_product_sources(
    conn: Connection, product_ids: Iterable[int], input_paths: Iterable[str | Path], storage_root: Path
) -> list[int]:
    """Record the catalogued files among ``input_paths`` (the absolute paths a job read) as the
    sources of those of ``product_ids`` that have no dataset, so that they follow the files'
    access rules (rule R17 of :mod:`hcdc.archive.access`). A path is a catalogued file when it is
    where a ``files`` row keeps its bytes (:func:`~hcdc.archive.storage.resolve_stored_path`).
    Returns the source file ids (sorted; empty when no input is catalogued)."""
    root = Path(storage_root)
    paths = {str(Path(p)) for p in input_paths}
    keys = set(paths)
    for p in paths:
        try:
            keys.add(str(Path(p).relative_to(root)))  # a copied file's stored_path is relative
        except ValueError:
            pass
    if not keys:
        return []
    rows = conn.execute(
        select(File.id, File.storage, File.stored_path).where(File.stored_path.in_(sorted(keys)))
    ).all()
    file_ids = sorted(
        {r.id for r in rows if str(resolve_stored_path(r.storage, r.stored_path, root)) in paths}
    )
    if not file_ids:
        return []
    ids = list(product_ids)
    without_dataset = conn.scalars(
        select(Product.id).where(Product.id.in_(ids), Product.dataset_id.is_(None))
    ).all()
    rows_out = [{"product_id": p, "file_id": f} for p in sorted(without_dataset) for f in file_ids]
    if rows_out:
        conn.execute(insert(ProductSource), rows_out)
    return file_ids


def dataset_lineage(dataset_id: int, product_type: str) -> str:
    """Lineage of a product of a catalogued dataset."""
    return f"dataset/{dataset_id}/{product_type}"


def variant_lineage(lineage: str, variant: str) -> str:
    """Lineage of a complementary variant of the products of ``lineage`` (e.g. a Level 2 product
    from selected frames, ``frames-selected-<criteria id>``): versions of the variant supersede
    each other, never the products of ``lineage``."""
    if not variant or "/" in variant:
        raise ValueError(f"a product variant is a non-empty name without '/'; got {variant!r}")
    return f"{lineage}/{variant}"


def inputs_lineage(record: dict[str, Any], product_type: str) -> str:
    """Lineage of a product made from explicit input files: keyed by the inputs' checksums."""
    sums = sorted(f["sha256"] for item in record.get("inputs", []) for f in item.get("files", []))
    digest = hashlib.sha256("\n".join(sums).encode()).hexdigest()[:16]
    return f"inputs/{digest}/{product_type}"


# --------------------------------------------------------------------------------------------
# reading


def _product_row(row: Any) -> dict[str, Any]:
    m = row._mapping
    return {
        "id": m["id"],
        "level": m["level"],
        "type": m["product_type"],
        "version": m["version"],
        "current": m["is_current"],
        "dataset_id": m["dataset_id"],
        "target": m["target"],
        "recipe": f"{m['recipe']} {m['recipe_version']}",
        "workflow": m["workflow"],
        "node": m["node"],
        "job_id": m["job_id"],
        "status": m["status"],
        "created_at": m["created_at"],
        "lineage": m["lineage"],
    }


def list_products(
    conn: Connection,
    *,
    level: int | None = None,
    dataset_id: int | None = None,
    product_type: str | None = None,
    target: str | None = None,
    all_versions: bool = False,
    limit: int | None = 200,
    visible: ColumnElement[bool] | None = None,
) -> list[dict[str, Any]]:
    """Products (current versions unless ``all_versions``), newest first.

    ``visible``: the rows the asking user may see (:func:`hcdc.archive.access.visible_products_clause`).
    """
    query = select(Product).order_by(Product.id.desc())
    if visible is not None:
        query = query.where(visible)
    if not all_versions:
        query = query.where(Product.is_current)
    if level is not None:
        query = query.where(Product.level == level)
    if dataset_id is not None:
        query = query.where(Product.dataset_id == dataset_id)
    if product_type is not None:
        query = query.where(Product.product_type == product_type)
    if target is not None:
        query = query.where(func.lower(Product.target).contains(target.lower()))
    if limit is not None:
        query = query.limit(limit)
    return [_product_row(r) for r in conn.execute(query)]


# statements of a product page, built once (a statement built per call costs ~0.2 ms of Python)
_RECORD_OF_PRODUCT = select(ProvenanceEntry.record).where(
    ProvenanceEntry.product_id == bindparam("product_id")
)
_PRODUCT_FILES = (
    select(ProductFile)
    .where(ProductFile.product_id == bindparam("product_id"))
    .order_by(ProductFile.role, ProductFile.path)
)
_PRODUCT = select(Product).where(Product.id == bindparam("product_id"))
_VERSIONS = (
    select(Product.id, Product.version, Product.is_current, Product.created_at)
    .where(Product.lineage == bindparam("lineage"))
    .order_by(Product.version)
)


def get_record(conn: Connection, product_id: int) -> dict[str, Any]:
    """The provenance record (JSON dict of a ``ProvenanceRecord``) of a product."""
    data = conn.scalar(_RECORD_OF_PRODUCT, {"product_id": product_id})
    if data is None:
        raise LookupError(f"no product with id {product_id}")
    return data


def record_by_id(conn: Connection, record_id: str) -> dict[str, Any] | None:
    """A provenance record by its id (None when no catalogued product has it)."""
    return conn.scalar(select(ProvenanceEntry.record).where(ProvenanceEntry.record_id == record_id))


def product_of_record(conn: Connection, record_id: str) -> int | None:
    """The id of the product a provenance record belongs to."""
    return conn.scalar(select(ProvenanceEntry.product_id).where(ProvenanceEntry.record_id == record_id))


def product_files(conn: Connection, product_id: int, storage_root: Path) -> list[dict[str, Any]]:
    """The files of a product with absolute paths (and their catalogue ids), by role and path."""
    rows = conn.execute(_PRODUCT_FILES, {"product_id": product_id})
    return [
        {
            "id": r.id,
            "role": r.role,
            "path": str(Path(storage_root) / r.path),
            "sha256": r.sha256,
            "size": r.size,
            "media_type": r.media_type,
        }
        for r in rows
    ]


def product_detail(
    conn: Connection, product_id: int, storage_root: Path, record: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """A product with its files, previews, versions and a provenance summary (None if absent).
    ``record``: the product's provenance record when the caller has read it already."""
    row = conn.execute(_PRODUCT, {"product_id": product_id}).first()
    return None if row is None else detail_of_row(conn, row, storage_root, record)


def detail_of_row(
    conn: Connection, row: Any, storage_root: Path, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """:func:`product_detail` of a ``products`` row already read (by a statement that selects the
    table's columns, and maybe others joined to them: a product page reads its review, release
    delay and dataset in the same statement, :meth:`hcdc.archive.catalogue.UserCatalogue.product`)."""
    product_id = row.id
    detail = _product_row(row)
    detail["storage_dir"] = str(Path(storage_root) / row.storage_dir)
    detail["summary"] = row.summary
    detail["rerun_of"] = row.rerun_of_id
    files = product_files(conn, product_id, storage_root)
    detail["files"] = files
    detail["previews"] = [f["path"] for f in files if f["role"] == "preview"]
    detail["versions"] = [
        {"id": v.id, "version": v.version, "current": v.is_current, "created_at": v.created_at}
        for v in conn.execute(_VERSIONS, {"lineage": row.lineage})
    ]
    record = record if record is not None else get_record(conn, product_id)
    started, finished = record.get("started"), record.get("finished")
    duration = None
    if started and finished:
        duration = (dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(started)).total_seconds()
    detail["provenance"] = {
        "id": record["id"],
        "recipe": f"{record['recipe']} {record['recipe_version']}",
        "workflow": f"{record['workflow']} {record.get('workflow_version')}"
        if record.get("workflow")
        else None,
        "parameters": record.get("parameters"),
        "software_version": record.get("software_version"),
        "git_commit": record.get("git_commit"),
        "python": record.get("python"),
        "host": record.get("host"),
        "started": started,
        "finished": finished,
        "duration_s": None if duration is None else round(duration, 3),
        "parent_products": [product_of_record(conn, p) for p in record.get("parents", [])],
        "inputs": {i["name"]: len(i["files"]) for i in record.get("inputs", []) if i.get("files")},
        "rerun_of": record.get("rerun_of"),
    }
    return detail


def dataset_target(conn: Connection, dataset_id: int | None) -> str | None:
    """The target name of a dataset (None when unknown)."""
    if dataset_id is None:
        return None
    return conn.scalar(select(Dataset.target).where(Dataset.id == dataset_id))


# --------------------------------------------------------------------------------------------
# comparing two products (rerun checks)


def compare_fits_data(a: Path, b: Path) -> dict[str, Any]:
    """Compare two FITS files HDU by HDU: data bit for bit, headers ignoring dates/checksums.

    Returns ``{"identical_bytes", "identical_data", "hdus": [{name, identical, max_abs_diff}]}``.
    """
    import numpy as np
    from astropy.io import fits

    same_bytes = sha256_file(a) == sha256_file(b)
    hdus = []
    with fits.open(a) as ha, fits.open(b) as hb:
        if len(ha) != len(hb):
            return {
                "identical_bytes": False,
                "identical_data": False,
                "hdus": [],
                "reason": "HDU counts differ",
            }
        for x, y in zip(ha, hb, strict=True):
            da, db = x.data, y.data
            if da is None or db is None:
                identical = da is None and db is None
                diff = None
            else:
                arr_a, arr_b = np.asarray(da), np.asarray(db)
                identical = (
                    arr_a.dtype == arr_b.dtype
                    and arr_a.shape == arr_b.shape
                    and (arr_a.tobytes() == arr_b.tobytes())
                )
                diff = None
                if not identical and arr_a.shape == arr_b.shape and arr_a.dtype.names is None:
                    with np.errstate(invalid="ignore"):
                        diff = float(np.nanmax(np.abs(arr_a.astype(float) - arr_b.astype(float))))
            hdus.append({"name": x.name, "identical": identical, "max_abs_diff": diff})
    return {"identical_bytes": same_bytes, "identical_data": all(h["identical"] for h in hdus), "hdus": hdus}


def compare_products(conn: Connection, first: int, second: int, storage_root: Path) -> dict[str, Any]:
    """Compare two products file by file (same path relative to each product's directory).

    FITS files are compared HDU by HDU (:func:`compare_fits_data`); other files by sha256.
    ``identical_data`` is true when every FITS data array is bit-identical and every non-FITS
    file other than provenance and previews (which record dates/hosts) is byte-identical.
    """
    dirs = {
        pid: Path(storage_root) / conn.scalar(select(Product.storage_dir).where(Product.id == pid))
        for pid in (first, second)
    }
    files = {
        pid: {
            Path(f["path"]).relative_to(dirs[pid]).as_posix(): f
            for f in product_files(conn, pid, storage_root)
        }
        for pid in (first, second)
    }
    names = sorted(set(files[first]) | set(files[second]))
    report: list[dict[str, Any]] = []
    identical = True
    for name in names:
        fa, fb = files[first].get(name), files[second].get(name)
        if fa is None or fb is None:
            report.append({"file": name, "present_in_both": False})
            identical = False
            continue
        if fa["media_type"] == "application/fits":
            cmp = compare_fits_data(Path(fa["path"]), Path(fb["path"]))
            identical &= cmp["identical_data"]
            report.append({"file": name, **cmp})
        else:
            same = fa["sha256"] == fb["sha256"]
            if fa["role"] not in ("provenance", "preview"):
                identical &= same
            report.append({"file": name, "identical_bytes": same, "role": fa["role"]})
    return {"first": first, "second": second, "identical_data": identical, "files": report}


__all__ = [
    "detail_of_row",
    "PRODUCTS_DIR",
    "FileSpec",
    "ProductError",
    "ProductSpec",
    "collect_files",
    "compare_fits_data",
    "compare_products",
    "dataset_lineage",
    "dataset_target",
    "get_record",
    "inputs_lineage",
    "variant_lineage",
    "list_products",
    "media_type",
    "product_detail",
    "product_files",
    "product_of_record",
    "record_by_id",
    "publish_directory",
    "register_products",
    "relocate_record",
    "relocate_value",
    "staging_dir",
]
