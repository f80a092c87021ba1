"""A real ``hcdc ingest`` process killed with SIGKILL mid-batch, then re-run to completion."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from hcdc.archive.db import make_engine
from hcdc.archive.models import Dataset, File
from hcdc.archive.samples import clone_series

HCDC = str(Path(sys.executable).parent / "hcdc")
N_FILES = 500


def _counts(engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        files = conn.scalar(select(func.count()).select_from(File))
        shas = conn.scalar(select(func.count(func.distinct(File.sha256))))
        paths = conn.scalar(select(func.count(func.distinct(File.path))))
    return files, shas, paths


def test_killed_ingest_resumes_without_loss_or_duplicates(catalogue, sphere_headers, tmp_path) -> None:
    header = sphere_headers["SPHER.2020-03-08T07_38_33.715"]
    paths = clone_series(
        header, tmp_path / "batch", N_FILES, dt.datetime(2020, 3, 8, 5, 0), dt.timedelta(seconds=10)
    )
    root = str(catalogue.settings.root)
    env = {**os.environ, "HCDC_ROOT": root}
    watcher = make_engine(catalogue.settings.resolved_database_url)
    process = subprocess.Popen(
        [HCDC, "ingest", str(tmp_path / "batch"), "--workers", "2", "--json"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the kill reaches the pool workers too
    )
    try:
        deadline = time.monotonic() + 120
        committed = 0
        while time.monotonic() < deadline and process.poll() is None:
            committed = _counts(watcher)[0]
            if committed > 0:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the ingest finished before it could be killed: raise N_FILES"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    after_kill, shas, _ = _counts(watcher)
    assert 0 < after_kill < N_FILES, "killed mid-batch: some but not all files committed"
    assert shas == after_kill  # what was committed is whole and unique

    rerun = subprocess.run(
        [HCDC, "ingest", str(tmp_path / "batch"), "--workers", "2", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = json.loads(rerun.stdout)
    assert summary["discovered"] == N_FILES
    assert summary["duplicates"] == after_kill
    assert summary["ingested"] == N_FILES - after_kill
    assert summary["quarantined"] == 0
    files, shas, distinct_paths = _counts(watcher)
    assert files == shas == distinct_paths == N_FILES
    with watcher.connect() as conn:
        catalogued = set(conn.scalars(select(File.path)))
        datasets = conn.execute(select(Dataset.n_files)).all()
        unlinked = conn.scalar(select(func.count()).select_from(File).where(File.dataset_id.is_(None)))
    assert catalogued == {str(p) for p in paths}
    # the killed run never grouped its files; the re-run did, for all of them
    assert [d.n_files for d in datasets] == [N_FILES] and unlinked == 0
    watcher.dispose()
