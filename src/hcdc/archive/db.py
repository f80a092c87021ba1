"""Database connection, schema migrations and the data-centre directory.

* :func:`make_engine` builds a SQLAlchemy engine. SQLite gets WAL journaling (readers never
  block the writer), foreign keys, a busy timeout and real transactions (pysqlite's implicit
  transaction handling is switched off so that ``BEGIN`` and ``SAVEPOINT`` behave as on
  PostgreSQL). PostgreSQL sessions run with JIT compilation off (``-c jit=off`` added to the
  URL's own ``options``, unless they set ``jit``): the access rules make the planner's cost
  estimates large, and compiling the plan took 9.8 of the 9.8 s of a PI's one-star product
  search over 100 000 files (benchmarks/RESULTS.md, "Fifth round"); without JIT it takes
  milliseconds. (The portal turned it off on its own connections before; now every engine does.)
* :func:`write_transaction` opens a transaction that writes. On SQLite it starts with
  ``BEGIN IMMEDIATE``: the write lock is taken (waiting up to the busy timeout, then retried)
  before the first read. A plain deferred ``BEGIN`` that reads and then writes fails at once
  with "database is locked" when another process committed in between (SQLite cannot upgrade
  a stale read snapshot, and its busy handler does not apply), which is how concurrent
  ``ingest`` / ``worker`` / ``watch`` used to crash each other.
* :func:`upgrade_schema` runs the Alembic migrations shipped in :mod:`hcdc.archive.migrations`
  (programmatically; ``create_all`` is never used outside tests).
* :func:`init_data_centre` / :func:`open_data_centre` create and open a data centre: a
  directory with ``hcdc.toml``, a storage root and a catalogue.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InvalidatePoolError, OperationalError, SQLAlchemyError

from hcdc.archive.access import AccessContext, Policy, Principal
from hcdc.archive.catalogue import UserCatalogue
from hcdc.archive.json_text import EncodedJSON as EncodedJSON  # re-exported
from hcdc.archive.json_text import dump_json
from hcdc.archive.marker import StorageRootError, check_storage_root, read_marker, write_marker
from hcdc.archive.transactions import WRITE_OPTION as _WRITE_OPTION
from hcdc.archive.transactions import mark_writer as mark_writer  # re-exported
from hcdc.archive.transactions import write_transaction as write_transaction  # re-exported
from hcdc.config import (
    CONFIG_FILENAME,
    ConfigError,
    Settings,
    add_setting,
    load_settings,
    without_password,
    write_settings,
)

MIGRATIONS_LOCATION = "hcdc.archive:migrations"

logger = logging.getLogger(__name__)

#: SQLite: how long one attempt waits for a lock (PRAGMA busy_timeout), in ms
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: SQLite: attempts to take the write lock of a write transaction before giving up
SQLITE_LOCK_ATTEMPTS = 4


class ArchiveError(Exception):
    """A catalogue operation cannot proceed; the message says why, for a person to read."""


class NotADataCentreError(ArchiveError):
    """The directory holds no ``hcdc.toml`` (run ``hcdc init`` first)."""


class DatabaseUnreachableError(ArchiveError):
    """The catalogue database cannot be reached or opened."""


class SchemaOutdatedError(ArchiveError):
    """The catalogue's schema is not at the revision this hcdc version expects."""


def _redact(url: str) -> str:
    """The URL with its password hidden (for error messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 - DBAPI objects
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions break SAVEPOINT).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # WAL + NORMAL: a commit is durable against process death (the case ingest must
        # survive); only an OS crash can lose the last commits, never corrupt the file.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        if not conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN")
            return
        # Each attempt waits up to the busy timeout; a writer holding the lock longer than
        # that (a very slow disk) costs a retry with a log line, not a crashed command.
        for attempt in range(1, SQLITE_LOCK_ATTEMPTS + 1):
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except OperationalError as exc:
                if not is_lock_error(exc) or attempt == SQLITE_LOCK_ATTEMPTS:
                    raise
                logger.warning(
                    "catalogue %s is locked by another writer; retrying (%d/%d)",
                    engine.url.database,
                    attempt,
                    SQLITE_LOCK_ATTEMPTS,
                )
                time.sleep(0.1 * attempt)


def is_lock_error(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" / "database is busy" errors."""
    orig = getattr(exc, "orig", exc)
    return isinstance(orig, sqlite3.OperationalError) and any(
        word in str(orig) for word in ("database is locked", "database is busy")
    )


#: the most PostgreSQL connections an engine opens (and keeps once opened: :func:`make_engine`);
#: a web worker holds one per request in flight, so ``hcdc serve --workers N`` needs up to 15 N
POOL_CONNECTIONS = 15

#: seconds a pooled PostgreSQL connection may sit idle and still be used without a ping first
PING_AFTER_IDLE_S = 10.0

#: PostgreSQL session options of hcdc's connections (see the module doc: JIT costs seconds here)
NO_JIT = "-c jit=off"


def _session_options(own: str | tuple[str, ...] | None) -> str:
    """PostgreSQL session options: the URL's own ``options``, with JIT off unless they set it."""
    own_text = " ".join(own) if isinstance(own, tuple) else (own or "")
    return own_text if "jit" in own_text else f"{own_text} {NO_JIT}".strip()


def make_engine(url: str, **kwargs) -> Engine:
    """A SQLAlchemy engine for ``url`` (SQLite configured as described in the module doc)."""
    kwargs.setdefault("json_serializer", dump_json)
    try:
        sa_url = make_url(url)
    except ArgumentError as exc:
        raise DatabaseUnreachableError(f"invalid database URL {url!r}: {exc}") from exc
    if sa_url.get_backend_name() == "postgresql":
        connect_args = kwargs.setdefault("connect_args", {})
        connect_args.setdefault("connect_timeout", 10)
        connect_args.setdefault("options", _session_options(sa_url.query.get("options")))
        # the pool keeps every connection it opens, up to the same cap as SQLAlchemy's default
        # (5 + 10 overflow): an overflow connection was closed when returned, so that a server
        # with more than 5 requests in flight per worker opened a new PostgreSQL backend (fork,
        # authentication, cold caches, no prepared statements) for one request in ~7
        if "poolclass" not in kwargs:
            kwargs.setdefault("pool_size", POOL_CONNECTIONS)
            kwargs.setdefault("max_overflow", 0)
    # PostgreSQL: a connection is pinged before use only after it sat idle (_ping_after_idle)
    ping_idle = sa_url.get_backend_name() == "postgresql" and "pool_pre_ping" not in kwargs
    try:
        engine = create_engine(sa_url, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseUnreachableError(f"cannot use database URL {_redact(url)}: {exc}") from exc
    if sa_url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    if ping_idle:
        _ping_after_idle(engine, PING_AFTER_IDLE_S)
    return engine


def _ping_after_idle(engine: Engine, idle_s: float) -> None:
    """Ping (``SELECT 1``) a pooled connection before use when it was returned more than
    ``idle_s`` seconds ago; one that fails the ping is replaced, with every connection pooled
    before it, as SQLAlchemy's ``pool_pre_ping`` does (a restarted server, a connection dropped
    while idle). ``pool_pre_ping`` pings at every checkout: a round trip per web request, ~0.3 ms
    of server CPU out of ~5 (benchmarks/RESULTS.md, "Tenth round"). A connection used in the
    last ``idle_s`` seconds is taken as alive; if the server went away meanwhile, the statement
    fails, and SQLAlchemy replaces every connection pooled before it (one request per process
    fails instead of none)."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection, record) -> None:  # noqa: ANN001 - SQLAlchemy's pool event
        record.info["hcdc_returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, proxy) -> None:  # noqa: ANN001 - pool event
        returned = record.info.get("hcdc_returned_at")  # None: a new connection, not pinged
        if returned is None or time.monotonic() - returned <= idle_s:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                raise InvalidatePoolError(f"pooled connection lost while idle: {exc}") from exc
            raise


def check_reachable(engine: Engine) -> None:
    """Raise :class:`DatabaseUnreachableError` unless a connection can be opened."""
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
        raise DatabaseUnreachableError(
            f"cannot connect to the catalogue database {engine.url.render_as_string(hide_password=True)}: "
            f"{reason}"
        ) from exc


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped inside the package."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_LOCATION)
    return config


def head_revision() -> str:
    """The newest migration revision shipped with this version of hcdc."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "hcdc ships at least one migration"
    return head


def current_revision(engine: Engine) -> str | None:
    """The catalogue's schema revision (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema with the packaged Alembic migrations (no-op when current)."""
    check_reachable(engine)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


@dataclass
class Catalogue:
    """An open data centre: its settings and its database engine."""

    settings: Settings
    engine: Engine
    #: the resolved storage root and the stored files' mode, found on first use and kept: a web
    #: request builds a facade each time, and resolving the path (system calls) and reading the
    #: umask (``os.umask`` sets it to 0 for a moment, which is not safe while other threads
    #: create files) per request cost ~2 % of a product search's CPU
    _storage: tuple[Path, int] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def storage_root(self) -> Path:
        return self.settings.resolved_storage_root if self._storage is None else self._storage[0]

    @contextmanager
    def as_user(
        self,
        principal: Principal,
        *,
        now: dt.datetime | None = None,
        facade: type[UserCatalogue] = UserCatalogue,
    ) -> Iterator[UserCatalogue]:
        """The catalogue facade (:class:`~hcdc.archive.catalogue.UserCatalogue`: registry,
        datastore, provenance, the user's writes) as ``principal`` sees it, on its own read
        connection, closed on exit. Decisions follow this data centre's policy at ``now``
        (default: the current UTC time) and are remembered for the life of the connection (each
        write decides again on its own write connection). ``facade``: the class to open, a
        subclass that adds a layer's operations (the interfaces use
        :class:`hcdc.pipeline.operations.catalogue.ProcessingCatalogue`)."""
        with self.engine.connect() as conn:
            access = AccessContext(conn, principal, now, Policy.from_settings(self.settings), memo=True)
            yield facade(conn, *self._facade_arguments(access))

    def read_connection(self) -> Connection:
        """A new connection (close it) for a unit of work that only reads on it, such as a web
        request (:class:`hcdc.web.auth.Viewer`; its writes open their own write transactions).

        On PostgreSQL it runs in autocommit: each statement is its own transaction. A read loses
        nothing by it (in READ COMMITTED, PostgreSQL's default and hcdc's, every statement of a
        transaction takes a new snapshot anyway), and it saves the ``BEGIN`` and the pool's
        ``ROLLBACK`` round trips of every request and, above all, keeps the connection's
        prepared statements: psycopg drops them all at every ``ROLLBACK`` (``DEALLOCATE ALL``),
        so with a transaction per request no statement was ever prepared and PostgreSQL parsed
        and planned each of them at every request (benchmarks/RESULTS.md, "Tenth round").
        A write on it (a token's ``last_used_at``) commits by itself. SQLite: a plain connection
        (its transactions hold the reader's snapshot, see :meth:`UserCatalogue.writing
        <hcdc.archive.catalogue.UserCatalogue.writing>`)."""
        conn = self.engine.connect()
        if self.engine.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT")
        return conn

    def for_access(self, access: AccessContext, facade: type[UserCatalogue] = UserCatalogue) -> UserCatalogue:
        """The facade on the connection and decisions a caller already holds (a web request's);
        ``facade`` as for :meth:`as_user`."""
        return facade(access.conn, *self._facade_arguments(access))

    def _facade_arguments(self, access: AccessContext) -> tuple[Path, AccessContext, Engine, int]:
        if self._storage is None:
            self._storage = (self.settings.resolved_storage_root, self.settings.resolved_file_mode)
        storage_root, file_mode = self._storage
        return storage_root, access, self.engine, file_mode

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class DataCentreConfigError(ArchiveError):
    """``hcdc.toml`` is broken, or ``init`` was asked to change an existing data centre."""


class StorageMissingError(ArchiveError):
    """The storage root is missing or belongs to another data centre (see :mod:`hcdc.archive.marker`)."""


def _settings_or_error(root: Path) -> Settings:
    """:func:`load_settings` with configuration problems as :class:`DataCentreConfigError`."""
    try:
        return load_settings(root)
    except ConfigError as exc:
        raise DataCentreConfigError(str(exc)) from exc


def _same_database(a: str, b: str) -> bool:
    """True when two URLs name the same database (the password does not matter)."""
    try:
        return without_password(make_url(a)) == without_password(make_url(b))
    except ArgumentError:
        return a == b


def _copied_files(engine: Engine) -> int:
    """Number of catalogued files whose bytes are in the storage root (0 before the schema)."""
    with engine.connect() as connection:
        if "files" not in inspect(connection).get_table_names():
            return 0
        return connection.execute(text("SELECT count(*) FROM files WHERE storage = 'copy'")).scalar_one()


def init_data_centre(
    root: str | Path,
    database_url: str | None = None,
    storage_root: str | Path | None = None,
    *,
    force: bool = False,
) -> Catalogue:
    """Create a data centre in ``root``, or bring an existing one's schema up to date.

    *New data centre* (no ``hcdc.toml``): ``root`` must be absent, empty, or ``force`` given
    (hcdc does not mix its files with a folder of someone else's). The database is checked
    before anything is written, so an unreachable URL leaves no half-made data centre; then the
    storage root with its marker, the schema, and ``hcdc.toml`` (a password in the URL goes to
    a mode-600 ``hcdc.secret``, see :mod:`hcdc.config`).

    *Existing data centre*: its configuration is kept as it is and only the schema is
    upgraded. A ``database_url`` or ``storage_root`` different from the configured one is
    refused (changing the database is a separate, explicit act: edit ``hcdc.toml``), and a
    broken ``hcdc.toml`` is an error, never overwritten. A data centre made before ids
    existed gets one (added to ``hcdc.toml``, every other line kept) and a storage marker.
    """
    root_path = Path(root).resolve()
    if (root_path / CONFIG_FILENAME).exists():
        return _upgrade_data_centre(root_path, database_url, storage_root)
    if root_path.is_dir() and any(root_path.iterdir()) and not force:
        raise DataCentreConfigError(
            f"{root_path} is not empty and is not an hcdc data centre (no {CONFIG_FILENAME}): "
            "choose an empty or new folder, or create the data centre in it with 'hcdc init --force'"
        )
    settings = Settings(
        root=root_path,
        id=uuid.uuid4().hex,
        database_url=database_url or "",
        storage_root=Path(storage_root).resolve() if storage_root else None,
    )
    if settings.resolved_storage_root.exists() and read_marker(settings.resolved_storage_root):
        raise DataCentreConfigError(
            f"{settings.resolved_storage_root} is already the storage root of data centre "
            f"{read_marker(settings.resolved_storage_root)}: choose another storage root"
        )
    if not database_url:
        root_path.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    with _disposed_on_error(engine):
        check_reachable(engine)
        root_path.mkdir(parents=True, exist_ok=True)
        write_marker(settings.resolved_storage_root, settings.id)
        upgrade_schema(engine)
        write_settings(settings)
    return Catalogue(settings=settings, engine=engine)


@contextmanager
def _disposed_on_error(engine: Engine) -> Iterator[Engine]:
    """Dispose ``engine`` when the block fails (a half-opened data centre keeps no connection);
    a :class:`ConfigError` raised inside becomes a :class:`DataCentreConfigError`."""
    try:
        yield engine
    except ConfigError as exc:
        engine.dispose()
        raise DataCentreConfigError(str(exc)) from exc
    except BaseException:
        engine.dispose()
        raise


def _upgrade_data_centre(
    root_path: Path, database_url: str | None, storage_root: str | Path | None
) -> Catalogue:
    """``init`` on an existing data centre: keep its configuration, upgrade the schema."""
    settings = _settings_or_error(root_path)
    config_file = root_path / CONFIG_FILENAME
    if database_url and not _same_database(database_url, settings.resolved_database_url):
        raise DataCentreConfigError(
            f"{root_path} is a data centre whose catalogue is "
            f"{_redact(settings.resolved_database_url)}; 'hcdc init' does not change it. To move the "
            f"data centre to another database, copy the catalogue there and edit database_url in "
            f"{config_file}"
        )
    if storage_root and Path(storage_root).resolve() != settings.resolved_storage_root:
        raise DataCentreConfigError(
            f"{root_path} keeps its files in {settings.resolved_storage_root}; 'hcdc init' does not "
            f"change it (move the folder and edit storage_root in {config_file})"
        )
    try:
        url = settings.resolved_database_url
    except ConfigError as exc:
        raise DataCentreConfigError(str(exc)) from exc
    engine = make_engine(url)
    with _disposed_on_error(engine):
        check_reachable(engine)
        if not settings.id:
            # a data centre made before ids: give it one, and mark its storage root, unless
            # the catalogue has copied files and their store is gone (that must be reported)
            if not settings.resolved_storage_root.is_dir() and _copied_files(engine):
                raise StorageMissingError(
                    f"the storage root {settings.resolved_storage_root} is missing but the catalogue "
                    f"holds copied files: restore it, or correct storage_root in {config_file}"
                )
            new_id = uuid.uuid4().hex
            write_marker(settings.resolved_storage_root, new_id)
            add_setting(root_path, "id", new_id)
            settings = _settings_or_error(root_path)
        else:
            _check_storage(settings)
        upgrade_schema(engine)
    return Catalogue(settings=settings, engine=engine)


def _check_storage(settings: Settings) -> None:
    """:func:`hcdc.archive.marker.check_storage_root` for a data centre with an id."""
    if not settings.id:
        return  # made before ids: 'hcdc init' adds one
    try:
        check_storage_root(settings.resolved_storage_root, settings.id, settings.root / CONFIG_FILENAME)
    except StorageRootError as exc:
        raise StorageMissingError(str(exc)) from exc


def open_data_centre(root: str | Path | None = None, check_schema: bool = True) -> Catalogue:
    """Open the data centre in ``root`` (default ``$HCDC_ROOT`` or the current directory).

    Raises :class:`NotADataCentreError` when there is no ``hcdc.toml``,
    :class:`DatabaseUnreachableError` when the database cannot be reached and
    :class:`SchemaOutdatedError` when the schema is not at this version's head revision,
    :class:`DataCentreConfigError` when ``hcdc.toml`` is broken and
    :class:`StorageMissingError` when the storage root is missing or another data centre's.
    """
    root_path = Path(root if root is not None else os.environ.get("HCDC_ROOT", ".")).resolve()
    settings = _settings_or_error(root_path)
    if not (settings.root / CONFIG_FILENAME).is_file():
        raise NotADataCentreError(
            f"{settings.root} is not an hcdc data centre (no {CONFIG_FILENAME}); "
            "create one with 'hcdc init DIR' or point to one with --root / HCDC_ROOT"
        )
    _check_storage(settings)
    try:
        url = settings.resolved_database_url
    except ConfigError as exc:
        raise DataCentreConfigError(str(exc)) from exc
    engine = make_engine(url)
    try:
        check_reachable(engine)
        if check_schema:
            revision = current_revision(engine)
            if revision != head_revision():
                raise SchemaOutdatedError(
                    f"the catalogue at {engine.url.render_as_string(hide_password=True)} is at schema "
                    f"revision {revision or '(none)'}, this hcdc expects {head_revision()}: "
                    f"run 'hcdc init {settings.root}' to upgrade it"
                )
    except (OperationalError, ArchiveError):
        engine.dispose()
        raise
    return Catalogue(settings=settings, engine=engine)
