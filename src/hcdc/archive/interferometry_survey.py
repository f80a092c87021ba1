"""Survey tracking (e.g. SPICA's ISSP): a target list per survey, and each target's progress
computed from the catalogue when asked — nothing about progress is stored, so it follows
ingests, validations and publications at once.

Stages, in order (:data:`STAGES`), each reached when the catalogue holds, for a granule of the
target (matched by normalised name, :func:`~hcdc.archive.interferometry_calibrators.name_key`,
or within 5″ of the target's position when the list gives one):

| stage | evidence | date |
|---|---|---|
| planned | the target is in the list | import time |
| observed | any granule (L0 observation log, L1, L2 or L3) | start of its first night (``t_min``) |
| reduced | a granule of level ≥ 1 | when its file was ingested |
| calibrated | a granule of level ≥ 2 | when its file was ingested |
| validated | a validation (``oi_validations``) of quality ≥ 3 of one of its files | validated_at |
| published | a granule of level 3 | when its file was ingested |

A target's stage is the furthest reached. It is **late** when it has a ``due`` date in the
past and is not yet validated. Only the granules the viewer may see count
(``access.visible_granules_clause``), and only members of the survey's group (and staff) see
a survey at all (``access.visible_surveys_clause``).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import ColumnElement, Connection, or_, select

from hcdc.archive.access import Principal, can_see_survey, datetime_of_mjd, utc_naive, visible_surveys_clause
from hcdc.archive.access_models import Group
from hcdc.archive.interferometry_calibrators import (
    MATCH_RADIUS_ARCSEC,
    CalibratorError,
    _angle,
    _separation_arcsec,
    _text,
    name_key,
    read_table,
)
from hcdc.archive.interferometry_models import GranuleRow, OiValidation
from hcdc.archive.interferometry_survey_models import Survey, SurveyTarget
from hcdc.archive.models import File, utcnow

STAGES = ("planned", "observed", "reduced", "calibrated", "validated", "published")
#: SPICA-DB quality from which a validated file counts (3 medium, 4 science ready).
VALIDATED_QUALITY = 3


class SurveyError(ValueError):
    """A survey or target list that cannot be used (the message says which and why)."""


def import_targets(
    conn: Connection, actor: Principal, survey: str, path: str, group: str | None
) -> dict[str, int]:
    """Create ``survey`` (owned by ``group``) if new, and add or update the targets of the
    CSV at ``path`` (columns ``name`` and optionally ``ra``, ``dec`` [deg or sexagesimal],
    ``due`` [YYYY-MM-DD], ``note``). Staff only. Returns counts of added / updated targets."""
    if not actor.is_staff:
        raise SurveyError(f"{actor.name}: only admins and operators import survey target lists")
    existing = conn.execute(select(Survey).where(Survey.name == survey)).first()
    if existing is None:
        if not group:
            raise SurveyError(f"survey {survey!r} is new: give its group (--group)")
        group_id = conn.scalar(select(Group.id).where(Group.name == group))
        if group_id is None:
            raise SurveyError(f"no group named {group!r}")
        survey_id = conn.execute(
            Survey.__table__.insert().values(name=survey, group_id=group_id, created_at=utcnow())
        ).inserted_primary_key[0]
    else:
        survey_id = existing.id
        if group and conn.scalar(select(Group.name).where(Group.id == existing.group_id)) != group:
            raise SurveyError(
                f"survey {survey!r} belongs to another group; its group is not changed by an import"
            )
    try:
        rows = read_table(path)
    except CalibratorError as exc:
        raise SurveyError(str(exc)) from None
    if not rows or "name" not in rows[0]:
        raise SurveyError(f"{path}: a CSV with a 'name' column (and optional ra, dec, due, note) is needed")
    counts = {"added": 0, "updated": 0}
    for i, row in enumerate(rows, start=1):
        where = f"{path} row {i}"
        name = _text(row.get("name"))
        if not name:
            raise SurveyError(f"{where}: empty name")
        ra, dec, due = _text(row.get("ra")), _text(row.get("dec")), _text(row.get("due"))
        try:
            values = {
                "name": name,
                "name_key": name_key(name),
                "ra": _angle(ra, True, f"{where} ra") if ra else None,
                "dec": _angle(dec, False, f"{where} dec") if dec else None,
                "due": utc_naive(dt.datetime.fromisoformat(due)) if due else None,
                "note": _text(row.get("note")),
            }
        except (CalibratorError, ValueError) as exc:
            raise SurveyError(f"{where}: {exc}") from None
        table = SurveyTarget.__table__
        found = conn.scalar(
            select(table.c.id).where(table.c.survey_id == survey_id, table.c.name_key == values["name_key"])
        )
        if found is None:
            conn.execute(table.insert().values(survey_id=survey_id, planned_at=utcnow(), **values))
            counts["added"] += 1
        else:
            conn.execute(table.update().where(table.c.id == found).values(**values))
            counts["updated"] += 1
    return counts


def _survey(conn: Connection, user: Principal, name: str) -> Any:
    row = conn.execute(select(Survey).where(Survey.name == name)).first()
    # the same answer for "no such survey" and "not yours": a survey's existence is not shown
    if row is None or not can_see_survey(conn, user, row.group_id):
        raise SurveyError(f"no survey {name!r} visible to {user.name}")
    return row


def list_surveys(conn: Connection, user: Principal) -> list[dict[str, Any]]:
    """The surveys ``user`` may follow, with their group and target count."""
    rows = conn.execute(
        select(Survey.id, Survey.name, Group.name.label("group"), Survey.created_at)
        .join(Group, Group.id == Survey.group_id)
        .where(visible_surveys_clause(user, Survey.group_id))
        .order_by(Survey.name)
    ).all()
    out = []
    for r in rows:
        n = len(conn.execute(select(SurveyTarget.id).where(SurveyTarget.survey_id == r.id)).all())
        out.append({"name": r.name, "group": r.group, "targets": n, "created_at": r.created_at})
    return out


def _matches(target: Any, granule: Any) -> bool:
    if name_key(granule.target_name) == target.name_key:
        return True
    if None in (target.ra, target.dec, granule.s_ra, granule.s_dec):
        return False
    return _separation_arcsec(target.ra, target.dec, granule.s_ra, granule.s_dec) <= MATCH_RADIUS_ARCSEC


def _history(target: Any, granules: list[Any], validations: dict[int, list[Any]]) -> list[dict[str, Any]]:
    """The stages ``target`` reached, each with its date and evidence (oldest first)."""
    mine = [g for g in granules if _matches(target, g)]
    events: dict[str, dict[str, Any]] = {"planned": {"at": target.planned_at, "evidence": "target list"}}

    def reach(stage: str, at: dt.datetime, evidence: str) -> None:
        if stage not in events or at < events[stage]["at"]:
            events[stage] = {"at": at, "evidence": evidence}

    for g in mine:
        level = g.calib_level if g.calib_level is not None else -1
        reach(
            "observed", datetime_of_mjd(g.t_min), f"granule {g.id} (night {g.night_id}, {g.instrument_name})"
        )
        for stage, minimum in (("reduced", 1), ("calibrated", 2), ("published", 3)):
            if level >= minimum:
                reach(stage, g.ingested_at, f"granule {g.id} L{level} in file {g.file_id}")
        for v in validations.get(g.file_id, []):
            if v.spica_quality >= VALIDATED_QUALITY:
                reach(
                    "validated", v.validated_at, f"file {v.file_id} validated {v.spica_quality} by {v.actor}"
                )
    return [{"stage": s, **events[s]} for s in STAGES if s in events]


def _stage(history: list[dict[str, Any]]) -> str:
    return max((h["stage"] for h in history), key=STAGES.index)


def survey_status(
    conn: Connection,
    user: Principal,
    survey: str,
    *,
    visible: ColumnElement[bool] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Summary counts per stage, per-target stage/history and the late targets of ``survey``
    as ``user`` sees it (``visible``: the viewer's granule filter; None = every granule)."""
    row = _survey(conn, user, survey)
    now = utc_naive(now) if now else utcnow()
    targets = conn.execute(
        select(SurveyTarget).where(SurveyTarget.survey_id == row.id).order_by(SurveyTarget.name_key)
    ).all()
    granules = _candidate_granules(conn, targets, visible)
    file_ids = {g.file_id for g in granules}
    validations: dict[int, list[Any]] = {}
    if file_ids:
        for v in conn.execute(
            select(OiValidation).where(
                or_(OiValidation.file_id.in_(file_ids), OiValidation.new_file_id.in_(file_ids))
            )
        ):
            for fid in (v.file_id, v.new_file_id):
                if fid in file_ids:
                    validations.setdefault(fid, []).append(v)
    items = []
    for t in targets:
        history = _history(t, granules, validations)
        stage = _stage(history)
        late = t.due is not None and t.due < now and STAGES.index(stage) < STAGES.index("validated")
        items.append(
            {"name": t.name, "ra": t.ra, "dec": t.dec, "due": t.due, "note": t.note,
             "stage": stage, "late": late, "history": history}
        )  # fmt: skip
    counts = {s: sum(1 for i in items if i["stage"] == s) for s in STAGES}
    reached = {s: sum(1 for i in items if STAGES.index(i["stage"]) >= STAGES.index(s)) for s in STAGES}
    group = conn.scalar(select(Group.name).where(Group.id == row.group_id))
    return {
        "survey": row.name,
        "group": group,
        "as_of": now,
        "targets": len(items),
        "counts": counts,
        "reached": reached,
        "late": [i["name"] for i in items if i["late"]],
        "items": items,
    }


def _candidate_granules(
    conn: Connection, targets: list[Any], visible: ColumnElement[bool] | None
) -> list[Any]:
    """The visible granules (with their file's ingest time) whose name or declination could
    match one of ``targets``; :func:`_matches` decides. Names are normalised in Python, so
    every visible granule's name and position is read (a few columns; fine for the
    ~1e4-1e5 granules of an OiDB-sized catalogue)."""
    if not targets:
        return []
    # outer: Level 0 granules imported from ObsPortal have no file (and reach only 'observed')
    query = select(*GranuleRow.__table__.c, File.ingested_at).outerjoin(File, File.id == GranuleRow.file_id)
    if visible is not None:
        query = query.where(visible)
    band = MATCH_RADIUS_ARCSEC / 3600.0
    decs = [t.dec for t in targets if t.dec is not None]
    keys = {t.name_key for t in targets}
    rows = conn.execute(query).all()
    return [
        r
        for r in rows
        if name_key(r.target_name) in keys
        or (r.s_dec is not None and any(math.fabs(r.s_dec - d) <= band for d in decs))
    ]
