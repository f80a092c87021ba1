"""The fault suite's fast part (issue 10): hostile inputs, on SQLite and PostgreSQL.

Every case of the hostile corpus (``helpers.hostile.write_corpus``) is ingested in one batch;
each bad file must be quarantined with its reason (naming it) while the others are
catalogued, identically on both databases; special files must neither block nor be read.
The slower cases (large batches, many generated headers) are in ``tests/faults``.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.hostile import (
    CORPUS,
    HOSTILE_CARDS,
    Expected,
    card,
    deadline,
    hierarch,
    hostile_header_outcome,
    irdis_cards,
    quoted,
    raw_fits,
    write_corpus,
)
from hypothesis import HealthCheck, given, settings
from sqlalchemy import func, select
from typer.testing import CliRunner

from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.models import File, QuarantinedFile
from hcdc.archive.storage import resolve_stored_path
from hcdc.cli import app
from hcdc.cli.output import escape_control

#: Running ``hcdc`` in a subprocess (the CLI as operators run it, with its exit status).
HCDC = [sys.executable, "-c", "import sys; from hcdc.cli import main; sys.argv[0] = 'hcdc'; main()"]


def _check_corpus(catalogue, folder: Path, cases: dict[str, Expected]) -> dict[str, dict]:
    """Every file of the corpus has its expected outcome; returns name -> outcome seen."""
    with catalogue.engine.connect() as conn:
        rows = {Path(r.path).name: r for r in conn.execute(select(File))}
        quarantined = {Path(r.path).name: r for r in conn.execute(select(QuarantinedFile))}
    seen: dict[str, dict] = {}
    for name, expected in cases.items():
        shown = _shown(name)
        if expected.status == "ingested":
            assert shown in rows and shown not in quarantined, name
            row = rows[shown]
            for column, value in expected.columns:
                assert getattr(row, column) == value, (name, column)
            warnings = row.extra.get("warnings", [])
            if expected.fragment:
                assert any(expected.fragment in w for w in warnings), (name, warnings)
            else:
                assert not warnings, (name, warnings)
            seen[name] = {"status": "ingested", "warnings": warnings}
        else:
            assert shown in quarantined and shown not in rows, name
            q = quarantined[shown]
            assert q.reason_code == expected.reason_code, (name, q.reason)
            assert q.reason.startswith(str(folder)) and shown in q.reason, q.reason  # names the file
            assert expected.fragment in q.reason, (name, q.reason)
            seen[name] = {"status": "quarantined", "reason_code": q.reason_code}
    return seen


def _shown(name: str) -> str:
    return os.fsencode(name).decode("utf-8", "backslashreplace")


@pytest.mark.parametrize("name", sorted(CORPUS, key=os.fsencode), ids=_shown)
def test_hostile_case(catalogue, tmp_path: Path, name: str) -> None:
    """One hostile file next to a good one: its expected outcome, and the batch goes on."""
    folder = tmp_path / "case"
    cases = write_corpus(folder, [name])
    raw_fits(folder / "neighbour.fits", irdis_cards(**{hierarch("OBS ID"): "9"}))
    cases["neighbour.fits"] = Expected("ingested")
    with deadline(30):
        summary = ingest(catalogue, [folder], workers=1)
    assert summary.discovered == 2
    _check_corpus(catalogue, folder, cases)


def test_hostile_corpus_in_parallel_workers(catalogue, tmp_path: Path) -> None:
    """The same corpus through the process pool (problems found in the workers)."""
    folder = tmp_path / "hostile"
    cases = write_corpus(folder)
    for i in range(30):  # enough files to use the pool
        raw_fits(folder / f"clone-{i:02d}.fits", irdis_cards(**{hierarch("OBS ID"): str(1000 + i)}))
        cases[f"clone-{i:02d}.fits"] = Expected("ingested")
    with deadline(120):
        summary = ingest(catalogue, [folder], workers=2)
    assert summary.workers == 2
    bad = sum(1 for e in cases.values() if e.status == "quarantined")
    assert (summary.discovered, summary.quarantined, summary.ingested) == (len(cases), bad, len(cases) - bad)
    _check_corpus(catalogue, folder, cases)
    # a re-run goes through the same files again without stopping and adds nothing
    with deadline(120):
        again = ingest(catalogue, [folder], workers=2)
    assert (again.quarantined, again.ingested, again.duplicates) == (bad, 0, len(cases) - bad)


def test_outcomes_are_the_same_on_sqlite_and_postgresql(tmp_path: Path, sqlite_url, postgres_url) -> None:
    outcomes = []
    for name, url in (("sqlite", sqlite_url), ("postgresql", postgres_url)):
        folder = tmp_path / name / "hostile"
        cases = write_corpus(folder)
        with init_data_centre(tmp_path / name / "dc", database_url=url) as catalogue, deadline(60):
            ingest(catalogue, [folder], workers=1)
            outcomes.append(_check_corpus(catalogue, folder, cases))
    assert outcomes[0] == outcomes[1]


def test_watch_goes_on_past_hostile_files(catalogue, tmp_path: Path) -> None:
    from hcdc.pipeline.operations.watch import watch_once

    folder = tmp_path / "incoming"
    cases = write_corpus(folder)
    with deadline(60):
        poll = watch_once(catalogue, folder)
        raw_fits(folder / "later.fits", irdis_cards(**{hierarch("OBS ID"): "77"}))
        second = watch_once(catalogue, folder)
    assert poll.quarantined == sum(1 for e in cases.values() if e.status == "quarantined")
    assert second.ingested == 1  # the next poll still catalogues new files


def _run_hcdc(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``hcdc ARGS`` in a process limited to 2 GiB of memory (a read of /dev/zero would exceed it)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [*HCDC, *args], capture_output=True, text=True, timeout=timeout, preexec_fn=limit, env=env
    )


def test_cli_ingest_of_special_files_ends_with_status_3(tmp_path: Path) -> None:
    """A FIFO and a link to /dev/zero, as an operator would meet them: the command ends quickly,
    within a memory limit, with exit status 3 and the counts in --json."""
    folder = tmp_path / "incoming"
    raw_fits(folder / "good.fits", irdis_cards())
    os.mkfifo(folder / "fifo.fits")
    os.symlink("/dev/zero", folder / "zero.fits")
    init_data_centre(tmp_path / "dc").close()
    result = _run_hcdc("ingest", str(folder), "--json", "--root", str(tmp_path / "dc"), timeout=60)
    assert result.returncode == 3, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["discovered"], summary["ingested"], summary["quarantined"]) == (3, 1, 2)
    assert summary["quarantine_reasons"] == {"not-regular-file": 2}
    result = _run_hcdc("ingest", str(folder / "good.fits"), "--root", str(tmp_path / "dc"))
    assert result.returncode == 0, result.stderr  # nothing quarantined: 0
    words = " ".join(_run_hcdc("ingest", "--help").stdout.replace("│", " ").split())
    assert "3 when some files were quarantined" in words  # documented in --help


def test_listings_escape_terminal_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    folder = tmp_path / "raw"
    raw_fits(
        folder / "evil\x1b[5m.fits",
        irdis_cards(**{hierarch("OBS TARG NAME"): quoted("\x1b]0;pwned\x07[b]x")}),
    )
    raw_fits(folder / "bad.fits", irdis_cards(**{hierarch("DET NDIT"): quoted("\x1b[31mmany")}))
    init_data_centre(tmp_path / "dc").close()
    root = ["--root", str(tmp_path / "dc")]
    result = runner.invoke(app, ["ingest", str(folder), *root])
    assert result.exit_code == 3
    for command in (["files"], ["quarantine"], ["show", "1", "--header"], ["ingest", str(folder)]):
        out = runner.invoke(app, [*command, *root]).stdout
        assert "\x1b" not in out and "\x07" not in out, command
    files = runner.invoke(app, ["files", *root]).stdout
    assert "\\x1b]0;pwned\\x07[b]x" in files  # shown escaped, rich markup not interpreted
    assert "\\x1b[31mmany" in runner.invoke(app, ["quarantine", *root]).stdout
    # a file name that is not UTF-8, in an error message or table, is shown with escapes
    assert escape_control(os.fsdecode(b"/raw/a\xff\x1b.fits")) == "/raw/a\\xff\\x1b.fits"
    # JSON keeps the exact value (json escapes control characters itself)
    rows = json.loads(runner.invoke(app, ["files", "--json", *root]).stdout)
    assert rows[0]["target"] == "\x1b]0;pwned\x07[b]x"


@pytest.mark.parametrize("mode", [None, "0640"])
def test_copied_files_follow_the_configured_mode(catalogue, tmp_path: Path, mode: str | None) -> None:
    if mode:
        catalogue.settings.file_mode = mode
    path = raw_fits(tmp_path / "raw" / "a.fits", irdis_cards())
    ingest(catalogue, [path], copy=True, workers=1)
    with catalogue.engine.connect() as conn:
        row = conn.execute(select(File)).one()
    stored = resolve_stored_path(row.storage, row.stored_path, catalogue.storage_root)
    umask = os.umask(0)
    os.umask(umask)
    expected = int(mode, 8) if mode else 0o666 & ~umask
    assert stat.S_IMODE(stored.stat().st_mode) == expected
    assert expected & 0o040  # group-readable in both cases (the usual umask 022/002)


def test_generated_header_cards_never_stop_ingest(catalogue, tmp_path: Path) -> None:
    counter = iter(range(10**6))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(cards=HOSTILE_CARDS)
    def check(cards: tuple[list[tuple[str, bytes]], list[bytes]]) -> None:
        hostile_header_outcome(catalogue, tmp_path / "generated", next(counter), cards)

    check()
    # the catalogue is still usable, and nothing was half-written
    with catalogue.engine.connect() as conn:
        files = conn.scalar(select(func.count()).select_from(File))
        quarantined = conn.scalar(select(func.count()).select_from(QuarantinedFile))
    assert files + quarantined >= 1


def test_card_helper_writes_80_bytes() -> None:
    assert len(card(hierarch("DET NDIT"), "1" * 200)) == 80
