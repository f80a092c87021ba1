"""What the portal pages and the REST API show of files, datasets, products and jobs.

Every function takes the request's :class:`~hcdc.web.auth.Viewer` and asks its
:class:`~hcdc.archive.access.AccessContext` first: an object the user may not see raises
:class:`NotFound`, exactly as one that does not exist (nobody learns that a hidden id exists).
Lists inside a view (a dataset's files and products, a product's parents) are filtered by the
same rules. No absolute server path is ever returned: files are named and addressed by id.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from hcdc.archive import accounts
from hcdc.archive import products as prod
from hcdc.archive.associations import association_view
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Job, Product, ProductFile
from hcdc.archive.queries import dataset_detail, file_detail
from hcdc.archive.storage import resolve_stored_path
from hcdc.web.auth import Viewer

#: an S/N map larger than this (pixels per side) is block-averaged down for the chart
MAX_MAP_SIDE = 160
#: how deep the provenance tree goes (products made from products ...)
MAX_PROVENANCE_DEPTH = 6


class NotFound(LookupError):
    """No such object, or one the user may not see (the same answer for both)."""


def _visible(who: Viewer, kind: str, number: int) -> None:
    """Raise :class:`NotFound` unless access.py lets the user see this object."""
    method = {
        "file": who.access.can_see_file,
        "dataset": who.access.can_see_dataset,
        "product": who.access.can_see_product,
        "job": who.access.can_see_job,
    }[kind]
    try:
        decision = method(number)
    except LookupError:
        raise NotFound(f"no {kind} {number}") from None
    if not decision:
        raise NotFound(f"no {kind} {number}")


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no NaN), containers walked."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# -- files --------------------------------------------------------------------------------------

_FILE_HIDDEN = ("location", "stored_path", "path", "header", "extra", "mtime_ns", "dataset_key")


def file_view(who: Viewer, file_id: int) -> dict[str, Any]:
    """A catalogued file's metadata (no server paths)."""
    _visible(who, "file", file_id)
    detail = file_detail(who.conn, file_id, who.state.catalogue.storage_root)
    if detail is None:
        raise NotFound(f"no file {file_id}")
    out = {k: v for k, v in detail.items() if k not in _FILE_HIDDEN}
    out["name"] = Path(detail["path"]).name
    out["versions"] = [v for v in detail["versions"] if who.access.can_see_file(v["id"])]
    return jsonable(out)


def file_location(who: Viewer, file_id: int) -> tuple[Path, str, str]:
    """(path on disk, download name, sha256) of a file the user may see."""
    _visible(who, "file", file_id)
    row = who.conn.execute(
        select(File.path, File.storage, File.stored_path, File.sha256).where(File.id == file_id)
    ).first()
    if row is None:
        raise NotFound(f"no file {file_id}")
    path = resolve_stored_path(row.storage, row.stored_path, who.state.catalogue.storage_root)
    return Path(path), Path(row.path).name, row.sha256


# -- datasets -----------------------------------------------------------------------------------


def dataset_view(who: Viewer, dataset_id: int) -> dict[str, Any]:
    """A dataset: its files (those the user may see), calibrations chosen and missing, conditions,
    products and (for those who may see them) jobs."""
    _visible(who, "dataset", dataset_id)
    detail = dataset_detail(who.conn, dataset_id)
    if detail is None:
        raise NotFound(f"no dataset {dataset_id}")
    visible_files = set(
        who.conn.scalars(select(File.id).where(File.dataset_id == dataset_id, who.access.files_clause()))
    )
    detail["files"] = [f for f in detail["files"] if f["id"] in visible_files]
    conditions = who.conn.execute(
        select(File.seeing, File.tau0, File.airmass).where(File.id.in_(visible_files or {-1}))
    ).all()
    detail["conditions"] = {
        name: _stats([getattr(r, name) for r in conditions]) for name in ("seeing", "tau0", "airmass")
    }
    association = association_view(who.conn, dataset_id) if detail.get("associated_at") else None
    if association is not None:
        association["chosen"] = [c for c in association["chosen"] if who.access.can_see_file(c["file_id"])]
    detail["association"] = association
    detail.pop("association_warnings", None)
    detail["products"] = prod.list_products(
        who.conn, dataset_id=dataset_id, limit=None, visible=who.access.products_clause()
    )
    detail["jobs"] = [
        dict(r._mapping)
        for r in who.conn.execute(
            select(Job.id, Job.workflow, Job.state, Job.progress, Job.queued_at)
            .where(Job.dataset_id == dataset_id, who.access.jobs_clause())
            .order_by(Job.id.desc())
        )
    ]
    detail["can_request_reduction"] = bool(who.access.can_submit_job(dataset_id)) and who.signed_in
    return jsonable(detail)


def _stats(values: list[float | None]) -> dict[str, float | None]:
    good = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not good:
        return {"min": None, "median": None, "max": None}
    return {"min": min(good), "median": float(np.median(good)), "max": max(good)}


# -- products -----------------------------------------------------------------------------------


def _shown_file(row: Any) -> dict[str, Any]:
    """A product file as pages and the API show it: by id and name, never its storage path."""
    return {
        "id": row["id"],
        "name": Path(row["path"]).name,
        "role": row["role"],
        "sha256": row["sha256"],
        "size": row["size"],
        "media_type": row["media_type"],
    }


def product_file_rows(who: Viewer, product_id: int) -> list[dict[str, Any]]:
    rows = who.conn.execute(
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
    return [_shown_file(r._mapping) for r in rows]


def product_record(who: Viewer, product_id: int) -> dict[str, Any]:
    """The provenance record of a product the user may see (for a page that shows it twice)."""
    _visible(who, "product", product_id)
    try:
        return prod.get_record(who.conn, product_id)
    except LookupError:
        raise NotFound(f"no product {product_id}") from None


def product_view(who: Viewer, product_id: int, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """A product: description, files (by id), previews, detections, contrast at standard
    separations, review mark, release date, versions the user may see, provenance summary.
    ``record``: its provenance record, from :func:`product_record`, if read already."""
    _visible(who, "product", product_id)
    detail = prod.product_detail(who.conn, product_id, who.state.catalogue.storage_root, record)
    if detail is None:
        raise NotFound(f"no product {product_id}")
    for key in ("storage_dir", "previews"):
        detail.pop(key, None)
    detail["files"] = [_shown_file(f) for f in detail["files"]]  # read by product_detail already
    detail["versions"] = [v for v in detail["versions"] if who.access.can_see_product(v["id"])]
    summary = detail.get("summary") or {}
    summary.pop("outputs", None)  # worker-side paths
    detail["detections"] = summary.get("detections") or []
    detail["contrast_at"] = summary.get("contrast_at") or []
    status = accounts.product_status(who.conn, [product_id])[product_id]
    detail["review"] = status["review"]
    detail["review_reason"] = status["reason"]
    detail["delayed_until"] = status["delayed_until"]
    detail["public_date"] = who.access.product_public_date(product_id)
    if detail.get("dataset_id") is not None:
        ds = who.conn.execute(
            select(Dataset.instrument, Dataset.mode, Dataset.night, Dataset.setup, Dataset.prog_id).where(
                Dataset.id == detail["dataset_id"]
            )
        ).first()
        detail["dataset"] = dict(ds._mapping) if ds is not None else None
        if not who.access.can_see_dataset(detail["dataset_id"]):
            detail["dataset_visible"] = False
        else:
            detail["dataset_visible"] = True
    provenance = detail.get("provenance") or {}
    provenance["parent_products"] = [
        p for p in provenance.get("parent_products") or [] if p is not None and who.access.can_see_product(p)
    ]
    return jsonable(detail)


def product_file_location(who: Viewer, product_id: int, file_id: int) -> tuple[Path, dict[str, Any]]:
    """(path on disk, file row) of one file of a product the user may see.

    The path is the storage root joined with the catalogued relative path and must stay inside
    the storage root once resolved (symbolic links included): no traversal, whatever the row says.
    """
    _visible(who, "product", product_id)
    row = who.conn.execute(
        select(ProductFile).where(ProductFile.id == file_id, ProductFile.product_id == product_id)
    ).first()
    if row is None:
        raise NotFound(f"no file {file_id} in product {product_id}")
    return safe_storage_path(who, row.path), {
        "id": row.id,
        "name": Path(row.path).name,
        "path": row.path,
        "role": row.role,
        "sha256": row.sha256,
        "size": row.size,
        "media_type": row.media_type,
    }


def safe_storage_path(who: Viewer, relative: str) -> Path:
    root = Path(who.state.catalogue.storage_root).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise NotFound(f"file {relative!r} is not in the store")
    return path


def product_files_for_zip(who: Viewer, product_id: int) -> list[tuple[Path, dict[str, Any]]]:
    """Every file of a product the user may see, with its path inside the zip."""
    _visible(who, "product", product_id)
    storage_dir = who.conn.scalar(select(Product.storage_dir).where(Product.id == product_id))
    out = []
    for row in product_file_rows(who, product_id):
        path, info = product_file_location(who, product_id, row["id"])
        try:
            inside = Path(info["path"]).relative_to(storage_dir).as_posix()
        except ValueError:
            inside = info["name"]
        out.append((path, {**info, "arcname": inside}))
    return out


def product_charts(
    who: Viewer, product_id: int, files: list[dict[str, Any]] | None = None
) -> dict[str, Any] | None:
    """Contrast curves and S/N map of a Level 2 product, read from its FITS file (None when the
    product has no Level 2 FITS file). Separations in mas when the plate scale is known, else px.
    ``files``: the product's :func:`product_file_rows` when the caller has them already.
    """
    from hcdc.science.postprocessing.products import ProductError, read_product

    _visible(who, "product", product_id)
    rows = files if files is not None else product_file_rows(who, product_id)
    candidates = [r for r in rows if r["role"] == "product"]
    candidates = [r for r in candidates if r["name"].lower().endswith((".fits", ".fits.gz"))]
    for row in candidates:
        path, _ = product_file_location(who, product_id, row["id"])
        try:
            result = read_product(path)
        except (ProductError, OSError, ValueError, KeyError):
            continue
        return _charts_of(result, row["name"])
    return None


def _charts_of(result: Any, name: str) -> dict[str, Any]:
    scale = result.pixel_scale_mas
    curves = []
    if result.contrast is not None:
        known = scale is not None and math.isfinite(scale)
        sep = result.contrast.separation_mas(scale) if known else result.contrast.separation_px
        for k in range(result.contrast.n_wavelengths):
            label = f"{result.wavelengths[k]:.3f} µm" if result.wavelengths is not None else f"channel {k}"
            curves.append(
                {
                    "label": label,
                    "separation": [float(s) for s in sep],
                    "contrast": [
                        float(c) if math.isfinite(c) and c > 0 else None for c in result.contrast.contrast[k]
                    ],
                }
            )
    snr = None
    if result.snr_map is not None:
        data = np.asarray(result.snr_map, dtype=np.float64)
        if data.ndim == 3:
            data = data[0]
        factor = max(1, math.ceil(max(data.shape) / MAX_MAP_SIDE))
        if factor > 1:
            ny, nx = (data.shape[0] // factor) * factor, (data.shape[1] // factor) * factor
            data = np.nanmean(data[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor), axis=(1, 3))
        snr = {
            "z": [[round(float(v), 3) if math.isfinite(v) else None for v in row] for row in data],
            "binning": factor,
        }
    return {
        "file": name,
        "separation_unit": "mas" if scale is not None and math.isfinite(scale) else "px",
        "nsigma": None if result.contrast is None else result.contrast.nsigma,
        "curves": curves,
        "snr_map": snr,
        "detections": [jsonable(d.as_dict()) for d in result.detections],
    }


def provenance_tree(
    who: Viewer, product_id: int, depth: int = 0, record: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The product, its parent products (those the user may see; others named as hidden) and, at
    the leaves, the raw input files with their checksums and catalogue ids. ``record``: the
    product's provenance record, from :func:`product_record`, if read already."""
    _visible(who, "product", product_id)
    record = record if record is not None else prod.get_record(who.conn, product_id)
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
            file_id = who.conn.scalar(
                select(File.id)
                .where(File.sha256 == f.get("sha256"), File.is_current)
                .order_by(File.id)
                .limit(1)
            )
            if file_id is not None and not who.access.can_see_file(file_id):
                file_id = None
            files.append(
                {"name": Path(str(f.get("path", ""))).name, "sha256": f.get("sha256"), "file_id": file_id}
            )
        node["inputs"].append({"name": item.get("name"), "kind": item.get("kind"), "files": files})
    for parent_record in record.get("parents") or []:
        parent = prod.product_of_record(who.conn, parent_record)
        if parent is None or depth >= MAX_PROVENANCE_DEPTH:
            continue
        if who.access.can_see_product(parent):
            node["parents"].append(provenance_tree(who, parent, depth + 1))
        else:
            node["parents"].append({"product_id": None, "hidden": True})
    return jsonable(node)


# -- jobs ---------------------------------------------------------------------------------------


def job_view(who: Viewer, job_id: int) -> dict[str, Any]:
    """A job the user may see (R10), with its log and the products it made that the user may see."""
    _visible(who, "job", job_id)
    row = who.conn.execute(select(Job).where(Job.id == job_id)).first()
    if row is None:
        raise NotFound(f"no job {job_id}")
    out = {
        c.name: getattr(row, c.name) for c in Job.__table__.columns if c.name not in ("worker_id", "inputs")
    }
    summary = out.get("summary") or {}
    summary.pop("outputs", None)
    out["products"] = [
        dict(r._mapping)
        for r in who.conn.execute(
            select(Product.id, Product.level, Product.product_type, Product.target)
            .where(Product.job_id == job_id, who.access.products_clause())
            .order_by(Product.id)
        )
    ]
    return jsonable(out)
