"""What the portal and the REST API show of the Target Data Base: targets, their observations,
reductions, detections and candidates, filtered by what the caller may see (rule R15).

Every function takes the access clauses of :mod:`hcdc.archive.access` (``visible_*``) from its
caller and applies them in SQL: targets are public, everything below them is filtered. A candidate
is shown when one of its detections is visible, with those detections only. Its stored verdict was
computed from all its detections; when some are hidden from the caller, the verdict shown is
recomputed from the visible ones (``verdict_basis``), so that hidden epochs neither leak through
the verdict nor are hinted at.

Units as in :mod:`hcdc.archive.tdb`: offsets in mas (east, north), separations mas, PA degrees
east of north, dates JD (UTC); ``distance_pc = 1000 / parallax_mas``.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Connection, func, select

from hcdc.archive.targets import TargetError, normalize_name, target_dict
from hcdc.archive.tdb import (
    DETECTION_FIELDS,
    candidate_astrometry,
    detections_table,
    host_star,
    jd_to_datetime,
    missing_host_values,
    untested_reason,
)
from hcdc.archive.tdb_models import (
    CANDIDATE_STATUSES,
    Candidate,
    Detection,
    Observation,
    Reduction,
    Target,
    TargetAlias,
)

#: most targets / candidates one listing returns
MAX_ROWS = 1000


class TdbNotFound(LookupError):
    """No such target or candidate, or one the caller may not see (the same answer for both)."""


class TdbQueryError(ValueError):
    """A search criterion that cannot be used; the message names it."""


@dataclass(frozen=True)
class Visibility:
    """The R15 clauses of one caller (from :class:`hcdc.archive.access.AccessContext`)."""

    observations: ColumnElement[bool]
    reductions: ColumnElement[bool]
    candidates: ColumnElement[bool]

    @classmethod
    def of(cls, access: Any) -> Visibility:
        """The clauses of an :class:`~hcdc.archive.access.AccessContext`."""
        return cls(
            access.tdb_observations_clause(), access.tdb_reductions_clause(), access.tdb_candidates_clause()
        )


def check_text(**values: str | None) -> None:
    """Raise :class:`TdbQueryError` naming a text criterion that holds a NUL character (PostgreSQL
    refuses it in a parameter; no name contains one)."""
    for key, value in values.items():
        if value is not None and "\x00" in value:
            raise TdbQueryError(f"{key} must not contain a NUL character")


# --------------------------------------------------------------------------------------------
# targets


def _visible_detection_count(visible: Visibility):  # noqa: ANN202 - a scalar subquery
    """Detections of the enclosing query's target in reductions the caller may see. (Nested IN
    subqueries of one table each: the R15 clause's own subqueries must not auto-correlate with an
    enclosing Observation.)"""
    observations = select(Observation.id).where(Observation.target_id == Target.id).correlate(Target)
    reductions = select(Reduction.id).where(Reduction.observation_id.in_(observations), visible.reductions)
    return (
        select(func.count(Detection.id))
        .where(Detection.reduction_id.in_(reductions))
        .correlate(Target)
        .scalar_subquery()
    )


def _cone_filter(rows: list[Any], ra: float, dec: float, radius_arcsec: float) -> list[Any]:
    """The rows within ``radius_arcsec`` of (ra, dec) [deg] (haversine; rows without
    coordinates are out)."""
    keep = []
    ra0, dec0 = math.radians(ra), math.radians(dec)
    for row in rows:
        if row.ra_deg is None or row.dec_deg is None:
            continue
        ra1, dec1 = math.radians(row.ra_deg), math.radians(row.dec_deg)
        h = (
            math.sin((dec1 - dec0) / 2) ** 2
            + math.cos(dec0) * math.cos(dec1) * math.sin((ra1 - ra0) / 2) ** 2
        )
        if math.degrees(2 * math.asin(min(1.0, math.sqrt(h)))) * 3600.0 <= radius_arcsec:
            keep.append(row)
    return keep


def search_targets(
    conn: Connection,
    visible: Visibility,
    *,
    name: str | None = None,
    ra: float | None = None,
    dec: float | None = None,
    radius_arcsec: float | None = None,
    spectral_type: str | None = None,
    max_distance_pc: float | None = None,
    min_age_myr: float | None = None,
    max_age_myr: float | None = None,
    verdict: str | None = None,
    with_detections: bool | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Targets matching every given criterion, by name, with counts of the caller's visible
    detections and candidates (per verdict).

    ``name`` matches any alias (normalised substring: "51eri" finds "51 Eri"); the cone needs
    ``ra``, ``dec`` [deg, ICRS] and ``radius_arcsec`` together; ``spectral_type`` is a prefix
    ("M", "A5"); ``verdict``: targets with a visible candidate of that verdict ("stars with a bound
    companion"). Returns ``{"total": n, "items": [...]}``.
    """
    check_text(name=name, spectral_type=spectral_type)
    cone = (ra, dec, radius_arcsec)
    if any(v is not None for v in cone) and any(v is None for v in cone):
        raise TdbQueryError("a cone needs ra, dec and radius together")
    if ra is not None and not (0 <= ra < 360 and -90 <= dec <= 90 and 0 < radius_arcsec <= 36000):
        raise TdbQueryError("cone: ra in [0, 360), dec in [-90, 90], radius in (0, 36000] arcsec")
    if verdict is not None and verdict not in CANDIDATE_STATUSES:
        raise TdbQueryError(f"verdict must be one of {', '.join(CANDIDATE_STATUSES)}, got {verdict!r}")
    n_det = _visible_detection_count(visible).label("n_detections")
    query = select(Target, n_det).order_by(Target.name, Target.id)
    if name:
        key = normalize_name(name)
        if not key:
            raise TdbQueryError(f"name {name!r} has no letters or digits")
        query = query.where(
            Target.id.in_(
                select(TargetAlias.target_id).where(TargetAlias.normalized.contains(key, autoescape=True))
            )
        )
    if spectral_type:
        query = query.where(Target.spectral_type.startswith(spectral_type.strip(), autoescape=True))
    if max_distance_pc is not None:
        query = query.where(Target.parallax_mas >= 1000.0 / max_distance_pc)
    if min_age_myr is not None:
        query = query.where(Target.age_myr >= min_age_myr)
    if max_age_myr is not None:
        query = query.where(Target.age_myr <= max_age_myr)
    if ra is not None:  # a declination band in SQL, the exact circle in Python
        band = radius_arcsec / 3600.0
        query = query.where(Target.dec_deg.between(dec - band, dec + band))
    if verdict is not None:
        query = query.where(
            Target.id.in_(select(Candidate.target_id).where(Candidate.status == verdict, visible.candidates))
        )
    if with_detections is not None:
        query = query.where(n_det > 0 if with_detections else n_det == 0)
    rows = conn.execute(query).all()
    if ra is not None:
        rows = _cone_filter(rows, ra, dec, radius_arcsec)
    page = rows[offset : offset + limit]
    verdicts = _verdict_counts(conn, visible, [r.id for r in page])
    items = [
        {
            "id": r.id,
            "name": r.name,
            "ra_deg": r.ra_deg,
            "dec_deg": r.dec_deg,
            "parallax_mas": r.parallax_mas,
            "distance_pc": 1000.0 / r.parallax_mas if r.parallax_mas and r.parallax_mas > 0 else None,
            "spectral_type": r.spectral_type,
            "age_myr": r.age_myr,
            "resolved": r.resolved,
            "n_detections": r.n_detections,
            "candidates": verdicts.get(r.id, {}),
        }
        for r in page
    ]
    return {"total": len(rows), "items": items}


def _verdict_counts(
    conn: Connection, visible: Visibility, target_ids: list[int]
) -> dict[int, dict[str, int]]:
    """{target id: {verdict: visible candidates}}."""
    out: dict[int, dict[str, int]] = {}
    if not target_ids:
        return out
    rows = conn.execute(
        select(Candidate.target_id, Candidate.status, func.count(Candidate.id))
        .where(Candidate.target_id.in_(target_ids), visible.candidates)
        .group_by(Candidate.target_id, Candidate.status)
    )
    for target_id, status, count in rows:
        out.setdefault(target_id, {})[status] = count
    return out


def target_view(conn: Connection, visible: Visibility, target_id: int) -> dict[str, Any]:
    """One target: values with their sources, aliases, and the caller's visible observations (each
    with its visible reductions and their detections) and candidates."""
    try:
        target = target_dict(conn, target_id)
    except TargetError:
        raise TdbNotFound(f"no target {target_id}") from None
    target.pop("links", None)  # counts of linked files would include hidden ones
    observations = []
    obs_rows = conn.execute(
        select(Observation)
        .where(Observation.target_id == target_id, visible.observations)
        .order_by(Observation.date_jd, Observation.id)
    ).all()
    detections = detections_table(conn, visible.reductions, target_id=target_id)
    by_reduction: dict[str, list[dict[str, Any]]] = {}
    for d in detections:
        by_reduction.setdefault(d["reduction_uid"], []).append(d)
    for o in obs_rows:
        reductions = []
        for r in conn.execute(
            select(Reduction)
            .where(Reduction.observation_id == o.id, visible.reductions)
            .order_by(Reduction.id)
        ):
            reductions.append(
                {
                    "id": r.id,
                    "uid": r.uid,
                    "product_id": r.product_id,
                    "validated": r.validated,
                    "software": r.software,
                    "software_version": r.software_version,
                    "algorithm": r.algorithm,
                    "date": r.date,
                    "detections": by_reduction.get(r.uid, []),
                }
            )
        observations.append(
            {
                "id": o.id,
                "uid": o.uid,
                "date_jd": o.date_jd,
                "date": None if o.date_jd is None else jd_to_datetime(o.date_jd),
                "instrument": o.instrument,
                "telescope": o.telescope,
                "survey": o.survey,
                "filter": o.filter,
                "setup": o.setup,
                "prog_id": o.prog_id,
                "true_north_deg": o.true_north_deg,
                "pixel_scale_mas": o.pixel_scale_mas,
                "origin": o.origin,
                "reductions": reductions,
            }
        )
    target["observations"] = observations
    target["n_detections"] = len(detections)
    target["candidates"] = list_candidates(conn, visible, target_id=target_id)["items"]
    return target


# --------------------------------------------------------------------------------------------
# candidates


def list_candidates(
    conn: Connection,
    visible: Visibility,
    *,
    target_id: int | None = None,
    verdict: str | None = None,
    last_epoch_before: dt.datetime | None = None,
    limit: int = MAX_ROWS,
    offset: int = 0,
) -> dict[str, Any]:
    """Candidates the caller may see, with the verdict of the detections it may see;
    ``last_epoch_before``: only those whose latest visible epoch is earlier (not observed since:
    "undetermined candidates observed more than a year ago")."""
    if verdict is not None and verdict not in CANDIDATE_STATUSES:
        raise TdbQueryError(f"verdict must be one of {', '.join(CANDIDATE_STATUSES)}, got {verdict!r}")
    query = (
        select(Candidate.id, Target.name.label("target"))
        .join(Target, Target.id == Candidate.target_id)
        .where(visible.candidates)
        .order_by(Target.name, Candidate.label, Candidate.id)
    )
    if target_id is not None:
        query = query.where(Candidate.target_id == target_id)
    rows = conn.execute(query).all()
    items = [candidate_view(conn, visible, r.id, with_detections=False) for r in rows]
    if verdict is not None:  # on the verdict the caller is shown, which may be a recomputed one
        items = [c for c in items if c["status"] == verdict]
    if last_epoch_before is not None:
        items = [c for c in items if c["last_date"] is not None and c["last_date"] < last_epoch_before]
    return {"total": len(items), "items": items[offset : offset + limit]}


def _candidate_detections(conn: Connection, visible: Visibility, candidate_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(
            *Detection.__table__.columns,
            Observation.date_jd,
            Observation.instrument,
            Reduction.uid.label("reduction_uid"),
        )
        .join(Reduction, Reduction.id == Detection.reduction_id)
        .join(Observation, Observation.id == Reduction.observation_id)
        .where(Detection.candidate_id == candidate_id, visible.reductions)
        .order_by(Observation.date_jd, Detection.id)
    )
    out = []
    for row in rows:
        item = {k: getattr(row, k) for k in DETECTION_FIELDS}
        item.update(
            id=row.id, date_jd=row.date_jd, instrument=row.instrument, reduction_uid=row.reduction_uid,
            date=None if row.date_jd is None else jd_to_datetime(row.date_jd),
        )  # fmt: skip
        out.append(item)
    return out


def candidate_view(
    conn: Connection, visible: Visibility, candidate_id: int, *, with_detections: bool = True
) -> dict[str, Any]:
    """A candidate: label, target, verdict with its statistic and basis, epochs, baseline and
    (``with_detections``) its visible detections."""
    row = conn.execute(
        select(Candidate, Target.name.label("target"))
        .join(Target, Target.id == Candidate.target_id)
        .where(Candidate.id == candidate_id, visible.candidates)
    ).first()
    if row is None:
        raise TdbNotFound(f"no candidate {candidate_id}")
    detections = _candidate_detections(conn, visible, candidate_id)
    total = conn.scalar(select(func.count(Detection.id)).where(Detection.candidate_id == candidate_id))
    status, statistic, basis = row.status, row.statistic, "all detections"
    if len(detections) < total:
        status, statistic = _recomputed_verdict(conn, row.target_id, row.label, detections)
        basis = "recomputed from the detections you may see"
    dates = [d["date_jd"] for d in detections if d["date_jd"] is not None]
    out: dict[str, Any] = {
        "id": row.id,
        "label": row.label,
        "target_id": row.target_id,
        "target": row.target,
        "status": status,
        "verdict_basis": basis,
        "statistic": statistic,
        "grouped_by": row.grouped_by,
        "n_detections": len(detections),
        "n_epochs": len({round(d) for d in dates}),
        "first_date": jd_to_datetime(min(dates)) if dates else None,
        "last_date": jd_to_datetime(max(dates)) if dates else None,
        "baseline_yr": (max(dates) - min(dates)) / 365.25 if dates else None,
        "separation_mas": _last(detections, "separation_mas"),
        "contrast": _last(detections, "contrast"),
    }
    if with_detections:
        out["detections"] = detections
    return out


def _last(detections: list[dict[str, Any]], key: str) -> float | None:
    values = [d[key] for d in detections if d[key] is not None]
    return values[-1] if values else None


def _recomputed_verdict(
    conn: Connection, target_id: int, label: str, detections: list[dict[str, Any]]
) -> tuple[str, dict[str, Any] | None]:
    """The proper-motion test on ``detections`` only (undetermined when it cannot run)."""
    from hcdc.science.level3.motion_test import motion_test

    host = host_star(conn, target_id)
    astro = candidate_astrometry(label, detections)
    if host is None or astro is None or len(astro) < 2:
        reason = untested_reason(missing_host_values(conn, target_id), 0 if astro is None else len(astro))
        return "undetermined", {"verdict": "undetermined", "reason": reason, "tested": False}
    result = motion_test(astro, host)
    return str(result.verdict), result.to_dict()


def astrometry_chart(conn: Connection, visible: Visibility, candidate_id: int) -> dict[str, Any]:
    """The plotly figure of a candidate's visible epochs against its stationary-background track,
    or ``{"figure": None, "reason": ...}`` when it cannot be drawn."""
    from hcdc.science.level3.charts import astrometry_figure

    view = candidate_view(conn, visible, candidate_id)
    host = host_star(conn, view["target_id"])
    if host is None:
        missing = ", ".join(missing_host_values(conn, view["target_id"]))
        return {"figure": None, "reason": f"no background track: the host's {missing} unknown"}
    astro = candidate_astrometry(view["label"], view["detections"])
    if astro is None:
        return {"figure": None, "reason": "no detection with offsets and their errors"}
    figure = astrometry_figure(
        [astro], host, verdicts={view["label"]: view["status"]}, title=f"{view['target']} {view['label']}"
    )
    return {"figure": figure, "reason": None, "epochs_charted": len(astro)}


# --------------------------------------------------------------------------------------------
# colour-magnitude diagrams


def _band_photometry(detections: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """Apparent magnitude per diagram band (inverse-variance mean over the detections that name a
    band in their filter and have a magnitude with an error)."""
    from hcdc.science.level3.photometry_files import canonical_band

    values: dict[str, list[tuple[float, float]]] = {}
    for d in detections:
        band = canonical_band(d["filter"]) if d["filter"] else None
        mag, err = d["magnitude"], d["magnitude_err"]
        if band is None or mag is None or err is None or not err > 0 or not math.isfinite(mag):
            continue
        values.setdefault(band, []).append((mag, err))
    out = {}
    for band, items in values.items():
        w = np.array([1.0 / e**2 for _, e in items])
        m = np.array([v for v, _ in items])
        out[band] = (float(np.sum(w * m) / np.sum(w)), float(math.sqrt(1.0 / np.sum(w))))
    return out


def load_references(folder: Path | None) -> list[Any]:
    """UltracoolSheet dwarfs and species companions of ``folder`` (the setting
    ``level3_references``); [] when none is configured."""
    from hcdc.science.level3.photometry_files import read_species_companions, read_ultracoolsheet

    if folder is None:
        return []
    folder = Path(folder)
    return read_ultracoolsheet(folder / "ucs_cold_objects_absmag.csv") + read_species_companions(
        folder / "species_companions_absmag_long.csv"
    )


def _candidate_photometry(
    conn: Connection, visible: Visibility, candidate_id: int
) -> tuple[Any | None, dict[str, tuple[float, float]], str | None]:
    """(absolute photometry or None, apparent magnitudes per band, why none) of a candidate's
    visible detections at its target's parallax."""
    from hcdc.science.level3.cmd import absolute_photometry

    view = candidate_view(conn, visible, candidate_id)
    target = conn.execute(
        select(Target.parallax_mas, Target.parallax_err_mas).where(Target.id == view["target_id"])
    ).one()
    bands = _band_photometry(view["detections"])
    if not target.parallax_mas or target.parallax_mas <= 0:
        return None, bands, "the target has no parallax"
    if not bands:
        return None, bands, "no detection with a magnitude and its error in a band of the diagrams"
    name = f"{view['target']} {view['label']}"
    return absolute_photometry(name, bands, target.parallax_mas, target.parallax_err_mas or 0.0), bands, None


def _diagrams(objects: list[Any], references: list[Any], title: str) -> list[dict[str, Any]]:
    """Every diagram in which one of ``objects`` has its bands, with the references under them."""
    from hcdc.science.level3.cmd import DIAGRAMS, cmd_figure, cmd_points

    out = []
    for diagram in DIAGRAMS.values():
        points = cmd_points(objects, diagram)
        if not points:
            continue
        figure = cmd_figure(
            cmd_points(references, diagram) + points,
            diagram,
            title=f"{title}: {diagram.y_label} vs {diagram.x_label}",
        )
        out.append({"name": diagram.name, "figure": figure, "points": [p.to_dict() for p in points]})
    return out


def cmd_charts(
    conn: Connection, visible: Visibility, candidate_id: int, references: list[Any]
) -> dict[str, Any]:
    """Colour-magnitude diagrams of a candidate (its visible detections' photometry at the target's
    parallax) over the reference objects: ``{"diagrams": [{name, figure, points}], "reason": ...}``."""
    from hcdc.science.level3.cmd import DIAGRAMS

    obj, bands, reason = _candidate_photometry(conn, visible, candidate_id)
    if obj is None:
        return {"diagrams": [], "bands": bands, "reason": reason}
    diagrams = _diagrams([obj], references, obj.name)
    reason = None if diagrams else f"bands {', '.join(sorted(bands))} make no diagram ({', '.join(DIAGRAMS)})"
    return {"diagrams": diagrams, "bands": bands, "reason": reason}


def cmd_of_candidates(
    conn: Connection,
    visible: Visibility,
    references: list[Any],
    target_id: int | None = None,
    title: str = "",
) -> dict[str, Any]:
    """The diagrams of every visible candidate with photometry, of one target or of the whole
    archive (``target_id`` None): ``{"diagrams": [...], "n_candidates": n, "reason": ...}``."""
    objects = []
    for item in list_candidates(conn, visible, target_id=target_id)["items"]:
        obj, _, _ = _candidate_photometry(conn, visible, item["id"])
        if obj is not None:
            objects.append(obj)
    diagrams = _diagrams(objects, references, title or "all candidates")
    reason = None if diagrams else "no candidate with magnitudes in the bands of a diagram and a parallax"
    return {"diagrams": diagrams, "n_candidates": len(objects), "reason": reason}


__all__ = [
    "MAX_ROWS",
    "TdbNotFound",
    "TdbQueryError",
    "Visibility",
    "astrometry_chart",
    "candidate_view",
    "check_text",
    "cmd_charts",
    "cmd_of_candidates",
    "list_candidates",
    "load_references",
    "search_targets",
    "target_view",
]
