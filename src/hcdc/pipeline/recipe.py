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

Recipes never re-implement science: ``process`` reads inputs, calls ``hcdc.science`` (or an
instrument's reduction, e.g. :mod:`hcdc.instruments.sphere.irdis.level1`), and writes outputs.
Recipes register themselves with
:func:`register_recipe`; :func:`get_recipe` finds one by name (and version) and
:func:`list_recipes` lists them. The recipes shipped with hcdc are defined at the
end of this module.

Run one alone from Python::

    from hcdc.pipeline.registry import get_recipe
    recipe = get_recipe("l2-postprocess")()
    result = recipe.run({"level1": "L1/"}, ["algorithm=pca", "ncomp=10"], work_dir="out/")
    result.outputs["product"], result.provenance.to_json()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ValidationError

from hcdc.pipeline import provenance as _prov
from hcdc.pipeline.errors import ParameterError, RecipeFailed, RecipeInputError
from hcdc.pipeline.parameters import (
    RecipeParameters,
    decode_string_values,
    describe_parameters,
    format_validation_error,
    parse_kv_strings,
)
from hcdc.pipeline.ports import Port, check_port_value, plain_paths

logger = logging.getLogger(__name__)


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
    subclass), ``inputs`` and ``outputs`` (tuples of :class:`Port`), and what the catalogue
    registers its product as: ``product_level`` (data level 0-3, None when not a data product)
    and ``product_type`` (default: the recipe's name), see :meth:`product_kind`.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Parameters: ClassVar[type[RecipeParameters]] = RecipeParameters
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()
    product_level: ClassVar[int | None] = None
    product_type: ClassVar[str] = ""

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
        values.update(decode_string_values(cls.Parameters, strings))
        try:
            return cls.Parameters.model_validate(values)
        except ValidationError as exc:
            raise ParameterError(format_validation_error(cls.name, exc)) from None

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

    @classmethod
    def product_kind(cls) -> tuple[int | None, str]:
        """``(level, product type)`` under which the catalogue registers this recipe's product."""
        return cls.product_level, cls.product_type or cls.name

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
        failure: Exception | None = None
        try:
            with context.timer("process"):
                produced = self.process(plain_paths(checked), parsed, context)
            outputs = self._check_outputs(produced)
        except Exception as exc:  # noqa: BLE001 - recorded in the result, re-raised below
            status, error, failure = "failed", f"{type(exc).__name__}: {exc}", exc
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
            # chained: an interface tells a user's bad input (RecipeInputError) from a crash
            raise RecipeFailed(f"recipe {cls.name!r} failed: {error}", result) from failure
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
