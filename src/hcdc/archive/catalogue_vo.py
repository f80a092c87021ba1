"""The Virtual Observatory services' data as one user sees it: a sub-facade of the catalogue facade.

Reached as :attr:`hcdc.archive.catalogue.UserCatalogue.vo`. What the VO routers of
:mod:`hcdc.web.vo` read and write goes through it, never through SQL of their own:

* **TAP** (sync and async): :meth:`VoCatalogue.run_adql` runs one ADQL query for the user
  (:mod:`hcdc.archive.tap_query`: ``ivoa.obscore`` and ``tdb.*`` as the user's rights-filtered
  SELECTs, a read-only transaction with a statement timeout); uploads are literal tables;
* **UWS** jobs of the asynchronous TAP (:mod:`hcdc.archive.tap_jobs`): the user's own jobs only
  (a job of someone else is :class:`NotFound`, as a missing one), created, changed, run and
  deleted in write transactions; results and inline uploads under the storage root;
* **ObsCore** and **SIA 2.0**: :meth:`VoCatalogue.obscore` (the user's ``ivoa.obscore``,
  :func:`hcdc.archive.obscore.published_select`) and :meth:`VoCatalogue.sia_query`;
* **DataLink** and provenance: :meth:`VoCatalogue.linker` (:class:`hcdc.archive.vo_links.Linker`)
  and :meth:`VoCatalogue.provenance`.

It decides nothing itself: every row is filtered by :mod:`hcdc.archive.access`, through the
clauses and per-object decisions of the facade's :class:`~hcdc.archive.access.AccessContext`.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, delete, select, update

from hcdc.archive.catalogue_errors import NotFound
from hcdc.archive.models import utcnow
from hcdc.archive.obscore import published_select
from hcdc.archive.prov_model import file_provenance, product_provenance
from hcdc.archive.sia import build_query, max_field_deg, run_query
from hcdc.archive.tap_jobs import RESULTS_DIR, TapJob, uploads_folder
from hcdc.archive.tap_query import STATEMENT_TIMEOUT_S, TapRows, execute_adql
from hcdc.archive.tap_upload import UploadedTable

if TYPE_CHECKING:
    from hcdc.archive.catalogue_errors import VoSession
    from hcdc.archive.vo_links import Linker

__all__ = ["DEFAULT_DESTRUCTION", "VoCatalogue"]

#: how long an async job and its result are kept by default (UWS destruction time)
DEFAULT_DESTRUCTION = dt.timedelta(days=7)
#: names of inline upload parts kept with a job (also their file names)
_PART_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")


class VoCatalogue:
    """ObsCore, TAP and its jobs, SIA and DataLink as :attr:`UserCatalogue.vo` lets the user see them."""

    def __init__(self, catalogue: VoSession) -> None:
        self.catalogue = catalogue
        self.conn = catalogue.conn
        self.access = catalogue.access
        self.storage_root = Path(catalogue.storage_root)

    @property
    def user(self) -> Any:
        return self.catalogue.user

    # -- ObsCore, TAP, SIA ----------------------------------------------------------------------

    def obscore(self, *, authority: str, base_url: str) -> Select:
        """``ivoa.obscore`` as the user sees it now (:func:`~hcdc.archive.obscore.published_select`)."""
        return published_select(
            self.user, self.access.now, authority=authority, base_url=base_url, policy=self.access.policy
        )

    def run_adql(
        self,
        query: str,
        *,
        maxrec: int,
        authority: str,
        base_url: str,
        timeout_s: float = STATEMENT_TIMEOUT_S,
        uploads: Sequence[UploadedTable] = (),
    ) -> TapRows:
        """Run one ADQL query for the user (raises ``AdqlError`` naming the problem), on its own
        read-only connection of the data centre's engine (:func:`hcdc.archive.tap_query.execute_adql`)."""
        return execute_adql(
            self.catalogue.write_engine(),
            query,
            self.user,
            self.access.now,
            maxrec=maxrec,
            authority=authority,
            base_url=base_url,
            policy=self.access.policy,
            timeout_s=timeout_s,
            uploads=uploads,
        )

    def sia_query(
        self, params: Mapping[str, Sequence[str]], *, maxrec: int, authority: str, base_url: str
    ) -> tuple[list[tuple[Any, ...]], bool]:
        """The ObsCore rows the user sees that match SIA 2.0 ``params`` (names upper-cased), at most
        ``maxrec``, and whether more matched (:mod:`hcdc.archive.sia`; raises ``SiaError``)."""
        published = self.obscore(authority=authority, base_url=base_url)
        query = build_query(
            published, params, dialect=self.conn.dialect.name, field_margin=max_field_deg(self.conn)
        )
        return run_query(self.conn, query, maxrec)

    # -- UWS jobs of the asynchronous TAP --------------------------------------------------------

    def _mine(self) -> Any:
        uid = self.user.id
        return TapJob.owner_user_id.is_(None) if uid is None else TapJob.owner_user_id == uid

    def jobs(self) -> list[Any]:
        """The user's jobs (anonymous jobs for anonymous callers), newest first; expired jobs of
        anyone are deleted first, with their files (:meth:`purge_expired`)."""
        self.purge_expired()
        return list(
            self.conn.execute(select(TapJob).where(self._mine()).order_by(TapJob.creation_time.desc()))
        )

    def job(self, job_id: str) -> Any:
        """The user's job ``job_id`` (its row, read afresh); :class:`NotFound` for another's or none."""
        if self.conn.in_transaction():
            self.conn.rollback()  # another thread or request may have changed it
        row = self.conn.execute(select(TapJob).where(TapJob.id == job_id)).first()
        if row is None or row.owner_user_id != self.user.id:
            raise NotFound(f"no job {job_id!r}")
        return row

    def phase(self, job_id: str) -> str | None:
        """The current phase of one of the user's jobs (None once deleted)."""
        try:
            return self.job(job_id).phase
        except NotFound:
            return None

    def create_job(self, parameters: dict[str, str], run_id: str | None) -> str:
        """A new PENDING job of the user with these parameters; returns its id."""
        job_id = secrets.token_hex(8)
        now = utcnow()
        with self.catalogue.writing() as conn:
            conn.execute(
                TapJob.__table__.insert().values(
                    id=job_id,
                    owner_user_id=self.user.id,
                    owner_name=None if self.user.id is None else self.user.name,
                    phase="PENDING",
                    run_id=run_id,
                    parameters=parameters,
                    creation_time=now,
                    execution_duration=STATEMENT_TIMEOUT_S,
                    destruction=now + DEFAULT_DESTRUCTION,
                    overflow=False,
                )
            )
        return job_id

    def update_job(self, job_id: str, **values: Any) -> None:
        """Change columns of one of the user's jobs (phase, times, parameters, result)."""
        self.job(job_id)
        with self.catalogue.writing() as conn:
            conn.execute(update(TapJob).where(TapJob.id == job_id).values(**values))

    def delete_job(self, job_id: str) -> None:
        """Delete one of the user's jobs with its result and kept uploads."""
        row = self.job(job_id)
        self._remove_files(row.id, row.result_path)
        with self.catalogue.writing() as conn:
            conn.execute(delete(TapJob).where(TapJob.id == job_id))

    def purge_expired(self) -> None:
        """Delete every job past its destruction time, with its files (UWS: the service's duty)."""
        now = utcnow()
        with self.catalogue.writing() as conn:
            expired = conn.execute(
                select(TapJob.id, TapJob.result_path).where(TapJob.destruction < now)
            ).all()
            for job in expired:
                self._remove_files(job.id, job.result_path)
            if expired:
                conn.execute(delete(TapJob).where(TapJob.id.in_([j.id for j in expired])))

    def _remove_files(self, job_id: str, result_path: str | None) -> None:
        if result_path:
            (self.storage_root / result_path).unlink(missing_ok=True)
        folder = uploads_folder(self.storage_root, job_id)
        if folder.is_dir():
            for path in folder.iterdir():
                path.unlink(missing_ok=True)
            folder.rmdir()

    def store_result(self, job_id: str, body: bytes) -> str:
        """Write the result of one of the user's jobs under the storage root; returns its path
        relative to the root (what the job row keeps)."""
        self.job(job_id)
        folder = self.storage_root / RESULTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        (folder / job_id).write_bytes(body)
        return f"{RESULTS_DIR}/{job_id}"

    def result_file(self, job_id: str) -> Path | None:
        """The result file of one of the user's completed jobs (None: it has none)."""
        row = self.job(job_id)
        if (
            row.phase != "COMPLETED"
            or not row.result_path
            or not str(row.result_path).startswith(RESULTS_DIR + "/")
        ):
            return None
        path = self.storage_root / row.result_path
        return path if path.is_file() else None

    def result_bytes(self, job_id: str) -> bytes | None:
        """The result of one of the user's completed jobs (an upload by URL); None otherwise."""
        try:
            path = self.result_file(job_id)
        except NotFound:
            return None
        return path.read_bytes() if path is not None else None

    def keep_upload(self, job_id: str, name: str, data: bytes) -> bool:
        """Keep an inline upload part of one of the user's jobs until it runs (False: a part name
        that cannot be a file name, not kept)."""
        self.job(job_id)
        if not _PART_NAME.match(name):
            return False
        folder = uploads_folder(self.storage_root, job_id)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name.lower()).write_bytes(data)
        return True

    def kept_upload(self, job_id: str) -> Callable[[str], bytes | None]:
        """Reads the inline uploads kept for one of the user's jobs, by part name."""
        self.job(job_id)
        folder = uploads_folder(self.storage_root, job_id)

        def read(name: str) -> bytes | None:
            path = folder / name.lower()
            return path.read_bytes() if _PART_NAME.match(name) and path.is_file() else None

        return read

    # -- DataLink and provenance ---------------------------------------------------------------

    def linker(self, *, authority: str, base_url: str) -> Linker:
        """The DataLink links of publisher DIDs for the user (:class:`hcdc.archive.vo_links.Linker`)."""
        from hcdc.archive.vo_links import Linker

        return Linker(self.catalogue, authority=authority, base_url=base_url)

    def provenance(
        self, kind: str, number: int, *, authority: str, locate: Callable[[str, int], str | None]
    ) -> dict[str, Any]:
        """The IVOA Provenance DM document (W3C PROV-JSON) of a product or raw file the user may
        see (:mod:`hcdc.archive.prov_model`); ``LookupError`` for one the user may not see or none."""
        build = product_provenance if kind == "product" else file_provenance
        return build(self.conn, self.access, number, authority, locate)
