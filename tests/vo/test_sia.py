"""SIA 2.0 (/sia/query) over ObsCore, on SQLite and PostgreSQL: every parameter against a
brute-force selection of the same rows, repeated parameters ORed, rights for every account,
MAXREC/OVERFLOW, hostile values, votlint, VOSI, and pyvo's SIA2Service against a live server.

The access world's ObsCore rows all lack positions, so the test spreads them (and 80 extra
granule rows of a public raw file, visible through that file's rights) over the sky, bands,
epochs and the other columns with a seeded random generator, and adds a few rows with wide
fields (degrees to tens of degrees) whose overlaps are checked against an independent oracle.
The sky is built once per module and database (the tests only read it).
"""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest
from astropy.io.votable import parse
from fastapi.testclient import TestClient
from helpers.live_server import serve_app
from matplotlib.path import Path as PlanePath
from sqlalchemy import insert, select, update
from web.world import BEFORE, build_world

from hcdc.archive.obscore import ObsCoreRow, rebuild_obscore, square_region
from hcdc.web.app import create_app

from .vo_tools import votlint

#: fields (deg) of the rows: IRDIS, NACO, interferometry; FOV, the widest, is the margin of POS checks
FIELDS = (12.5 / 3600.0, 28.0 / 3600.0, 1.0 / 3600.0)
FOV = max(FIELDS)
EXTRA = 80
INSTRUMENTS = ("SPHERE", "NACO", "GRAVITY")
FACILITIES = ("ESO-VLT-U3", "ESO-VLT-U1", "ESO-VLTI")
COLLECTIONS = ("SPHERE raw", "SPHERE L2", "OIDB")
TARGETS = ("51 Eri", "HR 8799", "beta Pic")
POLS = ("/I/", "/Q/U/", "/I/Q/U/V/", None)


def _position(rng: random.Random) -> tuple[float, float]:
    """Half the rows near (10, -20), a quarter across RA 0/360 at dec 5, the rest anywhere."""
    pick = rng.random()
    if pick < 0.5:
        return (10 + rng.uniform(-3, 3)) % 360, -20 + rng.uniform(-3, 3)
    if pick < 0.75:
        return rng.uniform(-2, 2) % 360, 5 + rng.uniform(-2, 2)
    return rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-1, 1)))


def _values(rng: random.Random) -> dict:
    ra, dec = _position(rng)
    em_min = rng.uniform(0.9e-6, 2.2e-6)
    t_min = rng.uniform(58000, 61000)
    fov = rng.choice(FIELDS)
    return {
        "s_ra": ra,
        "s_dec": dec,
        "s_fov": fov,
        "s_region": square_region(ra, dec, fov),
        "s_resolution": rng.choice((None, rng.uniform(0.01, 0.1))),
        "em_min": em_min,
        "em_max": em_min + rng.uniform(0.01e-6, 0.3e-6),
        "t_min": t_min,
        "t_max": t_min + rng.uniform(0, 0.2),
        "t_exptime": rng.choice((None, rng.uniform(1, 100))),
        "pol_states": rng.choice(POLS),
        "calib_level": rng.randrange(4),
        "obs_collection": rng.choice(COLLECTIONS),
        "facility_name": rng.choice(FACILITIES),
        "instrument_name": rng.choice(INSTRUMENTS),
        "dataproduct_type": rng.choice(("image", "cube", "visibility")),
        "target_name": rng.choice(TARGETS),
    }


#: rows with wide fields: (ra, dec, fov in deg); their centres lie far outside the regions tested,
#: so only a prefilter that knows the table's widest field finds them
WIDE = ((10.0, -29.0, 16.0), (115.0, 52.0, 30.0), (300.0, 70.0, 40.0), (180.0, -60.0, 5.0))


@pytest.fixture(scope="module")
def world(tmp_path_factory, module_database_url, l2_source):
    w = build_world(tmp_path_factory.mktemp("sia-world"), module_database_url, l2_source)
    with w.catalogue.engine.begin() as conn:
        rebuild_obscore(conn)
    yield w
    w.catalogue.close()


@pytest.fixture(scope="module")
def sky(world):
    """The world with its ObsCore rows spread out, plus EXTRA granule rows of a public file and
    the WIDE rows."""
    rng = random.Random(12)
    table = ObsCoreRow.__table__
    with world.catalogue.engine.begin() as conn:
        rows = conn.execute(select(table)).mappings().all()
        for row in rows:
            conn.execute(update(table).where(table.c.id == row["id"]).values(**_values(rng)))
        public = next(
            r for r in rows if r["hcdc_kind"] == "file" and r["hcdc_file_id"] == world.ids["public"]["file"]
        )
        template = {k: v for k, v in public.items() if k != "id"}
        for key in range(1, EXTRA + 1):
            conn.execute(
                insert(table).values(
                    {**template, "hcdc_kind": "granule", "hcdc_key": 9000 + key, **_values(rng)}
                )
            )
        for key, (ra, dec, fov) in enumerate(WIDE, start=9500):
            values = {**_values(rng), "s_ra": ra, "s_dec": dec, "s_fov": fov}
            values["s_region"] = square_region(ra, dec, fov)
            conn.execute(
                insert(table).values({**template, "hcdc_kind": "granule", "hcdc_key": key, **values})
            )
    return world


@pytest.fixture(scope="module")
def sia(sky):
    def make(user: str | None = None) -> TestClient:
        client = TestClient(create_app(catalogue=sky.catalogue, clock=lambda: BEFORE, secret_key="t"))
        if user is not None:
            client.headers["Authorization"] = f"Bearer {sky.tokens[user]}"
        return client

    return make


def _table(response):
    assert response.status_code == 200, response.text
    return parse(io.BytesIO(response.content)).get_first_table().to_table()


def _search(client, params) -> set[str]:
    return {str(d) for d in _table(client.get("/sia/query", params=params))["obs_publisher_did"]}


def _value(row, name):
    value = row[name]
    return None if np.ma.is_masked(value) else (value.item() if hasattr(value, "item") else value)


@pytest.fixture(scope="module")
def everything(sia):
    """Every row the admin sees (the brute force selects from these), as dicts."""
    table = _table(sia("admin").get("/sia/query", params={"MAXREC": "100000"}))
    return [{name: _value(row, name) for name in table.colnames} for row in table]


def _sep(ra1, dec1, ra2, dec2) -> float:
    """Great-circle distance (deg), by the dot product (independent of the service's haversine)."""
    a = [math.radians(x) for x in (ra1, dec1, ra2, dec2)]
    dot = math.sin(a[1]) * math.sin(a[3]) + math.cos(a[1]) * math.cos(a[3]) * math.cos(a[0] - a[2])
    return math.degrees(math.acos(max(-1.0, min(1.0, dot))))


def _gnomonic(ra0, dec0, ra, dec) -> tuple[float, float]:
    """Tangent-plane coordinates at (ra0, dec0): great circles are straight lines there."""
    a0, d0, a, d = (math.radians(x) for x in (ra0, dec0, ra, dec))
    cos_c = math.sin(d0) * math.sin(d) + math.cos(d0) * math.cos(d) * math.cos(a - a0)
    return (
        math.cos(d) * math.sin(a - a0) / cos_c,
        (math.cos(d0) * math.sin(d) - math.sin(d0) * math.cos(d) * math.cos(a - a0)) / cos_c,
    )


def _check_sure(found: set[str], rows, inside, margin: float) -> None:
    """``inside(row)`` is a signed distance (deg, > 0 inside): rows clearly in are found, rows
    clearly out are not; rows within ``margin`` of the boundary (the field's size) may go either way.
    The WIDE rows are left to :func:`test_wide_fields_against_an_independent_oracle`."""
    wide = {r["obs_publisher_did"] for r in rows if r["s_fov"] > FOV}
    rows = [r for r in rows if r["obs_publisher_did"] not in wide]
    found = found - wide
    sure_in = {r["obs_publisher_did"] for r in rows if inside(r) > margin}
    sure_out = {r["obs_publisher_did"] for r in rows if inside(r) < -margin}
    assert sure_in, "the test data should put rows inside the region"
    assert sure_in <= found and not (found & sure_out)
    assert len(found) == len(found & (set(r["obs_publisher_did"] for r in rows) - sure_out))


def test_no_parameters_all_visible_rows(sky, everything) -> None:
    assert len(everything) == 12 + EXTRA + len(WIDE)


@pytest.mark.parametrize(
    ("ra", "dec", "r"), [(10, -20, 2.0), (0.5, 5, 1.5), (359.5, 4.0, 1.0), (200, 30, 40)]
)
def test_pos_circle(sia, everything, ra, dec, r) -> None:
    found = _search(sia("admin"), {"POS": f"CIRCLE {ra} {dec} {r}"})
    _check_sure(found, everything, lambda row: r - _sep(ra, dec, row["s_ra"], row["s_dec"]), FOV)


@pytest.mark.parametrize(
    "vertices",
    [[8, -22, 12, -22, 12, -18, 8, -18], [358.5, 3.5, 1.5, 3.5, 0.0, 7.0], [9, -23, 13, -21, 9, -17]],
)
def test_pos_polygon(sia, everything, vertices) -> None:
    found = _search(sia("admin"), {"POS": "POLYGON " + " ".join(str(v) for v in vertices)})
    ra0, dec0 = vertices[0], vertices[1]  # project at a vertex: the polygons are a few degrees wide
    plane = PlanePath(
        [_gnomonic(ra0, dec0, vertices[i], vertices[i + 1]) for i in range(0, len(vertices), 2)]
    )

    corners = plane.vertices

    def inside(row) -> float:
        """Signed distance (deg, tangent plane) to the polygon's edges: > 0 inside."""
        if _sep(ra0, dec0, row["s_ra"], row["s_dec"]) > 60:
            return -90.0
        p = np.array(_gnomonic(ra0, dec0, row["s_ra"], row["s_dec"]))
        distances = []
        for a, b in zip(corners, np.roll(corners, -1, axis=0), strict=True):
            t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0, 1)
            distances.append(np.linalg.norm(p - (a + t * (b - a))))
        return math.degrees(min(distances)) * (1 if plane.contains_point(p) else -1)

    _check_sure(found, everything, inside, 2 * FOV)


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("RANGE 7 13 -23 -17", (7, 13, -23, -17)),
        ("RANGE 0 2 -Inf +Inf", (0, 2, -90, 90)),
        ("RANGE -Inf +Inf 3 5", (0, 360, 3, 5)),
    ],
)
def test_pos_range(sia, everything, text, bounds) -> None:
    ra1, ra2, dec1, dec2 = bounds
    found = _search(sia("admin"), {"POS": text})

    def inside(row) -> float:
        ra, dec = row["s_ra"], row["s_dec"]
        ra_margin = min(ra - ra1, ra2 - ra) * math.cos(math.radians(dec)) if ra2 - ra1 < 360 else 90.0
        return min(ra_margin, dec - dec1, dec2 - dec)

    _check_sure(found, everything, inside, FOV)


def _field_corners(row) -> list[tuple[float, float]]:
    words = row["s_region"].split()[2:]
    return [(float(words[i]), float(words[i + 1])) for i in range(0, len(words), 2)]


def _oracle(row, region_points, region_has) -> bool:
    """Independent overlap test of a row's square field and a region: a sample point of the
    region inside the field (tangent plane at the field's centre, where its edges are straight),
    or a field corner inside the region."""
    ra0, dec0 = row["s_ra"], row["s_dec"]
    plane = PlanePath([_gnomonic(ra0, dec0, ra, dec) for ra, dec in _field_corners(row)])
    near = [(ra, dec) for ra, dec in region_points if _sep(ra0, dec0, ra, dec) < 80]
    if any(plane.contains_point(_gnomonic(ra0, dec0, ra, dec)) for ra, dec in near):
        return True
    return any(region_has(ra, dec) for ra, dec in _field_corners(row))


WIDE_REGIONS = [
    # the first wide field reaches dec -21 from its centre at -29: a cone at -20 touches it
    ("CIRCLE 10 -20 1.5", lambda ra, dec: _sep(10, -20, ra, dec) <= 1.5),
    ("CIRCLE 10 -12 1.5", lambda ra, dec: _sep(10, -12, ra, dec) <= 1.5),
    ("POLYGON 120 64 140 64 130 70", None),
    ("RANGE 126 130 50 54", lambda ra, dec: 126 <= ra <= 130 and 50 <= dec <= 54),
    ("RANGE 150 155 50 54", lambda ra, dec: 150 <= ra <= 155 and 50 <= dec <= 54),
    ("RANGE 100 110 89 +Inf", lambda ra, dec: 100 <= ra <= 110 and dec >= 89),
    ("RANGE -Inf +Inf -57 -56", lambda ra, dec: -57 <= dec <= -56),
]


def _region_points(text: str) -> list[tuple[float, float]]:
    """Dense samples (boundary and inside) of a region, in degrees."""
    shape, *words = text.split()
    numbers = [float(w.replace("Inf", "inf")) for w in words]
    if shape == "CIRCLE":
        ra0, dec0, r = numbers
        return [
            (
                (
                    ra0
                    + math.degrees(
                        math.atan2(
                            math.sin(t) * math.sin(math.radians(k * r / 20)),
                            math.cos(math.radians(dec0)) * math.cos(math.radians(k * r / 20))
                            - math.sin(math.radians(dec0)) * math.sin(math.radians(k * r / 20)) * math.cos(t),
                        )
                    )
                )
                % 360,
                math.degrees(
                    math.asin(
                        math.sin(math.radians(dec0)) * math.cos(math.radians(k * r / 20))
                        + math.cos(math.radians(dec0)) * math.sin(math.radians(k * r / 20)) * math.cos(t)
                    )
                ),
            )
            for k in range(21)
            for t in np.linspace(0, 2 * math.pi, 180)
        ]
    if shape == "RANGE":
        ra1, ra2, dec1, dec2 = (
            max(numbers[0], 0),
            min(numbers[1], 360),
            max(numbers[2], -90),
            min(numbers[3], 90),
        )
        return [(ra, dec) for ra in np.linspace(ra1, ra2, 200) for dec in np.linspace(dec1, dec2, 60)]
    # a polygon: its edges and a fan towards its first vertex, in its tangent plane at vertex 0
    corners = [(numbers[i], numbers[i + 1]) for i in range(0, len(numbers), 2)]
    return [
        _slerp(_slerp(a, b, t), corners[0], u)
        for a, b in zip(corners, corners[1:] + corners[:1], strict=True)
        for t in np.linspace(0, 1, 60)
        for u in np.linspace(0, 1, 30)
    ]


def _slerp(p, q, t) -> tuple[float, float]:
    """The point a fraction t along the great circle from p to q (degrees)."""
    a = np.array(
        [
            math.cos(math.radians(p[1])) * math.cos(math.radians(p[0])),
            math.cos(math.radians(p[1])) * math.sin(math.radians(p[0])),
            math.sin(math.radians(p[1])),
        ]
    )
    b = np.array(
        [
            math.cos(math.radians(q[1])) * math.cos(math.radians(q[0])),
            math.cos(math.radians(q[1])) * math.sin(math.radians(q[0])),
            math.sin(math.radians(q[1])),
        ]
    )
    v = (1 - t) * a + t * b
    v /= np.linalg.norm(v)
    return math.degrees(math.atan2(v[1], v[0])) % 360, math.degrees(math.asin(v[2]))


@pytest.mark.parametrize(("text", "has"), WIDE_REGIONS, ids=[r[0] for r in WIDE_REGIONS])
def test_wide_fields_against_an_independent_oracle(sia, everything, text, has) -> None:
    """Fields degrees wide are found when they reach the region (the prefilter knows the widest
    field), RANGE is the exact meridian/parallel box, and both databases agree with an oracle
    that shares no code with the service."""
    points = _region_points(text)
    if has is None:  # the polygon: its own samples decide (corner inside: tangent-plane test)
        corners = [float(w) for w in text.split()[1:]]
        poly = PlanePath(
            [_gnomonic(corners[0], corners[1], corners[i], corners[i + 1]) for i in range(0, 6, 2)]
        )

        def has(ra, dec):
            return _sep(corners[0], corners[1], ra, dec) < 60 and poly.contains_point(
                _gnomonic(corners[0], corners[1], ra, dec)
            )

    wide = [r for r in everything if r["s_fov"] > FOV]
    assert len(wide) == len(WIDE)
    expected = {r["obs_publisher_did"] for r in wide if _oracle(r, points, has)}
    found = _search(sia("admin"), {"POS": text}) & {r["obs_publisher_did"] for r in wide}
    assert found == expected


def test_wide_regions_are_discriminating(everything) -> None:
    """The oracle cases above are not vacuous: some wide fields overlap, some do not."""
    wide = [r for r in everything if r["s_fov"] > FOV]
    outcomes = set()
    for text, has in WIDE_REGIONS:
        if has is not None:
            outcomes |= {_oracle(r, _region_points(text), has) for r in wide}
    assert outcomes == {True, False}


def _brute(rows, keep) -> set[str]:
    return {r["obs_publisher_did"] for r in rows if keep(r)}


def _overlap(lo_name, hi_name, lo, hi):
    return lambda r: (
        r[lo_name] is not None and r[hi_name] is not None and r[lo_name] <= hi and r[hi_name] >= lo
    )


def _within(name, lo, hi):
    return lambda r: r[name] is not None and lo <= r[name] <= hi


CASES = [
    ({"BAND": "1.5e-6 1.7e-6"}, _overlap("em_min", "em_max", 1.5e-6, 1.7e-6)),
    ({"BAND": "2.0e-6"}, _overlap("em_min", "em_max", 2.0e-6, 2.0e-6)),
    ({"BAND": "-Inf 1.0e-6"}, _overlap("em_min", "em_max", -math.inf, 1.0e-6)),
    ({"TIME": "59000 60000"}, _overlap("t_min", "t_max", 59000, 60000)),
    ({"TIME": "60500 +Inf"}, _overlap("t_min", "t_max", 60500, math.inf)),
    ({"FOV": "0.003 0.004"}, _within("s_fov", 0.003, 0.004)),
    ({"FOV": "-Inf 0.001"}, _within("s_fov", -math.inf, 0.001)),
    ({"SPATRES": "0.02 0.05"}, _within("s_resolution", 0.02, 0.05)),
    ({"EXPTIME": "10 +Inf"}, _within("t_exptime", 10, math.inf)),
    ({"POL": "Q"}, lambda r: r["pol_states"] is not None and "/Q/" in r["pol_states"]),
    ({"POL": "V"}, lambda r: r["pol_states"] is not None and "/V/" in r["pol_states"]),
    ({"COLLECTION": "OIDB"}, lambda r: r["obs_collection"] == "OIDB"),
    ({"FACILITY": "ESO-VLTI"}, lambda r: r["facility_name"] == "ESO-VLTI"),
    ({"INSTRUMENT": "NACO"}, lambda r: r["instrument_name"] == "NACO"),
    ({"DPTYPE": "cube"}, lambda r: r["dataproduct_type"] == "cube"),
    ({"CALIB": "2"}, lambda r: r["calib_level"] == 2),
    ({"TARGET": "hr 8799"}, lambda r: r["target_name"].lower() == "hr 8799"),
    (
        {"INSTRUMENT": "NACO", "CALIB": "3"},
        lambda r: r["instrument_name"] == "NACO" and r["calib_level"] == 3,
    ),
    (
        {"BAND": "1e-6 1.4e-6", "TIME": "58000 59500"},
        lambda r: (
            _overlap("em_min", "em_max", 1e-6, 1.4e-6)(r) and _overlap("t_min", "t_max", 58000, 59500)(r)
        ),
    ),
    ({"unknown": "ignored", "calib": "0"}, lambda r: r["calib_level"] == 0),  # names: any case
]


@pytest.mark.parametrize(
    ("params", "keep"), CASES, ids=[" ".join(f"{k}={v}" for k, v in c[0].items()) for c in CASES]
)
def test_parameter_against_brute_force(sia, everything, params, keep) -> None:
    expected = _brute(everything, keep)
    assert expected, "the test data should match"
    assert expected != _brute(everything, lambda r: True), "the test data should not all match"
    assert _search(sia("admin"), params) == expected


def test_id_and_repeated_parameters_are_ored(sia, everything) -> None:
    client = sia("admin")
    dids = sorted(r["obs_publisher_did"] for r in everything)[:3]
    assert _search(client, [("ID", d) for d in dids]) == set(dids)
    both = _search(client, [("INSTRUMENT", "NACO"), ("INSTRUMENT", "GRAVITY")])
    assert both == _brute(everything, lambda r: r["instrument_name"] in ("NACO", "GRAVITY"))
    assert both == _search(client, {"INSTRUMENT": "NACO"}) | _search(client, {"INSTRUMENT": "GRAVITY"})
    two_cones = _search(client, [("POS", "CIRCLE 10 -20 1"), ("POS", "CIRCLE 0 5 1")])
    assert two_cones == _search(client, {"POS": "CIRCLE 10 -20 1"}) | _search(client, {"POS": "CIRCLE 0 5 1"})
    # ORed within a parameter, ANDed across: (NACO or GRAVITY) and CALIB 1
    mixed = _search(client, [("INSTRUMENT", "NACO"), ("INSTRUMENT", "GRAVITY"), ("CALIB", "1")])
    assert mixed == _brute(
        everything, lambda r: r["instrument_name"] in ("NACO", "GRAVITY") and r["calib_level"] == 1
    )
    # POST with a form does the same
    posted = client.post("/sia/query", data={"INSTRUMENT": ["NACO", "GRAVITY"]})
    assert {str(d) for d in _table(posted)["obs_publisher_did"]} == both


def test_rights(sky, sia) -> None:
    private = f"product?{sky.ids['private']['product']}"
    seen = {who: _search(sia(who), {"MAXREC": "1000"}) for who in (None, "other_pi", "owner", "admin")}
    for who in (None, "other_pi"):
        assert not any(d.endswith(private) for d in seen[who]), who
    for who in ("owner", "admin"):
        assert any(d.endswith(private) for d in seen[who]), who
    assert seen[None] < seen["owner"] <= seen["admin"]
    # asking for it by its ID does not reveal it either
    did = next(d for d in seen["admin"] if d.endswith(private))
    assert _search(sia(), {"ID": did}) == set() and _search(sia("owner"), {"ID": did}) == {did}


@pytest.mark.parametrize("fmt", ["", "application/x-votable+xml", "votable/td", "csv", "json"])
def test_maxrec_overflow_and_formats(sia, fmt) -> None:
    response = sia("admin").get("/sia/query", params={"MAXREC": "5", "RESPONSEFORMAT": fmt})
    assert response.status_code == 200, response.text
    if fmt in ("csv", "json"):
        assert response.headers["content-type"].startswith("text/csv" if fmt == "csv" else "application/json")
        return
    assert len(_table(response)) == 5 and 'value="OVERFLOW"' in response.text
    votlint(response.content)
    empty = sia("admin").get("/sia/query", params={"MAXREC": "0"})
    assert len(_table(empty)) == 0 and 'value="OVERFLOW"' in empty.text
    whole = sia("admin").get("/sia/query", params={"MAXREC": "10000"})
    assert 'value="OVERFLOW"' not in whole.text


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"POS": "CIRCLE 10 95 1"}, "POS"),
        ({"POS": "CIRCLE 10 20 -1"}, "POS"),
        ({"POS": "CIRCLE 10 20"}, "POS"),
        ({"POS": "BOX 1 2 3 4"}, "POS"),
        ({"POS": "POLYGON 1 2 3 4"}, "POS"),
        ({"POS": "RANGE 10 5 0 1"}, "POS"),
        ({"POS": "CIRCLE nan 0 1"}, "POS"),
        ({"POS": "CIRCLE 1e999 0 1"}, "POS"),
        ({"POS": "CIRCLE 10 20 1'; DROP TABLE obscore; --"}, "POS"),
        ({"BAND": "2e-6 1e-6"}, "BAND"),
        ({"BAND": "abc"}, "BAND"),
        ({"BAND": "+Inf"}, "BAND"),
        ({"TIME": "1 2 3"}, "TIME"),
        ({"FOV": "1 x"}, "FOV"),
        ({"EXPTIME": "1)) OR 1=1 --"}, "EXPTIME"),
        ({"POL": "Z"}, "POL"),
        ({"CALIB": "9"}, "CALIB"),
        ({"CALIB": "1 OR 1=1"}, "CALIB"),
        ({"MAXREC": "-1"}, "MAXREC"),
        ({"MAXREC": "lots"}, "MAXREC"),
        ({"RESPONSEFORMAT": "text/html"}, "RESPONSEFORMAT"),
        ({"TARGET": "51 Eri\x00"}, "TARGET"),
    ],
)
def test_bad_values_error_document(sia, params, parameter) -> None:
    response = sia().get("/sia/query", params=params)
    assert response.status_code == 400
    assert 'name="QUERY_STATUS" value="ERROR"' in response.text and f">{parameter}:" in response.text
    votlint(response.content)


def test_hostile_strings_are_values(sia, everything) -> None:
    client = sia("admin")
    for text in ("x' OR '1'='1", "%", "_", "51 Eri --", "é" * 500):
        assert _search(client, {"TARGET": text}) == set()
        assert _search(client, {"COLLECTION": text}) == set()
    # the table survived
    assert len(_search(client, {"MAXREC": "1000"})) == len(everything)


def test_vosi(sia) -> None:
    client = sia()
    for root in ("/sia", "/sia/query"):
        caps = client.get(f"{root}/capabilities")
        assert caps.status_code == 200
        assert "ivo://ivoa.net/std/SIA#query-2.0" in caps.text and "/sia/query</accessURL>" in caps.text
        avail = client.get(f"{root}/availability")
        assert avail.status_code == 200 and "<avl:available>true</avl:available>" in avail.text


@pytest.fixture(scope="module")
def live_sia(sky):
    app = create_app(catalogue=sky.catalogue, clock=lambda: BEFORE, secret_key="pyvo")
    with serve_app(app) as base:
        yield sky, f"{base}/sia"


def test_pyvo_sia2(live_sia, sia, everything) -> None:
    import astropy.units as u
    import pyvo
    import requests

    world, url = live_sia
    anonymous = pyvo.dal.SIA2Service(url)
    cone = anonymous.search(pos=(10 * u.deg, -20 * u.deg, 2 * u.deg), calib_level=[0, 1, 2, 3], maxrec=1000)
    dids = {str(d) for d in cone.to_table()["obs_publisher_did"]}
    assert dids and all(
        _sep(10, -20, r["s_ra"], r["s_dec"]) <= 2 + max(FOV, r["s_fov"])
        for r in everything
        if r["obs_publisher_did"] in dids
    )
    band = anonymous.search(band=(1.5e-6, 1.7e-6), instrument=["NACO", "GRAVITY"], maxrec=1000).to_table()
    expected = _brute(
        everything,
        lambda r: (
            _overlap("em_min", "em_max", 1.5e-6, 1.7e-6)(r) and r["instrument_name"] in ("NACO", "GRAVITY")
        ),
    )
    public = _search(sia(), [("BAND", "1.5e-6 1.7e-6"), ("INSTRUMENT", "NACO"), ("INSTRUMENT", "GRAVITY")])
    assert (
        public and {str(d) for d in band["obs_publisher_did"]} == public <= expected
    )  # anonymous: the public part
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {world.tokens['owner']}"
    owner = pyvo.dal.SIA2Service(url, session=session)
    private = f"product?{world.ids['private']['product']}"
    owner_dids = {str(d) for d in owner.search(maxrec=1000).to_table()["obs_publisher_did"]}
    anonymous_dids = {str(d) for d in anonymous.search(maxrec=1000).to_table()["obs_publisher_did"]}
    assert any(d.endswith(private) for d in owner_dids) and not any(
        d.endswith(private) for d in anonymous_dids
    )
    with pytest.raises(pyvo.dal.DALQueryError):
        anonymous.search(res_format="text/html")  # checked by the server, not by pyvo
