"""Plugins: the one loader behind hcdc's four registries (instruments, recipes, workflows,
Level 2 algorithms).

A registry's content is the modules that register themselves when imported (an ``Instrument``
subclass with ``@register``, a recipe with ``@register_recipe``, a workflow factory with
``@register_workflow``, an algorithm with ``@register_algorithm``). :func:`load_plugins` imports
them: first the modules hcdc ships (the registry's own list), then every `entry point
<https://packaging.python.org/en/latest/specifications/entry-points/>`_ of the registry's group
declared by an installed distribution, as JWST's ``stpipe`` and astropy's plugins do::

    # pyproject.toml of a plugin package
    [project.entry-points."hcdc.instruments"]
    toyscope = "toyscope_hcdc.instrument"       # a module (or module:attribute) to import

Groups: :data:`GROUPS`. A module or entry point that fails to import raises :class:`PluginError`
naming it (the original exception chained): a broken plugin is never skipped silently.

hcdc's own modules are listed by each registry rather than declared as entry points of hcdc
itself, so that a source checkout on ``PYTHONPATH`` (no installed metadata, or stale metadata of
another checkout) still finds them; entry points are for packages outside hcdc.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points

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


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "unknown distribution"


def load_plugins(group: str, builtin: Sequence[str] = ()) -> list[str]:
    """Import the ``builtin`` modules, then every entry point of ``group`` not imported yet.

    Returns what was newly imported (module names and entry point values). Calling it again
    imports only entry points that appeared since (a distribution added to ``sys.path``).
    """
    new: list[str] = []
    for module in builtin:
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
        if (group, ep.value) in _loaded:
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
