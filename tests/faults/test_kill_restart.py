"""kill -9 at named points of ``hcdc ingest``, ``hcdc worker`` and ``hcdc watch``, then a restart:
the store must be clean (``hcdc fsck``: 0 orphans, 0 missing, 0 damaged, 0 duplicates), every
file catalogued once, every job's products registered once, and no process of the killed
command left running; on SQLite and PostgreSQL. Fault points: :mod:`hcdc.runtime.faults`."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path

import pytest
from helpers.faults import (
    assert_clean_store,
    hcdc,
    hcdc_killed_at,
    leftover_processes,
    queue_cube_job,
    wait_for,
    write_user_cube,
)
from sqlalchemy import func, select

from hcdc.archive.db import init_data_centre
from hcdc.archive.models import Dataset, File, QuarantinedFile
from hcdc.archive.pipeline_models import Product, ProductFile
from hcdc.archive.samples import clone_series
from hcdc.instruments.eso_headers import read_header_text
from hcdc.pipeline.operations import jobs as jq

pytestmark = pytest.mark.faults

N_GOOD, N_BAD = 60, 4
LEASE_S = 1.0


@pytest.fixture
def catalogue(tmp_path, database_url):
    cat = init_data_centre(tmp_path / "dc", database_url=database_url)
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def sphere_header(shared_data: Path):
    """A real SPHERE IFS primary header."""
    return read_header_text(shared_data / "sphere_headers" / "SPHER.2020-03-08T07_38_33.715.hdr.txt")


def _batch(folder: Path, header, start: dt.datetime) -> list[Path]:  # noqa: ANN001 - fits.Header
    """N_GOOD files cloned from a real SPHERE header, and N_BAD files that are not FITS."""
    good = clone_series(header, folder, N_GOOD, start, dt.timedelta(seconds=10))
    for i in range(N_BAD):
        (folder / f"broken-{i}.fits").write_bytes(b"this is not FITS" * 10)
    return good


def _assert_catalogued_once(catalogue, good: list[Path]) -> None:
    """0 lost, 0 duplicated: one current row per good file, every bad file quarantined once."""
    with catalogue.engine.connect() as conn:
        paths = conn.scalars(select(File.path)).all()
        shas = conn.scalar(select(func.count(func.distinct(File.sha256))))
        quarantined = conn.scalars(select(QuarantinedFile.path)).all()
        unlinked = conn.scalar(select(func.count()).select_from(File).where(File.dataset_id.is_(None)))
    assert sorted(paths) == sorted(str(p) for p in good) and shas == len(good)
    assert len(quarantined) == len(set(quarantined)) == N_BAD
    assert unlinked == 0  # every file grouped into its dataset


def _no_leftovers(marker: str) -> None:
    wait_for(lambda: not leftover_processes(marker), timeout=5, what="the killed command's processes to end")


@pytest.mark.parametrize(
    "fault, copy",
    [
        ("ingest.before_commit", False),  # a group written, not committed
        ("ingest.after_commit", False),  # committed, datasets not yet grouped
        ("ingest.during_copy@5", True),  # --copy: a file half-copied into the store
    ],
)
def test_ingest_killed_then_rerun(catalogue, sphere_header, tmp_path, fault, copy) -> None:
    good = _batch(tmp_path / "batch", sphere_header, dt.datetime(2020, 3, 8, 5, 0))
    root, marker = catalogue.settings.root, uuid.uuid4().hex
    args = ["ingest", str(tmp_path / "batch"), "--workers", "2", "--json", *(["--copy"] if copy else [])]
    hcdc_killed_at(fault, *args, root=root, marker=marker)
    _no_leftovers(marker)  # the reading processes went with it
    rerun = hcdc(*args, root=root)
    summary = json.loads(rerun.stdout)
    assert summary["ingested"] + summary["duplicates"] == N_GOOD and summary["quarantined"] == N_BAD
    _assert_catalogued_once(catalogue, good)
    assert_clean_store(root)


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return write_user_cube(tmp_path_factory.mktemp("cube"))


@pytest.mark.parametrize(
    "fault",
    ["worker.before_run", "worker.during_run", "worker.after_publish", "worker.during_register"],
)
def test_worker_killed_then_restarted(catalogue, cube, fault) -> None:
    root, marker = catalogue.settings.root, uuid.uuid4().hex
    job_id = queue_cube_job(catalogue.engine, cube)
    # a pool process runs the node: it must not outlive the killed worker
    args = ["worker", "--once", "--processes", "1", "--lease", str(LEASE_S)]
    hcdc_killed_at(fault, *args, root=root, marker=marker)
    _no_leftovers(marker)
    assert jq.get_job(catalogue.engine, job_id).state == "running"  # until its lease expires
    time.sleep(LEASE_S + 0.2)
    hcdc("worker", "--once", "--processes", "0", "--lease", str(LEASE_S), root=root, check=True)
    job = jq.get_job(catalogue.engine, job_id)
    assert (job.state, job.attempts) == ("done", 2), job
    with catalogue.engine.connect() as conn:
        nodes = conn.execute(select(Product.node, Product.version)).all()
        paths = conn.scalars(select(ProductFile.path)).all()
    assert nodes == [("level2", 1)]  # registered once
    assert paths and all(p.startswith(f"products/job-{job_id}/attempt-2/") for p in paths)
    assert_clean_store(root)


def test_watch_killed_then_restarted(catalogue, sphere_header, tmp_path) -> None:
    good = _batch(tmp_path / "incoming", sphere_header, dt.datetime(2020, 3, 8, 5, 0))
    root, marker = catalogue.settings.root, uuid.uuid4().hex
    args = ["watch", str(tmp_path / "incoming"), "--once", "--json"]
    hcdc_killed_at("watch.after_ingest", *args, root=root, marker=marker)
    _no_leftovers(marker)
    restart = hcdc(*args, root=root)  # (its exit status may flag the quarantined files)
    assert "Traceback" not in restart.stderr and json.loads(restart.stdout)["polls"], restart.stderr
    _assert_catalogued_once(catalogue, good)
    with catalogue.engine.connect() as conn:
        # the killed poll catalogued the files; the restart still associated their dataset
        assert conn.execute(select(Dataset.associated_at)).scalars().all() != []
        assert None not in conn.execute(select(Dataset.associated_at)).scalars().all()
    assert_clean_store(root)
