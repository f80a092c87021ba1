"""Settings of one hcdc data centre.

A data centre is a directory holding ``hcdc.toml``, the file store (``storage/``) and, by
default, the SQLite catalogue (``catalog.sqlite``). Every value can be overridden from the
environment (``HCDC_DATABASE_URL``, ``HCDC_STORAGE_ROOT``, ...), which wins over the file.
The directory itself is found from ``--root``/``HCDC_ROOT`` or the current directory.

Secrets never need to be in ``hcdc.toml``: the database password is read from
``$HCDC_DATABASE_PASSWORD`` or from the file named by ``database_password_file`` (relative to
the data centre; it must not be readable by group or others). ``hcdc init --database URL``
with a password in the URL writes it to ``hcdc.secret`` (mode 600) and keeps the URL in
``hcdc.toml`` without it.
"""

from __future__ import annotations

import json
import os
import stat
import tomllib
import warnings
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

CONFIG_FILENAME = "hcdc.toml"
DEFAULT_SQLITE_NAME = "catalog.sqlite"
#: Where ``hcdc init`` puts a database password given in the URL (mode 600).
SECRET_FILENAME = "hcdc.secret"
PASSWORD_ENV = "HCDC_DATABASE_PASSWORD"


class ConfigError(ValueError):
    """``hcdc.toml`` (or a file it names) cannot be used; the message names the file and why."""


class Settings(BaseSettings):
    """Configuration of one data centre (database, storage, execution)."""

    model_config = SettingsConfigDict(env_prefix="HCDC_", extra="ignore")

    root: Path = Field(default=Path("."), description="data-centre directory")
    id: str = Field(default="", description="identifier of the data centre (its storage root carries it)")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite inside root")
    database_password_file: Path | None = Field(
        default=None, description="file holding the database password (mode 600), relative to root"
    )
    storage_root: Path | None = Field(default=None, description="file store; default <root>/storage")
    file_mode: str = Field(
        default="", description="octal permissions of stored files (e.g. '0640'); default: 0666 & ~umask"
    )
    workers: int = Field(default=0, description="processes for parallel work; 0 means one per core")
    # access rules (hcdc.archive.access): see docs/access.md
    access_product_embargo_months: int = Field(
        default=12, ge=0, description="reduced products become public this long after their raw data"
    )
    access_max_delay_months: int = Field(
        default=24, ge=0, description="a PI may delay a product's release at most this long"
    )
    access_token_days: int = Field(default=90, ge=1, description="lifetime of a new personal API token")
    quota_max_jobs: int = Field(default=2, ge=0, description="default concurrent jobs of an external user")
    vo_authority: str = Field(
        default="", description="IVOA authority of publisher DIDs (ivo://AUTHORITY/...); default hcdc-<id>"
    )
    level3_references: Path | None = Field(
        default=None,
        description="folder of the colour-magnitude diagrams' reference tables (UltracoolSheet, species), "
        "e.g. shared/data/level3/cmd; none: the portal's CMDs show the detections only",
    )
    quota_window_days: int = Field(
        default=0, ge=0, description="default processing window of a new external user; 0: unlimited"
    )

    @property
    def resolved_database_url(self) -> str:
        """The URL to connect with: the password, when kept apart, is put back in here."""
        if not self.database_url:
            return f"sqlite:///{(self.root / DEFAULT_SQLITE_NAME).resolve()}"
        password = self.database_password()
        if password is None:
            return self.database_url
        from sqlalchemy.engine import make_url  # light; keeps config importable without a database

        url = make_url(self.database_url)
        if url.password:
            return self.database_url
        return url.set(password=password).render_as_string(hide_password=False)

    def database_password(self) -> str | None:
        """The password from ``$HCDC_DATABASE_PASSWORD`` or ``database_password_file``, if any.

        Raises :class:`ConfigError` when the password file is missing or readable by others.
        """
        if os.environ.get(PASSWORD_ENV):
            return os.environ[PASSWORD_ENV]
        if self.database_password_file is None:
            return None
        path = self.database_password_file
        path = path if path.is_absolute() else self.root / path
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            reason = exc.strerror or exc
            raise ConfigError(f"{path}: cannot read the database password file ({reason})") from exc
        if stat.S_IMODE(mode) & 0o077:
            raise ConfigError(
                f"{path}: the database password file is readable by other users "
                f"(mode {stat.S_IMODE(mode):04o}); run 'chmod 600 {path}'"
            )
        return text.strip("\r\n")

    @property
    def resolved_storage_root(self) -> Path:
        return (self.storage_root or self.root / "storage").resolve()

    @property
    def resolved_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)

    @property
    def resolved_file_mode(self) -> int:
        """Permission bits of files put into the store: ``file_mode``, else what an ordinary
        file gets (``0666 & ~umask``: group-readable under the usual umask 022 or 002), the same
        as the products written by the pipeline."""
        if self.file_mode:
            try:
                return int(self.file_mode, 8) & 0o777
            except ValueError as exc:
                raise ConfigError(f"file_mode {self.file_mode!r} is not an octal mode like '0640'") from exc
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def read_config_file(root: Path) -> dict:
    """The ``[hcdc]`` table of ``<root>/hcdc.toml`` ({} when there is no such file).

    Raises :class:`ConfigError` naming the file when it cannot be read or parsed: a broken
    configuration is an error, never silently replaced by defaults.
    """
    config_file = root / CONFIG_FILENAME
    if not config_file.exists():
        return {}
    try:
        with config_file.open("rb") as handle:
            table = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_file}: cannot read the configuration ({exc}); fix or restore it") from exc
    values = table.get("hcdc", {})
    if not isinstance(values, dict):
        raise ConfigError(f"{config_file}: [hcdc] must be a table")
    return values


def _check_clear_password(root: Path, values: dict) -> None:
    """Warn when ``hcdc.toml`` holds a database password and others can read it."""
    url = values.get("database_url")
    if not isinstance(url, str) or "@" not in url:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        has_password = bool(make_url(url).password)
    except ArgumentError:
        return
    config_file = root / CONFIG_FILENAME
    if has_password and stat.S_IMODE(config_file.stat().st_mode) & 0o077:
        warnings.warn(
            f"{config_file} holds the database password in clear and is readable by other users: "
            f"move it to ${PASSWORD_ENV} or a mode-600 file named by database_password_file "
            "(see docs/reliability.md)",
            UserWarning,
            stacklevel=3,
        )


def load_settings(root: str | Path | None = None) -> Settings:
    """Read ``<root>/hcdc.toml`` (if present) under environment overrides.

    ``root`` defaults to ``$HCDC_ROOT`` or the current directory. Raises :class:`ConfigError`
    when the file is broken.
    """
    root_path = Path(root if root is not None else os.environ.get("HCDC_ROOT", ".")).resolve()
    file_values = read_config_file(root_path)
    _check_clear_password(root_path, file_values)
    # environment wins over the file: only pass file values that the environment does not set
    overrides = {k: v for k, v in file_values.items() if f"HCDC_{k.upper()}" not in os.environ}
    overrides["root"] = root_path
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"{root_path / CONFIG_FILENAME}: invalid setting ({exc})") from exc


def without_password(url):  # noqa: ANN001, ANN201 - sqlalchemy URL in and out (lazy import)
    """``url`` (a SQLAlchemy URL) without its password (``URL.set(password=None)`` keeps it)."""
    from sqlalchemy.engine import URL

    return URL.create(
        drivername=url.drivername,
        username=url.username,
        password=None,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )


def _toml_string(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML escapes)."""
    return json.dumps(value, ensure_ascii=False)


def write_settings(settings: Settings) -> Path:
    """Write the persistent part of ``settings`` to a new ``<root>/hcdc.toml``.

    A password in ``database_url`` is not written there: it goes to ``hcdc.secret`` (mode
    600), named by ``database_password_file``. Refuses to replace an existing ``hcdc.toml``
    (:class:`ConfigError`): the configuration of an existing data centre is only changed by
    hand.
    """
    path = settings.root / CONFIG_FILENAME
    lines = ["[hcdc]"]
    if settings.id:
        lines.append(f"id = {_toml_string(settings.id)}")
    if settings.database_url:
        from sqlalchemy.engine import make_url

        url = make_url(settings.database_url)
        if url.password:
            secret = settings.root / SECRET_FILENAME
            fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(str(url.password) + "\n")
            lines.append(f"database_password_file = {_toml_string(SECRET_FILENAME)}")
            url = without_password(url)
        lines.append(f"database_url = {_toml_string(url.render_as_string(hide_password=False))}")
    elif settings.database_password_file is not None:
        lines.append(f"database_password_file = {_toml_string(str(settings.database_password_file))}")
    if settings.storage_root is not None:
        lines.append(f"storage_root = {_toml_string(str(settings.storage_root))}")
    if settings.file_mode:
        lines.append(f"file_mode = {_toml_string(settings.file_mode)}")
    if settings.workers:
        lines.append(f"workers = {settings.workers}")
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write("\n".join(lines) + "\n")
    except FileExistsError as exc:
        raise ConfigError(f"{path} exists: the configuration of a data centre is never overwritten") from exc
    return path


def add_setting(root: Path, key: str, value: str) -> None:
    """Add ``key = "value"`` to the ``[hcdc]`` table of an existing ``hcdc.toml``, keeping
    every other line (and comment) as the operator wrote it; the result is re-read to check."""
    path = root / CONFIG_FILENAME
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    try:
        at = next(i for i, line in enumerate(lines) if line.strip() == "[hcdc]")
        lines.insert(at + 1, f"{key} = {_toml_string(value)}")
    except StopIteration:
        lines = ["[hcdc]", f"{key} = {_toml_string(value)}", *lines]
    new_text = "\n".join(lines) + "\n"
    if tomllib.loads(new_text).get("hcdc", {}).get(key) != value:
        raise ConfigError(f"{path}: cannot add {key} to the [hcdc] table; add {key} = {value!r} by hand")
    temporary = path.with_name(f".{CONFIG_FILENAME}.tmp")
    temporary.write_text(new_text, encoding="utf-8")
    os.chmod(temporary, stat.S_IMODE(path.stat().st_mode))
    os.replace(temporary, path)
