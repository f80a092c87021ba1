"""Survey tracking (SQLite and PostgreSQL): a target list imported with ``hcdc survey import``,
each target's stage computed from the catalogue (real OIFITS files ingested, validated,
published), ``hcdc survey status``, and visibility to the survey's group only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hcdc.archive import accounts
from hcdc.archive.access import local_operator
from hcdc.archive.ingest import ingest
from hcdc.archive.interferometry import CollectionSpec, add_collection
from hcdc.cli import app

pytestmark = pytest.mark.shared_data

TARGETS = Path(__file__).parents[1] / "data" / "survey" / "issp_targets.csv"
runner = CliRunner()


def _run(catalogue, *args: str):
    return runner.invoke(app, [*args, "--root", str(catalogue.settings.root)])


def _ok(catalogue, *args: str) -> str:
    result = _run(catalogue, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def survey(catalogue, shared_data: Path, tmp_path: Path):
    admin = local_operator()
    with catalogue.engine.begin() as conn:
        for name in ("member", "other"):
            accounts.add_user(conn, admin, name)
        accounts.add_group(conn, admin, "issp")
        accounts.set_group_members(conn, admin, "issp", add=["member"])
        # PIONIER files are OIFITS 1 (no CALSTAT): the collection says they are calibrated (L2)
        add_collection(
            conn, admin, CollectionSpec("pionier-l2", "public", calib_level=2, instrument="PIONIER_Pnat(1.5")
        )
    _ok(catalogue, "survey", "import", "ISSP", str(TARGETS), "--group", "issp")
    return catalogue


def _status(catalogue, *extra: str) -> dict:
    status = json.loads(_ok(catalogue, "survey", "status", "ISSP", "--json", *extra))
    status["by_name"] = {i["name"]: i for i in status["items"]}
    return status


def _ingest(catalogue, shared_data: Path, tmp_path: Path, name: str) -> Path:
    source = tmp_path / "in" / name
    source.parent.mkdir(exist_ok=True)
    shutil.copy(shared_data / "oifits" / "real" / name, source)
    ingest(catalogue, [source], workers=1)
    return source


def test_stages_follow_the_catalogue(survey, shared_data: Path, tmp_path: Path) -> None:
    status = _status(survey)
    assert status["targets"] == 4 and status["counts"]["planned"] == 4
    assert sorted(status["late"]) == ["Alpha_Cen_A", "alf Eri", "bet Ari"]  # due 2020-01-01

    alf_cen = _ingest(survey, shared_data, tmp_path, "PIONIER_alfCenA_2016-05-31.fits")
    alf_eri = _ingest(survey, shared_data, tmp_path, "PIONIER_alfEri_2014-09-21.fits")
    _ingest(survey, shared_data, tmp_path, "PIONIER_AXCir_merged.oifits")  # 1.6135 µm: not in the collection
    status = _status(survey)
    stages = {n: i["stage"] for n, i in status["by_name"].items()}
    assert stages == {
        "Alpha_Cen_A": "calibrated",
        "alf Eri": "calibrated",
        "AX Cir": "observed",
        "bet Ari": "planned",
    }
    history = [h["stage"] for h in status["by_name"]["Alpha_Cen_A"]["history"]]
    assert history == ["planned", "observed", "reduced", "calibrated"]
    observed = status["by_name"]["Alpha_Cen_A"]["history"][1]
    assert observed["at"].startswith("2016-05-31 00:5")  # the night's first MJD

    _ok(survey, "oi", "validate", str(alf_cen), "--quality", "2", "--comment", "poor")
    assert _status(survey)["by_name"]["Alpha_Cen_A"]["stage"] == "calibrated"  # quality < 3
    _ok(survey, "oi", "validate", str(alf_cen), "--quality", "4", "--comment", "science ready")
    _ok(survey, "oi", "publish", str(alf_eri), "--bibcode", "2026A&A...999A...1X")
    status = _status(survey)
    assert status["by_name"]["Alpha_Cen_A"]["stage"] == "validated"
    assert status["by_name"]["alf Eri"]["stage"] == "published"
    assert status["late"] == ["bet Ari"]
    assert status["counts"] == {
        "planned": 1, "observed": 1, "reduced": 0, "calibrated": 0, "validated": 1, "published": 1
    }  # fmt: skip
    assert status["reached"]["observed"] == 3
    # before the due date nothing is late
    assert _status(survey, "--now", "2019-12-31")["late"] == []
    table = _ok(survey, "survey", "status", "ISSP")
    assert "LATE" in table and "bet Ari" in table


def test_only_the_group_follows_the_survey(survey) -> None:
    assert json.loads(_ok(survey, "survey", "status", "ISSP", "--json", "--as", "member"))["targets"] == 4
    refused = _run(survey, "survey", "status", "ISSP", "--as", "other")
    assert refused.exit_code != 0 and "no survey 'ISSP' visible to other" in refused.output
    assert json.loads(_ok(survey, "survey", "list", "--json", "--as", "other")) == []
    assert [s["name"] for s in json.loads(_ok(survey, "survey", "list", "--json", "--as", "member"))] == [
        "ISSP"
    ]
    # only staff import
    denied = _run(survey, "survey", "import", "ISSP", str(TARGETS), "--as", "member")
    assert denied.exit_code != 0 and "only admins and operators" in denied.output


def test_reimport_updates_and_bad_input(survey, tmp_path: Path) -> None:
    out = json.loads(_ok(survey, "survey", "import", "ISSP", str(TARGETS), "--json"))
    assert out == {"survey": "ISSP", "added": 0, "updated": 4}
    bad = tmp_path / "t.csv"
    bad.write_text("name,due\nX,not-a-date\n")
    result = _run(survey, "survey", "import", "ISSP", str(bad))
    assert result.exit_code != 0 and "t.csv row 1" in result.output
    result = _run(survey, "survey", "import", "NEW", str(TARGETS))
    assert result.exit_code != 0 and "--group" in result.output


def test_migration_0009_downgrades_and_upgrades(catalogue) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from hcdc.archive.db import alembic_config, current_revision, head_revision

    tables = {"surveys", "survey_targets", "oi_calibrators", "oi_bad_calibrators"}
    config = alembic_config()
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0007_interferometry")
    assert not tables & set(inspect(catalogue.engine).get_table_names())
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert tables <= set(inspect(catalogue.engine).get_table_names())
    assert current_revision(catalogue.engine) == head_revision()
