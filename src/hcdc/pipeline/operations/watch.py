"""Watching a folder: new files are ingested and associated, and reductions are queued for
datasets that are complete (stable for ``settle_s``, every required calibration associated) and
have no job yet (:func:`hcdc.pipeline.operations.worker.queue_datasets`)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from hcdc.archive.associations import associate_all
from hcdc.archive.db import Catalogue
from hcdc.archive.models import Dataset, File, utcnow
from hcdc.pipeline.operations.worker import InputError, queue_datasets, ready_datasets
from hcdc.runtime.faults import fault_point

logger = logging.getLogger(__name__)


@dataclass
class WatchPoll:
    """What one poll of :func:`watch` did."""

    ingested: int
    new_versions: int
    quarantined: int
    new_calibrations: int
    associated: list[int]
    queued_jobs: list[int]
    queued_datasets: list[int]

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def watch_once(
    catalogue: Catalogue,
    folder: str | Path,
    *,
    settle_s: float = 0.0,
    workflow: str | None = None,
    parameters: Sequence[str] = (),
    copy: bool = False,
) -> WatchPoll:
    """One poll: ingest ``folder``, associate the datasets the new files may concern (new
    science, or new calibrations within the association window), queue ready datasets."""
    from hcdc.archive.associations import DEFAULT_WINDOW_DAYS
    from hcdc.archive.ingest import ingest

    started = utcnow()
    summary = ingest(catalogue, [folder], copy=copy)
    fault_point("watch.after_ingest")  # files catalogued, datasets not yet associated nor queued
    associated: list[int] = []
    new_calibrations = 0
    if summary.ingested or summary.new_versions or summary.datasets_updated:
        with catalogue.engine.connect() as conn:
            new = conn.execute(
                select(File.night, File.is_calibration).where(File.ingested_at >= started, File.is_current)
            ).all()
            new_calibrations = sum(1 for r in new if r.is_calibration)
            nights = {r.night for r in new if r.night is not None}
            span = dt.timedelta(days=DEFAULT_WINDOW_DAYS)
            ids = [
                d.id
                for d in conn.execute(select(Dataset.id, Dataset.night, Dataset.associated_at))
                if d.associated_at is None or d.night is None or any(abs(d.night - n) <= span for n in nights)
            ]
        associated = associate_all(catalogue.engine, ids) if ids else []
    else:
        # nothing new: still associate datasets never associated (a watcher killed between
        # its ingest and the association would otherwise leave them unqueued for ever)
        with catalogue.engine.connect() as conn:
            ids = list(conn.scalars(select(Dataset.id).where(Dataset.associated_at.is_(None))))
        associated = associate_all(catalogue.engine, ids) if ids else []
    ready = ready_datasets(catalogue, settle_s=settle_s)
    jobs = queue_datasets(catalogue, ready, workflow=workflow, parameters=parameters) if ready else []
    return WatchPoll(
        ingested=summary.ingested,
        new_versions=summary.new_versions,
        quarantined=summary.quarantined,
        new_calibrations=new_calibrations,
        associated=associated,
        queued_jobs=jobs,
        queued_datasets=ready,
    )


def watch(
    catalogue: Catalogue,
    folder: str | Path,
    *,
    interval_s: float = 30.0,
    once: bool = False,
    settle_s: float | None = None,
    workflow: str | None = None,
    parameters: Sequence[str] = (),
    on_poll: Callable[[WatchPoll], None] | None = None,
    stop: threading.Event | None = None,
) -> list[WatchPoll]:
    """Poll ``folder`` every ``interval_s`` seconds (see :func:`watch_once`) until ``stop`` is
    set, or once. A dataset is queued once it has not changed for ``settle_s`` seconds
    (default: one interval; 0 with ``once``), so files still arriving do not start a
    reduction of half a sequence."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    if settle_s is None:
        settle_s = 0.0 if once else interval_s
    polls = []
    while True:
        poll = watch_once(catalogue, folder, settle_s=settle_s, workflow=workflow, parameters=parameters)
        polls.append(poll)
        if on_poll is not None:
            on_poll(poll)
        if once:
            return polls
        if stop is not None:
            if stop.wait(interval_s):
                return polls
        else:
            time.sleep(interval_s)
