"""Durable jobs in the catalogue (SQLite and PostgreSQL): the queue's state machine, leases,
retries, cancellation, concurrent claims from several processes that never share a job, and the
fair share between job owners (a batch does not starve other users' jobs)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from hcdc.archive import accounts
from hcdc.archive.access import Principal, local_operator
from hcdc.archive.db import init_data_centre
from hcdc.archive.pipeline_models import OPERATOR_SHARE_KEY, Batch, Job, JobShare
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
    from pathlib import Path
    from hcdc.archive.db import make_engine
    from hcdc.pipeline.operations import jobs as jq

    url, name, rendezvous = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    engine = make_engine(url)
    # both processes start claiming together, however long each took to start (a fixed start
    # time let one drain the queue alone when the other's interpreter started late under load)
    (rendezvous / name).touch()
    deadline = time.time() + 60.0
    while len(list(rendezvous.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.005)
    claimed = []
    while (job := jq.claim_job(engine, name)) is not None:
        claimed.append(job.id)
        time.sleep(0.01)  # a little work, outside the queue's transactions
        assert jq.complete_job(engine, job.id, name)
    print(json.dumps(claimed))
    """
)


def test_concurrent_workers_never_claim_the_same_job(catalogue, database_url, tmp_path):
    """Two processes, each with its own connection, drain one queue at the same time."""
    ids = _queue_inputs(catalogue.engine, 60)
    rendezvous = tmp_path / "ready"
    rendezvous.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, database_url, f"worker-{k}", str(rendezvous)],
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


# --------------------------------------------------------------------------------------------
# fair share: a batch of many jobs does not hold back the jobs other users queue after it


def _users(engine, *names: str) -> list[Principal]:
    with engine.begin() as conn:
        return [Principal(accounts.add_user(conn, local_operator(), name), name, "user") for name in names]


def _queue_owned(
    engine, user: Principal | None, n: int, *, batch: bool = False, priority: int = 0
) -> list[int]:
    """Queue ``n`` jobs owned by ``user`` (None: from the shell), as one batch when ``batch``."""
    with engine.begin() as conn:
        batch_id = None
        if batch:
            batch_id = conn.execute(
                insert(Batch)
                .values(
                    label=f"{n} cubes",
                    owner_user_id=user.id,
                    created_by=user.name,
                    parameters=[],
                    selection={},
                )
                .returning(Batch.id)
            ).scalar_one()
        ids = []
        for i in range(n):
            job_id = jq.queue_job(
                engine,
                inputs={"cube": f"/data/{user.name if user else 'shell'}-{i}.fits"},
                workflow="l2-user-cube",
                batch_id=batch_id,
                priority=priority,
                conn=conn,
            )
            if user is not None:
                accounts.record_job_owner(conn, job_id, user)
            ids.append(job_id)
    return ids


def _drain(engine, worker: str = "w1") -> list[int]:
    """Claim and complete every queued job with one worker; the claim order."""
    order = []
    while (job := jq.claim_job(engine, worker)) is not None:
        assert jq.complete_job(engine, job.id, worker)
        order.append(job.id)
    return order


def test_a_batch_does_not_starve_later_jobs_of_another_user(catalogue):
    engine = catalogue.engine
    alice, bob = _users(engine, "alice", "bob")
    batch = _queue_owned(engine, alice, 20, batch=True)
    later = _queue_owned(engine, bob, 2)  # queued after the whole batch
    order = _drain(engine)
    assert sorted(order) == sorted(batch + later)
    # round-robin: bob's jobs are the 2nd and 4th claims, not the 21st and 22nd
    assert order[:4] == [batch[0], later[0], batch[1], later[1]]
    assert order[4:] == batch[2:]  # then alice's batch, oldest first
    with engine.connect() as conn:
        shares = dict(conn.execute(select(JobShare.owner_key, JobShare.claims)).all())
    assert shares == {alice.id: 20, bob.id: 2}


def test_fair_share_keeps_priorities_and_counts_shell_jobs_as_one_owner(catalogue):
    engine = catalogue.engine
    alice, bob = _users(engine, "alice", "bob")
    batch = _queue_owned(engine, alice, 5, batch=True)
    shell = _queue_owned(engine, None, 2)
    urgent = _queue_owned(engine, bob, 1, priority=5)
    bobs = _queue_owned(engine, bob, 2)
    order = _drain(engine)
    # the urgent job first (priority wins over fairness); then bob has been served most recently,
    # so alice, the shell and bob take turns; each owner's jobs oldest first
    assert order == [urgent[0], batch[0], shell[0], bobs[0], batch[1], shell[1], bobs[1], *batch[2:]]
    with engine.connect() as conn:
        shares = dict(conn.execute(select(JobShare.owner_key, JobShare.claims)).all())
    assert shares == {alice.id: 5, bob.id: 3, OPERATOR_SHARE_KEY: 2}


def test_fair_share_serves_the_owner_with_fewest_running_jobs(catalogue):
    """Several workers: the owner with fewer jobs running goes first, whoever was served last."""
    engine = catalogue.engine
    alice, bob = _users(engine, "alice", "bob")
    batch = _queue_owned(engine, alice, 6, batch=True)
    first = jq.claim_job(engine, "w1")
    assert first.id == batch[0]
    later = _queue_owned(engine, bob, 1)
    bob_job = jq.claim_job(engine, "w2")
    assert bob_job.id == later[0]  # alice has one running, bob none
    assert jq.claim_job(engine, "w3").id == batch[1]  # one each running: alice served longer ago
    assert jq.complete_job(engine, bob_job.id, "w2")
    more = _queue_owned(engine, bob, 1)
    # bob was served last, but alice has 2 running and bob none now
    assert jq.claim_job(engine, "w2").id == more[0]
    # restricted to some ids, the same order among them
    assert jq.claim_job(engine, "w4", ids=[batch[4], batch[3]]).id == batch[3]


_FAIR_CLAIMER = textwrap.dedent(
    """
    import json, sys, time
    from hcdc.archive.db import make_engine
    from hcdc.pipeline.operations import jobs as jq

    url, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    engine = make_engine(url)
    while time.time() < start:
        time.sleep(0.005)
    claimed = []
    while (job := jq.claim_job(engine, name)) is not None:
        claimed.append(job.id)
        time.sleep(0.02)  # some work
        assert jq.complete_job(engine, job.id, name)
    print(json.dumps(claimed))
    """
)


def test_concurrent_workers_keep_the_fair_share(catalogue, database_url):
    """Two worker processes drain alice's batch of 20 and bob's 2 later jobs: no job is claimed
    twice, and bob's jobs are among the first four claims (claim times are taken under the
    claim lock, so ordering by them gives the order of the claims)."""
    engine = catalogue.engine
    alice, bob = _users(engine, "alice", "bob")
    batch = _queue_owned(engine, alice, 20, batch=True)
    later = _queue_owned(engine, bob, 2)
    start = time.time() + 4.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FAIR_CLAIMER, database_url, f"worker-{k}", str(start)],
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
    assert a | b == set(batch + later)
    jobs = jq.list_jobs(engine, limit=None)
    assert {j.state for j in jobs} == {"done"} and {j.attempts for j in jobs} == {1}
    order = [j.id for j in sorted(jobs, key=lambda j: (j.started_at, j.id))]
    assert set(later) <= set(order[:4]), order
