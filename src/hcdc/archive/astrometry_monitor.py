"""True North and plate-scale monitoring: a store of **measured** astrometric calibration values
with their sources, as a time series per instrument arm and filter.

No SPHERE header carries a measured True North or plate scale (the Level 1 ``HCDC TRUENORTH`` /
``HCDC PIXSCALE`` cards are the constants the pipeline assumed), and no astrometric calibration
field is in the archive, so the values come from outside: a measurement of an astrometric field
(the data centre's own, or a publication), entered by the data-centre team with its source
(``source`` is required: a paper, a report, a product) and optionally the hcdc product it was
measured on. Each value is compared with the constant the pipeline assumes
(:data:`ASSUMED`): a measurement that differs by more than ``nsigma`` of its error is reported
(the pipeline's angles or separations are then biased by the difference).

Units: True North correction in degrees (the angle added to the derotation, sign convention of
vlt-sphere / pyKLIP: PA_sky = PA_detector + PARANGLE + TN + PUPOFF), plate scale in mas per
pixel. Adding needs rule R1's staff role (the monitoring is the data-centre team's) and is
audited; reading is R1 too.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Connection,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive.access import AccessContext, AccessDenied, Principal
from hcdc.archive.accounts import audit
from hcdc.archive.models import Base, utcnow
from hcdc.instruments.sphere import constants as sphere_constants

__all__ = [
    "ASSUMED",
    "AstrometricCalibration",
    "add_astrometric_calibration",
    "add_measured_calibration",
    "astrometric_series",
]

#: (instrument, arm) -> the constants the pipeline assumes: True North (deg), plate scale (mas/px)
ASSUMED: dict[tuple[str, str], dict[str, float]] = {
    ("SPHERE", "IRDIS"): {
        "true_north_deg": sphere_constants.TRUE_NORTH_DEG,
        "plate_scale_mas": sphere_constants.IRDIS_PIXEL_SCALE_MAS,
    },
    ("SPHERE", "IFS"): {
        "true_north_deg": sphere_constants.TRUE_NORTH_DEG,
        "plate_scale_mas": sphere_constants.IFS_PIXEL_SCALE_MAS,
    },
}


class AstrometricCalibration(Base):
    """One measured True North and/or plate-scale value (see the module docstring)."""

    __tablename__ = "astrometric_calibrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instrument: Mapped[str] = mapped_column(String(32), nullable=False)
    arm: Mapped[str | None] = mapped_column(String(32))
    filter: Mapped[str | None] = mapped_column(String(64))
    epoch: Mapped[dt.date] = mapped_column(Date, nullable=False)  # date of the calibration field
    true_north_deg: Mapped[float | None] = mapped_column(Float)
    true_north_err_deg: Mapped[float | None] = mapped_column(Float)
    plate_scale_mas: Mapped[float | None] = mapped_column(Float)
    plate_scale_err_mas: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="SET NULL"))
    added_by: Mapped[str] = mapped_column(String(64), nullable=False)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        CheckConstraint("true_north_deg IS NOT NULL OR plate_scale_mas IS NOT NULL", name="some_value"),
        Index("ix_astrometric_calibrations_instrument_arm_epoch", "instrument", "arm", "epoch"),
    )


def _require_staff(conn: Connection, user: Principal) -> None:
    decision = AccessContext(conn, user).can_monitor()
    if not decision:
        raise AccessDenied(f"not allowed ({decision.rule}): {decision.reason}")


def add_astrometric_calibration(
    conn: Connection,
    actor: Principal,
    *,
    instrument: str,
    epoch: dt.date,
    source: str,
    arm: str | None = None,
    filter: str | None = None,  # noqa: A002 - the catalogue's column name
    true_north_deg: float | None = None,
    true_north_err_deg: float | None = None,
    plate_scale_mas: float | None = None,
    plate_scale_err_mas: float | None = None,
    product_id: int | None = None,
) -> int:
    """Store one measurement (staff only, audited); returns its id. Raises ValueError for a value
    out of range (plate scale <= 0, |True North| > 180 deg, negative error, no value, no source)."""
    _require_staff(conn, actor)
    if true_north_deg is None and plate_scale_mas is None:
        raise ValueError("give a True North value, a plate scale, or both")
    if not source or not source.strip():
        raise ValueError("a measured value needs its source (paper, report or product)")
    if true_north_deg is not None and not -180.0 <= true_north_deg <= 180.0:
        raise ValueError(f"True North correction must be within [-180, 180] deg; got {true_north_deg}")
    if plate_scale_mas is not None and not plate_scale_mas > 0:
        raise ValueError(f"plate scale must be positive (mas/px); got {plate_scale_mas}")
    for name, error in (
        ("true_north_err_deg", true_north_err_deg),
        ("plate_scale_err_mas", plate_scale_err_mas),
    ):
        if error is not None and not error >= 0:
            raise ValueError(f"{name} must be >= 0; got {error}")
    values = {
        "instrument": instrument.strip().upper(),
        "arm": arm.strip().upper() if arm else None,
        "filter": filter.strip() if filter else None,
        "epoch": epoch,
        "true_north_deg": true_north_deg,
        "true_north_err_deg": true_north_err_deg,
        "plate_scale_mas": plate_scale_mas,
        "plate_scale_err_mas": plate_scale_err_mas,
        "source": source.strip(),
        "product_id": product_id,
        "added_by": actor.name,
        "added_at": utcnow(),
    }
    new_id = conn.execute(
        insert(AstrometricCalibration).values(**values).returning(AstrometricCalibration.id)
    )
    calibration_id = int(new_id.scalar_one())
    audit(
        conn,
        actor,
        "monitoring.astrometry.add",
        "astrometric_calibration",
        calibration_id,
        {k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v) for k, v in values.items()},
    )
    return calibration_id


def add_measured_calibration(
    conn: Connection,
    actor: Principal,
    measurement: dict[str, Any],
    *,
    instrument: str = "SPHERE",
    arm: str = "IRDIS",
    product_id: int | None = None,
) -> int:
    """Store a True North / plate-scale value **measured by hcdc** on an astrometric field (the
    dict of :func:`hcdc.instruments.sphere.irdis.astrometric_field.measure_irdis_field`):
    value and error of both, the epoch and filter of the file, and as source the file and
    reference list with their SHA-256 and the numbers of stars used. Staff only; audited twice:
    ``monitoring.astrometry.add`` (the stored values, as :func:`add_astrometric_calibration`)
    and ``monitoring.astrometry.measure`` (the fit: stars matched / used, residual rms, formal
    and bootstrap errors). Raises ValueError when the measurement has no epoch."""
    _require_staff(conn, actor)
    if not measurement.get("epoch"):
        raise ValueError(f"{measurement.get('file')}: no DATE-OBS, so no epoch to store the value at")
    fit = measurement.get("fit") or {}
    source = (
        f"hcdc measurement of {Path(str(measurement['file'])).name} "
        f"(sha256 {str(measurement.get('sha256', ''))[:12]}) "
        f"against {Path(str(measurement['catalogue'])).name} "
        f"(sha256 {str(measurement.get('catalogue_sha256', ''))[:12]}): "
        f"{fit.get('used')} of {fit.get('matched')} matched stars"
    )
    new_id = add_astrometric_calibration(
        conn,
        actor,
        instrument=instrument,
        arm=arm,
        filter=measurement.get("filter"),
        epoch=dt.date.fromisoformat(str(measurement["epoch"])),
        source=source,
        true_north_deg=float(measurement["true_north_deg"]),
        true_north_err_deg=float(measurement["true_north_err_deg"]),
        plate_scale_mas=float(measurement["plate_scale_mas"]),
        plate_scale_err_mas=float(measurement["plate_scale_err_mas"]),
        product_id=product_id,
    )
    audit(
        conn,
        actor,
        "monitoring.astrometry.measure",
        "astrometric_calibration",
        new_id,
        {
            "file": str(measurement["file"]),
            "sha256": measurement.get("sha256"),
            "catalogue": str(measurement["catalogue"]),
            "catalogue_sha256": measurement.get("catalogue_sha256"),
            "channel": measurement.get("channel"),
            "posang_deg": measurement.get("posang_deg"),
            "anamorphism_xy": measurement.get("anamorphism_xy"),
            "fit": fit,
        },
    )
    return new_id


def _deviation(
    value: float | None, error: float | None, assumed: float | None, nsigma: float
) -> dict[str, Any]:
    if value is None or assumed is None:
        return {"difference": None, "significance": None, "flagged": False}
    difference = value - assumed
    significance = abs(difference) / error if error else None
    return {
        "difference": difference,
        "significance": significance,
        "flagged": bool(significance is not None and significance > nsigma),
    }


def astrometric_series(
    conn: Connection,
    user: Principal,
    instrument: str | None = None,
    arm: str | None = None,
    nsigma: float = 3.0,
) -> dict[str, Any]:
    """The stored measurements (staff only), oldest first, each with its difference from the
    pipeline's assumed constant (:data:`ASSUMED`) and whether that difference exceeds ``nsigma``
    times the measurement's error: ``{"assumed": {"SPHERE/IRDIS": {...}}, "nsigma",
    "measurements": [{..., "true_north": {"difference", "significance", "flagged"},
    "plate_scale": {...}}]}``."""
    _require_staff(conn, user)
    table = AstrometricCalibration.__table__
    query = select(*table.columns).order_by(AstrometricCalibration.epoch, AstrometricCalibration.id)
    if instrument:
        query = query.where(AstrometricCalibration.instrument == instrument.strip().upper())
    if arm:
        query = query.where(AstrometricCalibration.arm == arm.strip().upper())
    rows = []
    for c in conn.execute(query):
        assumed = ASSUMED.get((c.instrument, c.arm or ""), {})
        rows.append(
            {
                "id": c.id,
                "instrument": c.instrument,
                "arm": c.arm,
                "filter": c.filter,
                "epoch": c.epoch.isoformat(),
                "true_north_deg": c.true_north_deg,
                "true_north_err_deg": c.true_north_err_deg,
                "plate_scale_mas": c.plate_scale_mas,
                "plate_scale_err_mas": c.plate_scale_err_mas,
                "source": c.source,
                "product_id": c.product_id,
                "added_by": c.added_by,
                "true_north": _deviation(
                    c.true_north_deg, c.true_north_err_deg, assumed.get("true_north_deg"), nsigma
                ),
                "plate_scale": _deviation(
                    c.plate_scale_mas, c.plate_scale_err_mas, assumed.get("plate_scale_mas"), nsigma
                ),
            }
        )
    return {
        "assumed": {f"{i}/{a}": v for (i, a), v in ASSUMED.items()},
        "nsigma": nsigma,
        "measurements": rows,
    }
