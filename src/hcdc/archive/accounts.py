"""Accounts and rights: the operations that change them, authentication, and the audit log.

Every function takes the acting :class:`~hcdc.archive.access.Principal` (``actor``), asks
:mod:`hcdc.archive.access` whether the action is allowed (rules ``A*``), makes the change and
writes an :class:`~hcdc.archive.access_models.AuditEntry`, all on the caller's connection so
that the change and its audit entry commit together (one transaction per action: use
``engine.begin()``).

Passwords are hashed with argon2id (``argon2-cffi``'s defaults, RFC 9106 low-memory profile);
API tokens are 256-bit random secrets (``hcdc_<prefix>_<secret>``) of which only the SHA-256 is
stored: a token is looked up by its hash, so checking one costs a single indexed query.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from hcdc.archive.access import (
    DEFAULT_POLICY,
    AccessContext,
    AccessDenied,
    Decision,
    Policy,
    Principal,
    principal_of,
    programme_key,
    utc_naive,
)
from hcdc.archive.access_models import (
    ROLES,
    ApiToken,
    AuditEntry,
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
from hcdc.archive.models import Dataset, utcnow
from hcdc.archive.obscore import refresh_release_dates
from hcdc.archive.pipeline_models import Product

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
PROG_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/+-]{0,63}$")
TOKEN_PREFIX = "hcdc"
MIN_PASSWORD_LENGTH = 8

_hasher = PasswordHasher()  # argon2id


class AccountError(ValueError):
    """An account operation cannot proceed (bad name, unknown user, duplicate, ...)."""


# --------------------------------------------------------------------------------------------
# audit


def audit(
    conn: Connection,
    actor: Principal,
    action: str,
    object_type: str | None = None,
    object_id: object = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Write one audit-log entry (in the caller's transaction)."""
    conn.execute(
        insert(AuditEntry).values(
            at=utcnow(),
            actor=actor.name,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            details=details or {},
        )
    )


def list_audit(conn: Connection, limit: int | None = 100, action: str | None = None) -> list[dict[str, Any]]:
    """Audit entries, newest first."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if action:
        query = query.where(AuditEntry.action.startswith(action, autoescape=True))
    if limit is not None:
        query = query.limit(limit)
    return [
        {
            "id": r.id,
            "at": r.at,
            "actor": r.actor,
            "action": r.action,
            "object": f"{r.object_type}:{r.object_id}" if r.object_type else None,
            "details": r.details,
        }
        for r in conn.execute(query)
    ]


def _require(ctx: AccessContext, decision: Decision) -> None:
    ctx.require(decision)


# --------------------------------------------------------------------------------------------
# users and passwords


def hash_password(password: str) -> str:
    """argon2id hash (PHC string) of ``password``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password too short: at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def _check_name(name: str, what: str = "user name") -> str:
    if not NAME_PATTERN.match(name):
        raise AccountError(
            f"invalid {what} {name!r}: 1-64 characters, letters, digits, '.', '_', '@', '-', "
            "starting with a letter or digit"
        )
    return name


def user_row(conn: Connection, name: str) -> Any:
    """The ``users`` row called ``name`` (AccountError when none)."""
    row = conn.execute(select(User).where(User.name == name)).first()
    if row is None:
        raise AccountError(f"no user called {name!r} (see 'hcdc user list')")
    return row


def add_user(
    conn: Connection,
    actor: Principal,
    name: str,
    role: str = "user",
    password: str | None = None,
    full_name: str | None = None,
    email: str | None = None,
) -> int:
    """Create an account and its private workspace (``workspaces/<name>``); returns its id (A1)."""
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_manage())
    _check_name(name)
    if role not in ROLES:
        raise AccountError(f"invalid role {role!r}: one of {', '.join(ROLES)}")
    if conn.scalar(select(User.id).where(User.name == name)) is not None:
        raise AccountError(f"user {name!r} exists already")
    if conn.scalar(select(Workspace.id).where(Workspace.name == name)) is not None:
        raise AccountError(f"a workspace called {name!r} exists already: choose another user name")
    user_id = conn.execute(
        insert(User)
        .values(
            name=name,
            role=role,
            full_name=full_name,
            email=email,
            password_hash=hash_password(password) if password is not None else None,
            is_active=True,
            created_at=utcnow(),
        )
        .returning(User.id)
    ).scalar_one()
    if role != "public":
        conn.execute(
            insert(Workspace).values(
                name=name,
                owner_user_id=user_id,
                is_public=False,
                path=f"workspaces/{name}",
                created_at=utcnow(),
            )
        )
    audit(conn, actor, "user.add", "user", name, {"role": role, "password": password is not None})
    return user_id


def set_password(conn: Connection, actor: Principal, name: str, password: str) -> None:
    """Set a user's password (admins for anyone, users for themselves)."""
    row = user_row(conn, name)
    if not (actor.is_admin or (actor.member_id is not None and actor.member_id == row.id)):
        raise AccessDenied(f"{actor.name}: not allowed (A1): only admins set other users' passwords")
    conn.execute(update(User).where(User.id == row.id).values(password_hash=hash_password(password)))
    audit(conn, actor, "user.password", "user", name)


def set_role(conn: Connection, actor: Principal, name: str, role: str) -> None:
    """Change a user's role (A1)."""
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_manage())
    if role not in ROLES:
        raise AccountError(f"invalid role {role!r}: one of {', '.join(ROLES)}")
    row = user_row(conn, name)
    conn.execute(update(User).where(User.id == row.id).values(role=role))
    audit(conn, actor, "user.role", "user", name, {"from": row.role, "to": role})


def set_active(conn: Connection, actor: Principal, name: str, active: bool) -> None:
    """Disable (sees public data only, cannot log in) or re-enable an account (A1)."""
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_manage())
    row = user_row(conn, name)
    conn.execute(update(User).where(User.id == row.id).values(is_active=active))
    audit(conn, actor, "user.enable" if active else "user.disable", "user", name)


def list_users(conn: Connection) -> list[dict[str, Any]]:
    """Every account with its groups, programmes (as PI / co-I) and own quota (None: default)."""
    groups: dict[int, list[str]] = {}
    for r in conn.execute(
        select(GroupMember.user_id, Group.name).join(Group, Group.id == GroupMember.group_id)
    ):
        groups.setdefault(r.user_id, []).append(r.name)
    pis: dict[int, list[str]] = {}
    for r in conn.execute(
        select(Programme.pi_user_id, Programme.prog_id).where(Programme.pi_user_id.is_not(None))
    ):
        pis.setdefault(r.pi_user_id, []).append(r.prog_id)
    cois: dict[int, list[str]] = {}
    for r in conn.execute(
        select(ProgrammeMember.user_id, Programme.prog_id).join(
            Programme, Programme.id == ProgrammeMember.programme_id
        )
    ):
        cois.setdefault(r.user_id, []).append(r.prog_id)
    tokens = dict(
        conn.execute(
            select(ApiToken.user_id, func.count())
            .where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > utcnow())
            .group_by(ApiToken.user_id)
        ).all()
    )
    quotas = {
        q.user_id: {
            "max_jobs": q.max_concurrent_jobs,
            "access_from": q.access_from,
            "access_until": q.access_until,
        }
        for q in conn.execute(select(Quota))
    }
    return [
        {
            "id": u.id,
            "name": u.name,
            "role": u.role,
            "active": u.is_active,
            "quota": quotas.get(u.id),  # None: the configured default (A6)
            "password": u.password_hash is not None,
            "full_name": u.full_name,
            "email": u.email,
            "groups": sorted(groups.get(u.id, [])),
            "pi_of": sorted(pis.get(u.id, [])),
            "coi_of": sorted(cois.get(u.id, [])),
            "tokens": tokens.get(u.id, 0),
            "created_at": u.created_at,
            "last_login_at": u.last_login_at,
        }
        for u in conn.execute(select(User).order_by(User.name))
    ]


def authenticate_password(
    conn: Connection, name: str, password: str, now: dt.datetime | None = None
) -> Principal | None:
    """The principal whose name and password match (None otherwise, or if disabled).

    A hash made with older argon2 parameters is upgraded on success.
    """
    row = conn.execute(select(User).where(User.name == name)).first()
    if row is None or row.password_hash is None or not row.is_active:
        # same cost as a real check, so that timing does not reveal which names exist
        _hasher.hash(password or "x")
        return None
    try:
        _hasher.verify(row.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    values: dict[str, Any] = {"last_login_at": utc_naive(now) if now else utcnow()}
    if _hasher.check_needs_rehash(row.password_hash):
        values["password_hash"] = _hasher.hash(password)
    conn.execute(update(User).where(User.id == row.id).values(**values))
    return principal_of(row)


# --------------------------------------------------------------------------------------------
# API tokens


def _token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    """A freshly made token: ``secret`` is shown once and never stored."""

    id: int
    prefix: str
    secret: str
    expires_at: dt.datetime


def create_token(
    conn: Connection,
    actor: Principal,
    name: str,
    label: str | None = None,
    days: int | None = None,
    policy: Policy = DEFAULT_POLICY,
    now: dt.datetime | None = None,
) -> NewToken:
    """A new personal API token for user ``name`` (A7), valid ``days`` (default: policy)."""
    row = user_row(conn, name)
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_manage_tokens_of(row.id))
    if row.role == "public" or not row.is_active:
        raise AccountError(f"user {name!r} is {'public' if row.role == 'public' else 'disabled'}: no tokens")
    lifetime = policy.token_days if days is None else days
    if lifetime < 1:
        raise AccountError(f"token lifetime must be at least 1 day, got {lifetime}")
    now = utc_naive(now) if now else utcnow()
    prefix = secrets.token_hex(4)
    secret = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    expires = now + dt.timedelta(days=lifetime)
    token_id = conn.execute(
        insert(ApiToken)
        .values(
            user_id=row.id,
            name=label,
            prefix=prefix,
            token_hash=_token_hash(secret),
            created_at=now,
            expires_at=expires,
        )
        .returning(ApiToken.id)
    ).scalar_one()
    audit(conn, actor, "token.create", "user", name, {"token": prefix, "expires_at": expires.isoformat()})
    return NewToken(token_id, prefix, secret, expires)


def list_tokens(
    conn: Connection, name: str | None = None, now: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """API tokens (never their secrets), of one user or of all; ``state`` as of ``now`` (naive
    UTC, default: the clock), the moment :func:`authenticate_token` is asked about."""
    query = select(ApiToken, User.name.label("user")).join(User, User.id == ApiToken.user_id)
    if name:
        query = query.where(User.name == name)
    now = utc_naive(now) if now else utcnow()
    out = []
    for r in conn.execute(query.order_by(ApiToken.id)):
        state = "revoked" if r.revoked_at else ("expired" if r.expires_at <= now else "active")
        out.append(
            {
                "id": r.id,
                "user": r.user,
                "prefix": r.prefix,
                "name": r.name,
                "state": state,
                "created_at": r.created_at,
                "expires_at": r.expires_at,
                "last_used_at": r.last_used_at,
            }
        )
    return out


def revoke_token(conn: Connection, actor: Principal, token: str) -> int:
    """Revoke a token given by its prefix, its id or the whole secret; returns its id (A7)."""
    query = select(ApiToken)
    if token.startswith(f"{TOKEN_PREFIX}_"):
        query = query.where(ApiToken.token_hash == _token_hash(token))
    elif token.isdigit():
        query = query.where(ApiToken.id == int(token))
    else:
        query = query.where(ApiToken.prefix == token)
    rows = conn.execute(query).all()
    if not rows:
        raise AccountError(f"no API token {token!r} (see 'hcdc user tokens')")
    if len(rows) > 1:
        raise AccountError(f"{token!r} names {len(rows)} tokens: give the token id")
    row = rows[0]
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_manage_tokens_of(row.user_id))
    if row.revoked_at is None:
        conn.execute(update(ApiToken).where(ApiToken.id == row.id).values(revoked_at=utcnow()))
    owner = conn.scalar(select(User.name).where(User.id == row.user_id))
    audit(conn, actor, "token.revoke", "user", owner, {"token": row.prefix})
    return row.id


#: ``api_tokens.last_used_at`` is written at most once per this interval per token
TOKEN_LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def authenticate_token(conn: Connection, secret: str, now: dt.datetime | None = None) -> Principal | None:
    """The principal of an active (not revoked, not expired) token of an active user, else None."""
    return authenticate_token_use(conn, secret, now)[0]


#: a token and its user by the token's hash (built once: every API request asks)
_TOKEN_BY_HASH = (
    select(
        ApiToken.id.label("token_id"),
        ApiToken.expires_at,
        ApiToken.revoked_at,
        ApiToken.last_used_at,
        User.id,
        User.name,
        User.role,
        User.is_active,
    )
    .join(User, User.id == ApiToken.user_id)
    .where(ApiToken.token_hash == bindparam("token_hash"))
)


def authenticate_token_use(
    conn: Connection, secret: str, now: dt.datetime | None = None
) -> tuple[Principal | None, bool]:
    """:func:`authenticate_token`, and whether the token's ``last_used_at`` was written on
    ``conn`` (at most once a minute per token): only then has the caller a write to commit."""
    now = utc_naive(now) if now else utcnow()
    row = conn.execute(_TOKEN_BY_HASH, {"token_hash": _token_hash(secret)}).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now or not row.is_active:
        return None, False
    last = row.last_used_at
    if last is None or not last <= now < last + TOKEN_LAST_USED_RESOLUTION:
        # to the minute: a busy client does not write (and lock) the token's row on every call
        conn.execute(update(ApiToken).where(ApiToken.id == row.token_id).values(last_used_at=now))
        return principal_of(row), True
    return principal_of(row), False


# --------------------------------------------------------------------------------------------
# groups


def _group_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(Group).where(Group.name == name)).first()
    if row is None:
        raise AccountError(f"no group called {name!r} (see 'hcdc group list')")
    return row


def add_group(conn: Connection, actor: Principal, name: str, description: str | None = None) -> int:
    """Create a survey group (A1)."""
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_manage())
    _check_name(name, "group name")
    if conn.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise AccountError(f"group {name!r} exists already")
    group_id = conn.execute(
        insert(Group).values(name=name, description=description, created_at=utcnow()).returning(Group.id)
    ).scalar_one()
    audit(conn, actor, "group.add", "group", name, {"description": description})
    return group_id


def set_group_members(
    conn: Connection, actor: Principal, group: str, add: Iterable[str] = (), remove: Iterable[str] = ()
) -> list[str]:
    """Add and remove members of a group (A1); returns the members after the change."""
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_manage())
    g = _group_row(conn, group)
    added, removed = [], []
    for name in add:
        uid = user_row(conn, name).id
        exists = conn.scalar(
            select(GroupMember.id).where(GroupMember.group_id == g.id, GroupMember.user_id == uid)
        )
        if exists is None:
            conn.execute(insert(GroupMember).values(group_id=g.id, user_id=uid))
            added.append(name)
    for name in remove:
        uid = user_row(conn, name).id
        conn.execute(delete(GroupMember).where(GroupMember.group_id == g.id, GroupMember.user_id == uid))
        removed.append(name)
    audit(conn, actor, "group.members", "group", group, {"added": added, "removed": removed})
    return group_members(conn, group)


def group_members(conn: Connection, group: str) -> list[str]:
    g = _group_row(conn, group)
    return list(
        conn.scalars(
            select(User.name)
            .join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_id == g.id)
            .order_by(User.name)
        )
    )


def list_groups(conn: Connection) -> list[dict[str, Any]]:
    out = []
    for g in conn.execute(select(Group).order_by(Group.name)):
        programmes = list(conn.scalars(select(Programme.prog_id).where(Programme.group_id == g.id)))
        out.append(
            {
                "id": g.id,
                "name": g.name,
                "description": g.description,
                "members": group_members(conn, g.name),
                "programmes": sorted(programmes),
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# programmes


def normalize_prog_id(prog_id: str) -> str:
    """A programme id without its ESO run letter (``0104.C-0007(B)`` -> ``0104.C-0007``)."""
    key = programme_key(prog_id.strip()) or ""
    if not PROG_ID_PATTERN.match(key):
        raise AccountError(f"invalid programme id {prog_id!r}")
    return key


@dataclass
class ProgrammeSpec:
    """What an admin says about a programme (from the CLI or one CSV line)."""

    prog_id: str
    pi: str | None = None
    cois: tuple[str, ...] = ()
    period_months: int | None = None  # None: keep (update) or default 12 (create)
    title: str | None = None
    group: str | None = None


def _programme_row(conn: Connection, prog_id: str) -> Any:
    key = normalize_prog_id(prog_id)
    row = conn.execute(select(Programme).where(Programme.prog_id == key)).first()
    if row is None:
        raise AccountError(f"no programme {key!r} (see 'hcdc programme list')")
    return row


def save_programme(conn: Connection, actor: Principal, spec: ProgrammeSpec, replace: bool = False) -> int:
    """Create a programme, or update it when ``replace`` (A1); co-Is are replaced as a whole."""
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_manage())
    key = normalize_prog_id(spec.prog_id)
    if spec.period_months is not None and spec.period_months < 0:
        raise AccountError(
            f"programme {key}: proprietary period must be >= 0 months, got {spec.period_months}"
        )
    pi_id = user_row(conn, spec.pi).id if spec.pi else None
    coi_ids = [user_row(conn, name).id for name in dict.fromkeys(spec.cois)]
    group_id = _group_row(conn, spec.group).id if spec.group else None
    existing = conn.execute(select(Programme).where(Programme.prog_id == key)).first()
    if existing is not None and not replace:
        raise AccountError(
            f"programme {key} exists already (use 'hcdc programme set' or import to change it)"
        )
    values: dict[str, Any] = {"pi_user_id": pi_id, "group_id": group_id}
    if spec.title is not None:
        values["title"] = spec.title
    if existing is None:
        values.update(prog_id=key, period_months=12 if spec.period_months is None else spec.period_months)
        values["created_at"] = utcnow()
        programme_id = conn.execute(insert(Programme).values(**values).returning(Programme.id)).scalar_one()
    else:
        if spec.period_months is not None:
            values["period_months"] = spec.period_months
        programme_id = existing.id
        conn.execute(update(Programme).where(Programme.id == programme_id).values(**values))
        if spec.period_months is not None and spec.period_months != existing.period_months:
            # a new proprietary period moves the release of the programme's files and products
            refresh_release_dates(conn, prog_id=key)
        conn.execute(delete(ProgrammeMember).where(ProgrammeMember.programme_id == programme_id))
    for uid in coi_ids:
        if uid != pi_id:
            conn.execute(insert(ProgrammeMember).values(programme_id=programme_id, user_id=uid))
    audit(
        conn,
        actor,
        "programme.add" if existing is None else "programme.update",
        "programme",
        key,
        {"pi": spec.pi, "cois": list(spec.cois), "period_months": spec.period_months, "group": spec.group},
    )
    return programme_id


CSV_COLUMNS = ("prog_id", "pi", "cois", "period_months", "title", "group")


def read_programme_csv(path: Path) -> list[ProgrammeSpec]:
    """Programmes from a CSV file with a header line (columns: :data:`CSV_COLUMNS`; only
    ``prog_id`` and ``pi`` required; ``cois`` separated by ``;`` or spaces)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise AccountError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_programme_csv(text, str(path))


def parse_programme_csv(text: str, path: str) -> list[ProgrammeSpec]:
    """Programmes from the text of a CSV file (see :func:`read_programme_csv`); ``path`` names
    the file in error messages (an uploaded file's name, from the portal)."""
    text = text.removeprefix("\ufeff")
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = {"prog_id", "pi"} - set(header)
    if missing:
        raise AccountError(
            f"{path}: missing column(s) {', '.join(sorted(missing))} (header: {', '.join(header)})"
        )
    unknown = set(header) - set(CSV_COLUMNS)
    if unknown:
        raise AccountError(
            f"{path}: unknown column(s) {', '.join(sorted(unknown))}; known: {', '.join(CSV_COLUMNS)}"
        )
    specs = []
    for line_no, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        if not row.get("prog_id") or not row.get("pi"):
            raise AccountError(f"{path}, line {line_no}: prog_id and pi are required")
        period = row.get("period_months") or None
        try:
            period_months = int(period) if period is not None else None
        except ValueError:
            raise AccountError(
                f"{path}, line {line_no}: period_months must be an integer, got {period!r}"
            ) from None
        specs.append(
            ProgrammeSpec(
                prog_id=row["prog_id"],
                pi=row["pi"],
                cois=tuple(c for c in re.split(r"[;\s]+", row.get("cois", "")) if c),
                period_months=period_months,
                title=row.get("title") or None,
                group=row.get("group") or None,
            )
        )
    return specs


def import_programmes(conn: Connection, actor: Principal, path: Path) -> list[str]:
    """Create or update every programme of a CSV file (all or nothing: one transaction)."""
    return import_programme_specs(conn, actor, read_programme_csv(path), str(path))


def import_programme_specs(
    conn: Connection, actor: Principal, specs: list[ProgrammeSpec], path: str
) -> list[str]:
    """Create or update the programmes read from the CSV file ``path`` (A1, audited)."""
    done = []
    for number, spec in enumerate(specs, start=1):
        try:
            save_programme(conn, actor, spec, replace=True)
        except AccountError as exc:
            raise AccountError(f"{path}, programme {number} ({spec.prog_id}): {exc}") from exc
        done.append(normalize_prog_id(spec.prog_id))
    audit(conn, actor, "programme.import", "file", path, {"programmes": done})
    return done


def list_programmes(conn: Connection) -> list[dict[str, Any]]:
    users = dict(conn.execute(select(User.id, User.name)).all())
    groups = dict(conn.execute(select(Group.id, Group.name)).all())
    cois: dict[int, list[str]] = {}
    for r in conn.execute(select(ProgrammeMember.programme_id, ProgrammeMember.user_id)):
        cois.setdefault(r.programme_id, []).append(users[r.user_id])
    return [
        {
            "id": p.id,
            "prog_id": p.prog_id,
            "title": p.title,
            "pi": users.get(p.pi_user_id),
            "cois": sorted(cois.get(p.id, [])),
            "period_months": p.period_months,
            "group": groups.get(p.group_id),
        }
        for p in conn.execute(select(Programme).order_by(Programme.prog_id))
    ]


# --------------------------------------------------------------------------------------------
# delegations


def delegate(
    conn: Connection,
    actor: Principal,
    grantee: str,
    prog_id: str | None = None,
    dataset_id: int | None = None,
    expires_at: dt.datetime | None = None,
    reason: str | None = None,
) -> int:
    """Grant ``grantee`` one programme or one dataset (A2); returns the delegation id."""
    if (prog_id is None) == (dataset_id is None):
        raise AccountError("delegate either a programme or a dataset (exactly one)")
    target = user_row(conn, grantee)
    if target.role == "public":
        raise AccountError("the public account cannot receive delegations (that would publish the data)")
    programme_id = _programme_row(conn, prog_id).id if prog_id is not None else None
    if dataset_id is not None and conn.scalar(select(Dataset.id).where(Dataset.id == dataset_id)) is None:
        raise AccountError(f"no dataset with id {dataset_id}")
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_delegate(programme_id=programme_id, dataset_id=dataset_id))
    delegation_id = conn.execute(
        insert(Delegation)
        .values(
            grantee_user_id=target.id,
            programme_id=programme_id,
            dataset_id=dataset_id,
            granted_by=actor.name,
            reason=reason,
            created_at=utcnow(),
            expires_at=utc_naive(expires_at) if expires_at else None,
        )
        .returning(Delegation.id)
    ).scalar_one()
    what = f"programme {normalize_prog_id(prog_id)}" if prog_id else f"dataset {dataset_id}"
    audit(
        conn,
        actor,
        "delegation.grant",
        "delegation",
        delegation_id,
        {
            "to": grantee,
            "what": what,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "reason": reason,
        },
    )
    return delegation_id


def revoke_delegation(conn: Connection, actor: Principal, delegation_id: int) -> None:
    """Revoke a delegation (A2: the programme's PI or an admin)."""
    row = conn.execute(select(Delegation).where(Delegation.id == delegation_id)).first()
    if row is None:
        raise AccountError(f"no delegation with id {delegation_id} (see 'hcdc delegate list')")
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_delegate(programme_id=row.programme_id, dataset_id=row.dataset_id))
    if row.revoked_at is None:
        conn.execute(update(Delegation).where(Delegation.id == delegation_id).values(revoked_at=utcnow()))
    audit(conn, actor, "delegation.revoke", "delegation", delegation_id)


def list_delegations(conn: Connection) -> list[dict[str, Any]]:
    users = dict(conn.execute(select(User.id, User.name)).all())
    programmes = dict(conn.execute(select(Programme.id, Programme.prog_id)).all())
    now = utcnow()
    out = []
    for d in conn.execute(select(Delegation).order_by(Delegation.id)):
        state = (
            "revoked" if d.revoked_at else ("expired" if d.expires_at and d.expires_at <= now else "active")
        )
        out.append(
            {
                "id": d.id,
                "to": users.get(d.grantee_user_id),
                "programme": programmes.get(d.programme_id),
                "dataset_id": d.dataset_id,
                "granted_by": d.granted_by,
                "reason": d.reason,
                "state": state,
                "created_at": d.created_at,
                "expires_at": d.expires_at,
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# products: release delays and validation


def _product_exists(conn: Connection, product_id: int) -> None:
    if conn.scalar(select(Product.id).where(Product.id == product_id)) is None:
        raise AccountError(f"no product with id {product_id} (see 'hcdc products')")


def delay_release(
    conn: Connection,
    actor: Principal,
    product_id: int,
    until: dt.datetime,
    reason: str,
    policy: Policy = DEFAULT_POLICY,
) -> dict[str, Any]:
    """Delay a product's public release until ``until`` (A3); returns the release window."""
    _product_exists(conn, product_id)
    if not reason or not reason.strip():
        raise AccountError("a release delay needs a reason")
    ctx = AccessContext(conn, actor, policy=policy)
    _require(ctx, ctx.can_delay_release(product_id, until))
    base, latest = ctx.release_window(product_id)
    until = utc_naive(until)
    values = {"delayed_until": until, "reason": reason.strip(), "set_by": actor.name, "set_at": utcnow()}
    previous = conn.scalar(select(ReleaseDelay.delayed_until).where(ReleaseDelay.product_id == product_id))
    if previous is None:
        conn.execute(insert(ReleaseDelay).values(product_id=product_id, **values))
    else:
        conn.execute(update(ReleaseDelay).where(ReleaseDelay.product_id == product_id).values(**values))
    audit(
        conn,
        actor,
        "release.delay",
        "product",
        product_id,
        {
            "until": until.isoformat(),
            "previous": previous.isoformat() if previous else None,
            "scheduled": base.isoformat(),
            "reason": reason.strip(),
        },
    )
    refresh_release_dates(conn, product_ids=[product_id], policy=policy)  # ObsCore, same transaction
    return {"product_id": product_id, "scheduled": base, "delayed_until": until, "latest_allowed": latest}


def cancel_delay(
    conn: Connection, actor: Principal, product_id: int, policy: Policy = DEFAULT_POLICY
) -> None:
    """Remove a product's release delay (A3: the PI or an admin)."""
    _product_exists(conn, product_id)
    ctx = AccessContext(conn, actor, policy=policy)
    base, _ = ctx.release_window(product_id)
    _require(ctx, ctx.can_delay_release(product_id, base))
    conn.execute(delete(ReleaseDelay).where(ReleaseDelay.product_id == product_id))
    refresh_release_dates(conn, product_ids=[product_id], policy=policy)  # ObsCore, same transaction
    audit(conn, actor, "release.cancel", "product", product_id)


def review_product(
    conn: Connection, actor: Principal, product_id: int, status: str, reason: str | None = None
) -> None:
    """Mark a product ``validated`` or ``flagged`` (bad, with a reason) (A4)."""
    _product_exists(conn, product_id)
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_review())
    if status not in ("validated", "flagged"):
        raise AccountError(f"invalid review status {status!r}: validated or flagged")
    if status == "flagged" and not (reason and reason.strip()):
        raise AccountError("flagging a product needs a reason")
    values = {"status": status, "reason": reason, "reviewed_by": actor.name, "reviewed_at": utcnow()}
    if conn.scalar(select(ProductReview.id).where(ProductReview.product_id == product_id)) is None:
        conn.execute(insert(ProductReview).values(product_id=product_id, **values))
    else:
        conn.execute(update(ProductReview).where(ProductReview.product_id == product_id).values(**values))
    audit(
        conn,
        actor,
        f"product.{'validate' if status == 'validated' else 'flag'}",
        "product",
        product_id,
        {"reason": reason},
    )
    # the Processing Center sends validated reductions on to the Target Data Base (A5)
    from hcdc.archive import tdb

    if status == "validated":
        tdb.receive_product(conn, product_id)
    else:
        tdb.withdraw_product(conn, product_id)


_PRODUCT_STATUS = (  # built once (each product page asks)
    select(Product.id, ProductReview.status, ProductReview.reason, ReleaseDelay.delayed_until)
    .select_from(Product)
    .outerjoin(ProductReview, ProductReview.product_id == Product.id)
    .outerjoin(ReleaseDelay, ReleaseDelay.product_id == Product.id)
    .where(Product.id.in_(bindparam("ids", expanding=True)))
)


def product_status(conn: Connection, product_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    """Review and release-delay state of products: ``{id: {"review", "reason", "delayed_until"}}``."""
    ids = list(product_ids)
    out: dict[int, dict[str, Any]] = {i: {"review": None, "reason": None, "delayed_until": None} for i in ids}
    if not ids:
        return out
    # one query: at most one review and one delay per product (unique product_id in both tables)
    rows = conn.execute(_PRODUCT_STATUS, {"ids": ids})
    for product_id, review, reason, delayed_until in rows:
        out[product_id].update(review=review, reason=reason, delayed_until=delayed_until)
    return out


# --------------------------------------------------------------------------------------------
# quotas, job owners, workspaces


def set_quota(
    conn: Connection,
    actor: Principal,
    name: str,
    max_jobs: int,
    access_from: dt.datetime | None = None,
    access_until: dt.datetime | None = None,
) -> None:
    """Set a user's processing quota (A1)."""
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_manage())
    if max_jobs < 0:
        raise AccountError(f"max concurrent jobs must be >= 0, got {max_jobs}")
    if access_from and access_until and access_until <= access_from:
        raise AccountError("the access window must end after it starts")
    uid = user_row(conn, name).id
    values = {
        "max_concurrent_jobs": max_jobs,
        "access_from": access_from,
        "access_until": access_until,
        "updated_at": utcnow(),
    }
    if conn.scalar(select(Quota.id).where(Quota.user_id == uid)) is None:
        conn.execute(insert(Quota).values(user_id=uid, **values))
    else:
        conn.execute(update(Quota).where(Quota.user_id == uid).values(**values))
    audit(
        conn,
        actor,
        "quota.set",
        "user",
        name,
        {
            "max_jobs": max_jobs,
            "from": access_from.isoformat() if access_from else None,
            "until": access_until.isoformat() if access_until else None,
        },
    )


def record_job_owner(conn: Connection, job_id: int, user: Principal) -> None:
    """Remember who queued a job (counted by the quota rule A6); nothing for shell jobs."""
    if user.id is not None:
        conn.execute(insert(JobOwner).values(job_id=job_id, user_id=user.id))


def place_job_products(conn: Connection, job_id: int, product_ids: Iterable[int]) -> str | None:
    """Put the products of a job in the private workspace of the account that queued it (R8: the
    results of a reduction someone requested stay theirs); returns the workspace name, None for
    jobs nobody owns (queued from the shell). Runs in the worker's registration transaction."""
    owner = conn.execute(
        select(
            User.id,
            User.name,
            User.role,
            User.is_active,
            Workspace.id.label("ws_id"),
            Workspace.name.label("ws"),
        )
        .join(JobOwner, JobOwner.user_id == User.id)
        .join(Workspace, Workspace.owner_user_id == User.id)
        .where(JobOwner.job_id == job_id)
    ).first()
    if owner is None:
        return None
    now = utcnow()
    for product_id in product_ids:
        conn.execute(
            insert(WorkspaceItem).values(
                workspace_id=owner.ws_id, product_id=product_id, added_by_user_id=owner.id, added_at=now
            )
        )
        audit(
            conn,
            principal_of(owner),
            "workspace.place",
            "product",
            product_id,
            {"workspace": owner.ws, "job": job_id},
        )
    return owner.ws


def list_workspaces(conn: Connection) -> list[dict[str, Any]]:
    """Every workspace by name: is_public, path, owner (account name, None for the public one)
    and how many products it holds."""
    n_items = (
        select(func.count())
        .where(WorkspaceItem.workspace_id == Workspace.id)
        .correlate(Workspace)
        .scalar_subquery()
    )
    query = (
        select(
            Workspace.name,
            Workspace.is_public,
            Workspace.path,
            User.name.label("owner"),
            n_items.label("products"),
        )
        .outerjoin(User, User.id == Workspace.owner_user_id)
        .order_by(Workspace.name)
    )
    return [dict(r._mapping) for r in conn.execute(query)]


def place_in_workspace(conn: Connection, actor: Principal, workspace: str, product_id: int) -> None:
    """Put a product in a workspace (A8); the public workspace publishes it (rule R8)."""
    _product_exists(conn, product_id)
    ws_id = conn.scalar(select(Workspace.id).where(Workspace.name == workspace))
    if ws_id is None:
        raise AccountError(f"no workspace called {workspace!r}")
    ctx = AccessContext(conn, actor)
    _require(ctx, ctx.can_place_in_workspace(ws_id, product_id))
    exists = conn.scalar(
        select(WorkspaceItem.id).where(
            WorkspaceItem.workspace_id == ws_id, WorkspaceItem.product_id == product_id
        )
    )
    if exists is None:
        conn.execute(
            insert(WorkspaceItem).values(
                workspace_id=ws_id, product_id=product_id, added_by_user_id=actor.id, added_at=utcnow()
            )
        )
    audit(conn, actor, "workspace.place", "product", product_id, {"workspace": workspace})
