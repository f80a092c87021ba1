"""Provenance of catalogued products and their reruns (:func:`provenance_of_product`,
:func:`rerun_product`)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from hcdc.archive import products as prod
from hcdc.archive.db import Catalogue
from hcdc.archive.models import File, utcnow
from hcdc.pipeline.provenance import ProvenanceRecord, provenance_tree


def provenance_of_product(conn: Connection, product_id: int) -> dict[str, Any]:
    """The provenance tree of a product down to the raw files (with sha256).

    Each level is :func:`hcdc.pipeline.provenance.provenance_tree`'s plus ``product_id`` (the
    catalogued product the run made); input files known to the catalogue get their ``id``.
    """
    record = ProvenanceRecord.model_validate(prod.get_record(conn, product_id))

    def lookup(record_id: str) -> ProvenanceRecord | None:
        data = prod.record_by_id(conn, record_id)
        return None if data is None else ProvenanceRecord.model_validate(data)

    tree = provenance_tree(record, lookup)

    def annotate(node: dict[str, Any]) -> None:
        if not node.get("missing"):
            node["product_id"] = prod.product_of_record(conn, node["id"])
        for item in node.get("inputs", []):
            for f in item["files"]:
                if f.get("id") is None:
                    f["id"] = conn.scalar(select(File.id).where(File.sha256 == f["sha256"]))
        for parent in node.get("parents", []):
            annotate(parent)

    annotate(tree)
    return tree


@dataclass
class RerunOutcome:
    """A rerun of a product: the new product (a new version of the same lineage) and how it
    compares with the original (:func:`hcdc.archive.products.compare_products`)."""

    original_id: int
    product_id: int
    comparison: dict[str, Any]
    seconds: float


def rerun_product(catalogue: Catalogue, product_id: int) -> RerunOutcome:
    """Rebuild a product from its catalogued provenance alone into a new version, and compare.

    The recipe is found by name and exact version, the recorded parameters re-validated, every
    input checked against its sha256 (:func:`hcdc.pipeline.replay.rerun`); the result is
    published and registered like a job's product (``rerun_of`` pointing at the original).
    """
    from hcdc.archive.pipeline_models import Product
    from hcdc.pipeline.replay import rerun

    t0 = time.perf_counter()
    engine = catalogue.engine
    with engine.connect() as conn:
        original = conn.execute(select(Product).where(Product.id == product_id)).first()
        if original is None:
            raise LookupError(f"no product with id {product_id}")
        record = ProvenanceRecord.model_validate(prod.get_record(conn, product_id))
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    staging = prod.staging_dir(catalogue.storage_root, f"rerun-{product_id}-{stamp}")
    final = staging.with_name(f"rerun-{product_id}-{stamp}")
    try:
        result = rerun(record, staging)  # raises RecipeFailed / ProvenanceError with the reason
        prod.publish_directory(staging, final, catalogue.settings.resolved_file_mode)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    new_record = prod.relocate_record(result.provenance.model_dump(mode="json"), staging, final)
    (final / "provenance.json").write_text(json.dumps(new_record, indent=2))
    outputs = prod.relocate_value(result.outputs, staging, final)
    summary = outputs.get("summary") if isinstance(outputs.get("summary"), dict) else None
    spec = prod.ProductSpec(
        lineage=original.lineage,
        recipe=result.recipe,
        recipe_version=result.version,
        record=new_record,
        storage_dir=final,
        files=prod.collect_files(final, outputs),
        level=original.level,
        product_type=original.product_type,
        dataset_id=original.dataset_id,
        target=original.target,
        node=original.node,
        workflow=new_record.get("workflow"),
        workflow_version=new_record.get("workflow_version"),
        summary=json.loads(json.dumps(summary, default=str)) if summary is not None else None,
        rerun_of_id=product_id,
    )
    (new_id,) = prod.register_products(engine, [spec], catalogue.storage_root)
    with engine.connect() as conn:
        comparison = prod.compare_products(conn, product_id, new_id, catalogue.storage_root)
    return RerunOutcome(product_id, new_id, comparison, round(time.perf_counter() - t0, 3))
