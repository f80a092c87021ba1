"""The storage root's marker: which data centre a file store belongs to.

``hcdc init`` gives each data centre an id (``id`` in ``hcdc.toml``) and writes it into
``<storage_root>/.hcdc-storage``. Every command that opens the data centre checks the marker,
so that a storage root that disappeared (an unmounted disk, a deleted folder) or was replaced
by another data centre's is reported at once, instead of listings showing paths that no
longer exist and ``ingest --copy`` silently starting a new, empty store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

MARKER_NAME = ".hcdc-storage"


class StorageRootError(OSError):
    """The storage root is missing, or it belongs to another data centre."""


def marker_path(storage_root: Path) -> Path:
    return Path(storage_root) / MARKER_NAME


def read_marker(storage_root: Path) -> str | None:
    """The data-centre id written in the storage root (None when there is no marker)."""
    try:
        text = marker_path(storage_root).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return str(json.loads(text)["data_centre_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageRootError(f"{marker_path(storage_root)}: unreadable storage marker ({exc})") from exc


def write_marker(storage_root: Path, data_centre_id: str) -> None:
    """Create the storage root (if needed) and its marker, atomically."""
    storage_root = Path(storage_root)
    storage_root.mkdir(parents=True, exist_ok=True)
    temporary = storage_root / f"{MARKER_NAME}.tmp"
    temporary.write_text(json.dumps({"data_centre_id": data_centre_id}) + "\n", encoding="utf-8")
    os.replace(temporary, marker_path(storage_root))


def check_storage_root(storage_root: Path, data_centre_id: str, config_file: Path) -> None:
    """Raise :class:`StorageRootError` unless ``storage_root`` is this data centre's store."""
    storage_root = Path(storage_root)
    if not storage_root.is_dir():
        raise StorageRootError(
            f"the storage root {storage_root} of data centre {data_centre_id} is missing: mount or "
            f"restore it, or correct storage_root in {config_file} (nothing is created in its place)"
        )
    found = read_marker(storage_root)
    if found is None:
        raise StorageRootError(
            f"{storage_root} has no {MARKER_NAME} marker: it is not the storage root of data centre "
            f"{data_centre_id} (restore the right folder, or correct storage_root in {config_file})"
        )
    if found != data_centre_id:
        raise StorageRootError(
            f"{storage_root} is the storage root of data centre {found}, not of {data_centre_id} "
            f"({config_file}): restore the right folder or correct storage_root"
        )
