"""Parameters of recipes: the pydantic base model, ``key=value`` strings, descriptions.

A recipe's ``Parameters`` subclass :class:`RecipeParameters` (unknown keys rejected); values
given as strings (``hcdc run ... ncomp=10``) are decoded by the type of their field
(:func:`decode_string_values`).
"""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from hcdc.pipeline.errors import ParameterError


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


def decode_string_values(model: type[RecipeParameters], values: Mapping[str, str]) -> dict[str, Any]:
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


def format_validation_error(recipe_name: str, exc: ValidationError) -> str:
    lines = [f"invalid parameters for recipe {recipe_name!r}:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(model)"
        lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


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
