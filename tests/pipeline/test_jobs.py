"""Durable jobs in the catalogue (SQLite and PostgreSQL): the queue's state machine, leases,
retries, cancellation, and concurrent claims from several processes that never share a job."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from hcdc.archive.db import init_data_centre
from hcdc.archive.pipeline_models import Job
from hcdc.pipeline.operations import jobs as jq


@pytest.fixture
def catalogue(tmp_path: Path, database_url: str):
    cat = init_data_centre(tmp_path / "dc", database_url=database_url)
    yield cat
    cat.close()


def _queue_inputs(engine, n: int, **kwargs) -> list[int]:
    return [
        jq.queue_job(engine, inputs={"cube": f"/data/cube{i}.fits"}, workflow="l2-user-cube", **kwargs)
        for i in range(n)
    ]


def test_queue_claim_heartbeat_complete(catalogue):
    engine = catalogue.engine
    first, second = _queue_inputs(engine, 2, parameters=["ncomp=3"])
    urgent = jq.queue_job(engine, inputs={"cube": "/data/u.fits"}, workflow="l2-user-cube", priority=5)
    job = jq.claim_job(engine, "w1", lease_s=30)
    assert job.id == urgent  # highest priority first, then the oldest
    assert (job.state, job.attempts, job.worker_id) == ("running", 1, "w1")
    assert job.lease_expires_at - job.started_at == dt.timedelta(seconds=30)
    assert jq.claim_job(engine, "w3", ids=[urgent]) is None  # only among the given jobs
    nxt = jq.claim_job(engine, "w2", ids=[first, second])
    assert nxt.id == first and nxt.parameters == ["ncomp=3"] and nxt.inputs == {"cube": "/data/cube0.fits"}

    assert jq.heartbeat(engine, job.id, "w1", progress=0.5, stage="level2 running")
    assert not jq.heartbeat(engine, job.id, "w2")  # not w2's job
    seen = jq.get_job(engine, job.id)
    assert (seen.progress, seen.stage) == (0.5, "level2 running")

    assert not jq.complete_job(engine, job.id, "w2")  # only the holder completes
    assert jq.complete_job(engine, job.id, "w1", log="all fine", summary={"n": 1})
    done = jq.get_job(engine, job.id)
    assert (done.state, done.progress, done.log, done.summary) == ("done", 1.0, "all fine", {"n": 1})
    assert done.finished_at is not None and done.lease_expires_at is None
    assert jq.count_by_state(engine) == {"queued": 1, "running": 1, "done": 1, "failed": 0, "cancelled": 0}
    assert [j.id for j in jq.list_jobs(engine, "queued")] == [second]


def test_fail_retry_and_final_failure(catalogue):
    engine = catalogue.engine
    (job_id,) = _queue_inputs(engine, 1, max_attempts=2)
    jq.claim_job(engine, "w1")
    # a machinery failure is retried while attempts remain
    assert jq.fail_job(engine, job_id, "w1", "BrokenProcessPool: a worker died", retry=True) == "queued"
    again = jq.claim_job(engine, "w2")
    assert again.id == job_id and again.attempts == 2
    assert jq.fail_job(engine, job_id, "w2", "BrokenProcessPool: again", retry=True) == "failed"
    failed = jq.get_job(engine, job_id)
    assert failed.state == "failed" and "again" in failed.error and failed.finished_at is not None
    # a science failure is final at once
    (other,) = _queue_inputs(engine, 1)
    jq.claim_job(engine, "w1")
    assert jq.fail_job(engine, other, "w1", "Level1Error: no OBJECT file", log="trace") == "failed"
    assert jq.get_job(engine, other).attempts == 1
    # a person can put it back
    jq.retry_job(engine, other)
    assert jq.get_job(engine, other).state == "queued"
    with pytest.raises(jq.JobError, match="only failed or cancelled"):
        jq.retry_job(engine, other)


def test_expired_lease_requeues_then_fails_when_out_of_attempts(catalogue):
    engine = catalogue.engine
    (job_id,) = _queue_inputs(engine, 1, max_attempts=2)
    jq.claim_job(engine, "dead-worker", lease_s=0.5)
    assert jq.claim_job(engine, "w2") is None  # still leased
    time.sleep(0.7)
    retried = jq.claim_job(engine, "w2", lease_s=0.5)  # expiry noticed at claim time
    assert retried.id == job_id and retried.attempts == 2 and retried.worker_id == "w2"
    # the dead worker cannot complete (nor heartbeat) the job it lost
    assert not jq.complete_job(engine, job_id, "dead-worker")
    assert not jq.heartbeat(engine, job_id, "dead-worker")
    time.sleep(0.7)
    assert jq.requeue_expired(engine) == [job_id]
    final = jq.get_job(engine, job_id)
    assert final.state == "failed" and "no attempts left" in final.error


def test_cancel_queued_and_running(catalogue):
    engine = catalogue.engine
    queued, running = _queue_inputs(engine, 2)
    with engine.begin() as conn:  # claim the second one first
        conn.execute(update(Job).where(Job.id == queued).values(priority=-1))
    assert jq.claim_job(engine, "w1").id == running
    assert jq.cancel_job(engine, queued) and jq.cancel_job(engine, running)
    assert not jq.heartbeat(engine, running, "w1")  # the worker learns it must stop
    assert not jq.complete_job(engine, running, "w1")
    assert {j.state for j in jq.list_jobs(engine)} == {"cancelled"}
    assert not jq.cancel_job(engine, queued)  # already finished
    with pytest.raises(jq.JobError, match="no job with id 999"):
        jq.cancel_job(engine, 999)


def test_bad_jobs_are_refused(catalogue):
    with pytest.raises(jq.JobError, match="needs a dataset or workflow inputs"):
        jq.queue_job(catalogue.engine)
    with pytest.raises(jq.JobError, match="must name its workflow"):
        jq.queue_job(catalogue.engine, inputs={"cube": "x.fits"})
    with pytest.raises(jq.JobError, match="not of the form"):
        jq.queue_job(catalogue.engine, inputs={"cube": "x.fits"}, workflow="w", parameters=["ncomp"])
    with pytest.raises(jq.JobError, match="unknown job state"):
        jq.list_jobs(catalogue.engine, "sleeping")


_CLAIMER = textwrap.dedent(
    """
    import json, sys, time
    from hcdc.archive.db import make_engine
    from hcdc.pipeline.operations import jobs as jq

    url, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    engine = make_engine(url)
    while time.time() < start:  # both processes start claiming at the same instant
        time.sleep(0.005)
    claimed = []
    while (job := jq.claim_job(engine, name)) is not None:
        claimed.append(job.id)
        time.sleep(0.002)  # a little work
        assert jq.complete_job(engine, job.id, name)
    print(json.dumps(claimed))
    """
)


def test_concurrent_workers_never_claim_the_same_job(catalogue, database_url):
    """Two processes, each with its own connection, drain one queue at the same time."""
    ids = _queue_inputs(catalogue.engine, 60)
    start = time.time() + 4.0  # after both interpreters have started
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, database_url, f"worker-{k}", str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(2)
    ]
    claimed = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        claimed.append(json.loads(out))
    a, b = map(set, claimed)
    assert not a & b, "a job was claimed twice"
    assert a | b == set(ids)
    assert a and b, "both workers should have got work"
    jobs = jq.list_jobs(catalogue.engine, limit=None)
    assert {j.state for j in jobs} == {"done"} and {j.attempts for j in jobs} == {1}
