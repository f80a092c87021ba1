"""Opening a FITS file whole, or saying clearly why it cannot be: one place for every reader.

astropy reads a truncated file as far as it can: it warns ("Header size is not multiple of
2880 ... the file is corrupted") and returns the HDUs it completed, silently dropping the
rest. An OIFITS checker then reports missing OI_TARGET / OI_WAVELENGTH / data tables, which
hides the real fault. :func:`open_whole` reads every HDU and raises
:class:`~hcdc.instruments.base.UnreadableFileError` with the reason ("truncated FITS file:
...") instead. Messages give the reason only; callers add the file name (the archive's and
the CLI's convention).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from astropy.io import fits
from astropy.utils.exceptions import AstropyUserWarning

from hcdc.instruments.base import UnreadableFileError

BLOCK = 2880  # FITS block, bytes
CARD = 80  # FITS card, bytes
_XTENSION = b"XTENSION"
_SIMPLE = b"SIMPLE  ="
_END_CARD = b"END" + b" " * (CARD - 3)
#: how far into an unreadable file the primary header's END card is looked for
_HEADER_SCAN = 1 << 20


def _read_start(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of ``path`` as stored, or decompressed for .gz files."""
    import gzip

    with path.open("rb") as handle:
        head = handle.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as handle:
            return handle.read(size)
    except Exception:  # noqa: BLE001 - OSError, EOFError, zlib.error: nothing readable to judge
        return b""


def _end_card_at(header: bytes) -> int:
    """Offset of the END card in ``header`` (cards on 80-byte boundaries), -1 if none."""
    for offset in range(0, len(header) - CARD + 1, CARD):
        if header[offset : offset + CARD] == _END_CARD:
            return offset
    return -1


def unreadable_reason(path: Path, exc: BaseException) -> str:
    """Why astropy could not open ``path`` at all: a primary header cut off (no END card, or
    the END card's 2880-byte block incomplete) reads "truncated FITS file", anything else
    "not a readable FITS file (astropy's message)"."""
    start = _read_start(path, _HEADER_SCAN)
    if start.startswith(_SIMPLE) and len(start) < _HEADER_SCAN:
        end = _end_card_at(start)
        if end < 0:
            return f"truncated FITS file: the primary header stops after {len(start)} bytes, with no END card"
        needed = end + CARD + (-(end + CARD) % BLOCK)
        if len(start) < needed:
            return f"truncated FITS file: {len(start)} bytes, the primary header alone needs {needed}"
    text = str(exc) or type(exc).__name__
    return f"not a readable FITS file ({text})"


def open_fits(path: str | Path, *, lazy: bool = True) -> fits.HDUList:
    """``fits.open`` without memory mapping, turning every failure into UnreadableFileError."""
    path = Path(path)
    try:
        return fits.open(path, lazy_load_hdus=lazy, memmap=False)
    except FileNotFoundError as exc:
        raise UnreadableFileError(f"file not found: {path}") from exc
    except PermissionError as exc:
        raise UnreadableFileError(f"permission denied: {path}") from exc
    except Exception as exc:  # noqa: BLE001 - astropy: OSError, ValueError, EOFError, zlib.error...
        raise UnreadableFileError(unreadable_reason(path, exc)) from exc


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence astropy's warnings about cut or odd files: the caller raises the reason."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        yield


def _label(index: int, hdu: fits.hdu.base._BaseHDU) -> str:
    name = str(hdu.header.get("EXTNAME", "")).strip()
    return f"HDU #{index}" + (f" ({name})" if name else "")


def check_whole(hdul: fits.HDUList) -> None:
    """Raise UnreadableFileError("truncated FITS file: ...") when ``hdul`` stops short.

    Every HDU is read (``len`` loads the lazy ones). Three cuts are seen: the last HDU's header
    stopping inside its last 2880-byte block (astropy accepts that and pads it), its data
    ending past the end of the file, and bytes left after the last complete HDU that begin a
    new extension header (``XTENSION``) which astropy could not finish. Not seen: a cut exactly
    at an HDU boundary (a valid shorter file) or inside a data section's final padding (which
    writers sometimes omit). Works on plain and compressed files (the decompressed stream).
    """
    with _quiet():
        _check_whole(hdul)


def _check_whole(hdul: fits.HDUList) -> None:
    try:
        count = len(hdul)
    except Exception as exc:  # noqa: BLE001 - astropy raises many types on corrupt extensions
        raise UnreadableFileError(f"unreadable extension ({type(exc).__name__}: {exc})") from exc
    fileobj = hdul._file  # private but stable: the HDUs' own offsets refer to it
    if fileobj is None or count == 0:
        return
    last = hdul[count - 1]
    end = last._data_offset + last._data_size
    try:
        data_cut = last._data_size > 0 and _ends_before(fileobj, end)
        fileobj.seek(end + (-end % BLOCK))
        following = fileobj.read(len(_XTENSION))
        size = _stream_size(fileobj)
    except (OSError, EOFError, ValueError) as exc:
        raise UnreadableFileError(f"corrupt FITS file ({type(exc).__name__}: {exc})") from exc
    header_length = last._data_offset - last._header_offset
    if header_length % BLOCK:
        # astropy accepts an END card whose block is cut short (and pads it when writing)
        raise UnreadableFileError(
            f"truncated FITS file: the header of {_label(count - 1, last)} stops after "
            f"{header_length} bytes, inside its last 2880-byte block"
        )
    if data_cut:
        raise UnreadableFileError(
            f"truncated FITS file: {_label(count - 1, last)} needs {end} bytes, the file has {size}"
        )
    if following == _XTENSION:
        raise UnreadableFileError(
            f"truncated FITS file: the header of HDU #{count} (after {_label(count - 1, last)}) "
            f"is cut off at byte {size}, with no END card"
        )


def _ends_before(fileobj: object, offset: int) -> bool:
    """True when the (decompressed) stream has no byte at ``offset - 1``."""
    fileobj.seek(offset - 1)  # type: ignore[attr-defined]
    return len(fileobj.read(1)) != 1  # type: ignore[attr-defined]


def _stream_size(fileobj: object) -> int:
    """Length of the (decompressed) stream behind astropy's file object."""
    fileobj.seek(0, 2)  # type: ignore[attr-defined]
    return int(fileobj.tell())  # type: ignore[attr-defined]


@contextmanager
def open_whole(path: str | Path) -> Iterator[fits.HDUList]:
    """Open ``path`` with every HDU read and checked complete (:func:`check_whole`); astropy's
    warnings about odd or cut files are silenced since the reason is raised instead."""
    with _quiet():
        hdul = open_fits(path, lazy=True)
    try:
        check_whole(hdul)
        yield hdul
    finally:
        hdul.close()
