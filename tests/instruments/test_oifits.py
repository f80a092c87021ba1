"""OIFITS recognition and cataloguing on the 36 readable files of ../shared/data/oifits, checked
against the README's table, and rejection of the 3 invalid ones with a reason."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from hcdc.instruments.base import MetadataError, UnreadableFileError
from hcdc.instruments.registry import read_file

pytestmark = pytest.mark.shared_data

FOLDERS = ("real", "simulated", "synthetic")


def readme_rows(shared_data: Path) -> dict[str, dict[str, str]]:
    """The README's table rows (file -> column -> text) for real/, simulated/, synthetic/."""
    text = (shared_data / "oifits" / "README.md").read_text()
    columns = [
        "file",
        "source",
        "facility",
        "insnames",
        "targets",
        "date",
        "version",
        "tables",
        "wave",
        "size",
        "note",
    ]
    rows = {}
    for line in text.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        row = dict(zip(columns, cells, strict=False))
        rows[row["file"].strip("`")] = row
    return rows


def oifits_files(shared_data: Path) -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (shared_data / "oifits" / folder).iterdir())


def test_every_file_is_in_the_readme(shared_data):
    rows = readme_rows(shared_data)
    files = oifits_files(shared_data)
    assert len(files) == 36
    assert all(p.name in rows for p in files)


def _readme_wave(text: str) -> tuple[float, float]:
    low, high = re.split("[–-]", text)
    return float(low), float(high)


def _readme_start(text: str) -> str:
    return text.split("…")[0].strip()


@pytest.mark.parametrize("folder", FOLDERS)
def test_recognised_and_catalogued_like_the_readme(shared_data, folder):
    rows = readme_rows(shared_data)
    for path in sorted((shared_data / "oifits" / folder).iterdir()):
        row = rows[path.name]
        meta, header = read_file(path)
        assert meta.instrument == "OIFITS" and meta.file_class == "OIFITS", path.name
        # targets: the README lists the OI_TARGET names (', ' separated)
        assert meta.extra["targets"] == [t.strip() for t in row["targets"].split(", ")], path.name
        # INSNAMEs: the README truncates long names; each must start one of ours
        for insname in row["insnames"].split("; "):
            assert any(ours.startswith(insname) for ours in meta.extra["insnames"]), (path.name, insname)
        # version
        assert f"v{meta.extra['oifits_version']}" == row["version"], path.name
        # wavelength range in µm, README rounded to 4 decimals
        low, high = _readme_wave(row["wave"])
        assert meta.wavelength_min == pytest.approx(low, abs=6e-5), path.name
        assert meta.wavelength_max == pytest.approx(high, abs=6e-5), path.name
        # MJD range start: README gives the UTC date-time from the earliest MJD (to the minute)
        start = _readme_start(row["date"])
        if start.startswith("MJD"):
            lo, hi = (float(x) for x in re.findall(r"[\d.]+", start))
            assert (meta.mjd_obs, meta.mjd_end) == pytest.approx((lo, hi), abs=1e-4)
            continue
        fmt = "%Y-%m-%d %H:%M" if ":" in start else "%Y-%m-%d"
        expected = dt.datetime.strptime(start, fmt)
        # the README truncates to the minute (or the day); allow 1 ms of float rounding
        span = dt.timedelta(minutes=1) if ":" in start else dt.timedelta(days=1)
        slack = dt.timedelta(milliseconds=1)
        assert expected - slack <= meta.date_obs < expected + span + slack, (path.name, meta.date_obs)
        assert meta.mjd_end >= meta.mjd_obs
        assert meta.night == (meta.date_obs - dt.timedelta(hours=12)).date()


@pytest.mark.parametrize(
    ("name", "arm", "target", "mjd_obs", "wave"),
    [
        # spot checks: values computed by hand from the tables
        ("real/PIONIER_alfEri_2014-09-21.fits", "PIONIER", "ALP_ERI", 56921.3869, (1.57345, 1.74119)),
        ("real/GRAVITY_CITau_2022.fits", "GRAVITY", "CITau", 59633.0294, (1.97, 2.4)),
        ("simulated/ASPRO2_CHARA_SPICA_zetOph.fits", "SPICA", "Zeta Oph", 60076.3412, (0.6025, 0.8975)),
        ("simulated/template_chara-mircx.fits", "MIRCX", "T Tau", 59185.3214, (1.0907, 1.729)),
        ("real/MIDI_NGC5128_2005.oifits", "MIDI", "NGC5128", None, (5.2254, 13.7672)),
    ],
)
def test_spot_values(shared_data, name, arm, target, mjd_obs, wave):
    meta, _ = read_file(shared_data / "oifits" / name)
    assert meta.arm == arm
    assert meta.target == target
    if mjd_obs is not None:
        assert meta.mjd_end == pytest.approx(mjd_obs, abs=1e-4)
    assert (meta.wavelength_min, meta.wavelength_max) == pytest.approx(wave, abs=6e-5)
    assert meta.ra is not None and meta.dec is not None


def test_multi_target_file(shared_data):
    meta, _ = read_file(shared_data / "oifits" / "synthetic" / "oitools_bigtest2.fits")
    assert meta.extra["targets"] == ["alp_ori", "alp_tau", "irc_+10216"]
    assert meta.target == "alp_ori; alp_tau; irc_+10216"
    assert meta.ra is None  # several targets: no single position
    assert set(meta.extra["insnames"]) == {"CHARA_MIRC", "IOTA_IONIC_PICNIC"}


def test_gzipped_oifits(shared_data):
    meta, _ = read_file(shared_data / "oifits" / "simulated" / "contest_Mystery-Low_HK.oifits.gz")
    assert (meta.target, meta.arm) == ("Mystery", "AMBER")


def test_v1_file_with_v2_tables_is_rejected(shared_data):
    with pytest.raises(MetadataError) as err:
        read_file(shared_data / "oifits" / "invalid" / "V1_with_V2_Tables.fits")
    message = str(err.value)
    assert "OIFITS v1" in message and "OI_CORR, OI_INSPOL" in message
    assert "OI_TARGET is missing" in message


def test_multiple_inspol_and_nonstandard_table_rejected(shared_data):
    with pytest.raises(MetadataError) as err:
        read_file(shared_data / "oifits" / "invalid" / "Multi_OIINSPOL_TESTV2.fits")
    message = str(err.value)
    assert "3 OI_INSPOL tables share EXTVER=1" in message
    assert "OI_SPECTRUM" in message


def test_truncated_oifits_is_unreadable(shared_data):
    with pytest.raises(
        UnreadableFileError, match="truncated FITS file: the primary header stops after 1234 bytes"
    ):
        read_file(shared_data / "oifits" / "invalid" / "testdata_opt_TRUNC.fits")
