"""The operator's entry point to the data centre (:mod:`hcdc.pipeline.operations.operator`,
opened by ``ProcessingCatalogue.operations``): rule A1, and the commands that go through it
(``reduce``'s queueing, one job or a batch; ``rerun``, ``quarantine``, ``fsck``), on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hcdc.archive import accounts
from hcdc.archive.access import AccessDenied, load_principal, local_operator
from hcdc.archive.db import init_data_centre, write_transaction
from hcdc.cli import app
from hcdc.pipeline.operations.catalogue import ProcessingCatalogue
from hcdc.pipeline.operations.operator import OperatorCatalogue

from .night import build_night


def _ok(result, status: int = 0) -> str:
    assert result.exit_code == status, (
        f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result.stdout


def test_only_admins_operate_the_data_centre(catalogue, sphere_files, tmp_path: Path) -> None:
    with write_transaction(catalogue.engine) as conn:
        for name, role in (("alice", "user"), ("olga", "operator"), ("ada", "admin")):
            accounts.add_user(conn, local_operator(), name, role=role)
    for name in ("alice", "olga"):  # operators run the queue's jobs page, not the pipeline
        with catalogue.engine.connect() as conn:
            who = load_principal(conn, name)
        with catalogue.as_user(who, facade=ProcessingCatalogue) as view:
            with pytest.raises(AccessDenied, match=r"not allowed \(A1\)"):
                view.operations(catalogue)  # type: ignore[attr-defined]
    with catalogue.engine.connect() as conn:
        ada = load_principal(conn, "ada")
    with catalogue.as_user(ada, facade=ProcessingCatalogue) as view:
        operator = view.operations(catalogue)  # type: ignore[attr-defined]
        assert isinstance(operator, OperatorCatalogue)
        summary = operator.ingest([sphere_files[name] for name in sorted(sphere_files)[:2]], workers=1)
        assert (summary.ingested, summary.quarantined) == (2, 0)
        assert operator.quarantine() == []
        report = operator.fsck()
        assert report.clean and report.raw_files == 2
        other = init_data_centre(tmp_path / "other")
        try:
            with pytest.raises(ValueError, match="not opened on this data centre"):
                view.operations(other)  # type: ignore[attr-defined]
        finally:
            other.close()


def test_reduce_queues_through_the_operator(tmp_path: Path, database_url: str, sphere_headers) -> None:
    runner = CliRunner(env={"COLUMNS": "240"})
    root = tmp_path / "dc"
    args = ["init", str(root)] + ([] if database_url.startswith("sqlite") else ["--database", database_url])
    _ok(runner.invoke(app, args))
    build_night(sphere_headers, tmp_path / "night")
    at = ["--root", str(root)]
    _ok(runner.invoke(app, ["ingest", str(tmp_path / "night"), "--workers", "1", *at]))
    (dataset,) = json.loads(_ok(runner.invoke(app, ["datasets", "--json", *at])))

    one = json.loads(_ok(runner.invoke(app, ["reduce", str(dataset["id"]), "--json", *at])))
    assert one["batch_id"] is None
    assert [(j["dataset_id"], j["state"]) for j in one["jobs"]] == [(dataset["id"], "queued")]
    batch = runner.invoke(app, ["reduce", "--all", "--batch", "--label", "again", "--json", *at])
    queued = json.loads(_ok(batch))
    assert isinstance(queued["batch_id"], int) and len(queued["jobs"]) == 1
    shown = json.loads(_ok(runner.invoke(app, ["batch", "show", str(queued["batch_id"]), "--json", *at])))
    assert shown["label"] == "again" and [j["id"] for j in shown["jobs"]] == [queued["jobs"][0]["id"]]
    text = runner.invoke(app, ["reduce", dataset["key"], *at])
    assert "queued 1 job(s): " in _ok(text) + text.stderr
    counts = json.loads(_ok(runner.invoke(app, ["jobs", "--json", *at])))["counts"]
    assert counts["queued"] == 3

    missing = runner.invoke(app, ["rerun", "999", *at])
    assert missing.exit_code == 1 and "999" in missing.stderr
    assert json.loads(_ok(runner.invoke(app, ["quarantine", "--json", *at]))) == []
    checked = json.loads(_ok(runner.invoke(app, ["fsck", "--no-checksums", "--json", *at])))
    assert checked["clean"] is True
