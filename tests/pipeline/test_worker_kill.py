"""A worker process killed with SIGKILL in the middle of a job: the job's lease expires, another
worker retries it, and the catalogue ends with exactly one registered set of products (SQLite
and PostgreSQL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from hcdc.archive import products as prod
from hcdc.archive.associations import associate_all
from hcdc.archive.batches import job_log_lines
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.pipeline_models import Product, ProductFile, ProvenanceEntry
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.operations.worker import Worker, queue_datasets
from hcdc.pipeline.provenance import sha256_file

LEASE_S = 2.0


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night

    out = tmp_path_factory.mktemp("night") / "raw"
    return simulate_irdis_night(out, seed=5, scale="small", sequences=DEFAULT_SEQUENCES[:1])


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_worker_job_is_retried_without_duplicates(night, tmp_path, database_url):
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    engine = catalogue.engine
    ingest(catalogue, [night.out_dir])
    associate_all(engine)
    (job_id,) = queue_datasets(
        catalogue,
        [1],
        parameters=["level2.algorithm=pca", "level2.ncomp=5", "previews=false", "crop_radius=44"],
    )

    command = [sys.executable, "-c", "from hcdc.cli import main; main()", "worker", "--once"]
    command += ["--processes", "0", "--lease", str(LEASE_S), "--root", str(catalogue.settings.root)]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        # kill it mid-job: Level 1 finished, Level 2 running, nothing registered yet
        job = _wait_for(
            lambda: (j := jq.get_job(engine, job_id)).progress >= 0.5 and j,
            timeout=120,
            what="the worker to finish Level 1",
        )
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
    finally:
        if victim.poll() is None:
            victim.kill()
    assert job.state == "running" and job.attempts == 1
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Product)) == 0
    staging = catalogue.storage_root / "products" / f"job-{job_id}" / "attempt-1.tmp"
    assert staging.is_dir()  # the dead worker's half-written outputs, never registered

    # what the killed worker had written of the job's log is still there
    with engine.connect() as conn:
        before = [
            (x["attempt"], x["node"], x["message"]) for x in job_log_lines(conn, job_id, tracebacks=True)
        ]
    assert before[0] == (1, None, "attempt 1 of 3 started"), before
    assert any(n == "level1" and m.startswith("node level1 done") for _, n, m in before), before
    assert any(n == "level1" and m.startswith("recipe level1-irdis") for _, n, m in before), before

    # a second worker takes the job over once the dead worker's lease has expired
    assert Worker(catalogue, processes=0).run_one() is None  # lease still valid: nothing to take
    time.sleep(LEASE_S + 0.5)
    with Worker(catalogue, processes=0) as rescuer:
        outcome = rescuer.run_one()
    assert outcome is not None and outcome.job_id == job_id and outcome.state == "done", outcome
    job = jq.get_job(engine, job_id)
    assert (job.state, job.attempts) == ("done", 2)
    assert job.error is None and not staging.exists()  # the dead attempt's leftovers are cleared
    with engine.connect() as conn:
        after = [
            (x["attempt"], x["level"], x["message"]) for x in job_log_lines(conn, job_id, tracebacks=True)
        ]
    assert [(a, m) for a, _, m in after[: len(before)]] == [(a, m) for a, _, m in before]  # kept as written
    lost = [m for a, lv, m in after if a == 1 and lv == "warning" and "stopped renewing its lease" in m]
    assert lost and "re-queued" in lost[0], after
    assert (2, "info", "attempt 2 of 3 started") in after and after[-1][2].startswith("done: product(s)")

    with engine.connect() as conn:
        rows = conn.execute(select(Product.job_id, Product.node, Product.version)).all()
        assert sorted(rows) == [(job_id, "level1", 1), (job_id, "level2", 1)]
        assert conn.scalar(select(func.count()).select_from(ProvenanceEntry)) == 2
        files = conn.execute(select(ProductFile.path, ProductFile.sha256)).all()
        detail = prod.product_detail(conn, outcome.product_ids[1], catalogue.storage_root)
    # every registered file belongs to the second attempt and is complete
    assert files and all(path.startswith(f"products/job-{job_id}/attempt-2/") for path, _ in files)
    for path, sha in files:
        assert sha256_file(catalogue.storage_root / path) == sha
    assert max(d["snr"] for d in detail["summary"]["detections"]) > 5
    catalogue.close()
