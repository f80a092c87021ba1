"""Files on disk: finding inputs, hashing, raw header cards, and the data centre's file store.

Storage layout (``--copy``): content-addressed under the storage root,
``<storage_root>/objects/<sha256[:2]>/<sha256>/<original file name>``. The same bytes always
land at the same place, so a copy interrupted by a crash is simply redone (or found complete)
on the next run, and two versions of a file never collide. Copies are atomic: the bytes go to a
temporary file in the destination folder, are flushed to disk, then renamed into place.
Files ingested without ``--copy`` are stored by reference (their absolute path).
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import socket
import stat
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

from hcdc.instruments.registry import is_fits_name
from hcdc.runtime.faults import fault_point

logger = logging.getLogger(__name__)

BLOCK = 2880  # FITS block size (bytes)
CARD = 80  # FITS card size (bytes)
# Files up to this size are read into memory once (hash + header); larger ones are streamed.
IN_MEMORY_LIMIT = 32 * 1024 * 1024
OBJECTS_DIR = "objects"


def discover(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """Expand ``paths`` into the files to ingest.

    Folders are walked recursively and only FITS-like names are taken (``.fits``,
    ``.fits.gz``, ``.fits.Z``, ``.oifits``, ``.oifits.gz``, ... see
    :data:`hcdc.instruments.registry.FITS_SUFFIXES`); files named explicitly are always taken
    (a non-FITS file given by name is quarantined, not silently skipped). Returns
    ``(files, missing)`` where ``missing`` are arguments that do not exist. Files are absolute,
    de-duplicated and sorted.
    """
    found: set[Path] = set()
    missing: list[Path] = []
    for raw in paths:
        path = Path(os.path.abspath(Path(raw).expanduser()))  # normalized, symlinks kept
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in filenames:
                    if not name.startswith(".") and is_fits_name(name):
                        found.add(Path(dirpath) / name)
        elif path.exists():
            found.add(path)
        else:
            missing.append(path)
    return sorted(found), missing


def read_and_hash(path: str | Path) -> tuple[str, bytes | None]:
    """``(sha256, content)``: the whole content for files under :data:`IN_MEMORY_LIMIT`, else None."""
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size <= IN_MEMORY_LIMIT:
            content = handle.read()
            return hashlib.sha256(content).hexdigest(), content
        return hashlib.file_digest(handle, "sha256").hexdigest(), None


class NotRegularFileError(OSError):
    """The path is a FIFO, a device, a socket...: only regular files are read."""


class FileChangedError(OSError):
    """The file's size changed while it was being read (it is still being written)."""


_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def read_regular_file(path: str | Path) -> tuple[os.stat_result, str, bytes | None]:
    """``(stat, sha256, content)`` of a regular file; ``content`` as in :func:`read_and_hash`.

    The file is opened without blocking and checked with ``fstat`` on the open descriptor
    before a byte is read, so a FIFO named ``*.fits`` (which would block a reader for ever) or
    a link to ``/dev/zero`` (endless) raise :class:`NotRegularFileError` at once, whatever the
    path pointed to when it was listed. Exactly ``st_size`` bytes are read; a file that grows
    or shrinks meanwhile raises :class:`FileChangedError` (it is still being written).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise NotRegularFileError(f"{kind}, not a regular file: not read")
        size = info.st_size
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        keep = size <= IN_MEMORY_LIMIT
        remaining = size
        while remaining > 0:
            chunk = handle.read(min(remaining, 8 * 1024 * 1024))
            if not chunk:
                break
            digest.update(chunk)
            if keep:
                chunks.append(chunk)
            remaining -= len(chunk)
        if remaining or handle.read(1):
            raise FileChangedError(
                f"its size changed while it was read ({size} bytes at the start): still being written?"
            )
    return info, digest.hexdigest(), b"".join(chunks) if keep else None


END_CARD = b"END" + b" " * (CARD - 3)


def _cards_until_end(data: bytes) -> list[str] | None:
    """The cards of the first header in ``data`` (trailing blanks removed), None if no END."""
    offset = data.find(END_CARD)
    while offset >= 0 and offset % CARD:  # "END" + blanks inside a card's text: not the end
        offset = data.find(END_CARD, offset + 1)
    if offset < 0:
        return None
    text = data[:offset].decode("ascii", errors="replace")
    cards = [text[i : i + CARD].rstrip() for i in range(0, offset, CARD)]
    return [c for c in cards if c]  # blank cards are padding, not content


def raw_primary_cards(path: str | Path, content: bytes | None = None) -> list[str] | None:
    """The primary header's card images as written in the file, blank-stripped, in order.

    Read straight from the bytes (plain or gzip files), which is ~100x cheaper than asking
    astropy to re-render every card. Returns None when the header cannot be found this way
    (e.g. Unix-compress ``.Z``); the caller then renders the astropy header instead.
    """
    name = str(path).lower()
    try:
        if name.endswith((".gz", ".gzip")):
            if content is not None:
                decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
                head = b""
                for offset in range(0, len(content), 65536):
                    head += decompressor.decompress(content[offset : offset + 65536])
                    cards = _cards_until_end(head)
                    if cards is not None:
                        return cards
                return None
            with gzip.open(path, "rb") as handle:
                return _read_cards(handle)
        if name.endswith(".z") or name.endswith(".bz2"):
            return None
        if content is not None:
            return _cards_until_end(content)  # stops at the first END card
        with open(path, "rb") as handle:
            return _read_cards(handle)
    except (OSError, EOFError, zlib.error):
        return None


def _read_cards(handle) -> list[str] | None:  # noqa: ANN001 - binary file object
    head = b""
    while True:
        block = handle.read(BLOCK * 4)
        if not block:
            return None
        head += block
        cards = _cards_until_end(head)
        if cards is not None:
            return cards


def object_relpath(sha256: str, name: str) -> Path:
    """Path of a copied file relative to the storage root (content-addressed)."""
    return Path(OBJECTS_DIR) / sha256[:2] / sha256 / name


def copy_into_store(
    source: str | Path, storage_root: str | Path, sha256: str, mode: int | None = None
) -> Path:
    """Copy ``source`` into the store atomically; returns the path relative to the root.

    ``mode``: permission bits of the stored file (the data centre's ``file_mode``; the
    temporary file is created 0600 and would otherwise keep that).

    When the destination already exists with the right size (a previous run copied it before
    being interrupted, or another path had the same bytes) it is kept: the name contains the
    content hash, and the temporary-file + rename protocol means a file at that name is
    always complete.
    """
    source = Path(source)
    relative = object_relpath(sha256, source.name)
    destination = Path(storage_root) / relative
    if destination.is_file() and destination.stat().st_size == source.stat().st_size:
        return relative
    destination.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_incoming(destination.parent)
    fd, temporary = tempfile.mkstemp(prefix=incoming_prefix(), dir=destination.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            out.write(src.read(BLOCK))
            fault_point("ingest.during_copy")  # a copy cut short: the temporary file is partial
            shutil.copyfileobj(src, out, length=1024 * 1024)
            if mode is not None:
                os.fchmod(out.fileno(), mode)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return relative


INCOMING_PREFIX = ".incoming-"


def incoming_prefix() -> str:
    """Name prefix of this process's temporary copies: ``.incoming-<host>-<pid>-``.

    The host and pid tell :func:`incoming_owner_alive` (and ``hcdc fsck``) whether the process
    that was writing a temporary file is still running or died mid-copy.
    """
    return f"{INCOMING_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def incoming_owner_alive(name: str) -> bool | None:
    """Whether the process that writes the temporary copy ``name`` is alive: True/False for a
    process of this host, None when that cannot be known (another host, an older name)."""
    host, _, pid_text = name.removeprefix(INCOMING_PREFIX).rpartition("-")[0].rpartition("-")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def remove_dead_incoming(folder: Path) -> list[Path]:
    """Remove temporary copies in ``folder`` left by processes of this host that died."""
    removed = []
    for member in folder.glob(f"{INCOMING_PREFIX}*"):
        if incoming_owner_alive(member.name) is False:
            member.unlink(missing_ok=True)
            removed.append(member)
    if removed:
        logger.warning("removed %d partial copies left by dead processes in %s", len(removed), folder)
    return removed


def resolve_stored_path(storage: str, stored_path: str, storage_root: str | Path) -> Path:
    """Absolute path of a catalogued file's bytes (see :class:`hcdc.archive.models.File`)."""
    if storage == "copy":
        return Path(storage_root) / stored_path
    return Path(stored_path)
