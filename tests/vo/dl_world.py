"""Fixtures of the DataLink, provenance and VOResource tests: the web tests' access world
(tests/web/world.py: every access state, on SQLite and PostgreSQL) plus, on the ``public`` and
``private`` datasets, a provenance chain as the pipeline makes it:

raw science file + calibration file (dark) --level1-irdis--> Level 1 cube --l2-postprocess--> Level 2

The Level 1 record lists both raw files; the Level 2 record names the Level 1 run as its parent
and the Level 1 directory as its ``level1`` input. The dataset's association chooses the dark.

Imported by the test modules (``from .dl_world import ...``) rather than declared in a conftest,
so that other VO test files keep their own fixtures.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers.live_server import serve_app
from sqlalchemy import insert, select
from web.world import BEFORE, L2Source, World, build_world, make_l2_source

from hcdc.archive import products as prod
from hcdc.archive.models import Association, Dataset, File
from hcdc.archive.pipeline_models import Product
from hcdc.pipeline.provenance import sha256_path
from hcdc.web.app import create_app
from hcdc.web.vo.datalink import vo_authority


@dataclass
class Chain:
    """Ids of one dataset's provenance chain."""

    raw: int
    dark: int
    level1: int
    level2: int


def _register_chain(world: World, label: str, source: L2Source) -> Chain:
    catalogue = world.catalogue
    ids = world.ids[label]
    with catalogue.engine.begin() as conn:
        raw = conn.execute(select(File.sha256, File.prog_id).where(File.id == ids["file"])).one()
        dark_row = conn.execute(select(File).where(File.id == world.calibration_file)).one()
        night = conn.scalar(select(Dataset.night).where(Dataset.id == ids["dataset"]))
        conn.execute(
            insert(Association).values(
                dataset_id=ids["dataset"],
                need="dark",
                calibration_file_id=world.calibration_file,
                kind="DARK",
                reason="closest in time",
                delta_hours=2.0,
                fallback=False,
            )
        )
        del night
    # Level 1: a cube made from the raw file and the dark
    l1_dir = prod.staging_dir(catalogue.storage_root, f"chain-l1-{label}")
    cube = next(p for p, role in source.files if role == "product")
    shutil.copy2(cube, l1_dir / "level1_cube.fits")
    l1_final = prod.publish_directory(l1_dir, l1_dir.with_name(f"chain-l1-{label}"))
    l1_record = {
        **source.record,
        "id": f"l1-{label}-{uuid.uuid4().hex}",
        "recipe": "level1-irdis",
        "recipe_version": "1.0",
        "node": "level1",
        "parents": [],
        "parameters": {"centring": "waffle", "bad_pixel_sigma": 5.0, "crop": None},
        "inputs": [
            {
                "name": "raw",
                "kind": "raw_files",
                "files": [
                    {"path": f"/raw/{label}.fits", "sha256": raw.sha256, "id": ids["file"]},
                    {"path": "/raw/dark.fits", "sha256": dark_row.sha256, "id": dark_row.id},
                ],
            }
        ],
    }
    # Level 2 from the Level 1 directory
    l2_dir = prod.staging_dir(catalogue.storage_root, f"chain-l2-{label}")
    for path, _role in source.files:
        shutil.copy2(path, l2_dir / path.name)
    l2_final = prod.publish_directory(l2_dir, l2_dir.with_name(f"chain-l2-{label}"))
    l2_record = {
        **source.record,
        "id": f"l2-{label}-{uuid.uuid4().hex}",
        "parents": [l1_record["id"]],
        "inputs": [
            {
                "name": "level1",
                "kind": "level1",
                "files": [{"path": str(l1_final), "sha256": sha256_path(l1_final)}],
            }
        ],
    }
    specs = [
        prod.ProductSpec(
            lineage=prod.dataset_lineage(ids["dataset"], "level1-cube"),
            recipe="level1-irdis",
            recipe_version="1.0",
            record=l1_record,
            storage_dir=l1_final,
            files=prod.collect_files(l1_final, {"cube": l1_final / "level1_cube.fits"}),
            level=1,
            product_type="level1-cube",
            dataset_id=ids["dataset"],
            target="51 Eri",
        ),
        prod.ProductSpec(
            lineage=prod.dataset_lineage(ids["dataset"], "level2-chain"),
            recipe=l2_record["recipe"],
            recipe_version=l2_record["recipe_version"],
            record=l2_record,
            storage_dir=l2_final,
            files=prod.collect_files(
                l2_final, {"product": next(l2_final / p.name for p, r in source.files if r == "product")}
            ),
            level=2,
            product_type="level2-image",
            dataset_id=ids["dataset"],
            target="51 Eri",
            summary=source.summary,
        ),
    ]
    level1, level2 = prod.register_products(catalogue.engine, specs, catalogue.storage_root)
    return Chain(raw=ids["file"], dark=world.calibration_file, level1=level1, level2=level2)


@dataclass
class VOWorld:
    world: World
    chains: dict[str, Chain]

    @property
    def authority(self) -> str:
        return vo_authority(self.world.catalogue.settings)

    def did(self, kind: str, key: int) -> str:
        return f"ivo://{self.authority}/{kind}?{key}"


@pytest.fixture(scope="session")
def vo_l2_source(tmp_path_factory) -> L2Source:
    return make_l2_source(tmp_path_factory.mktemp("vo-l2source"))


@pytest.fixture
def vo_world(tmp_path: Path, database_url: str, vo_l2_source: L2Source) -> VOWorld:
    world = build_world(tmp_path, database_url, vo_l2_source)
    chains = {label: _register_chain(world, label, vo_l2_source) for label in ("public", "private")}
    yield VOWorld(world, chains)
    world.catalogue.close()


@pytest.fixture
def vo_client(vo_world: VOWorld) -> Callable[..., TestClient]:
    """``vo_client(user=None, when=BEFORE)``: a client sending ``user``'s bearer token."""

    def make(user: str | None = None, when: dt.datetime = BEFORE) -> TestClient:
        app = create_app(catalogue=vo_world.world.catalogue, clock=lambda: when, secret_key="test-secret")
        client = TestClient(app, base_url="http://testserver")
        if user is not None:
            client.headers["Authorization"] = f"Bearer {vo_world.world.tokens[user]}"
        return client

    return make


def product_level(world: World, product_id: int) -> int | None:
    with world.catalogue.engine.connect() as conn:
        return conn.scalar(select(Product.level).where(Product.id == product_id))


@pytest.fixture
def vo_server(vo_world: VOWorld):
    """A real uvicorn server of the VO world on loopback (for pyvo, which needs requests)."""

    app = create_app(catalogue=vo_world.world.catalogue, clock=lambda: BEFORE, secret_key="vo-test")
    with serve_app(app) as base:
        yield base


def token_session(vo_world: VOWorld, user: str | None):
    """A requests session (what pyvo uses) sending ``user``'s bearer token."""
    import requests

    session = requests.Session()
    if user is not None:
        session.headers["Authorization"] = f"Bearer {vo_world.world.tokens[user]}"
    return session
