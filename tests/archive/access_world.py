"""Minimal catalogue rows for the access tests: files, datasets and products with only the
columns the rules read (observation time, programme, calibration flag, dataset, product type)."""

from __future__ import annotations

import datetime as dt
import itertools

from sqlalchemy import Connection, insert

from hcdc.archive.access import mjd_of
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Product

_counter = itertools.count(1)
T0 = dt.datetime(2026, 1, 1)


def add_dataset(
    conn: Connection, prog_id: str | None, mjd_end: float | None, mjd_start: float | None = None
) -> int:
    n = next(_counter)
    return conn.execute(
        insert(Dataset)
        .values(
            key=f"test-dataset-{n}",
            instrument="SPHERE",
            prog_id=prog_id,
            mjd_start=mjd_start,
            mjd_end=mjd_end,
            n_files=0,
            role_counts={},
            created_at=T0,
            updated_at=T0,
        )
        .returning(Dataset.id)
    ).scalar_one()


def add_file(
    conn: Connection,
    prog_id: str | None,
    mjd_obs: float | None,
    *,
    is_calibration: bool = False,
    dataset_id: int | None = None,
) -> int:
    n = next(_counter)
    return conn.execute(
        insert(File)
        .values(
            path=f"/raw/{n}.fits",
            version=1,
            is_current=True,
            sha256=f"{n:064x}",
            size=2880,
            storage="reference",
            stored_path=f"/raw/{n}.fits",
            ingested_at=T0,
            instrument="SPHERE",
            prog_id=prog_id,
            mjd_obs=mjd_obs,
            extra={},
            header=[],
            is_calibration=is_calibration,
            dataset_id=dataset_id,
        )
        .returning(File.id)
    ).scalar_one()


def add_product(conn: Connection, dataset_id: int | None, product_type: str = "level2-image") -> int:
    n = next(_counter)
    return conn.execute(
        insert(Product)
        .values(
            lineage=f"test/{n}/{product_type}",
            version=1,
            is_current=True,
            level=2,
            product_type=product_type,
            dataset_id=dataset_id,
            recipe="test",
            recipe_version="1",
            status="done",
            storage_dir=f"products/test-{n}",
            created_at=T0,
        )
        .returning(Product.id)
    ).scalar_one()


def mjd(year: int, month: int = 1, day: int = 1, hour: int = 0) -> float:
    return mjd_of(dt.datetime(year, month, day, hour))
