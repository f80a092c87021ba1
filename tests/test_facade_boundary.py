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
    ("web/demo.py", "write_transaction"): "the demo's accounts, in one transaction",
}

#: the archive's operations that the command line reaches through the facade only
#: (``view.admin()``, ``view.granules``, the user's writes): what a command module may still
#: import of each: its errors, input types and pure helpers
CLI_FACADE_ONLY: dict[str, set[str]] = {
    "hcdc.archive.accounts": {"AccountError", "ProgrammeSpec", "normalize_prog_id", "read_programme_csv"},
    "hcdc.archive.access": {
        "AccessDenied",
        "Principal",
        "RULES_VERSION",
        "load_principal",  # cli/common: the --as account, to open the facade for
        "local_operator",
        "utc_naive",
    },
    "hcdc.archive.interferometry": {"InterferometryError", "CollectionSpec"},
    "hcdc.archive.interferometry_survey": {"SurveyError"},
    "hcdc.archive.interferometry_calibrators": {"CalibratorError"},
    "hcdc.archive.obsportal": {"ObsPortalError"},
    "hcdc.archive.granules": set(),
    "hcdc.archive.obscore": set(),
}
#: what no command module may import (``acting``, a bare connection and principal, is gone from
#: cli/common: a command opens the facade, ``viewing``, or the operator's, ``operating``)
CLI_FORBIDDEN = {"hcdc.cli.common": {"acting"}}
#: (command module, what it imports) not through the facade yet, and why (may only shrink)
CLI_EXCEPTIONS: dict[tuple[str, str], str] = {}

#: the VO routers (TAP sync/async/UWS, uploads, ObsCore, SIA, DataLink) reach the catalogue through
#: its VO sub-facade (``UserCatalogue.vo``, hcdc.archive.catalogue_vo): they build no SQL and call
#: none of the archive's VO queries themselves
VO_PACKAGE = "web/vo/"
SQL_NAMES = {"select", "insert", "update", "delete", "text", "exists"}
VO_QUERY_NAMES = {
    "published_select",  # ivoa.obscore for a user
    "build_query",  # SIA
    "run_query",
    "max_field_deg",
    "execute_adql",  # TAP
    "table_sources",
    "TapJob",  # UWS jobs
    "uploads_folder",
    "RESULTS_DIR",
    "product_provenance",  # DataLink, provenance
    "file_provenance",
    "association_view",
    "GranuleRow",
}
#: (VO module, what it imports) not through the VO facade, and why (may only shrink)
VO_EXCEPTIONS: dict[tuple[str, str], str] = {
    (
        "web/vo/tap.py",
        "execute_adql",
    ): "run_adql, the tool of tests and benchmarks/vo_cone.py (routes: the facade)",
    ("web/vo/tap.py", "table_sources"): "re-exported for tools; the routes compile through the facade",
}


#: the data centre operating itself (ingest, associations, quarantine, fsck, queueing, the worker,
#: watch, reruns) and monitoring: the interfaces reach them through the operator's entry point
#: (``ProcessingCatalogue.operations``, hcdc.pipeline.operations.operator) and the monitoring
#: sub-facade (``UserCatalogue.monitoring``, hcdc.archive.catalogue_monitoring), never directly
OPERATION_NAMES: dict[str, set[str]] = {
    "hcdc.archive.ingest": {"ingest", "Ingester"},
    "hcdc.archive.fsck": {"fsck", "sweep_product_orphans"},
    "hcdc.archive.associations": {"associate_all", "associate_dataset", "association_view"},
    "hcdc.archive.queries": {"list_quarantine"},
    "hcdc.pipeline.operations.worker": {"Worker", "queue_datasets", "execute_job", "ready_datasets"},
    "hcdc.pipeline.operations.watch": {"watch", "watch_once"},
    "hcdc.pipeline.operations.calibrations": {"calibration_hook", "queue_calibrations"},
    "hcdc.pipeline.operations.reruns": {"rerun_product"},
    "hcdc.pipeline.operations.batches": {"submit_batch"},
    "hcdc.archive.telemetry": {
        "night_overview",
        "product_conditions_dir",
        "products_conditions",
        "contrast_conditions",
        "expected_contrast",
        "dataset_frame_conditions",
    },
    "hcdc.archive.monitoring_report": {"monitoring_report"},
    "hcdc.archive.programme_overview": {"programme_overview"},
    "hcdc.archive.astrometry_monitor": {
        "astrometric_series",
        "add_astrometric_calibration",
        "add_measured_calibration",
    },
}
#: (interface module, module.name) still calling an operation directly, and why (may only shrink)
OPERATION_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("web/batches.py", "hcdc.pipeline.operations.batches.submit_batch"): (
        "a user's batch from the portal (A6 asked inside submit_batch), not the operator's"
    ),
}


def _operation_offences(path: Path) -> set[str]:
    """The operations (``module.name``) a module imports or calls through an imported module."""
    found = set()
    modules: dict[str, str] = {}  # local name -> operation module imported whole
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if alias.name in OPERATION_NAMES.get(node.module, ()):
                    found.add(f"{node.module}.{alias.name}")
                if f"{node.module}.{alias.name}" in OPERATION_NAMES:
                    modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in OPERATION_NAMES:
                    modules[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            base = node.value
            dotted = []
            while isinstance(base, ast.Attribute):
                dotted.append(base.attr)
                base = base.value
            if isinstance(base, ast.Name):
                module = ".".join([modules.get(base.id, base.id), *reversed(dotted)])
                if node.attr in OPERATION_NAMES.get(module, ()):
                    found.add(f"{module}.{node.attr}")
    return found


def test_interfaces_operate_through_the_operator_facade() -> None:
    seen = set()
    unexpected = []
    for package in INTERFACES:
        for path in sorted((SRC / package).rglob("*.py")):
            name = path.relative_to(SRC).as_posix()
            for what in _operation_offences(path):
                seen.add((name, what))
                if (name, what) not in OPERATION_EXCEPTIONS:
                    unexpected.append(
                        f"{name} uses {what}: go through ProcessingCatalogue.operations "
                        "(pipeline/operations/operator.py) or UserCatalogue.monitoring"
                    )
    assert not unexpected, "\n".join(unexpected)
    stale = sorted(
        f"{m} no longer uses {w}: remove it from OPERATION_EXCEPTIONS"
        for m, w in set(OPERATION_EXCEPTIONS) - seen
    )
    assert not stale, "\n".join(stale)


def test_the_operation_check_sees_an_offence(tmp_path: Path) -> None:
    module = tmp_path / "ops.py"
    module.write_text(
        "from hcdc.archive.ingest import ingest, IngestSummary\n"
        "from hcdc.pipeline.operations import batches as ops, jobs\n"
        "import hcdc.archive.fsck\n"
        "from hcdc.archive.telemetry import NightOverview\n"
        "ops.submit_batch(1)\n"
        "ops.cancel_batch(1)\n"
        "hcdc.archive.fsck.fsck(2)\n"
        "jobs.queue_job(3)\n"
    )
    assert _operation_offences(module) == {
        "hcdc.archive.ingest.ingest",
        "hcdc.pipeline.operations.batches.submit_batch",
        "hcdc.archive.fsck.fsck",
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


def _cli_offences(path: Path) -> set[str]:
    """What a command module imports of the archive's operations beyond their errors and
    types (``module.name``; ``module`` for the whole module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module in CLI_FACADE_ONLY:
            found |= {f"{node.module}.{a.name}" for a in node.names} - {
                f"{node.module}.{name}" for name in CLI_FACADE_ONLY[node.module]
            }
        elif isinstance(node, ast.ImportFrom) and node.module in CLI_FORBIDDEN:
            found |= {f"{node.module}.{a.name}" for a in node.names if a.name in CLI_FORBIDDEN[node.module]}
        elif isinstance(node, ast.ImportFrom) and node.module == "hcdc.archive":
            found |= {f"{node.module}.{a.name}" for a in node.names} & set(CLI_FACADE_ONLY)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in CLI_FACADE_ONLY}
    return found


def test_commands_use_the_facade_for_the_archive_operations() -> None:
    seen = set()
    unexpected = []
    for path in sorted((SRC / "cli").rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        if name == "cli/common.py":  # opens the facade
            continue
        for what in _cli_offences(path):
            seen.add((name, what))
            if (name, what) not in CLI_EXCEPTIONS:
                unexpected.append(f"{name} imports {what}: go through the catalogue facade (viewing)")
    assert not unexpected, "\n".join(sorted(unexpected))
    stale = sorted(
        f"{m} no longer imports {w}: remove it from CLI_EXCEPTIONS" for m, w in set(CLI_EXCEPTIONS) - seen
    )
    assert not stale, "\n".join(stale)


def test_the_command_check_sees_an_offence(tmp_path: Path) -> None:
    module = tmp_path / "oi.py"
    module.write_text(
        "from hcdc.cli.common import acting, fail\n"
        "from hcdc.archive.access import AccessContext, AccessDenied\n"
        "from hcdc.archive.interferometry import InterferometryError, publish_file\n"
        "from hcdc.archive import accounts, queries\n"
        "import hcdc.archive.obscore\n"
    )
    assert _cli_offences(module) == {
        "hcdc.cli.common.acting",
        "hcdc.archive.access.AccessContext",
        "hcdc.archive.interferometry.publish_file",
        "hcdc.archive.accounts",
        "hcdc.archive.obscore",
    }


def _vo_offences(path: Path) -> set[str]:
    """SQL constructs and the archive's VO queries a VO router imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if node.module.startswith("sqlalchemy"):
                found |= names & SQL_NAMES
            elif node.module.startswith("hcdc.archive"):
                found |= names & VO_QUERY_NAMES
    return found


def test_vo_routers_use_the_vo_facade() -> None:
    seen = set()
    unexpected = []
    for path in sorted((SRC / VO_PACKAGE).rglob("*.py")):
        name = path.relative_to(SRC).as_posix()
        for what in _vo_offences(path):
            seen.add((name, what))
            if (name, what) not in VO_EXCEPTIONS:
                unexpected.append(
                    f"{name} imports {what}: go through UserCatalogue.vo (archive/catalogue_vo.py)"
                )
    assert not unexpected, "\n".join(unexpected)
    stale = sorted(
        f"{m} no longer imports {w}: remove it from VO_EXCEPTIONS" for m, w in set(VO_EXCEPTIONS) - seen
    )
    assert not stale, "\n".join(stale)


def test_the_vo_check_sees_an_offence(tmp_path: Path) -> None:
    module = tmp_path / "tap.py"
    module.write_text(
        "from sqlalchemy import select, func\n"
        "from hcdc.archive.obscore import published_select, OBSCORE_COLUMNS\n"
        "from hcdc.archive.tap_jobs import TapJob\n"
    )
    assert _vo_offences(module) == {"select", "published_select", "TapJob"}


def test_the_boundary_check_sees_an_offence(tmp_path: Path) -> None:
    module = tmp_path / "page.py"
    module.write_text(
        "from hcdc.archive.db import Catalogue, write_transaction\n"
        "from hcdc.archive.models import File, utcnow\n"
        "from hcdc.archive.models import utcnow as now\n"
        "import hcdc.archive.tdb_models\n"
    )
    assert _offences(module) == {"write_transaction", "hcdc.archive.models", "hcdc.archive.tdb_models"}
