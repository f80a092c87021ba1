"""RDI reference libraries as one user sees them (:attr:`hcdc.archive.catalogue.UserCatalogue.rdi`):
build, list, show, and the library file for a reduction; every decision is rule R18 of
:mod:`hcdc.archive.access` (:mod:`hcdc.archive.rdi_library`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from hcdc.archive import rdi_library as lib
from hcdc.archive.catalogue_errors import UserSession

__all__ = ["RdiCatalogue"]


class _Session(UserSession, Protocol):
    """What this sub-facade uses of :class:`~hcdc.archive.catalogue.UserCatalogue`."""

    storage_root: Path

    def write_engine(self) -> Engine: ...


class RdiCatalogue:
    """Sub-facade of :class:`~hcdc.archive.catalogue.UserCatalogue` for RDI libraries."""

    def __init__(self, catalogue: _Session) -> None:
        self.catalogue = catalogue

    def _ctx(self) -> tuple[Any, Any, Any]:
        c = self.catalogue
        return c.conn, c.user, c.access.now

    def build(
        self, science_product_id: int, *, name: str | None = None, settings: lib.LibrarySettings | None = None
    ) -> dict[str, Any]:
        """Build a library for a Level 1 product the user may see, from the Level 1 products the
        user may see (R18); stored in one write transaction."""
        conn, user, now = self._ctx()
        return lib.build_library(
            conn,
            self.catalogue.write_engine(),
            user,
            self.catalogue.storage_root,
            science_product_id,
            name=name,
            settings=settings,
            now=now,
        )

    def list(self, science_product_id: int | None = None) -> list[dict[str, Any]]:
        conn, user, now = self._ctx()
        return lib.list_libraries(conn, user, science_product_id=science_product_id, now=now)

    def show(self, ref: int | str, *, frames: bool = True) -> dict[str, Any]:
        conn, user, now = self._ctx()
        return lib.library_detail(conn, user, ref, self.catalogue.storage_root, now=now, frames=frames)

    def file(self, ref: int | str) -> tuple[Path, dict[str, Any]]:
        """The library FITS (checked against its sha256) and its summary."""
        conn, user, now = self._ctx()
        return lib.library_file(conn, user, ref, self.catalogue.storage_root, now=now)

    def science_folder(self, ref: int | str) -> Path:
        """The Level 1 folder of the science product of a library the user may see."""
        conn, user, now = self._ctx()
        summary = lib.library_detail(conn, user, ref, now=now, frames=False)
        if summary["science_product_id"] is None:
            raise lib.NotFound(f"RDI library {ref}: its science product no longer exists")
        return lib.level1_folder(conn, summary["science_product_id"], self.catalogue.storage_root)
