"""Calibration workflows: master darks, backgrounds, skies, flats and bad-pixel maps for a night.

What the SPHERE Data Center does every evening: the calibration files of a night are grouped by
setup and each group is reduced into its master, independently of any science dataset.

* A **calibration group** is the current IRDIS files of one night sharing a ``DPR TYPE`` and a
  setup: ``DARK``, ``DARK,BACKGROUND`` and ``SKY`` per (DIT, filter combination); ``FLAT,LAMP``
  per filter combination (the lamp flats at increasing fluxes of one template). A flat group
  also takes the night's ``DARK`` files at the flat DIT, subtracted before the flat fit.
* The recipe ``irdis-masters`` (:class:`IrdisMasters`) reduces one group with the pure
  functions of :mod:`hcdc.science.calibration` (and the raw-file helpers of
  :mod:`hcdc.instruments.sphere.irdis.level1`, so the masters are exactly those a Level 1 reduction builds):

  - DARK / DARK,BACKGROUND / SKY: sigma-clipped mean of every DIT of every file
    (:func:`hcdc.science.calibration.darks.master_frame`), in ADU per DIT, plus the **static
    bad-pixel map** (hot and cold pixels, :func:`hcdc.science.calibration.badpixels.hot_pixels`);
  - FLAT,LAMP: per-pixel linear fit of the dark-subtracted lamp flats against the lamp level
    (:func:`hcdc.science.calibration.flats.fit_flat`): the master flat (dimensionless, median 1
    per IRDIS field) and the **non-linear bad-pixel map**.

  The IRDIS dead zones (vignetted rows/columns, scaled to the frame size) are never flagged.
  Files are FITS with ``BUNIT``, the recipe/software provenance keywords and an ``INPUTS``
  table of the input files with their sha256.
* The standard workflow ``irdis-calibrations`` runs the recipe on one group (input ``raw``,
  optional ``darks``); its products are Level 1 products of type ``master-calibration``
  (the kind — ``master-dark``, ``master-background``, ``master-sky``, ``master-flat`` — is in
  the product summary; files have the roles ``master`` and ``badpixels``).
* :func:`calibration_groups` finds a night's groups in the catalogue; :func:`queue_calibrations`
  queues one job per group that has no job yet (a job on explicit inputs:
  :func:`hcdc.pipeline.operations.jobs.queue_job` with ``inputs``); :func:`watch_calibrations_once` and
  :func:`calibration_hook` plug this into the folder watcher (daily calibrations).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hcdc.archive.db import Catalogue
from hcdc.archive.models import File, utcnow
from hcdc.archive.pipeline_models import Job
from hcdc.archive.storage import resolve_stored_path
from hcdc.instruments.sphere.irdis.masters import CALIBRATION_TYPES
from hcdc.instruments.sphere.irdis.raw import dit_key
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.operations.watch import watch_once
from hcdc.pipeline.workflows.irdis import CALIBRATION_WORKFLOW

__all__ = [
    "CalibrationGroup",
    "CalibrationPoll",
    "calibration_groups",
    "calibration_hook",
    "queue_calibrations",
    "watch_calibrations_once",
]


# --------------------------------------------------------------------------------------------
# finding and queueing a night's groups


@dataclass
class CalibrationGroup:
    """The current catalogued files of one calibration group of one night.

    ``key`` is ``night/DPR TYPE/filter[/DIT]``; ``files`` and ``darks`` are stored paths
    (``darks``: for a flat group, the night's DARK files at the flat DIT); ``newest`` is the
    latest ingest time of its files.
    """

    key: str
    night: dt.date | None
    dpr_type: str
    filter: str | None
    dit: float | None
    files: list[Path]
    file_ids: list[int]
    newest: dt.datetime
    darks: list[Path] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return CALIBRATION_TYPES[self.dpr_type]

    def job_inputs(self) -> dict[str, list[Path]]:
        inputs = {"raw": self.files}
        if self.darks:
            inputs["darks"] = self.darks
        return inputs


def _as_date(night: dt.date | str | None) -> dt.date | None:
    if night is None or isinstance(night, dt.date):
        return night
    try:
        return dt.date.fromisoformat(str(night))
    except ValueError as exc:
        raise ValueError(f"night {night!r} is not a date YYYY-MM-DD") from exc


def calibration_groups(catalogue: Catalogue, night: dt.date | str | None = None) -> list[CalibrationGroup]:
    """The IRDIS calibration groups of ``night`` (every night when None), sorted by key.

    Files: current SPHERE/IRDIS files whose DPR TYPE is DARK, DARK,BACKGROUND, SKY or
    FLAT,LAMP, grouped by (night, DPR TYPE, filter combination, DIT to 0.01 s); lamp flats are
    grouped without their DIT, and get the night's DARK files at their DIT (same filter
    combination preferred).
    """
    wanted = _as_date(night)
    query = select(
        File.id,
        File.type,
        File.filter,
        File.dit,
        File.night,
        File.storage,
        File.stored_path,
        File.ingested_at,
    ).where(
        File.is_current,
        File.instrument == "SPHERE",
        File.arm == "IRDIS",
        File.type.in_(list(CALIBRATION_TYPES)),
    )
    if wanted is not None:
        query = query.where(File.night == wanted)
    with catalogue.engine.connect() as conn:
        rows = conn.execute(query.order_by(File.id)).all()
    groups: dict[tuple, CalibrationGroup] = {}
    darks_by_dit: dict[tuple, list[Any]] = {}
    flat_dits: dict[tuple, set[float]] = {}
    for row in rows:
        dpr_type = row.type.strip()
        dit = None if row.dit is None else dit_key(row.dit)
        setup = (row.night, dpr_type, row.filter, None if dpr_type == "FLAT,LAMP" else dit)
        path = resolve_stored_path(row.storage, row.stored_path, catalogue.storage_root)
        if dpr_type == "DARK":
            darks_by_dit.setdefault((row.night, dit), []).append((row, path))
        group = groups.get(setup)
        if group is None:
            parts = [str(row.night), dpr_type, row.filter or "-"]
            if setup[3] is not None:
                parts.append(f"DIT{setup[3]:.2f}")
            group = groups[setup] = CalibrationGroup(
                "/".join(parts), row.night, dpr_type, row.filter, setup[3], [], [], row.ingested_at
            )
        group.files.append(path)
        group.file_ids.append(row.id)
        group.newest = max(group.newest, row.ingested_at)
        if dpr_type == "FLAT,LAMP" and dit is not None:
            flat_dits.setdefault(setup, set()).add(dit)
    for setup, group in groups.items():
        if group.dpr_type != "FLAT,LAMP":
            continue
        # darks at the flats' DIT (one per template): of the same filter first, else any filter
        dits = sorted(flat_dits.get(setup, ()))
        candidates = [c for d in dits for c in darks_by_dit.get((group.night, d), [])]
        same_filter = [c for c in candidates if c[0].filter == group.filter]
        chosen = same_filter or candidates
        group.darks = [path for _, path in chosen]
        for row, _ in chosen:
            group.newest = max(group.newest, row.ingested_at)
    return sorted(groups.values(), key=lambda g: g.key)


def _queued_input_sets(catalogue: Catalogue) -> set[frozenset[str]]:
    """The ``raw`` file sets of every calibration job already in the catalogue (any state)."""
    with catalogue.engine.connect() as conn:
        rows = conn.execute(
            select(Job.inputs).where(Job.workflow == CALIBRATION_WORKFLOW, Job.dataset_id.is_(None))
        ).all()
    return {frozenset(row.inputs.get("raw", [])) for row in rows if row.inputs}


def queue_calibrations(
    catalogue: Catalogue,
    night: dt.date | str | None = None,
    *,
    settle_s: float = 0.0,
    parameters: Sequence[str] = (),
    max_attempts: int = jq.DEFAULT_MAX_ATTEMPTS,
) -> list[int]:
    """Queue one ``irdis-calibrations`` job per calibration group of ``night`` (every night when
    None) that has no job yet; returns the new job ids.

    A group has a job when a calibration job (any state: a failed one is for a person to retry)
    was queued on exactly its files; a group that gained files gets a new job. Groups with a
    file ingested less than ``settle_s`` seconds ago are left for a later call (files of a
    template still arriving). ``parameters`` are ``param=value`` overrides of the recipe.
    """
    cutoff = utcnow() - dt.timedelta(seconds=settle_s)
    done = _queued_input_sets(catalogue)
    jobs = []
    for group in calibration_groups(catalogue, night):
        if group.newest > cutoff:
            continue
        if frozenset(str(p) for p in group.files) in done:
            continue
        jobs.append(
            jq.queue_job(
                catalogue.engine,
                inputs=group.job_inputs(),
                workflow=CALIBRATION_WORKFLOW,
                parameters=parameters,
                max_attempts=max_attempts,
            )
        )
    return jobs


# --------------------------------------------------------------------------------------------
# daily calibrations


@dataclass
class CalibrationPoll:
    """One poll of the watcher with calibrations: the watcher's own poll (ingest, association,
    science jobs) and the calibration jobs queued after it.

    The attributes of the watcher's poll read through (``poll.ingested``, ``poll.queued_jobs``),
    so an ``on_poll`` callback written for :func:`hcdc.pipeline.operations.watch.watch` takes this too.
    """

    poll: Any  # hcdc.pipeline.operations.watch.WatchPoll, or None when no folder was polled
    calibration_jobs: list[int]

    def __getattr__(self, name: str) -> Any:
        poll = self.__dict__.get("poll")
        if poll is None or name.startswith("__"):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return getattr(poll, name)

    def as_dict(self) -> dict[str, Any]:
        out = self.poll.as_dict() if self.poll is not None else {}
        out["calibration_jobs"] = list(self.calibration_jobs)
        return out


def calibration_hook(
    catalogue: Catalogue,
    *,
    settle_s: float = 0.0,
    parameters: Sequence[str] = (),
    on_poll: Callable[[CalibrationPoll], None] | None = None,
) -> Callable[[Any], None]:
    """An ``on_poll`` callback for :func:`hcdc.pipeline.operations.watch.watch`: after each poll's ingest,
    queue the calibration groups that have no job yet (:func:`queue_calibrations`), then pass
    the combined :class:`CalibrationPoll` to ``on_poll``.

    ``hcdc watch`` does this with ``watch(..., on_poll=calibration_hook(catalogue, on_poll=show))``.
    """

    def hook(poll: Any) -> None:
        jobs = queue_calibrations(catalogue, settle_s=settle_s, parameters=parameters)
        if on_poll is not None:
            on_poll(CalibrationPoll(poll, jobs))

    return hook


def watch_calibrations_once(
    catalogue: Catalogue,
    folder: str | Path | None = None,
    *,
    settle_s: float = 0.0,
    parameters: Sequence[str] = (),
    **watch_options: Any,
) -> CalibrationPoll:
    """One poll of the daily calibrations: ingest ``folder`` (when given) with
    :func:`hcdc.pipeline.operations.watch.watch_once` (which also queues ready science datasets), then
    queue the new calibration groups. ``watch_options`` go to ``watch_once`` (``workflow``,
    ``copy``; its ``parameters`` are the science ones, given as ``science_parameters``)."""
    poll = None
    if folder is not None:
        science_parameters = watch_options.pop("science_parameters", ())
        poll = watch_once(
            catalogue, folder, settle_s=settle_s, parameters=science_parameters, **watch_options
        )
    jobs = queue_calibrations(catalogue, settle_s=settle_s, parameters=parameters)
    return CalibrationPoll(poll, jobs)
