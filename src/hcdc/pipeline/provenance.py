"""Provenance: what went into a product, how it was made, and how to make it again.

Every recipe run yields a :class:`ProvenanceRecord` (see :meth:`hcdc.pipeline.recipe.Recipe.run`):

* inputs: per named input, the files (path, sha256, catalogue id when known), the array
  (shape, dtype, sha256, and the data itself when small enough to embed) or the JSON value;
* outputs: the same description of what the run produced;
* the recipe name and version, the workflow name, version and node when run inside a workflow,
  and the provenance ids of the runs that produced the inputs (``parents``: the tree down to raw
  files);
* every parameter, defaults filled in;
* hcdc's version and git commit (read from the source tree; ``unknown`` when not in a git
  checkout), Python and key library versions, the host;
* start and end times (UTC, ISO 8601), status, error and log.

A record round-trips through JSON (:meth:`ProvenanceRecord.to_json` /
:meth:`ProvenanceRecord.from_json`), and :func:`hcdc.pipeline.replay.rerun` rebuilds the outputs
from the record alone: it finds the recipe by name AND version, re-validates the recorded parameters, and
checks every input file against its recorded sha256 before running (a clear
:class:`ProvenanceError` otherwise).

Checksums: files are hashed in 1 MiB chunks; a product directory is hashed as the sha256 of the
sorted lines ``"<relative path> <file sha256>"``; an array as the sha256 of its dtype, shape and
C-ordered bytes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, Field

from hcdc.runtime.versions import environment
from hcdc.science.checksums import sha256_file

if TYPE_CHECKING:
    import numpy as np

#: arrays up to this size (bytes) are embedded in the record, so a rerun needs nothing else
EMBED_ARRAY_MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class FileRef:
    """A file (or product directory) input with its catalogue id, when it has one.

    Plain ``str``/``Path`` inputs are accepted too; a ``FileRef`` lets the provenance record
    keep the catalogue id next to the path and checksum.
    """

    path: Path
    id: int | str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))


# What a record needs to know of a recipe run, written as protocols: the recipe module
# (:class:`~hcdc.pipeline.recipe.Recipe`, ``Port``, ``RecipeContext``) builds on this module,
# so this one must not import it.
class _RecipeIdentity(Protocol):
    name: str
    version: str


class _RunContext(Protocol):
    workflow: str | None
    workflow_version: str | None
    node: str | None
    parents: Sequence[str]
    rerun_of: str | None


class _PortKind(Protocol):
    value: str


class _Port(Protocol):
    name: str
    kind: _PortKind


class ProvenanceError(RuntimeError):
    """A record cannot be replayed: an input changed or vanished, or the recipe is unavailable."""


# --------------------------------------------------------------------------------------------
# checksums


def sha256_path(path: str | Path) -> str:
    """Hex sha256 of a file, or of a directory (its files' relative paths and sha256s)."""
    path = Path(path)
    if path.is_dir():
        lines = [
            f"{member.relative_to(path).as_posix()} {sha256_file(member)}"
            for member in sorted(path.rglob("*"))
            if member.is_file()
        ]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return sha256_file(path)


def sha256_array(array: np.ndarray) -> str:
    """Hex sha256 of an array's dtype, shape and C-ordered bytes."""
    import numpy as np

    contiguous = np.ascontiguousarray(array)
    digest = hashlib.sha256(f"{contiguous.dtype.str}{contiguous.shape}".encode())
    digest.update(contiguous.tobytes())
    return digest.hexdigest()


def _encode_array(array: np.ndarray) -> str:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_array(text: str) -> np.ndarray:
    """The array that ``_encode_array`` embedded in a record (base64 of its ``.npy`` bytes)."""
    import numpy as np

    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


# --------------------------------------------------------------------------------------------
# the record


class FileItem(BaseModel):
    """One file (or product directory) with its checksum and catalogue id."""

    path: str
    sha256: str
    id: int | str | None = None


class ArrayItem(BaseModel):
    """An in-memory array: its shape, dtype, checksum and (when small) the data (base64 .npy)."""

    shape: list[int]
    dtype: str
    sha256: str
    data: str | None = None


class DataRecord(BaseModel):
    """One named input or output of a run: files, an array, or a JSON value."""

    name: str
    kind: str
    files: list[FileItem] = Field(default_factory=list)
    array: ArrayItem | None = None
    value: Any = None


class ProvenanceRecord(BaseModel):
    """How one product was made (see the module docstring for what each field holds)."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    recipe: str
    recipe_version: str
    workflow: str | None = None
    workflow_version: str | None = None
    node: str | None = None
    parents: list[str] = Field(default_factory=list)
    rerun_of: str | None = None
    parameters: dict[str, Any]
    inputs: list[DataRecord]
    outputs: list[DataRecord] = Field(default_factory=list)
    software_version: str
    git_commit: str
    git_dirty: bool | None = None
    python: str
    libraries: dict[str, str]
    host: str
    platform: str
    started: str  # UTC, ISO 8601
    finished: str  # UTC, ISO 8601
    status: str
    error: str | None = None
    log: list[str] = Field(default_factory=list)

    @classmethod
    def for_run(
        cls,
        *,
        recipe: _RecipeIdentity,
        params: BaseModel,
        inputs: list[DataRecord],
        outputs: list[DataRecord],
        context: _RunContext,
        started: dt.datetime,
        finished: dt.datetime,
        status: str,
        error: str | None,
        log: list[str],
    ) -> ProvenanceRecord:
        env = environment()
        return cls(
            recipe=recipe.name,
            recipe_version=recipe.version,
            workflow=context.workflow,
            workflow_version=context.workflow_version,
            node=context.node,
            parents=list(context.parents),
            rerun_of=context.rerun_of,
            parameters=params.model_dump(mode="json"),
            inputs=inputs,
            outputs=outputs,
            software_version=env["software_version"],
            git_commit=env["git_commit"],
            git_dirty=env["git_dirty"],
            python=env["python"],
            libraries=env["libraries"],
            host=env["host"],
            platform=env["platform"],
            started=started.isoformat(),
            finished=finished.isoformat(),
            status=status,
            error=error,
            log=list(log),
        )

    def to_json(self, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str | bytes) -> ProvenanceRecord:
        return cls.model_validate_json(text)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProvenanceRecord:
        try:
            return cls.from_json(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ProvenanceError(f"{path}: not a readable provenance record ({exc})") from exc

    def input(self, name: str) -> DataRecord:
        return _by_name(self.inputs, name, "input")

    def output(self, name: str) -> DataRecord:
        return _by_name(self.outputs, name, "output")

    @property
    def duration_s(self) -> float:
        return (
            dt.datetime.fromisoformat(self.finished) - dt.datetime.fromisoformat(self.started)
        ).total_seconds()


def _by_name(records: list[DataRecord], name: str, what: str) -> DataRecord:
    for rec in records:
        if rec.name == name:
            return rec
    raise KeyError(f"no {what} named {name!r} (have: {', '.join(r.name for r in records)})")


# --------------------------------------------------------------------------------------------
# describing inputs and outputs


def describe_value(name: str, kind: str, value: Any, *, embed_arrays: bool) -> DataRecord:
    """A :class:`DataRecord` for one input/output value (files are checksummed here)."""
    import numpy as np

    if isinstance(value, np.ndarray):
        data = _encode_array(value) if embed_arrays and value.nbytes <= EMBED_ARRAY_MAX_BYTES else None
        item = ArrayItem(
            shape=list(value.shape), dtype=value.dtype.str, sha256=sha256_array(value), data=data
        )
        return DataRecord(name=name, kind=kind, array=item)
    if kind in ("raw_files", "level1", "level2", "path"):
        values = value if isinstance(value, list | tuple) else [value]
        files = []
        for v in values:
            ref_id = v.id if isinstance(v, FileRef) else None
            path = Path(v.path if isinstance(v, FileRef) else v).resolve()
            files.append(FileItem(path=str(path), sha256=sha256_path(path), id=ref_id))
        return DataRecord(name=name, kind=kind, files=files)
    return DataRecord(name=name, kind=kind, value=value)


def describe_inputs(ports: Sequence[_Port], values: Mapping[str, Any]) -> list[DataRecord]:
    """Records of the inputs given to a run (small arrays embedded, for
    :func:`~hcdc.pipeline.replay.rerun`)."""
    return [
        describe_value(p.name, p.kind.value, values[p.name], embed_arrays=True)
        for p in ports
        if p.name in values
    ]


def describe_outputs(ports: Sequence[_Port], values: Mapping[str, Any]) -> list[DataRecord]:
    """Records of a run's outputs (checksums only: outputs are rebuilt, not stored here)."""
    return [
        describe_value(p.name, p.kind.value, values[p.name], embed_arrays=False)
        for p in ports
        if p.name in values
    ]


def provenance_tree(
    record: ProvenanceRecord,
    lookup: Mapping[str, ProvenanceRecord] | Callable[[str], ProvenanceRecord | None],
) -> dict[str, Any]:
    """How ``record``'s outputs were made, down to the raw files, as a nested dict.

    Each level holds the run's id, recipe and version, workflow node, status, parameters, its
    input files (path, sha256, catalogue id) and ``parents``: the trees of the runs that
    produced its inputs, found by id with ``lookup`` (a mapping or a function; the products
    catalogue in a data centre). A parent that cannot be found appears as
    ``{"id": ..., "missing": True}``.
    """
    find = lookup.get if isinstance(lookup, Mapping) else lookup

    def build(rec: ProvenanceRecord, seen: frozenset[str]) -> dict[str, Any]:
        parents = []
        for parent_id in rec.parents:
            parent = find(parent_id) if parent_id not in seen else None
            if parent is None:
                parents.append({"id": parent_id, "missing": True})
            else:
                parents.append(build(parent, seen | {rec.id}))
        return {
            "id": rec.id,
            "recipe": rec.recipe,
            "recipe_version": rec.recipe_version,
            "workflow": rec.workflow,
            "node": rec.node,
            "status": rec.status,
            "parameters": rec.parameters,
            "inputs": [
                {"name": item.name, "kind": item.kind, "files": [f.model_dump() for f in item.files]}
                for item in rec.inputs
                if item.files
            ],
            "parents": parents,
        }

    return build(record, frozenset())


def outputs_differ(a: ProvenanceRecord, b: ProvenanceRecord) -> list[str]:
    """Names of the outputs whose checksums differ between two records (empty: identical)."""
    names = {o.name for o in a.outputs} | {o.name for o in b.outputs}
    differ = []
    for name in sorted(names):
        try:
            oa, ob = a.output(name), b.output(name)
        except KeyError:
            differ.append(name)
            continue
        sums_a = [f.sha256 for f in oa.files] or [oa.array.sha256 if oa.array else json.dumps(oa.value)]
        sums_b = [f.sha256 for f in ob.files] or [ob.array.sha256 if ob.array else json.dumps(ob.value)]
        if sums_a != sums_b:
            differ.append(name)
    return differ


__all__ = [
    "ArrayItem",
    "DataRecord",
    "FileItem",
    "ProvenanceError",
    "ProvenanceRecord",
    "describe_inputs",
    "describe_outputs",
    "decode_array",
    "outputs_differ",
    "provenance_tree",
    "FileRef",
    "sha256_array",
    "sha256_file",
    "sha256_path",
]
