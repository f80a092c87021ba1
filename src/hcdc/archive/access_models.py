"""The catalogue's account and rights tables (created by the Alembic migration ``0003_accounts``).

Same declarative :class:`~hcdc.archive.models.Base` as the archive tables. These tables hold
*facts* (who is who, who belongs to which programme, what a PI decided); the rules that turn
the facts into "who sees what" live in one place, :mod:`hcdc.archive.access`.

* ``users``: accounts; ``role`` is ``admin`` (everything, including accounts), ``operator``
  (the data-centre team: sees everything, processes and validates), ``user`` (PIs, co-Is,
  survey members, external users) or ``public`` (the shared public login: public data only).
  Passwords are argon2id hashes (``password_hash`` NULL: no password login).
* ``groups`` + ``group_members``: survey teams.
* ``programmes`` + ``programme_members``: an ESO ``prog_id`` with its PI (``pi_user_id``),
  co-Is, proprietary period in months, and optionally the survey group whose data it is.
* ``workspaces`` + ``workspace_items``: each user's private area and the public workspace;
  a product placed in a workspace is visible to its owner (private) or everyone (public).
* ``delegations``: a grant of one programme *or* one dataset to a user, by a PI or an admin;
  revocable, optionally expiring.
* ``api_tokens``: personal API tokens, stored as SHA-256 of the secret (the secret is shown
  once), revocable, with an expiry.
* ``release_delays``: a PI's delay of one product's public release (until when, why, who).
* ``product_reviews``: validation of a product (``validated`` or ``flagged`` with a reason).
* ``quotas``: per-user limits on processing (concurrent jobs, access window).
* ``job_owners``: who submitted a job (for quotas; jobs run by the shell operator have none).
* ``audit_log``: every administrative action, who did it, when, and its details.

All times are naive UTC, as in the rest of the catalogue.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive.models import Base, JSONType, utcnow

ROLES = ("admin", "operator", "user", "public")
REVIEW_STATUSES = ("validated", "flagged")


class User(Base):
    """An account (see the module docstring for the roles)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="user")
    full_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2id, PHC string format
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint("role IN ('admin', 'operator', 'user', 'public')", name="role_valid"),
    )


class Group(Base):
    """A survey team."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("name"),)


class GroupMember(Base):
    """Membership of a user in a group."""

    __tablename__ = "group_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)

    __table_args__ = (
        UniqueConstraint("group_id", "user_id", name="uq_group_members_pair"),
        Index("ix_group_members_user_id", "user_id"),
    )


class Programme(Base):
    """An observing programme (ESO ``prog_id``): PI, proprietary period, optional survey group."""

    __tablename__ = "programmes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prog_id: Mapped[str] = mapped_column(String(64), nullable=False)  # as in the files' prog_id column
    title: Mapped[str | None] = mapped_column(Text)
    pi_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    period_months: Mapped[int] = mapped_column(Integer, nullable=False, default=12)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))  # survey
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("prog_id"),
        CheckConstraint("period_months >= 0", name="period_not_negative"),
        Index("ix_programmes_pi_user_id", "pi_user_id"),
    )


class ProgrammeMember(Base):
    """A co-investigator of a programme."""

    __tablename__ = "programme_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    programme_id: Mapped[int] = mapped_column(ForeignKey("programmes.id", ondelete="CASCADE"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)

    __table_args__ = (
        UniqueConstraint("programme_id", "user_id", name="uq_programme_members_pair"),
        Index("ix_programme_members_user_id", "user_id"),
    )


class Workspace(Base):
    """A user's private area, or the public workspace (``owner_user_id`` NULL, ``is_public``)."""

    __tablename__ = "workspaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    path: Mapped[str] = mapped_column(Text, nullable=False)  # relative to the storage root
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("name"),
        # exactly one of: a private workspace with an owner, the public workspace without one
        CheckConstraint(
            "(is_public AND owner_user_id IS NULL) OR (NOT is_public AND owner_user_id IS NOT NULL)",
            name="owner_or_public",
        ),
    )


class WorkspaceItem(Base):
    """A product placed in a workspace (a user's reduction result, or a published product)."""

    __tablename__ = "workspace_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    workspace_id: Mapped[int] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    added_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("workspace_id", "product_id", name="uq_workspace_items_pair"),
        Index("ix_workspace_items_product_id", "product_id"),
    )


class Delegation(Base):
    """A grant of one programme or one dataset to a user (active unless revoked or expired)."""

    __tablename__ = "delegations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grantee_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    programme_id: Mapped[int | None] = mapped_column(ForeignKey("programmes.id", ondelete="CASCADE"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    granted_by: Mapped[str] = mapped_column(String(128), nullable=False)  # actor name (audit)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        CheckConstraint("(programme_id IS NULL) <> (dataset_id IS NULL)", name="programme_xor_dataset"),
        Index("ix_delegations_grantee_user_id", "grantee_user_id"),
    )


class ApiToken(Base):
    """A personal API token: only its SHA-256 is stored; ``prefix`` identifies it to people."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str | None] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)  # sha256 hex of the secret
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("token_hash"),
        Index("ix_api_tokens_user_id", "user_id"),
    )


class ReleaseDelay(Base):
    """A PI's delay of one product's public release (the history is in the audit log)."""

    __tablename__ = "release_delays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    delayed_until: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    set_by: Mapped[str] = mapped_column(String(128), nullable=False)
    set_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("product_id"),)


class ProductReview(Base):
    """The validation state of a product: validated, or flagged bad with a reason."""

    __tablename__ = "product_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str] = mapped_column(String(128), nullable=False)
    reviewed_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("product_id"),
        CheckConstraint("status IN ('validated', 'flagged')", name="status_valid"),
        CheckConstraint("status <> 'flagged' OR reason IS NOT NULL", name="flag_has_reason"),
    )


class Quota(Base):
    """Processing limits of one user (users without a row get the configured defaults)."""

    __tablename__ = "quotas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    max_concurrent_jobs: Mapped[int] = mapped_column(Integer, nullable=False)
    access_from: Mapped[dt.datetime | None] = mapped_column(DateTime)  # None: no start limit
    access_until: Mapped[dt.datetime | None] = mapped_column(DateTime)  # None: no end limit
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id"),
        CheckConstraint("max_concurrent_jobs >= 0", name="max_jobs_not_negative"),
    )


class JobOwner(Base):
    """Who submitted a job (the portal and API record it; counted by the quota rule)."""

    __tablename__ = "job_owners"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)

    __table_args__ = (Index("ix_job_owners_user_id", "user_id"),)


class AuditEntry(Base):
    """One administrative action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)  # user name or local:<os user>
    action: Mapped[str] = mapped_column(String(64), nullable=False)  # e.g. user.add, release.delay
    object_type: Mapped[str | None] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)

    __table_args__ = (Index("ix_audit_log_at", "at"), Index("ix_audit_log_action", "action"))


__all__ = [
    "REVIEW_STATUSES",
    "ROLES",
    "ApiToken",
    "AuditEntry",
    "Delegation",
    "Group",
    "GroupMember",
    "JobOwner",
    "Programme",
    "ProgrammeMember",
    "ProductReview",
    "Quota",
    "ReleaseDelay",
    "User",
    "Workspace",
    "WorkspaceItem",
]
