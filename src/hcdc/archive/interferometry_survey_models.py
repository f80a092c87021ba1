"""Survey tracking tables (migration ``0009_survey``): a survey (e.g. SPICA's ISSP) owned by
one group, and its target list. A target's progress is not stored: it is computed from the
catalogue (granules, validations) when asked (:mod:`hcdc.archive.interferometry_survey`)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive.models import Base, utcnow


class Survey(Base):
    """A survey and the group (``groups``) whose members follow it."""

    __tablename__ = "surveys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (UniqueConstraint("name", name="uq_surveys_name"),)


class SurveyTarget(Base):
    """One planned target of a survey: name (matched to granules by normalised name, or by
    position within 5″ when given), optional position [deg] and due date (naive UTC)."""

    __tablename__ = "survey_targets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    name_key: Mapped[str] = mapped_column(String(128), nullable=False)
    ra: Mapped[float | None] = mapped_column(Float)  # deg
    dec: Mapped[float | None] = mapped_column(Float)  # deg
    due: Mapped[dt.datetime | None] = mapped_column(DateTime)  # validated by then, else late
    note: Mapped[str | None] = mapped_column(Text)
    planned_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        UniqueConstraint("survey_id", "name_key", name="uq_survey_targets_key"),
        Index("ix_survey_targets_survey_id", "survey_id"),
    )
