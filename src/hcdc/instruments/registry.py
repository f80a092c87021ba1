"""The one registry of instruments, and :func:`read_file`, the single entry point of ingest.

Adding an instrument = writing one module that defines :class:`~hcdc.instruments.base.Instrument`
subclasses decorated with :func:`register`, plus one line naming that module in the
``hcdc.instruments`` entry points of ``pyproject.toml`` (:mod:`hcdc.runtime.plugins`).
Identification tries instruments by decreasing ``priority``; the generic fallback (priority
-1000) accepts any readable FITS file, so a readable file is never rejected for being unknown.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from hcdc.instruments.base import (
    FileMetadata,
    Instrument,
    Level1Cube,
    Level1Frames,
    MetadataError,
    UnreadableFileError,
)
from hcdc.instruments.eso_headers import HeaderValues, parse_header_block
from hcdc.instruments.fits_file import open_fits
from hcdc.runtime.plugins import GROUPS
from hcdc.runtime.plugins import load_plugins as _load_plugins

#: File name endings read by :func:`read_file` (astropy reads gzip, bzip2 and, with the
#: ``uncompresspy`` package, Unix ``compress`` .Z files).
FITS_SUFFIXES: tuple[str, ...] = (
    ".fits",
    ".fit",
    ".fts",
    ".fits.gz",
    ".fits.z",
    ".fits.bz2",
    ".oifits",
    ".oifits.gz",
)

_REGISTRY: list[Instrument] = []
_loaded = False

InstrumentType = TypeVar("InstrumentType", bound=type[Instrument])


def register(cls: InstrumentType) -> InstrumentType:
    """Class decorator: add one instance of ``cls`` to the registry (kept sorted by priority)."""
    if any(type(inst) is cls for inst in _REGISTRY):
        return cls
    _REGISTRY.append(cls())
    _REGISTRY.sort(key=lambda inst: -inst.priority)
    return cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    load_plugins()
    _loaded = True


def load_plugins() -> list[str]:
    """Import hcdc's instrument modules and the ``hcdc.instruments`` entry points not imported yet
    (:func:`hcdc.runtime.plugins.load_plugins`); returns what was newly imported."""
    return _load_plugins(GROUPS["instruments"])


def instruments() -> list[Instrument]:
    """Registered instrument instances, in identification order (highest priority first)."""
    _load()
    return list(_REGISTRY)


def observation_log(meta: FileMetadata) -> list[dict[str, Any]]:
    """Level 0 granules of a raw file, from the instrument that read it
    (:meth:`~hcdc.instruments.base.Instrument.observation_log`); empty for most instruments."""
    for inst in instruments():
        if inst.name == meta.instrument:
            return inst.observation_log(meta)
    return []


def instrument_names() -> list[str]:
    """Distinct instrument names that :func:`read_file` can return (``FileMetadata.instrument``)."""
    names: list[str] = []
    for inst in instruments():
        if inst.name not in names:
            names.append(inst.name)
    return names


def is_fits_name(path: str | Path) -> bool:
    """True when the file name ends with one of :data:`FITS_SUFFIXES` (case-insensitive)."""
    name = Path(path).name.lower()
    return name.endswith(FITS_SUFFIXES)


def identify(header: fits.Header, hdul: fits.HDUList) -> Instrument:
    """The first registered instrument (by priority) that claims the file."""
    for inst in instruments():
        if inst.identify(header, hdul):
            return inst
    raise MetadataError("no instrument module recognises this file")  # generic fallback missing


class UnknownLevel1Error(ValueError):
    """No registered instrument reads a Level 1 product (the message names the path)."""


def read_level1(path: str | Path) -> Level1Cube:
    """The Level 1 product at ``path`` read by the first registered instrument that claims it
    (:meth:`~hcdc.instruments.base.Instrument.read_level1`): cube, PSF, angles, wavelengths and
    the instrument's plate scale. Raises :class:`UnknownLevel1Error` when none does."""
    path = Path(path)
    for inst in instruments():
        product = inst.read_level1(path)
        if product is not None:
            return product
    raise UnknownLevel1Error(
        f"{path}: not a Level 1 product of any registered instrument "
        f"({', '.join(instrument_names())}); post-process it as a user cube (cube + angles) "
        "and give its pixel scale"
    )


def read_level1_frames(path: str | Path, conditions: bool = True) -> Level1Frames:
    """Only the science frames and (``conditions``) per-frame conditions of the Level 1 product at ``path``
    (:meth:`~hcdc.instruments.base.Instrument.read_level1_frames` of the first instrument that
    claims it). Raises :class:`UnknownLevel1Error` when none does."""
    path = Path(path)
    for inst in instruments():
        frames = inst.read_level1_frames(path, conditions)
        if frames is not None:
            return frames
    raise UnknownLevel1Error(f"{path}: not a Level 1 product of any registered instrument")


def _check_primary_complete(path: Path, hdul: fits.HDUList) -> None:
    """Raise when a file is shorter than its primary header says.

    Only the primary header has been read; its data size (NAXISn x BITPIX) tells how long the
    file must be. For an uncompressed file the file size answers; a compressed file (.gz, .Z)
    must be decompressed up to that point, which is what a truncated download would break
    (cheap for gzip; ~0.7 s per decompressed MB for .Z, whose decoder is pure Python).
    """
    hdu = hdul[0]
    if hdul._file is None:
        return
    # The data proper must be present; the final padding to a 2880-byte block is sometimes
    # omitted by writers and is not required here.
    needed = hdu._data_offset + hdu.size
    if hdul._file.compression:
        if needed == 0:
            return
        try:
            hdul._file.seek(needed - 1)
            complete = len(hdul._file.read(1)) == 1
        except (OSError, EOFError, ValueError) as exc:
            raise UnreadableFileError(f"corrupt compressed FITS file: {exc}") from exc
        if not complete:
            raise UnreadableFileError(
                f"truncated compressed FITS file: the primary HDU needs {needed} bytes once decompressed"
            )
        return
    size = os.stat(path).st_size
    if size < needed:
        raise UnreadableFileError(
            f"truncated FITS file: {size} bytes, the primary HDU needs {needed} "
            f"(NAXIS={hdu.header.get('NAXIS', 0)}, BITPIX={hdu.header.get('BITPIX')})"
        )


def read_file(path: str | Path) -> tuple[FileMetadata, fits.Header]:
    """Open a FITS/OIFITS file once, identify its instrument and extract normalized metadata.

    Reads ``.fits``, ``.fits.gz``, ``.fits.Z`` (with ``uncompresspy``), ``.oifits`` and
    ``.oifits.gz``. Only the primary header is read for imaging raw files (the extensions are
    opened lazily, when an instrument module asks for them: OIFITS, SPARTA tables).

    Returns ``(metadata, primary_header)``.

    Raises :class:`UnreadableFileError` when the file is not FITS, is truncated or cannot be
    read, and :class:`MetadataError` when an essential keyword is missing/invalid or an OIFITS
    product is invalid. Messages state the reason; the caller adds the file name.
    """
    path = Path(path)
    with warnings.catch_warnings():
        # astropy warns (and goes on) on truncated or odd files; we decide ourselves.
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        hdul = _open(path)
        try:
            header = _primary_header(path, hdul)
            instrument = identify(header, hdul)
            values = _header_values(hdul) if instrument.wants_values else None
            meta = instrument.extract(header, hdul, values)
        finally:
            hdul.close()
    return meta, header


def read_metadata(path: str | Path, content: bytes | None = None) -> tuple[FileMetadata, fits.Header | None]:
    """:func:`read_file` for ingest: the same metadata, without building an astropy Header
    when the file allows it.

    A plain (uncompressed) FITS file whose primary header is standard (see
    :func:`read_metadata_fast`) is identified and extracted from one pass of the fast card
    parser over its raw header blocks, which costs a fraction of astropy's full header parse.
    Anything else (compressed files, OIFITS and other files whose extensions matter, unknown
    instruments, odd or truncated files) goes through :func:`read_file`, so the result and the
    errors raised are the same either way.

    ``content`` is the file's bytes when the caller has read them already (ingest hashes
    them). Returns ``(metadata, primary_header)``; the header is None when the fast path
    answered (the caller keeps the raw card images instead).
    """
    meta = read_metadata_fast(path, content)
    if meta is not None:
        return meta, None
    return read_file(path)


def read_metadata_fast(path: str | Path, content: bytes | None = None) -> FileMetadata | None:
    """Metadata of a plain FITS file from its primary header's values, or None to fall back.

    Decides only when (1) the file name is not a compressed one and the file starts with the
    fixed-format ``SIMPLE = T`` card; (2) an ``END`` card ends the header; (3) the header is
    printable ASCII, with BITPIX / NAXIS / NAXISn standard and in place, no random groups; (4)
    the file is at least as long as the header and the data it announces (a truncated file
    falls back so that :func:`read_file` reports it), and nothing astropy would try to read
    follows the primary HDU unless ``EXTEND = T``; (5) the keywords that identification reads
    are plain single upper-case cards; (6) every instrument up to the one that claims the file
    can decide from the values (:meth:`Instrument.identify_values`) and that instrument
    extracts from them (:meth:`Instrument.extract_values`). Raises :class:`MetadataError` as
    :func:`read_file` would for a file it decides on.
    """
    found = _plain_primary_header(Path(path), content)
    if found is None:
        return None
    block, file_size = found
    values = parse_header_block(block)
    if not _standard_primary(block, values, file_size):
        return None
    registered = instruments()
    if not _identification_cards_plain(block, _identification_keywords(registered)):
        return None
    with warnings.catch_warnings():
        # the same warning policy as read_file's extraction
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        for inst in registered:
            claimed = inst.identify_values(values)
            if claimed is None:
                return None
            if claimed:
                return inst.extract_values(values)
    return None


# --- fast path helpers ---------------------------------------------------------------------------

BLOCK = 2880  # FITS logical record (bytes)
CARD = 80  # FITS card image (bytes)
#: The first card of a plain FITS file up to its value column (FITS 4.0 sect. 4.4.1.1: fixed format).
_SIMPLE_CARD_START = b"SIMPLE  =                    T"
_END_CARD = b"END" + b" " * (CARD - 3)
_COMPRESSED_SUFFIXES = (".gz", ".gzip", ".z", ".bz2")
#: Blocks read at once while looking for END (an ESO raw header is ~30 blocks) and the most
#: header bytes the fast path looks at before handing the file to astropy.
_FIRST_READ = 64 * BLOCK
_MAX_HEADER = 2000 * BLOCK
_PRINTABLE = bytes(range(0x20, 0x7F))  # FITS 4.0 sect. 4.1.1: header bytes are ASCII 32-126
_STANDARD_BITPIX = frozenset({8, 16, 32, 64, -32, -64})
#: Characters of a FITS keyword (FITS 4.0 sect. 4.1.2.1), as single bytes.
_KEYWORD_BYTES = frozenset(bytes([c]) for c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _find_end_card(data: bytes, limit: int | None = None) -> int | None:
    """Offset of the header's END card, -1 when none is in ``data[:limit]`` yet, None when the
    first card that astropy takes for an END card is not the standard blank-padded one.

    Like astropy (``header._find_end_card``), a card starting with ``END`` ends the header
    unless ``END`` begins a longer keyword (``ENDTIME``): after blanks, a keyword character.
    """
    limit = len(data) if limit is None else limit
    offset = data.find(b"END", 0, limit)
    while offset >= 0:
        if offset % CARD == 0:
            card = data[offset : offset + CARD]
            if card == _END_CARD:
                return offset
            rest = card[3:].lstrip(b" ")
            if not rest or rest[:1] not in _KEYWORD_BYTES:
                return None  # a non-standard END card (astropy warns and stops there)
        offset = data.find(b"END", offset + 1, limit)
    return -1


def _plain_primary_header(path: Path, content: bytes | None) -> tuple[bytes, int] | None:
    """``(primary header blocks up to and including the END card's block, file size)`` of a
    plain FITS file, or None when the fast path does not apply (compressed name, not starting
    with ``SIMPLE = T``, no standard END card, unreadable: :func:`read_file` says why)."""
    if path.name.lower().endswith(_COMPRESSED_SUFFIXES):
        return None
    if content is not None:
        head, size = content, len(content)
        if not head.startswith(_SIMPLE_CARD_START):
            return None
        end = _find_end_card(head, _MAX_HEADER)
    else:
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                head = handle.read(_FIRST_READ)
                if not head.startswith(_SIMPLE_CARD_START):
                    return None
                end = _find_end_card(head)
                while end == -1 and len(head) < _MAX_HEADER:
                    more = handle.read(_FIRST_READ)
                    if not more:
                        break
                    # whole blocks are read, so no card straddles two reads
                    head += more
                    end = _find_end_card(head)
        except OSError:
            return None
    if end is None or end < 0:
        return None
    header_size = (end // BLOCK + 1) * BLOCK
    if len(head) < header_size:
        return None  # the END card's block is cut short: a truncated file
    return head[:header_size], size


def _standard_primary(block: bytes, values: HeaderValues, file_size: int) -> bool:
    """True when astropy would read this primary header exactly as the fast path does and the
    file holds all the data it announces (see :func:`read_metadata_fast`, points 3-4)."""
    if block.translate(None, _PRINTABLE):  # what is left once printable bytes are deleted
        return False  # astropy replaces such bytes (with a warning); the fast parser differently
    # mandatory keywords in their mandatory places (FITS 4.0 sect. 4.4.1.1)
    if block[CARD : CARD + 8] != b"BITPIX  " or block[2 * CARD : 2 * CARD + 8] != b"NAXIS   ":
        return False
    bitpix, naxis = values.get("BITPIX"), values.get("NAXIS")
    if type(bitpix) is not int or bitpix not in _STANDARD_BITPIX:
        return False
    if type(naxis) is not int or not 0 <= naxis <= 999:
        return False
    elements = 1 if naxis else 0
    for axis in range(1, naxis + 1):
        start = (2 + axis) * CARD
        if block[start : start + 8] != f"NAXIS{axis}".ljust(8).encode():
            return False
        length = values.get(f"NAXIS{axis}")
        if type(length) is not int or length < 0:
            return False
        elements *= length
    if "GROUPS" in values or "PCOUNT" in values or "GCOUNT" in values:
        return False  # random groups / odd primaries: astropy sizes them
    # the data size as astropy computes it (header._hdr_data_size for GCOUNT=1, PCOUNT=0)
    data_size = abs(bitpix) * elements // 8
    needed = len(block) + data_size
    if file_size < needed:
        return False  # truncated: read_file reports it with its usual message
    padded_end = needed + (-data_size % BLOCK)
    if values.get("EXTEND") is not True and file_size > padded_end:
        # without EXTEND = T astropy reads the next HDU at open time (to set EXTEND), and may
        # fail on whatever follows the primary HDU
        return False
    return True


def _identification_keywords(registered: list[Instrument]) -> tuple[bytes, ...]:
    """The 8-byte card keywords (blank-padded) that the instruments' identification reads."""
    keys = {key for inst in registered for key in inst.identification_keywords}
    return tuple(sorted(key.ljust(8).encode() for key in keys if len(key) <= 8))


def _identification_cards_plain(block: bytes, keywords: tuple[bytes, ...]) -> bool:
    """True when astropy and the fast parser must read the same identification values.

    Each keyword in ``keywords`` appears at most once, as a value card (``= `` in columns
    9-10) not followed by a ``CONTINUE`` card (astropy would join a long string); and no card
    keyword has lower-case letters (astropy upper-cases keywords and would find such a card,
    the fast parser would not).
    """
    cards = np.frombuffer(block, dtype=np.uint8).reshape(-1, CARD)
    key_columns = cards[:, :8]
    if np.any((key_columns >= ord("a")) & (key_columns <= ord("z"))):
        return False
    names = np.ascontiguousarray(key_columns).view("S8").ravel()
    for key in keywords:
        (where,) = np.nonzero(names == key)
        if len(where) > 1:
            return False
        if len(where) == 1:
            start = int(where[0]) * CARD
            if block[start + 8 : start + 10] != b"= ":
                return False
            if block[start + CARD : start + CARD + 8] == b"CONTINUE":
                return False
    return True


def _header_values(hdul: fits.HDUList) -> HeaderValues | None:
    """The primary header block re-read raw and parsed into a dict (None if that fails).

    astropy parses card values lazily at ~10 µs each; one regular-expression pass over the raw
    block is several times faster for the ~100 keywords an ESO instrument reads.
    """
    # HDUList.fileinfo() would re-serialise the whole header to check for resizing (~20 ms),
    # so the primary HDU's own offsets are used (private but stable astropy attributes).
    try:
        hdu = hdul[0]
        start, stop = hdu._header_offset, hdu._data_offset
        fileobj = hdul._file
        fileobj.seek(start)
        raw = fileobj.read(stop - start)
    except Exception:  # noqa: BLE001 - fall back to astropy's own (slower) card access
        return None
    return parse_header_block(raw)


def _open(path: Path) -> fits.HDUList:
    return open_fits(path, lazy=True)


def _primary_header(path: Path, hdul: fits.HDUList) -> fits.Header:
    try:
        header = hdul[0].header
    except IndexError as exc:
        raise UnreadableFileError("empty or not a FITS file (no primary HDU)") from exc
    except Exception as exc:  # noqa: BLE001 - astropy raises many types on corrupt headers
        raise UnreadableFileError(f"unreadable primary header ({type(exc).__name__}: {exc})") from exc
    _check_primary_complete(path, hdul)
    return header
