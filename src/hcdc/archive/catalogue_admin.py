"""The administration of a data centre, as a sub-facade of the catalogue facade.

Reached from :meth:`hcdc.archive.catalogue.UserCatalogue.admin`, which asks
:mod:`hcdc.archive.access` first (rule A1: admins only), so an :class:`AdminCatalogue` exists only
for someone allowed to administer: it sees the whole archive (every count, every job), the
accounts and the audit log, and changes accounts and quotas. Each change is still decided again
and audited by :mod:`hcdc.archive.accounts` (which asks :mod:`hcdc.archive.access`) inside its
own write transaction, so a facade opened long ago cannot act on rights that were withdrawn.
"""

from __future__ import annotations

import datetime as dt
import statistics
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, true

from hcdc.archive import accounts
from hcdc.archive.access import ANONYMOUS, AccessContext, Decision, Principal, load_principal
from hcdc.archive.access_models import ProductReview
from hcdc.archive.accounts import ProgrammeSpec
from hcdc.archive.models import Dataset, File, MissingCalibration
from hcdc.archive.monitoring_report import centring_of_products
from hcdc.archive.obscore import RebuildSummary, rebuild_obscore
from hcdc.archive.pipeline_models import Job, Product
from hcdc.archive.search import Page, archive_counts, search_jobs

if TYPE_CHECKING:
    from hcdc.archive.catalogue_errors import UserSession

__all__ = ["AdminCatalogue"]


#: how many of the latest current Level 1 products the quality-control page reads the centring of
#: (each is a read of its per-frame table)
QC_LEVEL1_PRODUCTS = 20


class AdminCatalogue:
    """What an administrator sees and does: made by :meth:`UserCatalogue.admin` only."""

    def __init__(self, catalogue: UserSession) -> None:
        self.catalogue = catalogue
        self.conn = catalogue.conn

    # -- reads ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the whole archive holds (:func:`hcdc.archive.search.archive_counts`, no filter)."""
        return archive_counts(self.conn, true(), true())

    def search_jobs(self, state: str | None = None, offset: int = 0, limit: int = 50) -> Page:
        """One page of every job, newest first, optionally of one state."""
        return search_jobs(self.conn, true(), state, offset, limit)

    def users(self) -> list[dict[str, Any]]:
        """Every account (:func:`hcdc.archive.accounts.list_users`)."""
        return accounts.list_users(self.conn)

    def audit_log(self, limit: int | None = 100, action: str | None = None) -> list[dict[str, Any]]:
        """Audit entries, newest first; ``action``: a prefix such as ``user.``."""
        return accounts.list_audit(self.conn, limit=limit, action=action)

    def groups(self) -> list[dict[str, Any]]:
        """Every group with its members (:func:`hcdc.archive.accounts.list_groups`)."""
        return accounts.list_groups(self.conn)

    def programmes(self) -> list[dict[str, Any]]:
        """Every programme: PI, co-Is, period, group (:func:`hcdc.archive.accounts.list_programmes`)."""
        return accounts.list_programmes(self.conn)

    def delegations(self) -> list[dict[str, Any]]:
        """Every delegation, active or not (:func:`hcdc.archive.accounts.list_delegations`)."""
        return accounts.list_delegations(self.conn)

    def group_members(self, name: str) -> list[str]:
        """The members of a group (``AccountError`` for no such group)."""
        return accounts.group_members(self.conn, name)

    def tokens(self, name: str | None = None) -> list[dict[str, Any]]:
        """API tokens of one account or of all (never their secrets), their state as of the
        facade's time."""
        return accounts.list_tokens(self.conn, name, now=self.catalogue.access.now)

    def workspaces(self) -> list[dict[str, Any]]:
        """Every workspace with its owner and number of products."""
        return accounts.list_workspaces(self.conn)

    def workers(self, now: dt.datetime) -> dict[str, int]:
        """Running jobs per worker whose lease has not expired at ``now`` (UTC)."""
        rows = self.conn.execute(
            select(Job.worker_id, func.count())
            .where(Job.state == "running", Job.lease_expires_at > now)
            .group_by(Job.worker_id)
        ).all()
        return {str(w): int(n) for w, n in rows}

    def processing_times(self, last: int = 1000) -> list[dict[str, Any]]:
        """Wall time (s) of the ``last`` finished jobs, per workflow: count, median, mean,
        longest; and how many of them failed. Computed in Python from start and end times (the
        same on SQLite and PostgreSQL)."""
        rows = self.conn.execute(
            select(Job.workflow, Job.state, Job.started_at, Job.finished_at)
            .where(
                Job.state.in_(("done", "failed")), Job.started_at.is_not(None), Job.finished_at.is_not(None)
            )
            .order_by(Job.finished_at.desc())
            .limit(last)
        ).all()
        per: dict[str, dict[str, Any]] = {}
        for r in rows:
            entry = per.setdefault(r.workflow or "(default)", {"seconds": [], "failed": 0})
            entry["seconds"].append((r.finished_at - r.started_at).total_seconds())
            entry["failed"] += r.state == "failed"
        out = []
        for name, entry in sorted(per.items()):
            seconds = entry["seconds"]
            out.append(
                {
                    "workflow": name,
                    "jobs": len(seconds),
                    "failed": entry["failed"],
                    "median_s": statistics.median(seconds),
                    "mean_s": statistics.fmean(seconds),
                    "max_s": max(seconds),
                }
            )
        return out

    def quality(self) -> dict[str, Any]:
        """Quality-control figures: datasets missing a required calibration per night (last 30
        nights), flagged products (last 50), failed jobs (last 20), current files, and the
        centring fall-backs of the latest :data:`QC_LEVEL1_PRODUCTS` current Level 1 products
        (those with a frame centred by a fall-back rather than the four-spot waffle fit, or
        above the error limit, or whose per-frame table is unreadable:
        :func:`hcdc.archive.monitoring_report.centring_of_products`)."""
        missing = self.conn.execute(
            select(Dataset.night, func.count(func.distinct(Dataset.id)))
            .join(MissingCalibration, MissingCalibration.dataset_id == Dataset.id)
            .where(MissingCalibration.required)
            .group_by(Dataset.night)
            .order_by(Dataset.night.desc())
            .limit(30)
        ).all()
        flagged = self.conn.execute(
            select(ProductReview.product_id, ProductReview.reason)
            .where(ProductReview.status == "flagged")
            .order_by(ProductReview.product_id.desc())
            .limit(50)
        ).all()
        return {
            "missing_by_night": [(str(n), int(c)) for n, c in missing],
            "flagged": [dict(r._mapping) for r in flagged],
            "failed_jobs": self.search_jobs("failed", 0, 20).rows,
            "files": self.conn.scalar(select(func.count()).select_from(File).where(File.is_current)),
            "centring": self._centring_fallbacks(),
        }

    def _centring_fallbacks(self) -> list[dict[str, Any]]:
        latest = self.conn.scalars(
            select(Product.id)
            .where(Product.level == 1, Product.is_current)
            .order_by(Product.id.desc())
            .limit(QC_LEVEL1_PRODUCTS)
        ).all()
        summaries = centring_of_products(self.conn, latest, self.catalogue.storage_root)
        return [c for c in summaries if c.get("problem") or c["fallback_frames"] or c["not_ok_frames"]]

    def account(self, name: str) -> Principal:
        """The principal of account ``name`` (``anonymous``: the anonymous user), to ask what it
        may see (:meth:`explain`); ``LookupError`` for no such account."""
        return ANONYMOUS if name == "anonymous" else load_principal(self.conn, name)

    def explain(self, user: Principal, obj: tuple[str, int], at: dt.datetime | None = None) -> Decision:
        """Whether ``user`` may see ``obj`` (``("file" | "dataset" | "product", id)``) at ``at``
        (UTC; default: now) under the data centre's policy, and by which rule
        (:meth:`hcdc.archive.access.AccessContext.can_see`: the decision itself, explained)."""
        return AccessContext(self.conn, user, at, self.catalogue.access.policy).can_see(obj)

    # -- writes (each decided again and audited by accounts / access.py) ----------------------

    def rebuild_obscore(self) -> RebuildSummary:
        """Delete and rewrite every ``ivoa.obscore`` row from the catalogue in one transaction,
        with the release dates of the data centre's policy (operator maintenance: after a change
        of the publishing rules; :func:`hcdc.archive.obscore.rebuild_obscore`)."""
        with self.catalogue.writing() as conn:
            return rebuild_obscore(conn, self.catalogue.access.policy)

    def add_user(
        self,
        name: str,
        *,
        role: str = "user",
        password: str | None = None,
        full_name: str | None = None,
        email: str | None = None,
    ) -> int:
        """Create an account; returns its id (``AccountError`` for a bad or taken name or role)."""
        with self.catalogue.writing() as conn:
            return accounts.add_user(
                conn,
                self.catalogue.user,
                name,
                role=role,
                password=password,
                full_name=full_name,
                email=email,
            )

    def change_user(self, name: str, *, role: str | None = None, active: bool | None = None) -> None:
        """Change an account's role and/or whether it may sign in, in one transaction."""
        with self.catalogue.writing() as conn:
            if role is not None:
                accounts.set_role(conn, self.catalogue.user, name, role)
            if active is not None:
                accounts.set_active(conn, self.catalogue.user, name, active)

    def set_password(self, name: str, password: str) -> None:
        """Set an account's password (stored hashed), audited."""
        with self.catalogue.writing() as conn:
            accounts.set_password(conn, self.catalogue.user, name, password)

    def create_token(self, name: str, *, label: str | None, days: int | None) -> accounts.NewToken:
        """A new API token of account ``name``, valid ``days`` days (None: the policy's default);
        its secret is in the answer only (stored hashed), audited."""
        access = self.catalogue.access
        with self.catalogue.writing() as conn:
            return accounts.create_token(
                conn, self.catalogue.user, name, label=label, days=days, policy=access.policy
            )

    def set_quota(
        self, name: str, max_jobs: int, access_from: dt.datetime | None, access_until: dt.datetime | None
    ) -> None:
        """Set an account's maximum of concurrent jobs and its access window (rule A1, UTC)."""
        with self.catalogue.writing() as conn:
            accounts.set_quota(conn, self.catalogue.user, name, max_jobs, access_from, access_until)

    def add_group(self, name: str, description: str | None = None, members: list[str] | None = None) -> int:
        """Create a group, with its first ``members`` in the same transaction; returns its id."""
        with self.catalogue.writing() as conn:
            group_id = accounts.add_group(conn, self.catalogue.user, name, description)
            if members:
                accounts.set_group_members(conn, self.catalogue.user, name, add=members)
            return group_id

    def set_group_members(self, name: str, add: list[str], remove: list[str]) -> list[str]:
        """Add and remove members of a group; returns the members after the change."""
        with self.catalogue.writing() as conn:
            return accounts.set_group_members(conn, self.catalogue.user, name, add=add, remove=remove)

    def save_programme(self, spec: ProgrammeSpec, *, replace: bool = False) -> int:
        """Create a programme, or update it when ``replace``; returns its id."""
        with self.catalogue.writing() as conn:
            return accounts.save_programme(conn, self.catalogue.user, spec, replace=replace)

    def import_programmes(self, specs: list[ProgrammeSpec], source: str) -> list[str]:
        """Create or update the programmes read from ``source`` (named in errors), all or none."""
        with self.catalogue.writing() as conn:
            return accounts.import_programme_specs(conn, self.catalogue.user, specs, source)

    def delegate(
        self,
        grantee: str,
        *,
        prog_id: str | None = None,
        dataset_id: int | None = None,
        expires_at: dt.datetime | None = None,
        reason: str | None = None,
    ) -> int:
        """Grant ``grantee`` one programme or one dataset (rule A2), until ``expires_at`` (UTC);
        returns the delegation id."""
        with self.catalogue.writing() as conn:
            return accounts.delegate(
                conn,
                self.catalogue.user,
                grantee,
                prog_id=prog_id,
                dataset_id=dataset_id,
                expires_at=expires_at,
                reason=reason,
            )

    def revoke_delegation(self, delegation_id: int) -> None:
        """End a delegation at once."""
        with self.catalogue.writing() as conn:
            accounts.revoke_delegation(conn, self.catalogue.user, delegation_id)
