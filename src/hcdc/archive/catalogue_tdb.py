"""The Target Data Base as one user sees it: a sub-facade of the catalogue facade.

Reached as :attr:`hcdc.archive.catalogue.UserCatalogue.targets`. Targets are public; their
observations, reductions, detections and candidates are filtered by the user's rule R15 clauses
(:class:`hcdc.archive.tdb_views.Visibility`, from :mod:`hcdc.archive.access`); a hidden candidate
is :class:`~hcdc.archive.tdb_views.TdbNotFound`, as a missing one. Regrouping detections is an
admin's change (rule A1), audited; so is the curation (:meth:`TargetCatalogue.curate`:
:mod:`hcdc.archive.catalogue_tdb_admin`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hcdc.archive import accounts
from hcdc.archive import tdb_views as tv
from hcdc.archive.catalogue_tdb_admin import TargetCuration
from hcdc.archive.exchange.hcifits_tdb import export_reduction
from hcdc.archive.exchange.tdb_json import export_tdb
from hcdc.archive.targets import TargetError, find_target, list_dictionary, list_targets, target_dict
from hcdc.archive.tdb import MJD_TO_JD, assign_detection, detections_table, retest_candidate
from hcdc.archive.tdb_cone import cone_detections, cone_targets
from hcdc.archive.tdb_models import Detection, Observation, Reduction

if TYPE_CHECKING:
    from hcdc.archive.catalogue_errors import UserSession

__all__ = ["TargetCatalogue"]


def _jd(day: dt.date) -> float:
    """Julian date of 0h UTC of ``day``."""
    return (day - dt.date(1858, 11, 17)).days + MJD_TO_JD


class TargetCatalogue:
    """Targets, candidates and detections that :attr:`UserCatalogue.targets` lets the user see."""

    def __init__(self, catalogue: UserSession) -> None:
        self.catalogue = catalogue
        self.conn = catalogue.conn
        self.visible = tv.Visibility.of(catalogue.access)

    def search(self, *, limit: int = 100, offset: int = 0, **criteria: Any) -> dict[str, Any]:
        """Targets matching the criteria of :func:`hcdc.archive.tdb_views.search_targets` (name,
        cone in deg/arcsec, spectral type, distance pc, age Myr, verdict, with_detections), with
        counts of what the user may see; raises ``TdbQueryError``."""
        return tv.search_targets(self.conn, self.visible, **criteria, limit=limit, offset=offset)

    def target(self, target_id: int) -> dict[str, Any]:
        """A target: values with sources, aliases, the user's observations, reductions,
        detections and candidates (``TdbNotFound`` for none)."""
        return tv.target_view(self.conn, self.visible, target_id)

    def target_id(self, ref: str) -> int:
        """The id of the target ``ref`` names: its id (digits) or one of its names (resolved
        offline; ``TargetError`` for an unknown name)."""
        if ref.isdigit():
            return int(ref)
        found = find_target(self.conn, ref)
        if found is None:
            raise TargetError(f"no target called {ref!r} (see 'hcdc target list', or 'hcdc target resolve')")
        return found

    def record(self, target_id: int) -> dict[str, Any]:
        """A target's catalogue record: values with their sources, aliases, counts of what is
        linked to it (:func:`hcdc.archive.targets.target_dict`; targets are public)."""
        return target_dict(self.conn, target_id)

    def listing(self, name: str | None = None) -> list[dict[str, Any]]:
        """Targets one of whose names contains ``name`` (all: None), by name (targets are public)."""
        return list_targets(self.conn, name)

    def dictionary(self) -> list[dict[str, Any]]:
        """The internal name dictionary (names SIMBAD does not know)."""
        return list_dictionary(self.conn)

    def export(self, target_ids: list[int] | None = None) -> dict[str, Any]:
        """The TDB (or the targets ``target_ids``) as a hierarchical exchange dict, with the
        observations and reductions the user may see (R15;
        :func:`hcdc.archive.exchange.tdb_json.export_tdb`)."""
        access = self.catalogue.access
        return export_tdb(
            self.conn,
            target_ids,
            visible_observations=access.tdb_observations_clause(),
            visible_reductions=access.tdb_reductions_clause(),
        )

    def write_hcifits(self, reduction_id: int, out: Path) -> Path:
        """Write a reduction the user may see (R15) as an HCI-FITS file ``out``
        (:func:`hcdc.archive.exchange.hcifits_tdb.export_reduction`); ``TdbNotFound`` for one
        the user may not see, as for a missing one."""
        if not self.catalogue.access.can_see_tdb_reduction(reduction_id):
            raise tv.TdbNotFound(f"no reduction {reduction_id} visible to {self.catalogue.user.name}")
        return export_reduction(self.conn, reduction_id, self.catalogue.storage_root, out)

    def curate(self) -> TargetCuration:
        """The curation of the TDB (rule A1: admins only, else ``AccessDenied`` naming the rule;
        :mod:`hcdc.archive.catalogue_tdb_admin`)."""
        access = self.catalogue.access
        access.require(access.can_manage())
        return TargetCuration(self.catalogue)

    def candidates(self, **criteria: Any) -> dict[str, Any]:
        """Candidates the user may see (:func:`hcdc.archive.tdb_views.list_candidates`: target_id,
        verdict, last_epoch_before, limit, offset)."""
        return tv.list_candidates(self.conn, self.visible, **criteria)

    def candidate(self, candidate_id: int) -> dict[str, Any]:
        """A candidate the user may see: verdict, statistic, its visible detections."""
        return tv.candidate_view(self.conn, self.visible, candidate_id)

    def astrometry_chart(self, candidate_id: int) -> dict[str, Any]:
        """A candidate's visible astrometry against the background track (a plotly figure)."""
        return tv.astrometry_chart(self.conn, self.visible, candidate_id)

    def cmd_charts(self, candidate_id: int, references: list[Any]) -> dict[str, Any]:
        """Colour-magnitude diagrams of a candidate over the ``references`` objects."""
        return tv.cmd_charts(self.conn, self.visible, candidate_id, references)

    def cmd_of_candidates(
        self, references: list[Any], target_id: int | None = None, title: str = ""
    ) -> dict[str, Any]:
        """The diagrams of every visible candidate (of one target, or of the whole archive)."""
        return tv.cmd_of_candidates(self.conn, self.visible, references, target_id, title)

    def cone(self, ra: float, dec: float, sr: float) -> list[dict[str, Any]]:
        """Targets within ``sr`` deg of (``ra``, ``dec``) (ICRS deg), nearest first
        (:func:`hcdc.archive.tdb_cone.cone_targets`; targets are public)."""
        return cone_targets(self.conn, ra, dec, sr)

    def cone_detections(self, ra: float, dec: float, sr: float) -> list[dict[str, Any]]:
        """Detections the user may see within ``sr`` deg of (``ra``, ``dec``), nearest first
        (:func:`hcdc.archive.tdb_cone.cone_detections`)."""
        return cone_detections(self.conn, self.catalogue.access.tdb_reductions_clause(), ra, dec, sr)

    def detections(
        self,
        *,
        target: str | None = None,
        target_id: int | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        min_separation: float | None = None,
        max_separation: float | None = None,
        min_contrast: float | None = None,
        max_contrast: float | None = None,
        min_snr: float | None = None,
        status: str | None = None,
        survey: str | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """The user's visible detections matching the criteria (dates UTC, inclusive; separations
        mas; contrasts flux ratios; ``target``: a name or alias, resolved offline; ``limit``
        None: all); raises ``TdbQueryError``."""
        tv.check_text(target=target, survey=survey)
        if target is not None:
            found = find_target(self.conn, target)
            if found is None or (target_id is not None and found != target_id):
                return []
            target_id = found
        return detections_table(
            self.conn,
            self.catalogue.access.tdb_reductions_clause(),
            target_id=target_id,
            min_snr=min_snr,
            min_separation_mas=min_separation,
            max_separation_mas=max_separation,
            status=status,
            survey=survey,
            date_from_jd=None if date_from is None else _jd(date_from),
            date_to_jd=None if date_to is None else _jd(date_to) + 1.0,
            min_contrast=min_contrast,
            max_contrast=max_contrast,
            limit=limit,
            offset=offset,
        )

    def regroup(self, target_id: int, detection_id: int, label: str | None) -> None:
        """Put a detection of a target in the candidate ``label`` (new if needed; None: in none),
        test again the candidates it left and joined, audit it (admins only, rule A1: else
        ``AccessDenied``; ``TdbNotFound`` for a detection not of this target)."""
        access = self.catalogue.access
        access.require(access.can_manage())
        with self.catalogue.writing() as conn:
            row = conn.execute(
                select(Detection.candidate_id)
                .join(Reduction, Reduction.id == Detection.reduction_id)
                .join(Observation, Observation.id == Reduction.observation_id)
                .where(Detection.id == detection_id, Observation.target_id == target_id)
            ).first()
            if row is None:
                raise tv.TdbNotFound(f"no detection {detection_id} of target {target_id}")
            joined = assign_detection(conn, detection_id, label)
            for candidate_id in {row.candidate_id, joined} - {None}:
                retest_candidate(conn, candidate_id)
            accounts.audit(
                conn,
                self.catalogue.user,
                "tdb.regroup",
                "detection",
                detection_id,
                {"target": target_id, "label": label},
            )
