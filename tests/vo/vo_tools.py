"""Validators for the VO tests: STILTS votlint and xsdvalidate (Debian's stilts, installed by
.ci/setup-vo). Without stilts the calling test skips with the reason, and fails under CI=true."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

UNDER_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_stilts() -> str:
    path = shutil.which("stilts")
    if path is None:
        reason = "STILTS is absent: run .ci/setup-vo as root (apt-get install stilts)"
        if UNDER_CI:
            pytest.fail(reason + " (required under CI)")
        pytest.skip(reason)
    return path


def _run(args: list[str], document: bytes, suffix: str) -> str:
    stilts = require_stilts()
    with tempfile.NamedTemporaryFile(suffix=suffix, delete=False) as handle:
        handle.write(document)
        name = handle.name
    try:
        command = [stilts, *(arg.replace("{}", name) for arg in args)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    finally:
        Path(name).unlink(missing_ok=True)
    return (done.stdout + done.stderr).strip()


def votlint(document: bytes) -> None:
    """Fail unless ``stilts votlint`` has nothing to say about the VOTable ``document``."""
    report = _run(["votlint", "validate=true", "votable={}"], document, ".vot")
    lines = [line for line in report.splitlines() if line.strip()]
    assert not lines, "votlint:\n" + report


def xsdvalidate(document: bytes, schemas: dict[str, Path]) -> None:
    """Fail unless ``stilts xsdvalidate`` validates ``document`` against the given schemas
    (namespace -> local XSD file)."""
    locs = " ".join(f"{ns}={path}" for ns, path in schemas.items())
    report = _run(["xsdvalidate", f"schemaloc={locs}", "doc={}"], document, ".xml")
    assert "error" not in report.lower() and "fail" not in report.lower(), "xsdvalidate:\n" + report
