"""Workers on a real catalogue (SQLite and PostgreSQL): a simulated IRDIS night reduced from the
queue (simulate -> ingest -> associate -> reduce), products with provenance down to the raw
files, rerun from provenance bit for bit, reprocessing into new versions, failing jobs that do
not block the others, a Dask LocalCluster run, and the folder watcher."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from sqlalchemy import select

from hcdc.archive import products as prod
from hcdc.archive.associations import associate_all
from hcdc.archive.batches import job_log_lines
from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.operations.reruns import provenance_of_product, rerun_product
from hcdc.pipeline.operations.watch import watch_once
from hcdc.pipeline.operations.worker import Worker, queue_datasets
from hcdc.pipeline.provenance import sha256_file

# kept quick: Level 2 on the central 44 px radius (companions at 20 and 39 px), no previews
FAST_L2 = ["level2.ncomp=1", "previews=false", "crop_radius=44"]  # the IRDIS default: annular PCA


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """One DBI sequence of a small simulated night (companions at 250 and 480 mas)."""
    from hcdc.instruments.sphere.irdis.simulate import DEFAULT_SEQUENCES, simulate_irdis_night

    out = tmp_path_factory.mktemp("night") / "raw"
    return simulate_irdis_night(out, seed=5, scale="small", sequences=DEFAULT_SEQUENCES[:1])


@pytest.fixture
def catalogue(tmp_path: Path, database_url: str):
    cat = init_data_centre(tmp_path / "dc", database_url=database_url)
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def user_cube(tmp_path_factory) -> dict[str, Path]:
    """A small ADI cube (FITS) with one companion at 12 px, PA 300 deg, contrast 1e-2."""
    from hcdc.science.simulation.adi import simulate_adi_cube

    folder = tmp_path_factory.mktemp("cube")
    sim = simulate_adi_cube(
        n_frames=16, size=49, fwhm=4.0, rotation=70.0, companions=[(12.0, 300.0, 1e-2)], seed=4
    )
    for name in ("cube", "psf"):
        fits.writeto(folder / f"{name}.fits", getattr(sim, name))
    fits.writeto(folder / "angles.fits", -sim.angles)  # parallactic, as VIP's angle_list (the default)
    fits.writeto(folder / "bad_angles.fits", sim.angles[:5])  # 5 angles for 16 frames
    return {name: folder / f"{name}.fits" for name in ("cube", "angles", "psf", "bad_angles")}


def _cube_job(engine, files, *params: str, angles: str = "angles") -> int:
    inputs = {"cube": files["cube"], "angles": files[angles], "psf": files["psf"]}
    return jq.queue_job(
        engine, inputs=inputs, workflow="l2-user-cube", parameters=["compute_contrast=false", *params]
    )


def _truth_480(night):
    truth = next(c for c in night.companions if c.separation_mas == 480.0)
    return truth, float(np.mean(list(truth.contrast_by_band.values())))


def test_reduce_simulated_night_from_the_queue(night, catalogue):
    engine = catalogue.engine
    summary = ingest(catalogue, [night.out_dir])
    assert summary.ingested == len(list(night.out_dir.glob("*.fits"))) and summary.quarantined == 0
    associate_all(engine)
    with engine.connect() as conn:
        (dataset_id,) = conn.scalars(select(Dataset.id)).all()
    (job_id,) = queue_datasets(catalogue, [dataset_id], parameters=FAST_L2)

    with Worker(catalogue, processes=0) as worker:
        outcomes = worker.run(once=True)
    assert [o.state for o in outcomes] == ["done"], outcomes[0].error
    job = jq.get_job(engine, job_id)
    assert (job.state, job.attempts, job.progress) == ("done", 1, 1.0)
    assert job.summary["workflow"] == "irdis-l1-l2" and len(job.summary["product_ids"]) == 2

    with engine.connect() as conn:
        products = {p["level"]: p for p in prod.list_products(conn)}
        l2 = prod.product_detail(conn, products[2]["id"], catalogue.storage_root)
        tree = provenance_of_product(conn, l2["id"])
    assert products[1]["type"] == "level1-cube" and products[2]["type"] == "level2-image"
    assert {p["dataset_id"] for p in products.values()} == {dataset_id}
    assert l2["target"] == "51Eri" and l2["workflow"] == "irdis-l1-l2"
    for f in l2["files"]:  # every registered file is there, with the recorded checksum
        assert sha256_file(f["path"]) == f["sha256"]

    # the injected 480 mas companion, where it was put and as bright as it was made
    truth, contrast = _truth_480(night)
    best = max(l2["summary"]["detections"], key=lambda d: d["snr"])
    assert best["separation_mas"] == pytest.approx(truth.separation_mas, abs=12.0)  # 1 px = 12.25 mas
    assert abs((best["pa_deg"] - truth.pa_deg + 180) % 360 - 180) < 2.0
    # measured (seed 5): 1.26e-4 for a band-mean truth of 1.0e-4 (small-scale speckle bias)
    assert best["contrast"] == pytest.approx(contrast, rel=0.4)

    # provenance: Level 2 <- Level 1 <- the raw files (dataset + associated calibrations)
    assert tree["product_id"] == l2["id"] and tree["parameters"]["ncomp"] == 1
    (parent,) = tree["parents"]
    assert parent["product_id"] == products[1]["id"] and parent["recipe"] == "level1-irdis"
    raw = {f["sha256"]: f for item in parent["inputs"] for f in item["files"]}
    assert all(f["id"] is not None for f in raw.values())
    assert {sha256_file(f["path"]) for f in raw.values()} == set(raw)
    assert {Path(f["path"]).name for f in raw.values()} >= {
        f.path.name for f in night.files if f.role == "OBJECT"
    }

    # rerun from the provenance alone: a new version, the data bit for bit identical
    for level in (1, 2):
        again = rerun_product(catalogue, products[level]["id"])
        assert again.comparison["identical_data"], again.comparison
        with engine.connect() as conn:
            versions = prod.product_detail(conn, again.product_id, catalogue.storage_root)["versions"]
        assert [(v["version"], v["current"]) for v in versions] == [(1, False), (2, True)]

    # reprocessing with another workflow adds a Level 1 version and keeps the others
    (job2,) = queue_datasets(
        catalogue, [dataset_id], workflow="irdis-level1", parameters=["master_method=median"]
    )
    with Worker(catalogue, processes=0) as worker:
        assert [o.state for o in worker.run(once=True)] == ["done"]
    with engine.connect() as conn:
        level1 = prod.list_products(conn, level=1, all_versions=True)
        assert [(p["version"], p["current"]) for p in level1] == [(3, True), (2, False), (1, False)]
        assert level1[0]["job_id"] == job2
        record = prod.get_record(conn, level1[0]["id"])
    assert record["parameters"]["master_method"] == "median"


def test_a_failing_job_records_its_error_and_does_not_block_others(user_cube, catalogue):
    engine = catalogue.engine
    good = _cube_job(engine, user_cube, "ncomp=2")
    bad = _cube_job(engine, user_cube, angles="bad_angles")
    unknown = jq.queue_job(
        engine, dataset_id=None, inputs={"cube": "/nope.fits"}, workflow="no-such-workflow"
    )
    later = _cube_job(engine, user_cube, "ncomp=3")
    with Worker(catalogue, processes=1) as worker:  # the default: a local process pool
        outcomes = {o.job_id: o for o in worker.run(once=True)}
    states = {j.id: j for j in jq.list_jobs(engine)}
    assert {k: states[k].state for k in (good, bad, unknown, later)} == {
        good: "done",
        bad: "failed",
        unknown: "failed",
        later: "done",
    }
    assert "5" in states[bad].error and "16" in states[bad].error, states[bad].error  # says why
    assert states[bad].attempts == 1 and "Traceback" in states[bad].log
    assert "no-such-workflow" in states[unknown].error
    assert outcomes[bad].product_ids == []
    with engine.connect() as conn:
        products = prod.list_products(conn, all_versions=True)
    # same inputs, new parameters: one lineage, two versions, the later one current
    assert [(p["job_id"], p["version"], p["current"]) for p in products] == [
        (later, 2, True),
        (good, 1, False),
    ]
    assert not list((catalogue.storage_root / "products").glob(f"job-{bad}/*"))  # nothing left behind
    # each job keeps its own log: worker lines, the node's recipe log, errors with their traceback
    with engine.connect() as conn:
        logs = {j: job_log_lines(conn, j, tracebacks=True) for j in (good, bad, unknown)}
        public_bad = job_log_lines(conn, bad, tracebacks=False)
    text = {j: [(x["node"], x["level"], x["message"]) for x in lines] for j, lines in logs.items()}
    assert text[good][0] == (None, "info", "attempt 1 of 3 started"), text[good]
    assert ("level2", "info", "node level2 submitted") in text[good]
    assert any(
        n == "level2" and m.startswith("recipe l2-postprocess") and "started" in m for n, _, m in text[good]
    )
    assert any(n == "level2" and m.startswith("node level2 done in") for n, _, m in text[good])
    assert text[good][-1][2].startswith("done: product(s) ") and "registered" in text[good][-1][2]
    assert {x["attempt"] for x in logs[good]} == {1}
    levels_bad = [lv for _, lv, _ in text[bad]]
    assert "error" in levels_bad and "traceback" in levels_bad, text[bad]
    assert any("Traceback (most recent call last)" in m for _, lv, m in text[bad] if lv == "traceback")
    assert all(x["level"] != "traceback" for x in public_bad) and len(public_bad) < len(logs[bad])
    assert any("no-such-workflow" in m for _, lv, m in text[unknown] if lv == "error"), text[unknown]


def test_worker_on_a_dask_local_cluster(user_cube, tmp_path, sqlite_url):
    """``hcdc worker --scheduler ADDRESS``: the nodes run on the workers of a real Dask cluster."""
    from distributed import LocalCluster

    catalogue = init_data_centre(tmp_path / "dc", database_url=sqlite_url)
    ids = [
        _cube_job(catalogue.engine, user_cube, "ncomp=2"),
        _cube_job(catalogue.engine, user_cube, angles="bad_angles"),
    ]
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster:
        with Worker(catalogue, scheduler=cluster.scheduler_address) as worker:
            assert worker.executor.kind == "dask"
            outcomes = worker.run(once=True)
    assert [o.state for o in outcomes] == ["done", "failed"]
    with catalogue.engine.connect() as conn:
        (product,) = prod.list_products(conn)
        detail = prod.product_detail(conn, product["id"], catalogue.storage_root)
    assert product["job_id"] == ids[0]
    record_host = detail["provenance"]["host"]
    assert record_host  # the host of the Dask worker that ran the node
    best = max(detail["summary"]["detections"], key=lambda d: d["snr"])
    assert best["separation_px"] == pytest.approx(12.0, abs=1.0)
    assert abs((best["pa_deg"] - 300.0 + 180) % 360 - 180) < 4.0
    catalogue.close()


def test_watch_queues_a_dataset_once_its_calibrations_arrive(night, tmp_path, sqlite_url):
    catalogue = init_data_centre(tmp_path / "dc", database_url=sqlite_url)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    science = [f for f in night.files if f.role in ("OBJECT", "OBJECT,CENTER", "OBJECT,FLUX", "SKY")]
    calibrations = [f for f in night.files if f not in science]
    for f in science:
        shutil.copy2(f.path, incoming / f.path.name)
    first = watch_once(catalogue, incoming)
    assert first.ingested == len(science) and first.associated and not first.queued_jobs  # flats missing
    for f in calibrations:
        shutil.copy2(f.path, incoming / f.path.name)
    second = watch_once(catalogue, incoming)
    assert second.ingested == len(calibrations) and second.new_calibrations == len(calibrations)
    assert len(second.queued_jobs) == 1
    (job,) = jq.list_jobs(catalogue.engine)
    assert job.dataset_id == second.queued_datasets[0] and job.state == "queued"
    third = watch_once(catalogue, incoming)  # nothing new: nothing queued twice
    assert third.ingested == 0 and third.queued_jobs == []
    catalogue.close()


def test_a_job_cancelled_while_running_registers_nothing(user_cube, tmp_path, sqlite_url):
    catalogue = init_data_centre(tmp_path / "dc", database_url=sqlite_url)
    job_id = _cube_job(catalogue.engine, user_cube, "ncomp=2")
    # the cancel arrives right after the worker claimed the job
    with Worker(catalogue, processes=0, on_job=lambda job: jq.cancel_job(catalogue.engine, job.id)) as worker:
        (outcome,) = worker.run(once=True)
    assert outcome.state == "abandoned" and outcome.product_ids == []
    assert jq.get_job(catalogue.engine, job_id).state == "cancelled"
    with catalogue.engine.connect() as conn:
        assert prod.list_products(conn, all_versions=True) == []
    assert not list((catalogue.storage_root / "products").rglob("*.fits"))
    catalogue.close()
