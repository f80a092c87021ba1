"""The errors of the catalogue facade (:mod:`hcdc.archive.catalogue`) and its sub-facades, and
what the sub-facades need of the facade (:class:`UserSession`), apart so that the sub-facades use
them without importing the facade (no import circle in :mod:`hcdc.archive`)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy import Connection, Engine

    from hcdc.archive.access import AccessContext, Principal

__all__ = ["NotFound", "ReadOnlyCatalogue", "UserSession", "VoSession"]


class UserSession(Protocol):
    """What a sub-facade uses of :class:`~hcdc.archive.catalogue.UserCatalogue`: the request's
    read connection, the access decisions for the user, the user, write transactions, and for
    writes that put files into the store, the storage root, its file mode and the engine."""

    conn: Connection
    access: AccessContext
    storage_root: Path
    file_mode: int | None

    @property
    def user(self) -> Principal: ...

    def writing(self) -> AbstractContextManager[Connection]: ...

    def write_engine(self) -> Engine: ...


class VoSession(UserSession, Protocol):
    """What the VO sub-facade (:mod:`hcdc.archive.catalogue_vo`) uses besides: the storage root
    (TAP job results, DataLink's files), the engine for a query's own read-only connection, and
    the facade's datastore reads (a product's files, by id)."""

    storage_root: Path

    def write_engine(self) -> Engine: ...

    def visible(self, kind: str, number: int) -> bool: ...

    def product_files(self, product_id: int) -> list[dict]: ...

    def product_file(self, product_id: int, file_id: int) -> tuple[Path, dict]: ...


class NotFound(LookupError):
    """No such object, or one the user may not see (the same answer for both)."""


class ReadOnlyCatalogue(RuntimeError):
    """A write was asked of a facade opened without the data centre's engine (reads only)."""
