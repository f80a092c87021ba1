"""TAP_SCHEMA (TAP 1.1 §4), generated from the published tables' column definitions.

Nothing is written by hand: the rows of ``TAP_SCHEMA.schemas``, ``tables``, ``columns``, ``keys``
and ``key_columns`` come from :data:`hcdc.archive.obscore.OBSCORE_COLUMNS`, from the Target Data
Base's models (:mod:`hcdc.archive.tdb_tap`) and from the
definitions of TAP_SCHEMA's own columns below (TAP_SCHEMA describes itself). The TAP service
queries them as literal subqueries (:func:`literal_select`), so they never go out of date.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hcdc.archive.obscore import OBSCORE_COLUMNS, ColumnSpec
from hcdc.archive.tap_tables import TableSpec
from hcdc.archive.tdb_tap import TDB_SCHEMA, TDB_TABLES


def _col(
    name: str, datatype: str, description: str, *, std: bool = True, principal: bool = True
) -> ColumnSpec:
    return ColumnSpec(
        name,
        datatype,
        description,
        arraysize="*" if datatype == "char" else None,
        principal=principal,
        std=std,
    )


TAP_SCHEMA_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "TAP_SCHEMA",
        "schemas",
        "Schemas of this service",
        (
            _col("schema_name", "char", "schema name"),
            _col("utype", "char", "utype of the schema"),
            _col("description", "char", "description of the schema"),
            _col("schema_index", "int", "recommended order of the schemas"),
        ),
    ),
    TableSpec(
        "TAP_SCHEMA",
        "tables",
        "Tables of this service",
        (
            _col("schema_name", "char", "schema the table belongs to"),
            _col("table_name", "char", "table name, qualified by its schema"),
            _col("table_type", "char", "table or view"),
            _col("utype", "char", "utype of the table"),
            _col("description", "char", "description of the table"),
            _col("table_index", "int", "recommended order of the tables"),
        ),
    ),
    TableSpec(
        "TAP_SCHEMA",
        "columns",
        "Columns of the tables of this service",
        (
            _col("table_name", "char", "table the column belongs to"),
            _col("column_name", "char", "column name"),
            _col("datatype", "char", "VOTable datatype"),
            _col("arraysize", "char", "VOTable arraysize"),
            _col("xtype", "char", "DALI xtype"),
            _col('"size"', "int", "length of fixed-size arrays (TAP 1.0; deprecated; an ADQL reserved word)"),
            _col("description", "char", "description of the column"),
            _col("utype", "char", "utype of the column"),
            _col("unit", "char", "unit (VOUnit)"),
            _col("ucd", "char", "UCD"),
            _col("indexed", "int", "1 when the column is indexed"),
            _col("principal", "int", "1 when the column is of main interest"),
            _col("std", "int", "1 when the column is defined by a standard"),
            _col("column_index", "int", "recommended order of the columns"),
        ),
    ),
    TableSpec(
        "TAP_SCHEMA",
        "keys",
        "Foreign keys between the tables",
        (
            _col("key_id", "char", "key identifier"),
            _col("from_table", "char", "table with the foreign key"),
            _col("target_table", "char", "table the key refers to"),
            _col("description", "char", "description of the key"),
            _col("utype", "char", "utype of the key"),
        ),
    ),
    TableSpec(
        "TAP_SCHEMA",
        "key_columns",
        "Columns of the foreign keys",
        (
            _col("key_id", "char", "key identifier"),
            _col("from_column", "char", "column of from_table"),
            _col("target_column", "char", "column of target_table"),
        ),
    ),
)

#: TAP_SCHEMA's own foreign keys (TAP 1.1 §4): table -> (key id, target, from column, target column)
_TAP_SCHEMA_KEYS = {
    "tables": (("tables_schema", "TAP_SCHEMA.schemas", "schema_name", "schema_name"),),
    "columns": (("columns_table", "TAP_SCHEMA.tables", "table_name", "table_name"),),
    "keys": (
        ("keys_from", "TAP_SCHEMA.tables", "from_table", "table_name"),
        ("keys_target", "TAP_SCHEMA.tables", "target_table", "table_name"),
    ),
    "key_columns": (("key_columns_key", "TAP_SCHEMA.keys", "key_id", "key_id"),),
}
TAP_SCHEMA_TABLES = tuple(
    replace(t, foreign_keys=_TAP_SCHEMA_KEYS.get(t.name, ())) for t in TAP_SCHEMA_TABLES
)

OBSCORE_TABLE = TableSpec(
    "ivoa",
    "obscore",
    "ObsCore 1.1 view of the data centre's raw files, Level 1 and Level 2 products and "
    "OIFITS granules (rows the caller may see)",
    OBSCORE_COLUMNS,
    utype="ivo://ivoa.net/std/obscore#table-1.1",
)
SCHEMAS = (
    ("ivoa", "IVOA standard data models (ObsCore)", "ivo://ivoa.net/std/obscore#schema"),
    (TDB_SCHEMA, "Target Data Base: targets, observations, reductions, detections, candidates", None),
    ("TAP_SCHEMA", "Metadata of this TAP service", None),
)
PUBLISHED_TABLES: tuple[TableSpec, ...] = (OBSCORE_TABLE, *(t.spec for t in TDB_TABLES), *TAP_SCHEMA_TABLES)


def schema_rows() -> dict[str, list[tuple[Any, ...]]]:
    """The rows of the five TAP_SCHEMA tables (column order of :data:`TAP_SCHEMA_TABLES`)."""
    schemas = [(name, utype, description, i) for i, (name, description, utype) in enumerate(SCHEMAS)]
    tables, columns = [], []
    for i, table in enumerate(PUBLISHED_TABLES):
        tables.append((table.schema, table.qualified, "table", table.utype, table.description, i))
        for j, c in enumerate(table.columns):
            columns.append(
                (
                    table.qualified,
                    c.name,
                    c.datatype,
                    c.arraysize,
                    c.xtype,
                    None,
                    c.description,
                    c.utype,
                    c.unit,
                    c.ucd,
                    int(c.indexed),
                    int(c.principal),
                    int(c.std),
                    j,
                )
            )
    keys, key_columns = [], []
    for table in PUBLISHED_TABLES:
        for key_id, target, from_column, target_column in table.foreign_keys:
            keys.append((key_id, table.qualified, target, None, None))
            key_columns.append((key_id, from_column, target_column))
    return {
        "schemas": schemas,
        "tables": tables,
        "columns": columns,
        "keys": keys,
        "key_columns": key_columns,
    }


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool | int):
        return str(int(value))
    return "'" + str(value).replace("'", "''") + "'"


def literal_select(table: TableSpec, rows: Sequence[tuple[Any, ...]]) -> str:
    """SQL yielding ``rows`` with ``table``'s column names and types (SQLite and PostgreSQL)."""

    def typed(value: Any, spec: ColumnSpec) -> str:
        sqltype = "VARCHAR" if spec.datatype == "char" else "INTEGER"
        return f"CAST({_literal(value)} AS {sqltype}) AS {_quote(spec.name)}"

    if not rows:
        cells = ", ".join(typed(None, c) for c in table.columns)
        return f"SELECT {cells} WHERE 1 = 0"
    first = "SELECT " + ", ".join(typed(v, c) for v, c in zip(rows[0], table.columns, strict=True))
    rest = ["SELECT " + ", ".join(_literal(v) for v in row) for row in rows[1:]]
    return " UNION ALL ".join([first, *rest])


def _quote(name: str) -> str:
    return f'"{name.strip(chr(34))}"'


__all__ = [
    "OBSCORE_TABLE",
    "PUBLISHED_TABLES",
    "TAP_SCHEMA_TABLES",
    "TableSpec",
    "literal_select",
    "schema_rows",
]
