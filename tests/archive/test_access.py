"""The access rules of hcdc.archive.access, one test (or more) per rule, on SQLite and PostgreSQL.

Every visibility check goes through :func:`decide`, which asks both forms of the rules (the
per-object decision and the SQL filter) and fails if they disagree; the hypothesis test at the
end compares them on generated catalogues.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, String, delete, insert, literal, select, update

from hcdc.archive import accounts
from hcdc.archive.access import (
    ANONYMOUS,
    MONTH_DAYS,
    RULES,
    RULES_VERSION,
    AccessContext,
    AccessDenied,
    Decision,
    Policy,
    Principal,
    can_see,
    datetime_of_mjd,
    level3_inputs_clause,
    load_principal,
    local_operator,
    mjd_of,
    products_visibility_filter,
    programme_key,
    programme_key_sql,
    visible_batches_clause,
    visible_datasets_clause,
    visible_files_clause,
    visible_jobs_clause,
    visible_products_clause,
)
from hcdc.archive.access_models import (
    AuditEntry,
    Delegation,
    Group,
    GroupMember,
    Programme,
    ProgrammeMember,
    ReleaseDelay,
    User,
    Workspace,
    WorkspaceItem,
)
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Batch, Job, Product

from .access_world import add_dataset, add_file, add_product, mjd

REPO = Path(__file__).resolve().parents[2]
ADMIN = local_operator()
OBS = mjd(2024, 3, 1, 6)  # an observation time (MJD)
YEAR = 12 * MONTH_DAYS  # days in a 12-month proprietary period

_MODELS = {"file": File, "dataset": Dataset, "product": Product}
_CLAUSES = {
    "file": visible_files_clause,
    "dataset": visible_datasets_clause,
    "product": visible_products_clause,
}


def decide(
    conn: Connection, user: Principal, kind: str, obj_id: int, now: dt.datetime, policy: Policy = Policy()
) -> Decision:
    """The per-object decision, checked against the SQL filter for the same object."""
    decision = can_see(conn, user, (kind, obj_id), now, policy)
    model = _MODELS[kind]
    in_sql = conn.scalar(select(model.id).where(model.id == obj_id, _CLAUSES[kind](user, now, policy)))
    assert (in_sql is not None) == decision.allowed, (
        f"SQL and per-object disagree on {kind} {obj_id}: {decision}"
    )
    if kind == "product":  # the same clause with the user and the clock as bound parameters
        bound = products_visibility_filter(user, now, policy)
        in_bound = conn.scalar(select(model.id).where(model.id == obj_id, bound.clause), bound.params)
        assert (in_bound is not None) == decision.allowed, (
            f"bound-parameter SQL and per-object disagree on {kind} {obj_id}: {decision}"
        )
    return decision


def at(mjd_value: float, seconds: float = 0.0) -> dt.datetime:
    return datetime_of_mjd(mjd_value) + dt.timedelta(seconds=seconds)


@pytest.fixture
def conn(catalogue):
    with catalogue.engine.begin() as c:
        yield c


@pytest.fixture
def people(conn: Connection) -> dict[str, Principal]:
    """admin, operator, pi, coi, member (survey group), delegate, other, and the public account."""
    for name, role in [
        ("admin", "admin"),
        ("operator", "operator"),
        ("pi", "user"),
        ("coi", "user"),
        ("member", "user"),
        ("delegate", "user"),
        ("other", "user"),
    ]:
        accounts.add_user(conn, ADMIN, name, role=role)
    accounts.add_group(conn, ADMIN, "survey")
    accounts.set_group_members(conn, ADMIN, "survey", add=["member"])
    accounts.save_programme(conn, ADMIN, accounts.ProgrammeSpec("0104.C-0007", pi="pi", cois=("coi",)))
    accounts.save_programme(conn, ADMIN, accounts.ProgrammeSpec("1100.C-0481", pi="pi", group="survey"))
    names = ["admin", "operator", "pi", "coi", "member", "delegate", "other", "public"]
    return {name: load_principal(conn, name) for name in names}


# --------------------------------------------------------------------------------------------
# the rules table


def test_rules_are_versioned_and_documented() -> None:
    doc = (REPO / "docs" / "access.md").read_text()
    assert f"RULES_VERSION = {RULES_VERSION}" in doc
    for rule in RULES:
        assert re.search(rf"^\| {rule.id} \|", doc, re.MULTILINE), (
            f"rule {rule.id} missing from docs/access.md"
        )


def test_every_rule_has_a_test() -> None:
    from . import test_granule_access  # the granule rules (R11-R14, A9, A10) are tested there

    names = [n for n in [*globals(), *vars(test_granule_access)] if n.startswith("test_")]
    for rule in RULES:
        assert any(f"_{rule.id}_" in n for n in names), f"no test for rule {rule.id}"


# --------------------------------------------------------------------------------------------
# seeing


def test_rule_R0_inactive_accounts_are_anonymous(conn, people) -> None:
    f = add_file(conn, "0104.C-0007(A)", OBS)
    now = at(OBS, 3600)
    assert decide(conn, people["pi"], "file", f, now).rule == "R5"
    accounts.set_active(conn, ADMIN, "pi", False)
    assert not decide(conn, load_principal(conn, "pi"), "file", f, now)
    accounts.set_active(conn, ADMIN, "admin", False)
    assert not decide(conn, load_principal(conn, "admin"), "file", f, now)
    assert not decide(conn, ANONYMOUS, "file", f, now)


def test_rule_R1_staff_see_everything(conn, people) -> None:
    f = add_file(conn, "0104.C-0007(A)", None)
    d = add_dataset(conn, "0104.C-0007", None)
    p = add_product(conn, None)
    now = at(OBS)
    for who in ("admin", "operator"):
        for kind, obj in (("file", f), ("dataset", d), ("product", p)):
            assert decide(conn, people[who], kind, obj, now).rule == "R1"
    assert decide(conn, ADMIN, "file", f, now).rule == "R1"  # the shell's operator
    for who in ("pi", "other", "public"):
        assert not decide(conn, people[who], "product", p, now)


def test_rule_R1_only_staff_monitor(conn, people) -> None:
    for who in ("admin", "operator"):
        decision = AccessContext(conn, people[who]).can_monitor()
        assert decision and decision.rule == "R1"
    # a PI of every programme is still not the data-centre team
    for who in (ANONYMOUS, people["pi"], people["member"], people["public"]):
        decision = AccessContext(conn, who).can_monitor()
        assert not decision and decision.rule == "R1" and "operators" in decision.reason


def test_rule_R2_calibrations_are_public_at_once(conn, people) -> None:
    cal = add_file(conn, "60.A-9255(A)", OBS, is_calibration=True)
    master = add_product(conn, None, product_type="master-calibration")
    for who in (ANONYMOUS, people["public"], people["other"]):
        assert decide(conn, who, "file", cal, at(OBS, 1)).rule == "R2"
        assert decide(conn, who, "product", master, at(OBS, 1)).rule == "R2"


def test_rule_R3_raw_data_public_after_the_proprietary_period(conn, people) -> None:
    f = add_file(conn, "0104.C-0007(B)", OBS)  # run B of a registered programme (12 months)
    unregistered = add_file(conn, "099.Z-0001(A)", OBS)  # default period, 12 months
    d = add_dataset(conn, "0104.C-0007(B)", mjd_end=OBS, mjd_start=OBS - 0.1)
    release = OBS + YEAR
    for obj, kind in ((f, "file"), (unregistered, "file"), (d, "dataset")):
        assert not decide(conn, ANONYMOUS, kind, obj, at(release, -1))
        assert decide(conn, ANONYMOUS, kind, obj, at(release, 1)).rule == "R3"
    # a programme with a 6-month period releases earlier; the clock alone decides
    conn.execute(update(Programme).where(Programme.prog_id == "0104.C-0007").values(period_months=6))
    assert decide(conn, people["other"], "file", f, at(OBS + 6 * MONTH_DAYS, 1)).rule == "R3"
    assert not decide(conn, people["other"], "file", unregistered, at(OBS + 6 * MONTH_DAYS, 1))
    # a period of 0 months: public at once (e.g. technical or public-survey programmes)
    conn.execute(update(Programme).where(Programme.prog_id == "0104.C-0007").values(period_months=0))
    assert decide(conn, ANONYMOUS, "file", f, at(OBS, 1)).rule == "R3"


def test_rule_R3_dataset_public_when_its_last_file_is(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=OBS + 0.5, mjd_start=OBS)
    assert not decide(conn, ANONYMOUS, "dataset", d, at(OBS + YEAR, 60))
    assert decide(conn, ANONYMOUS, "dataset", d, at(OBS + 0.5 + YEAR, 60))


def test_rule_R4_products_public_a_year_after_their_raw_data(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    p = add_product(conn, d)
    raw_public, product_public = OBS + YEAR, OBS + 2 * YEAR
    assert decide(conn, ANONYMOUS, "dataset", d, at(raw_public, 1))
    assert not decide(conn, ANONYMOUS, "product", p, at(raw_public, 1))
    assert not decide(conn, ANONYMOUS, "product", p, at(product_public, -1))
    assert decide(conn, ANONYMOUS, "product", p, at(product_public, 1)).rule == "R4"
    ctx = AccessContext(conn, ANONYMOUS)
    assert abs((ctx.product_public_date(p) - at(product_public)).total_seconds()) < 1e-3
    # configurable embargo
    short = Policy(product_embargo_months=3)
    assert decide(conn, ANONYMOUS, "product", p, at(raw_public + 3 * MONTH_DAYS, 1), short).rule == "R4"


def test_rule_R4_release_delayed_by_the_pi(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    p = add_product(conn, d)
    scheduled = at(OBS + 2 * YEAR)
    until = scheduled + dt.timedelta(days=200)
    window = accounts.delay_release(conn, people["pi"], p, until, "paper in preparation")
    assert window["latest_allowed"] > until
    after_schedule = scheduled + dt.timedelta(days=10)
    denied = decide(conn, ANONYMOUS, "product", p, after_schedule)
    assert not denied and "delayed by the PI" in denied.reason
    assert decide(conn, people["coi"], "product", p, after_schedule).rule == "R5"  # the team still sees it
    assert decide(conn, ANONYMOUS, "product", p, until + dt.timedelta(seconds=1)).rule == "R4"
    assert AccessContext(conn, ANONYMOUS).product_public_date(p) == until
    recorded = conn.execute(select(ReleaseDelay).where(ReleaseDelay.product_id == p)).one()
    assert (recorded.reason, recorded.set_by) == ("paper in preparation", "pi")


def test_rule_R5_pi_and_cois_see_their_programme(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    f = add_file(conn, "0104.C-0007(A)", OBS, dataset_id=d)
    p = add_product(conn, d)
    now = at(OBS, 60)
    for who in ("pi", "coi"):
        for kind, obj in (("file", f), ("dataset", d), ("product", p)):
            decision = decide(conn, people[who], kind, obj, now)
            assert decision.rule == "R5", decision
    for who in ("other", "member", "delegate", "public"):
        for kind, obj in (("file", f), ("dataset", d), ("product", p)):
            assert not decide(conn, people[who], kind, obj, now)
    # the public account never gets member rights, even if made PI by mistake
    conn.execute(update(Programme).values(pi_user_id=people["public"].id))
    assert not decide(conn, people["public"], "file", f, now)


def test_rule_R6_survey_group_sees_its_survey(conn, people) -> None:
    d = add_dataset(conn, "1100.C-0481", mjd_end=OBS)
    f = add_file(conn, "1100.C-0481(D)", OBS, dataset_id=d)
    p = add_product(conn, d)
    now = at(OBS, 60)
    for kind, obj in (("file", f), ("dataset", d), ("product", p)):
        assert decide(conn, people["member"], kind, obj, now).rule == "R6"
        assert not decide(conn, people["coi"], kind, obj, now)  # co-I of another programme
    accounts.set_group_members(conn, ADMIN, "survey", remove=["member"])
    assert not decide(conn, people["member"], "file", f, now)


def test_rule_R7_delegations_of_a_programme_or_a_dataset(conn, people) -> None:
    d1 = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    d2 = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    f1 = add_file(conn, "0104.C-0007(A)", OBS, dataset_id=d1)
    f2 = add_file(conn, "0104.C-0007(A)", OBS, dataset_id=d2)
    p1, p2 = add_product(conn, d1), add_product(conn, d2)
    now = at(OBS, 60)
    delegate = people["delegate"]
    # one dataset: its files and products, not the other dataset
    one = accounts.delegate(conn, people["pi"], "delegate", dataset_id=d1, reason="student")
    assert [
        decide(conn, delegate, k, o, now).rule for k, o in (("dataset", d1), ("file", f1), ("product", p1))
    ] == ["R7"] * 3
    assert not any(
        decide(conn, delegate, k, o, now) for k, o in (("dataset", d2), ("file", f2), ("product", p2))
    )
    accounts.revoke_delegation(conn, people["pi"], one)
    assert not decide(conn, delegate, "file", f1, now)
    # a whole programme, until an expiry date
    accounts.delegate(conn, ADMIN, "delegate", prog_id="0104.C-0007", expires_at=now + dt.timedelta(days=30))
    assert all(decide(conn, delegate, k, o, now).rule == "R7" for k, o in (("file", f2), ("product", p2)))
    assert not decide(conn, delegate, "file", f2, now + dt.timedelta(days=31))


def test_rule_R8_A8_workspaces(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=None)  # undated: never public by the clock
    mine, published = add_product(conn, d), add_product(conn, d)
    orphan = add_product(conn, None)  # a product of explicit inputs, no dataset
    now = at(OBS, 60)
    accounts.place_in_workspace(conn, people["pi"], "pi", mine)
    with pytest.raises(AccessDenied, match="A8"):
        accounts.place_in_workspace(conn, people["pi"], "public", published)
    accounts.place_in_workspace(conn, ADMIN, "public", published)
    accounts.place_in_workspace(conn, ADMIN, "other", orphan)
    assert decide(conn, ANONYMOUS, "product", published, now).rule == "R8"
    assert decide(conn, people["other"], "product", orphan, now).rule == "R8"
    assert not decide(conn, people["coi"], "product", orphan, now)
    with pytest.raises(AccessDenied, match="A8"):  # a user cannot place what they may not see
        accounts.place_in_workspace(conn, people["other"], "other", mine)


def test_rule_R10_jobs_are_seen_by_who_queued_them(conn, people) -> None:
    from hcdc.archive.pipeline_models import Job

    def new_job() -> int:
        return conn.execute(
            insert(Job)
            .values(inputs={"cube": "/c.fits"}, workflow="l2-user-cube", parameters=[])
            .returning(Job.id)
        ).scalar_one()

    mine, shell = new_job(), new_job()
    accounts.record_job_owner(conn, mine, people["pi"])
    accounts.record_job_owner(conn, shell, local_operator())  # no account: nobody owns it
    expected = {"pi": {mine}, "coi": set(), "other": set(), "public": set(), "admin": {mine, shell}}
    for name, jobs in expected.items():
        user = people[name]
        ctx = AccessContext(conn, user)
        assert {j for j in (mine, shell) if ctx.can_see_job(j)} == jobs, name
        in_sql = set(conn.scalars(select(Job.id).where(visible_jobs_clause(user))))
        assert in_sql == jobs, name
    assert AccessContext(conn, people["coi"]).can_see_job(mine).rule == "R10"
    assert not AccessContext(conn, ANONYMOUS).can_see_job(mine)
    # a batch: its submitter and staff; tracebacks in job logs: staff only
    batch = conn.execute(
        insert(Batch)
        .values(label="b", owner_user_id=people["pi"].id, created_by="pi", parameters=[], selection={})
        .returning(Batch.id)
    ).scalar_one()
    for name in expected:
        ctx = AccessContext(conn, people[name])
        sees = name in ("pi", "admin")
        assert bool(ctx.can_see_batch(batch)) == sees, name
        assert set(conn.scalars(select(Batch.id).where(visible_batches_clause(people[name])))) == (
            {batch} if sees else set()
        ), name
        assert bool(ctx.can_see_tracebacks()) == (name == "admin"), name
    assert not AccessContext(conn, ANONYMOUS).can_see_batch(batch)
    with pytest.raises(LookupError):
        AccessContext(conn, people["admin"]).can_see_batch(batch + 1000)


def test_rule_R9_default_deny(conn, people) -> None:
    undated = add_file(conn, "0104.C-0007(A)", None)
    no_programme = add_file(conn, None, None)
    orphan = add_product(conn, None)
    far_future = at(OBS + 100 * YEAR)
    for kind, obj in (("file", undated), ("file", no_programme), ("product", orphan)):
        decision = decide(conn, people["other"], kind, obj, far_future)
        assert (decision.allowed, decision.rule) == (False, "R9")
    assert decide(conn, people["pi"], "file", undated, far_future).rule == "R5"
    dated = add_file(conn, None, OBS)  # no programme but dated: default 12 months
    assert not decide(conn, ANONYMOUS, "file", dated, at(OBS + YEAR, -1))
    assert decide(conn, ANONYMOUS, "file", dated, at(OBS + YEAR, 1))


def test_can_see_accepts_orm_objects_and_rejects_unknown(conn, people) -> None:
    from sqlalchemy.orm import Session

    f = add_file(conn, None, OBS, is_calibration=True)
    with Session(bind=conn) as session:
        assert can_see(conn, ANONYMOUS, session.get(File, f)).rule == "R2"
    with pytest.raises(LookupError, match="no file with id 999999"):
        can_see(conn, ANONYMOUS, ("file", 999999))
    with pytest.raises(ValueError, match="unknown kind"):
        can_see(conn, ANONYMOUS, ("job", 1))


def test_programme_key_same_in_sql_and_python(conn) -> None:
    values = [None, "", "0104.C-0007", "0104.C-0007(B)", "A(B)(C)", "(X)", "60.A-9255(A)", "x_%y(1)"]
    for value in values:
        in_sql = conn.scalar(select(programme_key_sql(literal(value, String()))))
        assert in_sql == programme_key(value), value


def test_time_conversions() -> None:
    assert mjd_of(dt.datetime(1858, 11, 17)) == 0.0
    assert mjd_of(dt.datetime(2000, 1, 1, 12)) == 51544.5
    assert mjd_of(dt.datetime(2000, 1, 1, 13, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == 51544.5
    assert datetime_of_mjd(51544.5) == dt.datetime(2000, 1, 1, 12)


# --------------------------------------------------------------------------------------------
# doing


def test_rule_A1_only_admins_manage(conn, people) -> None:
    for who in ("operator", "pi", "public"):
        with pytest.raises(AccessDenied, match="A1"):
            accounts.add_user(conn, people[who], "intruder")
        with pytest.raises(AccessDenied, match="A1"):
            accounts.save_programme(conn, people[who], accounts.ProgrammeSpec("0110.C-0001", pi="pi"))
    accounts.add_user(conn, people["admin"], "newcomer", password="correct horse")
    actions = [r.action for r in conn.execute(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions.count("user.add") == 8 and actions[-1] == "user.add"
    workspace = conn.execute(select(Workspace).where(Workspace.name == "newcomer")).one()
    assert (workspace.is_public, workspace.path) == (False, "workspaces/newcomer")


def test_rule_A2_pi_delegates(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    with pytest.raises(AccessDenied, match="A2"):
        accounts.delegate(conn, people["coi"], "delegate", prog_id="0104.C-0007")
    with pytest.raises(AccessDenied, match="A2"):
        accounts.delegate(conn, people["other"], "delegate", dataset_id=d)
    with pytest.raises(accounts.AccountError, match="public account"):
        accounts.delegate(conn, people["pi"], "public", dataset_id=d)
    with pytest.raises(accounts.AccountError, match="exactly one"):
        accounts.delegate(conn, people["pi"], "delegate")
    granted = accounts.delegate(conn, people["pi"], "delegate", prog_id="0104.C-0007(A)")  # run letter ok
    row = conn.execute(select(Delegation).where(Delegation.id == granted)).one()
    assert (row.granted_by, row.dataset_id) == ("pi", None)
    assert conn.scalar(select(AuditEntry.actor).where(AuditEntry.action == "delegation.grant")) == "pi"


def test_rule_A3_release_delay_limits(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    p = add_product(conn, d)
    scheduled = at(OBS + 2 * YEAR)
    with pytest.raises(AccessDenied, match="A3"):
        accounts.delay_release(conn, people["coi"], p, scheduled + dt.timedelta(days=10), "no")
    with pytest.raises(accounts.AccountError, match="needs a reason"):
        accounts.delay_release(conn, people["pi"], p, scheduled + dt.timedelta(days=10), " ")
    too_late = scheduled + dt.timedelta(days=24 * MONTH_DAYS + 1)
    with pytest.raises(AccessDenied, match="at most"):
        accounts.delay_release(conn, people["pi"], p, too_late, "long paper")
    accounts.delay_release(conn, people["pi"], p, too_late, "long paper", policy=Policy(max_delay_months=36))
    with pytest.raises(AccessDenied, match="never public"):
        accounts.delay_release(conn, ADMIN, add_product(conn, None), scheduled, "x")
    accounts.cancel_delay(conn, people["pi"], p)
    assert conn.scalar(select(ReleaseDelay.id)) is None
    actions = list(
        conn.scalars(
            select(AuditEntry.action).where(AuditEntry.action.startswith("release.")).order_by(AuditEntry.id)
        )
    )
    assert actions == ["release.delay", "release.cancel"]


def test_rule_A4_A5_validation_and_level3(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    good, bad, unreviewed = add_product(conn, d), add_product(conn, d), add_product(conn, d)
    with pytest.raises(AccessDenied, match="A4"):
        accounts.review_product(conn, people["pi"], good, "validated")
    with pytest.raises(accounts.AccountError, match="needs a reason"):
        accounts.review_product(conn, people["operator"], bad, "flagged")
    accounts.review_product(conn, people["operator"], good, "validated")
    accounts.review_product(conn, people["operator"], bad, "flagged", "centring failed")
    level3 = set(conn.scalars(select(Product.id).where(level3_inputs_clause())))
    assert level3 == {good}
    status = accounts.product_status(conn, [good, bad, unreviewed])
    assert status[bad] == {"review": "flagged", "reason": "centring failed", "delayed_until": None}
    assert status[unreviewed]["review"] is None
    # flagged products stay visible to those allowed
    assert decide(conn, people["pi"], "product", bad, at(OBS, 1)).rule == "R5"
    # re-validating a flagged product replaces the review
    accounts.review_product(conn, people["admin"], bad, "validated")
    assert set(conn.scalars(select(Product.id).where(level3_inputs_clause()))) == {good, bad}


def _queue_job(conn: Connection, dataset_id: int, owner: Principal, state: str = "queued") -> int:
    job = conn.execute(
        insert(Job).values(dataset_id=dataset_id, state=state, parameters=[]).returning(Job.id)
    )
    job_id = job.scalar_one()
    accounts.record_job_owner(conn, job_id, owner)
    return job_id


def test_rule_A11_batches_are_controlled_by_their_submitter_and_staff(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    now = at(OBS, 60)
    batch = conn.execute(
        insert(Batch)
        .values(label="b", owner_user_id=people["pi"].id, created_by="pi", parameters=[], selection={})
        .returning(Batch.id)
    ).scalar_one()
    allowed = {name: bool(AccessContext(conn, people[name], now).can_control_batch(batch)) for name in people}
    assert {name for name, ok in allowed.items() if ok} == {"pi", "admin", "operator"}
    assert AccessContext(conn, people["coi"], now).can_control_batch(batch).rule == "A11"
    # a batch takes as many places of the quota as it has jobs (default quota 2)
    pi = AccessContext(conn, people["pi"], now)
    assert pi.can_submit_job(d, count=2)
    refused = pi.can_submit_job(d, count=3)
    assert not refused and "3 more asked, quota 2" in refused.reason
    _queue_job(conn, d, people["pi"])
    assert not AccessContext(conn, people["pi"], now).can_submit_job(d, count=2)
    assert AccessContext(conn, people["operator"], now).can_submit_job(d, count=500)  # staff: no quota


def test_rule_A6_quotas(conn, people) -> None:
    d = add_dataset(conn, "0104.C-0007", mjd_end=OBS)
    hidden = add_dataset(conn, "099.A-0001", mjd_end=OBS)  # another programme, proprietary
    now = at(OBS, 60)
    pi = people["pi"]
    ctx = AccessContext(conn, pi, now)
    assert ctx.can_submit_job(d)
    assert not ctx.can_submit_job(hidden)
    assert not AccessContext(conn, ANONYMOUS, now).can_submit_job()
    assert AccessContext(conn, people["operator"], now).can_submit_job(hidden)
    first = _queue_job(conn, d, pi)
    _queue_job(conn, d, pi, state="running")
    refused = AccessContext(conn, pi, now).can_submit_job(d)
    assert not refused and "quota 2" in refused.reason  # the default quota
    conn.execute(update(Job).where(Job.id == first).values(state="done"))
    assert AccessContext(conn, pi, now).can_submit_job(d)
    accounts.set_quota(conn, ADMIN, "pi", 5, access_from=now + dt.timedelta(days=1))
    assert "opens" in AccessContext(conn, pi, now).can_submit_job(d).reason
    accounts.set_quota(conn, ADMIN, "pi", 5, access_until=now - dt.timedelta(days=1))
    assert "closed" in AccessContext(conn, pi, now).can_submit_job(d).reason
    accounts.set_quota(conn, ADMIN, "pi", 5)
    assert AccessContext(conn, pi, now).can_submit_job(d)
    # the configured default window counts from the account's creation
    created = conn.scalar(select(User.created_at).where(User.name == "other"))
    windowed = Policy(quota_window_days=30)
    other_d = add_dataset(conn, None, mjd_end=OBS - 2 * YEAR)  # public
    later = created + dt.timedelta(days=31)
    assert AccessContext(conn, people["other"], created, windowed).can_submit_job(other_d)
    assert not AccessContext(conn, people["other"], later, windowed).can_submit_job(other_d)
    with pytest.raises(AccessDenied, match="A1"):
        accounts.set_quota(conn, pi, "pi", 50)


def test_rule_A7_tokens(conn, people) -> None:
    now = dt.datetime(2026, 6, 1)
    token = accounts.create_token(conn, people["pi"], "pi", label="laptop", now=now)
    assert token.secret.startswith(f"hcdc_{token.prefix}_") and len(token.secret) > 40
    stored = conn.execute(select(accounts.ApiToken)).one()
    assert token.secret not in (stored.token_hash, stored.prefix) and len(stored.token_hash) == 64
    assert accounts.authenticate_token(conn, token.secret, now + dt.timedelta(days=1)) == people["pi"]
    assert accounts.authenticate_token(conn, token.secret, now + dt.timedelta(days=91)) is None  # expired
    assert accounts.authenticate_token(conn, token.secret + "x", now) is None
    with pytest.raises(AccessDenied, match="A7"):
        accounts.create_token(conn, people["other"], "pi")
    with pytest.raises(AccessDenied, match="A7"):
        accounts.revoke_token(conn, people["other"], token.prefix)
    accounts.revoke_token(conn, people["pi"], token.prefix)
    assert accounts.authenticate_token(conn, token.secret, now) is None
    assert [t["state"] for t in accounts.list_tokens(conn, "pi")] == ["revoked"]
    second = accounts.create_token(conn, ADMIN, "pi", days=1, now=now)
    accounts.set_active(conn, ADMIN, "pi", False)
    assert accounts.authenticate_token(conn, second.secret, now) is None  # disabled account
    with pytest.raises(accounts.AccountError, match="public"):
        accounts.create_token(conn, ADMIN, "public")


def test_token_last_use_is_written_once_a_minute(conn, people) -> None:
    """A busy client does not write the token's row on every call (portal under load)."""
    now = dt.datetime(2026, 6, 1, 12)
    token = accounts.create_token(conn, people["pi"], "pi", now=now)

    def last_used() -> dt.datetime | None:
        return conn.scalar(select(accounts.ApiToken.last_used_at))

    assert last_used() is None
    assert accounts.authenticate_token(conn, token.secret, now) == people["pi"]
    assert last_used() == now
    assert accounts.authenticate_token(conn, token.secret, now + dt.timedelta(seconds=59))
    assert last_used() == now
    later = now + accounts.TOKEN_LAST_USED_RESOLUTION
    assert accounts.authenticate_token(conn, token.secret, later)
    assert last_used() == later
    earlier = now - dt.timedelta(hours=1)  # a clock that went back is written too
    assert accounts.authenticate_token(conn, token.secret, earlier)
    assert last_used() == earlier
    # the web layer commits only when the use was written (no COMMIT/BEGIN round trips otherwise)
    assert accounts.authenticate_token_use(conn, token.secret, earlier + dt.timedelta(seconds=30)) == (
        people["pi"],
        False,
    )
    assert accounts.authenticate_token_use(conn, token.secret, later + dt.timedelta(hours=1)) == (
        people["pi"],
        True,
    )
    assert accounts.authenticate_token_use(conn, "hcdc_not-a-token", now) == (None, False)


def test_memo_context_answers_as_a_fresh_one(conn, people) -> None:
    """``memo=True`` gives the same decisions and dates as a fresh context, asked once each, and
    keeps them for its lifetime (the facts changed afterwards are for the next context)."""
    d = add_dataset(conn, _PROGS[0] + "(A)", mjd_end=OBS)
    p = add_product(conn, d)
    released = at(OBS + 2 * YEAR + 1)
    for user in (ANONYMOUS, people["pi"], people["other"]):
        memo = AccessContext(conn, user, released, memo=True)
        for _ in range(2):
            assert memo.can_see_product(p) == AccessContext(conn, user, released).can_see_product(p)
            assert memo.can_see_dataset(d) == AccessContext(conn, user, released).can_see_dataset(d)
            assert memo.product_public_date(p) == AccessContext(conn, user, released).product_public_date(p)
            until = released + dt.timedelta(days=30)  # A3: the PI's programme read once, from the context
            assert memo.can_delay_release(p, until) == AccessContext(conn, user, released).can_delay_release(
                p, until
            )
        assert bool(memo.can_delay_release(p, released + dt.timedelta(days=30))) == (user == people["pi"])
    memo = AccessContext(conn, ANONYMOUS, released, memo=True)
    assert memo.can_see_product(p)
    conn.execute(insert(ReleaseDelay).values(product_id=p, delayed_until=released + dt.timedelta(days=30),
                                             reason="r", set_by="pi"))  # fmt: skip
    assert memo.can_see_product(p)  # remembered
    assert not AccessContext(conn, ANONYMOUS, released).can_see_product(p)  # the new fact
    with pytest.raises(LookupError):
        memo.can_see_product(10**9)


# --------------------------------------------------------------------------------------------
# accounts


def test_passwords_are_argon2id(conn, people) -> None:
    accounts.add_user(conn, ADMIN, "alice", password="s3cret-passphrase")
    stored = conn.scalar(select(User.password_hash).where(User.name == "alice"))
    assert stored.startswith("$argon2id$") and "s3cret" not in stored
    assert accounts.authenticate_password(conn, "alice", "s3cret-passphrase").name == "alice"
    assert accounts.authenticate_password(conn, "alice", "wrong-passphrase") is None
    assert accounts.authenticate_password(conn, "nobody", "s3cret-passphrase") is None
    assert conn.scalar(select(User.last_login_at).where(User.name == "alice")) is not None
    with pytest.raises(accounts.AccountError, match="too short"):
        accounts.set_password(conn, ADMIN, "alice", "short")
    with pytest.raises(AccessDenied):
        accounts.set_password(conn, people["other"], "alice", "another-passphrase")
    accounts.set_active(conn, ADMIN, "alice", False)
    assert accounts.authenticate_password(conn, "alice", "s3cret-passphrase") is None


def test_user_names_and_duplicates(conn, people) -> None:
    with pytest.raises(accounts.AccountError, match="invalid user name"):
        accounts.add_user(conn, ADMIN, "bad name")
    with pytest.raises(accounts.AccountError, match="exists already"):
        accounts.add_user(conn, ADMIN, "pi")
    with pytest.raises(accounts.AccountError, match="invalid role"):
        accounts.add_user(conn, ADMIN, "x", role="god")
    listed = {u["name"]: u for u in accounts.list_users(conn)}
    assert listed["pi"]["pi_of"] == ["0104.C-0007", "1100.C-0481"]
    assert listed["coi"]["coi_of"] == ["0104.C-0007"] and listed["member"]["groups"] == ["survey"]
    assert listed["public"]["role"] == "public"  # made by the migration


def test_programme_csv_import(conn, people, tmp_path: Path) -> None:
    good = tmp_path / "programmes.csv"
    good.write_text(
        "prog_id,pi,cois,period_months,title,group\n"
        "0104.C-0007(A),coi,pi;member,6,A new PI,\n"
        "0110.C-0001,other,,,Fresh,survey\n"
    )
    assert accounts.import_programmes(conn, ADMIN, good) == ["0104.C-0007", "0110.C-0001"]
    rows = {p["prog_id"]: p for p in accounts.list_programmes(conn)}
    assert (rows["0104.C-0007"]["pi"], rows["0104.C-0007"]["cois"], rows["0104.C-0007"]["period_months"]) == (
        "coi",
        ["member", "pi"],
        6,
    )
    assert (rows["0110.C-0001"]["period_months"], rows["0110.C-0001"]["group"]) == (12, "survey")
    bad = tmp_path / "bad.csv"
    bad.write_text("prog_id,pi\n0111.C-0001,pi\n0112.C-0001,ghost\n")
    with pytest.raises(
        accounts.AccountError, match=r"bad\.csv, programme 2 \(0112.C-0001\): no user called 'ghost'"
    ):
        accounts.import_programmes(conn, ADMIN, bad)
    bad.write_text("prog_id,pi,colour\n")
    with pytest.raises(accounts.AccountError, match="unknown column"):
        accounts.read_programme_csv(bad)
    bad.write_text("prog_id,pi,period_months\n0111.C-0001,pi,twelve\n")
    with pytest.raises(accounts.AccountError, match="line 2: period_months must be an integer"):
        accounts.read_programme_csv(bad)


def test_migration_seeds_public_account_and_workspace(conn) -> None:
    public = conn.execute(select(User).where(User.name == "public")).one()
    assert (public.role, public.password_hash) == ("public", None)
    ws = conn.execute(select(Workspace).where(Workspace.is_public)).one()
    assert (ws.name, ws.owner_user_id) == ("public", None)


# --------------------------------------------------------------------------------------------
# the SQL filters agree with the per-object decisions on generated catalogues

_PROGS = ["0104.C-0007", "1100.C-0481", "099.A-0001"]  # registered: 0 and 1
_FILE_PROGS = [None, "0104.C-0007(A)", "0104.C-0007(B)", "1100.C-0481(D)", "099.A-0001(A)", "0104.C-0007"]
_USERS = ["admin", "operator", "pi", "coi", "member", "delegate", "other", "public"]

world = st.fixed_dictionaries(
    {
        "periods": st.lists(st.sampled_from([0, 6, 12, 24]), min_size=2, max_size=2),
        "datasets": st.lists(
            st.tuples(st.sampled_from(_FILE_PROGS), st.one_of(st.none(), st.floats(OBS - 800, OBS + 400))),
            min_size=1,
            max_size=5,
        ),
        "files": st.lists(
            st.tuples(
                st.sampled_from(_FILE_PROGS),
                st.one_of(st.none(), st.floats(OBS - 800, OBS + 400)),
                st.booleans(),
                st.integers(-1, 4),
            ),
            max_size=10,
        ),
        "products": st.lists(
            st.tuples(
                st.integers(-1, 4), st.sampled_from(["level2-image", "level1-cube", "master-calibration"])
            ),
            max_size=8,
        ),
        "delays": st.lists(st.tuples(st.integers(0, 7), st.floats(-400, 900)), max_size=3),
        "delegations": st.lists(
            st.tuples(
                st.sampled_from(["delegate", "other", "coi"]),
                st.one_of(
                    st.integers(0, 1).map(lambda i: ("programme", i)),
                    st.integers(0, 4).map(lambda i: ("dataset", i)),
                ),
                st.sampled_from(["active", "expired", "revoked", "forever"]),
            ),
            max_size=4,
        ),
        "workspace": st.lists(
            st.tuples(st.integers(0, 7), st.sampled_from(["public", "pi", "other"])), max_size=3
        ),
        "inactive": st.sets(st.sampled_from(["pi", "coi", "admin", "delegate"]), max_size=2),
        "now": st.floats(OBS - 30, OBS + 1500),
        "embargo": st.sampled_from([0, 12]),
    }
)


def _build(conn: Connection, w: dict) -> None:
    conn.execute(
        update(Programme).where(Programme.prog_id == _PROGS[0]).values(period_months=w["periods"][0])
    )
    conn.execute(
        update(Programme).where(Programme.prog_id == _PROGS[1]).values(period_months=w["periods"][1])
    )
    datasets = [add_dataset(conn, prog, m) for prog, m in w["datasets"]]

    def ds(i: int) -> int | None:
        return datasets[i % len(datasets)] if i >= 0 else None

    for prog, m, cal, i in w["files"]:
        add_file(conn, prog, m, is_calibration=cal, dataset_id=ds(i))
    products = [add_product(conn, ds(i), ptype) for i, ptype in w["products"]]
    now = at(w["now"])
    if products:
        for i, offset in w["delays"]:
            p = products[i % len(products)]
            conn.execute(delete(ReleaseDelay).where(ReleaseDelay.product_id == p))
            conn.execute(
                insert(ReleaseDelay).values(
                    product_id=p, delayed_until=now + dt.timedelta(days=offset), reason="r", set_by="t"
                )
            )
        for i, ws in w["workspace"]:
            ws_id = conn.scalar(select(Workspace.id).where(Workspace.name == ws))
            p = products[i % len(products)]
            if (
                conn.scalar(
                    select(WorkspaceItem.id).where(
                        WorkspaceItem.workspace_id == ws_id, WorkspaceItem.product_id == p
                    )
                )
                is None
            ):
                conn.execute(insert(WorkspaceItem).values(workspace_id=ws_id, product_id=p))
    programmes = list(conn.scalars(select(Programme.id).order_by(Programme.prog_id)))
    for who, (kind, i), state in w["delegations"]:
        uid = conn.scalar(select(User.id).where(User.name == who))
        conn.execute(
            insert(Delegation).values(
                grantee_user_id=uid,
                programme_id=programmes[i] if kind == "programme" else None,
                dataset_id=ds(i) if kind == "dataset" else None,
                granted_by="t",
                expires_at=None
                if state in ("forever", "revoked")
                else now + dt.timedelta(days=1 if state == "active" else -1),
                revoked_at=now if state == "revoked" else None,
            )
        )
    for name in w["inactive"]:
        conn.execute(update(User).where(User.name == name).values(is_active=False))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(w=world)
def test_sql_filters_agree_with_per_object_decisions(catalogue, w) -> None:
    with catalogue.engine.connect() as conn:
        transaction = conn.begin()
        try:
            # the same people as the fixture, inside this example's transaction
            for name, role in zip(_USERS[:7], ["admin", "operator"] + ["user"] * 5, strict=True):
                accounts.add_user(conn, ADMIN, name, role=role)
            accounts.add_group(conn, ADMIN, "survey")
            accounts.set_group_members(conn, ADMIN, "survey", add=["member"])
            accounts.save_programme(conn, ADMIN, accounts.ProgrammeSpec(_PROGS[0], pi="pi", cois=("coi",)))
            accounts.save_programme(conn, ADMIN, accounts.ProgrammeSpec(_PROGS[1], pi="pi", group="survey"))
            _build(conn, w)
            now = at(w["now"])
            policy = Policy(product_embargo_months=w["embargo"])
            users = [ANONYMOUS] + [load_principal(conn, name) for name in _USERS]
            for user in users:
                ctx = AccessContext(conn, user, now, policy)
                for kind, model in _MODELS.items():
                    in_sql = set(conn.scalars(select(model.id).where(_CLAUSES[kind](user, now, policy))))
                    per_object = {i for i in conn.scalars(select(model.id)) if ctx.can_see((kind, i))}
                    assert in_sql == per_object, (user.name, kind)
                # a memoising context (a web request's) reads a product's facts in one statement:
                # the same decisions, reasons and dates as the fresh context's separate lookups
                memo = AccessContext(conn, user, now, policy, memo=True)
                for i in conn.scalars(select(Product.id)):
                    assert memo.can_see_product(i) == ctx.can_see_product(i), (user.name, i)
                    assert memo.product_public_date(i) == ctx.product_public_date(i), (user.name, i)
                bound = products_visibility_filter(user, now, policy)  # user and clock bound
                in_bound = set(conn.scalars(select(Product.id).where(bound.clause), bound.params))
                assert in_bound == set(
                    conn.scalars(select(Product.id).where(_CLAUSES["product"](user, now, policy)))
                )
        finally:
            transaction.rollback()


def test_group_and_membership_tables_round_trip(conn, people) -> None:
    """Membership rows are what the rules read (guards the fixtures above)."""
    assert conn.scalar(select(Group.name)) == "survey"
    assert conn.scalar(select(GroupMember.user_id)) == people["member"].id
    assert conn.scalar(select(ProgrammeMember.user_id)) == people["coi"].id


def test_migration_0003_downgrades_and_upgrades(catalogue) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from hcdc.archive.db import alembic_config, current_revision, head_revision

    tables = {"users", "programmes", "delegations", "api_tokens", "release_delays", "audit_log", "quotas"}
    assert tables <= set(inspect(catalogue.engine).get_table_names())
    config = alembic_config()
    with catalogue.engine.begin() as c:
        config.attributes["connection"] = c
        command.downgrade(config, "0002_pipeline")
    assert not tables & set(inspect(catalogue.engine).get_table_names())
    with catalogue.engine.begin() as c:
        config.attributes["connection"] = c
        command.upgrade(config, "head")
    assert current_revision(catalogue.engine) == head_revision()
    with catalogue.engine.connect() as c:
        assert c.scalar(select(User.role).where(User.name == "public")) == "public"


# --------------------------------------------------------------------------------------------
# R15: the Target Data Base (product-backed rows: tests/archive/test_tdb.py on real products)


def test_R15_imported_tdb_rows_by_release_date_and_survey(conn: Connection, people) -> None:
    from hcdc.archive.access import visible_tdb_reductions_clause
    from hcdc.archive.exchange.tdb_json import import_tdb
    from hcdc.archive.tdb_models import Reduction

    def observation(uid: str, release: str | None) -> dict:
        return {"uid": uid, "survey": "survey", "release_date": release, "reductions": [{"uid": f"{uid}/r"}]}

    import_tdb(
        conn,
        {
            "format": "hcdc-tdb",
            "version": 1,
            "targets": [
                {
                    "name": "HR 8799",
                    "observations": [observation("open", None), observation("later", "2027-01-01T00:00:00")],
                }
            ],
        },
    )
    now = dt.datetime(2026, 6, 1)
    for name, expected in [("public", {"open/r"}), ("other", {"open/r"}), ("member", {"open/r", "later/r"}),
                           ("admin", {"open/r", "later/r"})]:  # fmt: skip
        user = people[name]
        sql = set(conn.scalars(select(Reduction.uid).where(visible_tdb_reductions_clause(user, now))))
        ctx = AccessContext(conn, user, now)
        per_object = {
            uid
            for rid, uid in conn.execute(select(Reduction.id, Reduction.uid))
            if ctx.can_see_tdb_reduction(rid)
        }
        assert sql == per_object == expected, name
    later = conn.scalar(select(Reduction.id).where(Reduction.uid == "later/r"))
    assert (
        AccessContext(conn, people["other"], dt.datetime(2027, 1, 2)).can_see_tdb_reduction(later).rule
        == "R15"
    )


def test_rule_R16_survey_tracking_only_for_the_survey_group(conn: Connection, people) -> None:
    from hcdc.archive.access import can_see_survey, visible_surveys_clause

    survey_group = conn.scalar(select(Group.id).where(Group.name == "survey"))
    accounts.add_group(conn, ADMIN, "elsewhere")
    accounts.set_group_members(conn, ADMIN, "elsewhere", add=["other"])

    def sees(name: str) -> Decision:
        user = people[name]
        decision = can_see_survey(conn, user, survey_group)
        in_sql = conn.scalar(
            select(Group.id).where(Group.id == survey_group, visible_surveys_clause(user, Group.id))
        )
        assert (in_sql is not None) == decision.allowed, (name, decision)
        return decision

    assert sees("member").rule == "R16" and sees("member").allowed
    assert sees("admin").rule == sees("operator").rule == "R1"
    # the PI of the survey's programme, another group's member and the public account: not in the group
    for name in ("pi", "other", "coi", "public"):
        assert not sees(name) and sees(name).rule == "R16", name
    assert not can_see_survey(conn, ANONYMOUS, survey_group)
    accounts.set_active(conn, ADMIN, "member", False)
    people["member"] = load_principal(conn, "member")
    assert not sees("member")  # R0: an inactive account is anonymous


def _rdi_library(conn: Connection, science: int, sources: list[int | None], name: str) -> int:
    from hcdc.archive.rdi_models import RdiLibrary, RdiLibraryFrame

    library = conn.execute(
        insert(RdiLibrary)
        .values(
            name=name,
            science_product_id=science,
            annulus_inner_px=5.0,
            annulus_outer_px=20.0,
            n_candidates=len(sources),
            n_frames=len(sources),
            path=f"rdi_libraries/{name}/library.fits",
            sha256="0" * 64,
            built_by="test",
            created_at=dt.datetime(2026, 1, 1),
            record={},
        )
        .returning(RdiLibrary.id)
    ).scalar_one()
    for rank, product in enumerate(sources):
        conn.execute(
            insert(RdiLibraryFrame).values(
                library_id=library, rank=rank, product_id=product, frame_index=0, correlation=0.9
            )
        )
    return library


def test_rule_R18_rdi_library_visible_with_its_science_and_every_source(conn, people) -> None:
    from hcdc.archive.access import visible_rdi_libraries_clause
    from hcdc.archive.rdi_models import RdiLibrary

    own = add_dataset(conn, "0104.C-0007(A)", OBS)
    other = add_dataset(conn, "0200.C-0001(A)", OBS)
    science, mine, foreign = add_product(conn, own), add_product(conn, own), add_product(conn, other)
    team_only = _rdi_library(conn, science, [mine, mine], "team-only")
    mixed = _rdi_library(conn, science, [mine, foreign], "mixed")
    orphan = _rdi_library(conn, science, [mine, None], "orphan")

    def check(user: Principal, library: int, now: dt.datetime) -> Decision:
        decision = AccessContext(conn, user, now).can_see_rdi_library(library)
        in_sql = conn.scalar(
            select(RdiLibrary.id).where(RdiLibrary.id == library, visible_rdi_libraries_clause(user, now))
        )
        assert (in_sql is not None) == decision.allowed, decision
        return decision

    soon = at(OBS, 3600)
    assert check(people["pi"], team_only, soon).rule == "R18" and check(people["pi"], team_only, soon)
    refused = check(people["pi"], mixed, soon)  # a source the PI may not see hides the library
    assert (refused.allowed, refused.rule) == (False, "R18") and str(foreign) in refused.reason
    assert not check(people["other"], team_only, soon)  # nor its science product
    assert check(people["operator"], mixed, soon).rule == "R1"
    assert (check(people["pi"], orphan, soon).allowed, check(people["pi"], orphan, soon).rule) == (
        False,
        "R9",
    )
    later = at(OBS + 2 * YEAR + 1)  # every product public (R4): the library too
    assert check(people["other"], mixed, later) and check(people["public"], mixed, later).rule == "R18"
    with pytest.raises(LookupError):
        AccessContext(conn, people["pi"], soon).can_see_rdi_library(10**6)
