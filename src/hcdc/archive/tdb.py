"""The Target Data Base: Observation -> Reduction -> Detection, filled and read.

* :func:`receive_product` is the Processing Center -> TDB hand-over: called when a Level 2
  product is validated (:func:`hcdc.archive.accounts.review_product`), it writes (or rewrites) the
  product's observation, its reduction and the detections of its DETECTIONS table (kept in the
  product's summary), linked to the target of the product's OBJECT name. It is idempotent: the
  same product gives the same rows (unique ids ``hcdc:dataset/<id>``, ``hcdc:product/<id>``,
  ``hcdc:product/<id>/detection/<n>``). :func:`withdraw_product` marks a flagged product's
  reduction not validated.
* :func:`detections_table` lists detections with their reduction, observation and target, the
  rows a user may see (rule R15 of :mod:`hcdc.archive.access`).

Conventions: dates are Julian dates (UTC); offsets ``dra_mas`` (east positive) and
``ddec_mas`` (north positive) in mas, ``dra = sep sin(PA)``, ``ddec = sep cos(PA)`` with PA east
of north; magnitudes apparent, ``magnitude = host magnitude in the band - 2.5 log10(contrast)``
when the host's magnitude in that band is known.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, insert, select, true, update

from hcdc.archive.access_models import Group, Programme
from hcdc.archive.models import Dataset, File, utcnow
from hcdc.archive.pipeline_models import Product
from hcdc.archive.targets import link, object_target
from hcdc.archive.tdb_models import Candidate, Detection, Observation, Reduction, Target

#: offset between Julian date and modified Julian date (days)
MJD_TO_JD = 2400000.5
#: product types whose summary carries detections (hcdc's Level 2 high-contrast images)
DETECTION_PRODUCT_TYPES = frozenset({"level2-image"})

#: band of a filter name -> the target's magnitude column (SPHERE IRDIS/IFS and 2MASS/MKO names)
_FILTER_BANDS = (
    ("K", "mag_k"),
    ("H", "mag_h"),
    ("J", "mag_j"),
    ("Y", None),
    ("I", "mag_i"),
    ("R", "mag_r"),
    ("V", "mag_v"),
    ("B", "mag_b"),
)

OBSERVATION_FIELDS = (
    "uid",
    "date_jd",
    "instrument",
    "telescope",
    "survey",
    "filter",
    "true_north_deg",
    "true_north_err_deg",
    "parallactic_angle_deg",
    "pixel_scale_mas",
    "pixel_scale_err_mas",
    "setup",
    "prog_id",
    "release_date",
    "origin",
    "extra",
)
REDUCTION_FIELDS = (
    "uid",
    "validated",
    "software",
    "software_version",
    "algorithm",
    "date",
    "location",
    "detection_limits",
    "extra",
)
DETECTION_FIELDS = (
    "uid",
    "wavelength_um",
    "filter",
    "magnitude",
    "magnitude_err",
    "contrast",
    "contrast_err",
    "snr",
    "dra_mas",
    "dra_err_mas",
    "ddec_mas",
    "ddec_err_mas",
    "separation_mas",
    "separation_err_mas",
    "pa_deg",
    "pa_err_deg",
    "extra",
)


class TdbError(ValueError):
    """A TDB operation cannot be done (the message says why)."""


def band_of_filter(name: str | None) -> str | None:
    """The target magnitude column matching a filter name ("DB_H23" -> ``mag_h``, "K12" -> ``mag_k``)."""
    if not name:
        return None
    text = name.upper()
    for prefix in ("DB_", "BB_", "NB_", "D_", "B_", "N_"):
        text = text.removeprefix(prefix)
    for letter, column in _FILTER_BANDS:
        if text.startswith(letter):
            return column
    return None


def offsets_from_polar(sep_mas: float | None, pa_deg: float | None) -> tuple[float | None, float | None]:
    """(east, north) offsets in mas of a separation and a PA east of north."""
    if sep_mas is None or pa_deg is None:
        return None, None
    pa = math.radians(pa_deg)
    return sep_mas * math.sin(pa), sep_mas * math.cos(pa)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# receiving validated products


def _header_values(conn: Connection, dataset_id: int) -> dict[str, Any]:
    """TELESCOP and the mean parallactic angle of a dataset's files (from their stored headers)."""
    from astropy.io import fits

    telescope, angles = None, []
    rows = conn.execute(
        select(File.header).where(File.dataset_id == dataset_id, File.is_current).order_by(File.mjd_obs)
    )
    for row in rows:
        cards = {}
        for image in row.header or []:
            text = image if isinstance(image, str) else ""
            if not text.startswith(("TELESCOP", "HIERARCH ESO TEL PARANG")):
                continue
            try:
                card = fits.Card.fromstring(text)
                cards[card.keyword] = card.value
            except (ValueError, fits.VerifyError):
                continue
        telescope = telescope or cards.get("TELESCOP")
        for key in ("ESO TEL PARANG START", "ESO TEL PARANG END"):
            if isinstance(cards.get(key), int | float):
                angles.append(float(cards[key]))
    return {
        "telescope": telescope,
        "parallactic_angle_deg": sum(angles) / len(angles) if angles else None,
    }


def _survey_of(conn: Connection, prog_id: str | None) -> str | None:
    """Name of the survey group of a programme (``0104.C-0007(B)`` -> its programme's group)."""
    from hcdc.archive.access import programme_key

    key = programme_key(prog_id)
    if key is None:
        return None
    return conn.scalar(
        select(Group.name).join(Programme, Programme.group_id == Group.id).where(Programme.prog_id == key)
    )


def _upsert(conn: Connection, table: Any, uid: str, values: dict[str, Any]) -> int:
    existing = conn.scalar(select(table.id).where(table.uid == uid))
    if existing is None:
        return conn.execute(insert(table).values(uid=uid, **values).returning(table.id)).scalar_one()
    conn.execute(update(table).where(table.id == existing).values(**values))
    return existing


def _detection_limits(summary: dict[str, Any]) -> dict[str, Any] | None:
    entries = summary.get("contrast_at") or []
    if not entries:
        return None
    curve = summary.get("contrast_curve") or {}
    return {
        "separation_mas": [1000.0 * e["separation_arcsec"] for e in entries],
        "contrast": [e.get("contrast") for e in entries],  # one list per separation: per wavelength
        "nsigma": curve.get("nsigma"),
        "wavelength_um": summary.get("wavelengths_um"),
    }


def receive_product(conn: Connection, product_id: int) -> int | None:
    """Write the TDB rows of a validated Level 2 product; returns its reduction id.

    Returns None (nothing written) for products that carry no detections table (not a Level 2
    high-contrast image) or have no target name. Detections already there for this product are
    replaced, so a re-validation after a rerun gives the current rows. Only call it for products
    that :func:`hcdc.archive.access.level3_inputs_clause` admits (A5).
    """
    product = conn.execute(select(Product).where(Product.id == product_id)).first()
    if product is None:
        raise TdbError(f"no product {product_id}")
    if product.product_type not in DETECTION_PRODUCT_TYPES or product.status != "done":
        return None
    dataset = None
    if product.dataset_id is not None:
        dataset = conn.execute(select(Dataset).where(Dataset.id == product.dataset_id)).first()
    name = product.target or (dataset.target if dataset else None)
    target_id = object_target(conn, name)
    if target_id is None:
        return None
    link(conn, "product", [(product_id, name)])
    summary = dict(product.summary or {})
    orientation = summary.get("orientation") or {}
    obs_values: dict[str, Any] = {
        "target_id": target_id,
        "dataset_id": product.dataset_id,
        "instrument": dataset.instrument if dataset else None,
        "filter": None,
        "true_north_deg": orientation.get("true_north_deg"),
        "pixel_scale_mas": summary.get("pixel_scale_mas"),
        "origin": "level2",
    }
    if dataset is not None:
        link(conn, "dataset", [(dataset.id, name)])
        first_filter = conn.scalar(
            select(File.filter).where(File.dataset_id == dataset.id, File.filter.is_not(None)).limit(1)
        )
        obs_values.update(
            date_jd=None if dataset.mjd_start is None else dataset.mjd_start + MJD_TO_JD,
            # the files' filter, else the dataset's setup summary starts with it ("DB_H23 / ...")
            filter=first_filter or (dataset.setup.split("/")[0].strip()[:64] if dataset.setup else None),
            setup=dataset.setup,
            prog_id=dataset.prog_id,
            survey=_survey_of(conn, dataset.prog_id),
            **_header_values(conn, dataset.id),
        )
    obs_uid = (
        f"hcdc:dataset/{dataset.id}" if dataset is not None else f"hcdc:product/{product_id}/observation"
    )
    observation_id = _upsert(conn, Observation, obs_uid, obs_values)
    reduction_uid = f"hcdc:product/{product_id}"
    reduction_id = _upsert(
        conn,
        Reduction,
        reduction_uid,
        {
            "observation_id": observation_id,
            "product_id": product_id,
            "validated": True,
            "software": "hcdc",
            "software_version": summary.get("software_version") or product.recipe_version,
            "algorithm": summary.get("algorithm"),
            "date": product.created_at,
            "location": f"hcdc:{product.storage_dir}",
            "detection_limits": _detection_limits(summary),
            "extra": {
                "lineage": product.lineage,
                "version": product.version,
                "pa_reference": summary.get("pa_reference"),
            },
        },
    )
    _write_detections(conn, reduction_id, reduction_uid, summary, target_id, obs_values)
    return reduction_id


def sky_errors(
    sep_mas: float,
    pa_deg: float,
    sep_err_mas: float | None,
    pa_err_deg: float | None,
    calibration: dict[str, Any],
) -> dict[str, float] | None:
    """1-sigma errors of a detection on the sky from its measured errors on the image, with the
    calibration's plate-scale and true-north errors added in quadrature when the observation has
    them (``pixel_scale_mas``, ``pixel_scale_err_mas``, ``true_north_err_deg``).

    Returns separation/PA errors and the (dra, ddec) errors and their correlation (first-order
    Jacobian of ``dra = sep sin PA``, ``ddec = sep cos PA``), or None when the image errors were
    not measured (older products): no error is made up.
    """
    from hcdc.science.level3.astrometry import seppa_to_radec

    if sep_err_mas is None or pa_err_deg is None or not (sep_err_mas > 0 and pa_err_deg > 0):
        return None
    scale, scale_err = calibration.get("pixel_scale_mas"), calibration.get("pixel_scale_err_mas")
    if scale and scale_err:
        sep_err_mas = math.hypot(sep_err_mas, sep_mas * scale_err / scale)
    north_err = calibration.get("true_north_err_deg")
    if north_err:
        pa_err_deg = math.hypot(pa_err_deg, north_err)
    _, _, cov = seppa_to_radec(sep_mas, pa_deg, sep_err_mas, pa_err_deg)
    dra_err, ddec_err = math.sqrt(cov[0, 0, 0]), math.sqrt(cov[0, 1, 1])
    return {
        "separation_err_mas": sep_err_mas,
        "pa_err_deg": pa_err_deg,
        "dra_err_mas": dra_err,
        "ddec_err_mas": ddec_err,
        "radec_corr": float(cov[0, 0, 1] / (dra_err * ddec_err)),
    }


def _write_detections(
    conn: Connection,
    reduction_id: int,
    reduction_uid: str,
    summary: dict[str, Any],
    target_id: int,
    observation: dict[str, Any],
) -> None:
    """Replace the detections of ``reduction_id`` with those of a Level 2 summary (``observation``:
    the observation's values: filter, plate scale and calibration errors)."""
    filter_name = observation.get("filter")
    kept = {
        r.uid: r.candidate_id
        for r in conn.execute(
            select(Detection.uid, Detection.candidate_id).where(Detection.reduction_id == reduction_id)
        )
    }
    conn.execute(delete(Detection).where(Detection.reduction_id == reduction_id))
    sky = summary.get("pa_reference", "sky") == "sky"
    wavelengths = [w for w in summary.get("wavelengths_um") or [] if w is not None]
    band = band_of_filter(filter_name)
    host_mag = conn.scalar(select(getattr(Target, band)).where(Target.id == target_id)) if band else None
    rows = []
    for n, det in enumerate(summary.get("detections") or [], start=1):
        sep = _finite(det.get("separation_mas"))
        pa = _finite(det.get("pa_deg")) if sky else None
        dra, ddec = offsets_from_polar(sep, pa)
        errors = None
        if sep is not None and pa is not None:
            errors = sky_errors(
                sep, pa, _finite(det.get("separation_err_mas")), _finite(det.get("pa_err_deg")), observation
            )
        contrast = _finite(det.get("contrast"))
        contrast_err = _finite(det.get("contrast_err"))
        magnitude = magnitude_err = None
        if host_mag is not None and contrast is not None and contrast > 0:
            magnitude = host_mag - 2.5 * math.log10(contrast)
            if contrast_err is not None:
                magnitude_err = 2.5 / math.log(10) * contrast_err / contrast
        uid = f"{reduction_uid}/detection/{n}"
        rows.append(
            {
                "uid": uid,
                "reduction_id": reduction_id,
                "candidate_id": kept.get(uid),
                "wavelength_um": sum(wavelengths) / len(wavelengths) if wavelengths else None,
                "filter": filter_name,
                "magnitude": magnitude,
                "magnitude_err": magnitude_err,
                "contrast": contrast,
                "contrast_err": contrast_err,
                "snr": _finite(det.get("snr")),
                "dra_mas": dra,
                "ddec_mas": ddec,
                "separation_mas": sep,
                "pa_deg": pa,
                "separation_err_mas": errors and errors["separation_err_mas"],
                "pa_err_deg": errors and errors["pa_err_deg"],
                "dra_err_mas": errors and errors["dra_err_mas"],
                "ddec_err_mas": errors and errors["ddec_err_mas"],
                "extra": {
                    k: det.get(k)
                    for k in (
                        "x",
                        "y",
                        "separation_px",
                        "separation_err_px",
                        "flux",
                        "flux_err",
                        "fpf",
                        "photometry",
                    )
                    if det.get(k) is not None
                }
                | ({} if sky else {"pa_detector_deg": det.get("pa_deg")})
                | ({"radec_corr": errors["radec_corr"]} if errors else {}),
            }
        )
    if rows:
        conn.execute(insert(Detection), rows)


def withdraw_product(conn: Connection, product_id: int) -> int:
    """A flagged product's reductions are no longer validated (rows kept, marked); returns how many."""
    return conn.execute(
        update(Reduction).where(Reduction.product_id == product_id).values(validated=False)
    ).rowcount


def receive_validated(conn: Connection) -> list[int]:
    """Receive every validated Level 2 product (catch-up after an upgrade); the reduction ids."""
    from hcdc.archive.access import level3_inputs_clause

    ids = conn.scalars(
        select(Product.id)
        .where(level3_inputs_clause(), Product.product_type.in_(sorted(DETECTION_PRODUCT_TYPES)))
        .order_by(Product.id)
    ).all()
    out = []
    for pid in ids:
        reduction = receive_product(conn, pid)
        if reduction is not None:
            out.append(reduction)
    return out


# --------------------------------------------------------------------------------------------
# reading


def detections_table(
    conn: Connection,
    visible: ColumnElement[bool] | None = None,
    target_id: int | None = None,
    min_snr: float | None = None,
    min_separation_mas: float | None = None,
    max_separation_mas: float | None = None,
    status: str | None = None,
    survey: str | None = None,
    *,
    date_from_jd: float | None = None,
    date_to_jd: float | None = None,
    min_contrast: float | None = None,
    max_contrast: float | None = None,
    candidate_id: int | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Detections with their target, observation and reduction, filtered; ``visible`` is the
    access clause over reductions (:func:`hcdc.archive.access.visible_tdb_reductions_clause`).

    Dates are Julian dates of the observation (inclusive); contrasts are flux ratios to the star;
    separations in mas. ``status`` is a candidate verdict or ``ungrouped``."""
    query = (
        select(
            *Detection.__table__.columns,
            Reduction.uid.label("reduction_uid"),
            Reduction.algorithm,
            Reduction.validated,
            Observation.uid.label("observation_uid"),
            Observation.date_jd,
            Observation.instrument,
            Observation.survey,
            Target.id.label("target_id"),
            Target.name.label("target"),
            Candidate.label.label("candidate"),
            Candidate.status.label("status"),
        )
        .join(Reduction, Reduction.id == Detection.reduction_id)
        .join(Observation, Observation.id == Reduction.observation_id)
        .join(Target, Target.id == Observation.target_id)
        .outerjoin(Candidate, Candidate.id == Detection.candidate_id)
        .where(true() if visible is None else visible)
        .order_by(Target.name, Observation.date_jd, Detection.id)
    )
    if target_id is not None:
        query = query.where(Target.id == target_id)
    if min_snr is not None:
        query = query.where(Detection.snr >= min_snr)
    if min_separation_mas is not None:
        query = query.where(Detection.separation_mas >= min_separation_mas)
    if max_separation_mas is not None:
        query = query.where(Detection.separation_mas <= max_separation_mas)
    if status is not None:
        query = (
            query.where(Candidate.status == status)
            if status != "ungrouped"
            else query.where(Detection.candidate_id.is_(None))
        )
    if survey is not None:
        query = query.where(Observation.survey == survey)
    if date_from_jd is not None:
        query = query.where(Observation.date_jd >= date_from_jd)
    if date_to_jd is not None:
        query = query.where(Observation.date_jd <= date_to_jd)
    if min_contrast is not None:
        query = query.where(Detection.contrast >= min_contrast)
    if max_contrast is not None:
        query = query.where(Detection.contrast <= max_contrast)
    if candidate_id is not None:
        query = query.where(Detection.candidate_id == candidate_id)
    if offset:
        query = query.offset(offset)
    if limit is not None:
        query = query.limit(limit)
    out = []
    for row in conn.execute(query):
        item = {k: getattr(row, k) for k in DETECTION_FIELDS}
        item.update(
            id=row.id,
            reduction_uid=row.reduction_uid,
            algorithm=row.algorithm,
            validated=row.validated,
            observation_uid=row.observation_uid,
            date_jd=row.date_jd,
            instrument=row.instrument,
            survey=row.survey,
            target_id=row.target_id,
            target=row.target,
            candidate=row.candidate,
            status=row.status,
        )
        out.append(item)
    return out


# --------------------------------------------------------------------------------------------
# candidates (grouping and the proper-motion test: hcdc.science.level3)


#: what the proper-motion test needs of the host (columns of ``tdb_targets``)
HOST_FIELDS = ("ra_deg", "dec_deg", "pmra_masyr", "pmdec_masyr", "parallax_mas")


def missing_host_values(conn: Connection, target_id: int) -> list[str]:
    """The values of :data:`HOST_FIELDS` the target lacks (the test cannot run without them)."""
    t = conn.execute(select(Target).where(Target.id == target_id)).one()
    return [f for f in HOST_FIELDS if getattr(t, f) is None]


def untested_reason(missing: list[str], n_epochs: int) -> str:
    """Why a candidate's proper-motion test did not run (stored as its statistic's ``reason``)."""
    if missing:
        return (
            f"not tested: the host's {', '.join(missing)} unknown (set them with 'hcdc target set' "
            "or resolve the target with SIMBAD)"
        )
    return f"not tested: {n_epochs} detection with offset errors (two epochs are needed)"


def host_star(conn: Connection, target_id: int) -> Any:
    """The target as a :class:`~hcdc.science.level3.background.HostStar`, None without astrometry
    (:func:`missing_host_values` says which)."""
    from hcdc.science.level3.background import HostStar

    t = conn.execute(select(Target).where(Target.id == target_id)).one()
    if missing_host_values(conn, target_id):
        return None
    return HostStar(
        t.ra_deg, t.dec_deg, t.pmra_masyr, t.pmdec_masyr, t.parallax_mas,
        parallax_err=t.parallax_err_mas or 0.0, name=t.name,
    )  # fmt: skip


def radec_correlation(extra: dict[str, Any] | None) -> float:
    """The correlation of a detection's (dra, ddec) errors (kept in ``extra`` when they come from
    separation/PA errors), 0 when not known."""
    value = (extra or {}).get("radec_corr")
    return float(value) if isinstance(value, int | float) and -1.0 < value < 1.0 else 0.0


def group_candidates(conn: Connection, target_id: int, n_sigma: float = 5.0) -> dict[str, Any]:
    """Group a target's detections into candidates by predicted position, and test each one.

    Detections already placed by an admin (candidate ``grouped_by`` ``admin``) keep their
    candidate; the others are regrouped (:func:`hcdc.science.level3.grouping.group_detections`).
    Only detections with sky offsets and their errors can be grouped; the rest stay ungrouped.
    Each candidate with the host's astrometry gets the proper-motion test's verdict
    (:func:`hcdc.science.level3.motion_test.motion_test`) as ``status`` and its statistic; the
    others are ``undetermined`` with a statistic ``{"tested": False, "reason": ...}`` naming what
    is missing (e.g. the host's proper motion). Returns ``{"candidates": n, "grouped": n,
    "ungrouped": n, "untested": n, "missing_host_values": [...]}``.
    """
    from hcdc.science.level3.grouping import Detection as GroupDetection
    from hcdc.science.level3.grouping import group_detections
    from hcdc.science.level3.motion_test import motion_test

    admin = select(Candidate.id).where(Candidate.target_id == target_id, Candidate.grouped_by == "admin")
    rows = conn.execute(
        select(
            Detection.id,
            Detection.dra_mas,
            Detection.ddec_mas,
            Detection.dra_err_mas,
            Detection.ddec_err_mas,
            Detection.extra,
            Observation.date_jd,
        )
        .join(Reduction, Reduction.id == Detection.reduction_id)
        .join(Observation, Observation.id == Reduction.observation_id)
        .where(Observation.target_id == target_id, Reduction.validated)
        .where((Detection.candidate_id.is_(None)) | (Detection.candidate_id.not_in(admin)))
    ).all()
    usable = [
        GroupDetection(
            r.id,
            r.date_jd - MJD_TO_JD,
            r.dra_mas,
            r.ddec_mas,
            r.dra_err_mas,
            r.ddec_err_mas,
            radec_correlation(r.extra),
        )  # fmt: skip
        for r in rows
        if None not in (r.dra_mas, r.ddec_mas, r.dra_err_mas, r.ddec_err_mas, r.date_jd)
        and r.dra_err_mas > 0
        and r.ddec_err_mas > 0
    ]
    conn.execute(update(Detection).where(Detection.id.in_([r.id for r in rows])).values(candidate_id=None))
    conn.execute(delete(Candidate).where(Candidate.target_id == target_id, Candidate.grouped_by == "auto"))
    host = host_star(conn, target_id)
    missing = missing_host_values(conn, target_id)
    taken = set(conn.scalars(select(Candidate.label).where(Candidate.target_id == target_id)))
    groups = group_detections(usable, host, n_sigma=n_sigma)
    for n, group in enumerate(groups, start=1):
        label = group.label if group.label not in taken else f"{group.label}-auto{n}"
        if host is not None and len(group.detection_ids) >= 2:
            result = motion_test(group.astrometry, host)
            status, statistic = str(result.verdict), result.to_dict()
        else:  # say why, rather than an unexplained "undetermined"
            reason = untested_reason(missing, len(group.detection_ids))
            status, statistic = "undetermined", {"verdict": "undetermined", "reason": reason, "tested": False}
        candidate_id = conn.execute(
            insert(Candidate)
            .values(target_id=target_id, label=label, status=status, statistic=statistic, grouped_by="auto")
            .returning(Candidate.id)
        ).scalar_one()
        conn.execute(
            update(Detection)
            .where(Detection.id.in_(list(group.detection_ids)))
            .values(candidate_id=candidate_id)
        )
    untested = sum(1 for g in groups if host is None or len(g.detection_ids) < 2)
    return {
        "candidates": len(groups),
        "grouped": len(usable),
        "ungrouped": len(rows) - len(usable),
        "untested": untested,
        "missing_host_values": missing,
    }


def candidate_astrometry(label: str, detections: list[dict[str, Any]]) -> Any:
    """The :class:`~hcdc.science.level3.astrometry.RelativeAstrometry` of detections (dicts with
    ``dra_mas``, ``ddec_mas``, their errors, ``extra`` and the observation's ``date_jd``) that have
    offsets, errors and a date (None when none has)."""
    from hcdc.science.level3.astrometry import RelativeAstrometry

    usable = [
        d
        for d in detections
        if None not in (d["dra_mas"], d["ddec_mas"], d["dra_err_mas"], d["ddec_err_mas"], d["date_jd"])
        and d["dra_err_mas"] > 0
        and d["ddec_err_mas"] > 0
    ]
    if not usable:
        return None
    return RelativeAstrometry.from_radec(
        label,
        [d["date_jd"] - MJD_TO_JD for d in usable],
        [d["dra_mas"] for d in usable],
        [d["ddec_mas"] for d in usable],
        [d["dra_err_mas"] for d in usable],
        [d["ddec_err_mas"] for d in usable],
        [radec_correlation(d["extra"]) for d in usable],
    )


def retest_candidate(conn: Connection, candidate_id: int) -> str:
    """Run the proper-motion test again on all the detections of a candidate (after an admin moved
    detections in or out of it) and store its verdict and statistic; returns the verdict."""
    from hcdc.science.level3.motion_test import motion_test

    cand = conn.execute(select(Candidate).where(Candidate.id == candidate_id)).one()
    rows = conn.execute(
        select(
            Detection.dra_mas,
            Detection.ddec_mas,
            Detection.dra_err_mas,
            Detection.ddec_err_mas,
            Detection.extra,
            Observation.date_jd,
        )  # fmt: skip
        .join(Reduction, Reduction.id == Detection.reduction_id)
        .join(Observation, Observation.id == Reduction.observation_id)
        .where(Detection.candidate_id == candidate_id, Reduction.validated)
    ).all()
    astro = candidate_astrometry(cand.label, [dict(r._mapping) for r in rows])
    host = host_star(conn, cand.target_id)
    if host is None or astro is None or len(astro) < 2:
        reason = untested_reason(
            missing_host_values(conn, cand.target_id), 0 if astro is None else len(astro)
        )
        status, statistic = "undetermined", {"verdict": "undetermined", "reason": reason, "tested": False}
    else:
        result = motion_test(astro, host)
        status, statistic = str(result.verdict), result.to_dict()
    conn.execute(
        update(Candidate)
        .where(Candidate.id == candidate_id)
        .values(status=status, statistic=statistic, updated_at=utcnow())
    )
    return status


def assign_detection(conn: Connection, detection_id: int, label: str | None) -> int | None:
    """An admin's regrouping: put a detection in the candidate ``label`` of its target (made if
    new), or none (``label`` None). The candidate becomes ``grouped_by = 'admin'``, so automatic
    regrouping keeps it. Rights (A1, admins) are checked by the caller. Returns the candidate id."""
    row = conn.execute(
        select(Observation.target_id)
        .join(Reduction, Reduction.observation_id == Observation.id)
        .join(Detection, Detection.reduction_id == Reduction.id)
        .where(Detection.id == detection_id)
    ).first()
    if row is None:
        raise TdbError(f"no detection {detection_id}")
    candidate_id = None
    if label:
        candidate_id = conn.scalar(
            select(Candidate.id).where(Candidate.target_id == row.target_id, Candidate.label == label)
        )
        if candidate_id is None:
            candidate_id = conn.execute(
                insert(Candidate)
                .values(target_id=row.target_id, label=label, grouped_by="admin")
                .returning(Candidate.id)
            ).scalar_one()
        conn.execute(
            update(Candidate)
            .where(Candidate.id == candidate_id)
            .values(grouped_by="admin", updated_at=utcnow())
        )
    conn.execute(update(Detection).where(Detection.id == detection_id).values(candidate_id=candidate_id))
    return candidate_id


def jd_to_datetime(jd: float) -> dt.datetime:
    """UTC datetime (naive) of a Julian date."""
    return dt.datetime(1858, 11, 17) + dt.timedelta(days=jd - MJD_TO_JD)


__all__ = [
    "DETECTION_FIELDS",
    "MJD_TO_JD",
    "OBSERVATION_FIELDS",
    "REDUCTION_FIELDS",
    "TdbError",
    "assign_detection",
    "candidate_astrometry",
    "band_of_filter",
    "detections_table",
    "group_candidates",
    "HOST_FIELDS",
    "host_star",
    "missing_host_values",
    "untested_reason",
    "offsets_from_polar",
    "receive_product",
    "radec_correlation",
    "receive_validated",
    "retest_candidate",
    "sky_errors",
    "withdraw_product",
]
