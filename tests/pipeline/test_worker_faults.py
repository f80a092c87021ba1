"""Workers killed at the worst moments leave nothing behind: results published but never
registered are swept with a log line, a job failed after its last attempt leaves no staging
folder, and pool processes end with their worker (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers.faults import (
    assert_clean_store,
    hcdc_killed_at,
    pid_alive,
    queue_cube_job,
    wait_for,
    write_user_cube,
)
from sqlalchemy import func, select

from hcdc.archive.db import init_data_centre
from hcdc.archive.fsck import fsck
from hcdc.archive.pipeline_models import Product, ProductFile
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.operations.worker import Worker

LEASE_S = 1.0


@pytest.fixture(scope="module")
def cube(tmp_path_factory):
    return write_user_cube(tmp_path_factory.mktemp("cube"))


@pytest.fixture
def catalogue(tmp_path, database_url):
    cat = init_data_centre(tmp_path / "dc", database_url=database_url)
    yield cat
    cat.close()


def _worker(catalogue, fault: str):
    return hcdc_killed_at(
        fault, "worker", "--once", "--processes", "0", "--lease", str(LEASE_S), root=catalogue.settings.root
    )


def test_killed_between_publish_and_register(catalogue, cube, caplog) -> None:
    job_id = queue_cube_job(catalogue.engine, cube)
    _worker(catalogue, "worker.after_publish")
    published = catalogue.storage_root / "products" / f"job-{job_id}" / "attempt-1"
    assert (published / "level2" / "provenance.json").is_file()  # complete, never registered
    time.sleep(LEASE_S + 0.2)

    # the restart re-runs the job and sweeps the dead attempt's results, saying so
    with caplog.at_level(logging.WARNING), Worker(catalogue, processes=0, lease_s=LEASE_S) as worker:
        (outcome,) = worker.run(once=True)
    assert outcome.state == "done", outcome
    assert not published.exists()
    assert any(
        str(published) in r.getMessage() and "never registered" in r.getMessage() for r in caplog.records
    )
    with catalogue.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Product)) == 1
        paths = conn.scalars(select(ProductFile.path)).all()
    assert paths and all(p.startswith(f"products/job-{job_id}/attempt-2/") for p in paths)
    assert_clean_store(catalogue.settings.root)


def test_last_attempt_killed_leaves_no_staging(catalogue, cube) -> None:
    job_id = queue_cube_job(catalogue.engine, cube, max_attempts=1)
    _worker(catalogue, "worker.during_run")
    staging = catalogue.storage_root / "products" / f"job-{job_id}" / "attempt-1.tmp"
    assert staging.is_dir()
    time.sleep(LEASE_S + 0.2)
    with Worker(catalogue, processes=0, lease_s=LEASE_S) as worker:
        assert worker.run(once=True) == []  # nothing left to run: the job is out of attempts
    job = jq.get_job(catalogue.engine, job_id)
    assert job.state == "failed" and "no attempts left" in job.error
    assert not staging.exists() and not staging.parent.exists()
    assert fsck(catalogue).clean


_POOL_SCRIPT = """
import sys, time
from hcdc.pipeline.executors import ProcessPoolExecutor
import os
pool = ProcessPoolExecutor(1)
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(600)
"""


def test_pool_process_dies_with_its_killed_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _POOL_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert pid_alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        wait_for(lambda: not pid_alive(child), timeout=5, what=f"pool process {child} to end with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
