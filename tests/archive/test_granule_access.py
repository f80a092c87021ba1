"""The granule rules of hcdc.archive.access (R11-R14, R17, A9, A10), on SQLite and PostgreSQL.

Every visibility check asks both forms (per-object decision and SQL filter) and fails when they
disagree, for granules and for their files; a hypothesis test compares them on generated
collections, granules, delegations and dates.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, delete, insert, select, update

from hcdc.archive import accounts
from hcdc.archive.access import (
    ANONYMOUS,
    MONTH_DAYS,
    AccessContext,
    AccessDenied,
    Decision,
    Principal,
    can_see,
    datetime_of_mjd,
    granule_release,
    load_principal,
    visible_files_clause,
    visible_granules_clause,
    visible_products_clause,
)
from hcdc.archive.access_models import Workspace, WorkspaceItem
from hcdc.archive.interferometry import CollectionSpec, add_collection, delegate_granules
from hcdc.archive.interferometry_models import GranuleRow, OiCollection, OiDelegation
from hcdc.archive.models import File
from hcdc.archive.pipeline_models import Product, ProductSource

from . import test_access
from .access_world import add_file, add_product, mjd
from .test_access import ADMIN, at

conn = test_access.conn  # fixtures shared with the other rules' tests
people = test_access.people

T_MAX = mjd(2024, 3, 1, 6)
_night = itertools.count(60000)


def add_granule(
    conn: Connection,
    file_id: int,
    collection: str | None,
    *,
    t_max: float = T_MAX,
    category: str | None = "SCIENCE",
    rights: str | None = None,
    progid: str | None = None,
    subid: str | None = None,
    release: dt.datetime | None = None,
) -> int:
    return conn.execute(
        insert(GranuleRow)
        .values(
            file_id=file_id,
            target_name="HD 1",
            t_min=t_max - 0.01,
            t_max=t_max,
            instrument_name="MIRC-X",
            nb_vis=0,
            nb_vis2=1,
            nb_t3=0,
            nb_channels=8,
            night_id=next(_night),
            quality_level=0,
            dataproduct_category=category,
            progid=progid,
            proposal_subid=subid,
            data_rights=rights,
            obs_release_date=release,
            obs_collection=collection,
        )
        .returning(GranuleRow.id)
    ).scalar_one()


def decide_granule(conn: Connection, user: Principal, granule_id: int, now: dt.datetime) -> Decision:
    """Per-object decision of a granule and of its file, each checked against its SQL filter."""
    decision = can_see(conn, user, ("granule", granule_id), now)
    in_sql = conn.scalar(
        select(GranuleRow.id).where(GranuleRow.id == granule_id, visible_granules_clause(user, now))
    )
    assert (in_sql is not None) == decision.allowed, f"granule {granule_id}: SQL disagrees with {decision}"
    file_id = conn.scalar(select(GranuleRow.file_id).where(GranuleRow.id == granule_id))
    file_decision = can_see(conn, user, ("file", file_id), now)
    file_sql = conn.scalar(select(File.id).where(File.id == file_id, visible_files_clause(user, now)))
    assert (file_sql is not None) == file_decision.allowed, (
        f"file {file_id}: SQL disagrees with {file_decision}"
    )
    return decision


@pytest.fixture
def chara(conn: Connection, people) -> str:
    """A CHARA collection (18-month embargo, secure) whose data PI is ``pi``."""
    add_collection(conn, ADMIN, CollectionSpec("spica-issp", "chara", owner="pi"))
    return "spica-issp"


def test_collection_embargo_follows_oidb_coltypes(conn: Connection, people, chara: str) -> None:
    add_collection(conn, ADMIN, CollectionSpec("vlti", "eso"))
    add_collection(conn, ADMIN, CollectionSpec("vizier", "vizier"))
    rows = {r.name: r for r in conn.execute(select(OiCollection))}
    assert (rows["spica-issp"].embargo_months, rows["spica-issp"].data_rights) == (18, "secure")
    assert (rows["vlti"].embargo_months, rows["vlti"].data_rights) == (12, "secure")
    assert (rows["vizier"].embargo_months, rows["vizier"].data_rights) == (0, "public")
    with pytest.raises(AccessDenied, match="A1"):
        add_collection(conn, people["pi"], CollectionSpec("mine", "chara"))


def test_rule_R11_calibrator_granules_are_public_at_once(conn: Connection, people, chara: str) -> None:
    cal = add_granule(conn, add_file(conn, None, T_MAX), chara, category="CALIB")
    for who in (ANONYMOUS, people["public"], people["other"]):
        assert decide_granule(conn, who, cal, at(T_MAX, 1)).rule == "R11"
    # proprietary rights: even a calibrator stays hidden
    conn.execute(update(GranuleRow).where(GranuleRow.id == cal).values(data_rights="proprietary"))
    assert not decide_granule(conn, ANONYMOUS, cal, at(T_MAX + 100 * 365))


def test_rule_R12_science_granules_public_after_the_collection_embargo(
    conn: Connection, people, chara
) -> None:
    g = add_granule(conn, add_file(conn, None, T_MAX), chara)
    release = T_MAX + 18 * MONTH_DAYS  # CHARA: 18 months from t_max
    assert not decide_granule(conn, ANONYMOUS, g, at(release, -1))
    assert decide_granule(conn, ANONYMOUS, g, at(release, 1)).rule == "R12"
    # computed when asked: a shorter embargo releases at once, nothing has to run
    conn.execute(update(OiCollection).where(OiCollection.name == chara).values(embargo_months=6))
    assert decide_granule(conn, people["other"], g, at(T_MAX + 6 * MONTH_DAYS, 1)).rule == "R12"
    # a collection-wide release date holds data beyond the embargo, so does the granule's own
    later = datetime_of_mjd(T_MAX + 24 * MONTH_DAYS)
    conn.execute(update(OiCollection).where(OiCollection.name == chara).values(release_date=later))
    assert not decide_granule(conn, ANONYMOUS, g, later - dt.timedelta(seconds=1))
    assert decide_granule(conn, ANONYMOUS, g, later + dt.timedelta(seconds=1))
    conn.execute(
        update(GranuleRow).where(GranuleRow.id == g).values(obs_release_date=later + dt.timedelta(days=9))
    )
    assert not decide_granule(conn, ANONYMOUS, g, later + dt.timedelta(days=8))
    # public rights: public at once; proprietary: never by the clock
    conn.execute(update(GranuleRow).where(GranuleRow.id == g).values(data_rights="public"))
    assert decide_granule(conn, ANONYMOUS, g, at(T_MAX, 1)).rule == "R12"
    conn.execute(update(GranuleRow).where(GranuleRow.id == g).values(data_rights="proprietary"))
    denied = decide_granule(conn, ANONYMOUS, g, at(T_MAX + 100 * 365))
    assert not denied and "never public" in denied.reason


def test_rule_R12_release_date_is_listed(conn: Connection, chara: str) -> None:
    g = add_granule(conn, add_file(conn, None, T_MAX), chara)
    granule = conn.execute(select(GranuleRow).where(GranuleRow.id == g)).first()
    collection = conn.execute(select(OiCollection).where(OiCollection.name == chara)).first()
    rights, release = granule_release(granule, collection)
    assert rights == "secure" and release == datetime_of_mjd(T_MAX + 18 * MONTH_DAYS)
    # 2024-03-01 06:00 + 18 x 30.4375 days = 547.875 days later
    assert release == dt.datetime(2025, 8, 31, 3, 0)


def test_rule_R13_data_pi_team_and_delegates_see_embargoed_granules(conn: Connection, people, chara) -> None:
    f = add_file(conn, None, T_MAX)
    g = add_granule(conn, f, chara, progid="0104.C-0007(A)", subid="SPICA-17")
    other_prog = add_granule(conn, add_file(conn, None, T_MAX), chara, progid="2024A-C01", subid="SPICA-3")
    now = at(T_MAX, 60)
    assert decide_granule(conn, people["pi"], g, now).rule == "R13"  # data PI of the collection
    assert decide_granule(conn, people["coi"], g, now).rule == "R13"  # co-I of the programme (R5)
    assert not decide_granule(conn, people["coi"], other_prog, now)
    assert not decide_granule(conn, people["delegate"], g, now)
    # per sub-programme, then per programme, then for the whole collection
    d1 = delegate_granules(
        conn, people["pi"], "delegate", chara, progid="0104.C-0007", proposal_subid="SPICA-17"
    )
    assert decide_granule(conn, people["delegate"], g, now).rule == "R13"
    assert not decide_granule(conn, people["delegate"], other_prog, now)
    conn.execute(update(OiDelegation).where(OiDelegation.id == d1).values(proposal_subid="SPICA-99"))
    assert not decide_granule(conn, people["delegate"], g, now)
    delegate_granules(conn, people["pi"], "other", chara, progid="2024A-C01")
    assert decide_granule(conn, people["other"], other_prog, now).rule == "R13"
    assert not decide_granule(conn, people["other"], g, now)
    d3 = delegate_granules(conn, ADMIN, "member", chara, expires_at=now + dt.timedelta(days=1))
    assert decide_granule(conn, people["member"], g, now) and decide_granule(
        conn, people["member"], other_prog, now
    )
    assert not decide_granule(conn, people["member"], g, now + dt.timedelta(days=2))  # expired
    conn.execute(update(OiDelegation).where(OiDelegation.id == d3).values(revoked_at=now))
    assert not decide_granule(conn, people["member"], g, now)
    # the public account and anonymous never, even if named data PI
    conn.execute(update(OiCollection).values(owner_user_id=people["public"].id))
    assert not decide_granule(conn, people["public"], g, now)


def test_rule_R14_a_file_of_a_collection_is_visible_when_all_its_granules_are(conn, people, chara) -> None:
    f = add_file(conn, "0104.C-0007(A)", T_MAX)  # R3 alone would publish it after 12 months
    science = add_granule(conn, f, chara)
    calibrator = add_granule(conn, f, chara, category="CALIB")
    after_r3 = at(T_MAX + 12 * MONTH_DAYS, 60)
    assert decide_granule(conn, ANONYMOUS, calibrator, after_r3).rule == "R11"
    assert not decide_granule(conn, ANONYMOUS, science, after_r3)
    file_decision = can_see(conn, ANONYMOUS, ("file", f), after_r3)
    assert not file_decision and file_decision.rule == "R14"
    assert can_see(conn, ANONYMOUS, ("file", f), at(T_MAX + 18 * MONTH_DAYS, 60)).rule == "R14"
    # outside any collection a granule is visible with its file (R3)
    loose_file = add_file(conn, "0104.C-0007(A)", T_MAX)
    loose = add_granule(conn, loose_file, None)
    assert not decide_granule(conn, ANONYMOUS, loose, at(T_MAX + 12 * MONTH_DAYS, -60))
    assert decide_granule(conn, ANONYMOUS, loose, after_r3).rule == "R3"
    # a granule of an unregistered collection is hidden (default deny), its file too
    ghost_file = add_file(conn, None, T_MAX)
    ghost = add_granule(conn, ghost_file, "deleted-collection", category="CALIB")
    assert not decide_granule(conn, ANONYMOUS, ghost, after_r3)
    assert decide_granule(conn, people["admin"], ghost, after_r3).rule == "R1"


def decide_product(conn: Connection, user: Principal, product_id: int, now: dt.datetime) -> Decision:
    """Per-object decision of a product, checked against its SQL filter."""
    decision = can_see(conn, user, ("product", product_id), now)
    in_sql = conn.scalar(
        select(Product.id).where(Product.id == product_id, visible_products_clause(user, now))
    )
    assert (in_sql is not None) == decision.allowed, f"product {product_id}: SQL disagrees with {decision}"
    return decision


def test_rule_R17_a_fit_follows_the_granules_of_its_files(conn: Connection, people, chara: str) -> None:
    """A model fit (a product without a dataset made from OIFITS files) is visible to whoever
    sees every granule of its files (data PI, team, delegates; the public after the embargo), to
    no one else, not even through the private workspace of whoever queued it."""
    f1 = add_file(conn, None, T_MAX)
    f2 = add_file(conn, None, T_MAX)
    g1 = add_granule(conn, f1, chara, progid="0104.C-0007(A)", subid="SPICA-17")
    add_granule(conn, f2, chara, progid="2024A-C01")
    one = add_product(conn, None, "oifits-model-fit")
    both = add_product(conn, None, "oifits-model-fit")
    conn.execute(
        insert(ProductSource),
        [
            {"product_id": one, "file_id": f1},
            {"product_id": both, "file_id": f1},
            {"product_id": both, "file_id": f2},
        ],
    )
    now = at(T_MAX, 60)
    assert decide_product(conn, people["pi"], one, now).rule == "R17"  # data PI of the collection
    assert decide_product(conn, people["coi"], one, now).rule == "R17"  # team of the programme
    coi_both = decide_product(conn, people["coi"], both, now)
    assert not coi_both and coi_both.rule == "R17" and f"file {f2}" in coi_both.reason
    for name in ("delegate", "other", "public"):
        assert not decide_product(conn, people[name], one, now), name
    assert not decide_product(conn, ANONYMOUS, one, now)
    d = delegate_granules(
        conn, people["pi"], "delegate", chara, progid="0104.C-0007", proposal_subid="SPICA-17"
    )
    assert decide_granule(conn, people["delegate"], g1, now)
    assert decide_product(conn, people["delegate"], one, now).rule == "R17"
    assert not decide_product(conn, people["delegate"], both, now)
    # the delegate queued it: its private workspace does not keep it once the delegation ends
    ws = conn.scalar(select(Workspace.id).where(Workspace.owner_user_id == people["delegate"].id))
    assert ws is not None
    conn.execute(insert(WorkspaceItem).values(workspace_id=ws, product_id=one, added_at=now))
    assert decide_product(conn, people["delegate"], one, now).rule == "R17"
    conn.execute(update(OiDelegation).where(OiDelegation.id == d).values(revoked_at=now))
    assert not decide_product(conn, people["delegate"], one, now)
    # staff always; everyone once the embargo (18 months from t_max) is over
    assert decide_product(conn, people["operator"], both, now).rule == "R1"
    later = at(T_MAX + 18 * MONTH_DAYS, 60)
    assert decide_product(conn, ANONYMOUS, both, later).rule == "R17"
    # a product without source files keeps the other rules (a product of no dataset: hidden)
    loose = add_product(conn, None, "oifits-model-fit")
    assert decide_product(conn, people["pi"], loose, now).rule == "R9"


def test_rule_A9_the_data_pi_or_an_admin_delegates(conn: Connection, people, chara: str) -> None:
    with pytest.raises(AccessDenied, match="A9"):
        delegate_granules(conn, people["coi"], "delegate", chara)
    assert delegate_granules(conn, people["pi"], "delegate", chara)
    assert delegate_granules(conn, ADMIN, "delegate", chara, progid="0104.C-0007(B)")
    ctx = AccessContext(conn, people["other"])
    assert ctx.can_delegate_collection(1).rule == "A9" and not ctx.can_delegate_collection(1)
    with pytest.raises(accounts.AccountError, match="public account"):
        delegate_granules(conn, people["pi"], "public", chara)


def test_rule_A10_who_validates_an_oifits_file(conn: Connection, people, chara: str) -> None:
    f = add_file(conn, None, T_MAX)
    add_granule(conn, f, chara, progid="0104.C-0007")
    loose = add_file(conn, None, T_MAX)
    add_granule(conn, loose, None)
    for who, allowed in (
        ("pi", True),
        ("coi", True),
        ("operator", True),
        ("other", False),
        ("public", False),
    ):
        decision = AccessContext(conn, people[who]).can_validate_file(f)
        assert decision.rule == "A10" and bool(decision) is allowed, who
    assert not AccessContext(conn, people["pi"]).can_validate_file(loose)  # no collection, no data PI
    no_granule = add_file(conn, None, T_MAX)
    assert "no OIFITS granule" in AccessContext(conn, people["pi"]).can_validate_file(no_granule).reason


# --------------------------------------------------------------------------------------------
# both forms agree on generated catalogues

_granule = st.fixed_dictionaries(
    {
        "collection": st.sampled_from([None, "c-chara", "c-eso", "c-public", "c-prop", "c-missing"]),
        "category": st.sampled_from([None, "SCIENCE", "CALIB"]),
        "rights": st.sampled_from([None, None, "public", "secure", "proprietary"]),
        "progid": st.sampled_from([None, "0104.C-0007(A)", "2024A-C01"]),
        "subid": st.sampled_from([None, "S1", "S2"]),
        "t_max": st.floats(T_MAX - 400, T_MAX + 400),
        "release": st.one_of(st.none(), st.integers(-400, 900)),
        "file": st.integers(0, 5),
    }
)
_delegation = st.fixed_dictionaries(
    {
        "grantee": st.sampled_from(["delegate", "other", "member"]),
        "collection": st.sampled_from(["c-chara", "c-eso", "c-prop"]),
        "progid": st.sampled_from([None, "0104.C-0007", "2024A-C01"]),
        "subid": st.sampled_from([None, "S1"]),
        "expires": st.one_of(st.none(), st.integers(-300, 900)),
        "revoked": st.booleans(),
    }
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    granules=st.lists(_granule, min_size=1, max_size=10),
    delegations=st.lists(_delegation, max_size=4),
    now_days=st.integers(-100, 1200),
    collection_release=st.one_of(st.none(), st.integers(0, 900)),
)
def test_sql_and_per_object_agree_on_granules(
    conn: Connection, people, granules, delegations, now_days, collection_release
) -> None:
    for table in (OiDelegation, GranuleRow, OiCollection):
        conn.execute(delete(table))
    base = datetime_of_mjd(T_MAX)
    release = base + dt.timedelta(days=collection_release) if collection_release is not None else None
    add_collection(conn, ADMIN, CollectionSpec("c-chara", "chara", owner="pi", release_date=release))
    add_collection(conn, ADMIN, CollectionSpec("c-eso", "eso"))
    add_collection(conn, ADMIN, CollectionSpec("c-public", "vizier"))
    add_collection(conn, ADMIN, CollectionSpec("c-prop", "chara", data_rights="proprietary", owner="coi"))
    files = [add_file(conn, "0104.C-0007(A)" if i % 2 else None, T_MAX) for i in range(6)]
    ids = []
    for g in granules:
        when = base + dt.timedelta(days=g["release"]) if g["release"] is not None else None
        ids.append(
            add_granule(
                conn,
                files[g["file"]],
                g["collection"],
                t_max=g["t_max"],
                category=g["category"],
                rights=g["rights"],
                progid=g["progid"],
                subid=g["subid"],
                release=when,
            )
        )
    for d in delegations:
        delegation = delegate_granules(conn, ADMIN, d["grantee"], d["collection"], progid=d["progid"])
        values = {"proposal_subid": d["subid"] if d["progid"] else None}
        if d["expires"] is not None:
            values["expires_at"] = base + dt.timedelta(days=d["expires"])
        if d["revoked"]:
            values["revoked_at"] = base
        conn.execute(update(OiDelegation).where(OiDelegation.id == delegation).values(**values))
    now = base + dt.timedelta(days=now_days)
    for who in [ANONYMOUS, *(load_principal(conn, n) for n in ("pi", "coi", "member", "delegate", "other"))]:
        for granule_id in ids:
            decide_granule(conn, who, granule_id, now)
