"""OIFITS validation (oitools' rule names, JMMC profile) on the real files, against the SEVERE
counts of the reference's oitools run (../shared/reference/interferometry.md section 2.4), and
on built files with one known defect each."""

from __future__ import annotations

from pathlib import Path

import pytest
from astropy.io import fits

from hcdc.instruments.oifits_check import INFO, SEVERE, WARNING, check_oifits, jmmc_severity
from hcdc.instruments.registry import read_file


def _report(path: Path) -> dict:
    with fits.open(path) as hdul:
        return check_oifits(hdul)


def _severe(report: dict) -> list[tuple[str, str | None]]:
    return [(f["rule"], f["member"]) for f in report["failures"] if f["severity"] == SEVERE]


@pytest.mark.shared_data
def test_real_files_severe_counts_like_oitools(shared_data):
    real = shared_data / "oifits" / "real"
    for path in sorted(real.iterdir()):
        report = _report(path)
        family = path.name.split("_")[0]
        if path.name in (
            "GRAVITY_CITau_2022.fits",
            "GRAVITY_HD100453_MED.fits",
            "GRAVITY_omiLeo_2022-02-28.fits",
        ):
            # oitools: 2 SEVERE, "Missing column FLUXDATA" (the SC and FT OI_FLUX tables)
            assert _severe(report) == [("GENERIC_COL_MANDATORY", "FLUXDATA")] * 2, path.name
        elif family == "IOTA":
            assert report["counts"][SEVERE] == 5, path.name  # oitools: 5 (no OI_ARRAY)
            assert ("ARRNAME_REF", "ARRNAME") in _severe(report)
        elif path.name == "PIONIER_TPyx_2011.fits":
            # row 1 of its OI_ARRAY has an empty STA_NAME (read in the table itself)
            assert _severe(report) == [("OI_ARRAY_STA_NAME", "STA_NAME")]
        elif family in ("PIONIER", "MATISSE", "AMBER", "MIDI", "GRAVITY"):
            assert report["counts"][SEVERE] == 0, (path.name, _severe(report))
        assert report["profile"] == "JMMC"
        assert sum(report["counts"].values()) == len(report["failures"])


@pytest.mark.shared_data
def test_jmmc_profile_downgrades_what_oitools_downgrades(shared_data):
    gravity = _report(shared_data / "oifits" / "real" / "GRAVITY_CITau_2022.fits")
    warned = {(f["rule"], f["member"]) for f in gravity["failures"] if f["severity"] == WARNING}
    assert ("GENERIC_COL_MANDATORY", "FOV") in warned and ("GENERIC_COL_MANDATORY", "FOVTYPE") in warned
    matisse = _report(shared_data / "oifits" / "real" / "MATISSE_75Vir_LM_2019-05-23.fits")
    assert ("GENERIC_KEYWORD_MANDATORY", "INSMODE") in {
        (f["rule"], f["member"]) for f in matisse["failures"] if f["severity"] == WARNING
    }
    pionier = _report(shared_data / "oifits" / "real" / "PIONIER_alfCenA_2016-05-31.fits")
    assert [f["rule"] for f in pionier["failures"] if f["severity"] == WARNING] == ["OI_ARRAY_XYZ"]


@pytest.mark.shared_data
def test_report_is_stored_with_the_metadata_and_severe_does_not_block(shared_data):
    meta, _ = read_file(shared_data / "oifits" / "real" / "IOTA_alfBoo_1.52um_2006.fits")
    assert meta.instrument == "OIFITS"
    assert meta.extra["oifits_check"]["counts"][SEVERE] == 5


def test_profile_matching_most_specific_wins():
    assert jmmc_severity("GENERIC_COL_UNIT", "OI_VIS2", "VIS2DATA", 1) == INFO
    assert jmmc_severity("GENERIC_COL_UNIT", "OI_VIS", "VISAMP", 2) == SEVERE
    assert jmmc_severity("GENERIC_COL_MANDATORY", "OI_ARRAY", "FOVTYPE", 2) == WARNING
    assert jmmc_severity("GENERIC_COL_MANDATORY", "OI_FLUX", "FLUXDATA", 2) == SEVERE
    assert jmmc_severity("GENERIC_KEYWORD_VAL_ACCEPTED_INT", "OI_VIS2", "OI_REVN", 1) == INFO
    assert jmmc_severity("GENERIC_KEYWORD_VAL_ACCEPTED_INT", "OI_VIS2", "OI_REVN", 2) == WARNING
    assert jmmc_severity("ARRNAME_REF", "OI_CORR", None, 2) == INFO  # everything in OI_CORR
    assert jmmc_severity("ARRNAME_REF", "OI_VIS", "ARRNAME", 2) == SEVERE  # the default


def _built(tmp_path: Path, *, target_ids=(1, 2), names=("A", "B"), eff_wave=1.6e-6, mjd=59000.3) -> Path:
    target = fits.BinTableHDU.from_columns(
        [
            fits.Column("TARGET_ID", "I", array=list(target_ids)),
            fits.Column("TARGET", "16A", array=list(names)),
            fits.Column("RAEP0", "D", array=[10.0] * len(names), unit="deg"),
            fits.Column("DECEP0", "D", array=[0.0] + [5.0] * (len(names) - 1), unit="deg"),
        ],
        name="OI_TARGET",
    )
    target.header["OI_REVN"] = 1
    wave = fits.BinTableHDU.from_columns(
        [
            fits.Column("EFF_WAVE", "E", array=[eff_wave], unit="m"),
            fits.Column("EFF_BAND", "E", array=[1e-7]),
        ],
        name="OI_WAVELENGTH",
    )
    wave.header.update({"OI_REVN": 1, "INSNAME": "INS"})
    vis2 = fits.BinTableHDU.from_columns(
        [
            fits.Column("TARGET_ID", "I", array=[1]),
            fits.Column("MJD", "D", array=[mjd], unit="day"),
            fits.Column("VIS2DATA", "D", array=[0.5]),
        ],
        name="OI_VIS2",
    )
    vis2.header.update({"OI_REVN": 1, "INSNAME": "OTHER", "ARRNAME": "NOWHERE", "DATE-OBS": "2020-05-31"})
    path = tmp_path / "built.fits"
    fits.HDUList([fits.PrimaryHDU(), target, wave, vis2]).writeto(path)
    return path


def test_known_defects_are_reported(tmp_path):
    report = _report(_built(tmp_path, target_ids=(1, 1), names=("A", "A"), eff_wave=30e-6, mjd=0.0))
    found = {(f["rule"], f["severity"]) for f in report["failures"]}
    assert ("OI_TARGET_TARGET_UNIQ", SEVERE) in found
    assert ("OI_TARGET_TARGETID_UNIQ", SEVERE) in found
    assert ("OI_TARGET_COORD", WARNING) in found  # DECEP0 = 0.0
    assert ("OI_WAVELENGTH_EFF_WAVE", SEVERE) in found  # 30 µm
    assert ("INSNAME_REF", SEVERE) in found and ("ARRNAME_REF", SEVERE) in found
    assert ("GENERIC_MJD_RANGE", WARNING) in found
    missing = {f["member"] for f in report["failures"] if f["rule"] == "GENERIC_COL_MANDATORY"}
    assert {"VIS2ERR", "UCOORD", "FLAG", "INT_TIME"} <= missing
    (tmp_path / "ok").mkdir()
    clean = _report(_built(tmp_path / "ok"))
    rules = {f["rule"] for f in clean["failures"]}
    assert not rules & {"OI_TARGET_TARGET_UNIQ", "OI_WAVELENGTH_EFF_WAVE", "GENERIC_MJD_RANGE"}
    assert "OI_TARGET_TARGETID_UNIQ" not in rules
