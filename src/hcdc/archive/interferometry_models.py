"""The catalogue's interferometry tables: OiDB granules, collections, delegations, validations.

Tables (``granules`` from migration ``0004_granules``, the others and the granule columns
``proposal_subid`` / ``bib_reference`` from ``0007_interferometry``):

* ``granules``: one OiDB granule (target x INSNAME x night x OIFITS file version), filled at
  ingest (:mod:`hcdc.archive.granules`);
* ``oi_collections``: OiDB collections (a CHARA/SPICA survey, a VLTI programme, ...) with their
  ``coltype``, embargo in months, optional collection-wide release date, default data rights,
  data PI (``owner_user_id``) and the rules that put a file's granules into them at ingest
  (ARRNAME, INSNAME prefix, programme);
* ``oi_delegations``: a data PI's grant of one collection, or one programme or sub-programme
  (``HIERARCH SPICADB-ID``) of it, to a delegate; revocable, optionally expiring;
* ``oi_validations``: a person's validation of an OIFITS file (the SPICA ``spica_L2gen`` step):
  who, when, the SPICA-DB flag 1-4, OiDB's ``quality_level``, the comment, the validated
  version and the new version written with the flag in its header.

These tables hold facts; who sees what is decided in :mod:`hcdc.archive.access` only. All
times are naive UTC, as in the rest of the catalogue.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
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

from hcdc.archive.models import Base, JSONType, utcnow

#: Quality levels of OiDB (``quality_level``): 0 Unknown ... 5 Outstanding.
QUALITY_LABELS: dict[int, str] = {
    0: "Unknown",
    1: "Trash",
    2: "To be reduced again",
    3: "Quick look (risky to publish)",
    4: "Science ready",
    5: "Outstanding quality",
}
#: SPICA-DB's validation scale; it maps one-to-one onto OiDB's values 1-4 (reference §2.3).
SPICA_QUALITY: dict[int, str] = {1: "trash", 2: "poor", 3: "medium", 4: "science ready"}
DATA_RIGHTS = ("public", "secure", "proprietary")
#: Embargo of OiDB's collection types in months (``collection:get-embargo``); others: none.
COLTYPE_EMBARGO_MONTHS: dict[str, int] = {"suv": 24, "pionier": 12, "eso": 12, "chara": 18}


def oidb_quality(spica_flag: int) -> int:
    """OiDB ``quality_level`` (0-5) of a SPICA-DB flag (1 trash ... 4 science ready)."""
    if spica_flag not in SPICA_QUALITY:
        raise ValueError(f"quality {spica_flag!r}: the SPICA-DB scale is 1 (trash) to 4 (science ready)")
    return spica_flag  # one-to-one (reference §2.3)


class GranuleRow(Base):
    """One OiDB granule (ObsCore + OiDB column names; units in the comments)."""

    __tablename__ = "granules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL: an observation log entry imported without a file (ObsPortal, hcdc.archive.obsportal)
    file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"))
    target_name: Mapped[str] = mapped_column(Text, nullable=False)
    s_ra: Mapped[float | None] = mapped_column(Float)  # deg
    s_dec: Mapped[float | None] = mapped_column(Float)  # deg
    t_exptime: Mapped[float | None] = mapped_column(Float)  # s, minimum INT_TIME
    t_min: Mapped[float] = mapped_column(Float, nullable=False)  # MJD
    t_max: Mapped[float] = mapped_column(Float, nullable=False)  # MJD
    em_min: Mapped[float | None] = mapped_column(Float)  # m
    em_max: Mapped[float | None] = mapped_column(Float)  # m
    em_res_power: Mapped[float | None] = mapped_column(Float)
    facility_name: Mapped[str | None] = mapped_column(Text)
    instrument_name: Mapped[str] = mapped_column(Text, nullable=False)  # raw INSNAME
    nb_vis: Mapped[int] = mapped_column(Integer, nullable=False)  # table rows
    nb_vis2: Mapped[int] = mapped_column(Integer, nullable=False)
    nb_t3: Mapped[int] = mapped_column(Integer, nullable=False)
    nb_channels: Mapped[int] = mapped_column(Integer, nullable=False)
    night_id: Mapped[int] = mapped_column(Integer, nullable=False)  # round(MJD)
    calib_level: Mapped[int | None] = mapped_column(Integer)  # 0-3; NULL: the collection's default
    quality_level: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # OiDB 0-5
    dataproduct_category: Mapped[str | None] = mapped_column(String(16))  # SCIENCE / CALIB
    progid: Mapped[str | None] = mapped_column(String(64))
    # NULL: the collection's data rights (or, outside any collection, its file's rules)
    data_rights: Mapped[str | None] = mapped_column(String(16))
    # an explicit release date (e.g. of an L3 article); the embargo is computed when asked
    obs_release_date: Mapped[dt.datetime | None] = mapped_column(DateTime)
    obs_collection: Mapped[str | None] = mapped_column(String(128))
    validation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # counts per severity
    proposal_subid: Mapped[str | None] = mapped_column(String(64))  # HIERARCH SPICADB-ID
    bib_reference: Mapped[str | None] = mapped_column(String(32))  # L3: the article's bibcode
    # L0 from ObsPortal (migration 0019_obsportal): exposure id, unique within a collection
    obs_id: Mapped[str | None] = mapped_column(String(64))
    access_url: Mapped[str | None] = mapped_column(Text)  # the exposure's page (no file here)
    instrument_mode: Mapped[str | None] = mapped_column(String(128))  # mode[_submode]
    interferometer_stations: Mapped[str | None] = mapped_column(String(128))  # e.g. S1-S2-E1-E2-W1-W2
    datapi: Mapped[str | None] = mapped_column(Text)  # the programme's PI / co-Is

    __table_args__ = (
        CheckConstraint("quality_level BETWEEN 0 AND 5", name="quality_level_range"),
        CheckConstraint("calib_level IS NULL OR calib_level BETWEEN 0 AND 3", name="calib_level_range"),
        CheckConstraint(
            "data_rights IS NULL OR data_rights IN ('public', 'secure', 'proprietary')", name="data_rights"
        ),
        Index("ix_granules_file_id", "file_id"),
        Index("ix_granules_target_name", "target_name"),
        Index("ix_granules_t_min", "t_min"),
        Index("ix_granules_obs_collection", "obs_collection"),
        Index("uq_granules_obs_collection_obs_id", "obs_collection", "obs_id", unique=True),
    )


class OiCollection(Base):
    """An OiDB collection: embargo, data rights, data PI and which granules it takes."""

    __tablename__ = "oi_collections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    coltype: Mapped[str] = mapped_column(String(32), nullable=False)  # chara, eso, pionier, suv, ...
    embargo_months: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    release_date: Mapped[dt.datetime | None] = mapped_column(DateTime)  # nothing public before
    data_rights: Mapped[str] = mapped_column(String(16), nullable=False, default="public")
    owner_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    calib_level: Mapped[int | None] = mapped_column(Integer)  # default level of its granules
    match_facility: Mapped[str | None] = mapped_column(String(64))  # ARRNAME, exact, any case
    match_instrument: Mapped[str | None] = mapped_column(String(64))  # INSNAME prefix, any case
    match_progid: Mapped[str | None] = mapped_column(String(64))  # programme (without run letter)
    title: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("name", name="uq_oi_collections_name"),
        CheckConstraint("embargo_months >= 0", name="embargo_months_positive"),
        CheckConstraint("data_rights IN ('public', 'secure', 'proprietary')", name="data_rights"),
        CheckConstraint("calib_level IS NULL OR calib_level BETWEEN 0 AND 3", name="calib_level_range"),
    )


class OiDelegation(Base):
    """A grant of one collection, or of one programme / sub-programme of it, to a delegate."""

    __tablename__ = "oi_delegations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grantee_user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("oi_collections.id", ondelete="CASCADE"), nullable=False
    )
    progid: Mapped[str | None] = mapped_column(String(64))  # NULL: the whole collection
    proposal_subid: Mapped[str | None] = mapped_column(String(64))  # NULL: the whole programme
    granted_by: Mapped[str] = mapped_column(String(128), nullable=False)  # actor name (audit)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_oi_delegations_grantee_user_id", "grantee_user_id"),)


class OiValidation(Base):
    """A person's validation of an OIFITS file version (SPICA-DB flag + comment)."""

    __tablename__ = "oi_validations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), nullable=False)
    # the version written with the flag in its header (NULL if the header already said so)
    new_file_id: Mapped[int | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    validated_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    spica_quality: Mapped[int] = mapped_column(Integer, nullable=False)  # 1 trash ... 4 science ready
    quality_level: Mapped[int] = mapped_column(Integer, nullable=False)  # OiDB 0-5
    category: Mapped[str | None] = mapped_column(String(16))  # SCIENCE / CALIB written
    comment: Mapped[str] = mapped_column(Text, nullable=False)

    __table_args__ = (
        CheckConstraint("spica_quality BETWEEN 1 AND 4", name="spica_quality_range"),
        CheckConstraint("quality_level BETWEEN 0 AND 5", name="quality_level_range"),
        Index("ix_oi_validations_file_id", "file_id"),
    )
