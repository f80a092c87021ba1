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


def _hd4747_exchange(shared_data: Path) -> dict:
    """HD 4747 B as the shared data give it: its three imaging epochs (orbitize_HD4747.csv), the
    host's Gaia DR3 parallax (species' companion_data.json) and position (the UltracoolSheet's row
    of the companion, 0.6" from its star) -- and no proper motion anywhere in those files."""
    import csv

    from hcdc.archive.tdb import MJD_TO_JD
    from hcdc.science.level3.orbitize_format import read_orbitize

    level3 = shared_data / "level3"
    (b,) = read_orbitize(level3 / "bound" / "orbitize_HD4747.csv")
    species = json.loads((level3 / "cmd" / "species_companion_data.json").read_text())["HD 4747 B"]
    (ucs,) = [
        r
        for r in csv.DictReader((level3 / "cmd" / "ucs_cold_objects_absmag.csv").open())
        if r["name"] == "HD 4747 B"
    ]
    observations = [
        {
            "uid": f"crepp:{n}",
            "date_jd": float(b.mjd[n]) + MJD_TO_JD,
            "reductions": [
                {
                    "uid": f"crepp:{n}:r",
                    "validated": True,
                    "detections": [
                        {"uid": f"crepp:{n}:d", "dra_mas": float(b.ra[n]), "ddec_mas": float(b.dec[n]),
                         "dra_err_mas": float(b.ra_err[n]), "ddec_err_mas": float(b.dec_err[n])}
                    ],
                }
            ],
        }
        for n in range(len(b))
    ]  # fmt: skip
    target = {
        "name": "HD 4747",
        "ra_deg": float(ucs["ra_deg"]),
        "dec_deg": float(ucs["dec_deg"]),
        "parallax_mas": species["parallax"][0],
        "parallax_err_mas": species["parallax"][1],
        "observations": observations,
    }
    return {"format": "hcdc-tdb", "version": 1, "targets": [target]}


def test_hd4747_without_host_proper_motion_is_reported_not_silently_undetermined(
    root: Path, shared_data: Path, tmp_path: Path
) -> None:
    exchange = tmp_path / "hd4747.json"
    exchange.write_text(json.dumps(_hd4747_exchange(shared_data)))
    assert _run(root, "tdb", "import", str(exchange)).exit_code == 0
    result = _run(root, "tdb", "group", "HD 4747")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "not tested: the host's pmra_masyr, pmdec_masyr unknown" in text
    assert "warning: 1 candidate(s) not tested" in text
    data = json.loads(_run(root, "tdb", "group", "HD 4747", "--json").output)
    assert data["missing_host_values"] == ["pmra_masyr", "pmdec_masyr"] and data["untested"] == 1
    (candidate,) = data["candidate_list"]
    assert candidate["status"] == "undetermined" and "pmra_masyr" in candidate["reason"]
