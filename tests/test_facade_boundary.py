"""The interfaces (hcdc.cli, hcdc.web) reach the archive through the catalogue facade.

They must not open write transactions themselves nor import the archive's tables (the SQLAlchemy
models): reads and writes go through :class:`hcdc.archive.catalogue.UserCatalogue` (and its
pipeline extension :class:`hcdc.pipeline.operations.catalogue.ProcessingCatalogue`), which asks
:mod:`hcdc.archive.access` for every decision. The parts not moved yet are listed below, each
with the reason; the list may only shrink: an entry that is no longer needed fails the test too,
so that it is removed with the code (docs/architecture.md, "The catalogue facade").
"""

from __future__ import annotations

import ast
from pathlib import Path

import hcdc

SRC = Path(hcdc.__file__).resolve().parent
INTERFACES = ("cli", "web")

#: the archive's table modules (SQLAlchemy models)
TABLE_MODULES = {
    "hcdc.archive.models",
    "hcdc.archive.pipeline_models",
    "hcdc.archive.access_models",
    "hcdc.archive.tdb_models",
    "hcdc.archive.interferometry_models",
    "hcdc.archive.interferometry_survey_models",
}
#: names that open write transactions outside the facade
WRITE_NAMES = {"write_transaction", "mark_writer"}
#: harmless names of the table modules: a clock, the verdicts a candidate may have
ALLOWED_NAMES = {"utcnow", "CANDIDATE_STATUSES"}

#: (interface module, what it imports) not through the facade yet, and why
EXCEPTIONS: dict[tuple[str, str], str] = {
    # justified: there is no user yet
    ("web/auth.py", "hcdc.archive.access_models"): "authentication finds the account (the principal)",
    # not yet moved (docs/architecture.md lists them)
    ("cli/vo.py", "write_transaction"): "rebuilding the ObsCore table (operator maintenance)",
    ("web/demo.py", "write_transaction"): "the demo's accounts, in one transaction",
    ("web/vo/datalink.py", "hcdc.archive.models"): "VO: DataLink",
    ("web/vo/datalink.py", "hcdc.archive.pipeline_models"): "VO: DataLink",
}


def _offences(path: Path) -> set[str]:
    """What a module imports that bypasses the facade: table modules, write-transaction names."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if node.module in TABLE_MODULES and names - ALLOWED_NAMES:
                found.add(node.module)
            found |= names & WRITE_NAMES
            if node.module == "hcdc.archive.transactions":
                found.add("write_transaction")
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in TABLE_MODULES}
    return found


def test_interfaces_use_the_catalogue_facade() -> None:
    seen = set()
    unexpected = []
    for package in INTERFACES:
        for path in sorted((SRC / package).rglob("*.py")):
            name = path.relative_to(SRC).as_posix()
            for what in _offences(path):
                seen.add((name, what))
                if (name, what) not in EXCEPTIONS:
                    unexpected.append(f"{name} imports {what}: go through the catalogue facade")
    assert not unexpected, "\n".join(unexpected)
    stale = sorted(f"{m} no longer imports {w}: remove it from EXCEPTIONS" for m, w in set(EXCEPTIONS) - seen)
    assert not stale, "\n".join(stale)


def test_the_boundary_check_sees_an_offence(tmp_path: Path) -> None:
    module = tmp_path / "page.py"
    module.write_text(
        "from hcdc.archive.db import Catalogue, write_transaction\n"
        "from hcdc.archive.models import File, utcnow\n"
        "from hcdc.archive.models import utcnow as now\n"
        "import hcdc.archive.tdb_models\n"
    )
    assert _offences(module) == {"write_transaction", "hcdc.archive.models", "hcdc.archive.tdb_models"}
