"""Hierarchical JSON import and export of the Target Data Base.

The file (schema: ``tdb.schema.json`` next to this module, printed by ``hcdc tdb json-schema``)::

    {"format": "hcdc-tdb", "version": 1, "source": "...", "exported_at": "...",
     "targets": [{"name": ..., "aliases": [...], <values>, "sources": {...},
                  "candidates": [{"label", "status", "statistic", "grouped_by"}],
                  "observations": [{<observation>, "reductions": [{<reduction>,
                                    "detections": [{<detection>, "candidate": label}]}]}]}]}

Import is tolerant: any field but a target's ``name`` may be missing or null (other surveys'
tables have fewer columns), unknown fields go to the row's ``extra`` and come back out on export.
Rows are matched by ``uid`` (a row without one gets a new ``import:<uuid>``), so importing the
same file twice changes nothing, and an export imported into an empty catalogue exports
identically (the round trip loses nothing). Targets are matched by name through their aliases
and the dictionary (offline), or created with the file's values; existing values are not
overwritten unless ``overwrite``.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Connection, select, true, update

from hcdc.archive.models import utcnow
from hcdc.archive.targets import (
    VALUE_FIELDS,
    TargetError,
    add_aliases,
    create_target,
    find_target,
    resolve,
    set_values,
)
from hcdc.archive.tdb import DETECTION_FIELDS, OBSERVATION_FIELDS, REDUCTION_FIELDS, _upsert
from hcdc.archive.tdb_models import Candidate, Detection, Observation, Reduction, Target, TargetAlias

FORMAT = "hcdc-tdb"
VERSION = 1
_DATETIME_FIELDS = {"release_date", "date"}


class ExchangeError(ValueError):
    """An exchange file cannot be read (the message names the file and the reason)."""


def schema() -> dict[str, Any]:
    """The published JSON schema of the exchange file."""
    text = resources.files("hcdc.archive.exchange").joinpath("tdb.schema.json").read_text()
    return json.loads(text)


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime) else value


def _row_dict(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    out = {f: _iso(getattr(row, f)) for f in fields if f != "extra"}
    extra = dict(row.extra or {})
    # extra holds unknown imported fields: they come back at their original place
    out.update({k: v for k, v in extra.get("imported", {}).items() if k not in out})
    rest = {k: v for k, v in extra.items() if k != "imported"}
    out["extra"] = rest
    return out


# --------------------------------------------------------------------------------------------
# export


def export_tdb(
    conn: Connection,
    target_ids: list[int] | None = None,
    visible_observations: ColumnElement[bool] | None = None,
    visible_reductions: ColumnElement[bool] | None = None,
    source: str = "hcdc",
) -> dict[str, Any]:
    """The TDB (or the targets ``target_ids``) as a hierarchical dict, what the clauses let through."""
    query = select(Target).order_by(Target.name, Target.id)
    if target_ids is not None:
        query = query.where(Target.id.in_(target_ids))
    targets = []
    for target in conn.execute(query):
        item: dict[str, Any] = {"name": target.name}
        item["aliases"] = [
            a
            for a in conn.scalars(
                select(TargetAlias.name).where(TargetAlias.target_id == target.id).order_by(TargetAlias.id)
            )
        ]
        item.update(simbad_id=target.simbad_id, resolved=target.resolved)
        item.update({f: getattr(target, f) for f in VALUE_FIELDS})
        item["sources"] = dict(target.sources or {})
        labels: dict[int, str] = {}
        item["candidates"] = []
        for cand in conn.execute(
            select(Candidate).where(Candidate.target_id == target.id).order_by(Candidate.label)
        ):
            labels[cand.id] = cand.label
            item["candidates"].append(
                {
                    "label": cand.label,
                    "status": cand.status,
                    "statistic": cand.statistic,
                    "grouped_by": cand.grouped_by,
                }
            )
        item["observations"] = _export_observations(
            conn, target.id, labels, visible_observations, visible_reductions
        )
        targets.append(item)
    return {
        "format": FORMAT,
        "version": VERSION,
        "source": source,
        "exported_at": utcnow().isoformat(timespec="seconds"),
        "targets": targets,
    }


def _export_observations(
    conn: Connection,
    target_id: int,
    labels: dict[int, str],
    visible_observations: ColumnElement[bool] | None,
    visible_reductions: ColumnElement[bool] | None,
) -> list[dict[str, Any]]:
    out = []
    observations = conn.execute(
        select(Observation)
        .where(
            Observation.target_id == target_id,
            true() if visible_observations is None else visible_observations,
        )
        .order_by(Observation.date_jd, Observation.uid)
    )
    for obs in observations:
        item = _row_dict(obs, OBSERVATION_FIELDS)
        item["reductions"] = []
        reductions = conn.execute(
            select(Reduction)
            .where(
                Reduction.observation_id == obs.id,
                true() if visible_reductions is None else visible_reductions,
            )
            .order_by(Reduction.uid)
        )
        for red in reductions:
            red_item = _row_dict(red, REDUCTION_FIELDS)
            red_item["detections"] = []
            for det in conn.execute(
                select(Detection).where(Detection.reduction_id == red.id).order_by(Detection.uid)
            ):
                det_item = _row_dict(det, DETECTION_FIELDS)
                det_item["candidate"] = labels.get(det.candidate_id) if det.candidate_id else None
                red_item["detections"].append(det_item)
            item["reductions"].append(red_item)
        out.append(item)
    return out


def write_export(data: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# import


def read_json(path: Path) -> dict[str, Any]:
    """Read and check the envelope of an exchange file; :class:`ExchangeError` naming the file."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ExchangeError(f"{path}: cannot read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ExchangeError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ExchangeError(f'{path}: not an hcdc TDB exchange file ("format": "{FORMAT}" missing)')
    if data.get("version") != VERSION:
        raise ExchangeError(
            f"{path}: exchange format version {data.get('version')!r}, this hcdc reads {VERSION}"
        )
    if not isinstance(data.get("targets"), list):
        raise ExchangeError(f'{path}: "targets" must be a list')
    return data


def _split(item: dict[str, Any], fields: tuple[str, ...], nested: set[str], where: str) -> dict[str, Any]:
    """Known columns of ``item`` (missing ones absent), the unknown ones under extra['imported']."""
    if not isinstance(item, dict):
        raise ExchangeError(f"{where}: expected an object, got {type(item).__name__}")
    values: dict[str, Any] = {}
    for f in fields:
        if f in item and f not in ("uid", "extra"):
            value = item[f]
            if f in _DATETIME_FIELDS and isinstance(value, str):
                try:
                    value = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None)
                except ValueError as exc:
                    raise ExchangeError(f"{where}: {f} {value!r} is not an ISO 8601 date") from exc
            values[f] = value
    extra = dict(item.get("extra") or {})
    unknown = {k: v for k, v in item.items() if k not in fields and k not in nested}
    if unknown:
        extra["imported"] = unknown
    values["extra"] = extra
    return values


def _import_target(conn: Connection, item: dict[str, Any], where: str, overwrite: bool) -> int:
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ExchangeError(f'{where}: a target needs a "name"')
    values = {f: item[f] for f in VALUE_FIELDS if item.get(f) is not None}
    sources = dict(item.get("sources") or {})
    aliases = [a for a in item.get("aliases") or [] if isinstance(a, str)]
    target_id = find_target(conn, name)
    for alias in aliases:
        target_id = target_id or find_target(conn, alias)
    if target_id is None:
        try:
            target_id = resolve(conn, name, offline=True)
        except TargetError:
            target_id = create_target(
                conn,
                name,
                values,
                {k: sources.get(k, "import") for k in values},
                resolved=item.get("resolved") or "import",
                alias_origin="import",
                simbad_id=item.get("simbad_id"),
            )
    row = conn.execute(select(Target).where(Target.id == target_id)).one()
    changes = {k: v for k, v in values.items() if overwrite or getattr(row, k) is None}
    if changes:
        by_source: dict[str, dict[str, Any]] = {}
        for k, v in changes.items():
            by_source.setdefault(sources.get(k, "import"), {})[k] = v
        for source, group in by_source.items():
            set_values(conn, target_id, group, source)
    add_aliases(conn, target_id, [a for a in aliases if find_target(conn, a) in (None, target_id)], "import")
    return target_id


def _candidate_ids(conn: Connection, target_id: int, items: list[Any], where: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for cand in items:
        label = cand.get("label") if isinstance(cand, dict) else None
        if not label:
            raise ExchangeError(f'{where}: a candidate needs a "label"')
        values = {k: cand[k] for k in ("status", "statistic", "grouped_by") if cand.get(k) is not None}
        existing = conn.scalar(
            select(Candidate.id).where(Candidate.target_id == target_id, Candidate.label == label)
        )
        if existing is None:
            values.setdefault("grouped_by", "import")
            existing = conn.execute(
                Candidate.__table__.insert()
                .values(target_id=target_id, label=label, **values)
                .returning(Candidate.id)
            ).scalar_one()
        elif values:
            conn.execute(
                update(Candidate).where(Candidate.id == existing).values(updated_at=utcnow(), **values)
            )
        out[label] = existing
    return out


def import_tdb(
    conn: Connection,
    data: dict[str, Any],
    origin: str = "file",
    overwrite: bool = False,
    survey: str | None = None,
) -> dict[str, int]:
    """Import an exchange dict (see the module docstring); returns counts of rows written.

    ``survey`` sets the survey of observations that do not name one (access rule R11).
    """
    counts = {"targets": 0, "observations": 0, "reductions": 0, "detections": 0, "candidates": 0}
    for t_index, item in enumerate(data.get("targets") or []):
        where = f"{origin}: targets[{t_index}]"
        if not isinstance(item, dict):
            raise ExchangeError(f"{where}: expected an object")
        target_id = _import_target(conn, item, where, overwrite)
        counts["targets"] += 1
        candidates = _candidate_ids(conn, target_id, item.get("candidates") or [], where)
        counts["candidates"] += len(candidates)
        for o_index, obs in enumerate(item.get("observations") or []):
            o_where = f"{where}.observations[{o_index}]"
            values = _split(obs, OBSERVATION_FIELDS, {"reductions"}, o_where)
            values.setdefault("origin", "import")
            values["origin"] = values["origin"] or "import"
            if survey and not values.get("survey"):
                values["survey"] = survey
            observation_id = _upsert(
                conn,
                Observation,
                obs.get("uid") or f"import:{uuid.uuid4()}",
                {"target_id": target_id, **values},
            )
            counts["observations"] += 1
            for r_index, red in enumerate(obs.get("reductions") or []):
                r_where = f"{o_where}.reductions[{r_index}]"
                r_values = _split(red, REDUCTION_FIELDS, {"detections"}, r_where)
                if r_values.get("validated") is None:
                    r_values["validated"] = False
                reduction_id = _upsert(
                    conn,
                    Reduction,
                    red.get("uid") or f"import:{uuid.uuid4()}",
                    {"observation_id": observation_id, **r_values},
                )
                counts["reductions"] += 1
                for d_index, det in enumerate(red.get("detections") or []):
                    d_where = f"{r_where}.detections[{d_index}]"
                    d_values = _split(det, DETECTION_FIELDS, {"candidate"}, d_where)
                    label = det.get("candidate")
                    if label and label not in candidates:
                        candidates.update(_candidate_ids(conn, target_id, [{"label": label}], d_where))
                    d_values["candidate_id"] = candidates.get(label) if label else None
                    _upsert(
                        conn,
                        Detection,
                        det.get("uid") or f"import:{uuid.uuid4()}",
                        {"reduction_id": reduction_id, **d_values},
                    )
                    counts["detections"] += 1
    return counts


__all__ = [
    "FORMAT",
    "VERSION",
    "ExchangeError",
    "export_tdb",
    "import_tdb",
    "read_json",
    "schema",
    "write_export",
]
