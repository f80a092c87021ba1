"""What a user asks the data centre to do from the web: queue a reduction, delay a release.

The request goes through the catalogue facade (``who.catalogue.request_reduction``); rights are
decided by :mod:`hcdc.archive.access` (A6 for reductions); parameters by the recipes' own parameter models
(:meth:`hcdc.pipeline.workflow.Workflow.resolve_params`, the same validation the worker does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from hcdc.archive.catalogue import AccessDenied, NotFound
from hcdc.pipeline.ports import DataKind
from hcdc.pipeline.workflow import WorkflowError, describe_workflows, get_workflow
from hcdc.web.auth import Viewer


class ActionError(ValueError):
    """The request is malformed (HTTP 422); the message says which field and why."""


def dataset_workflows() -> list[dict[str, Any]]:
    """The standard workflows that run on a catalogued dataset (one raw-files input), described
    with their nodes' parameters (name, type, default, description)."""
    out = []
    for info in describe_workflows():
        kinds = [p["kind"] for p in info["inputs"]]
        if kinds == [DataKind.RAW_FILES.value]:
            out.append(info)
    return out


def parameter_strings(parameters: Mapping[str, Any]) -> list[str]:
    """``{"level2.ncomp": 3, "level2.algorithm_params": {...}}`` -> ``["level2.ncomp=3", ...]``
    (the ``k=v`` form jobs store; containers as JSON, booleans as ``true``/``false``)."""
    out = []
    for key, value in parameters.items():
        if not isinstance(key, str) or not key or "=" in key:
            raise ActionError(f"parameter name {key!r} is not valid")
        if value is None:
            text = "none"
        elif isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dict | list):
            text = json.dumps(value)
        else:
            text = str(value)
        out.append(f"{key}={text}")
    return out


def request_reduction(who: Viewer, dataset_id: int, workflow: str, parameters: Mapping[str, Any]) -> int:
    """Queue ``workflow`` on a dataset for the asking user; returns the job id.

    Raises :class:`ActionError` (unknown workflow, bad parameters), :class:`LookupError` (a
    dataset the user may not see, answered like one that does not exist) and
    :class:`~hcdc.archive.access.AccessDenied` (rule A6: quota, access window, anonymous).
    """
    if not who.catalogue.visible("dataset", dataset_id):
        raise NotFound(f"no dataset {dataset_id}")
    names = {w["name"] for w in dataset_workflows()}
    if workflow not in names:
        raise ActionError(
            f"unknown workflow {workflow!r} for a dataset; choose one of {', '.join(sorted(names))}"
        )
    strings = parameter_strings(parameters)
    try:
        get_workflow(workflow).resolve_params(strings)
    except WorkflowError as exc:
        raise ActionError(str(exc)) from None
    return who.catalogue.request_reduction(dataset_id, workflow, strings)


__all__ = ["AccessDenied", "ActionError", "dataset_workflows", "parameter_strings", "request_reduction"]
