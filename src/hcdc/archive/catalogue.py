"""The catalogue facade: a data centre as one user sees it.

In the spirit of Rubin's ``daf_butler.Butler``, one object puts the three parts of the archive
behind one interface, so that callers stop threading ``(conn, storage_root)`` and a principal
through every function:

* the **registry** (SQL): search files, datasets and products; a file's metadata, a dataset
  (files, calibrations, conditions, products, jobs), a product (files, versions, detections);
* the **datastore** (the bytes): where a raw file or a product's file is, opened for reading,
  the members of a product's zip — a product file never outside the storage root;
* **provenance**: a product's record and its tree of parent products down to the raw files;
* **processing**: batches of jobs (their state computed from their jobs) and each job's log.

A :class:`UserCatalogue` is opened *for one principal*: with
:meth:`hcdc.archive.db.Catalogue.as_user` (its own read connection), or on a connection and an
:class:`~hcdc.archive.access.AccessContext` that a caller already holds (a web request). It never
decides anything itself: every "may this user see it" goes to :mod:`hcdc.archive.access`. An
object the user may not see is answered exactly as one that does not exist (:class:`NotFound`),
so nobody learns that a hidden id exists.

It also carries the user's **writes** that the archive decides (review a product, delay its
release, API tokens); each runs in one write transaction on the data centre's engine, with the
right asked of :mod:`hcdc.archive.access` (through :mod:`hcdc.archive.accounts`). Sub-facades
keep the one object readable: :meth:`UserCatalogue.admin` (staff's administration,
:mod:`hcdc.archive.catalogue_admin`), :attr:`UserCatalogue.targets` (the Target Data Base,
:mod:`hcdc.archive.catalogue_tdb`), :attr:`UserCatalogue.granules` (interferometry,
:mod:`hcdc.archive.catalogue_granules`), :attr:`UserCatalogue.vo` (the VO services,
:mod:`hcdc.archive.catalogue_vo`), :attr:`UserCatalogue.monitoring` (AO conditions, reports,
astrometric calibration: :mod:`hcdc.archive.catalogue_monitoring`). The processing queue is the pipeline's:
:class:`hcdc.pipeline.operations.catalogue.ProcessingCatalogue` extends this facade with jobs.

What goes through the facade today, and what does not yet, is listed in docs/architecture.md.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Connection, Engine, bindparam, select

from hcdc.archive import accounts, queries
from hcdc.archive import batches as batch_reads
from hcdc.archive import products as prod
from hcdc.archive.access import ANONYMOUS, AccessContext, AccessDenied, Principal
from hcdc.archive.access_models import ProductReview, Programme, ProgrammeMember, ReleaseDelay
from hcdc.archive.associations import association_view
from hcdc.archive.catalogue_admin import AdminCatalogue
from hcdc.archive.catalogue_errors import NotFound, ReadOnlyCatalogue
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Job, Product, ProductFile
from hcdc.archive.search import (
    Criteria,
    Page,
    archive_counts,
    search_datasets,
    search_files,
    search_jobs,
    search_products,
)
from hcdc.archive.storage import resolve_stored_path
from hcdc.archive.transactions import write_transaction

if TYPE_CHECKING:
    from hcdc.archive.catalogue_granules import GranuleCatalogue
    from hcdc.archive.catalogue_monitoring import MonitoringCatalogue
    from hcdc.archive.catalogue_rdi import RdiCatalogue
    from hcdc.archive.catalogue_tdb import TargetCatalogue
    from hcdc.archive.catalogue_vo import VoCatalogue

__all__ = [
    "MAX_PROVENANCE_DEPTH",
    "AccessDenied",
    "AdminCatalogue",
    "NotFound",
    "ReadOnlyCatalogue",
    "UserCatalogue",
]

#: how deep a provenance tree goes (products made from products ...)
MAX_PROVENANCE_DEPTH = 6
#: file metadata a service never shows (server paths, the raw header)
_FILE_HIDDEN = ("location", "stored_path", "path", "header", "extra", "mtime_ns", "dataset_key")


#: the dataset columns a product page shows (built once: a statement built per call costs ~0.2 ms)
_SHOWN_DATASET_COLUMNS = (Dataset.instrument, Dataset.mode, Dataset.night, Dataset.setup, Dataset.prog_id)
#: a product as a service shows it: its row, its review and release delay (at most one of each:
#: unique product_id) and its dataset's columns, in one statement (three before: each statement
#: costs a round trip and ~0.1 ms of Python, benchmarks/RESULTS.md "Tenth round")
_PRODUCT_SHOWN = (
    select(
        Product,
        ProductReview.status.label("review_status"),
        ProductReview.reason.label("review_reason"),
        ReleaseDelay.delayed_until.label("release_delayed_until"),
        Dataset.id.label("dataset_found"),
        *(column.label(f"dataset_{column.key}") for column in _SHOWN_DATASET_COLUMNS),
    )
    .outerjoin(ProductReview, ProductReview.product_id == Product.id)
    .outerjoin(ReleaseDelay, ReleaseDelay.product_id == Product.id)
    .outerjoin(Dataset, Dataset.id == Product.dataset_id)
    .where(Product.id == bindparam("product_id"))
)


class UserCatalogue:
    """The registry, the datastore and provenance of a data centre, as ``access.user`` sees them.

    ``conn`` is an open connection (reads only), ``storage_root`` the data centre's storage root,
    ``access`` the decisions for the user on that connection (its clock and policy), ``engine``
    the data centre's engine, on which each write opens its own write transaction (None: a
    facade that only reads; a write raises :class:`ReadOnlyCatalogue`), ``file_mode`` the
    permission bits of files a write puts into the store (None: the store's default).
    """

    def __init__(
        self,
        conn: Connection,
        storage_root: str | Path,
        access: AccessContext,
        engine: Engine | None = None,
        file_mode: int | None = None,
    ) -> None:
        self.conn = conn
        self.storage_root = Path(storage_root)
        self.access = access
        self.engine = engine
        self.file_mode = file_mode

    @property
    def user(self) -> Principal:
        return self.access.user

    def _require(self, kind: str, number: int) -> None:
        """Raise :class:`NotFound` unless access.py lets the user see this object."""
        method = {
            "file": self.access.can_see_file,
            "dataset": self.access.can_see_dataset,
            "product": self.access.can_see_product,
            "job": self.access.can_see_job,
            "batch": self.access.can_see_batch,
        }[kind]
        try:
            decision = method(number)
        except LookupError:
            raise NotFound(f"no {kind} with id {number}") from None
        if not decision:
            raise NotFound(f"no {kind} with id {number}")

    def visible(self, kind: str, number: int) -> bool:
        """Whether the user may see file, dataset, product or job ``number`` (False for one that
        does not exist: the same answer)."""
        try:
            self._require(kind, number)
        except NotFound:
            return False
        return True

    def write_engine(self) -> Engine:
        """The data centre's engine, for the facade's writes and those of its extensions
        (:class:`ReadOnlyCatalogue` when the facade was opened for reading only)."""
        if self.engine is None:
            raise ReadOnlyCatalogue("this catalogue was opened for reading only")
        return self.engine

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """One write transaction on the data centre's engine (committed on success, rolled back
        on error). Afterwards the facade's read transaction, if one is open, is ended, so that
        its next reads see the change (SQLite keeps a reader's snapshot until then)."""
        with write_transaction(self.write_engine()) as conn:
            yield conn
        if self.conn.in_transaction():
            self.conn.rollback()

    @property
    def targets(self) -> TargetCatalogue:
        """The Target Data Base as the user sees it (rule R15; :mod:`hcdc.archive.catalogue_tdb`)."""
        from hcdc.archive.catalogue_tdb import TargetCatalogue

        return TargetCatalogue(self)

    @property
    def granules(self) -> GranuleCatalogue:
        """Interferometry as the user sees it: OiDB granules (R11-R14) and surveys (R16;
        :mod:`hcdc.archive.catalogue_granules`)."""
        from hcdc.archive.catalogue_granules import GranuleCatalogue

        return GranuleCatalogue(self)

    @property
    def rdi(self) -> RdiCatalogue:
        """RDI reference libraries as the user sees them (rule R18; :mod:`hcdc.archive.catalogue_rdi`)."""
        from hcdc.archive.catalogue_rdi import RdiCatalogue

        return RdiCatalogue(self)

    @property
    def vo(self) -> VoCatalogue:
        """The Virtual Observatory services' data as the user sees it: ObsCore, TAP queries and
        the user's async jobs, SIA, DataLink and provenance (:mod:`hcdc.archive.catalogue_vo`)."""
        from hcdc.archive.catalogue_vo import VoCatalogue

        return VoCatalogue(self)

    @property
    def monitoring(self) -> MonitoringCatalogue:
        """Monitoring as the user sees it: AO conditions, the quality-control report, the
        programme overview, the True North / plate-scale series
        (:mod:`hcdc.archive.catalogue_monitoring`)."""
        from hcdc.archive.catalogue_monitoring import MonitoringCatalogue

        return MonitoringCatalogue(self)

    def admin(self) -> AdminCatalogue:
        """The administration of the data centre (rule A1: admins only; else
        :class:`~hcdc.archive.access.AccessDenied`, whose message names the rule)."""
        self.access.require(self.access.can_manage())
        return AdminCatalogue(self)

    # -- registry: counts -----------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """What the archive holds that the user may see (:func:`hcdc.archive.search.archive_counts`:
        files per instrument and year, products per level and instrument)."""
        return archive_counts(self.conn, self.access.files_clause(), self.access.products_clause())

    # -- registry: files and datasets -----------------------------------------------------------

    def search_files(self, criteria: Criteria) -> Page:
        """One page of the catalogued files matching ``criteria`` that the user may see."""
        return search_files(self.conn, criteria, self.access.files_clause())

    def search_datasets(self, criteria: Criteria) -> Page:
        """One page of the datasets matching ``criteria`` that the user may see."""
        return search_datasets(self.conn, criteria, self.access.datasets_clause())

    def list_files(self, filters: queries.Filters) -> list[dict[str, Any]]:
        """Catalogued files the user may see (:func:`hcdc.archive.queries.list_files`)."""
        return queries.list_files(self.conn, filters, visible=self.access.files_clause())

    def list_datasets(self, filters: queries.Filters) -> list[dict[str, Any]]:
        """Datasets the user may see (:func:`hcdc.archive.queries.list_datasets`)."""
        return queries.list_datasets(self.conn, filters, visible=self.access.datasets_clause())

    def find_datasets(
        self, *, dataset_id: int | None = None, key: str | None = None, night: dt.date | None = None
    ) -> list[int]:
        """Ids of the datasets the user may see with this id, this key and/or of this night
        (every one the user may see when none is given), in id order."""
        query = select(Dataset.id).where(self.access.datasets_clause()).order_by(Dataset.id)
        if dataset_id is not None:
            query = query.where(Dataset.id == dataset_id)
        if key is not None:
            query = query.where(Dataset.key == key)
        if night is not None:
            query = query.where(Dataset.night == night)
        return list(self.conn.scalars(query))

    def file_detail(self, file_id: int, *, with_header: bool = False) -> dict[str, Any]:
        """The catalogue's whole record of a file the user may see, location included
        (:func:`hcdc.archive.queries.file_detail`): for tools next to the store; services show
        :meth:`file`."""
        self._require("file", file_id)
        detail = queries.file_detail(self.conn, file_id, self.storage_root, with_header=with_header)
        if detail is None:
            raise NotFound(f"no file with id {file_id}")
        return detail

    def dataset_detail(self, dataset_id: int) -> dict[str, Any]:
        """The catalogue's record of a dataset the user may see, all its files listed
        (:func:`hcdc.archive.queries.dataset_detail`); services show :meth:`dataset`."""
        self._require("dataset", dataset_id)
        detail = queries.dataset_detail(self.conn, dataset_id)
        if detail is None:
            raise NotFound(f"no dataset with id {dataset_id}")
        return detail

    def file(self, file_id: int) -> dict[str, Any]:
        """A catalogued file's metadata (its name, no server path) and the versions the user may see."""
        self._require("file", file_id)
        detail = self.file_detail(file_id)
        out = {k: v for k, v in detail.items() if k not in _FILE_HIDDEN}
        out["name"] = Path(detail["path"]).name
        out["versions"] = [v for v in detail["versions"] if self.access.can_see_file(v["id"])]
        return out

    def dataset(self, dataset_id: int) -> dict[str, Any]:
        """A dataset: its files (those the user may see), calibrations chosen (those the user may
        see) and missing, observing conditions of its visible files, products and jobs the user
        may see."""
        detail = self.dataset_detail(dataset_id)
        visible = set(
            self.conn.scalars(
                select(File.id).where(File.dataset_id == dataset_id, self.access.files_clause())
            )
        )
        detail["files"] = [f for f in detail["files"] if f["id"] in visible]
        conditions = self.conn.execute(
            select(File.seeing, File.tau0, File.airmass).where(File.id.in_(visible or {-1}))
        ).all()
        detail["conditions"] = {
            name: _stats([getattr(r, name) for r in conditions]) for name in ("seeing", "tau0", "airmass")
        }
        association = association_view(self.conn, dataset_id) if detail.get("associated_at") else None
        if association is not None:
            association["chosen"] = [
                c for c in association["chosen"] if self.access.can_see_file(c["file_id"])
            ]
        detail["association"] = association
        detail.pop("association_warnings", None)
        detail["products"] = self.list_products(dataset_id=dataset_id, limit=None)
        detail["jobs"] = [
            dict(r._mapping)
            for r in self.conn.execute(
                select(Job.id, Job.workflow, Job.state, Job.progress, Job.queued_at)
                .where(Job.dataset_id == dataset_id, self.access.jobs_clause())
                .order_by(Job.id.desc())
            )
        ]
        return detail

    # -- registry: products ---------------------------------------------------------------------

    def search_products(self, criteria: Criteria) -> Page:
        """One page of the current products matching ``criteria`` that the user may see
        (:func:`hcdc.archive.search.search_products`; raises its ``SearchError``)."""
        return search_products(self.conn, criteria, self.access.products_filter())

    def list_products(self, **filters: Any) -> list[dict[str, Any]]:
        """Products the user may see, newest first (:func:`hcdc.archive.products.list_products`
        filters: level, dataset_id, product_type, target, all_versions, limit)."""
        return prod.list_products(self.conn, visible=self.access.products_clause(), **filters)

    def product_detail(self, product_id: int, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """The catalogue's whole record of a product the user may see, storage paths included
        (:func:`hcdc.archive.products.product_detail`): for tools that run next to the store
        (the command line); services show :meth:`product` instead. ``record``: the product's
        provenance record (:meth:`provenance_record`) when the caller has read it already."""
        self._require("product", product_id)
        detail = prod.product_detail(self.conn, product_id, self.storage_root, record)
        if detail is None:
            raise NotFound(f"no product with id {product_id}")
        return detail

    def product(self, product_id: int, record: dict[str, Any] | None = None) -> dict[str, Any]:
        """A product as a service shows it: description, files (by id, no server path),
        detections, contrast at standard separations, review mark, release date, the versions
        and parent products the user may see, its dataset (flagged when hidden). ``record``: as
        for :meth:`product_detail`."""
        self._require("product", product_id)
        row = self.conn.execute(_PRODUCT_SHOWN, {"product_id": product_id}).first()
        if row is None:
            raise NotFound(f"no product with id {product_id}")
        detail = prod.detail_of_row(self.conn, row, self.storage_root, record)
        for key in ("storage_dir", "previews"):
            detail.pop(key, None)
        detail["files"] = [_shown_file(f) for f in detail["files"]]  # read by product_detail already
        detail["versions"] = [v for v in detail["versions"] if self.access.can_see_product(v["id"])]
        summary = detail.get("summary") or {}
        summary.pop("outputs", None)  # worker-side paths
        detail["detections"] = summary.get("detections") or []
        detail["contrast_at"] = summary.get("contrast_at") or []
        detail["review"] = row.review_status
        detail["review_reason"] = row.review_reason
        detail["delayed_until"] = row.release_delayed_until
        detail["public_date"] = self.access.product_public_date(product_id)
        if detail.get("dataset_id") is not None:
            shown = {c.key: row._mapping[f"dataset_{c.key}"] for c in _SHOWN_DATASET_COLUMNS}
            detail["dataset"] = shown if row.dataset_found is not None else None
            detail["dataset_visible"] = bool(self.access.can_see_dataset(detail["dataset_id"]))
        provenance = detail.get("provenance") or {}
        provenance["parent_products"] = [
            p
            for p in provenance.get("parent_products") or []
            if p is not None and self.access.can_see_product(p)
        ]
        return detail

    def product_files(self, product_id: int) -> list[dict[str, Any]]:
        """The files of a product the user may see, by id: name, role, sha256, size, media type."""
        self._require("product", product_id)
        rows = self.conn.execute(
            select(
                ProductFile.id,
                ProductFile.role,
                ProductFile.path,
                ProductFile.sha256,
                ProductFile.size,
                ProductFile.media_type,
            )
            .where(ProductFile.product_id == product_id)
            .order_by(ProductFile.role, ProductFile.path)
        ).all()
        return [_shown_file(r._mapping) for r in rows]

    # -- registry: programmes ------------------------------------------------------------------

    def my_programmes(self) -> dict[str, list[str]]:
        """The programmes of the user's account: ``{"pi": [...], "coi": [...]}`` (ids sorted as
        stored; both empty for nobody)."""
        uid = self.user.id
        pi = list(self.conn.scalars(select(Programme.prog_id).where(Programme.pi_user_id == uid)))
        coi = list(
            self.conn.scalars(
                select(Programme.prog_id)
                .join(ProgrammeMember, ProgrammeMember.programme_id == Programme.id)
                .where(ProgrammeMember.user_id == uid)
            )
        )
        return {"pi": pi, "coi": coi}

    def led_programmes(self) -> list[dict[str, Any]]:
        """The programmes the user leads (admins: all), by id: prog_id, title, period_months."""
        query = select(Programme.prog_id, Programme.title, Programme.period_months).order_by(
            Programme.prog_id
        )
        if not self.user.is_admin:
            query = query.where(Programme.pi_user_id == self.user.id)
        return [dict(r._mapping) for r in self.conn.execute(query)]

    def product_status(self, product_ids: list[int]) -> dict[int, dict[str, Any]]:
        """Review mark, its reason and release delay of each product the user may see, by id
        (:func:`hcdc.archive.accounts.product_status`); ids the user may not see are left out."""
        ids = list(product_ids)
        visible = set(
            self.conn.scalars(
                select(Product.id).where(Product.id.in_(ids or [-1]), self.access.products_clause())
            )
        )
        return accounts.product_status(self.conn, [p for p in ids if p in visible])

    # -- registry: jobs (the queue itself is the pipeline's: ProcessingCatalogue) ----------------

    def search_jobs(self, state: str | None = None, offset: int = 0, limit: int = 50) -> Page:
        """One page of the jobs the user may see (R10: their own; staff: all), newest first,
        optionally of one state."""
        return search_jobs(self.conn, self.access.jobs_clause(), state, offset, limit)

    def job(self, job_id: int) -> dict[str, Any]:
        """A job the user may see (R10): its row (no worker id, no inputs), the whole-run log for
        staff only (it holds tracebacks), and the products it made that the user may see (no
        worker-side output paths)."""
        self._require("job", job_id)
        row = self.conn.execute(select(Job).where(Job.id == job_id)).first()
        if row is None:
            raise NotFound(f"no job with id {job_id}")
        out = {
            c.name: getattr(row, c.name)
            for c in Job.__table__.columns
            if c.name not in ("worker_id", "inputs")
        }
        if not self.access.can_see_tracebacks():  # the whole-run log holds tracebacks (server paths)
            out.pop("log")  # R10: others read the job's log without them (job_log)
        summary = out.get("summary") or {}
        summary.pop("outputs", None)
        out["products"] = [
            dict(r._mapping)
            for r in self.conn.execute(
                select(Product.id, Product.level, Product.product_type, Product.target)
                .where(Product.job_id == job_id, self.access.products_clause())
                .order_by(Product.id)
            )
        ]
        return out

    # -- writes: products ---------------------------------------------------------------------

    def review_product(self, product_id: int, status: str, reason: str | None) -> None:
        """Validate or flag a product the user may see (rule A4, audited); a product the user
        may not see is :class:`NotFound`. Raises ``AccountError`` (bad status, flag without a
        reason) and ``AccessDenied``."""
        self._require("product", product_id)
        reason = (reason or "").strip() or None
        with self.writing() as conn:
            accounts.review_product(conn, self.user, product_id, status, reason)

    def delay_release(self, product_id: int, until: dt.datetime, reason: str) -> dict[str, Any]:
        """Delay the public release of a product the user may see to ``until`` (UTC, rule A3,
        audited), under the facade's policy; :class:`NotFound` for one the user may not see."""
        self._require("product", product_id)
        with self.writing() as conn:
            return accounts.delay_release(conn, self.user, product_id, until, reason, self.access.policy)

    def cancel_delay(self, product_id: int) -> None:
        """Remove the release delay of a product the user may see (rule A3, audited)."""
        self._require("product", product_id)
        with self.writing() as conn:
            accounts.cancel_delay(conn, self.user, product_id, self.access.policy)

    def release_status(self, product_id: int) -> dict[str, Any]:
        """A product the user may see: its public date (R4, the PI's delay included; None:
        never), its review mark, reason and delay, and whether anybody (the anonymous user) may
        see it at the facade's time; :class:`NotFound` for one the user may not see."""
        self._require("product", product_id)
        anybody = AccessContext(self.conn, ANONYMOUS, self.access.now, self.access.policy)
        info: dict[str, Any] = {
            "product_id": product_id,
            "public_date": anybody.product_public_date(product_id),
            **accounts.product_status(self.conn, [product_id])[product_id],
        }
        info["public_now"] = bool(anybody.can_see_product(product_id))
        return info

    def place_in_workspace(self, workspace: str, product_id: int) -> None:
        """Put a product in a workspace (rule A8, decided and audited by
        :func:`hcdc.archive.accounts.place_in_workspace`; the public workspace publishes it)."""
        with self.writing() as conn:
            accounts.place_in_workspace(conn, self.user, workspace, product_id)

    # -- writes: delegations (rule A2: a programme's PI, or an admin) ----------------------------

    def delegate(
        self,
        grantee: str,
        *,
        prog_id: str | None = None,
        dataset_id: int | None = None,
        expires_at: dt.datetime | None = None,
        reason: str | None = None,
    ) -> int:
        """Grant ``grantee`` one programme or one dataset of the user's (rule A2, decided and
        audited by :func:`hcdc.archive.accounts.delegate`), until ``expires_at`` (UTC); returns
        the delegation id. Raises ``AccountError`` and ``AccessDenied``."""
        with self.writing() as conn:
            return accounts.delegate(
                conn,
                self.user,
                grantee,
                prog_id=prog_id,
                dataset_id=dataset_id,
                expires_at=expires_at,
                reason=reason,
            )

    def revoke_delegation(self, delegation_id: int) -> None:
        """End a delegation at once (rule A2: the programme's PI or an admin, audited)."""
        with self.writing() as conn:
            accounts.revoke_delegation(conn, self.user, delegation_id)

    # -- writes: the user's API tokens (rule A7) ------------------------------------------------

    def my_tokens(self) -> list[dict[str, Any]]:
        """The user's API tokens (never their secrets), their state as of the facade's time."""
        return accounts.list_tokens(self.conn, self.user.name, now=self.access.now)

    def create_token(self, *, label: str | None, days: int) -> accounts.NewToken:
        """A new API token of the user, valid ``days`` days from the facade's time (the policy
        bounds it); its secret is in the answer only (stored hashed), audited."""
        with self.writing() as conn:
            return accounts.create_token(
                conn,
                self.user,
                self.user.name,
                label=label,
                days=days,
                policy=self.access.policy,
                now=self.access.now,
            )

    def revoke_token(self, token: str) -> int:
        """Revoke a token (id, prefix or secret) the user may manage; returns its id, audited."""
        with self.writing() as conn:
            return accounts.revoke_token(conn, self.user, token)

    # -- datastore ------------------------------------------------------------------------------

    def file_location(self, file_id: int) -> tuple[Path, str, str]:
        """(path of the bytes, download name, sha256) of a catalogued file the user may see (a file
        ingested by reference stays where it was; one copied in is in the storage root)."""
        self._require("file", file_id)
        row = self.conn.execute(
            select(File.path, File.storage, File.stored_path, File.sha256).where(File.id == file_id)
        ).first()
        if row is None:
            raise NotFound(f"no file with id {file_id}")
        path = resolve_stored_path(row.storage, row.stored_path, self.storage_root)
        return Path(path), Path(row.path).name, row.sha256

    def open_file(self, file_id: int) -> IO[bytes]:
        """The bytes of a catalogued file the user may see, opened for reading; close it."""
        return self.file_location(file_id)[0].open("rb")

    def stored_path(self, relative: str) -> Path:
        """The storage root joined with a catalogued relative path; it must stay inside the
        storage root once resolved (symbolic links included) and be a file: no traversal,
        whatever the row says."""
        root = self.storage_root.resolve()
        path = (root / relative).resolve()
        if not path.is_relative_to(root) or not path.is_file():
            raise NotFound(f"file {relative!r} is not in the store")
        return path

    def product_file(self, product_id: int, file_id: int) -> tuple[Path, dict[str, Any]]:
        """(path in the store, file row) of one file of a product the user may see."""
        self._require("product", product_id)
        row = self.conn.execute(
            select(ProductFile).where(ProductFile.id == file_id, ProductFile.product_id == product_id)
        ).first()
        if row is None:
            raise NotFound(f"no file {file_id} in product {product_id}")
        return self.stored_path(row.path), {
            "id": row.id,
            "name": Path(row.path).name,
            "path": row.path,
            "role": row.role,
            "sha256": row.sha256,
            "size": row.size,
            "media_type": row.media_type,
        }

    def open_product_file(self, product_id: int, file_id: int) -> IO[bytes]:
        """One file of a product the user may see, opened for reading (binary); close it."""
        path, _ = self.product_file(product_id, file_id)
        return path.open("rb")

    def product_zip_members(self, product_id: int) -> list[tuple[Path, dict[str, Any]]]:
        """Every file of a product the user may see, with its path inside the product's zip
        (``arcname``: relative to the product's directory)."""
        storage_dir = self.conn.scalar(select(Product.storage_dir).where(Product.id == product_id))
        out = []
        for row in self.product_files(product_id):
            path, info = self.product_file(product_id, row["id"])
            try:
                inside = Path(info["path"]).relative_to(storage_dir).as_posix()
            except ValueError:
                inside = info["name"]
            out.append((path, {**info, "arcname": inside}))
        return out

    # -- provenance -----------------------------------------------------------------------------

    def provenance_record(self, product_id: int) -> dict[str, Any]:
        """The provenance record of a product the user may see (JSON dict of a
        :class:`hcdc.pipeline.provenance.ProvenanceRecord`, as the worker stored it)."""
        self._require("product", product_id)
        try:
            return prod.get_record(self.conn, product_id)
        except LookupError:
            raise NotFound(f"no product with id {product_id}") from None

    def provenance(
        self, product_id: int, depth: int = 0, record: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A product the user may see, its parent products (those the user may see; others
        named as hidden) and, at the leaves, the input files with their checksums and catalogue
        ids (None for a file the user may not see). ``record``: the product's provenance record
        when the caller has read it already."""
        if record is None:
            record = self.provenance_record(product_id)
        else:
            self._require("product", product_id)
        node: dict[str, Any] = {
            "product_id": product_id,
            "recipe": f"{record['recipe']} {record['recipe_version']}",
            "parameters": record.get("parameters"),
            "software_version": record.get("software_version"),
            "git_commit": record.get("git_commit"),
            "started": record.get("started"),
            "finished": record.get("finished"),
            "inputs": [],
            "parents": [],
        }
        for item in record.get("inputs") or []:
            files = []
            for f in item.get("files") or []:
                file_id = self.conn.scalar(
                    select(File.id)
                    .where(File.sha256 == f.get("sha256"), File.is_current)
                    .order_by(File.id)
                    .limit(1)
                )
                if file_id is not None and not self.access.can_see_file(file_id):
                    file_id = None
                files.append(
                    {"name": Path(str(f.get("path", ""))).name, "sha256": f.get("sha256"), "file_id": file_id}
                )
            node["inputs"].append({"name": item.get("name"), "kind": item.get("kind"), "files": files})
        for parent_record in record.get("parents") or []:
            parent = prod.product_of_record(self.conn, parent_record)
            if parent is None or depth >= MAX_PROVENANCE_DEPTH:
                continue
            if self.access.can_see_product(parent):
                node["parents"].append(self.provenance(parent, depth + 1))
            else:
                node["parents"].append({"product_id": None, "hidden": True})
        return node

    # -- processing: batches and job logs -------------------------------------------------------

    def batches(self, *, offset: int = 0, limit: int = 50) -> Page:
        """One page of the batches the user may see (R10), newest first, each with its state, job
        counts per state and progress (:func:`hcdc.archive.batches.batch_rows`)."""
        visible = self.access.batches_clause()
        rows = batch_reads.batch_rows(self.conn, visible, offset=offset, limit=limit)
        return Page(batch_reads.count_batches(self.conn, visible), offset, limit, rows)

    def batch(self, batch_id: int) -> dict[str, Any]:
        """A batch the user may see, with its jobs (those the user may see: all of them for its
        submitter and staff)."""
        self._require("batch", batch_id)
        (row,) = batch_reads.batch_rows(self.conn, self.access.batches_clause(), ids=[batch_id], limit=None)
        row["jobs"] = batch_reads.batch_jobs(self.conn, batch_id, self.access.jobs_clause())
        return row

    def job_log(self, job_id: int, *, after: int = 0, limit: int | None = 5000) -> list[dict[str, Any]]:
        """The log of a job the user may see (R10), oldest line first; tracebacks (server paths)
        only for admins and operators (:func:`hcdc.archive.batches.job_log_lines`)."""
        self._require("job", job_id)
        if self.conn.scalar(select(Job.id).where(Job.id == job_id)) is None:
            raise NotFound(f"no job with id {job_id}")
        tracebacks = bool(self.access.can_see_tracebacks())
        return batch_reads.job_log_lines(self.conn, job_id, tracebacks=tracebacks, after=after, limit=limit)


def _shown_file(row: Mapping[str, Any]) -> dict[str, Any]:
    """A product file as services show it: by id and name, never its storage path."""
    return {
        "id": row["id"],
        "name": Path(row["path"]).name,
        "role": row["role"],
        "sha256": row["sha256"],
        "size": row["size"],
        "media_type": row["media_type"],
    }


def _stats(values: list[float | None]) -> dict[str, float | None]:
    """min, median and max of the finite values (None each when there is none)."""
    good = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not good:
        return {"min": None, "median": None, "max": None}
    return {"min": min(good), "median": float(np.median(good)), "max": max(good)}
