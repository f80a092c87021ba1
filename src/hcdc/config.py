"""Settings of one hcdc data centre.

A data centre is a directory holding ``hcdc.toml``, the file store (``storage/``) and, by
default, the SQLite catalogue (``catalog.sqlite``). Every value can be overridden from the
environment (``HCDC_DATABASE_URL``, ``HCDC_STORAGE_ROOT``, ...), which wins over the file.
The directory itself is found from ``--root``/``HCDC_ROOT`` or the current directory.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CONFIG_FILENAME = "hcdc.toml"
DEFAULT_SQLITE_NAME = "catalog.sqlite"


class Settings(BaseSettings):
    """Configuration of one data centre (database, storage, execution)."""

    model_config = SettingsConfigDict(env_prefix="HCDC_", extra="ignore")

    root: Path = Field(default=Path("."), description="data-centre directory")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite inside root")
    storage_root: Path | None = Field(default=None, description="file store; default <root>/storage")
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
    quota_window_days: int = Field(
        default=0, ge=0, description="default processing window of a new external user; 0: unlimited"
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.root / DEFAULT_SQLITE_NAME).resolve()}"

    @property
    def resolved_storage_root(self) -> Path:
        return (self.storage_root or self.root / "storage").resolve()

    @property
    def resolved_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)


def load_settings(root: str | Path | None = None) -> Settings:
    """Read ``<root>/hcdc.toml`` (if present) under environment overrides.

    ``root`` defaults to ``$HCDC_ROOT`` or the current directory.
    """
    root_path = Path(root if root is not None else os.environ.get("HCDC_ROOT", ".")).resolve()
    file_values: dict = {}
    config_file = root_path / CONFIG_FILENAME
    if config_file.exists():
        with config_file.open("rb") as handle:
            file_values = tomllib.load(handle).get("hcdc", {})
    # environment wins over the file: only pass file values that the environment does not set
    overrides = {k: v for k, v in file_values.items() if f"HCDC_{k.upper()}" not in os.environ}
    overrides["root"] = root_path
    return Settings(**overrides)


def write_settings(settings: Settings) -> Path:
    """Write the persistent part of ``settings`` to ``<root>/hcdc.toml``."""
    lines = ["[hcdc]"]
    if settings.database_url:
        lines.append(f'database_url = "{settings.database_url}"')
    if settings.storage_root is not None:
        lines.append(f'storage_root = "{settings.storage_root}"')
    if settings.workers:
        lines.append(f"workers = {settings.workers}")
    path = settings.root / CONFIG_FILENAME
    path.write_text("\n".join(lines) + "\n")
    return path
