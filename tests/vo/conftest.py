"""Fixtures of the VO tests: the web tests' access world (tests/web/world.py), with its ObsCore
rows rebuilt, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from web.world import L2Source, World, build_world, make_l2_source

from hcdc.archive.obscore import rebuild_obscore

#: ../shared/reference/vo_golden and vo_xsd (next to HCDC_SHARED_DATA when it is set)
REFERENCE = (
    Path(os.environ.get("HCDC_SHARED_DATA", Path(__file__).resolve().parents[3] / "shared" / "data")).parent
    / "reference"
)


@pytest.fixture(scope="session")
def l2_source(tmp_path_factory) -> L2Source:
    return make_l2_source(tmp_path_factory.mktemp("l2source"))


@pytest.fixture
def world(tmp_path: Path, database_url: str, l2_source: L2Source) -> World:
    w = build_world(tmp_path, database_url, l2_source)
    with w.catalogue.engine.begin() as conn:
        rebuild_obscore(conn)
    yield w
    w.catalogue.close()
