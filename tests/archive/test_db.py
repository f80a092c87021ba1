"""Data-centre creation, Alembic migrations and database-enforced uniqueness (SQLite + PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import importlib
import pkgutil
import warnings
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError

from hcdc.archive.db import (
    DatabaseUnreachableError,
    NotADataCentreError,
    current_revision,
    head_revision,
    init_data_centre,
    make_engine,
    open_data_centre,
    upgrade_schema,
)
from hcdc.archive.models import Base, File, QuarantinedFile
from hcdc.config import CONFIG_FILENAME, load_settings

TABLES = {"files", "quarantine", "datasets", "associations", "missing_calibrations", "alembic_version"}


def test_init_creates_data_centre_and_schema(tmp_path: Path, database_url: str) -> None:
    root = tmp_path / "centre"
    catalogue = init_data_centre(root, database_url=database_url)
    try:
        assert (root / CONFIG_FILENAME).is_file()
        assert catalogue.storage_root == (root / "storage").resolve()
        assert catalogue.storage_root.is_dir()
        assert TABLES <= set(inspect(catalogue.engine).get_table_names())  # later layers add tables
        assert current_revision(catalogue.engine) == head_revision()
        # the settings file points at the same database
        assert load_settings(root).resolved_database_url == database_url
    finally:
        catalogue.close()
    reopened = open_data_centre(root)
    assert reopened.engine.url.render_as_string(hide_password=False) == database_url
    reopened.close()


def test_default_catalogue_is_sqlite_inside_the_directory(tmp_path: Path) -> None:
    catalogue = init_data_centre(tmp_path / "dc")
    try:
        assert catalogue.engine.url.get_backend_name() == "sqlite"
        assert Path(catalogue.engine.url.database) == (tmp_path / "dc" / "catalog.sqlite").resolve()
        with catalogue.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert "database_url" not in (tmp_path / "dc" / CONFIG_FILENAME).read_text()
    finally:
        catalogue.close()


def _import_all_models() -> None:
    """Import every module of hcdc.archive, so that Base.metadata holds every table."""
    import hcdc.archive

    for module in pkgutil.iter_modules(hcdc.archive.__path__):
        if module.name != "migrations":
            importlib.import_module(f"hcdc.archive.{module.name}")


def test_models_match_migrations(catalogue) -> None:
    """The migrated schema is exactly what the models describe (no autogenerate diff)."""
    _import_all_models()
    with catalogue.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        with warnings.catch_warnings():
            # SQLite cannot reflect the expression index of quarantine (checked in the next test)
            warnings.simplefilter("ignore")
            diff = compare_metadata(context, Base.metadata)
    assert diff == []


def _sample_row(**overrides) -> dict:
    row = {
        "path": "/data/a.fits",
        "version": 1,
        "is_current": True,
        "sha256": "a" * 64,
        "size": 2880,
        "storage": "reference",
        "stored_path": "/data/a.fits",
        "ingested_at": dt.datetime(2026, 1, 1),
        "instrument": "SPHERE",
        "extra": {},
        "header": ["SIMPLE  =                    T"],
        "is_calibration": False,
    }
    row.update(overrides)
    return row


def test_upgrade_on_existing_catalogue_is_a_no_op(catalogue) -> None:
    with catalogue.engine.begin() as conn:
        conn.execute(insert(File).values(**_sample_row()))
    before = inspect(catalogue.engine).get_table_names()
    upgrade_schema(catalogue.engine)  # alembic upgrade head again
    again = init_data_centre(catalogue.settings.root, database_url=catalogue.settings.database_url or None)
    again.close()
    assert current_revision(catalogue.engine) == head_revision()
    assert inspect(catalogue.engine).get_table_names() == before
    with catalogue.engine.connect() as conn:
        assert conn.scalar(select(File.sha256)) == "a" * 64
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_database_enforces_uniqueness(catalogue) -> None:
    engine = catalogue.engine
    with engine.begin() as conn:
        conn.execute(insert(File).values(**_sample_row()))
    # the same bytes under another path
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(File).values(**_sample_row(path="/data/b.fits", stored_path="/data/b.fits")))
    # two current versions of one path
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(File).values(**_sample_row(sha256="b" * 64, version=2)))
    # the same version number twice
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(File).values(**_sample_row(sha256="b" * 64, is_current=False)))
    # a proper new version: old one no longer current
    with engine.begin() as conn:
        conn.execute(update(File).where(File.path == "/data/a.fits").values(is_current=False))
        conn.execute(insert(File).values(**_sample_row(sha256="b" * 64, version=2)))
    with engine.connect() as conn:
        rows = conn.execute(select(File.version, File.is_current).order_by(File.version)).all()
    assert [tuple(r) for r in rows] == [(1, False), (2, True)]
    # invalid storage mode and version are rejected by CHECK constraints
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(File).values(**_sample_row(path="/c", sha256="c" * 64, storage="cloud")))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert(File).values(**_sample_row(path="/d", sha256="d" * 64, version=0)))


@pytest.mark.parametrize("sha256", [None, "e" * 64])
def test_quarantine_row_unique_per_path_and_content(catalogue, sha256) -> None:
    now = dt.datetime(2026, 1, 1)
    row = {"path": "/bad.fits", "sha256": sha256, "reason_code": "unreadable", "reason": "x"}
    row |= {"first_seen": now, "last_seen": now, "attempts": 1}
    with catalogue.engine.begin() as conn:
        conn.execute(insert(QuarantinedFile).values(**row))
        conn.execute(insert(QuarantinedFile).values(**(row | {"path": "/other.fits"})))
    with pytest.raises(IntegrityError), catalogue.engine.begin() as conn:
        conn.execute(insert(QuarantinedFile).values(**row))


def test_not_a_data_centre(tmp_path: Path) -> None:
    with pytest.raises(NotADataCentreError, match="is not an hcdc data centre"):
        open_data_centre(tmp_path)


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    with pytest.raises(DatabaseUnreachableError, match="cannot connect to the catalogue database"):
        init_data_centre(tmp_path / "dc", database_url=url)
    assert not (tmp_path / "dc" / CONFIG_FILENAME).exists()  # nothing half-made
    with pytest.raises(DatabaseUnreachableError, match="invalid database URL"):
        make_engine("not a url")


def test_outdated_schema_is_refused_until_upgraded(catalogue) -> None:
    from alembic import command

    from hcdc.archive.db import SchemaOutdatedError, alembic_config

    config = alembic_config()
    with catalogue.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert current_revision(catalogue.engine) is None
    with pytest.raises(SchemaOutdatedError, match="run 'hcdc init"):
        open_data_centre(catalogue.settings.root)
    upgrade_schema(catalogue.engine)
    open_data_centre(catalogue.settings.root).close()


def test_every_file_metadata_field_is_a_column() -> None:
    """The catalogue stores each FileMetadata field in its own column (a new field needs a migration;
    until then ingest keeps it in ``extra``)."""
    import dataclasses

    from hcdc.instruments.base import FileMetadata

    fields = {f.name for f in dataclasses.fields(FileMetadata)}
    assert fields - set(File.__table__.c.keys()) == set()


def test_postgresql_sessions_run_without_jit(postgres_url: str) -> None:
    """JIT compilation is off in hcdc's PostgreSQL sessions (it cost seconds per PI search); a URL
    that sets its own session ``options`` keeps them, JIT off added."""
    engine = make_engine(postgres_url)
    own = make_engine(postgres_url + "?options=-c%20statement_timeout%3D12345")
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SHOW jit")) == "off"
        with own.connect() as conn:
            assert conn.scalar(text("SHOW statement_timeout")) == "12345ms"
            assert conn.scalar(text("SHOW jit")) == "off"
    finally:
        engine.dispose()
        own.dispose()


def test_postgresql_pool_pings_only_connections_that_sat_idle(postgres_url: str, monkeypatch) -> None:
    """A pooled PostgreSQL connection is pinged before use only after sitting idle longer than
    ``PING_AFTER_IDLE_S`` (not at every checkout: a round trip per web request); one that died
    while idle is replaced before use, as ``pool_pre_ping`` would."""
    from hcdc.archive import db

    def counting(engine):
        pings = []
        real = engine.dialect.do_ping
        monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi: pings.append(1) or real(dbapi))
        return pings

    busy = make_engine(postgres_url)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # every returned connection counts as idle
    idle = make_engine(postgres_url)
    try:
        busy_pings, idle_pings = counting(busy), counting(idle)
        for _ in range(3):
            for engine in (busy, idle):
                with engine.connect() as conn:
                    conn.scalar(text("SELECT 1"))
        assert busy_pings == [] and len(idle_pings) == 2  # a new connection is not pinged
        with idle.connect() as conn:
            dead = conn.scalar(text("SELECT pg_backend_pid()"))
        with busy.connect() as conn:
            assert conn.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": dead})
        with idle.connect() as conn:  # the ping finds it dead: a new connection, no error
            assert conn.scalar(text("SELECT pg_backend_pid()")) != dead
    finally:
        busy.dispose()
        idle.dispose()


def test_postgresql_pool_keeps_the_connections_it_opens(postgres_url: str) -> None:
    """The pool keeps up to ``POOL_CONNECTIONS`` connections once opened (SQLAlchemy's default
    closed every one beyond 5 when it was returned: a new backend per request under load)."""
    from hcdc.archive.db import POOL_CONNECTIONS

    engine = make_engine(postgres_url)
    try:
        held = [engine.connect() for _ in range(8)]
        pids = {conn.scalar(text("SELECT pg_backend_pid()")) for conn in held}
        for conn in held:
            conn.close()
        assert engine.pool.checkedin() == 8 and engine.pool.size() == POOL_CONNECTIONS
        again = [engine.connect() for _ in range(8)]
        assert {conn.scalar(text("SELECT pg_backend_pid()")) for conn in again} == pids
        for conn in again:
            conn.close()
    finally:
        engine.dispose()


def test_read_connections_keep_prepared_statements(catalogue) -> None:
    """A catalogue's read connection (a web request's) runs in autocommit on PostgreSQL, so that
    psycopg's prepared statements outlive the request (a ROLLBACK drops them all); it still reads
    and sees writes committed elsewhere. SQLite: a plain connection, in a transaction."""
    query = select(File.id).where(File.id == 1)
    for _ in range(6):  # psycopg prepares a statement at its 5th execution on a connection
        with catalogue.read_connection() as conn:
            assert conn.execute(query).first() is None
    with catalogue.read_connection() as conn:
        if catalogue.engine.dialect.name != "postgresql":
            conn.scalar(select(File.id))
            assert conn.in_transaction() and "isolation_level" not in conn.get_execution_options()
            return
        assert conn.connection.dbapi_connection.autocommit
        prepared = conn.scalars(text("SELECT statement FROM pg_prepared_statements")).all()
        assert any("FROM files" in statement for statement in prepared)
    with catalogue.engine.connect() as conn:  # a plain connection (the same one) is transactional
        assert not conn.connection.dbapi_connection.autocommit


def test_target_substring_search_can_use_the_trigram_index(catalogue) -> None:
    """On PostgreSQL, the catalogue's substring search of target names (``hcdc.archive.search``,
    bound and escaped pattern) is served by migration 0023's GIN trigram index; SQLite has none."""
    from sqlalchemy.dialects import postgresql

    from hcdc.archive.search import _contains

    names = {ix["name"] for ix in inspect(catalogue.engine).get_indexes("files")}
    if catalogue.engine.dialect.name != "postgresql":
        assert "ix_files_target_trgm" not in names
        return
    assert "ix_files_target_trgm" in names
    with catalogue.engine.begin() as conn:
        conn.execute(
            insert(File),
            [_sample_row(path=f"/d/{i}.fits", sha256=f"{i:064x}", target=f"HD {i}") for i in range(50)],
        )
        conn.execute(text("ANALYZE files"))
        # a tiny table: ask whether the index *can* serve it
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        query = select(File.id).where(_contains(File.target, "hd 1_"))
        compiled = query.compile(dialect=postgresql.dialect())
        plan = "\n".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params))
        found = conn.execute(query).scalars().all()
    assert "ix_files_target_trgm" in plan
    assert found == []  # '_' is escaped: a literal underscore, not a wildcard
