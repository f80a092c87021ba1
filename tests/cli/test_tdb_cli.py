"""``hcdc target``, ``hcdc tdb`` and ``hcdc hcifits`` on a real data centre (SQLite and PostgreSQL):
the ALICE HCI-FITS file imported, SIMBAD replayed locally, JSON export/import, --help and --json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hcdc.archive.db import init_data_centre
from hcdc.cli import app

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from archive.simbad_replay import SimbadReplay, data_section  # noqa: E402

runner = CliRunner()
ALICE = "level3/hcifits/hlsp_alice_hst_nicmos_10849-1rxs-j161410.6-230542_f110w_v1_multi-roll.fits"


@pytest.fixture
def root(tmp_path: Path, database_url: str) -> Path:
    init_data_centre(tmp_path / "dc", database_url=database_url).close()
    return tmp_path / "dc"


def _run(root: Path, *args: str):
    result = runner.invoke(app, [*args, "--root", str(root)] if args[-1] != "--help" else list(args))
    return result


@pytest.mark.parametrize("group", ["target", "tdb", "hcifits"])
def test_help(group: str) -> None:
    result = runner.invoke(app, [group, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_hcifits_import_detections_and_json_exchange(root: Path, shared_data: Path, tmp_path: Path) -> None:
    result = _run(root, "hcifits", "import", str(shared_data / ALICE), "--survey", "alice", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["detections"] == 2
    result = _run(root, "tdb", "detections", "--min-snr", "100", "--json")
    rows = json.loads(result.output)
    assert len(rows) == 1 and rows[0]["separation_mas"] == pytest.approx(2688.0, abs=0.1)
    assert rows[0]["survey"] == "alice"
    result = _run(root, "target", "show", "2MASS J16141107-2305362", "--json")
    assert json.loads(result.output)["pmdec_masyr"] == -22.9
    out = tmp_path / "tdb.json"
    assert _run(root, "tdb", "export", str(out)).exit_code == 0
    assert json.loads(out.read_text())["targets"][0]["name"] == "1RXS-J161410.6-230542"
    again = _run(root, "tdb", "import", str(out), "--json")
    assert again.exit_code == 0 and json.loads(again.output)["detections"] == 2
    assert len(json.loads(_run(root, "tdb", "detections", "--json").output)) == 2  # same uids: no copies
    schema = runner.invoke(app, ["tdb", "json-schema"])
    assert json.loads(schema.output)["properties"]["format"] == {"const": "hcdc-tdb"}


def test_hcifits_check_exit_status(shared_data: Path) -> None:
    result = runner.invoke(app, ["hcifits", "check", str(shared_data / ALICE), "--json"])
    assert result.exit_code == 1
    assert "SNR_MAP" not in json.dumps(json.loads(result.output)["problems"])  # shapes agree


def test_target_resolve_with_simbad_and_offline(root: Path, shared_data: Path) -> None:
    answers = {
        ("object", "M 1"): data_section(shared_data / "level3/simbad/astroquery_legacy_script/m1.data")
    }
    with SimbadReplay(answers) as simbad:
        result = _run(root, "target", "resolve", "m1", "--simbad-url", simbad.url, "--json")
    assert result.exit_code == 0, result.output
    target = json.loads(result.output)
    assert target["name"] == "M 1" and target["ra_deg"] == pytest.approx(83.633083, abs=1e-6)
    offline = _run(root, "target", "resolve", "M 1", "--offline", "--json")
    assert json.loads(offline.output)["id"] == target["id"]
    unknown = _run(root, "target", "resolve", "HIP 65426", "--offline")
    assert unknown.exit_code == 1 and "unknown" in unknown.output
    added = _run(root, "target", "dictionary", "add", "HIP 65426", "--value", "parallax_mas=9.3")
    assert added.exit_code == 0, added.output
    made = json.loads(_run(root, "target", "resolve", "hip65426", "--offline", "--json").output)
    assert made["parallax_mas"] == 9.3 and made["resolved"] == "dictionary"
    listed = json.loads(_run(root, "target", "list", "--json").output)
    assert {t["name"] for t in listed} == {"M 1", "HIP 65426"}
