# ruff: noqa: F811 - the fixtures of dl_world / test_scs are imported by name
"""The Target Data Base in TAP (tdb.targets, observations, reductions, detections, candidates)
on SQLite and PostgreSQL: every account gets exactly the rows rule R15 gives it (the clauses of
archive/access.py), joins follow the published foreign keys, TAP_SCHEMA describes the tables
with units and UCDs generated from the models, and results pass votlint."""

from __future__ import annotations

import io

import pytest
from astropy.io import votable
from sqlalchemy import select
from web.world import BEFORE

from hcdc.archive import tdb
from hcdc.archive.access import (
    ANONYMOUS,
    DEFAULT_POLICY,
    load_principal,
    visible_tdb_candidates_clause,
    visible_tdb_detections_clause,
    visible_tdb_observations_clause,
    visible_tdb_reductions_clause,
)
from hcdc.archive.tdb_models import Candidate, Detection, Observation, Reduction, Target
from hcdc.archive.tdb_tap import TDB_TABLES, WITHHELD
from hcdc.web.vo.tap import run_adql

from .dl_world import vo_client, vo_l2_source, vo_world  # noqa: F401 - fixtures
from .test_scs import tdb_world  # noqa: F401 - fixture
from .vo_tools import votlint

USERS = [None, "owner", "other_pi", "admin"]


@pytest.fixture
def tdb_candidates(tdb_world):
    """Two candidates: one made of a public product's detection, one of a private one's only."""
    world = tdb_world.world
    with world.catalogue.engine.begin() as conn:
        for label, source in (("cc-public", "public"), ("cc-private", "private")):
            detection = conn.scalar(
                select(Detection.id)
                .join(Reduction, Reduction.id == Detection.reduction_id)
                .where(Reduction.product_id == world.ids[source]["product"])
                .limit(1)
            )
            assert detection is not None, f"the {source} product has detections"
            tdb.assign_detection(conn, detection, label)
    return tdb_world


def _principal(world, user):
    with world.catalogue.engine.connect() as conn:
        return ANONYMOUS if user is None else load_principal(conn, user)


def _tap(world, user, adql: str) -> list[tuple]:
    return run_adql(
        world.catalogue.engine,
        adql,
        _principal(world, user),
        BEFORE,
        maxrec=100_000,
        authority="hcdc.test",
        base_url="http://x",
        policy=DEFAULT_POLICY,
    ).rows


def _expected(world, user) -> dict[str, set[int]]:
    principal = _principal(world, user)
    clauses = {
        "targets": (Target, None),
        "observations": (Observation, visible_tdb_observations_clause),
        "reductions": (Reduction, visible_tdb_reductions_clause),
        "detections": (Detection, visible_tdb_detections_clause),
        "candidates": (Candidate, visible_tdb_candidates_clause),
    }
    out = {}
    with world.catalogue.engine.connect() as conn:
        for name, (model, clause) in clauses.items():
            query = select(model.id)
            if clause is not None:
                query = query.where(clause(principal, BEFORE, DEFAULT_POLICY))
            out[name] = set(conn.scalars(query))
    return out


def test_each_account_sees_what_rule_r15_gives_it(tdb_candidates):
    world = tdb_candidates.world
    seen = {}
    for user in USERS:
        expected = _expected(world, user)
        for name, ids in expected.items():
            rows = _tap(world, user, f"SELECT id FROM tdb.{name}")
            assert {r[0] for r in rows} == ids, (user, name)
        seen[user] = expected
    everything = seen["admin"]
    assert all(everything[name] for name in everything), "the world fills every table"
    for name in ("observations", "reductions", "detections", "candidates"):
        assert seen[None][name] < everything[name], f"anonymous sees every row of {name}"
    assert seen[None]["targets"] == everything["targets"]  # targets are public
    # a join across the published keys goes through the same filters
    rows = _tap(
        world,
        None,
        "SELECT d.id, t.name, c.label FROM tdb.detections AS d "
        "JOIN tdb.reductions AS r ON r.id = d.reduction_id "
        "JOIN tdb.observations AS o ON o.id = r.observation_id "
        "JOIN tdb.targets AS t ON t.id = o.target_id "
        "LEFT OUTER JOIN tdb.candidates AS c ON c.id = d.candidate_id",
    )
    assert {r[0] for r in rows} == seen[None]["detections"]
    assert "cc-private" not in {r[2] for r in rows}
    # a hidden candidate cannot be reached from the candidates table either
    assert [r[0] for r in _tap(world, None, "SELECT label FROM tdb.candidates")] == ["cc-public"]
    assert {r[0] for r in _tap(world, "admin", "SELECT label FROM tdb.candidates")} == {
        "cc-public",
        "cc-private",
    }


def test_tap_schema_describes_the_tdb_from_the_models(tdb_world):
    world = tdb_world.world
    rows = _tap(
        world,
        None,
        "SELECT table_name, column_name, datatype, unit, ucd, indexed FROM TAP_SCHEMA.columns "
        "WHERE table_name LIKE 'tdb.%' ORDER BY table_name, column_index",
    )
    by_name = {(r[0], r[1]): r for r in rows}
    assert by_name[("tdb.targets", "ra_deg")][2:5] == ("double", "deg", "pos.eq.ra;meta.main")
    assert by_name[("tdb.detections", "separation_mas")][2:4] == ("double", "mas")
    assert by_name[("tdb.detections", "reduction_id")][5] == 1  # indexed in the model
    assert ("tdb.reductions", '"date"') in by_name  # an ADQL reserved word, delimited
    for table in TDB_TABLES:
        model_columns = {c.name for c in table.model.__table__.columns}
        published = {r[1].strip('"') for r in rows if r[0] == table.spec.qualified}
        assert published == model_columns - set(WITHHELD[table.model.__tablename__])
    keys = _tap(
        world, None, "SELECT from_table, target_table FROM TAP_SCHEMA.keys WHERE from_table LIKE 'tdb.%'"
    )
    assert ("tdb.detections", "tdb.reductions") in {tuple(k) for k in keys}
    assert ("tdb.observations", "tdb.targets") in {tuple(k) for k in keys}


def test_tdb_over_http_is_votlint_clean(tdb_world, vo_client):
    response = vo_client().get(
        "/tap/sync",
        params={"LANG": "ADQL", "QUERY": "SELECT * FROM tdb.targets", "FORMAT": "votable/td"},
    )
    assert response.status_code == 200, response.text[:300]
    votlint(response.content)
    table = votable.parse_single_table(io.BytesIO(response.content))
    assert str(table.get_field_by_id_or_name("pmra_masyr").unit) == "mas / yr"
    assert len(table.array) == len(tdb_world_targets(tdb_world))
    tables = vo_client().get("/tap/tables").text
    for name in ("targets", "observations", "reductions", "detections", "candidates"):
        assert f"<name>tdb.{name}</name>" in tables


def tdb_world_targets(vo_world) -> list[int]:
    with vo_world.world.catalogue.engine.connect() as conn:
        return list(conn.scalars(select(Target.id)))
