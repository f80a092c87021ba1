"""What software runs here: hcdc's version and git commit, key library versions, host.

Recorded in every provenance record (:func:`environment`) and written into product headers
(:func:`read_git_commit`); imports nothing of hcdc but its version, so every layer may use it.
"""

from __future__ import annotations

import functools
import platform
import socket
import subprocess
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _dist_version
from pathlib import Path
from typing import Any

import hcdc

#: libraries whose versions every provenance record carries
KEY_LIBRARIES = ("numpy", "scipy", "astropy", "sqlalchemy", "pydantic", "dask", "distributed")


def _package_root() -> Path:
    return Path(hcdc.__file__).resolve().parent


def _find_git_dir(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        candidate = directory / ".git"
        if candidate.is_dir():
            return candidate
        if candidate.is_file():  # a worktree: "gitdir: <path>"
            text = candidate.read_text().strip()
            if text.startswith("gitdir:"):
                return (directory / text.split(":", 1)[1].strip()).resolve()
    return None


def read_git_commit(start: Path | None = None) -> str:
    """The commit the source tree is at, read from ``.git`` (no git binary needed), or 'unknown'.

    Follows ``HEAD`` to its ref, looking in ``refs/`` then ``packed-refs`` (and in the common
    directory of a worktree).
    """
    git_dir = _find_git_dir(start or _package_root())
    if git_dir is None:
        return "unknown"
    try:
        head = (git_dir / "HEAD").read_text().strip()
    except OSError:
        return "unknown"
    if not head.startswith("ref:"):
        return head
    ref = head.split(":", 1)[1].strip()
    dirs = [git_dir]
    common = git_dir / "commondir"
    if common.is_file():
        dirs.append((git_dir / common.read_text().strip()).resolve())
    for directory in dirs:
        ref_file = directory / ref
        if ref_file.is_file():
            return ref_file.read_text().strip()
        packed = directory / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref:
                    return parts[0]
    return "unknown"  # e.g. a fresh repository with no commit yet


def _git_dirty(start: Path) -> bool | None:
    """True when tracked files differ from the commit (None when git cannot tell)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(start), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip())


def library_versions(names: Sequence[str] = KEY_LIBRARIES) -> dict[str, str]:
    """Installed versions of ``names`` ('not installed' for absent ones)."""
    versions = {}
    for name in names:
        try:
            versions[name] = _dist_version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Software and host description recorded in every record (computed once per process)."""
    root = _package_root()
    commit = read_git_commit(root)
    return {
        "software_version": hcdc.__version__,
        "git_commit": commit,
        "git_dirty": _git_dirty(root) if commit != "unknown" else None,
        "python": sys.version.split()[0],
        "libraries": library_versions(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
    }
