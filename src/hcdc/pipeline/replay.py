"""Replay: run again what a provenance record describes, from the record alone.

:func:`rerun` finds the recipe by name AND version, re-validates the recorded parameters, and
checks every input file (and array) against its recorded sha256 before running; a clear
:class:`~hcdc.pipeline.provenance.ProvenanceError` otherwise. It sits above both the records
(:mod:`hcdc.pipeline.provenance`) and the recipe registry (:mod:`hcdc.pipeline.registry`), which is why
it is not part of either.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hcdc.pipeline.errors import ParameterError, UnknownRecipeError
from hcdc.pipeline.provenance import (
    DataRecord,
    FileRef,
    ProvenanceError,
    ProvenanceRecord,
    decode_array,
    sha256_array,
    sha256_path,
)
from hcdc.pipeline.recipe import RecipeContext, RecipeResult
from hcdc.pipeline.registry import get_recipe


def _as_record(record: ProvenanceRecord | str | Path) -> ProvenanceRecord:
    if isinstance(record, ProvenanceRecord):
        return record
    if isinstance(record, Path) or (isinstance(record, str) and not record.lstrip().startswith("{")):
        return ProvenanceRecord.load(record)
    return ProvenanceRecord.from_json(record)


def _replay_input(record: ProvenanceRecord, rec: DataRecord, supplied: Mapping[str, Any]) -> Any:
    """The value of one recorded input, checked against its checksum."""
    where = f"provenance {record.id} (recipe {record.recipe} {record.recipe_version}), input {rec.name!r}"
    if rec.array is not None:
        if rec.name in supplied:
            array = supplied[rec.name]
        elif rec.array.data is not None:
            array = decode_array(rec.array.data)
        else:
            raise ProvenanceError(
                f"{where}: the array ({rec.array.dtype} {rec.array.shape}) was too large to embed; "
                f"supply it with supplied={{{rec.name!r}: array}}"
            )
        actual = sha256_array(array)
        if actual != rec.array.sha256:
            raise ProvenanceError(
                f"{where}: array checksum {actual} differs from the recorded {rec.array.sha256}"
            )
        return array
    if rec.files:
        refs = []
        for item in rec.files:
            path = Path(item.path)
            if not path.exists():
                raise ProvenanceError(f"{where}: {path} no longer exists")
            actual = sha256_path(path)
            if actual != item.sha256:
                raise ProvenanceError(
                    f"{where}: {path} changed since the run (sha256 {actual}, recorded {item.sha256})"
                )
            refs.append(FileRef(path, item.id))
        return refs if rec.kind == "raw_files" else refs[0]
    return rec.value


def rerun(
    record: ProvenanceRecord | str | Path,
    work_dir: str | Path,
    *,
    supplied: Mapping[str, Any] | None = None,
) -> RecipeResult:
    """Run again what ``record`` describes, into ``work_dir``, from the record alone.

    ``record`` is a record, its JSON text, or the path of a JSON file. The recipe is found by
    name and exact version, the recorded parameters (defaults included) are re-validated, and
    every input is checked against its recorded sha256. ``supplied`` provides in-memory arrays
    too large to have been embedded. The new record's ``rerun_of`` is the original's id.

    Raises :class:`ProvenanceError` when the recipe version is unavailable, an input file is
    missing or changed, or the recorded parameters are no longer valid.
    """
    rec = _as_record(record)
    try:
        recipe_cls = get_recipe(rec.recipe, rec.recipe_version)
    except UnknownRecipeError as exc:
        raise ProvenanceError(f"cannot rerun provenance {rec.id}: {exc}") from None
    inputs = {item.name: _replay_input(rec, item, supplied or {}) for item in rec.inputs}
    try:
        params = recipe_cls.parse_params(rec.parameters)
    except ParameterError as exc:
        raise ProvenanceError(
            f"cannot rerun provenance {rec.id}: recorded parameters invalid: {exc}"
        ) from None
    context = RecipeContext(
        work_dir=Path(work_dir),
        workflow=rec.workflow,
        workflow_version=rec.workflow_version,
        node=rec.node,
        parents=list(rec.parents),
        rerun_of=rec.id,
    )
    return recipe_cls().run(inputs, params, context)


__all__ = ["rerun"]
