"""The slow part of the fault suite (``make faults``): every test here carries the ``faults``
marker, which ``make test`` leaves out (see pyproject's addopts and docs/reliability.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from archive.conftest import catalogue  # noqa: F401 - the same data-centre fixture (SQLite + PostgreSQL)

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)
