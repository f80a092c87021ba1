"""The operator's entry point to the data centre: the pipeline and the store's maintenance.

Ingesting files, associating calibrations, queueing and running reductions (the worker),
watching a folder, rerunning a product from its provenance, the quarantine and fsck are not
a user's requests on what they may see: they are the data centre operating itself, run by its
operator on the whole data centre (the shell's :func:`hcdc.archive.access.local_operator`, an
admin). An :class:`OperatorCatalogue` puts them behind one object, opened from the catalogue
facade of an account that may operate (rule A1,
:meth:`hcdc.archive.access.AccessContext.can_operate`; else ``AccessDenied``) with
:meth:`hcdc.pipeline.operations.catalogue.ProcessingCatalogue.operations`, so that the
interfaces (``hcdc ingest``, ``associate``, ``quarantine``, ``fsck``, ``reduce``'s queueing,
``worker``, ``watch``, ``rerun``) call it instead of the engine and the archive's modules. It
decides nothing more itself: each operation is the module it names, on the data centre it was
opened on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hcdc.archive import associations
from hcdc.archive import fsck as store_check
from hcdc.archive import ingest as ingestion
from hcdc.archive.queries import list_quarantine
from hcdc.pipeline.operations import astrometry, batches, calibrations, reruns
from hcdc.pipeline.operations import jobs as jq
from hcdc.pipeline.operations import watch as watching
from hcdc.pipeline.operations import worker as workers

if TYPE_CHECKING:
    from hcdc.archive.catalogue import UserCatalogue
    from hcdc.archive.db import Catalogue

__all__ = ["OperatorCatalogue"]


class OperatorCatalogue:
    """The pipeline and the store's maintenance of the data centre ``data_centre``, operated by
    the user of ``view`` (see the module docstring; open it with
    :meth:`~hcdc.pipeline.operations.catalogue.ProcessingCatalogue.operations`, which asks A1)."""

    # ``view`` is the ProcessingCatalogue that opened this one; typed by its base class, because
    # naming the subclass here would make an import circle with the module that opens us
    def __init__(self, data_centre: Catalogue, view: UserCatalogue) -> None:
        if view.engine is not data_centre.engine:
            raise ValueError("the facade was not opened on this data centre")
        self.data_centre = data_centre
        self.view = view

    # -- the store: ingest, associations, quarantine, fsck ---------------------------------------

    def ingest(
        self,
        paths: Iterable[str | Path],
        *,
        copy: bool = False,
        workers: int | None = None,
        rehash: bool = False,
        on_begin: Callable[[int], None] | None = None,
        on_file: Callable[[ingestion.FileOutcome], None] | None = None,
    ) -> ingestion.IngestSummary:
        """Catalogue files and folders (:func:`hcdc.archive.ingest.ingest`)."""
        return ingestion.ingest(
            self.data_centre,
            paths,
            copy=copy,
            workers=workers,
            rehash=rehash,
            on_begin=on_begin,
            on_file=on_file,
        )

    def associate(
        self, dataset_ids: Sequence[int] | None = None, window_days: float = associations.DEFAULT_WINDOW_DAYS
    ) -> list[dict[str, Any]]:
        """Choose and store the calibrations of every dataset (or of ``dataset_ids``); returns
        each processed dataset's association (:func:`hcdc.archive.associations.association_view`),
        read afresh after the writes."""
        engine = self.data_centre.engine
        done = associations.associate_all(engine, dataset_ids, window_days=window_days)
        with engine.connect() as conn:
            return [associations.association_view(conn, dataset_id) for dataset_id in done]

    def quarantine(self, reason: str | None = None, limit: int | None = 100) -> list[dict[str, Any]]:
        """The quarantined files, most recent first (:func:`hcdc.archive.queries.list_quarantine`)."""
        with self.data_centre.engine.connect() as conn:
            return list_quarantine(conn, reason, limit)

    def fsck(
        self, *, repair: bool = False, checksums: bool = True, grace_s: float = store_check.DEFAULT_GRACE_S
    ) -> store_check.FsckReport:
        """Check the store against the catalogue, repairing with ``repair``
        (:func:`hcdc.archive.fsck.fsck`)."""
        return store_check.fsck(self.data_centre, repair=repair, checksums=checksums, grace_s=grace_s)

    # -- the pipeline: queueing, the worker, watching a folder, reruns -----------------------------

    def queue_reductions(
        self,
        dataset_ids: Sequence[int],
        *,
        workflow: str | None = None,
        parameters: Sequence[str] = (),
        max_attempts: int = jq.DEFAULT_MAX_ATTEMPTS,
    ) -> list[int]:
        """Queue one reduction job per dataset; returns the job ids
        (:func:`hcdc.pipeline.operations.worker.queue_datasets`)."""
        return workers.queue_datasets(
            self.data_centre, dataset_ids, workflow=workflow, parameters=parameters, max_attempts=max_attempts
        )

    def submit_batch(
        self,
        dataset_ids: Sequence[int],
        *,
        workflow: str | None = None,
        parameters: Sequence[str] = (),
        label: str | None = None,
        selection: dict[str, Any] | None = None,
        max_attempts: int = jq.DEFAULT_MAX_ATTEMPTS,
    ) -> tuple[int, list[int]]:
        """Queue one reduction job per dataset as one batch submitted by the operator; returns
        ``(batch id, job ids)`` (:func:`hcdc.pipeline.operations.batches.submit_batch`: its
        ``BatchError``)."""
        return batches.submit_batch(
            self.data_centre,
            self.view.user,
            dataset_ids,
            workflow=workflow,
            parameters=parameters,
            label=label,
            selection=selection,
            max_attempts=max_attempts,
        )

    def worker(self, **options: Any) -> workers.Worker:
        """A worker executing the queued jobs of the data centre (a context manager;
        :class:`hcdc.pipeline.operations.worker.Worker`'s keywords: processes, scheduler,
        lease_s, on_progress, on_job ...)."""
        return workers.Worker(self.data_centre, **options)

    def watch(
        self,
        folder: str | Path,
        *,
        interval_s: float = 30.0,
        once: bool = False,
        settle_s: float | None = None,
        workflow: str | None = None,
        parameters: Sequence[str] = (),
        on_poll: Callable[[Any], None] | None = None,
    ) -> list[watching.WatchPoll]:
        """Ingest new files of ``folder`` as they arrive, associate calibrations, queue the
        reductions of new datasets (:func:`hcdc.pipeline.operations.watch.watch`) and the
        masters of new or grown calibration groups after each poll
        (:func:`hcdc.pipeline.operations.calibrations.calibration_hook`: settled like the
        datasets, at once with ``once``) and the astrometric fields
        (:func:`hcdc.pipeline.operations.astrometry.astrometry_hook`); ``on_poll`` receives each
        poll with its calibration jobs (a ``CalibrationPoll``) and its astrometric fields."""
        return watching.watch(
            self.data_centre,
            folder,
            interval_s=interval_s,
            once=once,
            settle_s=settle_s,
            workflow=workflow,
            parameters=parameters,
            on_poll=calibrations.calibration_hook(
                self.data_centre,
                settle_s=0.0 if once else (interval_s if settle_s is None else settle_s),
                # astrometric calibration fields: record measured ones, queue new ones
                on_poll=astrometry.astrometry_hook(self.data_centre, on_poll=on_poll),
            ),
        )

    def queue_astrometry(self) -> astrometry.AstrometryPoll:
        """Record finished astrometric-field measurements in the series, then queue the ingested
        fields that lie in a registered reference field and have no job yet
        (:func:`hcdc.pipeline.operations.astrometry.queue_astrometry`; staff only, R1)."""
        return astrometry.queue_astrometry(self.data_centre, self.view.user)

    def rerun(self, product_id: int) -> reruns.RerunOutcome:
        """Rebuild a product from its provenance alone into a new version and compare it with
        the original (:func:`hcdc.pipeline.operations.reruns.rerun_product`)."""
        return reruns.rerun_product(self.data_centre, product_id)
