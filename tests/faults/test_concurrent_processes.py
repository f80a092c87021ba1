"""``hcdc ingest``, ``hcdc worker`` and ``hcdc watch`` running at the same time on one catalogue,
as the docs recommend (a watcher and one worker, an operator ingesting an older night by hand),
with files to quarantine in both folders: none of them may crash ("database is locked" on
SQLite), every file is catalogued or quarantined once, every job is done once, and the store
is clean afterwards; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
from helpers.faults import HCDC, assert_clean_store, hcdc_env, queue_cube_job, wait_for, write_user_cube
from sqlalchemy import func, select

from hcdc.archive.db import init_data_centre
from hcdc.archive.models import File, QuarantinedFile
from hcdc.archive.pipeline_models import Product
from hcdc.archive.samples import clone_series
from hcdc.instruments.eso_headers import read_header_text
from hcdc.pipeline.operations import jobs as jq

pytestmark = pytest.mark.faults

N_GOOD, N_BAD, N_JOBS = 150, 30, 3


def _folder(folder: Path, header, start: dt.datetime) -> None:  # noqa: ANN001 - fits.Header
    """Good files interleaved with files that are not FITS (so every commit group quarantines)."""
    clone_series(header, folder, N_GOOD, start, dt.timedelta(seconds=10))
    for i in range(N_BAD):
        stamp = (start + dt.timedelta(seconds=50 * i + 5)).strftime("%Y-%m-%dT%H_%M_%S")
        (folder / f"SPHER.{stamp}.broken.fits").write_bytes(b"this is not FITS" * 10)


def test_ingest_worker_and_watch_at_once(tmp_path, database_url, shared_data) -> None:
    catalogue = init_data_centre(tmp_path / "dc", database_url=database_url)
    root, engine = catalogue.settings.root, catalogue.engine
    header = read_header_text(shared_data / "sphere_headers" / "SPHER.2020-03-08T07_38_33.715.hdr.txt")
    _folder(tmp_path / "by-hand", header, dt.datetime(2020, 3, 8, 1, 0))
    _folder(tmp_path / "incoming", header, dt.datetime(2020, 3, 9, 1, 0))
    cube = write_user_cube(tmp_path / "cube")
    jobs = [queue_cube_job(engine, cube, f"ncomp={n}") for n in range(1, N_JOBS + 1)]

    env = hcdc_env(root, marker=uuid.uuid4().hex)
    start = lambda *args: subprocess.Popen(  # noqa: E731
        [*HCDC, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    # a short lease: the worker's heartbeats write every 0.25 s
    worker = start("worker", "--processes", "0", "--lease", "1", "--poll", "0.2")
    watcher = start("watch", str(tmp_path / "incoming"), "--interval", "0.3", "--json")
    ingest = start("ingest", str(tmp_path / "by-hand"), "--workers", "1", "--json")
    try:
        out, err = ingest.communicate(timeout=300)
        wait_for(lambda: jq.all_finished(jq.list_jobs(engine, ids=jobs)), timeout=300, what="the jobs")
        wait_for(lambda: _catalogued(engine) == (2 * N_GOOD, 2 * N_BAD), timeout=120, what="the watcher")
    finally:
        for process in (worker, watcher, ingest):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # how an operator stops them (Ctrl-C)
        logs = {name: p.communicate(timeout=60)[1] for name, p in (("worker", worker), ("watch", watcher))}
    logs["ingest"] = err
    for name, log in logs.items():
        assert "database is locked" not in log and "Traceback" not in log, f"hcdc {name}:\n{log[-3000:]}"
    summary = json.loads(out)
    assert (summary["ingested"], summary["quarantined"]) == (N_GOOD, N_BAD)
    assert all(j.state == "done" for j in jq.list_jobs(engine, ids=jobs))
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Product)) == N_JOBS  # each job once
    assert _catalogued(engine) == (2 * N_GOOD, 2 * N_BAD)
    assert_clean_store(root)
    catalogue.close()


def _catalogued(engine) -> tuple[int, int]:  # noqa: ANN001
    with engine.connect() as conn:
        files = conn.scalar(select(func.count()).select_from(File))
        quarantined = conn.scalar(select(func.count(func.distinct(QuarantinedFile.path))))
    return files, quarantined
