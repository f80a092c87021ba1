"""``hcdc fsck``: orphans, missing files, checksum mismatches and duplicates between storage and
catalogue, reported and (with --repair) fixed, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from helpers.faults import hcdc
from sqlalchemy import select, text

from hcdc.archive.db import init_data_centre
from hcdc.archive.fsck import fsck
from hcdc.archive.ingest import ingest
from hcdc.archive.models import File
from hcdc.archive.storage import copy_into_store, incoming_prefix, object_relpath
from hcdc.science.checksums import sha256_file


def _age(path: Path, seconds: float = 7200) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def _dead_pid() -> int:
    """A pid of this host that no process has (the owner of a partial copy that died)."""
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid


def test_a_fresh_store_is_clean_and_orphans_are_found_and_removed(catalogue, sphere_files) -> None:
    ingest(catalogue, list(sphere_files.values()), copy=True)
    root = catalogue.storage_root
    report = fsck(catalogue)
    assert report.clean and report.raw_files == 8 and report.problems == []

    # what killed processes leave behind
    attempt = root / "products" / "job-41" / "attempt-1"  # published, never registered
    (attempt / "level2").mkdir(parents=True)
    (attempt / "level2" / "image.fits").write_bytes(b"x" * 10)
    staging = root / "products" / "job-42" / "attempt-3.tmp"  # a run cut short
    staging.mkdir(parents=True)
    stored = Path(next(iter(catalogue.engine.connect().scalars(select(File.stored_path)))))
    folder = root / stored.parent
    partial = folder / (incoming_prefix().rsplit("-", 2)[0] + f"-{_dead_pid()}-abc")  # ingest died mid-copy
    partial.write_bytes(b"SIMPLE")
    alive = folder / (incoming_prefix() + "xyz")  # this process: a copy in progress
    alive.write_bytes(b"SIMPLE")
    stray = root / "objects" / "ab" / ("ab" + "0" * 62) / "stray.fits"  # copied, never catalogued
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"y")
    young = root / "objects" / "cd" / ("cd" + "0" * 62) / "young.fits"  # maybe an ingest about to commit
    young.parent.mkdir(parents=True)
    young.write_bytes(b"z")
    _age(stray)

    report = fsck(catalogue)
    orphans = {Path(p.path) for p in report.problems if p.kind == "orphan"}
    assert orphans == {attempt, staging, partial, stray}
    assert set(report.in_progress) == {str(alive), str(young)}
    assert report.counts() == {"orphan": 4, "missing": 0, "checksum": 0, "duplicate": 0}
    assert not report.clean and all(p.exists() for p in orphans)  # a check changes nothing

    repaired = fsck(catalogue, repair=True)
    assert repaired.clean and all(p.repaired for p in repaired.problems)
    assert not any(p.exists() for p in orphans) and alive.exists() and young.exists()
    assert not (root / "products" / "job-41").exists()  # the job folders left empty went too
    assert fsck(catalogue).clean


def test_missing_and_damaged_files_are_reported_and_copies_restored(catalogue, sphere_files) -> None:
    ingest(catalogue, list(sphere_files.values()), copy=True)
    with catalogue.engine.connect() as conn:
        rows = conn.execute(select(File.path, File.stored_path).order_by(File.id)).all()
    root = catalogue.storage_root
    lost = root / rows[0].stored_path  # deleted from the store; the original is still there
    lost.unlink()
    damaged = root / rows[1].stored_path  # bit rot in the store, and the original is gone
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"!")
    Path(rows[1].path).unlink()

    report = fsck(catalogue)
    kinds = {p.path: p.kind for p in report.problems}
    assert kinds == {str(lost): "missing", str(damaged): "checksum"}
    assert fsck(catalogue, checksums=False).counts()["checksum"] == 0  # the quick check only stats

    repaired = fsck(catalogue, repair=True)
    outcome = {p.path: p.repaired for p in repaired.problems}
    assert outcome == {str(lost): True, str(damaged): False}  # nothing to restore the second from
    assert "backup" in next(p.detail for p in repaired.problems if p.path == str(damaged))
    assert lost.is_file() and fsck(catalogue).counts() == {
        "orphan": 0,
        "missing": 0,
        "checksum": 1,
        "duplicate": 0,
    }


def test_duplicates_the_constraints_should_forbid_are_reported(tmp_path, postgres_url, sphere_files) -> None:
    # PostgreSQL only: SQLite cannot drop a table's unique constraint to simulate the damage
    catalogue = init_data_centre(tmp_path / "dc", database_url=postgres_url)
    ingest(catalogue, list(sphere_files.values()))
    with catalogue.engine.begin() as conn:  # a catalogue damaged behind hcdc's back
        conn.execute(text("ALTER TABLE files DROP CONSTRAINT uq_files_sha256"))
        first = conn.execute(select(File.sha256).order_by(File.id)).scalars().first()
        conn.execute(text("UPDATE files SET sha256 = :sha WHERE id = 2"), {"sha": first})
    report = fsck(catalogue, checksums=False)
    assert report.counts()["duplicate"] == 1, report.problems
    catalogue.close()


def test_cli_exit_status_and_json(catalogue, sphere_files) -> None:
    ingest(catalogue, list(sphere_files.values()), copy=True)
    root = catalogue.settings.root
    clean = hcdc("fsck", "--json", root=root)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["clean"] is True
    orphan = catalogue.storage_root / "products" / "job-7" / "attempt-1"
    orphan.mkdir(parents=True)
    found = hcdc("fsck", root=root)
    assert found.returncode == 1 and "orphan" in found.stdout and "NOT clean" in found.stdout
    fixed = hcdc("fsck", "--repair", "--json", root=root)
    assert fixed.returncode == 0 and json.loads(fixed.stdout)["counts"]["orphan"] == 1
    assert not orphan.parent.exists()  # nor its job folder, left empty


def test_a_copy_clears_partial_copies_of_dead_processes(tmp_path, sphere_files) -> None:
    source = next(iter(sphere_files.values()))
    sha = sha256_file(source)
    folder = tmp_path / "store" / object_relpath(sha, source.name).parent
    folder.mkdir(parents=True)
    dead = folder / (incoming_prefix().rsplit("-", 2)[0] + f"-{_dead_pid()}-abc")  # killed mid-copy
    dead.write_bytes(b"SIMPLE  =")
    busy = folder / (incoming_prefix() + "def")  # this process's own copy in progress
    busy.write_bytes(b"SIMPLE  =")
    foreign = folder / ".incoming-otherhost-12-ghi"  # another host's: liveness unknown, kept
    foreign.write_bytes(b"SIMPLE  =")
    stored = copy_into_store(source, tmp_path / "store", sha)
    assert sha256_file(tmp_path / "store" / stored) == sha
    assert not dead.exists() and busy.exists() and foreign.exists()
