"""The Target Data Base tables (SQLAlchemy models; created by the migration ``0006_tdb``).

Organised around targets rather than files (see ``docs/level3.md``):

* ``tdb_targets``: one row per astronomical target, with its astrometry (ICRS degrees, proper
  motion mas/yr, parallax mas, radial velocity km/s), photometry (B V R I J H K, magnitudes),
  spectral type and age (Myr); ``sources`` says where each value came from
  (``{"ra": "SIMBAD 2020yCat.1350....0G", "age_myr": "dictionary (admin)", ...}``).
* ``tdb_target_aliases``: every name of a target, unique by its normalised form
  (:func:`hcdc.archive.targets.normalize_name`), so "51Eri", "51 ERI" and "HD 29391" find one row.
* ``tdb_name_dictionary``: the internal dictionary: names SIMBAD does not know, added by admins,
  each meaning a canonical name and optionally carrying values (coordinates, magnitudes, ...).
* ``tdb_simbad_cache``: each SIMBAD answer, by normalised name (``answer`` None: SIMBAD does not
  know the name), so resolution works offline afterwards.
* ``tdb_target_links``: which catalogued file / dataset / product is of which target.
* ``tdb_observations`` -> ``tdb_reductions`` -> ``tdb_detections``: the SPHERE TDB hierarchy, filled
  from validated Level 2 products (:func:`hcdc.archive.tdb.receive_product`) or imported (JSON,
  HCI-FITS). Each row has a unique ``uid`` that survives export and import.
* ``tdb_candidates``: detections of one target at several epochs believed to be one object;
  ``tdb_detections.candidate_id`` links them; ``status`` is the bound/background verdict.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive import pipeline_models as _pipeline_models  # noqa: F401 - products table for the FK
from hcdc.archive.models import Base, JSONType, utcnow

#: photometric bands of a target (magnitudes, Vega system as SIMBAD gives them)
TARGET_BANDS = ("b", "v", "r", "i", "j", "h", "k")
#: kinds of catalogued objects linked to targets
LINK_KINDS = ("file", "dataset", "product")
#: verdicts of a candidate
CANDIDATE_STATUSES = ("undetermined", "bound", "background")


class Target(Base):
    """One target (see the module docstring); values are None when unknown."""

    __tablename__ = "tdb_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)  # display name
    ra_deg: Mapped[float | None] = mapped_column(Float)  # ICRS
    dec_deg: Mapped[float | None] = mapped_column(Float)
    pmra_masyr: Mapped[float | None] = mapped_column(Float)  # mu_alpha* (includes cos dec)
    pmdec_masyr: Mapped[float | None] = mapped_column(Float)
    parallax_mas: Mapped[float | None] = mapped_column(Float)
    parallax_err_mas: Mapped[float | None] = mapped_column(Float)
    rv_kms: Mapped[float | None] = mapped_column(Float)
    mag_b: Mapped[float | None] = mapped_column(Float)
    mag_v: Mapped[float | None] = mapped_column(Float)
    mag_r: Mapped[float | None] = mapped_column(Float)
    mag_i: Mapped[float | None] = mapped_column(Float)
    mag_j: Mapped[float | None] = mapped_column(Float)
    mag_h: Mapped[float | None] = mapped_column(Float)
    mag_k: Mapped[float | None] = mapped_column(Float)
    spectral_type: Mapped[str | None] = mapped_column(String(64))
    age_myr: Mapped[float | None] = mapped_column(Float)
    age_err_myr: Mapped[float | None] = mapped_column(Float)
    sources: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    simbad_id: Mapped[str | None] = mapped_column(String(128))  # SIMBAD main identifier
    resolved: Mapped[str] = mapped_column(String(16), nullable=False, default="unresolved")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        CheckConstraint(
            "resolved IN ('unresolved', 'simbad', 'dictionary', 'import', 'manual')", name="resolved_valid"
        ),
        Index("ix_tdb_targets_name", "name"),
    )


class TargetAlias(Base):
    """One name of a target; ``normalized`` is unique across all targets."""

    __tablename__ = "tdb_target_aliases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("tdb_targets.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)  # as written
    normalized: Mapped[str] = mapped_column(String(128), nullable=False)
    origin: Mapped[str] = mapped_column(
        String(16), nullable=False
    )  # simbad, dictionary, object, user, import

    __table_args__ = (
        UniqueConstraint("normalized"),
        Index("ix_tdb_target_aliases_target_id", "target_id"),
    )


class NameDictionaryEntry(Base):
    """A name of the internal dictionary: what it means and, optionally, its values."""

    __tablename__ = "tdb_name_dictionary"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    normalized: Mapped[str] = mapped_column(String(128), nullable=False)
    canonical: Mapped[str] = mapped_column(String(128), nullable=False)  # the name it stands for
    values: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    note: Mapped[str | None] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(128), nullable=False)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("normalized"),)


class SimbadCacheEntry(Base):
    """One SIMBAD answer, by normalised query name (``answer`` None: unknown to SIMBAD)."""

    __tablename__ = "tdb_simbad_cache"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    normalized: Mapped[str] = mapped_column(String(128), nullable=False)
    query: Mapped[str] = mapped_column(String(128), nullable=False)
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    endpoint: Mapped[str] = mapped_column(Text, nullable=False)
    fetched_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("normalized"),)


class TargetLink(Base):
    """A catalogued file, dataset or product of a target (by its OBJECT / target name)."""

    __tablename__ = "tdb_target_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("tdb_targets.id", ondelete="CASCADE"), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    object_id: Mapped[int] = mapped_column(Integer, nullable=False)
    object_name: Mapped[str | None] = mapped_column(String(128))  # the name as the object gives it

    __table_args__ = (
        CheckConstraint("kind IN ('file', 'dataset', 'product')", name="kind_valid"),
        UniqueConstraint("kind", "object_id", name="uq_tdb_target_links_object"),
        Index("ix_tdb_target_links_target_id", "target_id"),
    )


class Candidate(Base):
    """A companion candidate: detections of one target at several epochs (one object)."""

    __tablename__ = "tdb_candidates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("tdb_targets.id", ondelete="CASCADE"), nullable=False)
    label: Mapped[str] = mapped_column(String(64), nullable=False)  # "cc1", "b", ...
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="undetermined")
    statistic: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # the test behind the status
    grouped_by: Mapped[str] = mapped_column(String(16), nullable=False, default="auto")  # auto, admin, import
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        CheckConstraint("status IN ('undetermined', 'bound', 'background')", name="status_valid"),
        UniqueConstraint("target_id", "label", name="uq_tdb_candidates_label"),
    )


class Observation(Base):
    """One observation of a target (SPHERE TDB "observation"); angles in degrees."""

    __tablename__ = "tdb_observations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(128), nullable=False)
    target_id: Mapped[int] = mapped_column(ForeignKey("tdb_targets.id", ondelete="CASCADE"), nullable=False)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    date_jd: Mapped[float | None] = mapped_column(Float)  # Julian date (UTC) of the observation's start
    instrument: Mapped[str | None] = mapped_column(String(64))
    telescope: Mapped[str | None] = mapped_column(String(64))
    survey: Mapped[str | None] = mapped_column(String(128))  # survey / group name (access: R11)
    filter: Mapped[str | None] = mapped_column(String(64))
    true_north_deg: Mapped[float | None] = mapped_column(Float)
    true_north_err_deg: Mapped[float | None] = mapped_column(Float)
    parallactic_angle_deg: Mapped[float | None] = mapped_column(Float)  # at the middle (or start)
    pixel_scale_mas: Mapped[float | None] = mapped_column(Float)
    pixel_scale_err_mas: Mapped[float | None] = mapped_column(Float)
    setup: Mapped[str | None] = mapped_column(String(255))  # coronagraph / mode / ND ...
    prog_id: Mapped[str | None] = mapped_column(String(64))
    release_date: Mapped[dt.datetime | None] = mapped_column(DateTime)  # imported rows: public from
    origin: Mapped[str] = mapped_column(String(16), nullable=False, default="import")  # level2, import
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("uid"),
        Index("ix_tdb_observations_target_id", "target_id"),
        Index("ix_tdb_observations_dataset_id", "dataset_id"),
    )


class Reduction(Base):
    """One reduction of an observation (SPHERE TDB "reduction")."""

    __tablename__ = "tdb_reductions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(128), nullable=False)
    observation_id: Mapped[int] = mapped_column(
        ForeignKey("tdb_observations.id", ondelete="CASCADE"), nullable=False
    )
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    validated: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    software: Mapped[str | None] = mapped_column(String(64))
    software_version: Mapped[str | None] = mapped_column(String(64))
    algorithm: Mapped[str | None] = mapped_column(String(64))
    date: Mapped[dt.datetime | None] = mapped_column(DateTime)  # when the reduction was made (UTC)
    location: Mapped[str | None] = mapped_column(Text)  # where: data centre + product path, or a URL
    # detection limits: {"separation_mas": [...], "contrast": [...], "nsigma": 5, "wavelength_um": ...}
    detection_limits: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("uid"),
        Index("ix_tdb_reductions_observation_id", "observation_id"),
        Index("ix_tdb_reductions_product_id", "product_id"),
    )


class Detection(Base):
    """One detection of a reduction (SPHERE TDB "detection"); offsets east/north in mas."""

    __tablename__ = "tdb_detections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(128), nullable=False)
    reduction_id: Mapped[int] = mapped_column(
        ForeignKey("tdb_reductions.id", ondelete="CASCADE"), nullable=False
    )
    candidate_id: Mapped[int | None] = mapped_column(ForeignKey("tdb_candidates.id", ondelete="SET NULL"))
    wavelength_um: Mapped[float | None] = mapped_column(Float)
    filter: Mapped[str | None] = mapped_column(String(64))
    magnitude: Mapped[float | None] = mapped_column(Float)  # apparent, in ``filter``
    magnitude_err: Mapped[float | None] = mapped_column(Float)
    contrast: Mapped[float | None] = mapped_column(Float)  # flux ratio to the star
    contrast_err: Mapped[float | None] = mapped_column(Float)
    snr: Mapped[float | None] = mapped_column(Float)
    dra_mas: Mapped[float | None] = mapped_column(Float)  # east positive
    dra_err_mas: Mapped[float | None] = mapped_column(Float)
    ddec_mas: Mapped[float | None] = mapped_column(Float)  # north positive
    ddec_err_mas: Mapped[float | None] = mapped_column(Float)
    separation_mas: Mapped[float | None] = mapped_column(Float)
    separation_err_mas: Mapped[float | None] = mapped_column(Float)
    pa_deg: Mapped[float | None] = mapped_column(Float)  # east of north
    pa_err_deg: Mapped[float | None] = mapped_column(Float)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)

    __table_args__ = (
        UniqueConstraint("uid"),
        Index("ix_tdb_detections_reduction_id", "reduction_id"),
        Index("ix_tdb_detections_candidate_id", "candidate_id"),
    )


__all__ = [
    "CANDIDATE_STATUSES",
    "LINK_KINDS",
    "TARGET_BANDS",
    "Candidate",
    "Detection",
    "NameDictionaryEntry",
    "Observation",
    "Reduction",
    "SimbadCacheEntry",
    "Target",
    "TargetAlias",
    "TargetLink",
]
