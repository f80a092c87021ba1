"""Granules in the catalogue (SQLite and PostgreSQL): filled at ingest from the real OIFITS
files, equal to oitools_granules.csv field by field, listed by ``hcdc granules [--json]``,
with the validation counts of their file; new versions and migrations."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import func, inspect, select
from typer.testing import CliRunner

from hcdc.archive.db import alembic_config, current_revision, head_revision
from hcdc.archive.granules import GRANULE_FIELDS, GranuleRow
from hcdc.archive.ingest import ingest
from hcdc.archive.models import File
from hcdc.cli import app

pytestmark = pytest.mark.shared_data

FLOATS = ("s_ra", "s_dec", "t_exptime", "t_min", "t_max", "em_res_power", "em_min", "em_max")
INTS = ("nb_vis", "nb_vis2", "nb_t3", "nb_channels")
TEXTS = ("target_name", "facility_name", "instrument_name")
# quarantined by hcdc (invalid OIFITS: 3 OI_INSPOL with one EXTVER and an OI_SPECTRUM) although
# oitools reads it; every other granule of the reference must be in the catalogue
QUARANTINED = "invalid/Multi_OIINSPOL_TESTV2.fits"


def _reference(shared_data: Path) -> list[dict[str, str]]:
    with open(shared_data / "oifits" / "oitools_granules.csv", newline="") as handle:
        return [row for row in csv.DictReader(handle) if row["file"] != QUARANTINED]


def _key(target: str, insname: str, t_min: float, name: str) -> tuple:
    return Path(name).name, target, insname, round(t_min, 9)


def test_ingest_fills_granules_like_oitools(catalogue, shared_data: Path, tmp_path: Path) -> None:
    summary = ingest(catalogue, [shared_data / "oifits"], workers=1)
    assert summary.ingested == 36 and summary.quarantined == 3
    runner = CliRunner()
    result = runner.invoke(
        app, ["granules", "--json", "--limit", "1000", "--root", str(catalogue.settings.root)]
    )
    assert result.exit_code == 0, result.stdout
    rows = json.loads(result.stdout)
    reference = _reference(shared_data)
    assert len(rows) == len(reference) == 55
    assert all(tuple(row) == GRANULE_FIELDS for row in rows)
    ours = {_key(r["target_name"], r["instrument_name"], r["t_min"], r["file"]): r for r in rows}
    for ref in reference:
        row = ours[_key(ref["target_name"], ref["instrument_name"], float(ref["t_min"]), ref["file"])]
        for field in TEXTS:
            assert (row[field] or "") == ref[field], (ref["file"], field)
        for field in INTS:
            assert row[field] == int(ref[field]), (ref["file"], field)
        for field in FLOATS:
            # stored as double precision on both backends: the same double as oitools' output
            assert math.isclose(row[field], float(ref[field]), rel_tol=1e-15), (ref["file"], field)
        # no collection registered: no rights, release date or collection (the file's rules apply)
        assert (row["data_rights"], row["obs_release_date"], row["collection"]) == (None, None, None)
        assert row["calib_level"] in (None, 1, 2) and row["superseded"] is False
        assert row["quality_level"] == 0
    gravity = [r for r in rows if Path(r["file"]).name == "GRAVITY_CITau_2022.fits"]
    assert len(gravity) == 2 and all(r["validation"]["SEVERE"] == 2 for r in gravity)
    assert all(r["validation"]["profile"] == "JMMC" for r in rows)

    # filters: OiDB's INSNAME prefix search and a target substring
    pionier = json.loads(
        runner.invoke(
            app, ["granules", "--json", "--instrument", "pionier", "--root", str(catalogue.settings.root)]
        ).stdout
    )
    assert len(pionier) == 9 and all(r["instrument_name"].startswith("PIONIER") for r in pionier)
    table = runner.invoke(app, ["granules", "--target", "alpha_cen", "--root", str(catalogue.settings.root)])
    assert table.exit_code == 0 and "Alpha_Cen_A" in table.stdout and "Granules (1)" in table.stdout

    # hcdc show: the file's validation report (rule names and severities)
    with catalogue.engine.connect() as conn:
        iota = conn.scalar(select(File.id).where(File.path.like("%IOTA_alfBoo%")))
    shown = json.loads(
        runner.invoke(app, ["show", str(iota), "--json", "--root", str(catalogue.settings.root)]).stdout
    )
    check = shown["extra"]["oifits_check"]
    assert check["counts"]["SEVERE"] == 5 and {"rule", "severity", "message"} <= set(check["failures"][0])


def test_new_version_has_its_own_granules(catalogue, shared_data: Path, tmp_path: Path) -> None:
    path = tmp_path / "f.fits"
    shutil.copy(shared_data / "oifits" / "real" / "PIONIER_TPyx_2011.fits", path)
    ingest(catalogue, [path], workers=1)
    shutil.copy(shared_data / "oifits" / "real" / "AMBER_SSLep_2009.fits", path)
    assert ingest(catalogue, [path], workers=1).new_versions == 1
    with catalogue.engine.connect() as conn:
        per_file = dict(
            conn.execute(select(GranuleRow.file_id, func.count()).group_by(GranuleRow.file_id)).all()
        )
        current = conn.scalar(select(File.id).where(File.is_current))
    assert sorted(per_file.values()) == [2, 2] and current in per_file
    runner = CliRunner()
    root = str(catalogue.settings.root)
    now = json.loads(runner.invoke(app, ["granules", "--json", "--root", root]).stdout)
    assert {r["target_name"] for r in now} == {"ss-lep"}
    every = json.loads(runner.invoke(app, ["granules", "--json", "--all-versions", "--root", root]).stdout)
    assert {r["target_name"] for r in every} == {"ss-lep", "T_PYX"}


def test_a_granule_the_database_cannot_store_quarantines_its_file(catalogue, tmp_path: Path) -> None:
    # a granule value outside its column (night_id beyond 32 bits) is refused before any
    # database sees it, the same way on SQLite (which would store it) and PostgreSQL
    from astropy.io import fits

    from hcdc.archive.ingest import column_problem

    row = {"night_id": 2**40, "target_name": "X", "progid": "P" * 65}
    assert "night_id" in column_problem(row, GranuleRow.__table__)
    assert "progid" in column_problem({"progid": "P" * 65}, GranuleRow.__table__)
    # a file with an absurd MJD (1e12) is quarantined whole: no file row, no granule

    target = fits.BinTableHDU.from_columns(
        [
            fits.Column("TARGET_ID", "I", array=[1]),
            fits.Column("TARGET", "8A", array=["X"]),
            fits.Column("RAEP0", "D", array=[1.0]),
            fits.Column("DECEP0", "D", array=[2.0]),
        ],
        name="OI_TARGET",
    )
    wave = fits.BinTableHDU.from_columns(
        [fits.Column("EFF_WAVE", "E", array=[1.6e-6]), fits.Column("EFF_BAND", "E", array=[1e-7])],
        name="OI_WAVELENGTH",
    )
    wave.header["INSNAME"] = "I"
    vis2 = fits.BinTableHDU.from_columns(
        [
            fits.Column("TARGET_ID", "I", array=[1]),
            fits.Column("MJD", "D", array=[1e12]),
            fits.Column("INT_TIME", "D", array=[1.0]),
        ],
        name="OI_VIS2",
    )
    vis2.header["INSNAME"] = "I"
    path = tmp_path / "hostile.fits"
    fits.HDUList([fits.PrimaryHDU(), target, wave, vis2]).writeto(path)
    summary = ingest(catalogue, [path], workers=1)
    assert summary.quarantined == 1 and "hostile.fits" in summary.quarantined_files[0]["reason"]
    with catalogue.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(File)) == 0
        assert conn.scalar(select(func.count()).select_from(GranuleRow)) == 0


def test_migration_0004_downgrades_and_upgrades(catalogue) -> None:
    config = alembic_config()
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0003_accounts")
    assert "granules" not in inspect(catalogue.engine).get_table_names()
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
    assert "granules" in inspect(catalogue.engine).get_table_names()
    assert current_revision(catalogue.engine) == head_revision()  # later migrations come back too
