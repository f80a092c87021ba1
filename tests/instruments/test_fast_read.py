"""The fast path of ingest (``registry.read_metadata``): same answers as ``read_file``.

For plain FITS files with a standard primary header, ``read_metadata`` identifies and extracts
from one pass of the fast card parser over the raw header blocks, without an astropy Header.
Each test checks that it gives exactly ``read_file``'s metadata (or raises ``read_file``'s
error), and whether the fast path decided (``read_metadata_fast`` not None) or fell back.
"""

from __future__ import annotations

import gzip
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from hcdc.instruments.base import MetadataError, UnreadableFileError
from hcdc.instruments.registry import read_file, read_metadata, read_metadata_fast

from .conftest import REAL_FILES, SCIENCE_FILES, edited, write_fits

OBJECT_FILE = SCIENCE_FILES[1]
CARD = 80


def _same_as_read_file(path: Path, *, fast: bool) -> None:
    """read_metadata (with and without the bytes) == read_file; fast path taken iff ``fast``."""
    expected, header = read_file(path)
    content = path.read_bytes()
    decided = read_metadata_fast(path, content)
    assert (decided is not None) is fast
    for given in (content, None):
        meta, fast_header = read_metadata(path, given)
        assert meta == expected
        assert (fast_header is None) is fast
        if not fast:
            assert fast_header == header


def _error(call) -> tuple[type, str]:  # noqa: ANN001 - a callable
    with pytest.raises(MetadataError) as info:
        call()
    return type(info.value), str(info.value)


def _same_error(path: Path) -> tuple[type, str]:
    """read_metadata raises exactly read_file's error (type and message) on ``path``."""
    expected = _error(lambda: read_file(path))
    content = path.read_bytes() if path.exists() else None
    assert _error(lambda: read_metadata(path, content)) == expected
    assert _error(lambda: read_metadata(path)) == expected
    return expected


def _replace_card(data: bytes, keyword: str, card: str) -> bytes:
    """``data`` with the first card whose keyword is ``keyword`` replaced by ``card``."""
    key = keyword.ljust(8).encode()
    for offset in range(0, len(data), CARD):
        if data[offset : offset + 8] == key:
            return data[:offset] + card.ljust(CARD).encode("latin-1") + data[offset + CARD :]
    raise AssertionError(f"no {keyword} card")


# --- real headers ------------------------------------------------------------------------------


@pytest.mark.shared_data
@pytest.mark.parametrize("name", REAL_FILES)
def test_real_headers_take_the_fast_path(real_fits, name):
    _same_as_read_file(real_fits[name], fast=True)
    meta = read_metadata_fast(real_fits[name])
    assert (meta.instrument, meta.arm) == ("SPHERE", "IFS")


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("changes", "remove", "arm"),
    [
        ({"SEQ ARM": "IRDIS", "DET ID": "IRDIS", "INS COMB IFLT": "DB_H23", "INS1 MODE": "DBI"}, (), "IRDIS"),
        ({"SEQ ARM": "ZIMPOL", "DET ID": "ZPL", "DET DIT1": 2.0}, ("DET SEQ1 DIT",), "ZIMPOL"),
        ({"DPR CATG": "CALIB", "DPR TYPE": "DARK,BACKGROUND"}, (), "IFS"),
    ],
)
def test_derived_sphere_headers(real_headers, make_fits, changes, remove, arm):
    path = make_fits("derived", edited(real_headers[OBJECT_FILE], changes, remove=remove))
    _same_as_read_file(path, fast=True)
    assert read_metadata_fast(path).arm == arm


@pytest.mark.shared_data
def test_naco_header(real_headers, make_fits):
    header = edited(
        real_headers[OBJECT_FILE],
        {"INSTRUME": "NAOS+CONICA", "DET DIT": 0.2, "INS OPTI6 NAME": "L_prime", "INS OPTI6 TYPE": "FILTER"},
        remove=("SEQ ARM", "DET ID", "DET NAME", "DET SEQ1 DIT"),
    )
    path = make_fits("naco", header)
    _same_as_read_file(path, fast=True)
    assert read_metadata_fast(path).instrument == "NACO"


@pytest.mark.shared_data
def test_sparta_falls_back_for_its_table(real_headers, tmp_path):
    """SPARTA files are catalogued from their AtmPerfParams table too: astropy path."""
    header = edited(
        real_headers[OBJECT_FILE], {"DPR TYPE": "OBJECT,AO"}, remove=("SEQ ARM", "DET ID", "DET NAME")
    )
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name=n, format="D", array=np.array([v]))
            for n, v in {
                "Sec": 1583651115.0,
                "USec": 0.0,
                "R0": 0.1,
                "WindSpeed": 10.0,
                "StrehlRatio": 0.5,
            }.items()
        ],
        name="AtmPerfParams",
    )
    path = tmp_path / "sparta.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits.HDUList([fits.PrimaryHDU(np.zeros((2, 2), np.float32), header), table]).writeto(
            path, output_verify="silentfix"
        )
    _same_as_read_file(path, fast=False)
    assert read_metadata(path)[0].extra["ao_samples"] == 1


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("remove", "message"),
    [
        (("DPR TYPE",), "ESO DPR TYPE"),
        (("DET SEQ1 DIT",), "ESO DET SEQ1 DIT"),
        (("SEQ ARM", "DET ID", "DET NAME"), "arm"),
    ],
)
def test_missing_keyword_same_error(real_headers, make_fits, remove, message):
    path = make_fits("missing", edited(real_headers[OBJECT_FILE], {}, remove=remove))
    kind, text = _same_error(path)
    assert kind is MetadataError and message in text


# --- files the fast path leaves to astropy -----------------------------------------------------


@pytest.mark.shared_data
def test_gzip_falls_back(real_fits, tmp_path):
    path = tmp_path / "real.fits.gz"
    path.write_bytes(gzip.compress(real_fits[OBJECT_FILE].read_bytes()))
    _same_as_read_file(path, fast=False)


def test_generic_falls_back(tmp_path):
    header = fits.Header({"INSTRUME": "MYCAM", "OBJECT": "M31", "DATE-OBS": "2021-07-01T03:00:00"})
    path = write_fits(tmp_path / "other.fits", header)
    _same_as_read_file(path, fast=False)
    assert read_metadata(path)[0].instrument == "UNKNOWN"


@pytest.mark.shared_data
def test_oifits_falls_back(shared_data):
    for name in ("PIONIER_alfCar_2014-01-12.fits", "GRAVITY_CITau_2022.fits"):
        _same_as_read_file(shared_data / "oifits" / "real" / name, fast=False)


@pytest.mark.shared_data
def test_truncated_data_same_error(real_fits, tmp_path):
    data = real_fits[OBJECT_FILE].read_bytes()
    path = tmp_path / "cut.fits"
    path.write_bytes(data[: len(data) - 2880 + 100])
    kind, text = _same_error(path)
    assert kind is UnreadableFileError and "truncated FITS file" in text
    assert read_metadata_fast(path) is None


@pytest.mark.shared_data
def test_truncated_header_same_error(real_fits, tmp_path):
    path = tmp_path / "cut_header.fits"
    path.write_bytes(real_fits[OBJECT_FILE].read_bytes()[:40000])
    assert _same_error(path)[0] is UnreadableFileError
    assert read_metadata_fast(path) is None


@pytest.mark.parametrize(
    "content", [b"", b"this is not a FITS file\n" * 10, b"SIMPLE  =                    T" + b" " * 50]
)
def test_not_fits_same_error(tmp_path, content):
    path = tmp_path / "bad.fits"
    path.write_bytes(content)
    assert _same_error(path)[0] is UnreadableFileError


def test_missing_file_same_error(tmp_path):
    kind, text = _same_error(tmp_path / "nowhere.fits")
    assert kind is UnreadableFileError and "not found" in text


def _fallback_agrees_with_astropy(path) -> None:
    """The ingest path gives astropy's metadata, or the same error astropy's path gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = read_file(path)[0]
        except MetadataError:
            _same_error(path)
            return
    assert read_metadata(path)[0] == expected


@pytest.mark.shared_data
@pytest.mark.parametrize(
    "edit",
    [
        # a second INSTRUME card: astropy reads the first, so the fast path must not guess
        lambda d: _replace_card(d, "ORIGIN", "INSTRUME= 'NAOS+CONICA'"),
        # a lower-case keyword before the real card: astropy finds it first as INSTRUME, the
        # fast parser would not see it
        lambda d: _replace_card(d, "ORIGIN", "instrume= 'NAOS+CONICA'"),
        # a long string continued on the next card
        lambda d: _replace_card(
            _replace_card(d, "INSTRUME", "INSTRUME= 'SPH&'"), "OBJECT", "CONTINUE  'ERE'"
        ),
        # a non-ASCII byte in a comment
        lambda d: _replace_card(d, "ORIGIN", "ORIGIN  = 'ESO-PARANAL'        / \xe9"),
        # NAXIS1 written as a float
        lambda d: _replace_card(d, "NAXIS1", "NAXIS1  =                  4.0"),
        # random-groups keywords in the primary header
        lambda d: _replace_card(d, "ORIGIN", "GCOUNT  =                    1"),
    ],
    ids=["duplicate-instrume", "lower-case", "continue", "non-ascii", "float-naxis", "gcount"],
)
def test_odd_headers_fall_back(real_fits, tmp_path, edit):
    path = tmp_path / "odd.fits"
    path.write_bytes(edit(real_fits[OBJECT_FILE].read_bytes()))
    assert read_metadata_fast(path) is None
    _fallback_agrees_with_astropy(path)


@pytest.mark.shared_data
@pytest.mark.parametrize("card", ["INSTRUME= 'NAOS+CONICA'", "instrume= 'NAOS+CONICA'"])
def test_first_instrume_card_wins_like_astropy(real_fits, tmp_path, card):
    """A second INSTRUME card (upper or lower case) before the real one: astropy reads the
    first, NAOS+CONICA, so the file is NACO (not SPHERE) on both paths."""
    data = _replace_card(real_fits[OBJECT_FILE].read_bytes(), "ORIGIN", card)
    path = tmp_path / "two_instrume.fits"
    path.write_bytes(data)
    assert read_metadata_fast(path) is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert read_metadata(path)[0].instrument == read_file(path)[0].instrument == "NACO"


@pytest.mark.shared_data
def test_continued_instrume_is_read_like_astropy(real_fits, tmp_path):
    """INSTRUME = 'SPH&' + CONTINUE 'ERE': astropy joins the long string into SPHERE."""
    data = real_fits[OBJECT_FILE].read_bytes()
    data = _replace_card(_replace_card(data, "INSTRUME", "INSTRUME= 'SPH&'"), "OBJECT", "CONTINUE  'ERE'")
    path = tmp_path / "continued.fits"
    path.write_bytes(data)
    assert read_metadata_fast(path) is None
    assert read_metadata(path)[0] == read_file(path)[0]
    assert read_file(path)[0].instrument == "SPHERE"


@pytest.mark.shared_data
def test_trailing_bytes_without_extend(real_headers, tmp_path):
    """Without EXTEND = T astropy looks past the primary HDU at open time: fast path declines."""
    header = edited(real_headers[OBJECT_FILE], {}, remove=("EXTEND",))
    path = write_fits(tmp_path / "noextend.fits", header)
    assert read_metadata_fast(path) is not None  # nothing after the primary HDU: fine
    path.write_bytes(path.read_bytes() + b"garbage!" * 360)
    assert read_metadata_fast(path) is None
    _fallback_agrees_with_astropy(path)


def test_end_card_detection_ignores_end_inside_values(tmp_path):
    """'END' inside a card's text is not the END card (only a card-aligned blank END is)."""
    header = fits.Header()
    header["INSTRUME"] = "SPHERE"
    header["HIERARCH ESO TPL END"] = "END"
    path = write_fits(tmp_path / "end.fits", header)
    raw = path.read_bytes()
    assert re.search(rb"END", raw[: raw.index(b"END" + b" " * 77)])
    # SPHERE without its essential keywords: both paths give the same MetadataError
    assert _same_error(path)[0] is MetadataError


@pytest.mark.shared_data
def test_keyword_starting_with_end_is_not_the_end(real_fits, tmp_path):
    path = tmp_path / "endtime.fits"
    path.write_bytes(
        _replace_card(real_fits[OBJECT_FILE].read_bytes(), "ORIGIN", "ENDTIME =                    5")
    )
    _same_as_read_file(path, fast=True)


@pytest.mark.shared_data
def test_non_standard_end_card_falls_back(real_fits, tmp_path):
    """``END`` followed by text: astropy stops there (with a warning); the fast path declines."""
    path = tmp_path / "oddend.fits"
    path.write_bytes(_replace_card(real_fits[OBJECT_FILE].read_bytes(), "ORIGIN", "END     / early"))
    assert read_metadata_fast(path) is None
    _fallback_agrees_with_astropy(path)
