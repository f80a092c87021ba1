"""A reduction requested from the portal in a real browser and run by a real ``hcdc worker``
process: the PI of a programme signs in, fills the reduce form of their dataset, watches the job
page follow the job (it polls ``/api/v1/jobs/{id}`` and redraws state, progress and stage) until
it is done, then opens the product it made. Someone without rights to the dataset is refused: the
form and the request answer "not found" (a dataset one may not see is not said to exist), and an
anonymous visitor is sent to the login page.

Data: one simulated IRDIS DBI sequence at the 'small' scale (128 x 256 px, a few DITs), ingested
and associated by the real ``hcdc`` commands; the server's clock is set inside the programme's
proprietary period so that the raw data are the PI's alone. The reduction (Level 1 + Level 2,
without the contrast curve) takes ~10 s on an idle core.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import uuid

import pytest
from helpers.faults import HCDC, hcdc, hcdc_env
from helpers.live_server import serve_app

from .browser import shot, sign_in

pytestmark = pytest.mark.browser

PROGRAMME = "0102.C-9999"  # the simulated night's programme (run letter A)
PASSWORD = "correct horse battery"
#: the server's clock: two months after the simulated night, inside the 12-month proprietary period
CLOCK = dt.datetime(2019, 2, 1)
JOB_TIMEOUT_MS = 240_000  # generous: the machine may be shared; alone the job takes ~10 s


@pytest.fixture(scope="module")
def data_centre(tmp_path_factory):
    """A data centre (SQLite) with one simulated, ingested and associated IRDIS dataset, the PI
    of its programme and a signed-up stranger."""
    from hcdc.archive import accounts
    from hcdc.archive.access import local_operator
    from hcdc.archive.db import open_data_centre, write_transaction
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night

    tmp = tmp_path_factory.mktemp("reduce-browser")
    simulate_irdis_night(tmp / "raw", seed=5, scale="small", sequences=DEFAULT_SEQUENCES[:1])
    root = tmp / "dc"
    hcdc("init", str(root), "--database", f"sqlite:///{tmp / 'catalog.sqlite'}", root=root, check=True)
    hcdc("ingest", str(tmp / "raw"), root=root, check=True)
    hcdc("associate", root=root, check=True)
    catalogue = open_data_centre(root)
    operator = local_operator()
    with write_transaction(catalogue.engine) as conn:
        accounts.add_user(conn, operator, "pi", role="user", password=PASSWORD, full_name="the PI")
        accounts.add_user(conn, operator, "stranger", role="user", password=PASSWORD)
        accounts.save_programme(conn, operator, accounts.ProgrammeSpec(PROGRAMME, pi="pi"))
    yield root, catalogue
    catalogue.close()


@pytest.fixture(scope="module")
def server(data_centre):
    from hcdc.web.app import create_app

    _, catalogue = data_centre
    app = create_app(catalogue=catalogue, clock=lambda: CLOCK, secret_key="reduce-browser-test")
    with serve_app(app) as base:
        yield base


@pytest.fixture
def worker(data_centre):
    """A real ``hcdc worker`` process on the data centre; stopped with Ctrl-C (SIGINT) after the test."""
    root, _ = data_centre
    process = subprocess.Popen(
        [*HCDC, "worker", "--processes", "0", "--poll", "0.5"],
        env=hcdc_env(root, marker=uuid.uuid4().hex),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # a test run started in the background by a shell ignores SIGINT, and children inherit
        # that: give the worker the default disposition, so that Python turns Ctrl-C into
        # KeyboardInterrupt and the worker stops as an operator's would
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    yield process
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:  # it did not stop: leave nothing running
            process.kill()
            process.communicate()
    assert "Traceback" not in err, err[-3000:]
    assert process.returncode == 0 and "interrupted" in err, err[-3000:]


def _dataset_id(catalogue) -> int:
    from sqlalchemy import select

    from hcdc.archive.models import Dataset

    with catalogue.engine.connect() as conn:
        (dataset_id,) = conn.scalars(select(Dataset.id).where(Dataset.mode == "DBI"))
    return dataset_id


def test_pi_requests_a_reduction_and_watches_it_finish(chromium_browser, server, data_centre, worker):
    from playwright.sync_api import expect

    _, catalogue = data_centre
    dataset_id = _dataset_id(catalogue)
    page = chromium_browser.new_page()
    sign_in(page, server, "pi", password=PASSWORD, check=True)
    page.goto(f"{server}/datasets/{dataset_id}")
    page.click("#request-reduction")
    expect(page).to_have_url(f"{server}/datasets/{dataset_id}/reduce")
    form = page.locator("#wf-irdis-l1-l2")
    form.locator('input[name="irdis-l1-l2:level2.compute_contrast"]').fill("false")
    form.locator('input[name="irdis-l1-l2:level2.ncomp"]').fill("2")
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(f"{server}/jobs/" + page.url.rsplit("/", 1)[-1])
    job_id = int(page.url.rsplit("/", 1)[-1])
    assert page.locator("#job-state").inner_text() in ("queued", "running")
    # the page follows the job by itself (no reload by the test): running, then done
    expect(page.locator("#job-state")).to_have_text("running", timeout=JOB_TIMEOUT_MS)
    # the worker's stage (written within a second of each change), redrawn by the page
    expect(page.locator("#job-stage")).to_contain_text("irdis-l1-l2: level", timeout=JOB_TIMEOUT_MS)
    shot(page, "job-running")
    expect(page.locator("#job-state")).to_have_text("done", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#job-progress")).to_have_attribute("value", "1.0")
    expect(page.locator("#job-percent")).to_have_text("100 %")
    products = page.locator("#job-products a")
    expect(products).to_have_count(2)  # the Level 1 master cube and the Level 2 product
    # the job's own log, written by the worker as it ran: each node's lines
    expect(page.locator("#job-log")).to_contain_text("node level2 done")
    expect(page.locator("#job-log")).to_contain_text("recipe level1-irdis")
    shot(page, "job-done")
    page.locator("#job-products li", has_text="L2").locator("a").click()
    expect(page.locator("h1")).to_contain_text("Product")
    expect(page.locator("#product-files")).to_contain_text("level2_pca_annular.fits")
    shot(page, "reduced-product")
    # the result is in the PI's workspace ("my data") and the job is listed there as done
    page.goto(server + "/my")
    expect(page.locator("#my-jobs")).to_contain_text("done")
    assert not chromium_browser.errors, chromium_browser.errors
    from hcdc.pipeline.operations import jobs as jq

    (job,) = jq.list_jobs(catalogue.engine, ids=[job_id])
    assert job.state == "done" and job.parameters == ["level2.ncomp=2", "level2.compute_contrast=false"]


def test_reduction_refused_without_rights(chromium_browser, server, data_centre):
    from playwright.sync_api import expect

    from hcdc.pipeline.operations import jobs as jq

    _, catalogue = data_centre
    dataset_id = _dataset_id(catalogue)
    before = {j.id for j in jq.list_jobs(catalogue.engine)}
    page = chromium_browser.new_page(console=False)  # the refusals' 404s are logged as console errors
    # anonymous: sent to the login page
    page.goto(f"{server}/datasets/{dataset_id}/reduce")
    expect(page).to_have_url(f"{server}/login?next=/datasets/{dataset_id}/reduce")
    # a signed-in user outside the programme: the dataset does not exist for them
    sign_in(page, server, "stranger", password=PASSWORD, check=True)
    response = page.goto(f"{server}/datasets/{dataset_id}/reduce")
    assert response.status == 404
    expect(page.locator("body")).to_contain_text(f"no dataset with id {dataset_id}")
    shot(page, "reduce-refused")
    # a forged request (with a valid CSRF token from the stranger's own session) is refused too
    page.goto(server + "/my")
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    answer = page.request.post(
        f"{server}/datasets/{dataset_id}/reduce",
        form={"csrf_token": token, "workflow": "irdis-l1-l2"},
    )
    assert answer.status == 404
    assert not chromium_browser.errors, chromium_browser.errors
    assert {j.id for j in jq.list_jobs(catalogue.engine)} == before  # nothing was queued


def test_pi_follows_and_cancels_a_batch(chromium_browser, server, data_centre):
    """A batch from the portal ("every dataset of this night"): its page follows the batch's jobs
    as their state changes in the catalogue (here written as a worker would), and cancels it."""
    from playwright.sync_api import expect
    from sqlalchemy import select, update

    from hcdc.archive.db import write_transaction
    from hcdc.archive.models import Dataset
    from hcdc.archive.pipeline_models import Job

    _, catalogue = data_centre
    with catalogue.engine.connect() as conn:
        night = conn.scalar(select(Dataset.night).where(Dataset.id == _dataset_id(catalogue)))
    page = chromium_browser.new_page(console=False)  # the refusals' 404s are logged as console errors
    page.goto(server + "/batches")
    expect(page).to_have_url(server + "/login?next=/batches")
    sign_in(page, server, "pi", password=PASSWORD, check=True)
    page.goto(server + "/batches")
    page.fill('#batch-form input[name="night"]', night.isoformat())
    page.click("#batch-submit")
    expect(page.locator("#batch-state")).to_have_text("queued")
    batch_id = int(page.url.rsplit("/", 1)[-1])
    rows = page.locator("#batch-jobs tr[data-job]")
    expect(rows).to_have_count(1)  # the night's science dataset (the PI's)
    job_id = int(rows.first.get_attribute("data-job"))
    with write_transaction(catalogue.engine) as conn:  # a worker takes the job half-way
        conn.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(state="running", progress=0.5, stage="irdis-l1-l2: level2 running")
        )
    # the page redraws by itself (it polls /api/v1/batches/{id})
    expect(page.locator("#batch-state")).to_have_text("running", timeout=30_000)
    expect(page.locator("#batch-percent")).to_have_text("50 %")
    expect(rows.first.locator(".job-stage")).to_have_text("irdis-l1-l2: level2 running")
    shot(page, "batch-running")
    page.click("#batch-cancel")
    expect(page.locator("#batch-state")).to_have_text("cancelled")
    expect(rows.first.locator(".job-state")).to_have_text("cancelled")
    page.goto(server + "/batches")
    expect(page.locator("#batches")).to_contain_text("cancelled")
    # a stranger does not see it
    page.context.clear_cookies()
    sign_in(page, server, "stranger", password=PASSWORD, check=True)
    assert page.goto(f"{server}/batches/{batch_id}").status == 404
    assert not chromium_browser.errors, chromium_browser.errors
