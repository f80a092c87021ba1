"""Interferometry (OiDB granules, survey tracking) as one user sees it: a sub-facade of the
catalogue facade.

Reached as :attr:`hcdc.archive.catalogue.UserCatalogue.granules`. Granules are filtered in SQL by
the user's clause of :mod:`hcdc.archive.access` (rules R11-R14: collection embargo from
``t_max``, calibrators public, data PI / team / delegates); a survey is followed by its group and
staff only (R16). A granule or survey the user may not see is
:class:`~hcdc.archive.catalogue.NotFound`, as a missing one. Validating a file (rule A10) archives
its flagged copy as a new version (:meth:`GranuleCatalogue.validate`).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hcdc.archive import interferometry as oi
from hcdc.archive import interferometry_calibrators as calibrators
from hcdc.archive.access import AccessContext
from hcdc.archive.catalogue_errors import NotFound
from hcdc.archive.granules import list_granules, list_validations
from hcdc.archive.interferometry import CollectionSpec, resolve_file, validate_file
from hcdc.archive.interferometry_calibrators import vet_file
from hcdc.archive.interferometry_models import GranuleRow
from hcdc.archive.interferometry_survey import SurveyError, import_targets, list_surveys, survey_status
from hcdc.archive.models import File
from hcdc.archive.obsportal import import_obsportal

if TYPE_CHECKING:
    from hcdc.archive.catalogue_errors import UserSession

__all__ = ["GranuleCatalogue"]


class GranuleCatalogue:
    """The granules and surveys that :attr:`UserCatalogue.granules` lets the user see."""

    def __init__(self, catalogue: UserSession) -> None:
        self.catalogue = catalogue
        self.conn = catalogue.conn
        self.access = catalogue.access

    def search(self, **filters: Any) -> list[dict[str, Any]]:
        """Granules the user may see, oldest first (:func:`hcdc.archive.granules.list_granules`
        filters: target, instrument, file_id, collection, level, night_id, wavelength (m),
        granule_id, all_versions, limit)."""
        return list_granules(self.conn, visible=self.access.granules_clause(), **filters)

    def granule(self, granule_id: int) -> dict[str, Any]:
        """A granule the user may see (any version), as :meth:`search` lists it; its file's id
        (``file_id``) is in the row."""
        found = self.search(granule_id=granule_id, all_versions=True)
        if not found:  # missing and hidden answered alike
            raise NotFound(f"no granule {granule_id}")
        return found[0]

    def granule_detail(self, granule_id: int) -> dict[str, Any]:
        """A granule the user may see with its file (``file_id``), the validations people
        recorded of that file, the versions of the file (each with the granule of the same
        target and instrument mode the user may see, or None), and whether the user may
        download the file (R14) and validate it (A10)."""
        granule = self.granule(granule_id)
        file_id = self.conn.scalar(select(GranuleRow.file_id).where(GranuleRow.id == granule_id))
        if file_id is None:  # an observation log entry (ObsPortal L0): no file, no versions
            return {
                "granule": granule,
                "file_id": None,
                "validations": [],
                "versions": [],
                "can_download": False,
                "can_validate": False,
            }
        path = self.conn.scalar(select(File.path).where(File.id == file_id))
        versions = []
        for version in self.conn.execute(
            select(File.id, File.version, File.is_current, File.ingested_at, File.superseded_at)
            .where(File.path == path)
            .order_by(File.version)
        ):
            granules = self.search(file_id=version.id, target=granule["target_name"], all_versions=True)
            same = [g["id"] for g in granules if g["instrument_name"] == granule["instrument_name"]]
            versions.append({**version._asdict(), "granule": same[0] if same else None})
        return {
            "granule": granule,
            "file_id": file_id,
            "validations": list_validations(self.conn, file_id),
            "versions": versions,
            "can_download": self.access.can_see_file(file_id).allowed,
            "can_validate": self.access.can_validate_file(file_id).allowed,
        }

    def file_of(self, granule_id: int) -> int:
        """The catalogue id of the file of a granule the user may see (``NotFound`` for a Level 0
        granule imported without a file)."""
        self.granule(granule_id)
        file_id = self.conn.scalar(select(GranuleRow.file_id).where(GranuleRow.id == granule_id))
        if file_id is None:
            raise NotFound(f"granule {granule_id} is an observation log entry without a file")
        return int(file_id)

    def resolve_file(self, ref: str) -> int:
        """The current file id of ``ref``: a file id (``12``, ``f12``) or a catalogued path
        (:func:`hcdc.archive.interferometry.resolve_file`; ``InterferometryError`` for none)."""
        return resolve_file(self.conn, ref)

    def validations(self, file_id: int) -> list[dict[str, Any]]:
        """The validations people recorded of a file the user may see, oldest first
        (:func:`hcdc.archive.granules.list_validations`; ``NotFound`` for one hidden or missing)."""
        if not self.access.can_see_file(file_id):
            raise NotFound(f"no file with id {file_id}")
        return list_validations(self.conn, file_id)

    def vet(self, path: Path, *, as_calibrator: bool = False) -> dict[str, Any]:
        """Vet the calibrators the OIFITS file at ``path`` uses against the calibrator catalogue
        and the bad-calibrator list (:func:`hcdc.archive.interferometry_calibrators.vet_file`;
        raises ``CalibratorError``)."""
        return vet_file(self.conn, path, as_calibrator=as_calibrator)

    def validate(
        self, file_id: int, quality: int, comment: str, calibrator: bool | None = None
    ) -> dict[str, Any]:
        """Validate OIFITS file ``file_id`` as the user (rule A10, audited): record the flag
        and archive the flagged copy as the file's next version
        (:func:`hcdc.archive.interferometry.validate_file`, whose arguments and errors these
        are). Ends the facade's read transaction afterwards, so its next reads see the new
        version."""
        record = validate_file(
            self.catalogue.write_engine(),
            self.catalogue.storage_root,
            self.catalogue.user,
            file_id,
            quality,
            comment,
            calibrator,
            file_mode=self.catalogue.file_mode,
        )
        if self.conn.in_transaction():
            self.conn.rollback()
        return record

    def successor(self, granule_id: int, new_file_id: int) -> int | None:
        """The granule of file ``new_file_id`` (a new version of the file of ``granule_id``) with
        the same target and instrument mode, or None. Ends the facade's read transaction first:
        the new version was written on another connection."""
        if self.conn.in_transaction():
            self.conn.rollback()
        g = GranuleRow.__table__.c
        old = self.conn.execute(select(g.target_name, g.instrument_name).where(g.id == granule_id)).one()
        return self.conn.scalar(
            select(g.id).where(
                g.file_id == new_file_id,
                g.target_name == old.target_name,
                g.instrument_name == old.instrument_name,
            )
        )

    def surveys(self) -> list[dict[str, Any]]:
        """The surveys the user may follow, with their group and target count."""
        return list_surveys(self.conn, self.catalogue.user)

    def import_survey_targets(self, name: str, path: str, group: str | None) -> dict[str, int]:
        """Create survey ``name`` (followed by ``group``) if new and add or update the targets
        of the CSV at ``path`` (staff only; :func:`hcdc.archive.interferometry_survey.import_targets`,
        whose ``SurveyError`` it raises); returns counts of added and updated targets."""
        with self.catalogue.writing() as conn:
            return import_targets(conn, self.catalogue.user, name, path, group)

    def survey(self, name: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
        """Counts per stage, every target's stage and history, the late targets of a survey the
        user may follow, with the granules the user may see, as of ``now`` (UTC; default: the
        facade's time, whose decisions it then uses)
        (:func:`hcdc.archive.interferometry_survey.survey_status`); ``NotFound`` for a missing
        survey and one of another group alike (R16), its message naming the account (``no
        survey 'X' visible to bob``: the same for both)."""
        access = (
            self.access
            if now is None
            else AccessContext(self.conn, self.access.user, now, self.access.policy)
        )
        try:
            return survey_status(
                self.conn, self.catalogue.user, name, visible=access.granules_clause(), now=access.now
            )
        except SurveyError as exc:
            raise NotFound(str(exc)) from None

    # -- collections (OiDB's: embargo, data rights, data PI) -----------------------------------

    def collections(self) -> list[dict[str, Any]]:
        """The collections with their embargo, data rights, data PI, rules and granule counts
        (:func:`hcdc.archive.interferometry.list_collections`), admins only (rule A1: the
        counts include embargoed granules, the data PIs are accounts)."""
        self.access.require(self.access.can_manage())
        return oi.list_collections(self.conn)

    def add_collection(self, spec: CollectionSpec) -> dict[str, Any]:
        """Register a collection (rule A1, decided and audited by
        :func:`hcdc.archive.interferometry.add_collection`; the granules already catalogued
        that match join it); returns its row as :meth:`collections` lists it."""
        with self.catalogue.writing() as conn:
            oi.add_collection(conn, self.catalogue.user, spec)
            return next(c for c in oi.list_collections(conn) if c["name"] == spec.name)

    def assign_file(self, ref: str, collection: str) -> int:
        """Put the granules of file ``ref`` (id or catalogued path) into ``collection`` whatever
        its rules (rule A1, audited); returns how many."""
        with self.catalogue.writing() as conn:
            return oi.assign_file(conn, self.catalogue.user, oi.resolve_file(conn, ref), collection)

    def delegate(
        self,
        grantee: str,
        collection: str,
        progid: str | None = None,
        proposal_subid: str | None = None,
        expires_at: dt.datetime | None = None,
        reason: str | None = None,
    ) -> int:
        """Let ``grantee`` see a collection's embargoed granules, or one programme /
        sub-programme of it (rule A9: the data PI or an admin, audited); returns the id."""
        with self.catalogue.writing() as conn:
            return oi.delegate_granules(
                conn, self.catalogue.user, grantee, collection, progid, proposal_subid, expires_at, reason
            )

    def revoke_delegation(self, delegation_id: int) -> None:
        """Revoke a granule delegation (rule A9: the collection's data PI or an admin, audited)."""
        with self.catalogue.writing() as conn:
            oi.revoke_granule_delegation(conn, self.catalogue.user, delegation_id)

    def delegations(self) -> list[dict[str, Any]]:
        """Every granule delegation, newest first (admins only, rule A1: who may see whose
        data)."""
        self.access.require(self.access.can_manage())
        return oi.list_granule_delegations(self.conn)

    # -- Level 3, model fits ------------------------------------------------------------------

    def publish(self, ref: str, bibcode: str) -> tuple[int, int]:
        """Make the granules of file ``ref`` (id or catalogued path) Level 3, attached to an
        article's ADS bibcode (rule A10, audited); returns (file id, granules changed)."""
        with self.catalogue.writing() as conn:
            file_id = oi.resolve_file(conn, ref)
            return file_id, oi.publish_file(conn, self.catalogue.user, file_id, bibcode)

    def fit_inputs(self, collection: str, *, from_catalogue: bool = False) -> list[dict[str, Any]]:
        """The current files of ``collection`` the user may read (R11-R14), oldest first, as
        :func:`hcdc.archive.interferometry.collection_files` lists them, each with ``start``:
        the imported catalogue's diameter of its target (single-target files, when
        ``from_catalogue``; :func:`hcdc.archive.interferometry_calibrators.catalogue_diameter`)
        or None. The jobs are queued by the pipeline's facade
        (``ProcessingCatalogue.queue_oifits_fit``)."""
        files = oi.collection_files(self.catalogue.storage_root, self.conn, self.catalogue.user, collection)
        for item in files:
            target = item["targets"][0]
            single = from_catalogue and len(item["targets"]) == 1
            item["start"] = (
                calibrators.catalogue_diameter(self.conn, target, *item["positions"][target])
                if single
                else None
            )
        return files

    # -- ObsPortal's observation log, the calibrator catalogue ---------------------------------

    def import_obsportal(self, votable: str | Path, collection: str) -> dict[str, Any]:
        """Import an ObsPortal VOTable as Level 0 granules of ``collection`` (rule A1, audited;
        :func:`hcdc.archive.obsportal.import_obsportal`, whose ``ObsPortalError`` it raises),
        the rows accepted committed in one transaction, the rejected ones in the report."""
        with self.catalogue.writing() as conn:
            return import_obsportal(conn, self.catalogue.user, votable, collection, self.access.policy)

    def import_calibrators(self, table: str | Path, *, bad_list: bool = False) -> int:
        """Import a calibrator catalogue (JSDC v2 columns) or, with ``bad_list``, a
        bad-calibrator list, replacing the stars already imported (admins only, rule A1;
        ``CalibratorError`` for a bad table); returns the number of rows."""
        self.access.require(self.access.can_manage())
        load = calibrators.import_bad_list if bad_list else calibrators.import_catalogue
        with self.catalogue.writing() as conn:
            return load(conn, table)

    def calibrators(self) -> list[dict[str, Any]]:
        """The imported calibrators (a public catalogue: JSDC), diameters in mas."""
        return calibrators.list_calibrators(self.conn)
