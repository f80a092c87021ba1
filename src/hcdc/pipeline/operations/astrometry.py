"""Astrometric calibration fields measured automatically: True North and plate-scale monitoring.

* At ingest, a SPHERE file with ``DPR TYPE = OBJECT,ASTROMETRY`` gets the file class
  ``ASTROMETRY`` (:data:`hcdc.instruments.sphere.metadata.FILE_CLASS_COMMON`).
* The data-centre team registers each calibration field once with its reference list
  (:func:`hcdc.archive.astrometry_monitor.register_reference_field`; ``hcdc monitor astrometry
  field-add``): the star positions, the field's centre and radius, the list's source.
* :func:`queue_astrometry` (``hcdc monitor astrometry queue``, and the folder watcher through
  :func:`astrometry_hook`) records the finished measurements in the series, then queues the
  workflow ``irdis-astrometry`` (recipe ``astrometric-field``) on every current IRDIS field file
  that has no job yet and whose pointing (header RA/DEC) falls in a registered field; a field
  file with no registered field is reported, not queued.
* Recognised by position too: the DPR TYPE of real astrometric-field files is not confirmed here
  (docs/monitoring.md), so an IRDIS file classified ``SCIENCE`` (``DPR TYPE = OBJECT``) or
  ``STD`` (``DPR TYPE = STD...``; the ESO calibration category is ``IFS_STD_ASTROM``) taken in
  field tracking (``INS4 DROT2 MODE = SKY``) whose pointing lies in a registered reference field
  is queued as well (:func:`recognised_by_position`); such files are listed in
  :attr:`AstrometryPoll.by_position`. A science file elsewhere is not reported (it is science).
* The worker runs the jobs like any other (provenance, product of type
  ``astrometric-calibration`` with the measurement as summary); the next call records them
  (:func:`hcdc.archive.astrometry_monitor.record_field_product`, once per product).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from hcdc.archive.access import Principal, local_operator
from hcdc.archive.astrometry_monitor import (
    record_field_product,
    reference_field_for,
    reference_fields,
    require_monitoring,
)
from hcdc.archive.db import Catalogue
from hcdc.archive.models import File
from hcdc.archive.pipeline_models import Job, Product
from hcdc.archive.storage import resolve_stored_path
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.recipes.astrometric_field import PRODUCT_TYPE
from hcdc.pipeline.workflows.irdis import ASTROMETRY_WORKFLOW

__all__ = [
    "FILE_CLASS",
    "POSITION_CLASSES",
    "SCIENCE_CLASS",
    "AstrometryPoll",
    "recognised_by_position",
    "astrometry_hook",
    "queue_astrometry",
    "record_astrometry",
]

#: the file class of astrometric calibration fields (DPR TYPE OBJECT,ASTROMETRY)
FILE_CLASS = "ASTROMETRY"
#: the file class of DPR TYPE OBJECT, recognised as a field by its pointing and derotator mode
SCIENCE_CLASS = "SCIENCE"
#: every class recognised by position: plain OBJECT, and STD* (standard-star types)
POSITION_CLASSES = (SCIENCE_CLASS, "STD")


def recognised_by_position(file_class: str | None, extra: dict[str, Any] | None, field: Any) -> bool:
    """Whether a file is measured as an astrometric field: always for file class ``ASTROMETRY``
    (given a registered ``field``); for ``SCIENCE`` (DPR TYPE OBJECT) or ``STD`` only when its
    pointing is in a registered ``field`` and it was taken in field tracking (``INS4 DROT2 MODE = SKY``, what
    the measurement needs; pupil-tracking science of a star in a cluster is not a field)."""
    if field is None:
        return False
    if file_class == FILE_CLASS:
        return True
    mode = str((extra or {}).get("derotator_mode") or "").strip().upper()
    return file_class in POSITION_CLASSES and mode == "SKY"


@dataclass
class AstrometryPoll:
    """One pass: products recorded in the series (calibration ids), jobs queued, and the field
    files left because no registered reference field holds their pointing."""

    recorded: list[int] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)
    without_reference: list[str] = field(default_factory=list)
    by_position: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "recorded": list(self.recorded),
            "queued": list(self.queued),
            "without_reference": list(self.without_reference),
            "by_position": list(self.by_position),
        }


def record_astrometry(catalogue: Catalogue, actor: Principal | None = None) -> list[int]:
    """Record every current ``astrometric-calibration`` product not yet in the series; returns
    the new calibration ids (staff only: ``actor`` defaults to the local operator)."""
    actor = actor or local_operator()
    new_ids = []
    with catalogue.engine.begin() as conn:
        require_monitoring(conn, actor)
        rows = conn.execute(
            select(Product.id, Product.summary)
            .where(Product.product_type == PRODUCT_TYPE, Product.is_current)
            .order_by(Product.id)
        ).all()
        for row in rows:
            if not row.summary or row.summary.get("true_north_deg") is None:
                continue
            # IRDIS products (astrometric-field 1.0) carry no arm; ifs-astrometric-field's say IFS
            arm = str(row.summary.get("arm") or "IRDIS")
            new_id = record_field_product(conn, actor, row.id, row.summary, arm=arm)
            if new_id is not None:
                new_ids.append(new_id)
    return new_ids


def _queued_raw_paths(catalogue: Catalogue) -> set[str]:
    with catalogue.engine.connect() as conn:
        rows = conn.execute(select(Job.inputs).where(Job.workflow == ASTROMETRY_WORKFLOW)).all()
    return {path for row in rows if row.inputs for path in row.inputs.get("raw", [])}


def queue_astrometry(
    catalogue: Catalogue,
    actor: Principal | None = None,
    *,
    parameters: tuple[str, ...] | list[str] = (),
    max_attempts: int = jq.DEFAULT_MAX_ATTEMPTS,
) -> AstrometryPoll:
    """Record finished measurements, then queue one ``irdis-astrometry`` job per current IRDIS
    field file (file class ASTROMETRY, or a field-tracking OBJECT file: :func:`recognised_by_position`)
    without a job (any state: a failed one is for a person to retry) whose pointing lies in a
    registered reference field (module docstring). Staff only (rule R1; AccessDenied otherwise)."""
    actor = actor or local_operator()
    poll = AstrometryPoll(recorded=record_astrometry(catalogue, actor))
    done = _queued_raw_paths(catalogue)
    with catalogue.engine.connect() as conn:
        fields = reference_fields(conn, actor)
        # science files are looked at only when a field is registered (they are many)
        classes = [FILE_CLASS, *POSITION_CLASSES] if fields else [FILE_CLASS]
        files = conn.execute(
            select(
                File.id,
                File.instrument,
                File.storage,
                File.stored_path,
                File.ra,
                File.dec,
                File.file_class,
                File.extra,
            )
            .where(
                File.is_current,
                File.instrument == "SPHERE",
                File.arm == "IRDIS",
                File.file_class.in_(classes),
            )
            .order_by(File.id)
        ).all()
        plans = []
        for row in files:
            path = str(resolve_stored_path(row.storage, row.stored_path, catalogue.storage_root))
            if path in done:
                continue
            reference = reference_field_for(conn, actor, row.instrument, row.ra, row.dec, fields)
            if not recognised_by_position(row.file_class, row.extra, reference):
                if row.file_class == FILE_CLASS:
                    poll.without_reference.append(path)
                continue
            if row.file_class != FILE_CLASS:
                poll.by_position.append(path)
            plans.append((path, reference["catalogue_path"]))
    for path, reference_path in plans:
        poll.queued.append(
            jq.queue_job(
                catalogue.engine,
                inputs={"raw": [path], "reference": reference_path},
                workflow=ASTROMETRY_WORKFLOW,
                parameters=parameters,
                max_attempts=max_attempts,
            )
        )
    return poll


def astrometry_hook(
    catalogue: Catalogue, *, on_poll: Callable[[Any], None] | None = None
) -> Callable[[Any], None]:
    """An ``on_poll`` callback for :func:`hcdc.pipeline.operations.watch.watch` (``hcdc watch``
    chains it after the calibrations' hook): after each poll, :func:`queue_astrometry` as the
    local operator, its :class:`AstrometryPoll` set as the poll's ``astrometry`` attribute, then
    the poll passed on to ``on_poll``."""

    def hook(poll: Any) -> None:
        result = queue_astrometry(catalogue)
        try:
            poll.astrometry = result
        except AttributeError:  # a poll that takes no attribute (slots): passed on without it
            pass
        if on_poll is not None:
            on_poll(poll)

    return hook
