"""TAP 1.1 table uploads (TAP 1.1 §3.3.1, DALI ``UPLOAD``): VOTables sent with a query and
queried as ``TAP_UPLOAD.<name>``.

``UPLOAD=name,URI[;name2,URI2]``: ``param:X`` names a part of the multipart request (inline
upload, what pyvo, TOPCAT and taplint send); a URL is resolved by the web layer (only results of
this service's own jobs: the server cannot reach other hosts).

An uploaded table never touches the catalogue: it becomes a literal ``VALUES`` subquery spliced
into the compiled SQL exactly as the published tables are (:class:`hcdc.archive.adql.TableSource`),
so the query still runs in its read-only transaction, nothing is left to clean up, and the
rights on ``ivoa.obscore`` are unaffected (an upload adds the caller's own rows, nothing else).
The price is a size limit (:data:`MAX_UPLOAD_BYTES`, :data:`MAX_UPLOAD_ROWS`), declared in the
capabilities.

Columns keep their VOTable metadata (datatype, unit, UCD, utype, xtype, description), so a
``SELECT *`` over an upload returns the same FIELDs. Scalar columns of every numeric type,
booleans and strings are accepted; numeric arrays and complex numbers are refused by name.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hcdc.archive.adql import AdqlError
from hcdc.archive.obscore import ColumnSpec

UPLOAD_SCHEMA = "TAP_UPLOAD"
#: limits of one request (all its uploads together); declared in /tap/capabilities
MAX_UPLOAD_BYTES = 10_000_000
MAX_UPLOAD_ROWS = 100_000
MAX_UPLOAD_TABLES = 8
MAX_UPLOAD_COLUMNS = 200

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_INTEGER_TYPES = {"unsignedByte": "int", "short": "int", "int": "int", "long": "long"}
_SQL_TYPES = {
    # VOTable datatype -> (PostgreSQL, SQLite)
    "char": ("TEXT", "TEXT"),
    "boolean": ("BOOLEAN", "INTEGER"),
    "short": ("INTEGER", "INTEGER"),
    "int": ("INTEGER", "INTEGER"),
    "long": ("BIGINT", "INTEGER"),
    "unsignedByte": ("INTEGER", "INTEGER"),
    "float": ("DOUBLE PRECISION", "REAL"),
    "double": ("DOUBLE PRECISION", "REAL"),
}


class UploadError(AdqlError):
    """An upload that is refused (syntax of UPLOAD, unreadable VOTable, too large, ...)."""


@dataclass(frozen=True)
class UploadReference:
    """One item of the UPLOAD parameter: the table name and where its VOTable is."""

    name: str
    uri: str

    @property
    def inline_part(self) -> str | None:
        """The multipart part name of an inline upload (``param:X``), else None."""
        return self.uri[len("param:") :] if self.uri.lower().startswith("param:") else None


@dataclass(frozen=True)
class UploadedTable:
    """An uploaded table: its name (without ``TAP_UPLOAD.``), columns and rows (Python values)."""

    name: str
    columns: tuple[ColumnSpec, ...]
    rows: list[tuple[Any, ...]]

    @property
    def qualified(self) -> str:
        return f"{UPLOAD_SCHEMA}.{self.name}"


def parse_upload_parameter(values: Sequence[str]) -> list[UploadReference]:
    """The references of the UPLOAD parameter(s) (``name,URI`` items separated by ``;``)."""
    refs: list[UploadReference] = []
    for value in values:
        for item in value.split(";"):
            if not item.strip():
                continue
            name, sep, uri = (part.strip() for part in item.partition(","))
            if not sep or not name or not uri:
                raise UploadError(f"UPLOAD item {item.strip()!r}: write it as name,URI (e.g. t1,param:t1)")
            if not _IDENTIFIER.match(name):
                raise UploadError(
                    f"UPLOAD table name {name!r} is not an ADQL identifier "
                    "(a letter, then letters, digits or _)"
                )
            if any(r.name.lower() == name.lower() for r in refs):
                raise UploadError(f"UPLOAD names the table {name!r} twice")
            refs.append(UploadReference(name, uri))
    if len(refs) > MAX_UPLOAD_TABLES:
        raise UploadError(
            f"at most {MAX_UPLOAD_TABLES} tables can be uploaded with one query, not {len(refs)}"
        )
    return refs


def _column_spec(name: str, table: str, field: Any) -> ColumnSpec:
    datatype, arraysize = field.datatype, field.arraysize
    if datatype == "bit" and arraysize in (None, "1"):
        datatype = "boolean"  # a single bit is a truth value (astropy writes numpy bools so)
    if datatype in ("char", "unicodeChar"):
        datatype, arraysize = "char", "*"  # written as variable-length ASCII strings
    elif arraysize not in (None, "1"):
        raise UploadError(
            f"UPLOAD {table}: column {name!r} is an array ({datatype}[{arraysize}]); "
            "only scalar columns and strings can be uploaded"
        )
    elif datatype not in _SQL_TYPES:
        raise UploadError(
            f"UPLOAD {table}: column {name!r} has datatype {datatype!r}, which cannot be queried"
        )
    else:
        arraysize = None
    if '"' in name or not name.strip():
        raise UploadError(f"UPLOAD {table}: column name {name!r} cannot be used in ADQL")
    xtype = field.xtype if datatype == "char" and field.xtype == "timestamp" else None
    return ColumnSpec(
        name if _IDENTIFIER.match(name) else f'"{name}"',  # delimited identifier when irregular
        datatype,
        str(field.description or "") or f"uploaded column {name}",
        unit=str(field.unit) if field.unit is not None else None,
        ucd=field.ucd or None,
        utype=field.utype or None,
        arraysize=arraysize,
        xtype=xtype,
        principal=True,
        std=False,
    )


def _python(value: Any, spec: ColumnSpec, table: str) -> Any:
    """A cell as a plain Python value (None for masked, NaN and empty)."""
    if value is None or value is _MASKED:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if spec.datatype == "char":
        text = str(value)
        if "\0" in text:
            raise UploadError(f"UPLOAD {table}: column {spec.name} holds a NUL character")
        return text
    if spec.datatype == "boolean":
        return bool(value)
    if spec.datatype in _INTEGER_TYPES:
        return int(value)
    number = float(value)
    return None if math.isnan(number) else number


_MASKED = object()


def read_upload(name: str, data: bytes) -> UploadedTable:
    """The table of one uploaded VOTable (its first TABLE); UploadError naming the table and reason."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"UPLOAD {name}: {len(data)} bytes, more than the limit of {MAX_UPLOAD_BYTES}")
    if not data.strip():
        raise UploadError(f"UPLOAD {name}: the uploaded document is empty")
    from astropy.io.votable import parse

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            document = parse(io.BytesIO(data), verify="ignore")
            vot = document.get_first_table()
    except Exception as exc:  # astropy raises many kinds; the message is what the caller needs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UploadError(f"UPLOAD {name}: not a readable VOTable ({first})") from None
    fields = list(vot.fields)
    if not fields:
        raise UploadError(f"UPLOAD {name}: the table has no columns")
    if len(fields) > MAX_UPLOAD_COLUMNS:
        raise UploadError(
            f"UPLOAD {name}: {len(fields)} columns, more than the limit of {MAX_UPLOAD_COLUMNS}"
        )
    names = [str(f.name or f.ID or f"col{i + 1}") for i, f in enumerate(fields)]
    if len({n.lower() for n in names}) != len(names):
        raise UploadError(f"UPLOAD {name}: two columns have the same name")
    specs = tuple(_column_spec(n, name, f) for n, f in zip(names, fields, strict=True))
    array = vot.array
    if len(array) > MAX_UPLOAD_ROWS:
        raise UploadError(f"UPLOAD {name}: {len(array)} rows, more than the limit of {MAX_UPLOAD_ROWS}")
    mask = getattr(array, "mask", None)
    rows = []
    for i in range(len(array)):
        record = array.data[i] if mask is not None else array[i]
        flags = mask[i] if mask is not None else None
        rows.append(
            tuple(
                _python(_MASKED if flags is not None and bool(flags[j]) else record[j], spec, name)
                for j, spec in enumerate(specs)
            )
        )
    return UploadedTable(name, specs, rows)


def _literal(value: Any, dialect: str) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        if dialect == "postgresql":
            return "TRUE" if value else "FALSE"
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            if dialect == "postgresql":
                return "'Infinity'" if value > 0 else "'-Infinity'"
            return "9e999" if value > 0 else "-9e999"
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _sql_type(spec: ColumnSpec, dialect: str) -> str:
    pg, lite = _SQL_TYPES[spec.datatype]
    return pg if dialect == "postgresql" else lite


def upload_select(table: UploadedTable, dialect: str) -> str:
    """SQL yielding the uploaded rows with the upload's column names (``dialect``: postgresql or
    sqlite). Every cell is a literal; VALUES columns are ``column1 ...`` on both databases."""
    names = [f'"{c.name.strip(chr(34))}"' for c in table.columns]
    types = [_sql_type(c, dialect) for c in table.columns]
    if not table.rows:
        cells = ", ".join(f"CAST(NULL AS {t}) AS {n}" for n, t in zip(names, types, strict=True))
        return f"SELECT {cells} WHERE 1 = 0"
    first, *rest = table.rows
    # the first row typed explicitly, so PostgreSQL resolves each VALUES column to the right type
    rows = [
        "("
        + ", ".join(f"CAST({_literal(v, dialect)} AS {t})" for v, t in zip(first, types, strict=True))
        + ")"
    ]
    rows += ["(" + ", ".join(_literal(v, dialect) for v in row) + ")" for row in rest]
    columns = ", ".join(
        f"CAST(column{i + 1} AS {t}) AS {n}" for i, (n, t) in enumerate(zip(names, types, strict=True))
    )
    return f"SELECT {columns} FROM (VALUES {', '.join(rows)}) AS hcdc_upload"


__all__ = [
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_COLUMNS",
    "MAX_UPLOAD_ROWS",
    "MAX_UPLOAD_TABLES",
    "UPLOAD_SCHEMA",
    "UploadError",
    "UploadReference",
    "UploadedTable",
    "parse_upload_parameter",
    "read_upload",
    "upload_select",
]
