"""OiDB granules of the OIFITS files in ../shared/data/oifits against oitools_granules.csv
(what JMMC oitools' OIFitsViewer extracts from the same files), field by field; and
recognition of every real OIFITS file, including with an empty NAXIS=1 / NAXIS1=0 primary."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.oifits_granules import granules_of, night_id, read_granules
from hcdc.instruments.registry import read_file, read_metadata

pytestmark = pytest.mark.shared_data

FLOAT_FIELDS = ("s_ra", "s_dec", "t_exptime", "t_min", "t_max", "em_res_power", "em_min", "em_max")
INT_FIELDS = ("nb_vis", "nb_vis2", "nb_t3", "nb_channels")
TEXT_FIELDS = ("target_name", "facility_name", "instrument_name")


def reference(shared_data: Path) -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    with open(shared_data / "oifits" / "oitools_granules.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            rows.setdefault(row["file"], []).append(row)
    return rows


def test_reference_covers_every_readable_file(shared_data):
    ref = reference(shared_data)
    assert sum(len(v) for v in ref.values()) == 56
    for folder in ("real", "simulated", "synthetic"):
        for path in (shared_data / "oifits" / folder).iterdir():
            assert f"{folder}/{path.name}" in ref, path.name


def _granule_key(target: str, insname: str, t_min: float) -> tuple[str, str, float]:
    return target, insname, round(t_min, 9)


def test_every_granule_equals_oitools_field_by_field(shared_data):
    checked = 0
    for name, rows in reference(shared_data).items():
        ours = read_granules(shared_data / "oifits" / name)
        assert len(ours) == len(rows), name
        by_key = {_granule_key(g.target_name, g.instrument_name, g.t_min): g for g in ours}
        assert len(by_key) == len(ours), name
        for row in rows:
            granule = by_key[_granule_key(row["target_name"], row["instrument_name"], float(row["t_min"]))]
            for field in TEXT_FIELDS:
                # oitools writes an absent ARRNAME as an empty string, hcdc as None (NULL)
                assert (getattr(granule, field) or "") == row[field], (name, field)
            for field in INT_FIELDS:
                assert getattr(granule, field) == int(row[field]), (name, field)
            for field in FLOAT_FIELDS:
                value = getattr(granule, field)
                # the CSV holds Java's shortest round-trip decimal of the same double: 1 ulp
                assert value is not None and math.isclose(value, float(row[field]), rel_tol=1e-15), (
                    name,
                    field,
                    value,
                    row[field],
                )
            checked += 1
    assert checked == 56


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # several granules per file: nights, INSNAMEs, targets
        ("real/MIDI_NGC5128_2005.oifits", 2),
        ("real/PIONIER_TPyx_2011.fits", 2),
        ("real/AMBER_SSLep_2009.fits", 2),
        ("synthetic/oitools_bigtest2.fits", 5),
        ("simulated/contest_Mystery-Low_HK.oifits.gz", 9),
    ],
)
def test_multi_granule_files(shared_data, name, expected):
    granules = read_granules(shared_data / "oifits" / name)
    assert len(granules) == expected
    assert len({(g.target_name, g.instrument_name, g.night_id) for g in granules}) == expected


def test_night_split_at_noon_utc():
    # round(MJD): 12:00 UTC is the boundary (MJD .5 goes to the next night, like Java Math.round)
    assert night_id(np.array([59000.49, 59000.5, 59000.99, 59001.2])).tolist() == [59000, 59001, 59001, 59001]


def _granule_file(tmp_path: Path, mjds: list[float], int_times: list[float]) -> Path:
    """A minimal OIFITS v1 file with one target, one INSNAME and VIS2 rows at ``mjds``."""
    n = len(mjds)
    primary = fits.PrimaryHDU()
    target = fits.BinTableHDU.from_columns(
        [
            fits.Column("TARGET_ID", "I", array=[1]),
            fits.Column("TARGET", "16A", array=["HD 1"]),
            fits.Column("RAEP0", "D", array=[10.5]),
            fits.Column("DECEP0", "D", array=[-20.25]),
        ],
        name="OI_TARGET",
    )
    wave = fits.BinTableHDU.from_columns(
        [
            fits.Column("EFF_WAVE", "E", array=[1.6e-6, 1.7e-6]),
            fits.Column("EFF_BAND", "E", array=[0.1e-6, 0.0]),
        ],
        name="OI_WAVELENGTH",
    )
    wave.header["INSNAME"] = "INS"
    vis2 = fits.BinTableHDU.from_columns(
        [
            fits.Column("TARGET_ID", "I", array=[1] * n),
            fits.Column("MJD", "D", array=mjds),
            fits.Column("INT_TIME", "D", array=int_times),
            fits.Column("VIS2DATA", "2D", array=np.ones((n, 2))),
        ],
        name="OI_VIS2",
    )
    vis2.header["INSNAME"] = "INS"
    vis2.header["ARRNAME"] = "ARR"
    path = tmp_path / "g.fits"
    fits.HDUList([primary, target, wave, vis2]).writeto(path)
    return path


def test_known_truth_on_a_built_file(tmp_path):
    path = _granule_file(tmp_path, [59000.30, 59000.45, 59000.55, 59001.2], [30.0, 10.0, 5.0, 7.0])
    with fits.open(path) as hdul:
        granules = sorted(granules_of(hdul), key=lambda g: g.t_min)
    assert [(g.night_id, g.nb_vis2, g.t_exptime) for g in granules] == [(59000, 2, 10.0), (59001, 2, 5.0)]
    first = granules[0]
    assert (first.t_min, first.t_max) == (59000.30, 59000.45)
    assert (first.s_ra, first.s_dec, first.facility_name) == (10.5, -20.25, "ARR")
    # EFF_BAND=0 is left out of the mean resolving power; wavelengths are in metres
    assert first.em_res_power == pytest.approx(16.0, rel=1e-6)
    assert (first.em_min, first.em_max) == pytest.approx((1.6e-6, 1.7e-6), rel=1e-6)
    assert first.nb_channels == 2 and first.nb_vis == first.nb_t3 == 0


def test_rows_without_a_time_make_no_granule(tmp_path):
    path = _granule_file(tmp_path, [59000.30, float("nan")], [3.0, 1.0])
    with fits.open(path) as hdul:
        granules = granules_of(hdul)
    assert [(g.nb_vis2, g.t_min, g.t_exptime) for g in granules] == [(1, 59000.30, 3.0)]


# --- recognition: no real OIFITS file ends as UNKNOWN ------------------------------------------


def _with_naxis1_zero(source: Path, target: Path) -> None:
    """Copy ``source`` with its primary header rewritten as NAXIS=1 / NAXIS1=0 (as real AMBER
    amdlib and MATISSE products write it), byte for byte otherwise."""
    raw = source.read_bytes()
    end = 0
    while True:
        block = raw[end : end + 2880]
        end += 2880
        if any(block[i : i + 80].rstrip() == b"END" for i in range(0, 2880, 80)):
            break
    cards = [raw[i : i + 80] for i in range(0, end, 80)]
    cards = [c for c in cards if c.strip() and c.rstrip() != b"END"]
    out = []
    for card in cards:
        if card.startswith(b"NAXIS   ="):
            out.append(b"NAXIS   =                    1".ljust(80))
            out.append(b"NAXIS1  =                    0".ljust(80))
        elif card.startswith(b"NAXIS1  ="):
            continue
        else:
            out.append(card)
    out.append(b"END".ljust(80))
    header = b"".join(out)
    header += b" " * (-len(header) % 2880)
    target.write_bytes(header + raw[end:])


def real_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "oifits" / "real").iterdir())


def test_no_real_oifits_file_is_unknown(shared_data, tmp_path):
    files = real_files(shared_data)
    assert len(files) == 26
    for path in files:
        for reader in (read_file, read_metadata):
            meta, _ = reader(path)
            assert meta.instrument == "OIFITS", (path.name, reader.__name__)
        if path.name.endswith(".gz"):
            continue
        variant = tmp_path / path.name
        _with_naxis1_zero(path, variant)
        header = fits.getheader(variant)
        assert (header["NAXIS"], header["NAXIS1"]) == (1, 0)
        # without CONTENT='OIFITS2' (the v1 files: AMBER, PIONIER, IOTA, MIDI) only the tables
        # can tell; this is the case that was catalogued as UNKNOWN
        for reader in (read_file, read_metadata):
            meta, _ = reader(variant)
            assert meta.instrument == "OIFITS", (path.name, reader.__name__)
            assert meta.target == read_file(path)[0].target


def test_a_primary_holding_data_is_not_oifits(tmp_path):
    # an image with an OI_ table after it is not an OIFITS product (OIFITS primaries are empty)
    path = _granule_file(tmp_path, [59000.3], [1.0])
    with fits.open(path) as hdul:
        hdul[0] = fits.PrimaryHDU(np.zeros((2, 3), dtype=np.float32))
        hdul.writeto(tmp_path / "image.fits")
    meta, _ = read_file(tmp_path / "image.fits")
    assert meta.instrument == "UNKNOWN"
