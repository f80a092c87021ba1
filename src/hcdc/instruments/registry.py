"""The one registry of instruments, and :func:`read_file`, the single entry point of ingest.

Adding an instrument = writing one module that defines :class:`~hcdc.instruments.base.Instrument`
subclasses decorated with :func:`register`, plus one line naming that module in
``_INSTRUMENT_MODULES`` below. Identification tries instruments by decreasing ``priority``;
the generic fallback (priority -1000) accepts any readable FITS file, so a readable file is
never rejected for being unknown.
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from typing import TypeVar

from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from hcdc.instruments.base import FileMetadata, Instrument, MetadataError, UnreadableFileError
from hcdc.instruments.eso_headers import HeaderValues, parse_header_block

# One line per instrument module; each module registers its classes with @register on import.
_INSTRUMENT_MODULES: tuple[str, ...] = (
    "hcdc.instruments.sphere",
    "hcdc.instruments.naco",
    "hcdc.instruments.oifits",
    "hcdc.instruments.generic",
)

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
    for module in _INSTRUMENT_MODULES:
        importlib.import_module(module)
    _loaded = True


def instruments() -> list[Instrument]:
    """Registered instrument instances, in identification order (highest priority first)."""
    _load()
    return list(_REGISTRY)


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
    try:
        return fits.open(path, lazy_load_hdus=True, memmap=False)
    except FileNotFoundError as exc:
        raise UnreadableFileError(f"file not found: {path}") from exc
    except PermissionError as exc:
        raise UnreadableFileError(f"permission denied: {path}") from exc
    except (OSError, EOFError, ValueError, TypeError) as exc:
        # astropy: OSError("Empty or corrupt FITS file"), ValueError for a bad first card,
        # EOFError / zlib.error (an OSError... or not) for broken compression.
        raise UnreadableFileError(f"not a readable FITS file ({exc})") from exc
    except Exception as exc:  # noqa: BLE001 - e.g. zlib.error, lzw errors: still unreadable
        raise UnreadableFileError(f"not a readable FITS file ({type(exc).__name__}: {exc})") from exc


def _primary_header(path: Path, hdul: fits.HDUList) -> fits.Header:
    try:
        header = hdul[0].header
    except IndexError as exc:
        raise UnreadableFileError("empty or not a FITS file (no primary HDU)") from exc
    except Exception as exc:  # noqa: BLE001 - astropy raises many types on corrupt headers
        raise UnreadableFileError(f"unreadable primary header ({type(exc).__name__}: {exc})") from exc
    _check_primary_complete(path, hdul)
    return header
