"""Inputs and outputs of recipes and workflows: :class:`Port` (a name, a :class:`DataKind`, a help
text) and the check of a value against its port."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hcdc.pipeline.errors import RecipeInputError
from hcdc.pipeline.provenance import FileRef


class DataKind(enum.StrEnum):
    """What flows along an input or output of a recipe.

    ``RAW_FILES``: a list of raw FITS file paths. ``LEVEL1`` / ``LEVEL2``: the path of a Level 1
    / Level 2 product (a file or a directory of files). ``PATH``: any other file (an angle
    vector, a user cube). ``ARRAY``: an in-memory numpy array. ``VALUE``: a JSON value (number,
    string, list, dict).
    """

    RAW_FILES = "raw_files"
    LEVEL1 = "level1"
    LEVEL2 = "level2"
    PATH = "path"
    ARRAY = "array"
    VALUE = "value"

    @property
    def is_file(self) -> bool:
        return self in (DataKind.RAW_FILES, DataKind.LEVEL1, DataKind.LEVEL2, DataKind.PATH)


def kinds_compatible(source: DataKind, target: DataKind) -> bool:
    """True when an output of kind ``source`` may feed an input of kind ``target``.

    Kinds must match, except that a ``PATH`` input accepts any single-path kind (a Level 1 or
    Level 2 product is also a path).
    """
    if source == target:
        return True
    return target == DataKind.PATH and source in (DataKind.LEVEL1, DataKind.LEVEL2)


@dataclass(frozen=True)
class Port:
    """A named input or output of a recipe."""

    name: str
    kind: DataKind
    description: str = ""
    optional: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "description": self.description,
            "optional": self.optional,
        }


def as_path(value: Any) -> Path:
    return value.path if isinstance(value, FileRef) else Path(value)


def plain_paths(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs as a recipe's ``process`` sees them: :class:`FileRef` replaced by its path."""
    plain: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, FileRef):
            value = value.path
        elif isinstance(value, list) and any(isinstance(v, FileRef) for v in value):
            value = [as_path(v) for v in value]
        plain[name] = value
    return plain


def check_port_value(owner: str, port: Port, value: Any, role: str = "input") -> Any:
    """Check one input/output value against its port's kind (file kinds must exist).

    ``owner`` names who declares the port in messages (``"recipe 'x'"``, ``"workflow 'y'"``).
    Returns the value normalized (paths as :class:`~pathlib.Path`, raw files as a list).
    """
    where = f"{owner} {role} {port.name!r} ({port.kind.value})"
    if port.kind == DataKind.RAW_FILES:
        if isinstance(value, str | Path | FileRef):
            value = [value]
        if not isinstance(value, Sequence) or not value:
            raise RecipeInputError(f"{where}: expected a non-empty list of files, got {value!r}")
        files = [v if isinstance(v, FileRef) else Path(v) for v in value]
        for f in files:
            if not as_path(f).is_file():
                raise RecipeInputError(f"{where}: file {as_path(f)} does not exist")
        return files
    if port.kind.is_file:
        if not isinstance(value, str | Path | FileRef):
            raise RecipeInputError(f"{where}: expected a path, got {type(value).__name__}")
        ref = value if isinstance(value, FileRef) else Path(value)
        if not as_path(ref).exists():
            raise RecipeInputError(f"{where}: {as_path(ref)} does not exist")
        return ref
    if port.kind == DataKind.ARRAY:
        import numpy as np

        if not isinstance(value, np.ndarray):
            raise RecipeInputError(f"{where}: expected a numpy array, got {type(value).__name__}")
        return value
    try:
        json.dumps(value)
    except TypeError as exc:
        raise RecipeInputError(f"{where}: value is not JSON-serialisable ({exc})") from None
    return value
