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

__all__ = ["NotFound", "ReadOnlyCatalogue", "UserSession"]


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


class NotFound(LookupError):
    """No such object, or one the user may not see (the same answer for both)."""


class ReadOnlyCatalogue(RuntimeError):
    """A write was asked of a facade opened without the data centre's engine (reads only)."""
