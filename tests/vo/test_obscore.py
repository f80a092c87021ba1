"""ObsCore 1.1 rows (hcdc.archive.obscore): columns against the standard, rows kept in sync with
products, and rights: every user sees exactly the rows whose file or product the portal's
per-object decision lets them see (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import datetime as dt
import math

import pytest
from sqlalchemy import func, select
from web.world import AFTER, BEFORE, USERS

from hcdc.archive.access import AccessContext, load_principal
from hcdc.archive.identifiers import parse_publisher_did
from hcdc.archive.obscore import (
    OBSCORE_COLUMNS,
    ObsCoreRow,
    published_select,
    rebuild_obscore,
    square_region,
)

from .conftest import REFERENCE

GOLDEN = REFERENCE / "vo_golden" / "dachs_obscore_tap_schema_columns.csv"
MANDATORY = (
    "dataproduct_type calib_level obs_collection obs_id obs_publisher_did access_url access_format "
    "access_estsize target_name s_ra s_dec s_fov s_region s_resolution s_xel1 s_xel2 t_min t_max "
    "t_exptime t_resolution t_xel em_min em_max em_res_power em_xel o_ucd pol_states pol_xel "
    "facility_name instrument_name"
).split()


def test_the_30_mandatory_columns_with_the_standard_metadata() -> None:
    specs = {c.name: c for c in OBSCORE_COLUMNS}
    assert len(MANDATORY) == 30 and set(MANDATORY) <= set(specs)
    extras = [c.name for c in OBSCORE_COLUMNS if not c.std]
    assert extras and all(name.startswith("hcdc_") for name in extras)
    if not GOLDEN.is_file():
        pytest.skip(f"{GOLDEN} is absent")
    with GOLDEN.open() as handle:
        golden = {row["column_name"]: row for row in csv.DictReader(handle)}
    for name in MANDATORY:
        ours, theirs = specs[name], golden[name]
        assert (ours.ucd or "").lower() == theirs["ucd"].lower(), name
        assert (ours.unit or "") == theirs["unit"], name
        assert (ours.utype or "").lower() == theirs["utype"].lower(), name
        if theirs["datatype"] in ("char", "long", "double", "short"):
            assert ours.datatype == theirs["datatype"], name


def test_square_region_contains_the_field() -> None:
    region = square_region(10.0, -30.0, 12.5 / 3600)
    words = region.split()
    assert words[:2] == ["POLYGON", "ICRS"] and len(words) == 10
    ras = [float(v) for v in words[2::2]]
    decs = [float(v) for v in words[3::2]]
    half = 12.5 / 3600 / 2
    assert max(decs) == pytest.approx(-30 + half, abs=1e-6)
    assert max(ras) - 10 == pytest.approx(half / math.cos(math.radians(30)), rel=1e-3)


def test_rows_follow_the_catalogue(world) -> None:
    with world.catalogue.engine.connect() as conn:
        kinds = dict(
            conn.execute(select(ObsCoreRow.hcdc_kind, func.count()).group_by(ObsCoreRow.hcdc_kind)).all()
        )
        # six raw science files (the calibration file is not published) and six Level 2 products
        assert kinds == {"file": 6, "product": 6}
        product = conn.execute(
            select(ObsCoreRow).where(ObsCoreRow.hcdc_product_id == world.ids["public"]["product"])
        ).one()
    assert product.calib_level == 3 and product.dataproduct_type == "image"
    assert product.em_min == pytest.approx(1.567e-6, rel=1e-3) and product.em_max == pytest.approx(
        1.694e-6, rel=1e-3
    )
    assert product.obs_release_date is not None and product.access_estsize > 0
    # registration keeps them in sync: the products were registered before the rebuild and had rows
    with world.catalogue.engine.begin() as conn:
        summary = rebuild_obscore(conn)
    assert summary.as_dict() == {"files": 6, "granules": 0, "products": 6, "total": 12}


def _expected(conn, user_name: str | None, when) -> set[tuple[str, int]]:
    user = load_principal(conn, user_name or "public")
    access = AccessContext(conn, user, when)
    expected = set()
    for row in conn.execute(select(ObsCoreRow.hcdc_kind, ObsCoreRow.hcdc_key)):
        if access.can_see((row.hcdc_kind, row.hcdc_key)):
            expected.add((row.hcdc_kind, row.hcdc_key))
    return expected


@pytest.mark.parametrize("when", [BEFORE, AFTER], ids=["before", "after"])
def test_every_user_sees_what_the_portal_shows(world, when) -> None:
    with world.catalogue.engine.connect() as conn:
        for name in [None, *USERS]:
            user = load_principal(conn, name or "public")
            query = published_select(user, when, authority="hcdc.test", base_url="http://x/vo")
            seen = set()
            for row in conn.execute(query).mappings():
                did = parse_publisher_did(row["obs_publisher_did"], "hcdc.test")
                seen.add((did.kind, did.key))
                assert row["access_url"].startswith("http://x/vo/datalink?ID=ivo%3A%2F%2Fhcdc.test%2F")
                assert row["data_rights"] in ("public", "proprietary")
            assert seen == _expected(conn, name, when), name
    private = ("product", world.ids["private"]["product"])
    with world.catalogue.engine.connect() as conn:
        anonymous = {(r.kind, r.key) for r in _rows(conn, None, BEFORE)}
        owner = {(r.kind, r.key) for r in _rows(conn, "owner", BEFORE)}
        other = {(r.kind, r.key) for r in _rows(conn, "other_pi", BEFORE)}
        admin = {(r.kind, r.key) for r in _rows(conn, "admin", BEFORE)}
    assert private in owner and private in admin
    assert private not in anonymous and private not in other
    embargoed = ("product", world.ids["embargoed"]["product"])
    assert embargoed not in anonymous and len(admin) == 12


def _rows(conn, name, when):
    user = load_principal(conn, name or "public")
    for row in conn.execute(published_select(user, when, authority="hcdc.test", base_url="http://x")):
        did = parse_publisher_did(row.obs_publisher_did)
        yield did


def _stored_release(conn) -> dict[tuple[str, int], dt.datetime | None]:
    return {
        (r.hcdc_kind, r.hcdc_key): r.obs_release_date
        for r in conn.execute(select(ObsCoreRow.hcdc_kind, ObsCoreRow.hcdc_key, ObsCoreRow.obs_release_date))
    }


def test_release_changes_reach_obscore_in_their_transaction(world) -> None:
    """A PI's delay, its removal and a new proprietary period rewrite obs_release_date at once
    (no 'hcdc vo rebuild-obscore' needed): the stored rows always equal a rebuild's."""
    from hcdc.archive import accounts
    from hcdc.archive.access import local_operator

    delayed = world.ids["delayed"]["product"]
    public_file = world.ids["public"]["file"]
    with world.catalogue.engine.begin() as conn:
        owner = load_principal(conn, "owner")
        assert _stored_release(conn)[("product", delayed)] == dt.datetime(2027, 6, 1)
        accounts.cancel_delay(conn, owner, delayed)
        scheduled = _stored_release(conn)[("product", delayed)]
        assert scheduled < dt.datetime(2027, 6, 1)
        accounts.delay_release(conn, owner, delayed, dt.datetime(2026, 11, 1), "referee report")
        assert _stored_release(conn)[("product", delayed)] == dt.datetime(2026, 11, 1)
        file_before = _stored_release(conn)[("file", public_file)]
        accounts.save_programme(
            conn,
            local_operator(),
            accounts.ProgrammeSpec("0104.C-0007", pi="owner", cois=("coi",), period_months=24),
            replace=True,
        )
        file_after = _stored_release(conn)[("file", public_file)]
        assert file_after - file_before > dt.timedelta(days=300)  # 12 more months of proprietary time
        stored = _stored_release(conn)
        rebuild_obscore(conn)
        assert _stored_release(conn) == stored
