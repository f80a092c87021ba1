"""Unix ``compress`` (.fits.Z, LZW) files, as ESO archive downloads arrive, read by ``read_file``.

The files are written by the test helper :mod:`helpers.unix_compress` (no installed tool writes
LZW). The helper is checked first: against known answers produced by ncompress 5.0
(``compress -c``), and by round trips through ``uncompresspy`` (the decoder astropy uses), on
inputs that reach 16-bit codes and table resets.
"""

from __future__ import annotations

import hashlib
import io
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import uncompresspy
from astropy.io import fits
from helpers.unix_compress import compress

from hcdc.instruments.base import UnreadableFileError
from hcdc.instruments.registry import read_file

from .conftest import REAL_FILES, write_fits


def _uncompress(blob: bytes) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a "partial code" warning would mean a broken stream
        return uncompresspy.LZWFile(io.BytesIO(blob)).read()


def _clears_seen(blob: bytes) -> int:
    """How many CLEAR codes uncompresspy met (it keeps a checkpoint after each one)."""
    with uncompresspy.LZWFile(io.BytesIO(blob)) as handle:
        handle.read()
        return len(handle._checkpoints_compressed) - 1


# ---------------------------------------------------------------------------- the encoder itself


def test_known_answer_short_string() -> None:
    # `printf TOBEORNOTTOBEORTOBEORNOT | compress -c | xxd -p` with ncompress 5.0
    expected = bytes.fromhex("1f9d90549e0829f2448a932754020e2ca890a04184")
    assert compress(b"TOBEORNOTTOBEORTOBEORNOT") == expected
    assert _uncompress(expected) == b"TOBEORNOTTOBEORTOBEORNOT"


def test_known_answer_reaching_16_bit_codes() -> None:
    # 1.02 MB of header-like lines; ncompress 5.0 writes 111021 bytes with this sha256. About
    # 60,000 codes: every width from 9 to 16 bits is used.
    data = b"".join(f"{i:06d} HIERARCH ESO DET DIT = {i % 7}.0\n".encode() for i in range(30000))
    blob = compress(data)
    assert len(blob) == 111021
    expected = "cac0254f487e10703360a87f3757df8d9d6bd72d33aae3dd24fa1dd215277ce2"
    assert hashlib.sha256(blob).hexdigest() == expected
    assert _uncompress(blob) == data


def test_header_bytes() -> None:
    assert compress(b"") == b"\x1f\x9d\x90"  # magic, block mode | 16 bits, no codes
    assert compress(b"x", max_bits=12)[:3] == b"\x1f\x9d\x8c"
    assert _uncompress(compress(b"")) == b""
    with pytest.raises(ValueError, match="max_bits"):
        compress(b"x", max_bits=17)
    with pytest.raises(ValueError, match="reset_at"):
        compress(b"x", reset_at=257)


@pytest.mark.parametrize("size", [1, 2, 3, 255, 256, 257, 4096])
def test_round_trip_short_random(size: int) -> None:
    data = random.Random(size).randbytes(size)
    assert _uncompress(compress(data)) == data


def test_round_trip_repetitive() -> None:
    # one repeated byte exercises the "code not yet in the table" (KwKwK) case at every width
    data = b"a" * 200_000
    blob = compress(data)
    assert len(blob) < 1000
    assert _uncompress(blob) == data


def test_round_trip_random_fills_the_table_and_resets() -> None:
    # 300 kB of random bytes need more than 65,279 new strings: the 16-bit table fills, CLEAR
    # is emitted (padded to the 16-bit group boundary) and coding restarts at 9 bits.
    data = random.Random(42).randbytes(300_000)
    blob = compress(data)
    assert _clears_seen(blob) >= 3
    assert _uncompress(blob) == data


_RESETS = [None, 258, 300, 511, 512, 513, 1024, 1500, 5000]


@pytest.mark.parametrize(
    ("max_bits", "reset_at"),
    [(bits, at) for bits in (9, 12, 16) for at in _RESETS if at is None or at <= 1 << bits],
)
def test_round_trip_resets_at_every_width(max_bits: int, reset_at: int | None) -> None:
    # CLEAR in the middle of a group of 9-, 10-, 11-, 13-bit codes (or when a small table fills)
    rng = random.Random(7)
    words = [b"ESO DPR TYPE", b"OBJECT", b"FLAT,LAMP", b"  ", b"T"]
    data = b"".join(rng.choice(words) if rng.random() < 0.7 else rng.randbytes(3) for _ in range(8000))
    blob = compress(data, max_bits=max_bits, reset_at=reset_at)
    assert _uncompress(blob) == data
    if reset_at is not None or max_bits < 16:
        assert _clears_seen(blob) >= 1


# ---------------------------------------------------------------------------- read_file on .fits.Z


def _compressed_copy(plain: Path) -> Path:
    packed = plain.with_name(plain.name + ".Z")
    packed.write_bytes(compress(plain.read_bytes()))
    return packed


@pytest.mark.parametrize("name", REAL_FILES)
def test_real_header_fits_z_reads_like_plain_fits(name, real_headers, tmp_path) -> None:
    data = np.arange(2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)  # non-zero: content checked too
    plain = write_fits(tmp_path / f"{name}.fits", real_headers[name], data)
    packed = _compressed_copy(plain)
    assert packed.read_bytes()[:3] == b"\x1f\x9d\x90"
    meta_plain, header_plain = read_file(plain)
    meta_packed, header_packed = read_file(packed)
    assert meta_packed == meta_plain
    assert meta_packed.instrument == "SPHERE" and meta_packed.arm == "IFS"
    assert meta_packed.type == real_headers[name]["HIERARCH ESO DPR TYPE"]
    assert meta_packed.dit == pytest.approx(real_headers[name]["HIERARCH ESO DET SEQ1 DIT"])
    assert [str(c) for c in header_packed.cards] == [str(c) for c in header_plain.cards]
    with fits.open(packed) as hdul:
        np.testing.assert_array_equal(hdul[0].data, data)


def test_fits_z_truncated_in_the_header_is_unreadable(real_headers, tmp_path) -> None:
    plain = write_fits(tmp_path / "full.fits", real_headers[REAL_FILES[1]])
    blob = compress(plain.read_bytes())
    for keep in (3, 40, len(blob) // 4):  # header only; a few cards; part of the header
        cut = tmp_path / f"cut{keep}.fits.Z"
        cut.write_bytes(blob[:keep])
        with pytest.raises(UnreadableFileError, match="not a readable FITS file.*(corrupt|truncated)"):
            read_file(cut)


def test_fits_z_not_lzw_is_unreadable(tmp_path) -> None:
    bogus = tmp_path / "bogus.fits.Z"
    bogus.write_bytes(b"\x1f\x9d\x90" + bytes(range(7, 250)) * 20)  # LZW magic, invalid codes
    with pytest.raises(UnreadableFileError, match="not a readable FITS file"):
        read_file(bogus)


def test_fits_z_truncated_in_the_data_is_unreadable(real_headers, tmp_path) -> None:
    data = np.random.default_rng(3).normal(size=(2, 64, 64)).astype(np.float32)  # 32 kB of data
    plain = write_fits(tmp_path / "full.fits", real_headers[REAL_FILES[1]], data)
    blob = compress(plain.read_bytes())
    cut = tmp_path / "cut.fits.Z"
    cut.write_bytes(blob[: len(blob) - 2000])  # header intact, data cut short
    with pytest.raises(UnreadableFileError, match="truncated"):
        read_file(cut)


def test_gzip_truncated_in_the_data_is_unreadable(real_headers, tmp_path) -> None:
    import gzip

    data = np.random.default_rng(4).normal(size=(2, 64, 64)).astype(np.float32)
    plain = write_fits(tmp_path / "full.fits", real_headers[REAL_FILES[1]], data)
    blob = gzip.compress(plain.read_bytes())
    cut = tmp_path / "cut.fits.gz"
    cut.write_bytes(blob[: len(blob) - 2000])
    with pytest.raises(UnreadableFileError, match="truncated|corrupt"):
        read_file(cut)
