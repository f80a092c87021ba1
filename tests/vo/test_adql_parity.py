"""ADQL geometry gives the same rows on PostgreSQL (pgSphere) and SQLite (hcdc's functions), and
the rows a direct spherical computation expects. Rows are positioned ObsCore rows written
directly (seeded), read as an admin (rights are tested elsewhere)."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import insert

from hcdc.archive.access import DEFAULT_POLICY, local_operator
from hcdc.archive.adql import AdqlError
from hcdc.archive.adql.geometry import distance_deg
from hcdc.archive.db import init_data_centre
from hcdc.archive.obscore import DATALINK_FORMAT, ObsCoreRow, square_region
from hcdc.web.vo.tap import run_adql

N = 400
FOV = 0.05  # deg


def _rows() -> list[dict]:
    rng = random.Random(12)
    rows = []
    for i in range(N):
        ra, dec = rng.uniform(9.0, 11.0), rng.uniform(19.0, 21.0)
        if i % 50 == 0:  # some around RA 0 and near the pole
            ra, dec = rng.choice(
                [(rng.uniform(359.5, 360.0), 0.1), (rng.uniform(0, 0.5), -0.1), (45.0, 89.8)]
            )
        rows.append(
            dict(
                hcdc_kind="product",
                hcdc_key=i + 1,
                dataproduct_type="image",
                calib_level=3,
                obs_collection="TEST L2",
                obs_id=f"obs-{i}",
                access_format=DATALINK_FORMAT,
                target_name=f"t{i}",
                s_ra=ra,
                s_dec=dec,
                s_fov=FOV,
                s_region=square_region(ra, dec, FOV),
                t_min=60000.0 + i,
                t_max=60000.1 + i,
                obs_release_date=dt.datetime(2020, 1, 1),
            )
        )
    return rows


CONES = [(10.0, 20.0, 0.3), (10.5, 19.5, 1.0 / 60), (359.9, 0.0, 0.5), (45.0, 89.9, 0.3)]


@pytest.fixture
def positioned(tmp_path, database_url):
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    rows = _rows()
    with catalogue.engine.begin() as conn:
        conn.execute(insert(ObsCoreRow), rows)
    yield catalogue, rows
    catalogue.close()


def _ids(catalogue, adql: str) -> list[str]:
    result = run_adql(
        catalogue.engine,
        adql,
        local_operator(),
        dt.datetime(2026, 1, 1),
        maxrec=10_000,
        authority="hcdc.test",
        base_url="http://x",
        policy=DEFAULT_POLICY,
    )
    return [row[0] for row in result.rows]


@pytest.mark.parametrize("ra,dec,radius", CONES)
def test_cone_matches_the_spherical_answer(positioned, ra, dec, radius) -> None:
    catalogue, rows = positioned
    expected = sorted(r["obs_id"] for r in rows if distance_deg(r["s_ra"], r["s_dec"], ra, dec) <= radius)
    got = _ids(
        catalogue,
        f"SELECT obs_id FROM ivoa.obscore WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), "
        f"CIRCLE('ICRS', {ra}, {dec}, {radius})) ORDER BY obs_id",
    )
    assert got == expected and (radius < 0.1 or got)


def test_regions_distance_and_area(positioned) -> None:
    catalogue, rows = positioned
    polygon = "POLYGON('ICRS', 9.5, 19.5, 10.5, 19.5, 10.5, 20.5, 9.5, 20.5)"
    inside = _ids(
        catalogue,
        f"SELECT obs_id FROM ivoa.obscore WHERE CONTAINS(POINT('ICRS', s_ra, s_dec), {polygon}) = 1 "
        "ORDER BY obs_id",
    )
    assert inside and all(
        9.5 <= r["s_ra"] <= 10.5 and 19.5 <= r["s_dec"] <= 20.5 for r in rows if r["obs_id"] in inside
    )
    touching = _ids(
        catalogue,
        "SELECT obs_id FROM ivoa.obscore WHERE "
        "INTERSECTS(s_region, CIRCLE('ICRS', 10, 20, 0.2)) = 1 ORDER BY obs_id",
    )
    near = {r["obs_id"] for r in rows if distance_deg(r["s_ra"], r["s_dec"], 10, 20) <= 0.2}
    assert near <= set(touching)
    assert all(
        distance_deg(r["s_ra"], r["s_dec"], 10, 20) <= 0.2 + FOV for r in rows if r["obs_id"] in touching
    )
    result = run_adql(
        catalogue.engine,
        "SELECT TOP 5 obs_id, DISTANCE(POINT('ICRS', s_ra, s_dec), "
        "POINT('ICRS', 10, 20)) AS d, AREA(s_region) AS a FROM ivoa.obscore ORDER BY d",
        local_operator(),
        dt.datetime(2026, 1, 1),
        maxrec=10,
        authority="a",
        base_url="x",
        policy=DEFAULT_POLICY,
    )
    by_id = {r["obs_id"]: r for r in rows}
    for obs_id, d, a in result.rows:
        r = by_id[obs_id]
        assert d == pytest.approx(distance_deg(r["s_ra"], r["s_dec"], 10, 20), abs=1e-9)
        assert a == pytest.approx(FOV * FOV, rel=1e-3)


def test_hostile_queries_are_refused(positioned) -> None:
    catalogue, _ = positioned
    for adql in [
        "SELECT * FROM products",
        "SELECT 1 FROM ivoa.obscore; DELETE FROM obscore",
        "SELECT pg_sleep(5) FROM ivoa.obscore",
        "SELECT * FROM ivoa.obscore AS a, files AS b",
    ]:
        with pytest.raises(AdqlError):
            _ids(catalogue, adql)
    with pytest.raises(AdqlError, match="longer than"):
        run_adql(
            catalogue.engine,
            "SELECT COUNT(*) FROM ivoa.obscore AS a, ivoa.obscore AS b, ivoa.obscore AS c, ivoa.obscore AS d",
            local_operator(),
            dt.datetime(2026, 1, 1),
            maxrec=10,
            authority="a",
            base_url="x",
            policy=DEFAULT_POLICY,
            timeout_s=1,
        )


@pytest.fixture
def positioned_targets(positioned):
    """The ObsCore rows' positions as Target Data Base targets (tdb.targets is public)."""
    from hcdc.archive.tdb_models import Target

    catalogue, rows = positioned
    with catalogue.engine.begin() as conn:
        conn.execute(
            insert(Target),
            [
                dict(
                    name=r["target_name"], ra_deg=r["s_ra"], dec_deg=r["s_dec"], sources={}, resolved="manual"
                )
                for r in rows
            ],
        )
    return catalogue, rows


@pytest.mark.parametrize("ra,dec,radius", CONES)
def test_tdb_target_cone_and_upload_join(positioned_targets, ra, dec, radius) -> None:
    """A cone over tdb.targets, and the same cone as a join with ObsCore, on both databases."""
    catalogue, rows = positioned_targets
    expected = sorted(
        r["target_name"] for r in rows if distance_deg(r["s_ra"], r["s_dec"], ra, dec) <= radius
    )
    got = _ids(
        catalogue,
        f"SELECT name FROM tdb.targets WHERE 1 = CONTAINS(POINT('ICRS', ra_deg, dec_deg), "
        f"CIRCLE('ICRS', {ra}, {dec}, {radius})) ORDER BY name",
    )
    assert got == expected
    joined = _ids(
        catalogue,
        "SELECT t.name FROM tdb.targets AS t JOIN ivoa.obscore AS o ON o.target_name = t.name "
        f"WHERE DISTANCE(POINT('ICRS', t.ra_deg, t.dec_deg), POINT('ICRS', {ra}, {dec})) <= {radius} "
        "ORDER BY t.name",
    )
    assert joined == expected
