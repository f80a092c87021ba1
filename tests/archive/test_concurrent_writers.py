"""Concurrent writers on one catalogue: an ingest that quarantines files while another process
writes (a worker's heartbeats and job updates) must wait for the lock, never crash with
"database is locked" (SQLite) -- and behaves the same on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

from sqlalchemy import func, select

from hcdc.archive.db import make_engine
from hcdc.archive.ingest import ingest
from hcdc.archive.models import File, QuarantinedFile
from hcdc.archive.samples import clone_series
from hcdc.pipeline.operations import jobs as jq

N_GOOD, N_BAD = 40, 40


def test_ingest_with_quarantine_beside_a_busy_writer(catalogue, sphere_headers, tmp_path: Path) -> None:
    header = sphere_headers["SPHER.2020-03-08T07_38_33.715"]
    batch = tmp_path / "batch"
    clone_series(header, batch, N_GOOD, dt.datetime(2020, 3, 8, 5, 0), dt.timedelta(seconds=10))
    for i in range(N_BAD):  # interleaved with the good files: every commit group quarantines some
        (batch / f"SPHER.2020-03-08T05_0{i:03d}.bad.fits").write_bytes(b"not a FITS file" * 8)

    # another process's connection (a worker): read-then-write transactions as fast as it can
    other = make_engine(catalogue.settings.resolved_database_url)
    job_id = jq.queue_job(other, inputs={"cube": "/nowhere.fits"}, workflow="l2-postprocess")
    stop, errors, writes = threading.Event(), [], [0]

    def hammer() -> None:
        try:
            while not stop.is_set():
                jq.queue_job(other, inputs={"cube": "/nowhere.fits"}, workflow="l2-postprocess")
                jq.cancel_job(other, job_id)
                writes[0] += 1
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        summary = ingest(catalogue, [batch], workers=1)
    finally:
        stop.set()
        thread.join()
        other.dispose()
    assert not errors, errors
    assert writes[0] > 0
    assert (summary.ingested, summary.quarantined) == (N_GOOD, N_BAD)
    with catalogue.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(File)) == N_GOOD
        assert conn.scalar(select(func.count()).select_from(QuarantinedFile)) == N_BAD
