"""Who sees and does what: the ONE place where hcdc decides.

Every interface (CLI, portal, REST API, VO services, downloads) asks this module. The rules are
listed in :data:`RULES` (identifiers ``R*`` for seeing, ``A*`` for doing), versioned by
:data:`RULES_VERSION`, and tabulated in ``docs/access.md``; each has a test in
``tests/archive/test_access.py``. Change a rule here, bump the version, update the table.

Two forms of the same decision, tested to agree on generated data (SQLite and PostgreSQL):

* per object: :meth:`AccessContext.can_see` (or :func:`can_see`) loads the facts of one file,
  dataset or product and returns a :class:`Decision` naming the rule that decided;
* in the database: :func:`visible_files_clause`, :func:`visible_datasets_clause` and
  :func:`visible_products_clause` return SQLAlchemy boolean expressions to put in a ``WHERE``,
  so that listings filter in SQL and never load what the user may not see.

Release happens by the clock: every decision is a function of ``now``; no job has to run for a
file or product to become public.

Time convention: the observation time of a file is its ``mjd_obs`` (MJD, UTC); of a dataset
its last file (``mjd_end``, else ``mjd_start``). A proprietary period of N months lasts
N x 30.4375 days (a month is 1/12 of a Julian year), so the public date is
``mjd + N * 30.4375`` in both Python and SQL, with exactly the same floating-point operations.
A science file or dataset without an observation time never becomes public by the clock
(default deny).

Programmes are registered by programme id without the ESO run letter (``0104.C-0007``); a
file's ``prog_id`` belongs to the programme whose id is the part before the first ``(``
(``0104.C-0007(B)`` -> ``0104.C-0007``).
"""

from __future__ import annotations

import datetime as dt
import getpass
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    DateTime,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from hcdc.archive.access_models import (
    Delegation,
    Group,
    GroupMember,
    JobOwner,
    ProductReview,
    Programme,
    ProgrammeMember,
    Quota,
    ReleaseDelay,
    User,
    Workspace,
    WorkspaceItem,
)
from hcdc.archive.interferometry_models import GranuleRow, OiCollection, OiDelegation
from hcdc.archive.models import Dataset, File, utcnow
from hcdc.archive.pipeline_models import Batch, Job, Product, ProductSource
from hcdc.archive.rdi_models import RdiLibrary, RdiLibraryFrame
from hcdc.archive.tdb_models import Candidate, Detection, Observation, Reduction

if TYPE_CHECKING:
    from hcdc.config import Settings

RULES_VERSION = "7"

#: days in one month of a proprietary period (1/12 of a Julian year)
MONTH_DAYS = 30.4375
MJD_EPOCH = dt.datetime(1858, 11, 17)

#: ``dataproduct_category`` of calibrator granules (``HIERARCH PRO SCIENCE = F``; rule R11)
CALIBRATOR_CATEGORY = "CALIB"

#: product types that are calibration masters (public at once, rule R2)
CALIBRATION_PRODUCT_TYPES = frozenset({"master-calibration"})

STAFF_ROLES = frozenset({"admin", "operator"})


@dataclass(frozen=True)
class Rule:
    id: str
    summary: str


RULES: tuple[Rule, ...] = (
    Rule("R0", "An inactive account, or none, is anonymous: it sees public data only."),
    Rule("R1", "Admins and operators (the data-centre team) see everything."),
    Rule("R2", "Calibration files and calibration master products are public at once."),
    Rule(
        "R3",
        "A science raw file or dataset is public from its observation time + its programme's "
        "proprietary period (12 months unless the programme says otherwise).",
    ),
    Rule(
        "R4",
        "A reduced product is public from its raw data's public date + the product embargo "
        "(12 months, configurable), or from the PI's release delay if that is later.",
    ),
    Rule("R5", "The PI and co-Is of a programme see its files, datasets and products at any time."),
    Rule("R6", "Members of a programme's survey group see its files, datasets and products."),
    Rule(
        "R7",
        "An active delegation (not revoked, not expired) adds its grantee to one programme or to "
        "one dataset (its files and products).",
    ),
    Rule(
        "R8",
        "A product in the public workspace is public; a product in a user's private workspace is "
        "visible to that user.",
    ),
    Rule(
        "R10",
        "A job (its dataset, parameters, progress and log) and a batch of jobs are visible to the "
        "account that queued them and to admins and operators; the tracebacks in a job's log (server "
        "paths) to admins and operators only.",
    ),
    Rule(
        "R11",
        "A calibrator granule (HIERARCH PRO SCIENCE = F) of a collection is public at once, unless its "
        "data rights are proprietary.",
    ),
    Rule(
        "R12",
        "A science granule of a collection is public if its data rights are public; if secure, from "
        "t_max + the collection's embargo (CHARA 18 months, ESO 12, ...), and not before the "
        "collection's or the granule's release date; if proprietary, never by the clock.",
    ),
    Rule(
        "R13",
        "The data PI of a collection (its owner), the team of a granule's programme (R5-R7) and the "
        "active delegates of the collection, of its programme or of its sub-programme see its granules.",
    ),
    Rule(
        "R14",
        "An OIFITS file whose granules are in a collection is visible when all its granules are "
        "(the granule rules replace R2/R3 for it); other granules are visible with their file.",
    ),
    Rule(
        "R15",
        "Target Data Base: targets are public; a reduction (with its detections) made from a Level 2 "
        "product is visible with that product; an imported one from its observation's release date "
        "(none: at once), and always to members of its observation's survey group; an observation when "
        "one of its reductions is, or when imported by the same rule; a candidate when one of its "
        "detections is (its pages show only those detections).",
    ),
    Rule(
        "R16",
        "Survey tracking (a survey's targets, their progress, history and what is late) is visible to "
        "the active members of the survey's group and to admins and operators, to no one else (not the "
        "public, not the data PI or delegates of a collection unless they are in the group).",
    ),
    Rule(
        "R17",
        "A product without a dataset made from catalogued files (an OIFITS model fit of 'hcdc oi fit') is "
        "visible exactly when all its source files are (for OIFITS files: all their granules, R11-R14), "
        "or when an admin put it in the public workspace; R4-R8 do not apply to it (not even the "
        "queuer's private workspace).",
    ),
    Rule(
        "R18",
        "An RDI reference library is built for one account from the current Level 1 products that "
        "account may see at that moment (R1-R8, R17), never from others; a library (its frames, their "
        "source products and correlations, its file) is visible to an account exactly when it may see "
        "the science product it was built for and every product it draws frames from.",
    ),
    Rule("R9", "Anything else is hidden (default deny), e.g. a science file without observation time."),
    Rule("A1", "Only admins manage users, groups, programmes, quotas and other users' tokens."),
    Rule("A2", "A programme's PI (or an admin) delegates its programme or one of its datasets."),
    Rule(
        "A3",
        "A programme's PI (or an admin) delays a product's release, with a reason, at most the "
        "configured maximum (24 months) beyond its scheduled public date.",
    ),
    Rule("A4", "Admins and operators validate products or flag them bad (with a reason)."),
    Rule("A5", "Only validated products go on to Level 3."),
    Rule(
        "A6",
        "A user (not staff) may queue a reduction of a dataset they can see, inside their access "
        "window, while they have fewer queued or running jobs than their quota.",
    ),
    Rule("A7", "Users create and revoke their own API tokens; admins those of anyone."),
    Rule("A8", "Only admins place products in the public workspace; users in their own workspace."),
    Rule(
        "A9",
        "A collection's data PI (or an admin) delegates the collection, one of its programmes or "
        "sub-programmes; only admins create and change collections.",
    ),
    Rule(
        "A10",
        "Admins, operators, and those who see an OIFITS file's granules as data PI, team or delegate "
        "(R13) validate the file (quality flag) and publish it as Level 3.",
    ),
    Rule(
        "A11",
        "The account that submitted a batch, and admins and operators, cancel or retry its jobs; a "
        "user's batch takes as many places of their job quota (A6) as it has jobs.",
    ),
)


class AccessDenied(PermissionError):
    """An action is not allowed; the message says which rule and why."""


@dataclass(frozen=True)
class Principal:
    """Who is asking: an account (``id``) or nobody (``id`` None: anonymous or the local shell)."""

    id: int | None
    name: str
    role: str  # admin | operator | user | public
    active: bool = True

    @property
    def is_staff(self) -> bool:
        return self.active and self.role in STAFF_ROLES

    @property
    def is_admin(self) -> bool:
        return self.active and self.role == "admin"

    @property
    def member_id(self) -> int | None:
        """The account id that membership rules (R5-R8) apply to; None for anonymous/public."""
        if not self.active or self.role == "public":
            return None
        return self.id


ANONYMOUS = Principal(id=None, name="anonymous", role="public")


def local_operator() -> Principal:
    """The person at the data centre's shell (``local:<os user>``): an admin without account.

    The CLI runs as this principal: whoever can open the catalogue's database already has every
    right over it, and the audit log records their operating-system name.
    """
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = "unknown"
    return Principal(id=None, name=f"local:{user}", role="admin")


def principal_of(user: User | Any) -> Principal:
    """The :class:`Principal` of a ``users`` row (ORM object or Core row)."""
    return Principal(id=user.id, name=user.name, role=user.role, active=bool(user.is_active))


def load_principal(conn: Connection, name: str) -> Principal:
    """The principal of the account called ``name`` (LookupError when there is none)."""
    row = conn.execute(select(User).where(User.name == name)).first()
    if row is None:
        raise LookupError(f"no user called {name!r} (see 'hcdc user list')")
    return principal_of(row)


@dataclass(frozen=True)
class Policy:
    """The configurable numbers of the rules (defaults as in the rules table)."""

    default_period_months: int = 12  # R3 for files of programmes not registered
    product_embargo_months: int = 12  # R4
    max_delay_months: int = 24  # A3
    quota_max_jobs: int = 2  # A6 default
    quota_window_days: int = 0  # A6 default: 0 = no window limit
    token_days: int = 90  # lifetime of a new API token

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        return cls(
            product_embargo_months=settings.access_product_embargo_months,
            max_delay_months=settings.access_max_delay_months,
            quota_max_jobs=settings.quota_max_jobs,
            quota_window_days=settings.quota_window_days,
            token_days=settings.access_token_days,
        )


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Decision:
    """A decision: allowed or not, the rule that decided, and why (for people and logs)."""

    allowed: bool
    rule: str
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


# --------------------------------------------------------------------------------------------
# time


def utc_naive(moment: dt.datetime) -> dt.datetime:
    """``moment`` as a naive UTC datetime (the catalogue's convention); naive input is UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC).replace(tzinfo=None)
    return moment


def mjd_of(moment: dt.datetime) -> float:
    """Modified Julian Date (UTC days) of a datetime."""
    return (utc_naive(moment) - MJD_EPOCH) / dt.timedelta(days=1)


def datetime_of_mjd(mjd: float) -> dt.datetime:
    """Naive UTC datetime of an MJD (to the microsecond)."""
    return MJD_EPOCH + dt.timedelta(days=mjd)


def programme_key(prog_id: str | None) -> str | None:
    """The programme a file's ``prog_id`` belongs to: the id without its run letter(s)."""
    if prog_id is None:
        return None
    return prog_id.split("(", 1)[0]


def _raw_public_mjd(mjd: float | None, period_months: int) -> float | None:
    """R3: MJD from which raw data observed at ``mjd`` are public (None: never by the clock)."""
    if mjd is None:
        return None
    return mjd + period_months * MONTH_DAYS


def _product_public_mjd(mjd: float | None, period_months: int, embargo_months: int) -> float | None:
    """R4 without delay: MJD from which a product of raw data observed at ``mjd`` is public."""
    if mjd is None:
        return None
    return mjd + (period_months + embargo_months) * MONTH_DAYS


def granule_release(granule: Any, collection: Any) -> tuple[str, dt.datetime | None]:
    """R11/R12 facts of a collection granule: (its data rights, its public date or None).

    ``granule`` and ``collection`` are rows (or objects) of ``granules`` and ``oi_collections``.
    Data rights are the granule's own, else the collection's. The public date of a secure
    science granule is the latest of ``t_max + embargo`` (months of 30.4375 days), the
    collection's release date and the granule's own ``obs_release_date``; calibrators and
    public granules have none (public at once), proprietary ones none (never by the clock).
    Computed when asked, so a changed embargo applies at once and nothing has to run.
    """
    rights = granule.data_rights or collection.data_rights
    if rights != "secure" or granule.dataproduct_category == CALIBRATOR_CATEGORY:
        return rights, None
    dates = [datetime_of_mjd(granule.t_max + collection.embargo_months * MONTH_DAYS)]
    dates += [d for d in (collection.release_date, granule.obs_release_date) if d is not None]
    return rights, max(dates)


def granule_public_date(granule: Any, collection: Any) -> dt.datetime | None:
    """R11/R12: when a collection granule is (or was) public by the clock, for ObsCore's
    ``obs_release_date``; None: never by the clock (proprietary rights, or none declared).

    A secure science granule: the end of its embargo (:func:`granule_release`). One public at
    once (a calibrator that is not proprietary, R11; public rights, R12): the start of its
    observation (``t_min``, else ``t_max``; MJD 0 for a granule without times), as a calibration
    file is public from its observation (``file_public_date``).
    """
    rights, release = granule_release(granule, collection)
    if release is not None:
        return release
    if rights not in ("public", "secure"):  # proprietary, or no rights: never by the clock (R9)
        return None
    mjd = granule.t_min if granule.t_min is not None else granule.t_max
    return datetime_of_mjd(mjd) if mjd is not None else MJD_EPOCH


def release_passed(granule: Any, collection: Any, now: dt.datetime) -> bool:
    """R12 at ``now`` (naive UTC): the embargo of a secure granule has ended.

    The same comparisons as the SQL form (MJD for ``t_max``, datetimes for the dates), so both
    forms agree to the microsecond.
    """
    embargo_end = granule.t_max + collection.embargo_months * MONTH_DAYS
    return (
        embargo_end <= mjd_of(now)
        and (collection.release_date is None or collection.release_date <= now)
        and (granule.obs_release_date is None or granule.obs_release_date <= now)
    )


# --------------------------------------------------------------------------------------------
# the clock and the user as bound parameters (one SQL text per kind of user, values per request)

#: names of the bound parameters of :func:`visibility_filter`'s clauses
NOW_PARAM, NOW_MJD_PARAM, UID_PARAM = "access_now", "access_now_mjd", "access_uid"


def _naive(now: dt.datetime | BindParameter) -> dt.datetime | BindParameter:
    """``now`` as naive UTC, or unchanged when it is the bound parameter of a template."""
    return now if isinstance(now, BindParameter) else utc_naive(now)


def _now_mjd(now: dt.datetime | BindParameter) -> ColumnElement[float]:
    """``now`` as an MJD in SQL: a literal of this moment, or the template's bound parameter."""
    if isinstance(now, BindParameter):
        return bindparam(NOW_MJD_PARAM, type_=Float, required=True)
    return literal(mjd_of(now), Float)


@dataclass(frozen=True)
class _BoundMember(Principal):
    """A non-staff member whose account id is the bound parameter :data:`UID_PARAM`."""

    @property
    def member_id(self) -> Any:  # a BindParameter standing for the account id
        return bindparam(UID_PARAM, type_=Integer, required=True)


@dataclass(frozen=True)
class VisibilityFilter:
    """A visibility clause whose SQL is the same for every user of a kind and every moment:
    ``clause`` has bound parameters for the account id and the clock, ``params`` their values
    for this user and this moment (pass them to ``Connection.execute``).

    ``key`` names the clause's SQL (table, kind of user, policy): equal keys, identical clauses,
    so a caller may build and cache one statement per key. The decision is still taken by the
    database at every execution, with this request's user and clock: nothing is remembered
    across requests, users or changes of rights.
    """

    key: tuple[Any, ...]
    clause: ColumnElement[bool] = field(compare=False)
    params: dict[str, Any] = field(compare=False, default_factory=dict)


@lru_cache(maxsize=64)
def _products_template(member: bool, policy: Policy, by_sources: bool) -> ColumnElement[bool]:
    """:func:`visible_products_clause` of a non-staff user (a member with an account id, or
    anonymous/public) with the clock and the account id as bound parameters."""
    user = _BoundMember(id=None, name="bound", role="user") if member else ANONYMOUS
    now = bindparam(NOW_PARAM, type_=DateTime, required=True)
    return visible_products_clause(user, now, policy, by_sources=by_sources)  # type: ignore[arg-type]


def products_visibility_filter(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY, *, by_sources: bool = True
) -> VisibilityFilter:
    """:func:`visible_products_clause` as a :class:`VisibilityFilter`: the same rows, one SQL
    text per kind of user (staff, member, anonymous/public) instead of one statement built
    per request (building and hashing it was ~40 % of a product search's CPU, see
    benchmarks/RESULTS.md)."""
    if user.is_staff:
        return VisibilityFilter(("products", "staff"), true())  # R1
    now = utc_naive(now)
    uid = user.member_id
    params: dict[str, Any] = {NOW_PARAM: now, NOW_MJD_PARAM: mjd_of(now)}
    if uid is not None:
        params[UID_PARAM] = uid
    kind = "member" if uid is not None else "public"
    return VisibilityFilter(
        ("products", kind, policy, by_sources),
        _products_template(uid is not None, policy, by_sources),
        params,
    )


# --------------------------------------------------------------------------------------------
# SQL form


def _active_delegation(now: dt.datetime) -> ColumnElement[bool]:
    return and_(
        Delegation.revoked_at.is_(None), or_(Delegation.expires_at.is_(None), Delegation.expires_at > now)
    )


def _team_programmes(uid: int, now: dt.datetime):  # noqa: ANN202 - a Select of programme ids
    """Programme ids whose data the account ``uid`` sees as team (R5, R6) or delegate (R7)."""
    return select(Programme.id).where(
        or_(
            Programme.pi_user_id == uid,
            Programme.id.in_(select(ProgrammeMember.programme_id).where(ProgrammeMember.user_id == uid)),
            Programme.group_id.in_(select(GroupMember.group_id).where(GroupMember.user_id == uid)),
            Programme.id.in_(
                select(Delegation.programme_id).where(
                    Delegation.grantee_user_id == uid,
                    Delegation.programme_id.is_not(None),
                    _active_delegation(now),
                )
            ),
        )
    )


def _delegated_datasets(uid: int, now: dt.datetime):  # noqa: ANN202 - a Select of dataset ids
    return select(Delegation.dataset_id).where(
        Delegation.grantee_user_id == uid, Delegation.dataset_id.is_not(None), _active_delegation(now)
    )


class _ProgrammeKey(FunctionElement):
    """SQL form of :func:`programme_key`: the text before the first ``(`` (NULL stays NULL)."""

    type = String()
    name = "programme_key"
    inherit_cache = True


@compiles(_ProgrammeKey)
def _programme_key_default(element: _ProgrammeKey, compiler, **kw) -> str:  # noqa: ANN001
    # SQLite (and the default): instr() finds the '(' of the value with one appended
    (column,) = list(element.clauses)
    arg = compiler.process(column, **kw)
    return f"substr({arg}, 1, instr({arg} || '(', '(') - 1)"


@compiles(_ProgrammeKey, "postgresql")
def _programme_key_postgresql(element: _ProgrammeKey, compiler, **kw) -> str:  # noqa: ANN001
    (column,) = list(element.clauses)
    return f"split_part({compiler.process(column, **kw)}, '(', 1)"


def programme_key_sql(prog_id_column) -> ColumnElement[str]:  # noqa: ANN001 - a column
    """:func:`programme_key` in SQL, on SQLite and PostgreSQL."""
    return _ProgrammeKey(prog_id_column)


def _matches_programme(prog_id_column) -> ColumnElement[bool]:  # noqa: ANN001 - a column
    """``programmes.prog_id`` is the programme of ``prog_id_column`` (see :func:`programme_key`).

    An equality, so the unique index on ``programmes.prog_id`` serves the lookup.
    """
    return Programme.prog_id == programme_key_sql(prog_id_column)


def _period_months(prog_id_column, policy: Policy):  # noqa: ANN001, ANN202 - SQL expressions
    """The proprietary period (months) of the programme of ``prog_id_column`` (default if none)."""
    period = select(Programme.period_months).where(_matches_programme(prog_id_column)).scalar_subquery()
    return func.coalesce(period, policy.default_period_months)


def _month_days():  # noqa: ANN202
    return literal(MONTH_DAYS, Float)


def _files_base_clause(user: Principal, now: dt.datetime, policy: Policy) -> ColumnElement[bool]:
    """R2, R3, R5-R7 over ``files`` (for a non-staff ``user``; ``now`` naive UTC)."""
    now_mjd = _now_mjd(now)
    public = and_(
        File.mjd_obs.is_not(None),
        File.mjd_obs + _period_months(File.prog_id, policy) * _month_days() <= now_mjd,
    )  # R3
    clauses = [File.is_calibration, public]  # R2, R3
    uid = user.member_id
    if uid is not None:
        team = _team_programmes(uid, now).where(_matches_programme(File.prog_id))
        clauses.append(exists(team))  # R5-R7
        clauses.append(File.dataset_id.in_(_delegated_datasets(uid, now)))  # R7
    return or_(*clauses)


def visible_files_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY
) -> ColumnElement[bool]:
    """Boolean SQL expression over ``files``: the rows ``user`` may see at ``now``."""
    if user.is_staff:
        return true()  # R1
    now = _naive(now)
    in_collection = GranuleRow.obs_collection.is_not(None)
    of_file = GranuleRow.file_id == File.id
    # correlated to files only: these subqueries may sit in a query that also joins granules
    has_collection = exists(select(GranuleRow.id).where(of_file, in_collection).correlate(File))
    # R14: counts, not NOT EXISTS(... NOT visible): a NULL in the granule clause must hide
    collection_granules = (
        select(func.count()).select_from(GranuleRow).where(of_file, in_collection).correlate(File)
    )
    visible_granules = collection_granules.where(_collection_granule_clause(user, now))
    return or_(
        and_(~has_collection, _files_base_clause(user, now, policy)),
        and_(has_collection, visible_granules.scalar_subquery() == collection_granules.scalar_subquery()),
    )


def _granule_delegates(uid: int, now: dt.datetime) -> ColumnElement[bool]:
    """R13 over ``granules`` x ``oi_collections``: ``uid`` holds an active delegation covering it."""
    active = and_(
        OiDelegation.revoked_at.is_(None),
        or_(OiDelegation.expires_at.is_(None), OiDelegation.expires_at > now),
    )
    return exists(
        select(OiDelegation.id)
        .where(
            OiDelegation.grantee_user_id == uid,
            OiDelegation.collection_id == OiCollection.id,
            active,
            or_(OiDelegation.progid.is_(None), OiDelegation.progid == programme_key_sql(GranuleRow.progid)),
            or_(
                OiDelegation.proposal_subid.is_(None),
                OiDelegation.proposal_subid == GranuleRow.proposal_subid,
            ),
        )
        # two levels below the granule: auto-correlation reaches only the enclosing select
        .correlate(GranuleRow, OiCollection)
    )


def _collection_granule_clause(user: Principal, now: dt.datetime) -> ColumnElement[bool]:
    """R11-R13 over ``granules`` (rows of a collection), for a non-staff ``user`` at naive ``now``."""
    now_mjd = _now_mjd(now)
    rights = func.coalesce(GranuleRow.data_rights, OiCollection.data_rights)
    released = and_(
        rights == "secure",
        GranuleRow.t_max + OiCollection.embargo_months * _month_days() <= now_mjd,
        or_(OiCollection.release_date.is_(None), OiCollection.release_date <= now),
        or_(GranuleRow.obs_release_date.is_(None), GranuleRow.obs_release_date <= now),
    )
    clauses = [
        and_(GranuleRow.dataproduct_category == CALIBRATOR_CATEGORY, rights != "proprietary"),  # R11
        rights == "public",  # R12
        released,  # R12
    ]
    uid = user.member_id
    if uid is not None:
        team = _team_programmes(uid, now).where(_matches_programme(GranuleRow.progid)).correlate(GranuleRow)
        clauses += [OiCollection.owner_user_id == uid, exists(team), _granule_delegates(uid, now)]  # R13
    # its own collection row, even inside a query that joins oi_collections (listings)
    return exists(
        select(OiCollection.id)
        .where(OiCollection.name == GranuleRow.obs_collection, or_(*clauses))
        .correlate(GranuleRow)
    )


def visible_granules_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY
) -> ColumnElement[bool]:
    """Boolean SQL expression over ``granules``: the rows ``user`` may see at ``now`` (R11-R14)."""
    if user.is_staff:
        return true()  # R1
    now = _naive(now)
    of_visible_file = exists(
        select(File.id)
        .where(File.id == GranuleRow.file_id, _files_base_clause(user, now, policy))
        .correlate_except(File)  # its own files row, even in a query that joins files
    )
    return or_(
        and_(GranuleRow.obs_collection.is_(None), of_visible_file),
        and_(GranuleRow.obs_collection.is_not(None), _collection_granule_clause(user, now)),
    )


def _dataset_mjd():  # noqa: ANN202
    return func.coalesce(Dataset.mjd_end, Dataset.mjd_start)


def _dataset_team_clause(uid: int, now: dt.datetime) -> ColumnElement[bool]:
    """Over ``datasets``: ``uid`` is in the team of the dataset's programme or a delegate of it."""
    team = _team_programmes(uid, now).where(_matches_programme(Dataset.prog_id))
    return or_(
        exists(team),
        Dataset.id.in_(_delegated_datasets(uid, now)),
    )


def visible_datasets_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY
) -> ColumnElement[bool]:
    """Boolean SQL expression over ``datasets``: the rows ``user`` may see at ``now``."""
    if user.is_staff:
        return true()  # R1
    now = _naive(now)
    now_mjd = _now_mjd(now)
    mjd = _dataset_mjd()
    public = and_(mjd.is_not(None), mjd + _period_months(Dataset.prog_id, policy) * _month_days() <= now_mjd)
    clauses = [public]
    uid = user.member_id
    if uid is not None:
        clauses.append(_dataset_team_clause(uid, now))
    return or_(*clauses)


def _released_datasets(now_mjd: ColumnElement[float], policy: Policy):  # noqa: ANN202 - a Select of ids
    """The datasets whose products are released by the clock at ``now_mjd`` (R4, no delay).

    The programme's period is a scalar subquery on the unique ``programmes.prog_id`` (one index
    probe per dataset): the clause is evaluated per candidate product, correlated to its dataset
    (an outer join here made PostgreSQL hash the programmes again for every candidate, ~40 % of
    a broad search's time, benchmarks/RESULTS.md). The same value (``prog_id`` is unique) and the
    same floating-point operations (``mjd + (period + embargo) * 30.4375``) as
    :func:`_product_public_mjd`.
    """
    mjd = _dataset_mjd()
    months = _period_months(Dataset.prog_id, policy) + policy.product_embargo_months
    return select(Dataset.id).where(mjd.is_not(None), mjd + months * _month_days() <= now_mjd)


def visible_products_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY, *, by_sources: bool = True
) -> ColumnElement[bool]:
    """Boolean SQL expression over ``products``: the rows ``user`` may see at ``now``.

    ``by_sources=False`` leaves out R17's admission by visible source files (a product with
    sources is then visible by R2 or the public workspace only): the form the TDB's R15 clauses
    nest, where the files' granule clauses would overflow SQLite's parser stack; the TDB receives
    Level 2 images of datasets, which have no sources, and
    :meth:`AccessContext.can_see_tdb_reduction` applies the same restriction."""
    if user.is_staff:
        return true()  # R1
    now = _naive(now)
    now_mjd = _now_mjd(now)
    raw_released = exists(_released_datasets(now_mjd, policy).where(Dataset.id == Product.dataset_id))
    delayed = exists(
        select(ReleaseDelay.id).where(ReleaseDelay.product_id == Product.id, ReleaseDelay.delayed_until > now)
    )
    in_public_workspace = exists(
        select(WorkspaceItem.id)
        .join(Workspace, Workspace.id == WorkspaceItem.workspace_id)
        .where(WorkspaceItem.product_id == Product.id, Workspace.is_public)
    )
    clauses = [
        Product.product_type.in_(sorted(CALIBRATION_PRODUCT_TYPES)),  # R2
        and_(raw_released, ~delayed),  # R4
        in_public_workspace,  # R8
    ]
    # R17: counts, not NOT EXISTS(... NOT visible), as R14 (a NULL must hide); the visible
    # sources are counted over a join with files (one nesting level less: the clause sits
    # inside the TDB's R15 clauses, and SQLite's parser stack is shallow)
    sources = (
        select(func.count())
        .select_from(ProductSource)
        .where(ProductSource.product_id == Product.id)
        .correlate(Product)
        .scalar_subquery()
    )
    visible_sources = (
        select(func.count())
        .select_from(ProductSource)
        .join(File, File.id == ProductSource.file_id)
        .where(ProductSource.product_id == Product.id, visible_files_clause(user, now, policy))
        .correlate(Product)
        .scalar_subquery()
    )
    has_sources = exists(select(ProductSource.file_id).where(ProductSource.product_id == Product.id))
    admitted = and_(has_sources, visible_sources == sources) if by_sources else false()  # R17
    uid = user.member_id
    if uid is not None:
        team_datasets = select(Dataset.id).where(
            Dataset.id == Product.dataset_id, _dataset_team_clause(uid, now)
        )
        clauses.append(exists(team_datasets))  # R5-R7
        own_workspace = exists(
            select(WorkspaceItem.id)
            .join(Workspace, Workspace.id == WorkspaceItem.workspace_id)
            .where(WorkspaceItem.product_id == Product.id, Workspace.owner_user_id == uid)
        )
        clauses.append(and_(~has_sources, own_workspace))  # R8, not for a product with sources (R17)
    # R4-R7 cannot admit a product with sources (it has no dataset), the public workspace admits
    # it under R17 too: only the private workspace needs the guard (a flat clause: see above)
    return or_(admitted, *clauses)


def visible_sources_clause(
    user: Principal,
    now: dt.datetime,
    policy: Policy = DEFAULT_POLICY,
    *,
    file_id: ColumnElement[Any],
    product_id: ColumnElement[Any],
    granule_id: ColumnElement[Any] | None = None,
) -> ColumnElement[bool]:
    """Over a table of published rows (ObsCore): the rows whose source ``user`` may see at ``now``.

    A row publishes a file (``file_id`` not NULL: a raw file or one of its OIFITS granules), a
    product (``product_id``) or a granule without a file (``granule_id``, NULL for other rows: a
    Level 0 observation log entry imported from ObsPortal); it is visible exactly when that file,
    product or granule is, by :func:`visible_files_clause` / :func:`visible_products_clause` /
    :func:`visible_granules_clause` (so the VO services answer what the portal shows). A row
    with none is hidden (R9).
    """
    if user.is_staff:
        return true()  # R1
    files = select(File.id).where(File.id == file_id, visible_files_clause(user, now, policy))
    products = select(Product.id).where(Product.id == product_id, visible_products_clause(user, now, policy))
    clauses = [and_(file_id.is_not(None), exists(files)), and_(product_id.is_not(None), exists(products))]
    if granule_id is not None:  # a Level 0 observation log entry: no file, its granule's rules
        granules = select(GranuleRow.id).where(
            GranuleRow.id == granule_id,
            GranuleRow.file_id.is_(None),
            visible_granules_clause(user, now, policy),
        )
        clauses.append(and_(file_id.is_(None), product_id.is_(None), exists(granules)))
    return or_(*clauses)


def rdi_reference_products_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY
) -> ColumnElement[bool]:
    """R18 over ``products``: the Level 1 products an RDI library built for ``user`` at ``now``
    may draw reference frames from (current, done, visible to ``user``)."""
    return and_(
        Product.level == 1,
        Product.is_current,
        Product.status == "done",
        visible_products_clause(user, now, policy),
    )


def visible_rdi_libraries_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY
) -> ColumnElement[bool]:
    """R18 over ``rdi_libraries``: the libraries ``user`` may see at ``now`` (the science product
    and every source product visible; a library whose science or source product was deleted is
    hidden, R9)."""
    if user.is_staff:
        return true()  # R1
    # an uncorrelated set (its own subqueries correlate to its products row, not to an outer one)
    visible = select(Product.id).where(visible_products_clause(user, now, policy)).correlate(None)
    science = and_(RdiLibrary.science_product_id.is_not(None), RdiLibrary.science_product_id.in_(visible))
    hidden_frame = exists(
        select(RdiLibraryFrame.id).where(
            RdiLibraryFrame.library_id == RdiLibrary.id,
            or_(RdiLibraryFrame.product_id.is_(None), RdiLibraryFrame.product_id.not_in(visible)),
        )
    )
    return and_(science, ~hidden_frame)


def visible_jobs_clause(user: Principal) -> ColumnElement[bool]:
    """R10 over ``jobs``: the rows ``user`` may see (those it queued; staff: all)."""
    if user.is_staff:
        return true()
    uid = user.member_id
    if uid is None:
        return false()
    return exists(select(JobOwner.job_id).where(JobOwner.job_id == Job.id, JobOwner.user_id == uid))


def visible_batches_clause(user: Principal) -> ColumnElement[bool]:
    """R10 over ``batches``: the rows ``user`` may see (those it submitted; staff: all)."""
    if user.is_staff:
        return true()
    uid = user.member_id
    if uid is None:
        return false()
    return Batch.owner_user_id == uid


def _imported_observation_visible(user: Principal, now: dt.datetime) -> ColumnElement[bool]:
    """R15 over ``tdb_observations`` of imported rows: released, or the user is in its survey."""
    released = or_(Observation.release_date.is_(None), Observation.release_date <= now)
    uid = user.member_id
    if uid is None:
        return released
    member = exists(
        select(GroupMember.id)
        .join(Group, Group.id == GroupMember.group_id)
        .where(Group.name == Observation.survey, GroupMember.user_id == uid)
    )
    return or_(released, member)


def visible_tdb_reductions_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY
) -> ColumnElement[bool]:
    """R15 over ``tdb_reductions`` (and so their detections): the rows ``user`` may see at ``now``."""
    if user.is_staff:
        return true()  # R1
    now = _naive(now)
    from_product = and_(
        Reduction.product_id.is_not(None),
        exists(
            select(Product.id).where(
                Product.id == Reduction.product_id,
                visible_products_clause(user, now, policy, by_sources=False),
            )
        ),
    )
    # correlate_except: the reduction's own observation, also when the enclosing query joins
    # tdb_observations (a detections listing) -- auto-correlation would leave this select no FROM
    imported = and_(
        Reduction.product_id.is_(None),
        exists(
            select(Observation.id)
            .where(Observation.id == Reduction.observation_id, _imported_observation_visible(user, now))
            .correlate_except(Observation)
        ),
    )
    return or_(from_product, imported)


def visible_tdb_observations_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY
) -> ColumnElement[bool]:
    """R15 over ``tdb_observations``: one of its reductions is visible, or (imported) released or
    the user's survey."""
    if user.is_staff:
        return true()  # R1
    now = _naive(now)
    some_reduction = exists(
        select(Reduction.id)
        .where(Reduction.observation_id == Observation.id, visible_tdb_reductions_clause(user, now, policy))
        .correlate_except(Reduction)
    )
    return or_(some_reduction, and_(Observation.origin != "level2", _imported_observation_visible(user, now)))


def visible_tdb_detections_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY
) -> ColumnElement[bool]:
    """R15 over ``tdb_detections``: the detections of the reductions ``user`` may see."""
    if user.is_staff:
        return true()  # R1
    return Detection.reduction_id.in_(
        select(Reduction.id).where(visible_tdb_reductions_clause(user, now, policy))
    )


def visible_tdb_candidates_clause(
    user: Principal, now: dt.datetime, policy: Policy = DEFAULT_POLICY
) -> ColumnElement[bool]:
    """R15 over ``tdb_candidates``: a candidate (and its verdict) is seen with one of its
    detections, so a candidate made only of hidden detections stays hidden."""
    if user.is_staff:
        return true()  # R1
    return exists(
        select(Detection.id).where(
            Detection.candidate_id == Candidate.id, visible_tdb_detections_clause(user, now, policy)
        )
    )


def level3_inputs_clause() -> ColumnElement[bool]:
    """A5 over ``products``: only validated products may feed Level 3."""
    return Product.id.in_(select(ProductReview.product_id).where(ProductReview.status == "validated"))


# --------------------------------------------------------------------------------------------
# per-object form


@dataclass(frozen=True)
class _Programme:
    id: int
    prog_id: str
    pi_user_id: int | None
    period_months: int
    group_id: int | None


# The lookups of the per-object decisions, built once: a statement built per call costs ~0.2 ms
# of Python for its construction and SQLAlchemy cache key (several per product page)
_PROGRAMME_BY_KEY = select(Programme).where(Programme.prog_id == bindparam("key"))

#: the programmes a member is in and how (R5-R7), in one statement (five before): rows of (kind,
#: programme id, expiry); kinds in :meth:`AccessContext._team_roles`' order of precedence (a later
#: kind overrides an earlier one for the same programme): 0 delegate of the programme, 1 member of
#: its survey group, 2 co-I, 3 PI
_TEAM_ROLES = union_all(
    select(
        literal_column("0").label("kind"),
        Delegation.programme_id.label("programme_id"),
        Delegation.expires_at.label("expires_at"),
    ).where(
        Delegation.grantee_user_id == bindparam("uid"),
        Delegation.programme_id.is_not(None),
        Delegation.revoked_at.is_(None),
    ),
    select(literal_column("1"), Programme.id, cast(null(), DateTime))
    .join(GroupMember, GroupMember.group_id == Programme.group_id)
    .where(GroupMember.user_id == bindparam("uid")),
    select(literal_column("2"), ProgrammeMember.programme_id, cast(null(), DateTime)).where(
        ProgrammeMember.user_id == bindparam("uid")
    ),
    select(literal_column("3"), Programme.id, cast(null(), DateTime)).where(
        Programme.pi_user_id == bindparam("uid")
    ),
)
_TEAM_RULES = (
    ("R7", "delegate of the programme"),
    ("R6", "member of the programme's survey group"),
    ("R5", "co-I of the programme"),
    ("R5", "PI of the programme"),
)
_DATASET_ROW = select(Dataset.id, Dataset.prog_id, Dataset.mjd_start, Dataset.mjd_end).where(
    Dataset.id == bindparam("dataset_id")
)
_PRODUCT_ROW = select(Product.id, Product.product_type, Product.dataset_id).where(
    Product.id == bindparam("product_id")
)
_RELEASE_DELAY = select(ReleaseDelay.delayed_until).where(ReleaseDelay.product_id == bindparam("product_id"))
_PRODUCT_SOURCES = (
    select(ProductSource.file_id)
    .where(ProductSource.product_id == bindparam("product_id"))
    .order_by(ProductSource.file_id)
)
#: every fact of a product's decision in one statement (a memoising context's first question about
#: a product): its row, the PI's delay (one per product), whether it has source files, its
#: dataset's row and the dataset's programme (``programme_key_sql``: the row ``_programme``
#: would read). Five statements before, each ~0.1 ms of PostgreSQL and ~0.15 ms of Python.
_PRODUCT_FACTS = (
    select(
        Product.id,
        Product.product_type,
        Product.dataset_id,
        ReleaseDelay.delayed_until,
        exists(select(ProductSource.file_id).where(ProductSource.product_id == Product.id)).label(
            "has_sources"
        ),
        Dataset.id.label("ds_id"),
        Dataset.prog_id.label("ds_prog_id"),
        Dataset.mjd_start.label("ds_mjd_start"),
        Dataset.mjd_end.label("ds_mjd_end"),
        Programme.id.label("pg_id"),
        Programme.prog_id.label("pg_prog_id"),
        Programme.pi_user_id.label("pg_pi_user_id"),
        Programme.period_months.label("pg_period_months"),
        Programme.group_id.label("pg_group_id"),
    )
    .select_from(Product)
    .outerjoin(ReleaseDelay, ReleaseDelay.product_id == Product.id)
    .outerjoin(Dataset, Dataset.id == Product.dataset_id)
    .outerjoin(Programme, Programme.prog_id == programme_key_sql(Dataset.prog_id))
    .where(Product.id == bindparam("product_id"))
)


class _DatasetRow(NamedTuple):
    id: int
    prog_id: str | None
    mjd_start: float | None
    mjd_end: float | None


class AccessContext:
    """Decisions for one user at one moment, on one open connection.

    ``now`` defaults to the current UTC time; pass it explicitly to ask "who sees what on that
    date" (the rules are functions of the clock).

    ``memo=True`` remembers every per-object decision and release date of this context: for a
    context that only reads (one web request asks about the same product several times), not
    for one that changes the facts between two questions.
    """

    def __init__(
        self,
        conn: Connection,
        user: Principal = ANONYMOUS,
        now: dt.datetime | None = None,
        policy: Policy = DEFAULT_POLICY,
        *,
        memo: bool = False,
    ) -> None:
        self.conn = conn
        self.user = user
        self.now = utc_naive(now) if now is not None else utcnow()
        self.now_mjd = mjd_of(self.now)
        self.policy = policy
        self._programmes: dict[str, _Programme | None] = {}
        self._team: dict[int, tuple[str, str]] | None = None
        self._datasets: set[int] | None = None
        self._memo: dict[tuple[str, int], Any] | None = {} if memo else None

    def _remembered(self, key: tuple[str, int], compute: Any) -> Any:
        """``compute()``, or its earlier value for ``key`` when this context memoises."""
        if self._memo is None:
            return compute()
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # SQL filters for this context ---------------------------------------------------------
    def files_clause(self) -> ColumnElement[bool]:
        return visible_files_clause(self.user, self.now, self.policy)

    def datasets_clause(self) -> ColumnElement[bool]:
        return visible_datasets_clause(self.user, self.now, self.policy)

    def products_clause(self) -> ColumnElement[bool]:
        return visible_products_clause(self.user, self.now, self.policy)

    def products_filter(self) -> VisibilityFilter:
        """:meth:`products_clause` as a :class:`VisibilityFilter` (bound user and clock)."""
        return products_visibility_filter(self.user, self.now, self.policy)

    def jobs_clause(self) -> ColumnElement[bool]:
        return visible_jobs_clause(self.user)

    def batches_clause(self) -> ColumnElement[bool]:
        return visible_batches_clause(self.user)

    def granules_clause(self) -> ColumnElement[bool]:
        return visible_granules_clause(self.user, self.now, self.policy)

    def tdb_reductions_clause(self) -> ColumnElement[bool]:
        return visible_tdb_reductions_clause(self.user, self.now, self.policy)

    def tdb_observations_clause(self) -> ColumnElement[bool]:
        return visible_tdb_observations_clause(self.user, self.now, self.policy)

    def tdb_candidates_clause(self) -> ColumnElement[bool]:
        return visible_tdb_candidates_clause(self.user, self.now, self.policy)

    # facts ----------------------------------------------------------------------------------
    def _programme(self, prog_id: str | None) -> _Programme | None:
        key = programme_key(prog_id)
        if key is None:
            return None
        if key not in self._programmes:
            row = self.conn.execute(_PROGRAMME_BY_KEY, {"key": key}).first()
            self._programmes[key] = (
                None
                if row is None
                else _Programme(row.id, row.prog_id, row.pi_user_id, row.period_months, row.group_id)
            )
        return self._programmes[key]

    def _period(self, programme: _Programme | None) -> int:
        return programme.period_months if programme is not None else self.policy.default_period_months

    def _team_roles(self) -> dict[int, tuple[str, str]]:
        """programme id -> (rule, how) for every programme the user is in (R5-R7)."""
        if self._team is None:
            team: dict[int, tuple[str, str]] = {}
            uid = self.user.member_id
            if uid is not None:
                rows = sorted(self.conn.execute(_TEAM_ROLES, {"uid": uid}), key=lambda r: int(r.kind))
                for row in rows:  # by kind: a later kind overrides an earlier one
                    if row.expires_at is not None and row.expires_at <= self.now:
                        continue  # an expired delegation (only delegations expire)
                    team[row.programme_id] = _TEAM_RULES[int(row.kind)]
            self._team = team
        return self._team

    def _delegated_dataset_ids(self) -> set[int]:
        if self._datasets is None:
            ids: set[int] = set()
            uid = self.user.member_id
            if uid is not None:
                for row in self.conn.execute(
                    select(Delegation.dataset_id, Delegation.expires_at).where(
                        Delegation.grantee_user_id == uid,
                        Delegation.dataset_id.is_not(None),
                        Delegation.revoked_at.is_(None),
                    )
                ):
                    if row.expires_at is None or row.expires_at > self.now:
                        ids.add(row.dataset_id)
            self._datasets = ids
        return self._datasets

    def _membership(self, programme: _Programme | None, dataset_id: int | None) -> Decision | None:
        if programme is not None and programme.id in self._team_roles():
            rule, how = self._team_roles()[programme.id]
            return Decision(True, rule, f"{self.user.name} is {how} {programme.prog_id}")
        if dataset_id is not None and dataset_id in self._delegated_dataset_ids():
            return Decision(True, "R7", f"{self.user.name} is a delegate of dataset {dataset_id}")
        return None

    def _before(self) -> Decision | None:
        if not self.user.active:
            return None  # R0: falls through to the public rules
        if self.user.is_staff:
            return Decision(True, "R1", f"{self.user.name} is {self.user.role}")
        return None

    # decisions ------------------------------------------------------------------------------
    def can_see_file(self, file_id: int) -> Decision:
        """May the user see this raw file (its metadata and bytes)?"""
        return self._remembered(("file", file_id), lambda: self._decide_file(file_id))

    def _decide_file(self, file_id: int) -> Decision:
        row = self.conn.execute(
            select(File.id, File.is_calibration, File.mjd_obs, File.prog_id, File.dataset_id).where(
                File.id == file_id
            )
        ).first()
        if row is None:
            raise LookupError(f"no file with id {file_id}")
        if (decided := self._before()) is not None:
            return decided
        granules = self.conn.scalars(
            select(GranuleRow.id)
            .where(GranuleRow.file_id == file_id, GranuleRow.obs_collection.is_not(None))
            .order_by(GranuleRow.id)
        ).all()
        if granules:  # R14: the granule rules decide
            for granule_id in granules:
                decision = self.can_see_granule(granule_id)
                if not decision:
                    return Decision(False, "R14", f"granule {granule_id}: {decision.reason}")
            return Decision(True, "R14", f"all {len(granules)} granule(s) of the file are visible")
        return self._file_base_decision(row)

    def _file_base_decision(self, row: Any) -> Decision:
        """R2, R3, R5-R7 for a files row (id, is_calibration, mjd_obs, prog_id, dataset_id)."""
        if row.is_calibration:
            return Decision(True, "R2", "calibration files are public at once")
        programme = self._programme(row.prog_id)
        public = _raw_public_mjd(row.mjd_obs, self._period(programme))
        if public is not None and public <= self.now_mjd:
            return Decision(True, "R3", f"public since {datetime_of_mjd(public):%Y-%m-%d %H:%M} UTC")
        if (member := self._membership(programme, row.dataset_id)) is not None:
            return member
        return self._deny(public, "raw data")

    def can_see_granule(self, granule_id: int) -> Decision:
        """May the user see this OiDB granule (its metadata and, with R14, its file)?"""
        g = self.conn.execute(select(GranuleRow).where(GranuleRow.id == granule_id)).first()
        if g is None:
            raise LookupError(f"no granule with id {granule_id}")
        if (decided := self._before()) is not None:
            return decided
        if g.obs_collection is None and g.file_id is None:
            return Decision(False, "R9", "an observation log entry outside any collection")
        if g.obs_collection is None:  # R14: visible with its file
            row = self.conn.execute(
                select(File.id, File.is_calibration, File.mjd_obs, File.prog_id, File.dataset_id).where(
                    File.id == g.file_id
                )
            ).first()
            return self._file_base_decision(row)
        c = self.conn.execute(select(OiCollection).where(OiCollection.name == g.obs_collection)).first()
        if c is None:
            return Decision(False, "R9", f"collection {g.obs_collection!r} is not registered")
        rights, release = granule_release(g, c)
        if g.dataproduct_category == CALIBRATOR_CATEGORY and rights != "proprietary":
            return Decision(True, "R11", "calibrator granules are public at once")
        if rights == "public":
            return Decision(True, "R12", f"public data rights ({c.name})")
        if rights == "secure" and release is not None and release_passed(g, c, self.now):
            return Decision(True, "R12", f"embargo of {c.name} ended {release:%Y-%m-%d %H:%M} UTC")
        if (member := self._granule_membership(g, c)) is not None:
            return member
        if release is None:
            return Decision(False, "R9", f"proprietary data rights in {c.name}: never public by the clock")
        return Decision(False, "R9", f"embargoed in {c.name} until {release:%Y-%m-%d %H:%M} UTC")

    def _granule_membership(self, g: Any, c: Any) -> Decision | None:
        """R13: data PI of the collection, team of the granule's programme, or delegate."""
        uid = self.user.member_id
        if uid is None:
            return None
        if c.owner_user_id == uid:
            return Decision(True, "R13", f"{self.user.name} is the data PI of {c.name}")
        programme = self._programme(g.progid)
        if programme is not None and programme.id in self._team_roles():
            _, how = self._team_roles()[programme.id]
            return Decision(True, "R13", f"{self.user.name} is {how} {programme.prog_id}")
        for d in self.conn.execute(
            select(OiDelegation).where(
                OiDelegation.grantee_user_id == uid,
                OiDelegation.collection_id == c.id,
                OiDelegation.revoked_at.is_(None),
            )
        ):
            if d.expires_at is not None and d.expires_at <= self.now:
                continue
            if d.progid is not None and d.progid != programme_key(g.progid):
                continue
            if d.proposal_subid is not None and d.proposal_subid != g.proposal_subid:
                continue
            scope = " / ".join(x for x in (c.name, d.progid, d.proposal_subid) if x)
            return Decision(True, "R13", f"{self.user.name} is a delegate for {scope}")
        return None

    def can_see_dataset(self, dataset_id: int) -> Decision:
        """May the user see this dataset (its description and file list)?"""
        return self._remembered(("dataset", dataset_id), lambda: self._decide_dataset(dataset_id))

    def _dataset_row(self, dataset_id: int) -> Any:
        """(id, prog_id, mjd_start, mjd_end) of a dataset, None when there is none; read once per
        memoising context (a product page asks for its dataset's release and membership)."""
        return self._remembered(
            ("dataset-row", dataset_id),
            lambda: self.conn.execute(_DATASET_ROW, {"dataset_id": dataset_id}).first(),
        )

    def _decide_dataset(self, dataset_id: int) -> Decision:
        row = self._dataset_row(dataset_id)
        if row is None:
            raise LookupError(f"no dataset with id {dataset_id}")
        if (decided := self._before()) is not None:
            return decided
        programme = self._programme(row.prog_id)
        mjd = row.mjd_end if row.mjd_end is not None else row.mjd_start
        public = _raw_public_mjd(mjd, self._period(programme))
        if public is not None and public <= self.now_mjd:
            return Decision(True, "R3", f"public since {datetime_of_mjd(public):%Y-%m-%d %H:%M} UTC")
        if (member := self._membership(programme, row.id)) is not None:
            return member
        return self._deny(public, "dataset")

    def file_public_date(self, file_id: int) -> dt.datetime | None:
        """When the raw file becomes (or became) public by R2/R3; None: never by the clock."""
        row = self.conn.execute(
            select(File.is_calibration, File.mjd_obs, File.prog_id).where(File.id == file_id)
        ).first()
        if row is None:
            raise LookupError(f"no file with id {file_id}")
        if row.is_calibration:
            return datetime_of_mjd(row.mjd_obs) if row.mjd_obs is not None else None
        public = _raw_public_mjd(row.mjd_obs, self._period(self._programme(row.prog_id)))
        return datetime_of_mjd(public) if public is not None else None

    def granule_publication(self, granule_id: int) -> tuple[str | None, dt.datetime | None]:
        """(declared data rights, public date) of a granule, for ObsCore: a collection granule's
        rights (its own, else the collection's) and :func:`granule_public_date`; a granule
        outside collections has no declared rights and is public with its file (R14:
        :meth:`file_public_date`); None: never by the clock."""
        g = self.conn.execute(select(GranuleRow).where(GranuleRow.id == granule_id)).first()
        if g is None:
            raise LookupError(f"no granule with id {granule_id}")
        if g.obs_collection is None:
            return None, (self.file_public_date(g.file_id) if g.file_id is not None else None)
        c = self.conn.execute(select(OiCollection).where(OiCollection.name == g.obs_collection)).first()
        if c is None:  # R9: an unregistered collection
            return None, None
        return g.data_rights or c.data_rights, granule_public_date(g, c)

    def product_public_date(self, product_id: int) -> dt.datetime | None:
        """When the product becomes (or became) public by R4, delay included; None: never."""
        row = self._product_row(product_id)
        public, delay = self._product_release(product_id, row.dataset_id)
        if public is None:
            return None
        base = datetime_of_mjd(public)
        return max(base, delay) if delay is not None else base

    def _product_row(self, product_id: int) -> Any:
        """(id, product_type, dataset_id) of a product; LookupError when there is none.

        A memoising context reads every fact of the product's decision at once
        (:data:`_PRODUCT_FACTS`) and remembers them; the decision then asks no more (the same
        facts as the separate lookups a fresh context makes, compared in the access tests)."""

        def load() -> Any:
            row = self.conn.execute(_PRODUCT_ROW, {"product_id": product_id}).first()
            if row is None:
                raise LookupError(f"no product with id {product_id}")
            return row

        if self._memo is not None and ("product-row", product_id) not in self._memo:
            self._load_product_facts(product_id)
        return self._remembered(("product-row", product_id), load)

    def _load_product_facts(self, product_id: int) -> None:
        """Remember a product's row, release, source flag, dataset row and programme from one
        statement (memoising contexts only)."""
        assert self._memo is not None
        facts = self.conn.execute(_PRODUCT_FACTS, {"product_id": product_id}).first()
        if facts is None:
            raise LookupError(f"no product with id {product_id}")
        self._memo[("product-row", product_id)] = facts
        self._memo[("has-sources", product_id)] = bool(facts.has_sources)
        delay = facts.delayed_until
        if facts.dataset_id is None:
            self._memo[("release", product_id)] = (None, delay)
            return
        if facts.ds_id is None:
            self._memo[("dataset-row", facts.dataset_id)] = None
            self._memo[("release", product_id)] = (None, delay)
            return
        ds = _DatasetRow(facts.ds_id, facts.ds_prog_id, facts.ds_mjd_start, facts.ds_mjd_end)
        self._memo.setdefault(("dataset-row", ds.id), ds)
        key = programme_key(ds.prog_id)
        if key is not None and key not in self._programmes:
            self._programmes[key] = (
                None
                if facts.pg_id is None
                else _Programme(
                    facts.pg_id,
                    facts.pg_prog_id,
                    facts.pg_pi_user_id,
                    facts.pg_period_months,
                    facts.pg_group_id,
                )
            )
        mjd = ds.mjd_end if ds.mjd_end is not None else ds.mjd_start
        period = self._period(self._programme(ds.prog_id))
        public = _product_public_mjd(mjd, period, self.policy.product_embargo_months)
        self._memo[("release", product_id)] = (public, delay)

    def _product_release(
        self, product_id: int, dataset_id: int | None
    ) -> tuple[float | None, dt.datetime | None]:
        """(R4 public MJD without delay or None, the PI's delay or None) of a product."""
        return self._remembered(
            ("release", product_id), lambda: self._load_product_release(product_id, dataset_id)
        )

    def _load_product_release(
        self, product_id: int, dataset_id: int | None
    ) -> tuple[float | None, dt.datetime | None]:
        delay = self.conn.scalar(_RELEASE_DELAY, {"product_id": product_id})
        if dataset_id is None:
            return None, delay
        ds = self._dataset_row(dataset_id)
        if ds is None:
            return None, delay
        mjd = ds.mjd_end if ds.mjd_end is not None else ds.mjd_start
        period = self._period(self._programme(ds.prog_id))
        return _product_public_mjd(mjd, period, self.policy.product_embargo_months), delay

    def can_see_product(self, product_id: int) -> Decision:
        """May the user see this product (its description, previews and files)?"""
        return self._remembered(("product", product_id), lambda: self._decide_product(product_id))

    def _decide_product(self, product_id: int) -> Decision:
        row = self._product_row(product_id)
        if (decided := self._before()) is not None:
            return decided
        if row.product_type in CALIBRATION_PRODUCT_TYPES:
            return Decision(True, "R2", "calibration masters are public at once")
        if (by_sources := self._source_decision(row.id)) is not None:
            return by_sources
        public, delay = self._product_release(row.id, row.dataset_id)
        released = public is not None and public <= self.now_mjd
        if released and (delay is None or delay <= self.now):
            return Decision(True, "R4", f"public since {datetime_of_mjd(public):%Y-%m-%d %H:%M} UTC")
        workspaces = self.conn.execute(
            select(Workspace.is_public, Workspace.owner_user_id, Workspace.name)
            .join(WorkspaceItem, WorkspaceItem.workspace_id == Workspace.id)
            .where(WorkspaceItem.product_id == row.id)
        ).all()
        for ws in workspaces:
            if ws.is_public:
                return Decision(True, "R8", "in the public workspace")
        if row.dataset_id is not None:
            ds = self._dataset_row(row.dataset_id)
            ds_prog = ds.prog_id if ds is not None else None
            if (member := self._membership(self._programme(ds_prog), row.dataset_id)) is not None:
                return member
        uid = self.user.member_id
        for ws in workspaces:
            if uid is not None and ws.owner_user_id == uid:
                return Decision(True, "R8", f"in {self.user.name}'s workspace {ws.name}")
        if released and delay is not None:
            return Decision(False, "R4", f"release delayed by the PI until {delay:%Y-%m-%d}")
        return self._deny(public, "product")

    def _source_decision(self, product_id: int) -> Decision | None:
        """R17 for a product made from catalogued files (None: it has no source files)."""
        if self._memo is not None and self._memo.get(("has-sources", product_id)) is False:
            return None  # read with the product's other facts (_load_product_facts)
        sources = self.conn.scalars(_PRODUCT_SOURCES, {"product_id": product_id}).all()
        if not sources:
            return None
        for file_id in sources:
            decision = self.can_see_file(file_id)
            if not decision:
                public_ws = self.conn.scalar(
                    select(func.count())
                    .select_from(WorkspaceItem)
                    .join(Workspace, Workspace.id == WorkspaceItem.workspace_id)
                    .where(WorkspaceItem.product_id == product_id, Workspace.is_public)
                )
                if public_ws:
                    return Decision(True, "R17", "in the public workspace")
                return Decision(False, "R17", f"made from file {file_id}: {decision.reason}")
        return Decision(True, "R17", f"all {len(sources)} source file(s) are visible")

    def _deny(self, public_mjd: float | None, what: str) -> Decision:
        if public_mjd is None:
            return Decision(False, "R9", f"{what} without observation time or programme: never public")
        return Decision(False, "R9", f"proprietary until {datetime_of_mjd(public_mjd):%Y-%m-%d %H:%M} UTC")

    def can_see(self, obj: Any) -> Decision:
        """Decision for a ``File``, ``Dataset`` or ``Product`` (ORM object) or ``(kind, id)``."""
        if isinstance(obj, tuple):
            kind, number = obj
        elif isinstance(obj, File):
            kind, number = "file", obj.id
        elif isinstance(obj, Dataset):
            kind, number = "dataset", obj.id
        elif isinstance(obj, Product):
            kind, number = "product", obj.id
        elif isinstance(obj, GranuleRow):
            kind, number = "granule", obj.id
        else:
            raise TypeError(f"cannot decide access to {type(obj).__name__}")
        method = {
            "file": self.can_see_file,
            "dataset": self.can_see_dataset,
            "product": self.can_see_product,
            "granule": self.can_see_granule,
        }
        if kind not in method:
            raise ValueError(f"unknown kind of object {kind!r} (file, dataset, product or granule)")
        return method[kind](int(number))

    def can_see_tdb_reduction(self, reduction_id: int) -> Decision:
        """R15: may the user see this Target Data Base reduction (and its detections)?"""
        row = self.conn.execute(
            select(Reduction.product_id, Observation.release_date, Observation.survey)
            .join(Observation, Observation.id == Reduction.observation_id)
            .where(Reduction.id == reduction_id)
        ).first()
        if row is None:
            raise LookupError(f"no TDB reduction with id {reduction_id}")
        if (decided := self._before()) is not None:
            return decided
        if row.product_id is not None:
            product = self.can_see_product(row.product_id)
            if product.allowed and product.rule == "R17" and "source file" in product.reason:
                # as the SQL form (visible_products_clause(by_sources=False)): not by its sources
                return Decision(False, "R15", "its product is visible only through its source files")
            return Decision(product.allowed, "R15", f"with its Level 2 product: {product.reason}")
        if row.release_date is None or row.release_date <= self.now:
            return Decision(True, "R15", "imported, released")
        uid = self.user.member_id
        if uid is not None and row.survey is not None:
            member = self.conn.scalar(
                select(GroupMember.id)
                .join(Group, Group.id == GroupMember.group_id)
                .where(Group.name == row.survey, GroupMember.user_id == uid)
            )
            if member is not None:
                return Decision(True, "R15", f"{self.user.name} is in survey {row.survey}")
        return Decision(False, "R15", f"imported, survey data until {row.release_date:%Y-%m-%d}")

    def can_see_rdi_library(self, library_id: int) -> Decision:
        """R18: may the user see RDI library ``library_id`` (its frames, sources and file)?
        ``LookupError`` when it does not exist."""
        science = self.conn.execute(
            select(RdiLibrary.science_product_id).where(RdiLibrary.id == library_id)
        ).first()
        if science is None:
            raise LookupError(f"no RDI library with id {library_id}")
        if (decided := self._before()) is not None:
            return decided
        sources = set(
            self.conn.scalars(
                select(RdiLibraryFrame.product_id).where(RdiLibraryFrame.library_id == library_id).distinct()
            )
        )
        if science[0] is None or None in sources:
            return Decision(False, "R9", "a product the library was built from no longer exists")
        for product_id in [science[0], *sorted(sources)]:
            try:
                decision = self.can_see_product(product_id)
            except LookupError:
                return Decision(False, "R9", "a product the library was built from no longer exists")
            if not decision:
                return Decision(False, "R18", f"product {product_id} of the library is not visible to you")
        return Decision(True, "R18", "the science product and every reference product are visible to you")

    def can_see_job(self, job_id: int) -> Decision:
        """R10: a job is visible to the account that queued it and to staff."""
        if self.user.is_staff:
            return Decision(True, "R1", f"{self.user.name} is {self.user.role}")
        uid = self.user.member_id
        owner = self.conn.scalar(select(JobOwner.user_id).where(JobOwner.job_id == job_id))
        if uid is not None and owner == uid:
            return Decision(True, "R10", f"{self.user.name} queued job {job_id}")
        return Decision(False, "R10", f"job {job_id} was not queued by {self.user.name}")

    def can_see_batch(self, batch_id: int) -> Decision:
        """R10: a batch is visible to the account that submitted it and to staff."""
        owner = self.conn.execute(select(Batch.owner_user_id).where(Batch.id == batch_id)).first()
        if owner is None:
            raise LookupError(f"no batch with id {batch_id}")
        if self.user.is_staff:
            return Decision(True, "R1", f"{self.user.name} is {self.user.role}")
        uid = self.user.member_id
        if uid is not None and owner[0] == uid:
            return Decision(True, "R10", f"{self.user.name} submitted batch {batch_id}")
        return Decision(False, "R10", f"batch {batch_id} was not submitted by {self.user.name}")

    def can_see_tracebacks(self) -> Decision:
        """R10: the tracebacks of job logs (server paths) are for admins and operators."""
        if self.user.is_staff:
            return Decision(True, "R10", f"{self.user.name} is {self.user.role}")
        return Decision(False, "R10", "tracebacks in job logs are shown to admins and operators only")

    def can_control_batch(self, batch_id: int) -> Decision:
        """A11: cancel or retry the jobs of a batch (its submitter, or staff)."""
        seen = self.can_see_batch(batch_id)
        if not seen:
            return Decision(False, "A11", seen.reason)
        return Decision(True, "A11", seen.reason)

    # actions --------------------------------------------------------------------------------
    def require(self, decision: Decision) -> None:
        """Raise :class:`AccessDenied` unless ``decision`` allows."""
        if not decision:
            raise AccessDenied(f"{self.user.name}: not allowed ({decision.rule}): {decision.reason}")

    def can_manage(self) -> Decision:
        """A1: manage users, groups, programmes, quotas."""
        if self.user.is_admin:
            return Decision(True, "A1", f"{self.user.name} is admin")
        return Decision(False, "A1", "only admins manage accounts, groups and programmes")

    def can_operate(self) -> Decision:
        """A1: operate the data centre's pipeline and store (ingest, associate, queue and run
        reductions, watch a folder, rerun a product, quarantine, fsck): admins, as the shell's
        operator (:func:`local_operator`) is."""
        if self.user.is_admin:
            return Decision(True, "A1", f"{self.user.name} is admin")
        return Decision(False, "A1", "only admins operate the data centre's pipeline and store")

    def can_monitor(self) -> Decision:
        """R1: the monitoring pages (every night's conditions and quality problems, whoever's data)
        are the data-centre team's (admins and operators)."""
        if self.user.is_staff:
            return Decision(True, "R1", f"{self.user.name} is {self.user.role}")
        return Decision(False, "R1", "only admins and operators (the data-centre team) see monitoring")

    def _pi_of(self, programme_id: int | None) -> bool:
        uid = self.user.member_id
        if uid is None or programme_id is None:
            return False
        return self.conn.scalar(select(Programme.pi_user_id).where(Programme.id == programme_id)) == uid

    def _programme_of_dataset(self, dataset_id: int) -> _Programme | None:
        ds = self._dataset_row(dataset_id)
        return self._programme(ds.prog_id) if ds is not None else None

    def _programme_id_of_dataset(self, dataset_id: int) -> int | None:
        programme = self._programme_of_dataset(dataset_id)
        return programme.id if programme is not None else None

    def _pi_of_dataset(self, dataset_id: int) -> bool:
        """Is the user the PI of the dataset's programme (the context's programme row, no query
        more)?"""
        uid = self.user.member_id
        programme = self._programme_of_dataset(dataset_id)
        return uid is not None and programme is not None and programme.pi_user_id == uid

    def can_delegate(self, programme_id: int | None = None, dataset_id: int | None = None) -> Decision:
        """A2: grant a programme or one of its datasets to someone."""
        if self.user.is_admin:
            return Decision(True, "A2", f"{self.user.name} is admin")
        pid = programme_id if programme_id is not None else self._programme_id_of_dataset(dataset_id or -1)
        if self._pi_of(pid):
            return Decision(True, "A2", f"{self.user.name} is the PI")
        return Decision(False, "A2", "only the programme's PI or an admin delegates it")

    def release_window(self, product_id: int) -> tuple[dt.datetime, dt.datetime]:
        """A3: (scheduled public date without delay, latest date a delay may reach)."""
        row = self._product_row(product_id)
        public, _ = self._product_release(product_id, row.dataset_id)
        if public is None:
            raise AccessDenied(
                f"product {product_id} has no dated raw data: it is never public, nothing to delay"
            )
        base = datetime_of_mjd(public)
        return base, base + dt.timedelta(days=self.policy.max_delay_months * MONTH_DAYS)

    def can_delay_release(self, product_id: int, until: dt.datetime) -> Decision:
        """A3: may the user delay this product's release until ``until``?"""
        dataset_id = self._product_row(product_id).dataset_id
        allowed = self.user.is_admin or (dataset_id is not None and self._pi_of_dataset(dataset_id))
        if not allowed:
            return Decision(False, "A3", "only the PI of the product's programme (or an admin) delays it")
        base, latest = self.release_window(product_id)
        until = utc_naive(until)
        if until > latest:
            return Decision(
                False,
                "A3",
                f"a delay may reach at most {latest:%Y-%m-%d} ({self.policy.max_delay_months} months after "
                f"the scheduled public date {base:%Y-%m-%d})",
            )
        return Decision(True, "A3", f"scheduled {base:%Y-%m-%d}, delay allowed up to {latest:%Y-%m-%d}")

    def can_review(self) -> Decision:
        """A4: validate or flag products."""
        if self.user.is_staff:
            return Decision(True, "A4", f"{self.user.name} is {self.user.role}")
        return Decision(False, "A4", "only admins and operators validate or flag products")

    def can_delegate_collection(self, collection_id: int) -> Decision:
        """A9: grant a collection (or a programme / sub-programme of it) to a delegate."""
        if self.user.is_admin:
            return Decision(True, "A9", f"{self.user.name} is admin")
        owner = self.conn.scalar(select(OiCollection.owner_user_id).where(OiCollection.id == collection_id))
        if self.user.member_id is not None and owner == self.user.member_id:
            return Decision(True, "A9", f"{self.user.name} is the collection's data PI")
        return Decision(False, "A9", "only the collection's data PI or an admin delegates it")

    def can_validate_file(self, file_id: int) -> Decision:
        """A10: set the quality flag of an OIFITS file, or publish it as Level 3."""
        if self.user.is_staff:
            return Decision(True, "A10", f"{self.user.name} is {self.user.role}")
        granules = self.conn.execute(
            select(GranuleRow).where(GranuleRow.file_id == file_id).order_by(GranuleRow.id)
        ).all()
        if not granules:
            return Decision(False, "A10", f"file {file_id} has no OIFITS granule")
        for g in granules:
            c = None
            if g.obs_collection is not None:
                c = self.conn.execute(
                    select(OiCollection).where(OiCollection.name == g.obs_collection)
                ).first()
            if c is None or self._granule_membership(g, c) is None:
                return Decision(
                    False, "A10", f"{self.user.name} is not data PI, team or delegate of granule {g.id}"
                )
        return Decision(True, "A10", f"{self.user.name} is data PI, team or delegate of every granule")

    def can_submit_job(self, dataset_id: int | None = None, count: int = 1) -> Decision:
        """A6: may the user queue a reduction now (of ``dataset_id`` if given)? ``count``: the
        number of jobs queued together (a batch, A11), each taking a place of the quota."""
        if self.user.is_staff:
            return Decision(True, "A6", f"{self.user.name} is {self.user.role}: no quota")
        uid = self.user.member_id
        if uid is None:
            return Decision(False, "A6", "anonymous and public accounts cannot queue reductions")
        if dataset_id is not None and not self.can_see_dataset(dataset_id):
            return Decision(False, "A6", f"{self.user.name} may not see dataset {dataset_id}")
        quota = self.conn.execute(select(Quota).where(Quota.user_id == uid)).first()
        if quota is not None:
            max_jobs, start, end = quota.max_concurrent_jobs, quota.access_from, quota.access_until
        else:
            created = self.conn.scalar(select(User.created_at).where(User.id == uid))
            max_jobs, start = self.policy.quota_max_jobs, None
            end = (
                created + dt.timedelta(days=self.policy.quota_window_days)
                if self.policy.quota_window_days and created is not None
                else None
            )
        if start is not None and self.now < start:
            return Decision(False, "A6", f"access window opens {start:%Y-%m-%d %H:%M} UTC")
        if end is not None and self.now >= end:
            return Decision(False, "A6", f"access window closed {end:%Y-%m-%d %H:%M} UTC")
        running = self.conn.scalar(
            select(func.count())
            .select_from(JobOwner)
            .join(Job, Job.id == JobOwner.job_id)
            .where(JobOwner.user_id == uid, Job.state.in_(("queued", "running")))
        )
        if running + count > max_jobs:
            asked = f", {count} more asked" if count > 1 else ""
            return Decision(False, "A6", f"{running} job(s) queued or running{asked}, quota {max_jobs}")
        return Decision(True, "A6", f"{running} of {max_jobs} concurrent job(s) in use")

    def can_manage_tokens_of(self, owner_id: int) -> Decision:
        """A7: create or revoke the API tokens of account ``owner_id``."""
        if self.user.is_admin:
            return Decision(True, "A7", f"{self.user.name} is admin")
        if self.user.member_id is not None and self.user.member_id == owner_id:
            return Decision(True, "A7", "own tokens")
        return Decision(False, "A7", "users manage only their own tokens")

    def can_place_in_workspace(self, workspace_id: int, product_id: int) -> Decision:
        """A8: put a product in a workspace."""
        ws = self.conn.execute(select(Workspace).where(Workspace.id == workspace_id)).first()
        if ws is None:
            raise LookupError(f"no workspace with id {workspace_id}")
        if ws.is_public:
            if self.user.is_admin:
                return Decision(True, "A8", f"{self.user.name} is admin")
            return Decision(False, "A8", "only admins publish into the public workspace")
        if self.user.is_admin or (
            self.user.member_id is not None and ws.owner_user_id == self.user.member_id
        ):
            if not self.user.is_admin and not self.can_see_product(product_id):
                return Decision(False, "A8", f"{self.user.name} may not see product {product_id}")
            return Decision(True, "A8", "own workspace")
        return Decision(False, "A8", "users place products only in their own workspace")


def can_see(
    conn: Connection,
    user: Principal,
    obj: Any,
    now: dt.datetime | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Decision:
    """One-off per-object decision (see :meth:`AccessContext.can_see`)."""
    return AccessContext(conn, user, now, policy).can_see(obj)


def visible_surveys_clause(user: Principal, group_id_column) -> ColumnElement[bool]:  # noqa: ANN001 - a column
    """R16 (with R0/R1) in SQL: survey tracking is visible to admins and operators and to the
    active members of the survey's group, to no one else. ``group_id_column``: the survey's
    ``group_id`` (any column holding a group id)."""
    if user.is_staff:
        return true()  # R1
    uid = user.member_id
    if uid is None:
        return false()  # R0 / the public account
    return group_id_column.in_(select(GroupMember.group_id).where(GroupMember.user_id == uid))  # R16


def can_see_survey(conn: Connection, user: Principal, group_id: int) -> Decision:
    """R16 per object: the same decision as :func:`visible_surveys_clause` for one survey
    (given by its group's id)."""
    if user.is_staff:
        return Decision(True, "R1", f"{user.role} sees every survey")
    uid = user.member_id
    if uid is None:
        return Decision(False, "R16", "survey tracking is visible to the survey's group only (anonymous)")
    member = select(GroupMember.id).where(GroupMember.group_id == group_id, GroupMember.user_id == uid)
    if conn.scalar(member):
        return Decision(True, "R16", f"{user.name} is a member of the survey's group")
    return Decision(False, "R16", "survey tracking is visible to the survey's group only")


__all__ = [
    "ANONYMOUS",
    "CALIBRATION_PRODUCT_TYPES",
    "CALIBRATOR_CATEGORY",
    "DEFAULT_POLICY",
    "MONTH_DAYS",
    "RULES",
    "RULES_VERSION",
    "AccessContext",
    "AccessDenied",
    "Decision",
    "Policy",
    "Principal",
    "Rule",
    "can_see",
    "can_see_survey",
    "datetime_of_mjd",
    "granule_public_date",
    "granule_release",
    "level3_inputs_clause",
    "visible_tdb_candidates_clause",
    "visible_tdb_detections_clause",
    "visible_tdb_observations_clause",
    "visible_tdb_reductions_clause",
    "load_principal",
    "local_operator",
    "mjd_of",
    "principal_of",
    "programme_key",
    "programme_key_sql",
    "release_passed",
    "visible_datasets_clause",
    "visible_files_clause",
    "visible_granules_clause",
    "visible_batches_clause",
    "visible_jobs_clause",
    "visible_products_clause",
    "products_visibility_filter",
    "VisibilityFilter",
    "visible_sources_clause",
    "visible_surveys_clause",
]
