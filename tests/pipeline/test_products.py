"""Product registration (SQLite and PostgreSQL): atomic, versioned, idempotent for retried jobs,
with files (sha256, media type) and provenance; FITS comparison of two products."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError

from hcdc.archive import products as prod
from hcdc.archive.db import init_data_centre
from hcdc.archive.pipeline_models import Product, ProductFile, ProvenanceEntry
from hcdc.pipeline.operations import jobs as jq


@pytest.fixture
def catalogue(tmp_path: Path, database_url: str):
    cat = init_data_centre(tmp_path / "dc", database_url=database_url)
    yield cat
    cat.close()


def _record(record_id: str, **extra) -> dict:
    return {
        "id": record_id,
        "recipe": "l2-postprocess",
        "recipe_version": "1.0",
        "workflow": "l2-user-cube",
        "workflow_version": "1.0",
        "parameters": {"ncomp": 3},
        "inputs": [
            {"name": "cube", "kind": "path", "files": [{"path": "/in/cube.fits", "sha256": "ab" * 32}]}
        ],
        "outputs": [],
        "software_version": "0.1.0",
        "git_commit": "abc",
        "host": "here",
        "started": "2026-11-21T10:00:00+00:00",
        "finished": "2026-11-21T10:00:02+00:00",
        **extra,
    }


def _staged_product(catalogue, name: str, image: np.ndarray) -> Path:
    """Write a small product (FITS + PNG + provenance.json) into staging and publish it."""
    staging = prod.staging_dir(catalogue.storage_root, name)
    fits.writeto(staging / "level2.fits", image)
    (staging / "preview.png").write_bytes(b"\x89PNG fake")
    (staging / "provenance.json").write_text("{}")
    return prod.publish_directory(staging, staging.with_name(name))


def _spec(catalogue, directory: Path, record_id: str, **kwargs) -> prod.ProductSpec:
    outputs = {"product": directory / "level2.fits"}
    return prod.ProductSpec(
        lineage=kwargs.pop("lineage", "inputs/abc/level2-image"),
        recipe="l2-postprocess",
        recipe_version="1.0",
        record=_record(record_id),
        storage_dir=directory,
        files=prod.collect_files(directory, outputs),
        level=2,
        product_type="level2-image",
        **kwargs,
    )


def test_register_versions_and_files(catalogue):
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    first_dir = _staged_product(catalogue, "a", image)
    assert not first_dir.with_name("a.tmp").exists()  # published by rename
    (first,) = prod.register_products(
        catalogue.engine, [_spec(catalogue, first_dir, "r1")], catalogue.storage_root
    )
    second_dir = _staged_product(catalogue, "b", image + 1)
    (second,) = prod.register_products(
        catalogue.engine, [_spec(catalogue, second_dir, "r2")], catalogue.storage_root
    )
    with catalogue.engine.connect() as conn:
        current = prod.list_products(conn)
        every = prod.list_products(conn, all_versions=True)
        detail = prod.product_detail(conn, first, catalogue.storage_root)
        assert prod.get_record(conn, second)["id"] == "r2"
    assert [p["id"] for p in current] == [second]  # the new version is the current one
    assert [(p["id"], p["version"], p["current"]) for p in every] == [(second, 2, True), (first, 1, False)]
    files = {Path(f["path"]).name: f for f in detail["files"]}
    assert {n: f["role"] for n, f in files.items()} == {
        "level2.fits": "product",
        "preview.png": "preview",
        "provenance.json": "provenance",
    }
    fits_file = files["level2.fits"]
    assert fits_file["media_type"] == "application/fits" and files["preview.png"]["media_type"] == "image/png"
    assert fits_file["sha256"] == hashlib.sha256(Path(fits_file["path"]).read_bytes()).hexdigest()
    assert fits_file["size"] == Path(fits_file["path"]).stat().st_size
    assert detail["previews"] == [files["preview.png"]["path"]]
    assert [v["version"] for v in detail["versions"]] == [1, 2]
    assert detail["provenance"]["parameters"] == {"ncomp": 3} and detail["provenance"]["duration_s"] == 2.0


def test_retried_job_cannot_register_twice_and_failures_roll_back(catalogue):
    engine = catalogue.engine
    job_id = jq.queue_job(engine, inputs={"cube": "/in/cube.fits"}, workflow="l2-user-cube")
    directory = _staged_product(catalogue, "job", np.ones((4, 4), np.float32))
    spec = _spec(catalogue, directory, "r1", job_id=job_id, node="level2")

    def boom(conn, ids):
        raise RuntimeError("worker lost the job")

    with pytest.raises(RuntimeError, match="worker lost"):
        prod.register_products(engine, [spec], catalogue.storage_root, within=boom)
    with engine.connect() as conn:  # nothing half-registered
        for table in (Product, ProductFile, ProvenanceEntry):
            assert conn.scalar(select(func.count()).select_from(table)) == 0

    (first,) = prod.register_products(engine, [spec], catalogue.storage_root)
    (again,) = prod.register_products(engine, [spec], catalogue.storage_root)  # a retried attempt
    assert again == first
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Product)) == 1
        n_files = conn.scalar(select(func.count()).select_from(ProductFile))
        assert n_files == 3
    # the database itself refuses a second (job, node) product and a second current version
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(Product).values(
                lineage="other",
                version=1,
                is_current=True,
                product_type="x",
                job_id=job_id,
                node="level2",
                recipe="r",
                recipe_version="1",
                status="done",
                storage_dir="d",
            )
        )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(Product).values(
                lineage=spec.lineage,
                version=7,
                is_current=True,
                product_type="x",
                recipe="r",
                recipe_version="1",
                status="done",
                storage_dir="d",
            )
        )


def test_relocate_record_and_compare(catalogue, tmp_path):
    record = _record(
        "r", outputs=[{"name": "product", "kind": "level2", "files": [{"path": "/s/x.tmp/a.fits"}]}]
    )
    moved = prod.relocate_record(record, Path("/s/x.tmp"), Path("/s/x"))
    assert moved["outputs"][0]["files"][0]["path"] == "/s/x/a.fits"
    assert (
        moved["inputs"] == record["inputs"] and record["outputs"][0]["files"][0]["path"] == "/s/x.tmp/a.fits"
    )

    image = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    dirs = [_staged_product(catalogue, n, image) for n in ("p", "q")]
    changed = image.copy()
    changed[1, 2] += 1e-6
    dirs.append(_staged_product(catalogue, "r", changed))
    ids = [
        prod.register_products(
            catalogue.engine, [_spec(catalogue, d, f"id{d.name}")], catalogue.storage_root
        )[0]
        for d in dirs
    ]
    with catalogue.engine.connect() as conn:
        same = prod.compare_products(conn, ids[0], ids[1], catalogue.storage_root)
        other = prod.compare_products(conn, ids[0], ids[2], catalogue.storage_root)
    assert same["identical_data"]
    assert not other["identical_data"]
    hdu = next(f for f in other["files"] if f["file"] == "level2.fits")["hdus"][0]
    assert not hdu["identical"] and hdu["max_abs_diff"] == pytest.approx(1e-6, rel=0.2)


def test_migration_matches_the_models_and_downgrades(catalogue):
    """0002_pipeline creates exactly what hcdc.archive.pipeline_models describes, and goes back."""
    import warnings

    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import inspect

    from hcdc.archive.db import alembic_config, current_revision, head_revision
    from hcdc.archive.models import Base

    pipeline_tables = {"jobs", "products", "product_files", "provenance"}
    with catalogue.engine.connect() as conn, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # expression indexes of the archive tables are not compared
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    config = alembic_config()
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001_initial")
    assert not pipeline_tables & set(inspect(catalogue.engine).get_table_names())
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert current_revision(catalogue.engine) == head_revision()  # later migrations come back too
    assert pipeline_tables <= set(inspect(catalogue.engine).get_table_names())


def test_published_product_files_follow_the_data_centre_file_mode(tmp_path):
    """Products get the data centre's ``file_mode``, as files copied in by ingest do (issue 10)."""
    import stat

    staging = tmp_path / "attempt-1.tmp"
    (staging / "sub").mkdir(parents=True)
    for name in ("product.fits", "sub/preview.png"):
        (staging / name).write_bytes(b"x")
        (staging / name).chmod(0o600)
    final = prod.publish_directory(staging, tmp_path / "attempt-1", mode=0o640)
    modes = {stat.S_IMODE(p.stat().st_mode) for p in final.rglob("*") if p.is_file()}
    assert modes == {0o640}
    assert not staging.exists()
