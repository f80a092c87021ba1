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

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from hcdc.archive.catalogue_errors import NotFound
from hcdc.archive.granules import list_granules, list_validations
from hcdc.archive.interferometry import resolve_file, validate_file
from hcdc.archive.interferometry_calibrators import vet_file
from hcdc.archive.interferometry_models import GranuleRow
from hcdc.archive.interferometry_survey import SurveyError, import_targets, list_surveys, survey_status
from hcdc.archive.models import File

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

    def survey(self, name: str) -> dict[str, Any]:
        """Counts per stage, every target's stage and history, the late targets of a survey the
        user may follow, with the granules the user may see, as of the facade's time
        (:func:`hcdc.archive.interferometry_survey.survey_status`); ``NotFound`` for a missing
        survey and one of another group alike (R16)."""
        try:
            return survey_status(
                self.conn,
                self.catalogue.user,
                name,
                visible=self.access.granules_clause(),
                now=self.access.now,
            )
        except SurveyError:
            raise NotFound(f"no survey {name!r}") from None
