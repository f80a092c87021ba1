"""Ingest: files on disk -> catalogue rows (or quarantine rows), idempotently and resumably.

How a batch runs:

1. :func:`hcdc.archive.storage.discover` expands the arguments into files.
2. Files whose path is already catalogued as current with the same size and modification
   time are counted as duplicates without being read (this is what makes a re-run after an
   interruption cheap); ``rehash=True`` turns that shortcut off.
3. The remaining files are inspected by :func:`hcdc.archive.inspection.inspect_file`
   (sha256, size, raw header cards, instrument identification and normalized metadata via
   :func:`hcdc.instruments.registry.read_metadata`, which reads plain FITS files' primary
   header once with the fast card parser and other files with astropy), dataset key and
   sequence role, in a process pool for large batches.
4. The main process writes the results; each file is either fully there or absent. A new
   file is one row, written with the other new files of the group in one multi-row
   ``INSERT ... ON CONFLICT DO NOTHING`` (a conflict skips only that file's row); a new
   version (new row + old row flagged) or a path leaving quarantine is written in its own
   SAVEPOINT. Groups of ``commit_every`` files (or ``commit_interval_s`` seconds of reading)
   are written in one short write transaction, after their files were read (and, with
   ``--copy``, copied): the catalogue's write lock is held for the database statements only,
   so a worker or a watcher writing at the same time waits milliseconds. A process killed
   between two commits loses only uncommitted files, which the next run ingests again.
   Uniqueness (sha256 among versions, one current version per path, path + version) is
   enforced by the database, so even two concurrent runs cannot add the same bytes twice.
5. Datasets touched by the batch are recomputed (:func:`hcdc.archive.datasets.refresh_datasets`).

Outcomes per file: ``ingested`` (new path), ``new_version`` (changed bytes under a known
path; the old row is kept with ``is_current`` false), ``duplicate`` (these bytes are already
catalogued, under any path) or ``quarantined`` (with a reason code and a message naming the
file).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, StatementError

from hcdc.archive.datasets import refresh_datasets
from hcdc.archive.db import Catalogue, mark_writer
from hcdc.archive.granules import insert_granules
from hcdc.archive.inspection import (
    DATABASE_ERROR,
    INTERNAL_ERROR,
    Inspection,
    display_path,
    inspect_file,
    storable_text,
)
from hcdc.archive.inspection import INVALID_METADATA as INVALID_METADATA  # re-exported
from hcdc.archive.inspection import UNREADABLE as UNREADABLE  # re-exported
from hcdc.archive.inspection import column_problem as column_problem  # re-exported
from hcdc.archive.models import File, QuarantinedFile, utcnow
from hcdc.archive.obscore import sync_file_rows
from hcdc.archive.storage import copy_into_store, discover
from hcdc.archive.targets import link as link_targets
from hcdc.runtime.faults import fault_point
from hcdc.runtime.processes import exit_with_parent

# Errors a database driver (or SQLAlchemy's parameter processing) raises for one row's values;
# they quarantine that file. Connection problems (OperationalError) are not among them.
_ROW_ERRORS = (IntegrityError, DBAPIError, StatementError, OverflowError, ValueError, UnicodeError)


# One prepared statement (Core table, parameters passed at execution): building an ORM
# insert with ~50 values per file costs more than the database write itself.
_INSERT_FILE = insert(File.__table__).returning(File.__table__.c.id)


def _insert_ignoring_conflicts(dialect: str):  # noqa: ANN202 - an SQLAlchemy Insert
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING id, sha256`` into files, or None.

    A row that would break a unique constraint (bytes or current path already catalogued,
    by a concurrent run) is skipped instead of aborting the transaction; RETURNING tells which
    rows went in. Supported on PostgreSQL and SQLite >= 3.35.
    """
    table = File.__table__
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        return None
    return dialect_insert(table).on_conflict_do_nothing().returning(table.c.id, table.c.sha256)


# Below this many files to inspect, a process pool costs more than it saves.
PARALLEL_THRESHOLD = 24


@dataclass
class FileOutcome:
    """What happened to one file."""

    path: str
    status: str  # ingested, new_version, duplicate, quarantined
    file_id: int | None = None
    reason_code: str | None = None
    reason: str | None = None


@dataclass
class IngestSummary:
    """Counts of one ingest run (``as_dict`` is the ``--json`` output)."""

    discovered: int = 0
    ingested: int = 0
    new_versions: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    quarantined_files: list[dict[str, str]] = field(default_factory=list)
    missing_paths: list[str] = field(default_factory=list)
    datasets_updated: int = 0
    workers: int = 1
    elapsed_s: float = 0.0

    def add(self, outcome: FileOutcome) -> None:
        if outcome.status == "ingested":
            self.ingested += 1
        elif outcome.status == "new_version":
            self.new_versions += 1
        elif outcome.status == "duplicate":
            self.duplicates += 1
        else:
            self.quarantined += 1
            code = outcome.reason_code or INTERNAL_ERROR
            self.quarantine_reasons[code] = self.quarantine_reasons.get(code, 0) + 1
            self.quarantined_files.append(
                {"path": outcome.path, "reason_code": code, "reason": outcome.reason or ""}
            )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Current:
    """The current catalogued version of a path (kept in memory during a run)."""

    id: int
    version: int
    size: int
    mtime_ns: int | None
    dataset_key: str | None


class Ingester:
    """Ingest files into one catalogue (see the module docstring).

    ``copy``: copy the bytes into the storage root instead of storing the path.
    ``workers``: processes that inspect files (default: the data centre's setting, one per
    core); 1 means inline. ``commit_every`` / ``commit_interval_s``: how many files, or how
    much time, between two commits.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        copy: bool = False,
        workers: int | None = None,
        rehash: bool = False,
        commit_every: int = 100,
        commit_interval_s: float = 1.0,
    ) -> None:
        self.catalogue = catalogue
        self.copy = copy
        self.workers = max(1, workers if workers else catalogue.settings.resolved_workers)
        self.rehash = rehash
        self.commit_every = max(1, commit_every)
        self.commit_interval_s = commit_interval_s
        self._known_sha: set[str] = set()
        self._current: dict[str, _Current] = {}
        self._quarantined_paths: set[str] = set()
        self._dirty_keys: set[str] = set()
        # new files waiting for the next multi-row insert (see _write / _flush)
        self._pending: list[tuple[Inspection, dict[str, Any]]] = []
        self._pending_sha: set[str] = set()
        self._insert_many = _insert_ignoring_conflicts(catalogue.engine.dialect.name)
        self._stored: dict[str, str] = {}  # --copy: sha256 -> path in the store, copied this run
        # (file id, granule rows) of files recorded in the current transaction, written by _commit
        self._granules_due: list[tuple[int, list[dict[str, Any]]]] = []
        # (file id, OBJECT name) of science files recorded in the current transaction: linked to
        # their Target Data Base target by _commit (hcdc.archive.targets.link)
        self._targets_due: list[tuple[int, str | None]] = []
        self._file_mode = catalogue.settings.resolved_file_mode if copy else None

    # -- state -------------------------------------------------------------------------
    def _load_state(self, conn: Connection) -> None:
        """Hashes, current versions and quarantined paths already in the catalogue."""
        self._known_sha = set(conn.scalars(select(File.sha256)))
        rows = conn.execute(
            select(File.id, File.path, File.version, File.size, File.mtime_ns, File.dataset_key).where(
                File.is_current
            )
        )
        self._current = {r.path: _Current(r.id, r.version, r.size, r.mtime_ns, r.dataset_key) for r in rows}
        self._quarantined_paths = set(conn.scalars(select(QuarantinedFile.path).distinct()))

    def _unchanged(self, path: Path) -> bool:
        """True when ``path`` is catalogued as current with the same size and mtime."""
        current = self._current.get(str(path))
        if current is None or self.rehash:
            return False
        try:
            stat = path.stat()
        except OSError:
            return False
        return current.size == stat.st_size and current.mtime_ns == stat.st_mtime_ns

    # -- writing -----------------------------------------------------------------------
    def _quarantine(self, conn: Connection, insp: Inspection) -> FileOutcome:
        now = utcnow()
        insp = dataclasses.replace(
            insp,
            path=display_path(insp.path),
            error_code=insp.error_code or INTERNAL_ERROR,
            error=storable_text(insp.error or f"{display_path(insp.path)}: no reason recorded"),
        )
        with conn.begin_nested():
            existing = conn.execute(
                select(QuarantinedFile.id).where(
                    QuarantinedFile.path == insp.path,
                    func.coalesce(QuarantinedFile.sha256, "") == (insp.sha256 or ""),
                )
            ).scalar_one_or_none()
            if existing is None:
                conn.execute(
                    insert(QuarantinedFile).values(
                        path=insp.path,
                        sha256=insp.sha256,
                        size=insp.size,
                        reason_code=insp.error_code,
                        reason=insp.error,
                        first_seen=now,
                        last_seen=now,
                        attempts=1,
                    )
                )
            else:
                conn.execute(
                    update(QuarantinedFile)
                    .where(QuarantinedFile.id == existing)
                    .values(
                        reason_code=insp.error_code,
                        reason=insp.error,
                        size=insp.size,
                        last_seen=now,
                        attempts=QuarantinedFile.attempts + 1,
                    )
                )
        self._quarantined_paths.add(insp.path)
        return FileOutcome(insp.path, "quarantined", reason_code=insp.error_code, reason=insp.error)

    def _row(self, insp: Inspection, previous: _Current | None, now: dt.datetime) -> dict[str, Any]:
        """Parameters of the files row of ``insp`` (copying the bytes first with ``--copy``)."""
        assert insp.sha256 is not None and insp.values is not None
        if self.copy:
            self._copy(insp)  # normally done already, before the transaction (see _commit)
            stored = self._stored[insp.sha256]
            stored = str(
                copy_into_store(insp.path, self.catalogue.storage_root, insp.sha256, mode=self._file_mode)
            )
        else:
            stored = insp.path
        return {
            "path": insp.path,
            "version": previous.version + 1 if previous else 1,
            "is_current": True,
            "sha256": insp.sha256,
            "size": insp.size,
            "mtime_ns": insp.mtime_ns,
            "storage": "copy" if self.copy else "reference",
            "stored_path": stored,
            "ingested_at": now,
            **insp.values,
        }

    def _recorded(self, insp: Inspection, file_id: int, previous: _Current | None) -> FileOutcome:
        """Update the in-memory state after ``insp`` was written as row ``file_id``."""
        assert insp.sha256 is not None and insp.values is not None and insp.size is not None
        self._known_sha.add(insp.sha256)
        self._quarantined_paths.discard(insp.path)
        if previous is not None and previous.dataset_key:
            self._dirty_keys.add(previous.dataset_key)
        key = insp.values.get("dataset_key")
        if key:
            self._dirty_keys.add(key)
        version = previous.version + 1 if previous else 1
        self._current[insp.path] = _Current(file_id, version, insp.size, insp.mtime_ns, key)
        if insp.granules:
            self._granules_due.append((file_id, insp.granules))
        if insp.values.get("target") and not insp.values.get("is_calibration"):
            self._targets_due.append((file_id, insp.values["target"]))
        return FileOutcome(insp.path, "new_version" if previous else "ingested", file_id=file_id)

    def _write(self, conn: Connection, insp: Inspection) -> FileOutcome | None:
        """Record one inspected file; returns what happened, or None when it was buffered.

        The common case (bytes and path both new) is buffered and written by :meth:`_flush`
        with the other buffered files in one multi-row ``INSERT ... ON CONFLICT DO NOTHING``
        (one row per file: each file is whole or absent, and a conflict skips only its row).
        Other cases (a new version, which also flags the old row; a path leaving quarantine;
        a quarantined file) are written at once in their own savepoint.
        """
        if insp.error_code is not None or insp.values is None:
            return self._quarantine(conn, insp)
        assert insp.sha256 is not None and insp.size is not None
        if insp.sha256 in self._known_sha or insp.sha256 in self._pending_sha:
            return FileOutcome(insp.path, "duplicate")
        previous = self._current.get(insp.path)
        now = utcnow()
        if self._insert_many is not None and previous is None and insp.path not in self._quarantined_paths:
            self._pending.append((insp, self._row(insp, None, now)))
            self._pending_sha.add(insp.sha256)
            return None
        try:
            with conn.begin_nested():
                params = self._row(insp, previous, now)
                if previous is not None:
                    conn.execute(
                        update(File)
                        .where(File.id == previous.id)
                        .values(is_current=False, superseded_at=now, dataset_id=None)
                    )
                file_id = conn.execute(_INSERT_FILE, params).scalar_one()
                if insp.path in self._quarantined_paths:
                    # the file is good now: its earlier quarantine entries are resolved
                    conn.execute(delete(QuarantinedFile).where(QuarantinedFile.path == insp.path))
        except IntegrityError:
            # Another process catalogued these bytes (or this path's new version) between our
            # state snapshot and now: the database constraint decided, nothing was written.
            self._load_conflict(conn, insp)
            return FileOutcome(insp.path, "duplicate")
        except _ROW_ERRORS as exc:
            return self._refused(conn, insp, exc)
        return self._recorded(insp, file_id, previous)

    def _refused(self, conn: Connection, insp: Inspection, exc: BaseException) -> FileOutcome:
        """Quarantine a file whose row the database (or the copy into the store) refused."""
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        insp.error_code, insp.error = (
            DATABASE_ERROR,
            f"{insp.path}: the database refused the row ({reason[0] if reason else type(exc).__name__})",
        )
        return self._quarantine(conn, insp)

    def _flush(self, conn: Connection) -> list[FileOutcome]:
        """Write the buffered new files (caller's transaction); returns their outcomes."""
        if not self._pending:
            return []
        assert self._insert_many is not None
        pending = list(self._pending)
        self._pending.clear()
        self._pending_sha.clear()
        try:
            with conn.begin_nested():
                rows = conn.execute(self._insert_many, [params for _, params in pending]).all()
        except _ROW_ERRORS:
            # The database refused the group (a value it cannot store): retry file by file
            # so that only the offending file is quarantined.
            return [self._insert_one(conn, insp, params) for insp, params in pending]
        inserted = {row.sha256: row.id for row in rows}
        outcomes = []
        for insp, _ in pending:
            if insp.sha256 in inserted:
                outcomes.append(self._recorded(insp, inserted[insp.sha256], None))
            else:  # a concurrent run catalogued these bytes or this path first
                self._load_conflict(conn, insp)
                outcomes.append(FileOutcome(insp.path, "duplicate"))
        return outcomes

    def _insert_one(self, conn: Connection, insp: Inspection, params: dict[str, Any]) -> FileOutcome:
        """Insert one buffered file in its own savepoint; a database refusal quarantines it."""
        assert self._insert_many is not None
        try:
            with conn.begin_nested():
                row = conn.execute(self._insert_many, params).first()
        except _ROW_ERRORS as exc:
            return self._refused(conn, insp, exc)
        if row is None:
            self._load_conflict(conn, insp)
            return FileOutcome(insp.path, "duplicate")
        return self._recorded(insp, row.id, None)

    def _load_conflict(self, conn: Connection, insp: Inspection) -> None:
        """Refresh the in-memory view of a path/hash after a lost race."""
        self._known_sha.add(insp.sha256 or "")
        row = conn.execute(
            select(File.id, File.version, File.size, File.mtime_ns, File.dataset_key).where(
                File.path == insp.path, File.is_current
            )
        ).first()
        if row is not None:
            self._current[insp.path] = _Current(row.id, row.version, row.size, row.mtime_ns, row.dataset_key)

    def _commit(self, conn: Connection, batch: list[Inspection]) -> list[FileOutcome]:
        """Write a batch of inspected files in one short transaction; returns their outcomes.

        Only database statements run inside the transaction (files are read before, and
        ``--copy`` copies the bytes before it begins), so the write lock is held for
        milliseconds and concurrent writers (a worker, a watcher, another ingest) wait at most
        that long. On an error nothing of the batch is committed and the in-memory state may
        be ahead of the database: the exception ends the run (a re-run starts afresh).
        """
        if not batch:
            return []
        if self.copy:
            for insp in batch:
                self._copy(insp)
        outcomes: list[FileOutcome] = []
        try:
            with conn.begin():
                for insp in batch:
                    outcome = self._write(conn, insp)
                    if outcome is not None:
                        outcomes.append(outcome)
                outcomes.extend(self._flush(conn))
                # the granules of the files recorded above, in the same transaction as their rows
                for file_id, granules in self._granules_due:
                    insert_granules(conn, file_id, granules)
                link_targets(conn, "file", self._targets_due)
                # their ObsCore rows (ivoa.obscore), in the same transaction too
                sync_file_rows(conn, [o.file_id for o in outcomes if o.file_id is not None])
                fault_point("ingest.before_commit")
        except BaseException:
            self._pending.clear()
            self._pending_sha.clear()
            raise
        finally:
            self._granules_due.clear()
            self._targets_due.clear()
        fault_point("ingest.after_commit")
        return outcomes

    def _copy(self, insp: Inspection) -> None:
        """``--copy``: put a readable new file's bytes into the store (outside any transaction)."""
        if insp.error_code is not None or insp.values is None or insp.sha256 is None:
            return
        if insp.sha256 in self._known_sha or insp.sha256 in self._stored:
            return
        self._stored[insp.sha256] = str(
            copy_into_store(insp.path, self.catalogue.storage_root, insp.sha256, mode=self._file_mode)
        )

    # -- running -----------------------------------------------------------------------
    def _inspections(self, todo: list[str], on_begin: Callable[[int], None] | None) -> Iterable[Inspection]:
        total = len(todo)
        if self.workers > 1 and total >= PARALLEL_THRESHOLD:
            # fork: workers inherit the imported modules (no re-import of astropy per worker).
            # The pool is created before the caller starts its progress display (on_begin),
            # so no display thread exists when the workers are forked.
            context = multiprocessing.get_context("fork")
            chunksize = max(1, min(16, total // (self.workers * 8)))
            # the readers end with this process, even when it is killed (no orphans left behind)
            with context.Pool(self.workers, initializer=exit_with_parent, initargs=(os.getpid(),)) as pool:
                if on_begin:
                    on_begin(total)
                yield from pool.imap_unordered(inspect_file, todo, chunksize=chunksize)
            return
        if on_begin:
            on_begin(total)
        for path in todo:
            yield inspect_file(path)

    def run(
        self,
        paths: Iterable[str | Path],
        *,
        on_begin: Callable[[int], None] | None = None,
        on_file: Callable[[FileOutcome], None] | None = None,
    ) -> IngestSummary:
        """Ingest ``paths`` (files and folders); returns the summary.

        ``on_begin(n)`` is called once with the number of files to inspect, ``on_file`` after
        each file is recorded (progress display).
        """
        started = time.perf_counter()
        files, missing = discover(paths)
        summary = IngestSummary(discovered=len(files), missing_paths=[str(p) for p in missing])
        engine = self.catalogue.engine
        with engine.connect() as conn:
            with conn.begin():
                self._load_state(conn)
            todo: list[str] = []
            for path in files:
                if self._unchanged(path):
                    summary.add(FileOutcome(str(path), "duplicate"))
                else:
                    todo.append(str(path))
            summary.workers = self.workers if len(todo) >= PARALLEL_THRESHOLD else 1
            # from here on every transaction of this connection writes (BEGIN IMMEDIATE on SQLite)
            mark_writer(conn)
            batch: list[Inspection] = []
            last_commit = time.monotonic()

            def commit_batch() -> None:
                for outcome in self._commit(conn, batch):
                    summary.add(outcome)
                    if on_file:
                        on_file(outcome)
                batch.clear()

            for insp in self._inspections(todo, on_begin):
                batch.append(insp)
                due = time.monotonic() - last_commit >= self.commit_interval_s
                if len(batch) >= self.commit_every or due:
                    commit_batch()
                    last_commit = time.monotonic()
            commit_batch()
        summary.datasets_updated = refresh_datasets(engine, self._dirty_keys)
        summary.elapsed_s = round(time.perf_counter() - started, 3)
        return summary


def ingest(
    catalogue: Catalogue,
    paths: Iterable[str | Path],
    *,
    copy: bool = False,
    workers: int | None = None,
    rehash: bool = False,
    on_begin: Callable[[int], None] | None = None,
    on_file: Callable[[FileOutcome], None] | None = None,
) -> IngestSummary:
    """Ingest files and folders into ``catalogue`` (see :class:`Ingester`)."""
    ingester = Ingester(catalogue, copy=copy, workers=workers, rehash=rehash)
    return ingester.run(paths, on_begin=on_begin, on_file=on_file)
