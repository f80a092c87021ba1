"""Streamed downloads: single files and whole products as a zip with a sha256 manifest.

Files are read in 1 MiB chunks and never loaded whole. A product's zip is written on the fly
(``zipfile`` onto a non-seekable stream, ZIP64 allowed): the client receives the first bytes at
once whatever the product's size. ``MANIFEST.sha256`` (``sha256sum -c`` format) lists each
file's checksum as computed while it was streamed; a file whose bytes no longer match the
catalogued checksum stops the download with an error instead of delivering a corrupt product.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.responses import FileResponse

CHUNK = 1 << 20


class ChecksumMismatch(RuntimeError):
    """A stored file's bytes differ from its catalogued sha256."""


def file_response(
    path: Path, name: str, media_type: str, sha256: str | None, inline: bool = False
) -> FileResponse:
    """A streamed file with its name (attachment unless ``inline``) and its catalogued checksum
    in the ``Digest``-style header ``X-Checksum-SHA256``."""
    headers = {"X-Checksum-SHA256": sha256} if sha256 else {}
    return FileResponse(
        path,
        media_type=media_type,
        filename=name,
        headers=headers,
        content_disposition_type="inline" if inline else "attachment",
    )


class _Pipe:
    """A write-only, non-seekable stream whose written bytes are collected for a generator."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        if data:
            self.chunks.append(bytes(data))
            self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks.clear()
        return data


def zip_stream(members: list[tuple[Path, dict[str, Any]]], folder: str) -> Iterator[bytes]:
    """Bytes of a zip holding ``members`` (path, info with ``arcname`` and ``sha256``) under
    ``folder/``, then ``folder/MANIFEST.sha256``."""
    pipe = _Pipe()
    manifest = []
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for path, info in members:
            arcname = f"{folder}/{info['arcname']}"
            digest = hashlib.sha256()
            with path.open("rb") as source, archive.open(arcname, "w", force_zip64=True) as target:
                while block := source.read(CHUNK):
                    digest.update(block)
                    target.write(block)
                    yield pipe.take()
            if info.get("sha256") and digest.hexdigest() != info["sha256"]:
                raise ChecksumMismatch(f"{arcname}: stored bytes do not match the catalogued sha256")
            manifest.append(f"{digest.hexdigest()}  {info['arcname']}\n")
            yield pipe.take()
        archive.writestr(f"{folder}/MANIFEST.sha256", "".join(manifest))
    yield pipe.take()


def zip_response(members: list[tuple[Path, dict[str, Any]]], folder: str) -> StreamingResponse:
    return StreamingResponse(
        zip_stream(members, folder),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{folder}.zip"'},
    )


__all__ = ["ChecksumMismatch", "file_response", "zip_response", "zip_stream"]
