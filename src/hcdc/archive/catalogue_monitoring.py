"""Monitoring as one user sees it (:attr:`hcdc.archive.catalogue.UserCatalogue.monitoring`).

The AO conditions of a night, of a Level 1 product's frames and of a dataset's DITs
(:mod:`hcdc.archive.telemetry`), the conditions and contrast of the products across the archive
and the expected-contrast model, the quality-control report of a period
(:mod:`hcdc.archive.monitoring_report`), the programme overview
(:mod:`hcdc.archive.programme_overview`) and the True North / plate-scale series with its
writes (:mod:`hcdc.archive.astrometry_monitor`). Each answers what the facade's user may see,
at the facade's time, on the facade's connection: the visibility rules are those of the modules
it calls (files, datasets and products through :mod:`hcdc.archive.access`; the astrometric
series and its writes for staff only, rule R1, audited). The monitoring *pages* of the portal
are for staff only as well (:meth:`hcdc.archive.access.AccessContext.can_monitor`), which the
web asks before it calls this sub-facade; ``hcdc monitor`` shows anyone what they may see.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from hcdc.archive import astrometry_monitor as astrometry
from hcdc.archive import monitoring_report as report
from hcdc.archive import programme_overview as programmes
from hcdc.archive import telemetry
from hcdc.archive.access import Principal
from hcdc.archive.catalogue_errors import UserSession

__all__ = ["AstrometryWriter", "MonitoringCatalogue"]


class AstrometryWriter:
    """Adds measured True North / plate-scale values in one write transaction (staff only, R1,
    each audited); see :meth:`MonitoringCatalogue.recording_astrometry`."""

    def __init__(self, conn: Connection, user: Principal) -> None:
        self._conn = conn
        self._user = user

    def add(self, **values: Any) -> int:
        """One value (:func:`hcdc.archive.astrometry_monitor.add_astrometric_calibration`'s
        keywords); returns its id. Raises ``ValueError`` (a bad value) and ``AccessDenied``."""
        return astrometry.add_astrometric_calibration(self._conn, self._user, **values)

    def add_measured(self, measurement: dict[str, Any], **where: Any) -> int:
        """The result of a fit on an astrometric field
        (:func:`hcdc.archive.astrometry_monitor.add_measured_calibration`); returns its id."""
        return astrometry.add_measured_calibration(self._conn, self._user, measurement, **where)


class MonitoringCatalogue:
    """Sub-facade of :class:`~hcdc.archive.catalogue.UserCatalogue` for monitoring."""

    def __init__(self, catalogue: UserSession) -> None:
        self.catalogue = catalogue

    @property
    def _now(self) -> dt.datetime:
        return self.catalogue.access.now

    @property
    def _root(self) -> Path:
        return self.catalogue.storage_root

    # -- AO telemetry ----------------------------------------------------------------------------

    def night(self, night: dt.date) -> telemetry.NightOverview:
        """A night's AO conditions and its science sequences (only files and datasets the user
        may see; :func:`hcdc.archive.telemetry.night_overview`)."""
        c = self.catalogue
        return telemetry.night_overview(c.conn, c.user, night, self._root, now=self._now)

    def product_conditions_dir(self, product_id: int) -> Path:
        """The folder of a Level 1 product the user may see holding its ``frames.fits``
        (``AccessDenied``, ``LookupError``: :func:`hcdc.archive.telemetry.product_conditions_dir`)."""
        c = self.catalogue
        return telemetry.product_conditions_dir(c.conn, c.user, product_id, self._root, now=self._now)

    def products_conditions(self, target: str | None = None, limit: int | None = 200) -> list[dict[str, Any]]:
        """Level 1 products the user may see with their AO condition medians, newest first."""
        c = self.catalogue
        return telemetry.products_conditions(c.conn, c.user, target=target, limit=limit, now=self._now)

    def contrast_conditions(self, target: str | None = None, limit: int | None = 500) -> list[dict[str, Any]]:
        """Level 2 products the user may see with their contrast and conditions, newest first."""
        c = self.catalogue
        return telemetry.contrast_conditions(c.conn, c.user, target=target, limit=limit, now=self._now)

    def expected_contrast(
        self, wavelength: int = 0, factor: float = 3.0, nsigma: float = 3.0
    ) -> dict[str, Any]:
        """The expected-contrast model fitted on the Level 2 products the user may see, and the
        products much worse than it (:func:`hcdc.archive.telemetry.expected_contrast`)."""
        c = self.catalogue
        return telemetry.expected_contrast(c.conn, c.user, wavelength, factor, nsigma, now=self._now)

    def dataset_frames(self, dataset_id: int) -> dict[str, Any]:
        """Per-DIT AO conditions of a dataset the user may see (``LookupError`` otherwise:
        :func:`hcdc.archive.telemetry.dataset_frame_conditions`)."""
        c = self.catalogue
        return telemetry.dataset_frame_conditions(c.conn, c.user, dataset_id, self._root, now=self._now)

    # -- reports ----------------------------------------------------------------------------------

    def report(
        self, first_night: dt.date, last_night: dt.date, thresholds: report.Thresholds | None = None
    ) -> dict[str, Any]:
        """The quality-control report of the nights ``first_night`` to ``last_night`` on what the
        user may see (:func:`hcdc.archive.monitoring_report.monitoring_report`)."""
        c = self.catalogue
        return report.monitoring_report(
            c.conn, c.user, first_night, last_night, self._root, thresholds, now=self._now
        )

    def programmes(self, prog_id: str | None = None) -> list[dict[str, Any]]:
        """The programme overview of the datasets the user may see
        (:func:`hcdc.archive.programme_overview.programme_overview`)."""
        c = self.catalogue
        return programmes.programme_overview(c.conn, c.user, prog_id, now=self._now)

    # -- astrometric calibration (True North, plate scale) ------------------------------------------

    def astrometry(
        self, instrument: str | None = None, arm: str | None = None, nsigma: float = 3.0
    ) -> dict[str, Any]:
        """The True North / plate-scale series against the pipeline's constants (staff only, R1:
        ``AccessDenied``; :func:`hcdc.archive.astrometry_monitor.astrometric_series`)."""
        c = self.catalogue
        return astrometry.astrometric_series(c.conn, c.user, instrument, arm, nsigma)

    def astrometry_trend(
        self, instrument: str | None = None, arm: str | None = None, nsigma: float = 3.0
    ) -> dict[str, Any]:
        """True North / plate scale per instrument, arm and filter over time: weighted mean,
        scatter, drift per year and whether it is significant (staff only, R1;
        :func:`hcdc.archive.astrometry_monitor.astrometric_trend`)."""
        c = self.catalogue
        return astrometry.astrometric_trend(c.conn, c.user, instrument, arm, nsigma)

    def reference_fields(self) -> list[dict[str, Any]]:
        """The registered astrometric reference fields (staff only, R1;
        :func:`hcdc.archive.astrometry_monitor.reference_fields`)."""
        c = self.catalogue
        return astrometry.reference_fields(c.conn, c.user)

    def register_reference_field(self, **values: Any) -> int:
        """Register an astrometric calibration field and its reference list, in its own write
        transaction (staff only, R1, audited; the keywords of
        :func:`hcdc.archive.astrometry_monitor.register_reference_field`); the list is copied
        under the data centre's storage root."""
        with self.catalogue.writing() as conn:
            return astrometry.register_reference_field(conn, self.catalogue.user, self._root, **values)

    @contextmanager
    def recording_astrometry(self) -> Iterator[AstrometryWriter]:
        """A writer of astrometric values in one write transaction: all are stored, or none when
        an error leaves the block."""
        with self.catalogue.writing() as conn:
            yield AstrometryWriter(conn, self.catalogue.user)
