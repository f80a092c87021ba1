"""Running one ADQL query of the TAP service for a user: the published tables as that user's
rights-filtered SQL, a read-only transaction with a statement timeout, at most MAXREC rows.

What the TAP routes (:mod:`hcdc.web.vo.tap`, :mod:`hcdc.web.vo.uws`) run through the catalogue
facade (:meth:`hcdc.archive.catalogue_vo.VoCatalogue.run_adql`): ``ivoa.obscore`` is the user's
:func:`hcdc.archive.obscore.published_select`, the Target Data Base's tables their rule R15
SELECTs, ``TAP_SCHEMA`` literal rows, and the query's uploads literal ``VALUES`` (so the query
stays read-only and every reference to a published table goes through ``archive/access.py``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from hcdc.archive.access import Policy, Principal
from hcdc.archive.adql import AdqlError, CompiledQuery, TableSource, compile_adql
from hcdc.archive.adql.geometry import register_sqlite_functions
from hcdc.archive.obscore import ColumnSpec, published_select
from hcdc.archive.tap_schema import OBSCORE_TABLE, TAP_SCHEMA_TABLES, literal_select, schema_rows
from hcdc.archive.tap_upload import UploadedTable, upload_select
from hcdc.archive.tdb_tap import TDB_TABLES

#: longest a query may run (s); declared in the capabilities as executionDuration
STATEMENT_TIMEOUT_S = 60


@dataclass
class TapRows:
    """The answer of one query: column names, their published metadata (None: a computed
    column), the rows (at most MAXREC) and whether more rows matched."""

    names: list[str]
    columns: list[ColumnSpec | None]
    rows: list[tuple[Any, ...]]
    overflow: bool


def table_sources(
    user: Principal,
    now: dt.datetime,
    dialect: str,
    *,
    authority: str,
    base_url: str,
    policy: Policy,
    uploads: Sequence[UploadedTable] = (),
) -> dict[str, TableSource]:
    """The tables ``user`` may query, as SQL for ``dialect``: ivoa.obscore and the Target Data
    Base's tables (rights-filtered), TAP_SCHEMA and the tables uploaded with this query
    (``TAP_UPLOAD.name``)."""
    from sqlalchemy.dialects import postgresql, sqlite

    compiler = postgresql.dialect() if dialect == "postgresql" else sqlite.dialect()

    def sql_of(query: Any) -> str:
        return str(query.compile(dialect=compiler, compile_kwargs={"literal_binds": True}))

    obscore = published_select(user, now, authority=authority, base_url=base_url, policy=policy)
    sources = {"ivoa.obscore": TableSource("ivoa.obscore", sql_of(obscore), OBSCORE_TABLE.columns)}
    for tdb in TDB_TABLES:  # rule R15: each the caller's rights-filtered SELECT
        sources[tdb.spec.qualified.lower()] = TableSource(
            tdb.spec.qualified, sql_of(tdb.select_for(user, now, policy)), tdb.spec.columns
        )
    rows = schema_rows()
    for table in TAP_SCHEMA_TABLES:
        sources[table.qualified.lower()] = TableSource(
            table.qualified, literal_select(table, rows[table.name]), table.columns
        )
    for upload in uploads:
        sources[upload.qualified.lower()] = TableSource(
            upload.qualified, upload_select(upload, dialect), upload.columns
        )
    return sources


def _plain(value: Any) -> Any:
    return float(value) if isinstance(value, decimal.Decimal) else value


def _prepare(conn: Connection, timeout_s: float) -> float:
    """Read-only transaction with a statement timeout; returns the deadline (monotonic)."""
    deadline = time.monotonic() + timeout_s
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET TRANSACTION READ ONLY"))
        conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout_s * 1000)}"))
    else:
        raw = conn.connection.driver_connection
        register_sqlite_functions(raw)
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    return deadline


def execute_adql(
    engine: Engine,
    query: str,
    user: Principal,
    now: dt.datetime,
    *,
    maxrec: int,
    authority: str,
    base_url: str,
    policy: Policy,
    timeout_s: float = STATEMENT_TIMEOUT_S,
    uploads: Sequence[UploadedTable] = (),
) -> TapRows:
    """Run one ADQL query for ``user`` at ``now`` on its own connection of ``engine`` (raises
    :class:`AdqlError` with a clear message, never SQL); ``uploads`` are the tables sent with it."""
    dialect = engine.dialect.name
    sources = table_sources(
        user, now, dialect, authority=authority, base_url=base_url, policy=policy, uploads=uploads
    )
    compiled: CompiledQuery = compile_adql(query, sources, dialect)
    with engine.connect() as conn:
        with conn.begin():
            _prepare(conn, timeout_s)
            try:
                result = (
                    conn.exec_driver_sql(compiled.sql)
                    if dialect != "postgresql"
                    else conn.execution_options(stream_results=True).exec_driver_sql(
                        compiled.sql.replace("%", "%%")
                    )
                )
                rows = [tuple(_plain(v) for v in row) for row in result.fetchmany(maxrec + 1)]
                result.close()
            except Exception as exc:  # the database refused or timed out: say so, never leak SQL
                raise AdqlError(_database_message(exc, timeout_s)) from None
            finally:
                if dialect == "sqlite":
                    conn.connection.driver_connection.set_progress_handler(None, 0)
    overflow = len(rows) > maxrec
    return TapRows(list(compiled.names), list(compiled.columns), rows[:maxrec], overflow)


def _database_message(exc: Exception, timeout_s: float) -> str:
    raw = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = raw[0] if raw else type(exc).__name__
    if (
        "interrupted" in first.lower()
        or "statement timeout" in first.lower()
        or "canceling statement" in first.lower()
    ):
        return f"the query ran longer than {timeout_s:g} s and was stopped: narrow it (TOP, a smaller region)"
    return f"the database could not run the query: {first}"


__all__ = ["STATEMENT_TIMEOUT_S", "TapRows", "execute_adql", "table_sources"]
