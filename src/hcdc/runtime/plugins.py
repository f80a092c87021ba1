"""Plugins: the one loader behind hcdc's four registries (instruments, recipes, workflows,
Level 2 algorithms).

A registry's content is the modules that register themselves when imported (an ``Instrument``
subclass with ``@register``, a recipe with ``@register_recipe``, a workflow factory with
``@register_workflow``, an algorithm with ``@register_algorithm``). Every such module, hcdc's own
included, is declared as an `entry point
<https://packaging.python.org/en/latest/specifications/entry-points/>`_ of the registry's group,
as JWST's ``stpipe`` and astropy's plugins do::

    # pyproject.toml (hcdc's own, or a plugin package's)
    [project.entry-points."hcdc.instruments"]
    toyscope = "toyscope_hcdc.instrument"       # a module (or module:attribute) to import

:func:`load_plugins` imports hcdc's own modules first (:func:`builtin_modules`), then the entry
points of every other installed distribution. hcdc's own declarations are read from the
``pyproject.toml`` of the source tree the code runs from when there is one (a checkout on
``PYTHONPATH``, an editable install), and from the installed ``hcdc`` distribution's metadata
otherwise (a wheel): a checkout must not trust the installed metadata, which may be another
checkout's or older than the code (a module it names may not exist here, or one missing). So
there is one list, ``pyproject.toml``, and no second copy in the code.

Groups: :data:`GROUPS`. A module or entry point that fails to import raises :class:`PluginError`
naming it (the original exception chained): a broken plugin is never skipped silently.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Sequence
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

#: registry -> entry-point group
GROUPS = {
    "instruments": "hcdc.instruments",
    "recipes": "hcdc.recipes",
    "workflows": "hcdc.workflows",
    "algorithms": "hcdc.algorithms",
}

_loaded: set[tuple[str, str]] = set()  # (group, module or entry point value) already imported


class PluginError(ImportError):
    """A registry module or a plugin entry point could not be imported (the message names it)."""


#: the distribution whose entry points are hcdc's own modules
DISTRIBUTION = "hcdc"


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def _is_hcdc(ep: EntryPoint) -> bool:
    dist = getattr(ep, "dist", None)
    return dist is not None and dist.name.lower() == DISTRIBUTION


def source_pyproject() -> Path | None:
    """The ``pyproject.toml`` of the source tree this code runs from (``src/hcdc/...`` beside
    it), None for an installed package."""
    candidate = Path(__file__).resolve().parents[3] / "pyproject.toml"
    if not candidate.is_file():
        return None
    try:
        project = tomllib.loads(candidate.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return candidate if project.get("name") == DISTRIBUTION else None


@cache
def builtin_modules(group: str) -> tuple[str, ...]:
    """hcdc's own modules of entry-point ``group``, as its ``pyproject.toml`` declares them:
    read from the source tree's file when the code runs from one, else from the installed
    ``hcdc`` distribution's metadata (see the module doc). Raises :class:`PluginError` when
    neither declares any (an installation without its metadata)."""
    pyproject = source_pyproject()
    if pyproject is not None:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
        modules = tuple(project.get("entry-points", {}).get(group, {}).values())
        where = str(pyproject)
    else:
        modules = tuple(ep.value for ep in entry_points(group=group) if _is_hcdc(ep))
        where = f"the installed {DISTRIBUTION} distribution's entry points"
    if not modules:
        raise PluginError(f"{group}: {where} declare none of hcdc's own modules; reinstall hcdc")
    return modules


def load_plugins(group: str, builtin: Sequence[str] | None = None) -> list[str]:
    """Import hcdc's own modules of ``group`` (``builtin``, default :func:`builtin_modules`),
    then every entry point of ``group`` that another distribution declares, not imported yet.

    Returns what was newly imported (module names and entry point values). Calling it again
    imports only entry points that appeared since (a distribution added to ``sys.path``).
    """
    new: list[str] = []
    for module in builtin_modules(group) if builtin is None else builtin:
        if (group, module) in _loaded:
            continue
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise PluginError(
                f"{group}: module {module!r} failed to import ({type(exc).__name__}: {exc})"
            ) from exc
        _loaded.add((group, module))
        new.append(module)
    for ep in sorted(entry_points(group=group), key=lambda e: (e.name, e.value)):
        # hcdc's own were the builtin modules (its installed metadata may be another checkout's)
        if (group, ep.value) in _loaded or _is_hcdc(ep):
            continue
        try:
            ep.load()
        except Exception as exc:
            raise PluginError(
                f"plugin entry point {ep.name} = {ep.value!r} (group {group!r}, {_distribution(ep)}) "
                f"failed to load ({type(exc).__name__}: {exc})"
            ) from exc
        _loaded.add((group, ep.value))
        new.append(ep.value)
    return new
