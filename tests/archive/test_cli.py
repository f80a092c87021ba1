"""The archive commands through typer's CliRunner and one real ``hcdc`` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from hcdc.archive.db import head_revision, open_data_centre
from hcdc.cli import app

from .night import WAVE_YJ, WAVE_YJH, build_night

HCDC = str(Path(sys.executable).parent / "hcdc")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "240"})  # wide tables: nothing truncated


def _ok(result, status: int = 0) -> str:
    assert result.exit_code == status, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def _json(runner: CliRunner, *args: str, status: int = 0):
    return json.loads(_ok(runner.invoke(app, [*args, "--json"]), status))


@pytest.fixture
def centre(runner: CliRunner, tmp_path: Path, database_url: str, sphere_headers) -> Path:
    """A data centre made with ``hcdc init`` and filled with the realistic night by ``hcdc ingest``."""
    root = tmp_path / "dc"
    args = ["init", str(root)]
    if not database_url.startswith("sqlite"):
        args += ["--database", database_url]
    info = _json(runner, *args)
    assert info["schema_revision"] == head_revision()
    assert Path(info["storage_root"]) == (root / "storage").resolve()
    build_night(sphere_headers, tmp_path / "night")
    summary = _json(runner, "ingest", str(tmp_path / "night"), "--root", str(root), "--workers", "1")
    assert (summary["discovered"], summary["ingested"], summary["quarantined"]) == (12, 12, 0)
    return root


def test_listing_and_showing(runner: CliRunner, centre: Path) -> None:
    root = ["--root", str(centre)]
    files = _json(runner, "files", *root)
    assert len(files) == 12
    assert [f["date_obs"] for f in files] == sorted(f["date_obs"] for f in files)
    science = _json(runner, "files", *root, "--night", "2020-03-07", "--type", "OBJECT")
    assert len(science) == 4 and {f["target"] for f in science} == {"A124420"}
    assert len(_json(runner, "files", *root, "--type", "object,center")) == 1
    # 6 science frames + 3 backgrounds taken within the same OB (they keep its target name)
    assert len(_json(runner, "files", *root, "--target", "a1244")) == 9
    assert len(_json(runner, "files", *root, "--instrument", "sphere", "--limit", "3")) == 3
    assert _json(runner, "files", *root, "--instrument", "NACO") == []
    # a hostile target is just a string that matches nothing; the table is still there
    assert _json(runner, "files", *root, "--target", "x'; DROP TABLE files; --") == []
    assert _json(runner, "files", *root, "--target", "%") == []
    with open_data_centre(centre) as catalogue:
        assert "files" in inspect(catalogue.engine).get_table_names()

    datasets = _json(runner, "datasets", *root)
    assert len(datasets) == 1
    dataset = datasets[0]
    assert dataset["role_counts"] == {"OBJECT": 4, "OBJECT,CENTER": 1, "OBJECT,FLUX": 1}
    assert (dataset["target"], dataset["night"], dataset["associated"]) == ("A124420", "2020-03-07", False)
    assert _json(runner, "datasets", *root, "--night", "2020-03-08") == []
    assert len(_json(runner, "datasets", *root, "--type", "OBJECT,FLUX")) == 1

    wave = next(f for f in files if f["name"] == f"{WAVE_YJ}.fits")
    detail = _json(runner, "show", str(wave["id"]), *root)
    assert (detail["type"], detail["mode"], detail["filter"]) == ("WAVE,LAMP", "IFS-YJ", "OBS_YJ")
    assert "header" not in detail and detail["versions"][0]["is_current"] is True
    assert Path(detail["location"]).is_file()
    with_header = _json(runner, "show", f"f{wave['id']}", "--header", *root)
    assert "HIERARCH ESO DPR TYPE = 'WAVE,LAMP'" in " ".join(with_header["header"])
    shown = _json(runner, "show", f"d{dataset['id']}", *root)
    assert len(shown["files"]) == 6 and shown["association"] is None
    # tables for people
    table = _ok(runner.invoke(app, ["files", *root]))
    assert "A124420" in table and f"{WAVE_YJH}.fits"[:10] in table
    assert "Dataset" in _ok(runner.invoke(app, ["show", f"d{dataset['id']}", *root]))


def test_associate_command(runner: CliRunner, centre: Path) -> None:
    root = ["--root", str(centre)]
    report = _json(runner, "associate", *root)
    (view,) = report["datasets"]
    wave = next(c for c in view["chosen"] if c["need"] == "wave")
    assert wave["file"] == f"{WAVE_YJ}.fits"
    assert {m["need"] for m in report["missing"]} >= {"specpos", "ifu_flat"}
    assert all(m["dataset_id"] == view["dataset_id"] for m in report["missing"])
    # by id or by key, and the listing shows the stored state
    again = _json(runner, "associate", str(view["dataset_id"]), *root)
    assert again["datasets"][0]["chosen"] == view["chosen"]
    by_key = _json(runner, "associate", view["dataset"], *root)
    assert by_key["datasets"][0]["dataset_id"] == view["dataset_id"]
    (listed,) = _json(runner, "datasets", *root)
    assert listed["associated"] is True and listed["missing"] == len(report["missing"])
    text = _ok(runner.invoke(app, ["associate", *root]))
    assert "Missing calibrations" in text and "specpos" in text
    missing = runner.invoke(app, ["associate", "d999", *root])
    assert missing.exit_code == 1 and "no dataset" in missing.stderr


def test_quarantine_and_reingest(runner: CliRunner, centre: Path, tmp_path: Path) -> None:
    root = ["--root", str(centre)]
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "junk.fits").write_bytes(b"\x00" * 100)
    # exit status 3: some files were quarantined (issue 10: scripts must notice)
    summary = _json(runner, "ingest", str(bad), str(tmp_path / "night"), *root, status=3)
    assert (summary["quarantined"], summary["duplicates"]) == (1, 12)
    assert summary["quarantine_reasons"] == {"unreadable": 1}
    rows = _json(runner, "quarantine", *root)
    assert len(rows) == 1 and rows[0]["path"] == str(bad / "junk.fits")
    assert rows[0]["reason"].startswith(str(bad / "junk.fits"))
    assert _json(runner, "quarantine", "--reason", "invalid-metadata", *root) == []
    table = _ok(runner.invoke(app, ["ingest", str(bad), *root]), 3)
    assert "Ingest summary" in table and "unreadable" in table


def test_errors_are_clear(runner: CliRunner, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["files", "--root", str(empty)])
    assert result.exit_code == 1 and "is not an hcdc data centre" in result.stderr
    result = runner.invoke(
        app, ["init", str(tmp_path / "x"), "--database", "postgresql+psycopg://u@127.0.0.1:1/db"]
    )
    assert result.exit_code == 1 and "cannot connect to the catalogue database" in result.stderr
    result = runner.invoke(app, ["init", str(tmp_path / "y")])
    assert result.exit_code == 0
    root = ["--root", str(tmp_path / "y")]
    result = runner.invoke(app, ["files", "--night", "yesterday", *root])
    assert result.exit_code == 1 and "--night must be a date" in result.stderr
    result = runner.invoke(app, ["show", "f42", *root])
    assert result.exit_code == 1 and "no file with id 42" in result.stderr
    result = runner.invoke(app, ["ingest", str(tmp_path / "does-not-exist"), *root])
    assert result.exit_code == 1 and "no such file or directory" in result.stderr


def test_real_hcdc_subprocess(tmp_path: Path, database_url: str, sphere_files) -> None:
    """The installed ``hcdc`` command, configured through HCDC_ROOT."""
    root = tmp_path / "centre"
    env = {**os.environ, "HCDC_ROOT": str(root), "COLUMNS": "200"}
    init = [HCDC, "init", str(root)] + (
        [] if database_url.startswith("sqlite") else ["--database", database_url]
    )
    subprocess.run(init, check=True, capture_output=True, env=env, timeout=120)
    folder = str(next(iter(sphere_files.values())).parent)
    done = subprocess.run(
        [HCDC, "ingest", folder, "--copy", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ingested"] == 8
    listed = subprocess.run(
        [HCDC, "datasets"], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    assert "A124420" in listed.stdout and "IFS-YJ" in listed.stdout
    assert list((root / "storage" / "objects").rglob("*.fits"))
