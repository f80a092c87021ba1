"""Batches of jobs and job logs through the REST API, the portal and the CLI, on SQLite and
PostgreSQL (the access world of tests/web/world.py): a batch is submitted by dataset ids or by a
selection of what the user may see, takes as many quota places as it has jobs (A6/A11), is seen,
cancelled and retried by its owner and staff only (R10/A11: others get 404), and its state is
computed from its jobs; a job's log is the owner's and staff's, tracebacks for staff only."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from hcdc.archive import accounts
from hcdc.archive.access import load_principal, local_operator
from hcdc.archive.batches import batch_state
from hcdc.archive.pipeline_models import Job
from hcdc.cli import app
from hcdc.pipeline.operations import jobs as jq

from .test_portal import _signed_in, token_of
from .world import OBJECTS

#: the owner's datasets it may see at BEFORE: its programme's, and no other (see world.py)
OWNER_LABELS = ("private", "embargoed", "delayed", "public")


def _audit(world) -> list[str]:
    with world.catalogue.engine.connect() as conn:
        return [a["action"] for a in accounts.list_audit(conn)]


def _set_quota(world, name: str, max_jobs: int) -> None:
    with world.catalogue.engine.begin() as conn:
        accounts.set_quota(conn, local_operator(), name, max_jobs)


@pytest.mark.parametrize(
    ("counts", "state"),
    [
        ({}, "empty"),
        ({"queued": 3}, "queued"),
        ({"queued": 2, "running": 1}, "running"),
        ({"queued": 2, "done": 1}, "running"),
        ({"done": 3}, "done"),
        ({"failed": 2}, "failed"),
        ({"done": 2, "failed": 1}, "partially failed"),
        ({"done": 1, "failed": 1, "cancelled": 1}, "partially failed"),
        ({"done": 2, "cancelled": 1}, "cancelled"),
        ({"cancelled": 3}, "cancelled"),
    ],
)
def test_batch_state_from_its_jobs(counts, state) -> None:
    assert batch_state(counts) == state


def test_batches_through_the_api(client_at, world):
    engine = world.catalogue.engine
    owner, other, admin = client_at(user="owner"), client_at(user="other_pi"), client_at(user="admin")
    ask = {"target": "51eri", "workflow": "irdis-l1-l2", "label": "all of 51 Eri"}
    # A6/A11: the owner has one job queued already (world.job); 4 more exceed the default quota 2
    refused = owner.post("/api/v1/batches", json=ask)
    assert refused.status_code == 403 and "4 more asked, quota 2" in refused.json()["detail"]
    _set_quota(world, "owner", 10)
    made = owner.post("/api/v1/batches", json=ask)
    assert made.status_code == 201, made.text
    batch_id, job_ids = made.json()["id"], made.json()["jobs"]
    # the selection is what the owner may see: the survey's and the other PI's datasets are not in it
    shown = owner.get(f"/api/v1/batches/{batch_id}").json()
    assert {j["dataset_id"] for j in shown["jobs"]} == {world.ids[k]["dataset"] for k in OWNER_LABELS}
    assert sorted(j["id"] for j in shown["jobs"]) == sorted(job_ids)
    assert shown["state"] == "queued" and shown["counts"]["queued"] == 4 and shown["progress"] == 0
    assert shown["owner"] == "owner" and shown["selection"] == {"target": "51eri"}
    assert owner.get("/api/v1/batches").json()["total"] == 2  # and the world's batch
    # R10: nobody else sees it (404, as a batch that does not exist); staff see every batch
    assert other.get("/api/v1/batches").json() == {"total": 0, "offset": 0, "limit": 50, "items": []}
    for client in (other, client_at()):
        assert client.get(f"/api/v1/batches/{batch_id}").status_code == 404
        assert client.post(f"/api/v1/batches/{batch_id}/cancel").status_code in (401, 404)
    assert other.post(f"/api/v1/batches/{batch_id}/retry").status_code == 404
    assert admin.get(f"/api/v1/batches/{batch_id}").json()["jobs_total"] == 4
    assert owner.get("/api/v1/batches/999999").status_code == 404
    # a hidden dataset by id is answered like a missing one; anonymous may not submit
    hidden = other.post("/api/v1/batches", json={"dataset_ids": [world.ids["private"]["dataset"]]})
    assert hidden.status_code == 404
    assert client_at().post("/api/v1/batches", json=ask).status_code == 401
    assert owner.post("/api/v1/batches", json={"workflow": "irdis-l1-l2"}).status_code == 422
    bad = owner.post("/api/v1/batches", json={**ask, "parameters": {"level2.ncmop": 2}})
    assert bad.status_code == 422 and "ncmop" in bad.json()["detail"]

    # the state follows the jobs: one done, one failed, one half-way
    first, second, third, _fourth = sorted(job_ids)
    with engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == first).values(state="done", progress=1.0))
        conn.execute(update(Job).where(Job.id == second).values(state="failed", error="boom"))
        conn.execute(update(Job).where(Job.id == third).values(state="running", progress=0.5))
    shown = owner.get(f"/api/v1/batches/{batch_id}").json()
    assert shown["state"] == "running" and shown["progress"] == pytest.approx((1 + 1 + 0.5 + 0) / 4)
    cancelled = owner.post(f"/api/v1/batches/{batch_id}/cancel").json()["jobs"]
    assert sorted(cancelled) == [third, _fourth]
    shown = owner.get(f"/api/v1/batches/{batch_id}").json()
    assert shown["state"] == "partially failed" and shown["progress"] == 1.0
    assert shown["counts"] == {"queued": 0, "running": 0, "done": 1, "failed": 1, "cancelled": 2}
    again = owner.post(f"/api/v1/batches/{batch_id}/retry")
    assert sorted(again.json()["jobs"]) == [second, third, _fourth], again.text
    assert owner.get(f"/api/v1/batches/{batch_id}").json()["counts"]["queued"] == 3
    assert admin.post(f"/api/v1/batches/{batch_id}/cancel").status_code == 200  # staff may (A11)
    assert owner.get(f"/api/v1/batches/{batch_id}").json()["state"] == "cancelled"
    audit = _audit(world)
    assert audit.count("batch.submit") == 1 and audit.count("batch.cancel") == 2 and "batch.retry" in audit
    _batch_and_job_log_commands(world)  # on the same world (building one takes seconds)


def test_job_logs_are_the_owners_and_tracebacks_the_staffs(client_at, world):
    engine = world.catalogue.engine
    secret = "/srv/hcdc/storage/products/job-1/attempt-1.tmp/level2"
    job = jq.queue_job(engine, dataset_id=world.ids["public"]["dataset"], workflow="irdis-l1-l2")
    with engine.begin() as conn:
        accounts.record_job_owner(conn, job, load_principal(conn, "owner"))
        conn.execute(
            update(Job).where(Job.id == job).values(state="failed", attempts=1, error="ValueError: bad")
        )
    jq.append_log(engine, job, 1, [("info", "attempt 1 of 3 started")])
    jq.append_log(
        engine,
        job,
        1,
        [
            ("error", "node level2 failed: ValueError: bad"),
            ("traceback", f'Traceback ...\n  File "{secret}"'),
        ],
        node="level2",
    )
    url = f"/api/v1/jobs/{job}/log"
    owner = client_at(user="owner").get(url).json()["lines"]
    assert [(x["node"], x["level"]) for x in owner] == [(None, "info"), ("level2", "error")]
    admin = client_at(user="admin").get(url).json()["lines"]
    assert [x["level"] for x in admin] == ["info", "error", "traceback"] and secret in admin[-1]["message"]
    later = client_at(user="owner").get(url, params={"after": owner[0]["id"]}).json()["lines"]
    assert [x["message"] for x in later] == ["node level2 failed: ValueError: bad"]
    for caller in ("other_pi", "delegate", "coi", None):
        assert client_at(user=caller).get(url).status_code == 404, caller
    assert client_at(user="admin").get("/api/v1/jobs/999999/log").status_code == 404
    # the job itself: the whole-run log (tracebacks) for staff only
    assert "log" not in client_at(user="owner").get(f"/api/v1/jobs/{job}").json()
    assert "log" in client_at(user="admin").get(f"/api/v1/jobs/{job}").json()
    page = client_at()
    _signed_in(page, "owner")
    text = page.get(f"/jobs/{job}").text
    assert "attempt 1 of 3 started" in text and "node level2 failed" in text and secret not in text
    _batch_pages(client_at, world)


def _batch_pages(client_at, world):
    owner = client_at()
    assert owner.get("/batches", follow_redirects=False).status_code == 303  # sign in first
    _signed_in(owner, "owner")
    assert 'id="batch-form"' in owner.get("/batches").text
    night = OBJECTS["private"][1].date().isoformat()
    form = {"night": night, "workflow": "irdis-l1-l2"}
    assert owner.post("/batches", data=form).status_code == 403  # no CSRF token
    made = owner.post(
        "/batches", data={**form, "csrf_token": token_of(owner, "/batches")}, follow_redirects=False
    )
    assert made.status_code == 303, made.text
    url = made.headers["location"]
    batch_id = int(url.rsplit("/", 1)[1])
    page = owner.get(url).text
    # the owner's one dataset of that night (the survey's and the other PI's are not theirs)
    assert f"every dataset of night {night}" in page and page.count('<tr data-job="') == 1
    assert 'id="batch-state">queued<' in page
    listed = owner.get("/batches").text
    assert re.findall(r'href="/batches/(\d+)" class="batch-link"', listed) == [
        str(batch_id),
        str(world.batch),
    ]
    none = owner.post(
        "/batches",
        data={"target": "nobody", "workflow": "irdis-l1-l2", "csrf_token": token_of(owner, "/batches")},
    )
    assert none.status_code == 422 and "no dataset you may see matches target nobody" in none.text
    done = owner.post(f"{url}/cancel", data={"csrf_token": token_of(owner, url)}, follow_redirects=False)
    assert done.status_code == 303 and 'id="batch-state">cancelled<' in owner.get(url).text
    other = client_at()
    _signed_in(other, "other_pi")
    assert other.get(url).status_code == 404
    assert other.post(f"{url}/retry", data={"csrf_token": token_of(other, "/batches")}).status_code == 404


def _batch_and_job_log_commands(world):
    runner = CliRunner(env={"COLUMNS": "200"})
    root = ["--root", str(world.catalogue.settings.root)]
    _set_quota(world, "owner", 10)
    from hcdc.pipeline.operations.batches import submit_batch

    with world.catalogue.engine.connect() as conn:
        owner = load_principal(conn, "owner")
    batch_id, job_ids = submit_batch(
        world.catalogue,
        owner,
        [world.ids["private"]["dataset"], world.ids["public"]["dataset"]],
        workflow="irdis-l1-l2",
    )
    jq.append_log(
        world.catalogue.engine,
        job_ids[0],
        1,
        [("warning", "warning: star off centre"), ("traceback", "Traceback: /srv/x")],
    )

    def run(*args: str) -> dict:
        result = runner.invoke(app, [*args, *root, "--json"])
        assert result.exit_code == 0, result.stderr
        return json.loads(result.stdout)

    assert run("batch", "list", "--as", "owner")["total"] == 3  # this one, the API's, the world's
    assert run("batch", "list", "--as", "other_pi")["total"] == 0
    shown = run("batch", "show", str(batch_id))
    assert shown["state"] == "queued" and [j["id"] for j in shown["jobs"]] == job_ids
    hidden = runner.invoke(app, ["batch", "show", str(batch_id), "--as", "other_pi", *root])
    assert hidden.exit_code == 1 and f"no batch with id {batch_id}" in hidden.stderr
    refused = runner.invoke(app, ["batch", "cancel", str(batch_id), "--as", "other_pi", *root])
    assert refused.exit_code == 1 and "no batch" in refused.stderr
    assert sorted(run("batch", "cancel", str(batch_id), "--as", "owner")["jobs"]) == job_ids
    assert run("batch", "show", str(batch_id))["state"] == "cancelled"
    assert sorted(run("batch", "retry", str(batch_id))["jobs"]) == job_ids
    lines = run("job", "log", str(job_ids[0]), "--as", "owner")["lines"]
    assert [x["level"] for x in lines] == ["warning"]
    assert [x["level"] for x in run("job", "log", str(job_ids[0]))["lines"]] == ["warning", "traceback"]
    text = runner.invoke(app, ["job", "log", str(job_ids[0]), *root]).stdout
    assert "WARNING" in text and "star off centre" in text
    assert runner.invoke(app, ["job", "log", str(job_ids[0]), "--as", "other_pi", *root]).exit_code == 1
    assert "batch" in runner.invoke(app, ["batch", "--help"]).stdout
