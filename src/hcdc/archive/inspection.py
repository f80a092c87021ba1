"""Inspecting one file for the catalogue: checksum, size, header cards, normalized metadata,
grouping and granules, and whether its values can be stored (:func:`inspect_file`).

Used by ingest (:mod:`hcdc.archive.ingest`, in its worker processes) and by whatever puts a new
version of a file into the store (validating an OIFITS file: :mod:`hcdc.archive.interferometry`).
It reads files and never the database, so that those modules need not import
:mod:`hcdc.archive.db` (which hands the catalogue facade out).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Table

from hcdc.archive.granules import GranuleRow
from hcdc.archive.json_text import EncodedJSON
from hcdc.archive.models import File
from hcdc.archive.storage import FileChangedError, NotRegularFileError, raw_primary_cards, read_regular_file
from hcdc.instruments import association
from hcdc.instruments.base import FileMetadata, MetadataError, UnreadableFileError
from hcdc.instruments.oifits import INSTRUMENT as OIFITS
from hcdc.instruments.oifits_granules import granule_rows
from hcdc.instruments.registry import observation_log, read_file, read_metadata

# Reason codes of quarantined files.
UNREADABLE = "unreadable"  # not FITS, truncated, corrupt compression, I/O error
INVALID_METADATA = "invalid-metadata"  # essential keyword missing/invalid, invalid OIFITS
INTERNAL_ERROR = "internal-error"  # an unexpected exception while inspecting the file
DATABASE_ERROR = "database-error"  # the database refused the file's row (e.g. a value it cannot store)
NOT_REGULAR = "not-regular-file"  # a FIFO, device or socket: never read
BAD_NAME = "invalid-name"  # the file name cannot be stored (not valid UTF-8)


# FileMetadata fields stored as their own column; any other field goes into ``extra``.
METADATA_COLUMNS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(FileMetadata) if f.name != "extra" and f.name in File.__table__.c
)


@dataclass
class Inspection:
    """What a worker learnt about one file (picklable; sent back to the writing process)."""

    path: str
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    values: dict[str, Any] | None = None  # column values of the files row (metadata, header, grouping)
    error_code: str | None = None
    error: str | None = None
    granules: list[dict[str, Any]] | None = None  # OIFITS: rows of the granules table


def _json_safe(value: Any) -> Any:
    """``value`` with only JSON types (non-finite floats -> None, dates -> ISO strings)."""
    if isinstance(value, str):
        return value.replace("\x00", "")  # PostgreSQL JSONB rejects NUL characters
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        return _json_safe(value.item())
    return str(value)


def _column_value(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def metadata_values(meta: FileMetadata) -> dict[str, Any]:
    """Column values of a files row from ``meta`` (fields without a column go into ``extra``)."""
    values: dict[str, Any] = {}
    extra = dict(meta.extra or {})
    for f in dataclasses.fields(meta):
        if f.name == "extra":
            continue
        value = getattr(meta, f.name)
        if f.name in METADATA_COLUMNS:
            values[f.name] = _column_value(value)
        elif value is not None:
            extra[f.name] = value  # a field added to FileMetadata after this schema: keep it
    values["extra"] = _json_safe(extra)
    return values


def display_path(path: str) -> str:
    """``path`` as text that can be stored and printed: bytes that are not UTF-8 in a file
    name (kept by Python as surrogates) are written as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def storable_text(text: str) -> str:
    """Text any catalogue accepts: no NUL (PostgreSQL refuses it), no lone surrogates."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _integer_range(column_type: Any) -> tuple[int, int]:
    bits = 63 if isinstance(column_type, BigInteger) else 31
    return -(2**bits), 2**bits - 1


def column_problem(values: dict[str, Any], table: Table = File.__table__) -> str | None:
    """Why one of the ``table`` row's ``values`` (default: a files row) cannot be stored as it
    is, or None.

    Checked here, before any database sees the row, so that SQLite (which stores a too-long
    string, a 3e9 NDIT in an INTEGER column, a NUL byte) and PostgreSQL (which refuses them)
    treat the file the same way: it is quarantined with this reason.
    """
    columns = table.c
    for name, value in values.items():
        if name not in columns or value is None or isinstance(value, EncodedJSON):
            continue
        column_type = columns[name].type
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and isinstance(column_type, Integer):
            low, high = _integer_range(column_type)
            if not low <= value <= high:
                return f"{name} = {value} is outside the range of its catalogue column [{low}, {high}]"
        elif isinstance(value, str):
            if "\x00" in value:
                return f"{name} = {value!r} holds a NUL character"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{name} = {value!r} is not valid text"
            length = getattr(column_type, "length", None)
            if isinstance(column_type, String) and length is not None and len(value) > length:
                return (
                    f"{name} = {value[:40]!r}... has {len(value)} characters, its catalogue column {length}"
                )
    return None


def _header_cards(path: str, content: bytes | None, header) -> list[str]:  # noqa: ANN001 - fits.Header | None
    """The primary header's card images as stored in the catalogue (see ``raw_primary_cards``).

    ``header`` is the astropy header when :func:`read_metadata` built one (None on its fast
    path, which only answers for plain files, whose raw cards are always found).
    """
    cards = raw_primary_cards(path, content)
    if cards is None:  # e.g. .fits.Z: render astropy's cards (slower, but rare)
        if header is None:
            header = read_file(path)[1]
        cards = [str(card).rstrip() for card in header.cards]
    return cards


def inspect_file(path: str | Path) -> Inspection:
    """Read one file: hash, size, header cards, metadata and grouping (runs in the workers).

    Never raises: problems become an :class:`Inspection` with ``error_code``/``error`` set,
    and the message names the file.
    """
    path = str(path)
    result = Inspection(path=path)
    shown = display_path(path)
    if shown != path:
        # the catalogue stores paths as text: such a file could never be found again by its path
        result.error_code = BAD_NAME
        result.error = f"{shown}: the file name is not valid UTF-8; rename the file to catalogue it"
        return result
    try:
        info, result.sha256, content = read_regular_file(path)
        result.size, result.mtime_ns = info.st_size, info.st_mtime_ns
    except NotRegularFileError as exc:
        result.error_code, result.error = NOT_REGULAR, f"{path}: {exc}"
        return result
    except FileChangedError as exc:
        result.error_code, result.error = UNREADABLE, f"{path}: {exc}"
        result.sha256 = None
        return result
    except OSError as exc:
        result.error_code, result.error = UNREADABLE, f"{path}: cannot read the file ({exc.strerror or exc})"
        return result
    try:
        meta, header = read_metadata(path, content)
        values = metadata_values(meta)
        problem = column_problem(values)
        if problem is not None:
            raise MetadataError(problem)
        # serialized here, in the worker: the writing process only passes the text on
        values["header"] = EncodedJSON(json.dumps(_header_cards(path, content, header)))
        values["extra"] = EncodedJSON(json.dumps(values["extra"]))
        values["is_calibration"] = bool(association.is_calibration(meta))
        values["dataset_key"] = association.dataset_key(meta)
        values["sequence_role"] = association.sequence_role(meta)
        if meta.instrument == OIFITS:
            result.granules = _granules(meta, path)
        elif level0 := observation_log(meta):  # raw interferometric files: OiDB's L0 log
            result.granules = level0
        result.values = values
    except UnreadableFileError as exc:
        result.error_code, result.error = UNREADABLE, f"{path}: {exc}"
    except MetadataError as exc:
        result.error_code, result.error = INVALID_METADATA, f"{path}: {exc}"
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the batch
        result.error_code = INTERNAL_ERROR
        result.error = f"{path}: unexpected {type(exc).__name__} while reading: {exc}"
    return result


def _granules(meta: FileMetadata, path: str) -> list[dict[str, Any]]:
    """The granule rows of an OIFITS file, with the file's validation counts on each."""
    try:
        rows = granule_rows(path)
    except (KeyError, ValueError, TypeError) as exc:
        raise MetadataError(f"invalid OIFITS: cannot extract granules ({type(exc).__name__}: {exc})") from exc
    for row in rows:
        problem = column_problem(row, GranuleRow.__table__)
        if problem is not None:
            raise MetadataError(f"granule of {row['target_name']!r} / {row['instrument_name']!r}: {problem}")
    check = meta.extra.get("oifits_check")
    counts = dict(check["counts"], profile=check["profile"]) if check else None
    return [{**row, "validation": counts} for row in rows]
