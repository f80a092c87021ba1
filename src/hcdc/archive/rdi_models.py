"""Tables of the RDI reference libraries (:mod:`hcdc.archive.rdi_library`; migration
``0022_rdi_library``).

* ``rdi_libraries``: one library, built for one science Level 1 product by one account: the
  set-up it matched (instrument, arm, filter, coronagraph, DIT range), the selection (conditions
  thresholds, correlation annulus, size), the library FITS file in the storage root (path
  relative to it, sha256) and the build's provenance (software version, git commit, parameters,
  candidate counts) as JSON;
* ``rdi_library_frames``: its frames, best first: the Level 1 product and frame index each comes
  from, its Pearson correlation with the science frames in the annulus, and the frame's AO
  conditions (Strehl, seeing, tau0; NULL without telemetry).

Who sees a library is decided by :mod:`hcdc.archive.access` (rule R18).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive.models import Base, JSONType, utcnow

__all__ = ["RdiLibrary", "RdiLibraryFrame"]


class RdiLibrary(Base):
    """One reference-star library (see the module docstring)."""

    __tablename__ = "rdi_libraries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    science_product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    target: Mapped[str | None] = mapped_column(String(128))  # the science product's target
    instrument: Mapped[str | None] = mapped_column(String(32))
    arm: Mapped[str | None] = mapped_column(String(32))
    filter: Mapped[str | None] = mapped_column(String(64))
    coronagraph: Mapped[str | None] = mapped_column(String(64))
    dit_min_s: Mapped[float | None] = mapped_column(Float)
    dit_max_s: Mapped[float | None] = mapped_column(Float)
    annulus_inner_px: Mapped[float] = mapped_column(Float, nullable=False)
    annulus_outer_px: Mapped[float] = mapped_column(Float, nullable=False)
    n_candidates: Mapped[int] = mapped_column(Integer, nullable=False)  # frames examined
    n_frames: Mapped[int] = mapped_column(Integer, nullable=False)  # frames kept
    path: Mapped[str] = mapped_column(Text, nullable=False)  # library FITS, relative to the storage root
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    built_by: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)
    record: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)  # provenance, parameters

    __table_args__ = (
        UniqueConstraint("name", name="uq_rdi_libraries_name"),
        Index("ix_rdi_libraries_science_product_id", "science_product_id"),
    )


class RdiLibraryFrame(Base):
    """One frame of a library: where it comes from and how well it matches."""

    __tablename__ = "rdi_library_frames"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    library_id: Mapped[int] = mapped_column(
        ForeignKey("rdi_libraries.id", ondelete="CASCADE"), nullable=False
    )
    rank: Mapped[int] = mapped_column(Integer, nullable=False)  # 0 = best correlated; plane in the FITS cube
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    frame_index: Mapped[int] = mapped_column(Integer, nullable=False)  # frame of that Level 1 cube
    # mean Pearson correlation with the science frames in the annulus
    correlation: Mapped[float] = mapped_column(Float, nullable=False)
    mjd: Mapped[float | None] = mapped_column(Float)
    strehl: Mapped[float | None] = mapped_column(Float)
    seeing_arcsec: Mapped[float | None] = mapped_column(Float)
    tau0_s: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        UniqueConstraint("library_id", "rank", name="uq_rdi_library_frames_rank"),
        Index("ix_rdi_library_frames_product_id", "product_id"),
    )
