"""Workflows: graphs of recipe invocations, validated, run in dependency order by an executor.

A :class:`Workflow` has declared inputs (:class:`~hcdc.pipeline.ports.Port`), nodes
(:class:`Node`: a recipe, parameter defaults, and where each recipe input comes from) and named
outputs. Bindings are strings: ``"inputs.cube"`` is the workflow input ``cube``;
``"level1.product"`` is the output ``product`` of node ``level1``. Construction validates the
graph (unknown recipes, unbound required inputs, unknown sources, kind mismatches, cycles,
invalid parameters) and raises :class:`WorkflowError` naming the node and the reason.

:func:`run_workflow` runs the nodes on an :class:`~hcdc.pipeline.executors.Executor` (inline by
default): a node is submitted as soon as every node it depends on is done, so independent
branches run side by side on a process pool or a Dask cluster. A failing node records its error
and its descendants are skipped; the other branches go on. Each node writes into
``work_dir/<node>/`` together with its ``provenance.json`` (which names the workflow, the node and
the provenance ids of the nodes that produced its inputs).

Parameter overrides at run time: ``{"level2.ncomp": 10}`` or ``["level2.ncomp=10"]`` for one
node; a key without a node prefix (``ncomp=10``) applies to every node whose recipe has that
parameter.

Standard workflows are registered with :func:`register_workflow`, listed by
:func:`list_workflows` (only those whose recipes are available), and chosen for a dataset from
its files' classification by :func:`select_workflow`.
"""

from __future__ import annotations

import concurrent.futures as cf
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hcdc.pipeline.errors import ParameterError, RecipeFailed, RecipeInputError, UnknownRecipeError
from hcdc.pipeline.executors import Executor, InlineExecutor, outcome_of
from hcdc.pipeline.parameters import RecipeParameters, parse_kv_strings
from hcdc.pipeline.ports import Port, check_port_value, kinds_compatible
from hcdc.pipeline.recipe import Recipe, RecipeContext, RecipeResult
from hcdc.pipeline.registry import get_recipe
from hcdc.runtime.plugins import GROUPS
from hcdc.runtime.plugins import load_plugins as _load_plugins

_NODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")
WORKFLOW_INPUTS = "inputs"  # the reserved source name of workflow inputs in bindings


class WorkflowError(ValueError):
    """A workflow definition, its inputs or its parameter overrides are invalid."""


@dataclass(frozen=True)
class Node:
    """One recipe invocation in a workflow.

    ``inputs`` maps each recipe input to its source (``"inputs.<name>"`` or
    ``"<node>.<output>"``); ``params`` are this workflow's defaults for the recipe parameters
    (overridable at run time); ``version`` pins a recipe version (newest when None).
    """

    name: str
    recipe: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    version: str | None = None
    description: str = ""


def _split_source(source: str) -> tuple[str, str]:
    head, sep, tail = source.partition(".")
    if not sep or not head or not tail:
        raise WorkflowError(f"binding {source!r} must be 'inputs.<name>' or '<node>.<output>'")
    return head, tail


@dataclass
class Workflow:
    """A validated graph of recipe invocations (see the module docstring)."""

    name: str
    version: str
    description: str
    inputs: tuple[Port, ...]
    nodes: tuple[Node, ...]
    outputs: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.inputs = tuple(self.inputs)
        self.nodes = tuple(self.nodes)
        self._recipes: dict[str, type[Recipe]] = {}
        self._order: list[str] = []
        self.validate()

    # -- validation -----------------------------------------------------------------------------

    def validate(self) -> None:
        """Check the graph; raise :class:`WorkflowError` with every problem found."""
        problems: list[str] = []
        names = [n.name for n in self.nodes]
        for name in names:
            if not _NODE_RE.match(name) or name == WORKFLOW_INPUTS:
                problems.append(
                    f"node name {name!r} must match {_NODE_RE.pattern} and not be {WORKFLOW_INPUTS!r}"
                )
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            problems.append(f"duplicate node name(s) {', '.join(duplicates)}")
        declared_inputs = {p.name: p for p in self.inputs}
        for node in self.nodes:
            try:
                self._recipes[node.name] = get_recipe(node.recipe, node.version)
            except UnknownRecipeError as exc:
                problems.append(f"node {node.name!r}: {exc}")
        for node in self.nodes:
            recipe = self._recipes.get(node.name)
            if recipe is None:
                continue
            problems += self._check_bindings(node, recipe, declared_inputs)
            try:
                recipe.parse_params(dict(node.params))
            except ParameterError as exc:
                problems.append(f"node {node.name!r}: {exc}")
        for out_name, source in self.outputs.items():
            try:
                src_node, src_out = _split_source(source)
            except WorkflowError as exc:
                problems.append(f"workflow output {out_name!r}: {exc}")
                continue
            if src_node not in self._recipes:
                problems.append(f"workflow output {out_name!r}: no node {src_node!r}")
            elif src_out not in {p.name for p in self._recipes[src_node].outputs}:
                problems.append(
                    f"workflow output {out_name!r}: recipe of node {src_node!r} has no output {src_out!r}"
                )
        if not problems:
            try:
                self._order = self._topological_order()
            except WorkflowError as exc:
                problems.append(str(exc))
        if problems:
            raise WorkflowError(f"workflow {self.name!r} is invalid:\n  " + "\n  ".join(problems))

    def _check_bindings(self, node: Node, recipe: type[Recipe], declared: Mapping[str, Port]) -> list[str]:
        problems = []
        recipe_inputs = {p.name: p for p in recipe.inputs}
        for target, source in node.inputs.items():
            where = f"node {node.name!r} input {target!r}"
            port = recipe_inputs.get(target)
            if port is None:
                problems.append(
                    f"{where}: recipe {recipe.name!r} has no such input ({', '.join(recipe_inputs)})"
                )
                continue
            try:
                src_node, src_name = _split_source(source)
            except WorkflowError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if src_node == WORKFLOW_INPUTS:
                src_port = declared.get(src_name)
                if src_port is None:
                    problems.append(f"{where}: the workflow declares no input {src_name!r}")
                    continue
            else:
                src_recipe = self._recipes.get(src_node)
                if src_recipe is None:
                    problems.append(f"{where}: no node {src_node!r} in the workflow")
                    continue
                src_port = next((p for p in src_recipe.outputs if p.name == src_name), None)
                if src_port is None:
                    problems.append(
                        f"{where}: recipe {src_recipe.name!r} of node {src_node!r} has no output {src_name!r}"
                    )
                    continue
            if not kinds_compatible(src_port.kind, port.kind):
                problems.append(
                    f"{where}: type mismatch, {source} is {src_port.kind.value} "
                    f"but the input takes {port.kind.value}"
                )
        for name, port in recipe_inputs.items():
            if not port.optional and name not in node.inputs:
                problems.append(
                    f"node {node.name!r}: required input {name!r} ({port.kind.value}) is not bound"
                )
        return problems

    def _topological_order(self) -> list[str]:
        """Kahn's algorithm, in declaration order among ready nodes; names the cycle if any."""
        deps = self.dependencies()
        remaining = {n.name: set(deps[n.name]) for n in self.nodes}
        order: list[str] = []
        while remaining:
            ready = [n.name for n in self.nodes if n.name in remaining and not remaining[n.name]]
            if not ready:
                raise WorkflowError(f"the nodes {', '.join(sorted(remaining))} form a cycle")
            for name in ready:
                order.append(name)
                del remaining[name]
                for other in remaining.values():
                    other.discard(name)
        return order

    # -- structure ------------------------------------------------------------------------------

    def dependencies(self) -> dict[str, list[str]]:
        """Node name -> the nodes whose outputs it consumes."""
        deps: dict[str, list[str]] = {}
        for node in self.nodes:
            sources = {_split_source(s)[0] for s in node.inputs.values()}
            deps[node.name] = sorted(sources - {WORKFLOW_INPUTS})
        return deps

    @property
    def order(self) -> list[str]:
        """Node names in a topological order."""
        return list(self._order)

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise WorkflowError(f"workflow {self.name!r} has no node {name!r}")

    def recipe_of(self, node_name: str) -> type[Recipe]:
        self.node(node_name)
        return self._recipes[node_name]

    # -- parameters -----------------------------------------------------------------------------

    def resolve_params(
        self, overrides: Mapping[str, Any] | Sequence[str] | None = None
    ) -> dict[str, RecipeParameters]:
        """Validated parameters of every node: recipe defaults < workflow defaults < overrides."""
        if overrides is None:
            values: dict[str, Any] = {}
        elif isinstance(overrides, Mapping):
            values = dict(overrides)
        else:
            try:
                values = parse_kv_strings(list(overrides))
            except ParameterError as exc:
                raise WorkflowError(str(exc)) from None
        per_node: dict[str, dict[str, Any]] = {n.name: dict(n.params) for n in self.nodes}
        for key, value in values.items():
            head, sep, tail = key.partition(".")
            if sep and head in per_node:
                per_node[head][tail] = value
                continue
            if sep:
                raise WorkflowError(f"parameter {key!r}: workflow {self.name!r} has no node {head!r}")
            targets = [n for n in per_node if key in self._recipes[n].Parameters.model_fields]
            if not targets:
                raise WorkflowError(
                    f"parameter {key!r}: no node of workflow {self.name!r} has it "
                    f"(use <node>.<parameter>; nodes: {', '.join(per_node)})"
                )
            for target in targets:
                per_node[target][key] = value
        resolved = {}
        for name, params in per_node.items():
            try:
                resolved[name] = self._recipes[name].parse_params(params)
            except ParameterError as exc:
                raise WorkflowError(f"workflow {self.name!r} node {name!r}: {exc}") from None
        return resolved

    def describe(self) -> dict[str, Any]:
        """Name, version, inputs, outputs, and every node with its recipe and parameters
        (defaults as this workflow sets them)."""
        defaults = self.resolve_params()
        nodes = []
        for node in self.nodes:
            recipe = self._recipes[node.name]
            params = recipe.describe()["parameters"]
            values = defaults[node.name].model_dump(mode="json")
            for entry in params:
                entry["default"] = values[entry["name"]]
            nodes.append(
                {
                    "name": node.name,
                    "recipe": recipe.name,
                    "recipe_version": recipe.version,
                    "description": node.description or recipe.description,
                    "inputs": dict(node.inputs),
                    "depends_on": self.dependencies()[node.name],
                    "parameters": params,
                }
            )
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "inputs": [p.describe() for p in self.inputs],
            "outputs": dict(self.outputs),
            "nodes": nodes,
        }


# --------------------------------------------------------------------------------------------
# running


@dataclass
class NodeTask:
    """Everything a worker needs to run one node (picklable: the recipe class is sent by
    reference to its module)."""

    recipe: type[Recipe]
    inputs: dict[str, Any]
    params: RecipeParameters
    work_dir: Path
    workflow: str
    workflow_version: str
    node: str
    parents: list[str]


def run_node_task(task: NodeTask) -> RecipeResult:
    """Run one node (in whatever process the executor chose) and save its provenance.

    A failure inside the recipe returns the failed :class:`RecipeResult` (its exception class
    carries the result and is not sent back across processes); invalid inputs raise.
    """
    context = RecipeContext(
        work_dir=task.work_dir,
        workflow=task.workflow,
        workflow_version=task.workflow_version,
        node=task.node,
        parents=list(task.parents),
    )
    try:
        result = task.recipe().run(task.inputs, task.params, context)
    except RecipeFailed as exc:
        result = exc.result
    if result.provenance is not None:
        result.provenance.save(task.work_dir / "provenance.json")
    return result


@dataclass
class NodeRun:
    """The fate of one node: ``done``, ``failed`` (``error``/``traceback``) or ``skipped``
    (a node it depends on failed); ``result`` holds the recipe result when it ran."""

    name: str
    status: str
    result: RecipeResult | None = None
    error: str | None = None
    traceback: str | None = None


@dataclass
class WorkflowResult:
    """Outcome of a workflow run: per-node runs, the workflow outputs that were produced, and
    ``status`` ``done`` (every node done) or ``failed``."""

    workflow: str
    version: str
    work_dir: Path
    nodes: dict[str, NodeRun]
    outputs: dict[str, Any]

    @property
    def status(self) -> str:
        return "done" if all(n.status == "done" for n in self.nodes.values()) else "failed"

    def summary(self) -> dict[str, Any]:
        """JSON-ready account of the run: status, per-node status/error/timings/provenance id,
        and the workflow outputs (paths as strings)."""
        nodes = {}
        for name, run in self.nodes.items():
            entry: dict[str, Any] = {"status": run.status, "error": run.error}
            if run.result is not None:
                entry["recipe"] = f"{run.result.recipe} {run.result.version}"
                entry["seconds"] = round(run.result.timings.get("total", 0.0), 3)
                if run.result.provenance is not None:
                    entry["provenance_id"] = run.result.provenance.id
            nodes[name] = entry
        return {
            "workflow": self.workflow,
            "version": self.version,
            "status": self.status,
            "work_dir": str(self.work_dir),
            "nodes": nodes,
            "outputs": {k: _jsonable_output(v) for k, v in self.outputs.items()},
        }

    @property
    def provenance(self) -> dict[str, Any]:
        """Node name -> provenance record of every node that ran."""
        return {
            name: run.result.provenance
            for name, run in self.nodes.items()
            if run.result is not None and run.result.provenance is not None
        }


def _jsonable_output(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_jsonable_output(v) for v in value]
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # an array output: describe, don't dump
        return {"array": list(value.shape), "dtype": str(value.dtype)}
    return value


EventCallback = Callable[[str, str, NodeRun | None], None]


def run_workflow(
    workflow: Workflow,
    inputs: Mapping[str, Any],
    params: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    work_dir: str | Path,
    executor: Executor | None = None,
    on_event: EventCallback | None = None,
) -> WorkflowResult:
    """Run ``workflow`` on ``inputs`` into ``work_dir`` (one sub-directory per node).

    Everything is validated before any node runs (workflow inputs, parameter overrides).
    ``executor`` defaults to inline. ``on_event(node, event, run)`` is called with
    ``"submitted"`` and then ``"done"``/``"failed"``/``"skipped"`` (progress display).
    """
    executor = executor or InlineExecutor()
    work_dir = Path(work_dir)
    resolved = workflow.resolve_params(params)
    given = _check_workflow_inputs(workflow, inputs)
    deps = workflow.dependencies()
    runs: dict[str, NodeRun] = {}
    produced: dict[str, RecipeResult] = {}
    pending: dict[cf.Future, str] = {}
    waiting = list(workflow.order)

    def emit(node: str, event: str, run: NodeRun | None = None) -> None:
        if on_event is not None:
            on_event(node, event, run)

    while waiting or pending:
        for name in list(waiting):
            if any(runs.get(d) is not None and runs[d].status != "done" for d in deps[name]):
                runs[name] = NodeRun(name, "skipped", error=f"skipped: {_first_bad(deps[name], runs)} failed")
                waiting.remove(name)
                emit(name, "skipped", runs[name])
            elif all(d in produced for d in deps[name]):
                task = _node_task(workflow, name, given, produced, resolved[name], work_dir)
                waiting.remove(name)
                try:
                    pending[executor.submit(run_node_task, task)] = name
                except Exception as exc:  # noqa: BLE001 - e.g. an argument that cannot be pickled
                    runs[name] = NodeRun(
                        name, "failed", error=f"could not submit: {type(exc).__name__}: {exc}"
                    )
                    emit(name, "failed", runs[name])
                    continue
                emit(name, "submitted")
        if not pending:
            continue  # only skipped nodes were left; the loop re-checks and ends
        done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for future in done:
            name = pending.pop(future)
            outcome = outcome_of(future, name)
            if outcome.ok and outcome.value.ok:
                runs[name] = NodeRun(name, "done", result=outcome.value)
                produced[name] = outcome.value
            elif outcome.ok:  # the recipe ran and failed
                result = outcome.value
                runs[name] = NodeRun(
                    name, "failed", result=result, error=result.error, traceback="\n".join(result.log)
                )
            else:  # the task itself raised (bad inputs, worker lost)
                runs[name] = NodeRun(name, "failed", error=outcome.error, traceback=outcome.traceback)
            emit(name, runs[name].status, runs[name])
    outputs = {}
    for out_name, source in workflow.outputs.items():
        src_node, src_out = _split_source(source)
        if src_node in produced and src_out in produced[src_node].outputs:
            outputs[out_name] = produced[src_node].outputs[src_out]
    ordered = {name: runs[name] for name in workflow.order}
    return WorkflowResult(workflow.name, workflow.version, work_dir, ordered, outputs)


def _first_bad(deps: list[str], runs: Mapping[str, NodeRun]) -> str:
    return next(d for d in deps if d in runs and runs[d].status != "done")


def _check_workflow_inputs(workflow: Workflow, inputs: Mapping[str, Any]) -> dict[str, Any]:
    declared = {p.name: p for p in workflow.inputs}
    unknown = sorted(set(inputs) - set(declared))
    if unknown:
        raise WorkflowError(
            f"workflow {workflow.name!r} has no input(s) {', '.join(unknown)}; inputs: {', '.join(declared)}"
        )
    checked = {}
    for name, port in declared.items():
        if inputs.get(name) is None:
            if not port.optional:
                raise WorkflowError(
                    f"workflow {workflow.name!r}: required input {name!r} ({port.kind.value}) is missing"
                )
            continue
        try:
            checked[name] = check_port_value(f"workflow {workflow.name!r}", port, inputs[name])
        except RecipeInputError as exc:
            raise WorkflowError(str(exc)) from None
    return checked


def _node_task(
    workflow: Workflow,
    name: str,
    given: Mapping[str, Any],
    produced: Mapping[str, RecipeResult],
    params: RecipeParameters,
    work_dir: Path,
) -> NodeTask:
    node = workflow.node(name)
    values: dict[str, Any] = {}
    parents: list[str] = []
    for target, source in node.inputs.items():
        src_node, src_name = _split_source(source)
        if src_node == WORKFLOW_INPUTS:
            if src_name in given:
                values[target] = given[src_name]
            continue
        result = produced[src_node]
        if src_name in result.outputs:  # an optional output may be absent
            values[target] = result.outputs[src_name]
        if result.provenance is not None and result.provenance.id not in parents:
            parents.append(result.provenance.id)
    return NodeTask(
        recipe=workflow.recipe_of(name),
        inputs=values,
        params=params,
        work_dir=work_dir / name,
        workflow=workflow.name,
        workflow_version=workflow.version,
        node=name,
        parents=parents,
    )


# --------------------------------------------------------------------------------------------
# standard workflows

WorkflowFactory = Callable[[], Workflow]


@dataclass(frozen=True)
class WorkflowEntry:
    """A registered standard workflow: its factory and the classifications it serves.

    ``modes`` are ``(instrument, arm, mode)`` triples of :class:`~hcdc.instruments.base.FileMetadata`
    (``None`` matches anything) of the science files the workflow reduces.
    """

    name: str
    factory: WorkflowFactory
    modes: tuple[tuple[str | None, str | None, str | None], ...] = ()
    priority: int = 0


_WORKFLOWS: dict[str, WorkflowEntry] = {}

# hcdc's standard workflows and the plugins' are ``hcdc.workflows`` entry points, imported on the
# first registry lookup (not at import time: they import this module, so importing them here
# would make an import circle)
_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    load_plugins()
    _loaded = True


def load_plugins() -> list[str]:
    """Import hcdc's standard workflows and the ``hcdc.workflows`` entry points not imported yet
    (:func:`hcdc.runtime.plugins.load_plugins`); returns what was newly imported."""
    return _load_plugins(GROUPS["workflows"])


def register_workflow(
    name: str, *, modes: Sequence[tuple[str | None, str | None, str | None]] = (), priority: int = 0
) -> Callable[[WorkflowFactory], WorkflowFactory]:
    """Decorator registering a function that builds a standard workflow.

    ``modes`` are the classifications it serves (see :class:`WorkflowEntry`); when several
    workflows serve a mode, :func:`select_workflow` prefers the highest ``priority``.

    The factory is called when the workflow is needed, so a workflow whose recipes are not
    available (an optional dependency missing) is simply not offered by :func:`list_workflows`.
    """

    def decorate(factory: WorkflowFactory) -> WorkflowFactory:
        _WORKFLOWS[name] = WorkflowEntry(name, factory, tuple(modes), priority)
        return factory

    return decorate


def unregister_workflow(name: str) -> None:
    _load()
    _WORKFLOWS.pop(name, None)


def get_workflow(name: str) -> Workflow:
    """Build the standard workflow ``name`` (validated)."""
    _load()
    entry = _WORKFLOWS.get(name)
    if entry is None:
        raise WorkflowError(
            f"no workflow named {name!r}; known workflows: {', '.join(sorted(_WORKFLOWS)) or 'none'}"
        )
    workflow = entry.factory()
    if workflow.name != name:
        raise WorkflowError(f"workflow factory {name!r} built a workflow named {workflow.name!r}")
    return workflow


def list_workflows() -> list[Workflow]:
    """The standard workflows whose recipes are available, sorted by name."""
    _load()
    available = []
    for name in sorted(_WORKFLOWS):
        try:
            available.append(get_workflow(name))
        except WorkflowError:
            continue  # a recipe it needs is not available in this installation
    return available


def describe_workflows() -> list[dict[str, Any]]:
    """:meth:`Workflow.describe` of every available workflow, with the modes it serves."""
    _load()
    described = []
    for workflow in list_workflows():
        info = workflow.describe()
        info["modes"] = [list(m) for m in _WORKFLOWS[workflow.name].modes]
        described.append(info)
    return described


def select_workflow(files: Sequence[Any]) -> Workflow:
    """The standard workflow for a dataset, from its files' classification.

    ``files`` are :class:`~hcdc.instruments.base.FileMetadata` (or anything with ``instrument``,
    ``arm``, ``mode``, ``file_class`` attributes). The science files (``file_class`` SCIENCE,
    or every file when none is) must share one ``(instrument, arm, mode)``; of the available
    workflows serving it, the one of highest priority is chosen.
    """
    if not files:
        raise WorkflowError("cannot choose a workflow for an empty dataset")
    science = [f for f in files if (f.file_class or "").upper() == "SCIENCE"] or list(files)
    keys = sorted({(f.instrument, f.arm, f.mode) for f in science}, key=str)
    if len(keys) != 1:
        raise WorkflowError(f"the dataset mixes instrument modes {keys}; reduce each mode separately")
    instrument, arm, mode = keys[0]
    _load()
    candidates = sorted(_WORKFLOWS.values(), key=lambda e: (-e.priority, e.name))
    for entry in candidates:
        for inst, a, m in entry.modes:
            if (inst is None or inst == instrument) and (a is None or a == arm) and (m is None or m == mode):
                try:
                    return get_workflow(entry.name)
                except WorkflowError:
                    break  # registered but its recipes are unavailable: try the next workflow
    served = sorted({"/".join(str(p) for p in m) for e in _WORKFLOWS.values() for m in e.modes})
    raise WorkflowError(
        f"no available standard workflow for {instrument}/{arm}/{mode}; "
        f"modes served: {', '.join(served) or 'none'}"
    )


__all__ = [
    "Node",
    "NodeRun",
    "NodeTask",
    "Workflow",
    "WorkflowError",
    "WorkflowResult",
    "describe_workflows",
    "get_workflow",
    "list_workflows",
    "register_workflow",
    "run_node_task",
    "run_workflow",
    "select_workflow",
    "unregister_workflow",
]
