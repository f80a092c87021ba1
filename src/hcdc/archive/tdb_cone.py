"""Cone searches of the Target Data Base: targets, and the detections a caller may see, within
a radius of a sky position (the queries of the Simple Cone Search service, ``web/vo/scs.py``).

Positions are ICRS degrees; a detection's position is its host target's plus its measured offsets
(dRA* = dRA cos(dec), dDec, in mas), the host's own position when the offsets are unknown (the PA
was measured in the detector frame). The SQL keeps the rows inside the cone's bounding box in
declination and right ascension (with wrap-around at 0/360 and the poles); the exact
great-circle distance (haversine) is computed on those.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, or_, select
from sqlalchemy.orm import aliased

from hcdc.archive.tdb_models import Detection, Observation, Reduction, Target

__all__ = [
    "MAS_PER_DEG",
    "angular_distance",
    "bounding_box",
    "cone_detections",
    "cone_targets",
    "detection_position",
]

MAS_PER_DEG = 3.6e6


def angular_distance(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    """Great-circle distance in degrees (haversine, exact for small and large angles)."""
    p1, p2 = math.radians(dec1), math.radians(dec2)
    dra = math.radians(ra2 - ra1)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dra / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def bounding_box(ra_col, dec_col, ra: float, dec: float, sr: float, margin: float = 0.0):  # noqa: ANN001, ANN201
    """SQL condition: (ra_col, dec_col) inside the cone's RA/Dec box (widened by ``margin`` deg)."""
    radius = sr + margin
    box = [dec_col >= dec - radius, dec_col <= dec + radius]
    if abs(dec) + radius >= 89.999:
        return and_(*box)  # the cone holds a pole: every right ascension
    half = math.degrees(math.asin(min(1.0, math.sin(math.radians(radius)) / math.cos(math.radians(dec)))))
    low, high = ra - half, ra + half
    if low < 0:
        box.append(or_(ra_col >= low + 360.0, ra_col <= high))
    elif high > 360:
        box.append(or_(ra_col >= low, ra_col <= high - 360.0))
    else:
        box += [ra_col >= low, ra_col <= high]
    return and_(*box)


def detection_position(
    ra: float, dec: float, dra_mas: float | None, ddec_mas: float | None
) -> tuple[float, float]:
    """The sky position of a detection offset by (dRA*, dDec) mas from its host at (ra, dec) deg."""
    if dra_mas is None or ddec_mas is None:
        return ra, dec
    det_dec = dec + ddec_mas / MAS_PER_DEG
    det_ra = ra + dra_mas / MAS_PER_DEG / max(math.cos(math.radians(dec)), 1e-9)
    return det_ra % 360.0, det_dec


def cone_targets(conn: Connection, ra: float, dec: float, sr: float) -> list[dict[str, Any]]:
    """Targets (public, rule R15) within ``sr`` deg of (``ra``, ``dec``), nearest first: id, ra,
    dec (deg), name, ``_r`` (distance, deg), simbad_id, spectral_type, mag_h, pmra, pmdec
    (mas/yr), parallax (mas), mag_k, age_myr."""
    query = select(Target).where(
        Target.ra_deg.is_not(None),
        Target.dec_deg.is_not(None),
        bounding_box(Target.ra_deg, Target.dec_deg, ra, dec, sr),
    )
    found = []
    for target in conn.execute(query):  # Core rows: one attribute per column
        r = angular_distance(ra, dec, target.ra_deg, target.dec_deg)
        if r <= sr:
            found.append(
                {
                    "id": target.id,
                    "ra": target.ra_deg,
                    "dec": target.dec_deg,
                    "name": target.name,
                    "_r": r,
                    "simbad_id": target.simbad_id,
                    "spectral_type": target.spectral_type,
                    "mag_h": target.mag_h,
                    "pmra": target.pmra_masyr,
                    "pmdec": target.pmdec_masyr,
                    "parallax": target.parallax_mas,
                    "mag_k": target.mag_k,
                    "age_myr": target.age_myr,
                }
            )
    found.sort(key=lambda v: (v["_r"], v["id"]))
    return found


def cone_detections(
    conn: Connection, visible_reductions: ColumnElement[bool], ra: float, dec: float, sr: float
) -> list[dict[str, Any]]:
    """Detections of the reductions ``visible_reductions`` lets through whose position lies within
    ``sr`` deg of (``ra``, ``dec``), nearest first (hosts pre-selected with a 1' margin): id, ra,
    dec (deg), target, ``_r`` (deg), separation_mas, pa_deg, contrast, snr, offsets_known,
    magnitude, filter, instrument, date_jd."""
    margin = 1.0 / 60.0  # detections lie within arcseconds of their host
    # the rights clause correlates on the plain tables: the joins use aliases, the clause a subquery
    red, obs = aliased(Reduction), aliased(Observation)
    visible = select(Reduction.id).where(visible_reductions)
    query = (
        select(
            Detection.id,
            Detection.dra_mas,
            Detection.ddec_mas,
            Detection.separation_mas,
            Detection.pa_deg,
            Detection.contrast,
            Detection.snr,
            Detection.magnitude,
            Detection.filter,
            Target.name,
            Target.ra_deg,
            Target.dec_deg,
            obs.instrument,
            obs.date_jd,
        )
        .join(red, red.id == Detection.reduction_id)
        .join(obs, obs.id == red.observation_id)
        .join(Target, Target.id == obs.target_id)
        .where(
            Target.ra_deg.is_not(None),
            Target.dec_deg.is_not(None),
            bounding_box(Target.ra_deg, Target.dec_deg, ra, dec, sr, margin),
            Detection.reduction_id.in_(visible),
        )
    )
    found = []
    for row in conn.execute(query):  # Core row: the detection's columns and its host's
        det_ra, det_dec = detection_position(row.ra_deg, row.dec_deg, row.dra_mas, row.ddec_mas)
        r = angular_distance(ra, dec, det_ra, det_dec)
        if r <= sr:
            found.append(
                {
                    "id": row.id,
                    "ra": det_ra,
                    "dec": det_dec,
                    "target": row.name,
                    "_r": r,
                    "separation_mas": row.separation_mas,
                    "pa_deg": row.pa_deg,
                    "contrast": row.contrast,
                    "snr": row.snr,
                    "offsets_known": row.dra_mas is not None and row.ddec_mas is not None,
                    "magnitude": row.magnitude,
                    "filter": row.filter,
                    "instrument": row.instrument,
                    "date_jd": row.date_jd,
                }
            )
    found.sort(key=lambda v: (v["_r"], v["id"]))
    return found
