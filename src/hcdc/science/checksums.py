"""The one file checksum of hcdc: hex SHA-256 of a file's bytes.

Products, provenance records, the Level 1 calibration table and the archive's file store all
record this checksum, so they must compute it the same way; every layer imports it from here
(the lowest layer that needs it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of the bytes of the file at ``path``, streamed (bounded memory for multi-GB
    cubes)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


__all__ = ["sha256_file"]
