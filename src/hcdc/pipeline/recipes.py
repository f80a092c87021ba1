"""Recipes: one science step with typed inputs, outputs and a validated parameter model.

A recipe (in the spirit of JWST ``stpipe`` steps and ESO pipeline recipes) wraps ONE step of the
science layer with what a data centre needs around it:

* a ``name`` and a ``version`` (bump the version whenever the outputs of the same inputs and
  parameters could change, so that provenance records stay meaningful);
* a pydantic :class:`RecipeParameters` model: typed, validated, with defaults and descriptions;
  unknown keys are rejected with a message that lists the known ones;
* declared named inputs and outputs (:class:`Port`), each of a :class:`DataKind` (raw files, a
  Level 1 product, a Level 2 product, a file path, an in-memory array, a plain value);
* :meth:`Recipe.run`, which validates everything, runs :meth:`Recipe.process` (the only method a
  recipe implements; it calls the science layer and writes its files into the context's working
  directory), and returns a :class:`RecipeResult` with the outputs, the log, the timings and the
  :class:`~hcdc.pipeline.provenance.ProvenanceRecord` of the run.

Recipes never re-implement science: ``process`` reads inputs, calls ``hcdc.science`` (or
``hcdc.pipeline.level1``), and writes outputs. Recipes register themselves with
:func:`register_recipe`; :func:`get_recipe` finds one by name (and version) and
:func:`list_recipes` lists them. The recipes shipped with hcdc are defined at the
end of this module.

Run one alone from Python::

    from hcdc.pipeline.recipes import get_recipe
    recipe = get_recipe("l2-postprocess")()
    result = recipe.run({"level1": "L1/"}, ["algorithm=pca", "ncomp=10"], work_dir="out/")
    result.outputs["product"], result.provenance.to_json()
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import difflib
import enum
import importlib
import json
import logging
import re
import threading
import time
import traceback
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hcdc.pipeline import level1 as _level1
from hcdc.pipeline import provenance as _prov
from hcdc.pipeline.provenance import FileRef

logger = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_.-]*$")


# --------------------------------------------------------------------------------------------
# errors


class RecipeError(Exception):
    """Base class of the errors of the recipe framework."""


class ParameterError(RecipeError, ValueError):
    """Parameters given to a recipe are unknown or invalid (the message says which and why)."""


class RecipeInputError(RecipeError, ValueError):
    """An input of a recipe is missing, unknown, or not of its declared kind."""


class UnknownRecipeError(RecipeError, LookupError):
    """No registered recipe has this name (or this version)."""


class RecipeFailed(RecipeError, RuntimeError):
    """A recipe raised while running; ``result`` holds the failed run (log, provenance, error)."""

    def __init__(self, message: str, result: RecipeResult) -> None:
        super().__init__(message)
        self.result = result


# --------------------------------------------------------------------------------------------
# inputs and outputs


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


def _as_path(value: Any) -> Path:
    return value.path if isinstance(value, FileRef) else Path(value)


def _plain_paths(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs as a recipe's ``process`` sees them: :class:`FileRef` replaced by its path."""
    plain: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, FileRef):
            value = value.path
        elif isinstance(value, list) and any(isinstance(v, FileRef) for v in value):
            value = [_as_path(v) for v in value]
        plain[name] = value
    return plain


# --------------------------------------------------------------------------------------------
# parameters


class RecipeParameters(BaseModel):
    """Base of every recipe's ``Parameters`` model: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def _container_origin(annotation: Any) -> type | None:
    """``list``/``tuple``/``set``/``dict`` when ``annotation`` (maybe Optional) is one of them."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _container_origin(arg)
            if found is not None:
                return found
        return None
    for container in (list, tuple, set, dict):
        if annotation is container or origin is container:
            return container
    return None


def parse_kv_strings(items: Sequence[str]) -> dict[str, str]:
    """``["ncomp=10", "algorithm=pca"]`` -> ``{"ncomp": "10", "algorithm": "pca"}``."""
    values: dict[str, str] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ParameterError(f"parameter {item!r} is not of the form key=value")
        values[key] = text.strip()
    return values


def _decode_string_values(model: type[RecipeParameters], values: Mapping[str, str]) -> dict[str, Any]:
    """Decode the text form of containers and None in ``k=v`` strings.

    Scalars stay strings: pydantic's lax mode turns "10" into 10 for an int field and "true"
    into True for a bool. Containers are given as JSON (``[1,2,3]``) or, for lists, as
    comma-separated items (``1,2,3``). ``none``/``null`` means None for an optional field.
    """
    decoded: dict[str, Any] = {}
    for key, text in values.items():
        info = model.model_fields.get(key)
        if info is None:
            continue  # reported as unknown by the caller
        if text.lower() in ("none", "null") and _accepts_none(info.annotation):
            decoded[key] = None
            continue
        container = _container_origin(info.annotation)
        if container is None:
            continue
        if text.startswith(("[", "{")):
            try:
                decoded[key] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ParameterError(f"parameter {key!r}: {text!r} is not valid JSON ({exc})") from exc
        elif container is dict:
            raise ParameterError(f"parameter {key!r} takes a JSON object, e.g. {key}='{{\"a\": 1}}'")
        else:
            decoded[key] = [part.strip() for part in text.split(",") if part.strip()]
    return decoded


def _accepts_none(annotation: Any) -> bool:
    return annotation is None or type(None) in typing.get_args(annotation)


def _format_validation_error(recipe_name: str, exc: ValidationError) -> str:
    lines = [f"invalid parameters for recipe {recipe_name!r}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(model)"
        lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# context and result


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class RecipeContext:
    """Where a recipe writes and how it reports.

    ``work_dir`` receives the output files. ``workflow``/``workflow_version``/``node`` name the
    workflow invocation this run belongs to (None when run alone); ``parents`` are the
    provenance ids of the runs that produced this run's inputs; ``rerun_of`` the id of the
    record a :func:`~hcdc.pipeline.replay.rerun` replays. ``on_progress(stage, done, total)``
    receives the step's progress (progress bars); it is not sent to other processes.
    """

    work_dir: Path
    workflow: str | None = None
    workflow_version: str | None = None
    node: str | None = None
    parents: list[str] = field(default_factory=list)
    rerun_of: str | None = None
    log_lines: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    on_progress: Callable[[str, int, int], None] | None = None

    def __post_init__(self) -> None:
        self.work_dir = Path(self.work_dir)
        self._finished_stages: set[str] = set()

    def log(self, message: str, level: str = "INFO") -> None:
        """Append a timestamped line to the run's log (and to the ``hcdc`` Python logger)."""
        stamp = utc_now().isoformat(timespec="milliseconds")
        self.log_lines.append(f"{stamp} {level} {message}")
        logger.log(logging.getLevelName(level), message)

    def progress(self, stage: str, done: int, total: int) -> None:
        """Report progress: one log line when a stage completes, and ``on_progress`` if set."""
        if done >= total and stage not in self._finished_stages:
            self._finished_stages.add(stage)
            self.log(f"{stage}: done ({total})")
        if self.on_progress is not None:
            self.on_progress(stage, done, total)

    @contextlib.contextmanager
    def timer(self, phase: str) -> Iterator[None]:
        """Time a phase of the recipe (seconds, accumulated in ``timings[phase]``)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - start

    def output_path(self, filename: str) -> Path:
        """``work_dir / filename``, creating the directory."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir / filename


@dataclass
class RecipeResult:
    """What one run of a recipe produced.

    ``outputs`` maps output names to values (paths for file kinds, arrays, plain values);
    ``params`` is the full validated parameter model (defaults filled in); ``timings`` are in
    seconds (``total`` plus the phases the recipe timed); ``status`` is ``"done"`` or
    ``"failed"`` (then ``error`` holds the exception text and the log its traceback).
    """

    recipe: str
    version: str
    outputs: dict[str, Any]
    params: RecipeParameters
    log: list[str]
    timings: dict[str, float]
    started: dt.datetime
    finished: dt.datetime
    status: str = "done"
    error: str | None = None
    provenance: _prov.ProvenanceRecord | None = None

    @property
    def ok(self) -> bool:
        return self.status == "done"


class _ThreadLogCapture(logging.Handler):
    """Collects the ``hcdc`` log records emitted by one thread during a recipe run."""

    def __init__(self, context: RecipeContext) -> None:
        super().__init__(level=logging.INFO)
        self._context = context
        self._thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        # the recipe's own context.log() lines are already in the log; skip their echo
        if record.thread != self._thread or record.name == __name__:
            return
        stamp = dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds")
        self._context.log_lines.append(f"{stamp} {record.levelname} [{record.name}] {record.getMessage()}")


# --------------------------------------------------------------------------------------------
# the recipe base class


class Recipe:
    """Base class of recipes; subclasses set the class attributes and implement :meth:`process`.

    Class attributes: ``name`` (lower-case, ``a-z0-9_.-``), ``version`` (dotted integers, e.g.
    ``"1.0"``), ``description`` (one line), ``Parameters`` (a :class:`RecipeParameters`
    subclass), ``inputs`` and ``outputs`` (tuples of :class:`Port`).
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Parameters: ClassVar[type[RecipeParameters]] = RecipeParameters
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()

    # -- what a recipe implements -------------------------------------------------------------

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        """Run the step: read ``inputs``, call the science layer, write files into
        ``context.work_dir`` and return the outputs by name."""
        raise NotImplementedError(f"recipe {self.name!r} does not implement process()")

    # -- parameters ---------------------------------------------------------------------------

    @classmethod
    def parse_params(
        cls, params: RecipeParameters | Mapping[str, Any] | Sequence[str] | None = None, **overrides: Any
    ) -> RecipeParameters:
        """Validated parameters from a model, a dict, or ``k=v`` strings (plus keyword overrides).

        Strings (from ``k=v`` items or string values in a dict) are coerced to the declared
        types by pydantic; unknown keys raise :class:`ParameterError` listing the known ones.
        """
        if isinstance(params, cls.Parameters):
            if not overrides:
                return params
            params = params.model_dump()
        if isinstance(params, RecipeParameters):
            raise ParameterError(
                f"recipe {cls.name!r} takes {cls.Parameters.__name__} parameters, not {type(params).__name__}"
            )
        if params is None:
            values: dict[str, Any] = {}
        elif isinstance(params, Mapping):
            values = dict(params)
        elif isinstance(params, Sequence) and not isinstance(params, str | bytes):
            values = parse_kv_strings(list(params))
        else:
            raise ParameterError(
                f"parameters for recipe {cls.name!r} must be a dict or k=v strings, not {params!r}"
            )
        values.update(overrides)
        cls._reject_unknown(values)
        # pydantic's lax mode coerces scalar strings ("10" -> 10, "true" -> True); containers
        # and None are decoded from their text form first
        strings = {k: v for k, v in values.items() if isinstance(v, str)}
        values.update(_decode_string_values(cls.Parameters, strings))
        try:
            return cls.Parameters.model_validate(values)
        except ValidationError as exc:
            raise ParameterError(_format_validation_error(cls.name, exc)) from None

    @classmethod
    def _reject_unknown(cls, values: Mapping[str, Any]) -> None:
        known = list(cls.Parameters.model_fields)
        for key in values:
            if key not in cls.Parameters.model_fields:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ParameterError(
                    f"recipe {cls.name!r} has no parameter {key!r}{hint}; "
                    f"known parameters: {', '.join(known) or 'none'}"
                )

    # -- inputs and outputs -------------------------------------------------------------------

    @classmethod
    def input_port(cls, name: str) -> Port:
        for port in cls.inputs:
            if port.name == name:
                return port
        raise RecipeInputError(
            f"recipe {cls.name!r} has no input {name!r}; inputs: {', '.join(p.name for p in cls.inputs)}"
        )

    @classmethod
    def output_port(cls, name: str) -> Port:
        for port in cls.outputs:
            if port.name == name:
                return port
        raise RecipeInputError(
            f"recipe {cls.name!r} has no output {name!r}; outputs: {', '.join(p.name for p in cls.outputs)}"
        )

    @classmethod
    def check_inputs(cls, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Inputs after checking names, presence and kinds; file inputs must exist.

        Returns a new dict in which file kinds hold :class:`pathlib.Path` (or lists of them
        for raw files); :class:`FileRef` values are kept (their ids go into the provenance
        record) and are replaced by their paths before :meth:`process` sees them.
        """
        unknown = set(inputs) - {p.name for p in cls.inputs}
        if unknown:
            raise RecipeInputError(
                f"recipe {cls.name!r} has no input(s) {', '.join(sorted(unknown))}; "
                f"inputs: {', '.join(p.name for p in cls.inputs) or 'none'}"
            )
        checked: dict[str, Any] = {}
        for port in cls.inputs:
            if port.name not in inputs or inputs[port.name] is None:
                if not port.optional:
                    raise RecipeInputError(
                        f"recipe {cls.name!r}: required input {port.name!r} ({port.kind.value}) is missing"
                    )
                continue
            checked[port.name] = check_port_value(f"recipe {cls.name!r}", port, inputs[port.name])
        return checked

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, version, description, inputs, outputs and parameters (type, default, help)."""
        return {
            "name": cls.name,
            "version": cls.version,
            "description": cls.description,
            "inputs": [p.describe() for p in cls.inputs],
            "outputs": [p.describe() for p in cls.outputs],
            "parameters": describe_parameters(cls.Parameters),
        }

    # -- running ------------------------------------------------------------------------------

    def run(
        self,
        inputs: Mapping[str, Any],
        params: RecipeParameters | Mapping[str, Any] | Sequence[str] | None = None,
        context: RecipeContext | None = None,
        *,
        work_dir: str | Path | None = None,
    ) -> RecipeResult:
        """Validate, run :meth:`process`, and return the result with its provenance record.

        ``context`` (or just ``work_dir``; default: the current directory) says where the
        outputs go. Invalid parameters or inputs raise :class:`ParameterError` /
        :class:`RecipeInputError` before anything runs; an exception inside the step raises
        :class:`RecipeFailed`, whose ``result`` holds the log (with the traceback) and the
        provenance record with status ``failed``.
        """
        cls = type(self)
        parsed = cls.parse_params(params)
        checked = cls.check_inputs(inputs)
        if context is None:
            context = RecipeContext(work_dir=Path(work_dir) if work_dir is not None else Path.cwd())
        # inputs are described (and checksummed) BEFORE the run, so a step that modified its
        # inputs could not hide it from the record
        input_records = _prov.describe_inputs(cls.inputs, checked)
        started = utc_now()
        context.log(f"recipe {cls.name} {cls.version} started with {parsed.model_dump_json()}")
        capture = _ThreadLogCapture(context)
        hcdc_logger = logging.getLogger("hcdc")
        hcdc_logger.addHandler(capture)
        t0 = time.perf_counter()
        status, error, outputs = "done", None, {}
        try:
            with context.timer("process"):
                produced = self.process(_plain_paths(checked), parsed, context)
            outputs = self._check_outputs(produced)
        except Exception as exc:  # noqa: BLE001 - recorded in the result, re-raised below
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            context.log(f"recipe {cls.name} failed: {error}\n{traceback.format_exc()}", level="ERROR")
        finally:
            hcdc_logger.removeHandler(capture)
        context.timings["total"] = time.perf_counter() - t0
        finished = utc_now()
        if status == "done":
            context.log(f"recipe {cls.name} done in {context.timings['total']:.3f} s")
        result = RecipeResult(
            recipe=cls.name,
            version=cls.version,
            outputs=outputs,
            params=parsed,
            log=list(context.log_lines),
            timings=dict(context.timings),
            started=started,
            finished=finished,
            status=status,
            error=error,
        )
        result.provenance = _prov.ProvenanceRecord.for_run(
            recipe=cls,
            params=parsed,
            inputs=input_records,
            outputs=_prov.describe_outputs(cls.outputs, outputs),
            context=context,
            started=started,
            finished=finished,
            status=status,
            error=error,
            log=result.log,
        )
        if status == "failed":
            raise RecipeFailed(f"recipe {cls.name!r} failed: {error}", result)
        return result

    def _check_outputs(self, produced: Any) -> dict[str, Any]:
        cls = type(self)
        if not isinstance(produced, Mapping):
            raise TypeError(f"recipe {cls.name!r}: process() must return a dict of outputs")
        declared = {p.name: p for p in cls.outputs}
        unknown = set(produced) - set(declared)
        if unknown:
            raise RecipeInputError(f"recipe {cls.name!r} returned undeclared output(s) {sorted(unknown)}")
        outputs: dict[str, Any] = {}
        for port in cls.outputs:
            if produced.get(port.name) is None:
                if not port.optional:
                    raise RecipeInputError(f"recipe {cls.name!r} did not produce output {port.name!r}")
                continue
            outputs[port.name] = check_port_value(f"recipe {cls.name!r}", port, produced[port.name], "output")
        return outputs


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
            if not _as_path(f).is_file():
                raise RecipeInputError(f"{where}: file {_as_path(f)} does not exist")
        return files
    if port.kind.is_file:
        if not isinstance(value, str | Path | FileRef):
            raise RecipeInputError(f"{where}: expected a path, got {type(value).__name__}")
        ref = value if isinstance(value, FileRef) else Path(value)
        if not _as_path(ref).exists():
            raise RecipeInputError(f"{where}: {_as_path(ref)} does not exist")
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


def describe_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One dict per parameter: name, type, default, description, allowed values/bounds."""
    schema = model.model_json_schema()
    props = schema.get("properties", {})
    described = []
    for name, info in model.model_fields.items():
        prop = props.get(name, {})
        entry: dict[str, Any] = {
            "name": name,
            "type": _type_name(info.annotation),
            "default": None if info.is_required() else _jsonable(info.get_default(call_default_factory=True)),
            "required": info.is_required(),
            "description": info.description or "",
        }
        for key in ("enum", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            if key in prop:
                entry[key] = prop[key]
        described.append(entry)
    return described


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------------------------
# registry

_RECIPES: dict[str, dict[str, type[Recipe]]] = {}

#: modules whose recipes register themselves on import; loaded on the first registry lookup (not
#: at import time: they import this module, so importing them here would make an import circle)
_RECIPE_MODULES = ("hcdc.pipeline.calibrations", "hcdc.pipeline.recipes_interferometry")
_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in _RECIPE_MODULES:
        importlib.import_module(module)


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


__all__ = [
    "DataKind",
    "FileRef",
    "ParameterError",
    "Port",
    "Recipe",
    "RecipeContext",
    "RecipeError",
    "RecipeFailed",
    "RecipeInputError",
    "RecipeParameters",
    "RecipeResult",
    "IrdisLevel1",
    "Postprocess",
    "SimulateIrdis",
    "UnknownRecipeError",
    "check_port_value",
    "describe_parameters",
    "get_recipe",
    "kinds_compatible",
    "list_recipes",
    "parse_kv_strings",
    "register_recipe",
    "run_recipe",
    "unregister_recipe",
]


# --------------------------------------------------------------------------------------------
# recipes shipped with hcdc: thin wrappers of the science and Level 1 code (no science here)

_L1_DEFAULTS = _level1.Level1Options()

#: Level 1 role inputs of the IRDIS recipe -> the DPR TYPE that :func:`reduce_irdis` expects
_IRDIS_ROLE_INPUTS = {
    "object": "OBJECT",
    "center": "OBJECT,CENTER",
    "flux": "OBJECT,FLUX",
    "sky": "SKY",
    "dark_background": "DARK,BACKGROUND",
    "dark": "DARK",
    "flat": "FLAT,LAMP",
}


class IrdisLevel1Parameters(RecipeParameters):
    """Parameters of :func:`hcdc.pipeline.level1.reduce_irdis`: one per field of ``Level1Options``,
    same names and defaults (``tests/pipeline/test_recipes_builtin.py`` checks that none is lost)."""

    @field_validator("symmetry_annulus_ld")
    @classmethod
    def _ordered_annulus(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 <= value[0] < value[1]:
            raise ValueError(f"annulus must be 0 <= inner < outer (lambda/D), got {value}")
        return value

    science_dim: int = Field(_L1_DEFAULTS.science_dim, gt=0, description="science frame size, px")
    psf_dim: int = Field(_L1_DEFAULTS.psf_dim, gt=0, description="PSF (flux) frame size, px")
    master_method: Literal["mean", "median"] = Field(
        _L1_DEFAULTS.master_method, description="combination of calibration frames (mean is sigma-clipped)"
    )
    master_sigma: float = Field(_L1_DEFAULTS.master_sigma, gt=0, description="clipping threshold, sigma")
    hot_pixel_sigma: float = Field(
        _L1_DEFAULTS.hot_pixel_sigma, gt=0, description="hot-pixel threshold, sigma"
    )
    center_mode: Literal["interpolate", "nearest"] = Field(
        _L1_DEFAULTS.center_mode, description="star centre of OBJECT frames from the CENTER frames"
    )
    center_error_limit_px: float = Field(
        _L1_DEFAULTS.center_error_limit_px,
        gt=0,
        description="waffle centring error that triggers fallbacks, px",
    )
    anamorphism: bool = Field(_L1_DEFAULTS.anamorphism, description="correct the IRDIS anamorphism")
    shift_method: Literal["fourier", "spline"] = Field(
        _L1_DEFAULTS.shift_method, description="sub-pixel recentring method"
    )
    true_north_deg: float = Field(_L1_DEFAULTS.true_north_deg, description="true north correction, deg")
    pupil_offset_deg: float = Field(_L1_DEFAULTS.pupil_offset_deg, description="pupil offset, deg")
    symmetry_annulus_ld: tuple[float, float] = Field(
        _L1_DEFAULTS.symmetry_annulus_ld,
        description="annulus (inner, outer) of the point-symmetry centring fallback, lambda/D",
    )
    memory_budget_mb: float = Field(_L1_DEFAULTS.memory_budget_mb, gt=0, description="memory for masters, MB")


@register_recipe
class IrdisLevel1(Recipe):
    """IRDIS DBI/CI raw files -> Level 1 product, by :func:`hcdc.pipeline.level1.reduce_irdis`.

    Raw files come either all together in ``raw`` (grouped by role from their DPR TYPE with
    :func:`hcdc.pipeline.level1.roles_from_headers`) or per role; files given for a role replace
    the automatically grouped ones of that role.
    """

    name = "level1-irdis"
    version = "1.0"
    description = "IRDIS DBI/CI raw sequence -> calibrated Level 1 master cube (hcdc.pipeline.level1)"
    Parameters = IrdisLevel1Parameters
    inputs = (
        Port("raw", DataKind.RAW_FILES, "raw files of one sequence and its calibrations", optional=True),
        *(
            Port(name, DataKind.RAW_FILES, f"{role} raw files", optional=True)
            for name, role in _IRDIS_ROLE_INPUTS.items()
        ),
    )
    outputs = (
        Port(
            "product",
            DataKind.LEVEL1,
            "Level 1 product directory (read with hcdc.pipeline.level1.read_level1)",
        ),
        Port("summary", DataKind.VALUE, "cube shape, wavelengths (um), number of frames, files per role"),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        roles: dict[str, list[Path]] = {}
        if "raw" in inputs:
            roles.update(_level1.roles_from_headers(inputs["raw"]))
        for name, role in _IRDIS_ROLE_INPUTS.items():
            if name in inputs:
                roles[role] = list(inputs[name])
        context.log("files per role: " + ", ".join(f"{r}={len(f)}" for r, f in roles.items()))
        options = _level1.Level1Options(**params.model_dump())
        out_dir = context.work_dir / "level1"
        with context.timer("reduce"):
            _level1.reduce_irdis(roles, out_dir, options, context.progress)
        with context.timer("read_back"):
            product = _level1.read_level1(out_dir)
        summary = {
            "cube_shape": list(product.cube.shape),
            "wavelengths_um": [float(w) for w in product.wavelengths_um],
            "frames": int(product.cube.shape[1]),
            "psf_frames": int(product.psf_cube.shape[1]),
            "files_per_role": {role: len(files) for role, files in roles.items()},
        }
        return {"product": out_dir, "summary": summary}


def _known_algorithms() -> dict[str, Any]:
    """The Level 2 algorithm registry (importing the package registers every algorithm)."""
    import hcdc.science.postprocessing as postprocessing

    return postprocessing.ALGORITHMS


class PostprocessParameters(RecipeParameters):
    """Parameters of :func:`hcdc.science.postprocessing.run.postprocess`."""

    algorithm: str = Field("pca", description="registered Level 2 algorithm (hcdc.science.postprocessing)")
    ncomp: int | None = Field(
        None, gt=0, description="principal components (PCA family); added to algorithm_params"
    )
    algorithm_params: dict[str, Any] = Field(
        default_factory=dict, description='other parameters of the algorithm, e.g. {"annulus_width": 2}'
    )
    fwhm: float | None = Field(None, gt=0, description="PSF FWHM, px (measured on the PSF when None)")
    pixel_scale_mas: float | None = Field(
        None, gt=0, description="plate scale, mas/px (Level 1 IRDIS input: 12.255 when None)"
    )
    star_flux: float | None = Field(
        None, gt=0, description="star flux in a 1-FWHM aperture (from the PSF when None)"
    )
    crop_radius: float | None = Field(None, gt=0, description="process only this central radius, px")
    detection_threshold: float | None = Field(
        None, gt=0, description="fixed S/N detection threshold (None: Student threshold at 5-sigma FPF)"
    )
    compute_contrast: bool = Field(True, description="compute 5-sigma contrast curves")
    contrast_options: dict[str, Any] = Field(
        default_factory=dict, description="options of the contrast curve (sigma, nbranch, fc_snr, step, ...)"
    )
    completeness: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="also the completeness curve: contrast at which this fraction (e.g. 0.95) of fakes "
        "is recovered by hcdc's detection (costly: ~20 reductions per separation and level)",
    )
    completeness_options: dict[str, Any] = Field(
        default_factory=dict,
        description="options of the completeness curve (n_fakes, ladder, max_levels, ...)",
    )
    negfc: bool = Field(False, description="re-measure detections by negative fake companion fit")
    previews: bool = Field(True, description="write PNG previews next to the product")
    angle_convention: Literal["parallactic", "derotation"] | None = Field(
        None,
        description="convention of the angles (docs/conventions.md); None: from the Level 1 header, "
        "'parallactic' (VIP/pyKLIP angle_list) for a user cube",
    )
    pupil_offset_deg: float | None = Field(
        None, description="pupil offset added to a user cube's angles, deg (orientation known with it)"
    )
    true_north_deg: float | None = Field(None, description="true-north correction added to the angles, deg")
    transpose: bool = Field(False, description="detector mirrored (x<->y swapped): transpose the frames")
    ra_deg: float | None = Field(None, ge=0, lt=360, description="target RA (ICRS, deg) for a celestial WCS")
    dec_deg: float | None = Field(None, ge=-90, le=90, description="target Dec (ICRS, deg)")
    recenter: bool = Field(False, description="move a user cube's star onto (n//2, n//2) first")
    center_method: Literal["auto", "psf", "negative-gaussian"] = Field(
        "auto", description="star fit of the position check / recentring"
    )

    @field_validator("algorithm")
    @classmethod
    def _registered(cls, name: str) -> str:
        known = _known_algorithms()
        if name not in known:
            raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(sorted(known))}")
        return name

    def algorithm_kwargs(self) -> dict[str, Any]:
        kwargs = dict(self.algorithm_params)
        if self.ncomp is not None:
            kwargs["ncomp"] = self.ncomp
        return kwargs


def _read_image(path: Path, what: str, ndims: tuple[int, ...]) -> tuple[Any, Any]:
    """Data and header of the first image HDU with data; errors name the file."""
    import numpy as np
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            for hdu in hdul:
                if hdu.is_image and hdu.data is not None and hdu.data.size:
                    data, header = np.asarray(hdu.data, dtype=np.float32), hdu.header.copy()
                    break
            else:
                raise RecipeInputError(f"{what} file {path}: no image data")
    except OSError as exc:
        raise RecipeInputError(f"{what} file {path}: not a readable FITS file ({exc})") from exc
    if data.ndim not in ndims:
        raise RecipeInputError(
            f"{what} file {path}: expected {' or '.join(map(str, ndims))}-D data, got {data.shape}"
        )
    return data, header


def _read_vector(path: Path, what: str) -> Any:
    """A float vector from a FITS image or a text column; errors name the file."""
    import numpy as np

    if path.suffix.lower() in (".txt", ".dat", ".csv"):
        try:
            values = np.loadtxt(
                path, dtype=np.float64, delimiter="," if path.suffix.lower() == ".csv" else None
            )
        except ValueError as exc:
            raise RecipeInputError(f"{what} file {path}: not a column of numbers ({exc})") from exc
    else:
        values = _read_image(path, what, (1, 2))[0].astype(np.float64)
    return np.ravel(values)


@register_recipe
class Postprocess(Recipe):
    """Level 2 post-processing by :func:`hcdc.science.postprocessing.run.postprocess`.

    Input either a Level 1 product (``level1``: cube, derotation angles, PSF and wavelengths
    read with :func:`hcdc.pipeline.level1.read_level1`; the PSF is the mean of the flux frames;
    the angle convention, whether the angles are sky-aligned and the pointing come from its
    header) or a user cube (``cube`` FITS (frames, y, x) or (wavelengths, frames, y, x) with
    ``angles``, parallactic by default, and optionally ``psf``, ``wavelengths``, ``reference``;
    its star position is checked, and fixed with ``recenter``). Writes the Level 2 FITS product
    (:func:`hcdc.science.postprocessing.products.write_product`) and PNG previews.
    """

    name = "l2-postprocess"
    version = "1.1"
    description = "Level 1 cube -> Level 2 image, S/N map, contrast curves, detections (postprocess)"
    Parameters = PostprocessParameters
    inputs = (
        Port("level1", DataKind.LEVEL1, "Level 1 product (instead of cube + angles)", optional=True),
        Port(
            "cube",
            DataKind.PATH,
            "user cube, FITS (frames, y, x) or (wavelengths, frames, y, x)",
            optional=True,
        ),
        Port(
            "angles",
            DataKind.PATH,
            "angles of a user cube, deg (FITS or text), parallactic unless angle_convention says",
            optional=True,
        ),
        Port("psf", DataKind.PATH, "off-axis PSF, FITS (y, x) or (wavelengths, y, x)", optional=True),
        Port("wavelengths", DataKind.PATH, "wavelengths of a user cube, um (FITS or text)", optional=True),
        Port("reference", DataKind.PATH, "reference-star cube for RDI, FITS", optional=True),
    )
    outputs = (
        Port("product", DataKind.LEVEL2, "Level 2 FITS product"),
        Port("summary", DataKind.VALUE, "algorithm, detections, contrast at standard separations"),
        Port("previews", DataKind.VALUE, "PNG previews {kind: path}", optional=True),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        from hcdc.science.orientation import oriented_cube
        from hcdc.science.postprocessing.previews import write_previews
        from hcdc.science.postprocessing.products import write_product
        from hcdc.science.postprocessing.run import postprocess

        assert isinstance(params, PostprocessParameters)
        with context.timer("read"):
            data = self._read_inputs(inputs, params)
        orientation = data["orientation"]
        for text in data["notes"]:
            context.log(text)
        context.log(
            f"cube {tuple(data['cube'].shape)}, algorithm {params.algorithm} {params.algorithm_kwargs()}"
        )
        with context.timer("postprocess"):
            psf, reference = data.get("psf"), data.get("reference")
            result = postprocess(
                oriented_cube(data["cube"], orientation),
                data["angles"],
                algorithm=params.algorithm,
                psf=None if psf is None else oriented_cube(psf, orientation),
                wavelengths=data.get("wavelengths"),
                reference=None if reference is None else oriented_cube(reference, orientation),
                fwhm=params.fwhm,
                pixel_scale_mas=data["pixel_scale_mas"],
                star_flux=params.star_flux,
                params=params.algorithm_kwargs(),
                crop_radius=params.crop_radius,
                detection_threshold=params.detection_threshold,
                compute_contrast=params.compute_contrast,
                contrast_options=params.contrast_options or None,
                completeness=params.completeness,
                completeness_options=params.completeness_options or None,
                negfc=params.negfc,
                image_unit=data["unit"],
                inputs=data["input_names"],
                progress=context.progress,
                orientation=orientation,
            )
            result.warnings[:0] = data["warnings"]
        for text in result.warnings:
            context.log(f"warning: {text}")
        with context.timer("write"):
            product = write_product(result, context.output_path(f"level2_{params.algorithm}.fits"))
            previews = None
            if params.previews:
                written = write_previews(result, context.work_dir, stem=f"level2_{params.algorithm}")
                previews = {kind: str(path) for kind, path in written.items()}
        summary = result.summary()
        context.log(f"{len(summary['detections'])} detection(s)")
        return {"product": product, "summary": summary, "previews": previews}

    @staticmethod
    def _read_inputs(inputs: dict[str, Any], params: PostprocessParameters) -> dict[str, Any]:
        """Arrays for :func:`postprocess` from a Level 1 product or from user files, with the
        derotation angles and orientation (:mod:`hcdc.science.orientation`) and the notes and
        warnings of the star-position check (user cubes)."""
        import numpy as np

        from hcdc.science.calibration.recenter import check_cube_star
        from hcdc.science.orientation import derotation_angles
        from hcdc.science.postprocessing.run import estimate_fwhm

        if ("level1" in inputs) == ("cube" in inputs):
            raise RecipeInputError("give either a Level 1 product (level1) or a user cube (cube + angles)")
        if "level1" in inputs:
            from hcdc.instruments.sphere_constants import IRDIS_PIXEL_SCALE_MAS

            product = _level1.read_level1(inputs["level1"])
            psf = product.psf_cube.mean(axis=1) if product.psf_cube.shape[1] else None
            header = product.header
            convention = params.angle_convention or str(header.get("HIERARCH HCDC ANGCONV", "derotation"))
            # Level 1 DEROT includes the pupil offset and true north (products written before the
            # ANGSKY keyword existed too): the image is north up.
            sky = bool(header.get("HIERARCH HCDC ANGSKY", True)) and params.pupil_offset_deg is None
            try:
                angles, orientation = derotation_angles(
                    product.derot,
                    convention,
                    0.0 if sky else params.pupil_offset_deg,
                    0.0 if sky else params.true_north_deg,
                    params.transpose,
                )
                if sky:  # offsets already in DEROT: none added here
                    orientation = dataclasses.replace(orientation, pupil_offset_deg=None, true_north_deg=None)
                ra = params.ra_deg if params.ra_deg is not None else header.get("HIERARCH HCDC RA")
                dec = params.dec_deg if params.dec_deg is not None else header.get("HIERARCH HCDC DEC")
                if orientation.known and ra is not None and dec is not None:
                    orientation = orientation.with_pointing(float(ra), float(dec))
            except ValueError as exc:
                raise RecipeInputError(f"Level 1 product {inputs['level1']}: {exc}") from exc
            return {
                "cube": product.cube,
                "angles": angles,
                "orientation": orientation,
                "notes": [],
                "warnings": [],
                "psf": psf,
                "wavelengths": product.wavelengths_um,
                "pixel_scale_mas": params.pixel_scale_mas or IRDIS_PIXEL_SCALE_MAS,
                "unit": str(product.header.get("BUNIT", "ADU/s")),
                "input_names": {Path(inputs["level1"]).name: _prov.sha256_path(inputs["level1"])},
            }
        if "angles" not in inputs:
            raise RecipeInputError(
                "a user cube needs its angles (input 'angles', parallactic unless angle_convention says)"
            )
        cube, header = _read_image(inputs["cube"], "cube", (3, 4))
        angles = _read_vector(inputs["angles"], "angles")
        if not np.all(np.isfinite(angles)):
            raise RecipeInputError(f"angles file {inputs['angles']}: contains NaN or infinite values")
        if angles.size != cube.shape[-3]:
            raise RecipeInputError(
                f"angles file {inputs['angles']}: {angles.size} angles for the {cube.shape[-3]} frames "
                f"of cube {inputs['cube']}"
            )
        try:
            angles, orientation = derotation_angles(
                angles,
                params.angle_convention or "parallactic",
                params.pupil_offset_deg,
                params.true_north_deg,
                params.transpose,
            )
            if orientation.known:
                orientation = orientation.with_pointing(params.ra_deg, params.dec_deg)
        except ValueError as exc:
            raise RecipeInputError(f"angles file {inputs['angles']}: {exc}") from exc
        data: dict[str, Any] = {"angles": angles, "orientation": orientation}
        if "psf" in inputs:
            data["psf"] = _read_image(inputs["psf"], "PSF", (2, 3))[0]
        fwhm = params.fwhm
        if fwhm is None and data.get("psf") is not None:
            fwhm = estimate_fwhm(data["psf"] if data["psf"].ndim == 2 else data["psf"][0])
        notes: list[tuple[str, str]] = []
        if fwhm is not None:
            try:
                cube, notes = check_cube_star(
                    cube, fwhm, f"cube {inputs['cube']}", params.recenter, params.center_method
                )
            except ValueError as exc:
                raise RecipeInputError(str(exc)) from exc
        data["cube"] = cube
        data["notes"] = [text for level, text in notes if level == "note"]
        data["warnings"] = [text for level, text in notes if level == "warning"]
        if "wavelengths" in inputs:
            data["wavelengths"] = _read_vector(inputs["wavelengths"], "wavelengths")
        if "reference" in inputs:
            data["reference"] = _read_image(inputs["reference"], "reference", (3, 4))[0]
        scale = params.pixel_scale_mas
        if scale is None and "PIXSCALE" in header:
            scale = float(header["PIXSCALE"])
        data["pixel_scale_mas"] = scale
        data["unit"] = str(header.get("BUNIT", "")).strip()
        data["input_names"] = {Path(p).name: _prov.sha256_path(p) for p in inputs.values()}
        return data


class SimulateIrdisParameters(RecipeParameters):
    """Parameters of :func:`hcdc.pipeline.simulate.simulate_irdis_night`."""

    seed: int = Field(0, ge=0, description="random seed (same seed, same files)")
    scale: Literal["small", "medium", "full"] = Field("small", description="detector size and DIT counts")
    night: str = Field("2018-11-30", description="local evening date of the night, YYYY-MM-DD")
    modes: list[Literal["DBI", "CI"]] = Field(
        default_factory=lambda: ["DBI", "CI"], min_length=1, description="which default sequences to observe"
    )
    companions: list[tuple[float, float, float]] | None = Field(
        None, description="(separation mas, PA deg, contrast) of each companion; None: the default two"
    )


@register_recipe
class SimulateIrdis(Recipe):
    """A night of raw IRDIS files with injected companions, by
    :func:`hcdc.pipeline.simulate.simulate_irdis_night` (its truth in ``simulation_truth.json``)."""

    name = "simulate-irdis"
    version = "1.0"
    description = "simulate a night of raw SPHERE/IRDIS files with companions (hcdc.pipeline.simulate)"
    Parameters = SimulateIrdisParameters
    inputs = ()
    outputs = (
        Port("raw", DataKind.RAW_FILES, "the raw FITS files written, in time order"),
        Port("truth", DataKind.PATH, "simulation_truth.json: injected companions, centres, detector"),
    )

    def process(self, inputs: dict[str, Any], params: RecipeParameters, context: RecipeContext) -> dict:
        from hcdc.pipeline import simulate

        assert isinstance(params, SimulateIrdisParameters)
        sequences = [spec for spec in simulate.DEFAULT_SEQUENCES if spec.mode in params.modes]
        companions = None
        if params.companions is not None:
            companions = [simulate.Companion(sep, pa, contrast) for sep, pa, contrast in params.companions]
        with context.timer("simulate"):
            night = simulate.simulate_irdis_night(
                context.work_dir / "raw",
                seed=params.seed,
                scale=params.scale,
                companions=companions,
                sequences=sequences,
                night=params.night,
            )
        context.log(f"{len(night.files)} raw files written")
        return {"raw": sorted(f.path for f in night.files), "truth": night.truth_json}
