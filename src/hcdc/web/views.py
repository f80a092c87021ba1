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

from hcdc.archive.catalogue import NotFound
from hcdc.web.auth import Viewer

#: an S/N map larger than this (pixels per side) is block-averaged down for the chart
MAX_MAP_SIDE = 160


def _visible(who: Viewer, kind: str, number: int) -> None:
    """Raise :class:`NotFound` unless access.py lets the user see this object."""
    method = {
        "file": who.access.can_see_file,
        "dataset": who.access.can_see_dataset,
        "product": who.access.can_see_product,
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


# -- files and datasets: through the catalogue facade (who.catalogue) ---------------------------


def file_view(who: Viewer, file_id: int) -> dict[str, Any]:
    """A catalogued file's metadata (no server paths)."""
    return jsonable(who.catalogue.file(file_id))


def file_location(who: Viewer, file_id: int) -> tuple[Path, str, str]:
    """(path on disk, download name, sha256) of a file the user may see."""
    return who.catalogue.file_location(file_id)


def dataset_view(who: Viewer, dataset_id: int) -> dict[str, Any]:
    """A dataset as :meth:`~hcdc.archive.catalogue.UserCatalogue.dataset` describes it, and
    whether this user may ask for its reduction."""
    detail = who.catalogue.dataset(dataset_id)
    detail["can_request_reduction"] = bool(who.access.can_submit_job(dataset_id)) and who.signed_in
    return jsonable(detail)


# -- products -----------------------------------------------------------------------------------


# Products are read through the catalogue facade (hcdc.archive.catalogue.UserCatalogue, the
# request's ``who.catalogue``); these names stay for the portal pages and the VO services.


def product_file_rows(who: Viewer, product_id: int) -> list[dict[str, Any]]:
    return who.catalogue.product_files(product_id)


def product_record(who: Viewer, product_id: int) -> dict[str, Any]:
    """The provenance record of a product the user may see (for a page that shows it twice)."""
    return who.catalogue.provenance_record(product_id)


def product_view(who: Viewer, product_id: int, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """A product as :meth:`~hcdc.archive.catalogue.UserCatalogue.product` describes it, JSON-ready.
    ``record``: its provenance record, from :func:`product_record`, if read already."""
    return jsonable(who.catalogue.product(product_id, record))


def product_file_location(who: Viewer, product_id: int, file_id: int) -> tuple[Path, dict[str, Any]]:
    """(path on disk, file row) of one file of a product the user may see (inside the store)."""
    return who.catalogue.product_file(product_id, file_id)


def safe_storage_path(who: Viewer, relative: str) -> Path:
    return who.catalogue.stored_path(relative)


def product_files_for_zip(who: Viewer, product_id: int) -> list[tuple[Path, dict[str, Any]]]:
    """Every file of a product the user may see, with its path inside the zip."""
    return who.catalogue.product_zip_members(product_id)


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
    """The product's provenance as :meth:`~hcdc.archive.catalogue.UserCatalogue.provenance`
    gives it (parents the user may not see named as hidden), JSON-ready. ``record``: the
    product's provenance record, from :func:`product_record`, if read already."""
    return jsonable(who.catalogue.provenance(product_id, depth, record))


# -- jobs ---------------------------------------------------------------------------------------


def job_view(who: Viewer, job_id: int) -> dict[str, Any]:
    """A job the user may see (R10), with its whole-run log for staff only and the products it
    made that the user may see (:meth:`~hcdc.archive.catalogue.UserCatalogue.job`), JSON-ready."""
    return jsonable(who.catalogue.job(job_id))
