"""Fault suite, slow part: hostile files inside large batches, generated headers, and watch.

The fast, per-case part is tests/archive/test_hostile.py (in ``make test``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from helpers.hostile import (
    CORPUS,
    HOSTILE_CARDS,
    deadline,
    hierarch,
    hostile_header_outcome,
    irdis_cards,
    raw_fits,
    write_corpus,
)
from hypothesis import HealthCheck, given, settings
from sqlalchemy import func, select

from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import Dataset, File, QuarantinedFile


def _count(catalogue, model) -> int:
    with catalogue.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def test_one_bad_file_does_not_block_a_folder_of_500(catalogue, tmp_path: Path) -> None:
    """Issue 10's reproduction: 500 good files and every hostile case in one folder, read by the
    process pool. Today's code stopped at the first bad name or integer (200 of 501 files, 0
    datasets, and the same on every re-run)."""
    folder = tmp_path / "night"
    start = dt.datetime(2018, 11, 30, 1, 0, 0)
    for i in range(500):
        when = start + dt.timedelta(seconds=10 * i)
        overrides = {
            "DATE-OBS": f"'{when.isoformat(timespec='milliseconds')}'",
            "MJD-OBS": f"{(when - dt.datetime(1858, 11, 17)) / dt.timedelta(days=1):.8f}",
            hierarch("DPR CATG"): "'SCIENCE '",
            hierarch("DPR TYPE"): "'OBJECT  '",
            hierarch("DPR TECH"): "'IMAGE,DUAL,CORONOGRAPHY'",
        }
        raw_fits(folder / f"SPHER.{i:04d}.fits", irdis_cards(**overrides))
    cases = write_corpus(folder)
    bad = sum(1 for e in cases.values() if e.status == "quarantined")
    with deadline(600):
        summary = ingest(catalogue, [folder], workers=2)
    assert summary.discovered == 500 + len(cases)
    assert (summary.ingested, summary.quarantined) == (500 + len(cases) - bad, bad)
    assert summary.datasets_updated >= 1 and _count(catalogue, Dataset) >= 1
    with deadline(600):
        again = ingest(catalogue, [folder], workers=2)
    assert (again.ingested, again.quarantined, again.duplicates) == (0, bad, 500 + len(cases) - bad)
    assert _count(catalogue, File) == 500 + len(cases) - bad
    assert _count(catalogue, QuarantinedFile) == bad


def test_many_generated_header_cards(catalogue, tmp_path: Path) -> None:
    counter = iter(range(10**6))
    outcomes: list[str] = []

    @settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cards=HOSTILE_CARDS)
    def check(cards: tuple[list[tuple[str, bytes]], list[bytes]]) -> None:
        outcomes.append(hostile_header_outcome(catalogue, tmp_path / "generated", next(counter), cards))

    with deadline(900):
        check()
    assert set(outcomes) <= {"ingested", "quarantined", "duplicate"}
    assert {"ingested", "quarantined"} <= set(outcomes)  # the generator reaches both outcomes
    assert _count(catalogue, File) + _count(catalogue, QuarantinedFile) >= 1


def test_hcdc_watch_survives_hostile_files(tmp_path: Path, database_url: str) -> None:
    """``hcdc watch`` (the real command, polling every second) is not stopped or blocked by any
    hostile file, and still catalogues the good files that arrive after them."""
    root = tmp_path / "dc"
    init_data_centre(root, database_url=database_url).close()
    incoming = tmp_path / "incoming"
    write_corpus(incoming)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    command = [
        sys.executable,
        "-c",
        "import sys; from hcdc.cli import main; sys.argv[0] = 'hcdc'; main()",
        "watch",
        str(incoming),
        "--interval",
        "1",
        "--root",
        str(root),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(8)
        assert process.poll() is None, process.communicate()
        raw_fits(incoming / "late.fits", irdis_cards(**{hierarch("OBS ID"): "123"}))
        deadline_s = time.monotonic() + 60
        found = False
        with init_data_centre(root) as catalogue:
            while time.monotonic() < deadline_s and not found:
                with catalogue.engine.connect() as conn:
                    found = (
                        conn.scalar(select(File.id).where(File.path == str(incoming / "late.fits")))
                        is not None
                    )
                time.sleep(1)
            quarantined = _count(catalogue, QuarantinedFile)
        assert found, "the watcher did not catalogue a good file arriving after the hostile ones"
        assert process.poll() is None, process.communicate()
        assert quarantined == sum(1 for e in CORPUS.values() if e[1].status == "quarantined")
    finally:
        process.terminate()
        process.wait(30)


def test_watch_json_lines_report_quarantine(tmp_path: Path) -> None:
    """One poll with --once --json: the quarantined count is reported."""
    root = tmp_path / "dc"
    init_data_centre(root).close()
    incoming = tmp_path / "incoming"
    write_corpus(incoming, ["fifo.fits", "zero.fits", "good.fits"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    command = [sys.executable, "-c", "import sys; from hcdc.cli import main; sys.argv[0] = 'hcdc'; main()"]
    result = subprocess.run(
        [*command, "watch", str(incoming), "--once", "--json", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    (poll,) = json.loads(result.stdout)["polls"]
    assert (poll["ingested"], poll["quarantined"]) == (1, 2)
