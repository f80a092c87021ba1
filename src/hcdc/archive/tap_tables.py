"""A table published in TAP: its name, description and columns (TAP_SCHEMA and VOSI tables are
generated from these)."""

from __future__ import annotations

from dataclasses import dataclass

from hcdc.archive.obscore import ColumnSpec


@dataclass(frozen=True)
class TableSpec:
    schema: str
    name: str  # without the schema
    description: str
    columns: tuple[ColumnSpec, ...]
    utype: str | None = None
    #: (key id, target table, from column, target column)
    foreign_keys: tuple[tuple[str, str, str, str], ...] = ()

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


__all__ = ["TableSpec"]
