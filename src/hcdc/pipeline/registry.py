"""The recipe registry: :func:`register_recipe`, :func:`get_recipe` (by name, newest or exact
version), :func:`list_recipes`, :func:`run_recipe`."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hcdc.pipeline.errors import UnknownRecipeError
from hcdc.pipeline.parameters import RecipeParameters
from hcdc.pipeline.recipe import Recipe, RecipeResult
from hcdc.runtime.plugins import GROUPS
from hcdc.runtime.plugins import load_plugins as _load_plugins

_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")

_RECIPES: dict[str, dict[str, type[Recipe]]] = {}

#: hcdc's recipe modules (they register themselves on import); loaded with the ``hcdc.recipes``
#: entry points on the first registry lookup (not at import time: they import this module, so
#: importing them here would make an import circle)
_RECIPE_MODULES = (
    "hcdc.pipeline.recipes.level1_irdis",
    "hcdc.pipeline.recipes.postprocess",
    "hcdc.pipeline.recipes.simulate_irdis",
    "hcdc.pipeline.recipes.simulate_ifs",
    "hcdc.pipeline.recipes.level1_ifs",
    "hcdc.pipeline.recipes.irdis_masters",
    "hcdc.pipeline.recipes.interferometry",
)
_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    load_plugins()
    _loaded = True


def load_plugins() -> list[str]:
    """Import hcdc's recipe modules and the ``hcdc.recipes`` entry points not imported yet
    (:func:`hcdc.runtime.plugins.load_plugins`); returns what was newly imported."""
    return _load_plugins(GROUPS["recipes"], _RECIPE_MODULES)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def register_recipe(cls: type[Recipe]) -> type[Recipe]:
    """Class decorator: add a recipe to the registry (checks its declaration)."""
    if not issubclass(cls, Recipe):
        raise TypeError(f"{cls!r} is not a Recipe subclass")
    if not _NAME_RE.match(cls.name or ""):
        raise ValueError(f"recipe {cls.__name__}: name {cls.name!r} must match {_NAME_RE.pattern}")
    try:
        _version_key(cls.version)
    except ValueError:
        raise ValueError(
            f"recipe {cls.name!r}: version {cls.version!r} must be dotted integers (e.g. '1.0')"
        ) from None
    if not (isinstance(cls.Parameters, type) and issubclass(cls.Parameters, RecipeParameters)):
        raise TypeError(f"recipe {cls.name!r}: Parameters must subclass RecipeParameters")
    for ports in (cls.inputs, cls.outputs):
        names = [p.name for p in ports]
        if len(names) != len(set(names)):
            raise ValueError(f"recipe {cls.name!r}: duplicate input/output names {names}")
    versions = _RECIPES.setdefault(cls.name, {})
    existing = versions.get(cls.version)
    if existing is not None and existing.__qualname__ != cls.__qualname__:
        raise ValueError(
            f"recipe {cls.name!r} version {cls.version} is already registered by {existing.__qualname__}"
        )
    versions[cls.version] = cls
    return cls


def unregister_recipe(name: str, version: str | None = None) -> None:
    """Remove a recipe (all versions when ``version`` is None); used by tests and plugins."""
    _load()
    if version is None:
        _RECIPES.pop(name, None)
    else:
        _RECIPES.get(name, {}).pop(version, None)
        if not _RECIPES.get(name, True):
            _RECIPES.pop(name, None)


def get_recipe(name: str, version: str | None = None) -> type[Recipe]:
    """The recipe class called ``name`` (its newest version unless ``version`` is given)."""
    _load()
    versions = _RECIPES.get(name)
    if not versions:
        close = difflib.get_close_matches(name, list(_RECIPES), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownRecipeError(
            f"no recipe named {name!r}{hint}; known recipes: {', '.join(sorted(_RECIPES)) or 'none'}"
        )
    if version is None:
        return versions[max(versions, key=_version_key)]
    if version not in versions:
        raise UnknownRecipeError(
            f"recipe {name!r} version {version} is not available; "
            f"available versions: {', '.join(sorted(versions, key=_version_key))}"
        )
    return versions[version]


def list_recipes() -> list[type[Recipe]]:
    """Every registered recipe (newest version of each), sorted by name."""
    _load()
    return [get_recipe(name) for name in sorted(_RECIPES)]


def run_recipe(
    name: str,
    inputs: Mapping[str, Any],
    params: RecipeParameters | Mapping[str, Any] | Sequence[str] | None = None,
    *,
    work_dir: str | Path,
    version: str | None = None,
) -> RecipeResult:
    """Find a recipe by name (and version) and run it alone into ``work_dir``."""
    return get_recipe(name, version)().run(inputs, params, work_dir=work_dir)
