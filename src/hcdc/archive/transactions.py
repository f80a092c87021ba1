"""Write transactions (SQLite: ``BEGIN IMMEDIATE``; see :mod:`hcdc.archive.db`'s module doc).

Apart from :mod:`hcdc.archive.db` so that the modules that write (products, ...) do not depend on
the module that opens data centres, which in turn hands out the catalogue facade
(:mod:`hcdc.archive.catalogue`) built on them. ``hcdc.archive.db`` re-exports both functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

__all__ = ["WRITE_OPTION", "mark_writer", "write_transaction"]

#: execution option marking a connection whose transactions write (see write_transaction); the
#: SQLite ``begin`` hook of :func:`hcdc.archive.db.make_engine` reads it
WRITE_OPTION = "hcdc_write"


def mark_writer(conn: Connection) -> Connection:
    """Make every transaction ``conn`` begins from now on a write transaction (see
    :func:`write_transaction`); returns ``conn``. No effect on PostgreSQL."""
    return conn.execution_options(**{WRITE_OPTION: True})


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()`` for a unit of work that writes: committed on success, rolled back on
    error. On SQLite it takes the write lock first (``BEGIN IMMEDIATE``); keep the work inside
    short (no file I/O), since it blocks every other writer."""
    with engine.connect() as conn:
        mark_writer(conn)
        with conn.begin():
            yield conn
