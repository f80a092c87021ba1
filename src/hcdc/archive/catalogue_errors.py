"""The errors of the catalogue facade (:mod:`hcdc.archive.catalogue`) and its sub-facades,
apart so that the sub-facades raise them without importing the facade."""

from __future__ import annotations

__all__ = ["NotFound", "ReadOnlyCatalogue"]


class NotFound(LookupError):
    """No such object, or one the user may not see (the same answer for both)."""


class ReadOnlyCatalogue(RuntimeError):
    """A write was asked of a facade opened without the data centre's engine (reads only)."""
