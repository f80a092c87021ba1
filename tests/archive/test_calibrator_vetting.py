"""Calibrator vetting (SQLite and PostgreSQL): a JSDC v2-column catalogue and a bad-calibrator
list built from real stars' published values (tests/data/calibrators/README.md), vetting of
the real OIFITS files of ../shared/data/oifits through ``hcdc oi calibrators import`` and
``hcdc oi vet``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from astropy.table import Table
from typer.testing import CliRunner

from hcdc.archive.ingest import ingest
from hcdc.archive.interferometry import resolve_file
from hcdc.archive.interferometry_calibrators import (
    CalibratorError,
    calibrators_of,
    import_catalogue,
    list_calibrators,
    name_key,
)
from hcdc.cli import app

TABLES = Path(__file__).parents[1] / "data" / "calibrators"
runner = CliRunner()


def _cli(catalogue, *args: str) -> str:
    result = runner.invoke(app, [*args, "--root", str(catalogue.settings.root)])
    assert result.exit_code == 0, result.output
    return result.stdout


def _vet(catalogue, path: Path, *extra: str) -> dict:
    return json.loads(_cli(catalogue, "oi", "vet", str(path), "--json", *extra))


@pytest.fixture
def vetting(catalogue):
    _cli(catalogue, "oi", "calibrators", "import", str(TABLES / "jsdc_subset.csv"))
    _cli(catalogue, "oi", "calibrators", "import", str(TABLES / "badcal_subset.csv"), "--bad-list")
    return catalogue


def _entry(report: dict, name: str) -> dict:
    return next(c for c in report["calibrators"] if c["name"] == name)


def test_header_calibrators_and_bad_list(vetting, shared_data: Path) -> None:
    real = shared_data / "oifits" / "real"
    fs_cma = _vet(vetting, real / "MATISSE_FSCMa_LM_2018-12-07.fits")
    # the pipeline names eps Lep twice (two calibrator observations): one entry
    assert [c["name"] for c in fs_cma["calibrators"]] == ["* eps Lep"]
    assert "bad_list" in _entry(fs_cma, "* eps Lep")["flags"] and fs_cma["verdict"] == "reject"
    v892 = _vet(vetting, real / "MATISSE_V892Tau_LM_2018-09-25.fits")
    assert _entry(v892, "HD  33162")["flags"] == ["not_in_catalogue"] and v892["verdict"] == "suspect"
    # a science file with no calibrator information
    assert _vet(vetting, real / "PIONIER_alfCenA_2016-05-31.fits")["calibrators"] == []


def test_calibrator_files_residual_test(vetting, shared_data: Path) -> None:
    real = shared_data / "oifits" / "real"
    bet_cnc = _entry(_vet(vetting, real / "MATISSE_betCnc_L_OiXP_2024-03-11.fits"), "bet Cnc")
    assert bet_cnc["flags"] == [] and bet_cnc["verdict"] == "ok"
    assert bet_cnc["catalogue"]["match"] == "name"
    residuals = bet_cnc["residuals"]
    assert residuals["catalogue_ud_mas"] == pytest.approx(4.86911201477051)
    assert residuals["fitted_ud_mas"] == pytest.approx(4.938, abs=0.002)
    assert residuals["cp_chi2_r"] < 20 and not residuals["binary_suspected"]
    # 75 Vir: matched by position ("75Vir" in OI_TARGET); its own data disagree with a UD of
    # its JSDC diameter and its closure phases are far from 0/180
    vir = _entry(_vet(vetting, real / "MATISSE_75Vir_LM_2019-05-23.fits"), "75Vir")
    assert vir["catalogue"]["match"].startswith("position")
    assert {"binary_residuals", "diameter_inconsistent"} <= set(vir["flags"]) and vir["verdict"] == "reject"


def test_binary_and_be_star_as_calibrators(vetting, shared_data: Path) -> None:
    real = shared_data / "oifits" / "real"
    omi_leo = _entry(_vet(vetting, real / "GRAVITY_omiLeo_2022-02-28.fits", "--as-calibrator"), "omi_Leo")
    assert {"binary_calflag", "binary_residuals"} <= set(omi_leo["flags"])
    assert omi_leo["residuals"]["cp_chi2_r"] > 500
    alf_col = _entry(_vet(vetting, real / "AMBER_alfCol_2010-01-09.fits", "--as-calibrator"), "ALPCOL")
    # a Be star: JSDC's CalFlag would not say so, SIMBAD's object type does; its closure
    # phases alone look like a single star's
    assert alf_col["flags"] == ["be_star"] and alf_col["verdict"] == "reject"
    assert not alf_col["residuals"]["binary_suspected"]
    # without --as-calibrator a science file's target is not vetted
    assert _vet(vetting, real / "AMBER_alfCol_2010-01-09.fits")["calibrators"] == []


def test_vet_a_catalogued_file_and_its_calibrator_validation(
    vetting, shared_data: Path, tmp_path: Path
) -> None:
    """A file validated as a calibrator (HIERARCH PRO SCIENCE = F in its new version) is
    vetted on its own targets; the catalogued id is accepted."""
    source = tmp_path / "in" / "AMBER_delSco_2010-04-15.fits"
    source.parent.mkdir()
    shutil.copy(shared_data / "oifits" / "real" / source.name, source)
    ingest(vetting, [source], workers=1)
    assert _vet(vetting, source)["calibrators"] == []
    _cli(vetting, "oi", "validate", str(source), "--quality", "4", "--comment", "cal", "--calibrator")
    with vetting.engine.connect() as conn:
        current = resolve_file(conn, str(source))  # the validated version
    for ref in (str(source), f"f{current}"):
        report = _vet(vetting, ref)
        assert report["file"] != str(source)  # the stored validated copy, not the source
        assert _entry(report, "DelSco")["flags"] == ["be_star"] and report["verdict"] == "reject"


def test_votable_import_and_bad_input(catalogue, tmp_path: Path) -> None:
    table = Table.read(TABLES / "jsdc_subset.csv", format="ascii.csv", comment="#")
    votable = tmp_path / "jsdc.vot"
    table.write(votable, format="votable")
    with catalogue.engine.begin() as conn:
        assert import_catalogue(conn, votable) == 7
        rows = {r["name"]: r for r in list_calibrators(conn)}
    assert rows["75 Vir"]["ra"] == pytest.approx(203.214249, abs=1e-5)  # 13 32 51.4198 h
    assert rows["omi Leo"]["calflag"] == 2 and rows["del Sco"]["objtypes_simbad"] == "Be*"
    bad = tmp_path / "bad.csv"
    bad.write_text("Name,RAJ2000,DEJ2000\nx,1,2\n")
    with (
        catalogue.engine.begin() as conn,
        pytest.raises(CalibratorError, match=r"bad.csv: missing column\(s\) LDD"),
    ):
        import_catalogue(conn, bad)
    bad.write_text("Name,RAJ2000,DEJ2000,LDD\nx,12 xx,2,1.0\n")
    result = runner.invoke(
        app, ["oi", "calibrators", "import", str(bad), "--root", str(catalogue.settings.root)]
    )
    assert result.exit_code != 0 and "bad.csv row 1 RAJ2000" in result.output


def test_names_and_calibrator_sources(shared_data: Path) -> None:
    assert name_key("* 106 Vir") == name_key("106_vir") == "106 vir"
    assert name_key("HD  33162") == "hd 33162"
    used = calibrators_of(shared_data / "oifits" / "real" / "MATISSE_delVir_LM_2018-05-20.fits")
    assert [(u.name, u.own_data) for u in used] == [("* psi Vir", False), ("del Vir", True)]
