"""The curation of the Target Data Base: a sub-facade of the catalogue facade, for admins.

Reached from :meth:`hcdc.archive.catalogue_tdb.TargetCatalogue.curate`, which asks
:mod:`hcdc.archive.access` first (rule A1: admins only), so a :class:`TargetCuration` exists only
for someone allowed to curate: resolve names with SIMBAD, add targets, aliases, values and names
of the internal dictionary, group detections into candidates, place one by hand, import another
survey's results, receive the validated products. Each change runs in its own write transaction
on the data centre's engine (:meth:`UserCatalogue.writing`), after which the facade reads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hcdc.archive import targets as tg
from hcdc.archive.exchange.tdb_json import import_tdb
from hcdc.archive.tdb import assign_detection, group_candidates, receive_validated
from hcdc.archive.tdb_models import Candidate, Target

if TYPE_CHECKING:
    from hcdc.archive.catalogue_errors import UserSession

__all__ = ["TargetCuration"]


class TargetCuration:
    """What an administrator changes in the Target Data Base (made by ``TargetCatalogue.curate``)."""

    def __init__(self, catalogue: UserSession) -> None:
        self.catalogue = catalogue

    def resolve(
        self, name: str, *, endpoint: str | None = None, offline: bool = False, refresh: bool = False
    ) -> int:
        """The id of the target called ``name``, created and filled from SIMBAD when new
        (:func:`hcdc.archive.targets.resolve`); a known target still unresolved (or any, with
        ``refresh``) is completed from SIMBAD again unless ``offline``. Raises ``TargetError``
        and ``SimbadError``."""
        with self.catalogue.writing() as conn:
            existing = tg.find_target(conn, name)
            if existing is not None and not offline and (refresh or _unresolved(conn, existing)):
                tg.complete_target(conn, existing, endpoint, refresh=refresh)
                return existing
            return tg.resolve(conn, name, endpoint=endpoint, offline=offline)

    def add(self, name: str, values: dict[str, Any], source: str) -> int:
        """A target added by hand (no SIMBAD) with ``values`` from ``source``; returns its id."""
        with self.catalogue.writing() as conn:
            return tg.create_target(conn, name, values, {k: source for k in values}, resolved="manual")

    def add_aliases(self, target_id: int, names: list[str]) -> list[str]:
        """Give a target more names; returns those that were new."""
        with self.catalogue.writing() as conn:
            return tg.add_aliases(conn, target_id, names, "user")

    def set_values(self, target_id: int, values: dict[str, Any], source: str) -> None:
        """Set values of a target with their source (:func:`hcdc.archive.targets.set_values`)."""
        with self.catalogue.writing() as conn:
            tg.set_values(conn, target_id, values, source)

    def add_dictionary_name(
        self, name: str, canonical: str | None, values: dict[str, Any], note: str | None
    ) -> None:
        """A name SIMBAD does not know, standing for ``canonical`` (default: itself), recorded
        with the curator's name."""
        with self.catalogue.writing() as conn:
            tg.add_dictionary_name(
                conn, name, canonical, values, added_by=self.catalogue.user.name, note=note
            )

    def group(self, target_id: int, n_sigma: float = 5.0) -> dict[str, Any]:
        """Group a target's detections into candidates and run the proper-motion test
        (:func:`hcdc.archive.tdb.group_candidates`'s counts), with ``candidate_list``: each
        candidate's label, status, who grouped it and the test's reason, by label."""
        with self.catalogue.writing() as conn:
            counts = group_candidates(conn, target_id, n_sigma=n_sigma)
            rows = conn.execute(
                select(Candidate).where(Candidate.target_id == target_id).order_by(Candidate.label)
            )
            candidates = [
                {
                    "label": r.label,
                    "status": r.status,
                    "grouped_by": r.grouped_by,
                    "reason": (r.statistic or {}).get("reason", ""),
                }
                for r in rows
            ]
        return {**counts, "candidate_list": candidates}

    def assign(self, detection_id: int, label: str | None) -> None:
        """Put a detection into the candidate ``label`` of its target (None: in none), kept by
        later groupings (:func:`hcdc.archive.tdb.assign_detection`)."""
        with self.catalogue.writing() as conn:
            assign_detection(conn, detection_id, label)

    def import_exchange(
        self, data: dict[str, Any], origin: str, *, overwrite: bool = False, survey: str | None = None
    ) -> dict[str, int]:
        """Import an exchange dict (another survey's results, or an HCI-FITS file read as one:
        :func:`hcdc.archive.exchange.tdb_json.import_tdb`); returns counts of rows written."""
        with self.catalogue.writing() as conn:
            return import_tdb(conn, data, origin=origin, overwrite=overwrite, survey=survey)

    def receive_validated(self) -> list[int]:
        """Send every validated Level 2 product to the TDB (catch-up); returns the reductions."""
        with self.catalogue.writing() as conn:
            return receive_validated(conn)


def _unresolved(conn: Any, target_id: int) -> bool:
    """Whether SIMBAD has not filled the target yet."""
    return conn.scalar(select(Target.resolved).where(Target.id == target_id)) == "unresolved"
