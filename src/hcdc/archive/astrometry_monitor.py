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

Astrometric calibration fields taken at the telescope (``DPR TYPE = OBJECT,ASTROMETRY``, file
class ``ASTROMETRY``) are measured automatically: the team registers a **reference field**
(:class:`AstrometricReferenceField`: a name, the reference list of star positions as CSV, the
field's centre and radius, its source), the pipeline operation
:mod:`hcdc.pipeline.operations.astrometry` queues the recipe ``astrometric-field`` on every
ingested field file whose pointing falls inside a registered field, and records each finished
product here (:func:`record_field_product`); :func:`astrometric_trend` fits the series per
instrument, arm and filter (drift per year, scatter).

Units: True North correction in degrees (the angle added to the derotation, sign convention of
vlt-sphere / pyKLIP: PA_sky = PA_detector + PARANGLE + TN + PUPOFF), plate scale in mas per
pixel. Adding needs rule R1's staff role (the monitoring is the data-centre team's) and is
audited; reading is R1 too.
"""

from __future__ import annotations

import datetime as dt
import math
import shutil
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
    UniqueConstraint,
    insert,
    select,
)
from sqlalchemy.orm import Mapped, mapped_column

from hcdc.archive.access import AccessContext, AccessDenied, Principal
from hcdc.archive.accounts import audit
from hcdc.archive.models import Base, utcnow
from hcdc.instruments.sphere import constants as sphere_constants
from hcdc.science.checksums import sha256_file

__all__ = [
    "ASSUMED",
    "AstrometricCalibration",
    "AstrometricReferenceField",
    "add_astrometric_calibration",
    "add_measured_calibration",
    "astrometric_series",
    "astrometric_trend",
    "reference_field_for",
    "reference_fields",
    "record_field_product",
    "register_reference_field",
    "require_monitoring",
]

#: folder under the storage root where registered reference lists are kept
REFERENCE_FOLDER = Path("astrometry") / "reference_fields"

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


class AstrometricReferenceField(Base):
    """A registered astrometric calibration field: its reference list (a CSV of ``ra_deg``,
    ``dec_deg``, optional ``id``, kept under the storage root with its SHA-256), the circle
    (centre, radius) in which a field file's pointing must fall to be measured against it,
    and where the list comes from."""

    __tablename__ = "astrometric_reference_fields"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    instrument: Mapped[str] = mapped_column(String(32), nullable=False)
    ra_deg: Mapped[float] = mapped_column(Float, nullable=False)
    dec_deg: Mapped[float] = mapped_column(Float, nullable=False)
    radius_arcsec: Mapped[float] = mapped_column(Float, nullable=False)
    catalogue_path: Mapped[str] = mapped_column(Text, nullable=False)
    catalogue_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    n_stars: Mapped[int] = mapped_column(Integer, nullable=False)
    source: Mapped[str] = mapped_column(Text, nullable=False)
    added_by: Mapped[str] = mapped_column(String(64), nullable=False)
    added_at: Mapped[dt.datetime] = mapped_column(DateTime, nullable=False, default=utcnow)

    __table_args__ = (
        CheckConstraint("radius_arcsec > 0", name="radius_positive"),
        UniqueConstraint("name", name="uq_astrometric_reference_fields_name"),
    )


def _require_staff(conn: Connection, user: Principal) -> None:
    decision = AccessContext(conn, user).can_monitor()
    if not decision:
        raise AccessDenied(f"not allowed ({decision.rule}): {decision.reason}")


def require_monitoring(conn: Connection, user: Principal) -> None:
    """Raise AccessDenied unless ``user`` may run the monitoring (rule R1: staff)."""
    _require_staff(conn, user)


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


# --------------------------------------------------------------------------------------------
# registered reference fields (measured automatically by hcdc.pipeline.operations.astrometry)


def _separation_arcsec(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance (haversine), arcsec."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dp, dl = p2 - p1, math.radians(ra2 - ra1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0


def register_reference_field(
    conn: Connection,
    actor: Principal,
    storage_root: Path,
    *,
    name: str,
    catalogue: Path,
    source: str,
    instrument: str = "SPHERE",
    ra_deg: float | None = None,
    dec_deg: float | None = None,
    radius_arcsec: float = 10.0,
) -> int:
    """Register an astrometric calibration field (staff only, rule R1; audited
    ``monitoring.astrometry.field``): the reference list ``catalogue`` (CSV, read as
    :func:`hcdc.instruments.sphere.irdis.astrometric_field.read_reference_list` reads it) is
    copied under ``storage_root/astrometry/reference_fields`` with its SHA-256. The field's
    centre is ``ra_deg``/``dec_deg`` (default: the mean of the list's stars); field files whose
    pointing lies within ``radius_arcsec`` of it are measured against this list. Raises
    ValueError for an unreadable list, a name already used, no source or a radius <= 0."""
    from hcdc.instruments.sphere.irdis.astrometric_field import AstrometricFieldError, read_reference_list

    _require_staff(conn, actor)
    name = (name or "").strip()
    if not name:
        raise ValueError("a reference field needs a name")
    if not source or not source.strip():
        raise ValueError("a reference list needs its source (catalogue, paper, epoch)")
    if not radius_arcsec > 0:
        raise ValueError(f"radius must be positive (arcsec); got {radius_arcsec}")
    try:
        stars = read_reference_list(catalogue)
    except AstrometricFieldError as exc:
        raise ValueError(str(exc)) from exc
    if conn.scalar(select(AstrometricReferenceField.id).where(AstrometricReferenceField.name == name)):
        raise ValueError(f"a reference field named {name!r} is already registered")
    if ra_deg is None or dec_deg is None:
        # mean position (RA through its unit vector: a field across RA 0 stays right)
        ra_rad = [math.radians(v) for v in stars["ra_deg"]]
        ra_deg = (
            math.degrees(math.atan2(sum(math.sin(v) for v in ra_rad), sum(math.cos(v) for v in ra_rad)))
            % 360.0
        )
        dec_deg = float(sum(stars["dec_deg"]) / len(stars["dec_deg"]))
    digest = sha256_file(catalogue)
    folder = Path(storage_root) / REFERENCE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    kept = folder / f"{digest[:16]}.csv"
    if not kept.exists():
        shutil.copyfile(catalogue, kept)
    values = {
        "name": name,
        "instrument": instrument.strip().upper(),
        "ra_deg": float(ra_deg),
        "dec_deg": float(dec_deg),
        "radius_arcsec": float(radius_arcsec),
        "catalogue_path": str(kept),
        "catalogue_sha256": digest,
        "n_stars": len(stars["ra_deg"]),
        "source": source.strip(),
        "added_by": actor.name,
        "added_at": utcnow(),
    }
    field_id = int(
        conn.execute(
            insert(AstrometricReferenceField).values(**values).returning(AstrometricReferenceField.id)
        ).scalar_one()
    )
    audit(
        conn,
        actor,
        "monitoring.astrometry.field",
        "astrometric_reference_field",
        field_id,
        {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in values.items()},
    )
    return field_id


def _field_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "instrument": row.instrument,
        "ra_deg": row.ra_deg,
        "dec_deg": row.dec_deg,
        "radius_arcsec": row.radius_arcsec,
        "catalogue_path": row.catalogue_path,
        "catalogue_sha256": row.catalogue_sha256,
        "n_stars": row.n_stars,
        "source": row.source,
        "added_by": row.added_by,
        "added_at": row.added_at.isoformat(),
    }


def reference_fields(conn: Connection, user: Principal) -> list[dict[str, Any]]:
    """The registered reference fields (staff only, R1), by id."""
    _require_staff(conn, user)
    table = AstrometricReferenceField.__table__
    return [_field_dict(r) for r in conn.execute(select(*table.columns).order_by(table.c.id))]


def reference_field_for(
    conn: Connection,
    user: Principal,
    instrument: str,
    ra_deg: float | None,
    dec_deg: float | None,
    fields: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """The registered field of ``instrument`` whose circle holds the pointing (the nearest centre
    when several do), or None (also for a file without a pointing). Staff only (R1).
    ``fields``: :func:`reference_fields` read once by a caller that looks up many files."""
    if ra_deg is None or dec_deg is None:
        _require_staff(conn, user)
        return None
    best = None
    for field in reference_fields(conn, user) if fields is None else fields:
        if field["instrument"] != instrument.strip().upper():
            continue
        distance = _separation_arcsec(ra_deg, dec_deg, field["ra_deg"], field["dec_deg"])
        if distance <= field["radius_arcsec"] and (best is None or distance < best[0]):
            best = (distance, field)
    return None if best is None else {**best[1], "distance_arcsec": best[0]}


def record_field_product(
    conn: Connection, actor: Principal, product_id: int, measurement: dict[str, Any], arm: str = "IRDIS"
) -> int | None:
    """Store the measurement of an ``astrometric-field`` product (its summary) in the series,
    once: returns the new calibration id, or None when the product is already recorded.
    Staff only (R1); audited as :func:`add_measured_calibration`."""
    _require_staff(conn, actor)
    if conn.scalar(select(AstrometricCalibration.id).where(AstrometricCalibration.product_id == product_id)):
        return None
    return add_measured_calibration(conn, actor, measurement, arm=arm, product_id=product_id)


def _weighted_line(t: list[float], y: list[float], err: list[float | None]) -> dict[str, Any]:
    """Weighted least-squares ``y = mean + slope (t - t0)``: mean, slope and errors; formal
    errors scaled up by sqrt(chi2/dof) when the scatter exceeds the errors (never down)."""
    n = len(y)
    known = [e for e in err if e is not None and e > 0]
    floor = min(known) if known else 1.0
    w = [1.0 / (e if e is not None and e > 0 else floor) ** 2 for e in err]
    sw = sum(w)
    t0 = sum(wi * ti for wi, ti in zip(w, t, strict=True)) / sw
    mean = sum(wi * yi for wi, yi in zip(w, y, strict=True)) / sw
    scatter = math.sqrt(sum((yi - sum(y) / n) ** 2 for yi in y) / (n - 1)) if n > 1 else None
    out: dict[str, Any] = {
        "n": n,
        "t0_year": t0,
        "mean": mean,
        "mean_err": math.sqrt(1.0 / sw),
        "scatter": scatter,
    }
    stt = sum(wi * (ti - t0) ** 2 for wi, ti in zip(w, t, strict=True))
    if n < 2 or stt <= 0:
        return out | {"slope_per_year": None, "slope_err_per_year": None, "chi2_dof": None}
    slope = sum(wi * (ti - t0) * (yi - mean) for wi, ti, yi in zip(w, t, y, strict=True)) / stt
    chi2 = sum(wi * (yi - mean - slope * (ti - t0)) ** 2 for wi, ti, yi in zip(w, t, y, strict=True))
    dof = n - 2
    scale = math.sqrt(max(1.0, chi2 / dof)) if dof > 0 else 1.0
    out["mean_err"] *= scale
    return out | {
        "slope_per_year": slope,
        "slope_err_per_year": math.sqrt(1.0 / stt) * scale,
        "chi2_dof": chi2 / dof if dof > 0 else None,
    }


def astrometric_trend(
    conn: Connection,
    user: Principal,
    instrument: str | None = None,
    arm: str | None = None,
    nsigma: float = 3.0,
) -> dict[str, Any]:
    """True North and plate scale over time, per (instrument, arm, filter) series (staff only,
    R1). Per quantity: the weighted mean (at the weighted mean epoch ``t0_year``), the scatter,
    the drift per year from a weighted straight line (error scaled by sqrt(chi2/dof) when that
    is above 1), whether the drift exceeds ``nsigma`` errors (``drift_flagged``), the last
    value's difference from the assumed constant, the points (epoch, value, error) and the
    fitted ``line`` at the first and last epochs for a plot. ``{"nsigma", "series": [...]}``."""
    rows = astrometric_series(conn, user, instrument, arm, nsigma)["measurements"]
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["instrument"], row["arm"] or "", row["filter"] or ""), []).append(row)
    series = []
    for (inst, arm_name, filt), members in sorted(groups.items()):
        entry: dict[str, Any] = {"instrument": inst, "arm": arm_name or None, "filter": filt or None}
        assumed = ASSUMED.get((inst, arm_name), {})
        for key, value_key, err_key in (
            ("true_north", "true_north_deg", "true_north_err_deg"),
            ("plate_scale", "plate_scale_mas", "plate_scale_err_mas"),
        ):
            points = [m for m in members if m[value_key] is not None]
            if not points:
                entry[key] = None
                continue
            epochs = [dt.date.fromisoformat(m["epoch"]) for m in points]
            years = [e.year + (e.timetuple().tm_yday - 0.5) / 365.25 for e in epochs]
            fit = _weighted_line(years, [m[value_key] for m in points], [m[err_key] for m in points])
            slope, slope_err = fit["slope_per_year"], fit["slope_err_per_year"]
            fit["drift_significance"] = abs(slope) / slope_err if slope is not None and slope_err else None
            fit["drift_flagged"] = bool(
                fit["drift_significance"] is not None and fit["drift_significance"] > nsigma
            )
            fit["assumed"] = assumed.get(value_key)
            fit["last"] = points[-1][key]
            # the fitted line at the first and last epochs (for a plot)
            fit["line"] = [
                {
                    "epoch": points[i]["epoch"],
                    "value": fit["mean"] + (slope or 0.0) * (years[i] - fit["t0_year"]),
                }
                for i in (0, len(points) - 1)
            ]
            fit["points"] = [
                {"epoch": m["epoch"], "value": m[value_key], "error": m[err_key], "id": m["id"]}
                for m in points
            ]
            entry[key] = fit
        series.append(entry)
    return {"nsigma": nsigma, "series": series}
