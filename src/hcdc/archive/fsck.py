"""Consistency of storage and catalogue (``hcdc fsck``): orphans, missing files, bad checksums.

What is checked:

* **missing**: a catalogued raw file (any version) or product file whose bytes are not where
  the catalogue says (for raw files stored by reference, the original path);
* **checksum**: a catalogued file whose bytes no longer hash to the recorded sha256
  (``checksums=False`` skips the hashing, which reads every byte of the archive);
* **duplicate**: catalogue rows that should be unique and are not (the same bytes twice among
  raw files, two current versions of a path or of a product lineage, a job's node registered
  twice); the database's constraints forbid them, this verifies it;
* **orphan**: something in the storage root that no catalogue row accounts for and that no
  live process is writing: a results folder of a job attempt that was never registered
  (``products/job-<id>/attempt-<n>/``, a worker killed between publishing and committing), a
  staging folder (``attempt-<n>.tmp``, a worker killed during the run), a partial copy
  (``objects/**/.incoming-*``, an ``ingest --copy`` killed mid-file), a copied object no file
  row refers to, an unregistered rerun folder.

What is *in progress* is left alone and counted apart: the staging or results folder of the
attempt a job is running now under a valid lease, a partial copy whose process still runs on
this host, and -- where liveness cannot be known (reruns, copies made on another host, objects
copied by an ingest that has not committed yet) -- anything younger than ``grace_s``.

``repair=True`` removes the orphans and re-copies a missing or damaged copied raw file from its
original path when that still holds the right bytes; what cannot be repaired (a lost product
file, a moved reference file) stays in the report, with the reason.

:func:`sweep_product_orphans` is the part a worker runs on start and before each attempt.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from hcdc.archive.db import Catalogue
from hcdc.archive.models import File, utcnow
from hcdc.archive.pipeline_models import Job, Product, ProductFile
from hcdc.archive.products import PRODUCTS_DIR
from hcdc.archive.storage import (
    INCOMING_PREFIX,
    OBJECTS_DIR,
    copy_into_store,
    incoming_owner_alive,
    resolve_stored_path,
)
from hcdc.science.checksums import sha256_file

logger = logging.getLogger(__name__)

#: default age (s) under which storage entries whose writer cannot be identified are presumed
#: in progress rather than orphaned
DEFAULT_GRACE_S = 3600.0

_ATTEMPT = re.compile(r"^attempt-(\d+)(\.tmp)?$")
_JOB_DIR = re.compile(r"^job-(\d+)$")

KINDS = ("orphan", "missing", "checksum", "duplicate")


@dataclass
class Problem:
    """One inconsistency: ``kind`` (see :data:`KINDS`), the path or rows concerned, a reason
    for a person, and whether ``--repair`` fixed it."""

    kind: str
    path: str
    detail: str
    repaired: bool = False


@dataclass
class FsckReport:
    """Outcome of :func:`fsck` (``as_dict`` is the ``--json`` output)."""

    raw_files: int = 0
    product_files: int = 0
    checksums_verified: bool = True
    in_progress: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def counts(self, *, unrepaired: bool = False) -> dict[str, int]:
        """Problems per kind (only those still present after a repair with ``unrepaired``)."""
        counts = dict.fromkeys(KINDS, 0)
        for problem in self.problems:
            if not (unrepaired and problem.repaired):
                counts[problem.kind] += 1
        return counts

    @property
    def clean(self) -> bool:
        """True when nothing is (still) wrong."""
        return not any(self.counts(unrepaired=True).values())

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["counts"] = self.counts()
        out["unrepaired"] = self.counts(unrepaired=True)
        out["clean"] = self.clean
        return out


def _remove(path: Path) -> None:
    """Remove a file or folder; then its job folder too, if that is left empty."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    if _JOB_DIR.match(path.parent.name):
        try:
            path.parent.rmdir()  # only when empty: a new attempt's folder is never touched
        except OSError:
            pass


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


# --------------------------------------------------------------------------------------------
# products/: results folders of jobs and reruns


def _registered_dirs(conn: Connection) -> set[str]:
    """Storage folders (relative, POSIX) holding registered products, and their parents up to
    ``products/`` (a job attempt folder is registered when one of its node folders is)."""
    dirs: set[str] = set()
    for (storage_dir,) in conn.execute(select(Product.storage_dir)):
        parts = Path(storage_dir).parts
        for n in range(2, len(parts) + 1):
            dirs.add(Path(*parts[:n]).as_posix())
    return dirs


def _running_attempts(conn: Connection, now: dt.datetime) -> dict[int, int]:
    """job id -> attempt number, for the jobs running now under a valid lease."""
    rows = conn.execute(
        select(Job.id, Job.attempts).where(Job.state == "running", Job.lease_expires_at >= now)
    )
    return {job_id: attempts for job_id, attempts in rows}


def product_orphans(
    conn: Connection, storage_root: Path, *, job_id: int | None = None, grace_s: float = DEFAULT_GRACE_S
) -> tuple[list[Path], list[Path]]:
    """``(orphans, in_progress)`` among the folders of ``products/`` (of one job with ``job_id``).

    A job attempt's folder is in progress while that attempt runs under a valid lease; a rerun
    folder (no lease) while it is younger than ``grace_s``. Other unregistered folders are
    orphans, and so is the empty folder of a job that is not running.
    """
    root = Path(storage_root) / PRODUCTS_DIR
    # The folders are listed BEFORE the catalogue is read: a folder that exists at the listing was
    # made after its attempt's claim committed, so the query below sees that attempt running (or,
    # later still, registered: running jobs are read before registered products for that reason).
    # Anything created after the listing is not looked at.
    if job_id is not None:
        job_dirs = [root / f"job-{job_id}"]
    else:
        job_dirs = sorted(p for p in root.glob("job-*") if _JOB_DIR.match(p.name)) if root.is_dir() else []
    listing = {d: sorted(d.iterdir()) for d in job_dirs if d.is_dir()}
    reruns = sorted(root.glob("rerun-*")) if job_id is None and root.is_dir() else []
    running = _running_attempts(conn, utcnow())
    registered = _registered_dirs(conn)
    orphans: list[Path] = []
    in_progress: list[Path] = []
    for job_dir, members in listing.items():
        number = int(_JOB_DIR.match(job_dir.name).group(1))  # type: ignore[union-attr]
        if not members and number not in running:
            orphans.append(job_dir)  # an empty folder of a job that is not running
        for member in members:
            match = _ATTEMPT.match(member.name)
            if match and running.get(number) == int(match.group(1)):
                in_progress.append(member)
            elif not (match and not match.group(2) and _rel(member, storage_root) in registered):
                orphans.append(member)
    for member in reruns:
        if _rel(member, storage_root) not in registered:
            (in_progress if _age_s(member) < grace_s else orphans).append(member)
    return orphans, in_progress


def _rel(path: Path, storage_root: Path) -> str:
    return path.relative_to(storage_root).as_posix()


def sweep_product_orphans(engine: Engine, storage_root: Path, *, job_id: int | None = None) -> list[Path]:
    """Remove the orphan folders of ``products/`` (of one job with ``job_id``), with a log
    line each; returns them. Safe beside running workers (see :func:`product_orphans`)."""
    with engine.connect() as conn:
        orphans, _ = product_orphans(conn, storage_root, job_id=job_id)
    for path in orphans:
        logger.warning("removing %s: results of a job attempt that were never registered", path)
        _remove(path)
    return orphans


# --------------------------------------------------------------------------------------------
# objects/: copied raw files


def _object_orphans(
    conn: Connection, storage_root: Path, grace_s: float
) -> tuple[list[tuple[Path, str]], list[Path]]:
    root = Path(storage_root) / OBJECTS_DIR
    if not root.is_dir():
        return [], []
    stored = set(conn.scalars(select(File.stored_path).where(File.storage == "copy")))
    orphans: list[tuple[Path, str]] = []
    in_progress: list[Path] = []
    for member in sorted(root.rglob("*")):
        if member.is_dir():
            continue
        if member.name.startswith(INCOMING_PREFIX):
            alive = incoming_owner_alive(member.name)
            if alive or (alive is None and _age_s(member) < grace_s):
                in_progress.append(member)
            else:
                orphans.append((member, "partial copy left by an ingest that died mid-file"))
        elif member.relative_to(storage_root).as_posix() not in stored:
            if _age_s(member) < grace_s:  # an ingest copies before it commits the row
                in_progress.append(member)
            else:
                orphans.append((member, "copied file that no catalogue row refers to"))
    return orphans, in_progress


# --------------------------------------------------------------------------------------------
# the whole check


def _duplicates(conn: Connection) -> list[Problem]:
    checks = [
        ("raw files with the same sha256", select(File.sha256).group_by(File.sha256)),
        ("current versions of one path", select(File.path).where(File.is_current).group_by(File.path)),
        (
            "current versions of one product lineage",
            select(Product.lineage).where(Product.is_current).group_by(Product.lineage),
        ),
        (
            "products of one job node",
            select(Product.job_id, Product.node)
            .where(Product.job_id.is_not(None))
            .group_by(Product.job_id, Product.node),
        ),
    ]
    problems = []
    for what, query in checks:
        for row in conn.execute(query.having(func.count() > 1)):
            key = "/".join(str(v) for v in row)
            problems.append(Problem("duplicate", key, f"several {what}: {key}"))
    return problems


def _verify(path: Path, sha256: str, checksums: bool) -> str | None:
    """None when ``path`` holds the bytes of ``sha256``, else the kind of problem."""
    if not path.is_file():
        return "missing"
    if checksums and sha256_file(path) != sha256:
        return "checksum"
    return None


def fsck(
    catalogue: Catalogue, *, repair: bool = False, checksums: bool = True, grace_s: float = DEFAULT_GRACE_S
) -> FsckReport:
    """Check storage against catalogue (see the module doc); with ``repair`` fix what can be."""
    storage_root = catalogue.storage_root
    report = FsckReport(checksums_verified=checksums)
    with catalogue.engine.connect() as conn:
        raw = conn.execute(select(File.id, File.path, File.sha256, File.storage, File.stored_path)).all()
        files = conn.execute(select(ProductFile.product_id, ProductFile.path, ProductFile.sha256)).all()
        report.problems.extend(_duplicates(conn))
        product_dirs, product_busy = product_orphans(conn, storage_root, grace_s=grace_s)
        objects, object_busy = _object_orphans(conn, storage_root, grace_s)
    report.raw_files, report.product_files = len(raw), len(files)
    report.in_progress = [str(p) for p in [*product_busy, *object_busy]]

    for row in raw:
        path = resolve_stored_path(row.storage, row.stored_path, storage_root)
        kind = _verify(path, row.sha256, checksums)
        if kind is None:
            continue
        problem = Problem(kind, str(path), f"raw file {row.id} ({row.path}): " + _WHY[kind])
        if repair and row.storage == "copy" and _verify(Path(row.path), row.sha256, True) is None:
            path.unlink(missing_ok=True)
            copy_into_store(row.path, storage_root, row.sha256)
            problem.repaired = _verify(path, row.sha256, True) is None
            problem.detail += "; copied again from the original" if problem.repaired else ""
        elif row.storage == "copy":
            problem.detail += "; the original is gone or changed: restore the file from a backup"
        report.problems.append(problem)
    for row in files:
        path = storage_root / row.path
        kind = _verify(path, row.sha256, checksums)
        if kind is not None:
            detail = f"file of product {row.product_id}: {_WHY[kind]}; rebuild it with 'hcdc rerun'"
            report.problems.append(Problem(kind, str(path), detail))

    orphans = [(p, "results of a job attempt or rerun that were never registered") for p in product_dirs]
    for path, reason in [*orphans, *objects]:
        problem = Problem("orphan", str(path), reason)
        if repair:
            logger.warning("removing %s: %s", path, reason)
            _remove(path)
            problem.repaired = not path.exists()
        report.problems.append(problem)
    return report


_WHY = {
    "missing": "the bytes are not where the catalogue says",
    "checksum": "the bytes no longer match the recorded sha256",
}
