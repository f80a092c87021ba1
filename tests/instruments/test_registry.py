"""Registry, generic fallback, unreadable files and the ESO header-text / raw-block parsers."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.base import (
    MetadataError,
    UnreadableFileError,
    datetime_to_mjd,
    mjd_to_datetime,
    night_of,
    parse_iso_datetime,
)
from hcdc.instruments.eso_headers import parse_header_block, parse_header_text
from hcdc.instruments.registry import instrument_names, instruments, is_fits_name, read_file

from .conftest import REAL_FILES, SCIENCE_FILES


def test_registry_order_and_names():
    names = instrument_names()
    assert set(names) >= {"SPHERE", "NACO", "OIFITS", "UNKNOWN"}
    assert names[-1] == "UNKNOWN"  # the generic fallback is tried last
    priorities = [inst.priority for inst in instruments()]
    assert priorities == sorted(priorities, reverse=True)


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a.fits", True),
        ("a.FITS.gz", True),
        ("b.fits.Z", True),
        ("c.oifits", True),
        ("d.txt", False),
        ("e.fz", False),
    ],
)
def test_is_fits_name(name, ok):
    assert is_fits_name(name) is ok


def test_generic_fallback(tmp_path):
    header = fits.Header()
    header["INSTRUME"] = "MYCAM"
    header["OBJECT"] = "M31"
    header["DATE-OBS"] = "2021-07-01T03:00:00"
    header["EXPTIME"] = 30.0
    header["RA"] = 10.68
    header["DEC"] = 41.27
    path = tmp_path / "other.fits"
    fits.PrimaryHDU(np.zeros((3, 3), np.float32), header).writeto(path)
    meta, _ = read_file(path)
    assert (meta.instrument, meta.file_class, meta.target, meta.dit) == ("UNKNOWN", "OTHER", "M31", 30.0)
    assert meta.night == dt.date(2021, 6, 30)
    assert (meta.ra, meta.dec) == (10.68, 41.27)
    assert meta.extra["instrume"] == "MYCAM"


def test_generic_without_any_keyword(tmp_path):
    path = tmp_path / "bare.fits"
    fits.PrimaryHDU(np.arange(4.0)).writeto(path)
    meta, _ = read_file(path)
    assert meta.instrument == "UNKNOWN" and meta.date_obs is None and meta.night is None


def test_not_fits(tmp_path):
    path = tmp_path / "notes.fits"
    path.write_text("this is not a FITS file\n" * 10)
    with pytest.raises(UnreadableFileError, match="not a readable FITS file"):
        read_file(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.fits"
    path.write_bytes(b"")
    with pytest.raises(UnreadableFileError):
        read_file(path)


def test_missing_file(tmp_path):
    with pytest.raises(UnreadableFileError, match="not found"):
        read_file(tmp_path / "nowhere.fits")


@pytest.mark.shared_data
def test_truncated_data_is_detected(real_fits, tmp_path):
    data = real_fits[SCIENCE_FILES[1]].read_bytes()
    path = tmp_path / "cut.fits"
    path.write_bytes(data[: len(data) - 2880 + 100])  # header intact, data cut short
    with pytest.raises(UnreadableFileError, match="truncated FITS file"):
        read_file(path)


@pytest.mark.shared_data
def test_truncated_header_is_detected(real_fits, tmp_path):
    data = real_fits[SCIENCE_FILES[1]].read_bytes()
    path = tmp_path / "cut_header.fits"
    path.write_bytes(data[:40000])  # stops inside the ~80 kB header
    with pytest.raises(UnreadableFileError):
        read_file(path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "bad.fits.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 100)
    with pytest.raises(UnreadableFileError):
        read_file(path)


# --- header text dumps and the fast raw-block parser ----------------------------------------


@pytest.mark.shared_data
def test_parse_header_text_on_real_dumps(shared_data):
    folder = shared_data / "sphere_headers"
    for name in REAL_FILES:
        text = (folder / f"{name}.hdr.txt").read_text()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = parse_header_text(text)
        n_lines = next(i for i, line in enumerate(text.splitlines()) if line.strip() == "END")
        assert len(header) == n_lines  # one card per line up to END
        assert header["ARCFILE"] == name.replace("_", ":") + ".fits"
        # the >80-character cards are cut, not mis-aligned: the next card is intact
        assert header["HIERARCH ESO DET CLDC1 DCNM16"] == "DC16_RelaySwitchLowActive"


def test_parse_header_text_rejects_garbage():
    with pytest.raises(MetadataError):
        parse_header_text("")
    with pytest.raises(MetadataError, match="line 2"):
        parse_header_text("SIMPLE  =                    T\nhello world, this is prose\nEND")


def _astropy_values(header: fits.Header) -> dict:
    out = {}
    for card in header.cards:
        if card.keyword in ("COMMENT", "HISTORY", ""):
            continue
        value = card.value
        out.setdefault(card.keyword, None if isinstance(value, fits.card.Undefined) else value)
    return out


@pytest.mark.shared_data
def test_fast_parser_equals_astropy(shared_data, real_headers):
    """parse_header_block gives astropy's value and type for every card of the 8 real SPHERE
    headers and of the OIFITS primaries (~31 000 cards)."""
    sources = []
    folder = shared_data / "sphere_headers"
    for name, header in real_headers.items():
        lines = (folder / f"{name}.hdr.txt").read_text().splitlines()
        sources.append(("\n".join(line[:80] for line in lines), header))
    for path in sorted((shared_data / "oifits").glob("[rs]*/*")):
        header = fits.getheader(path)
        sources.append((header.tostring(), header))
    compared = 0
    for raw, header in sources:
        fast = parse_header_block(raw)
        reference = _astropy_values(header)
        assert set(fast) == set(reference)
        for key, value in reference.items():
            assert fast[key] == value and type(fast[key]) is type(value), key
        compared += len(reference)
    assert compared > 30000


def test_fast_parser_edge_cases():
    cards = [
        "SIMPLE  =                    T / comment",
        "STR     = 'it''s / not a comment' / real comment",
        "EMPTY   =",
        "HIERARCH ESO DET SEQ1 DIT = 1.6507260 / [s] Integration time",
        "EXP     =              1.5D+01",
        "COMMENT this is ignored",
        "STR     = 'second occurrence is ignored'",
        "END",
        "AFTER   = 1",
    ]
    raw = "".join(card.ljust(80) for card in cards)
    values = parse_header_block(raw)
    assert values["SIMPLE"] is True
    assert values["STR"] == "it's / not a comment"
    assert values["EMPTY"] is None
    assert values["ESO DET SEQ1 DIT"] == 1.650726
    assert values["EXP"] == 15.0
    assert "AFTER" not in values and "COMMENT" not in values


# --- time helpers ------------------------------------------------------------------------------


def test_time_helpers():
    when = parse_iso_datetime("2020-03-08T07:05:15.5110")
    assert when == dt.datetime(2020, 3, 8, 7, 5, 15, 511000)
    assert datetime_to_mjd(when) == pytest.approx(58916.29531841, abs=1e-8)  # MJD-OBS of that file
    assert mjd_to_datetime(58916.29531841) - when < dt.timedelta(milliseconds=1)
    assert night_of(dt.datetime(2020, 3, 8, 11, 59)) == dt.date(2020, 3, 7)
    assert night_of(dt.datetime(2020, 3, 8, 12, 0)) == dt.date(2020, 3, 8)
    assert parse_iso_datetime("2017-05-23") == dt.datetime(2017, 5, 23)
    with pytest.raises(ValueError):
        parse_iso_datetime("2017-05-23T25:00:00")
