"""Alembic environment: run the migrations on the connection hcdc passes in.

hcdc calls Alembic programmatically (:func:`hcdc.archive.db.upgrade_schema`) with an open
connection in ``config.attributes["connection"]``. Run from the ``alembic`` command line,
the URL comes from ``-x url=...`` or ``sqlalchemy.url``.
"""

from __future__ import annotations

import importlib
import pkgutil

from alembic import context

import hcdc.archive
from hcdc.archive.db import make_engine
from hcdc.archive.models import Base

# Every hcdc.archive module that declares tables on Base (models.py, pipeline_models.py, ...)
# is imported so that autogenerate sees the whole schema.
for _module in pkgutil.iter_modules(hcdc.archive.__path__):
    if _module.name != "migrations":
        importlib.import_module(f"hcdc.archive.{_module.name}")

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: later migrations use batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("hcdc migrations run online only (give a database URL)")
run_migrations_online()
