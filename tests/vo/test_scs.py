# ruff: noqa: F811 - the fixtures of dl_world are imported by name
"""Simple Cone Search 1.03 (/scs/targets, /scs/detections) on the Target Data Base: the cone
against a brute-force great-circle selection (wrap-around at RA 0/360, a pole), the SCS columns,
detections filtered by rule R15 for each account, errors, votlint."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from astropy.io import votable
from sqlalchemy import select

from hcdc.archive import targets, tdb
from hcdc.archive.tdb_models import Detection, Target
from hcdc.web.vo.scs import angular_distance

from .dl_world import vo_client, vo_l2_source, vo_world  # noqa: F401 - fixtures
from .test_datalink import votlint

#: (name, ra, dec) in degrees: 51 Eri (the world's products), and cones' corner cases
TARGETS = [
    ("51 Eri", 69.40058, -2.47336),
    ("HR 8799", 346.86965, 21.13425),
    ("near zero A", 359.995, 10.0),
    ("near zero B", 0.004, 10.001),
    ("polar", 123.0, 89.95),
    ("polar opposite", 303.0, 89.97),
]


@pytest.fixture
def tdb_world(vo_world):
    engine = vo_world.world.catalogue.engine
    with engine.begin() as conn:
        for name, ra, dec in TARGETS:
            targets.create_target(conn, name, values={"ra_deg": ra, "dec_deg": dec, "mag_h": 4.8})
        for label in ("public", "private", "other"):
            assert tdb.receive_product(conn, vo_world.world.ids[label]["product"]) is not None
    return vo_world


def table(response) -> list[dict]:
    assert response.status_code == 200, response.text[:300]
    parsed = votable.parse_single_table(io.BytesIO(response.content))
    ucds = {f.ucd for f in parsed.fields}
    assert {"ID_MAIN", "POS_EQ_RA_MAIN", "POS_EQ_DEC_MAIN"} <= ucds
    assert sum(f.ucd == "ID_MAIN" for f in parsed.fields) == 1
    rows = parsed.to_table()
    return [
        {name: (None if np.ma.is_masked(row[name]) else row[name]) for name in rows.colnames} for row in rows
    ]


def brute_force(ra: float, dec: float, sr: float) -> set[str]:
    return {name for name, t_ra, t_dec in TARGETS if angular_distance(ra, dec, t_ra, t_dec) <= sr}


CONES = [
    (69.40058, -2.47336, 1 / 60),  # 1 arcmin on 51 Eri
    (69.5, -2.5, 1.0),
    (0.0, 10.0, 0.02),  # across RA 0/360
    (359.99, 10.0, 0.02),
    (200.0, 89.99, 0.1),  # holds the pole
    (0.0, 0.0, 180.0),  # the whole sky
    (100.0, -40.0, 5.0),  # empty
]


@pytest.mark.parametrize("ra,dec,sr", CONES)
def test_target_cones_match_the_great_circle_selection(tdb_world, vo_client, ra, dec, sr):
    rows = table(vo_client().get("/scs/targets", params={"RA": ra, "DEC": dec, "SR": sr}))
    assert {r["name"] for r in rows} == brute_force(ra, dec, sr)
    distances = [r["_r"] for r in rows]
    assert distances == sorted(distances)


def test_verbosity_levels(tdb_world, vo_client):
    params = {"RA": 69.4, "DEC": -2.47, "SR": 0.1}
    names = {}
    for verb in (1, 2, 3):
        response = vo_client().get("/scs/targets", params={**params, "VERB": verb})
        names[verb] = [f.name for f in votable.parse_single_table(io.BytesIO(response.content)).fields]
    assert names[1] == ["id", "ra", "dec"]
    assert set(names[1]) < set(names[2]) < set(names[3])


def _visible_detection_ids(world, user: str | None) -> set[int]:
    from web.world import BEFORE

    from hcdc.archive.access import ANONYMOUS, load_principal, visible_tdb_reductions_clause
    from hcdc.archive.tdb_models import Reduction

    with world.catalogue.engine.connect() as conn:
        principal = ANONYMOUS if user is None else load_principal(conn, user)
        return set(
            conn.scalars(
                select(Detection.id)
                .join(Reduction, Reduction.id == Detection.reduction_id)
                .where(visible_tdb_reductions_clause(principal, BEFORE))
            )
        )


@pytest.mark.parametrize("user", [None, "owner", "other_pi", "admin"])
def test_detections_follow_rule_r11(tdb_world, vo_client, user):
    world = tdb_world.world
    rows = table(vo_client(user).get("/scs/detections", params={"RA": 69.40058, "DEC": -2.47336, "SR": 0.01}))
    expected = _visible_detection_ids(world, user)
    assert {r["id"] for r in rows} == expected
    assert expected, "the world's products carry detections"
    with world.catalogue.engine.connect() as conn:
        for r in rows:
            host = conn.execute(select(Target.ra_deg, Target.dec_deg).where(Target.name == r["target"])).one()
            det = conn.execute(
                select(Detection.dra_mas, Detection.ddec_mas).where(Detection.id == int(r["id"]))
            ).one()
            if det.dra_mas is not None:
                # the row's position is the host's plus the measured offsets, to 1 mas
                dra = (r["ra"] - host.ra_deg) * math.cos(math.radians(host.dec_deg)) * 3.6e6
                assert (
                    abs(dra - det.dra_mas) < 1 and abs((r["dec"] - host.dec_deg) * 3.6e6 - det.ddec_mas) < 1
                )
    anonymous = _visible_detection_ids(world, None)
    if user == "owner":
        assert expected > anonymous  # the owner also sees the private product's detections


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"RA": 10, "DEC": 10},
        {"RA": "x", "DEC": 1, "SR": 1},
        {"RA": 10, "DEC": 95, "SR": 1},
        {"RA": 10, "DEC": 1, "SR": -1},
        {"RA": "nan", "DEC": 1, "SR": 1},
        {"RA": 10, "DEC": 1, "SR": "1e400"},
    ],
)
def test_errors_are_info_error_documents(tdb_world, vo_client, params):
    response = vo_client().get("/scs/targets", params=params)
    assert response.status_code == 200
    doc = votable.parse(io.BytesIO(response.content))
    (info,) = [i for i in doc.resources[0].infos if i.name == "Error"]
    assert info.value
    assert not doc.resources[0].tables


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_votlint_accepts_cone_results(tdb_world, vo_client, tmp_path):
    client = vo_client("owner")
    for path in ("/scs/targets", "/scs/detections"):
        for verb in (1, 3):
            data = client.get(path, params={"RA": 69.4, "DEC": -2.47, "SR": 0.5, "VERB": verb}).content
            assert votlint(data, tmp_path) == "", path
    assert votlint(client.get("/scs/targets").content, tmp_path) == ""
