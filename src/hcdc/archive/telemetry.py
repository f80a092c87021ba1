"""AO telemetry in the catalogue: which SPARTA files belong to a dataset, and a night's overview.

A SPARTA file (``file_class = 'AO_TELEMETRY'``, arm ``SPARTA``) belongs to a science dataset
when it is of the same night and either of the same OB (``ob_id``) or overlapping the
dataset's time span (first ``mjd_obs`` to the last file's end, widened by ``margin_s``).
Maintenance telemetry (``OBS PROG ID = 'Maintenance'``) never does (vlt-sphere drops it).

The night overview (:func:`night_overview`) reads the SPARTA files of a night that the
principal may see (:func:`hcdc.archive.access.visible_files_clause`) and lists the science
sequences of that night whose dataset the principal may see
(:func:`~hcdc.archive.access.visible_datasets_clause`; a public SKY frame of a private sequence
does not reveal it), with the ESO ambient (DIMM) seeing
of their headers for comparison.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, and_, func, or_, select

from hcdc.archive import products as prod
from hcdc.archive.access import (
    AccessDenied,
    Principal,
    can_see,
    visible_datasets_clause,
    visible_files_clause,
    visible_products_clause,
)
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Product, ProvenanceEntry
from hcdc.archive.storage import resolve_stored_path
from hcdc.instruments.sphere.sparta import SpartaError, conditions_series, frame_conditions, read_sparta

__all__ = [
    "TELEMETRY_CLASS",
    "telemetry_file_ids",
    "dataset_time_span",
    "NightOverview",
    "night_overview",
    "product_conditions_dir",
    "products_conditions",
    "contrast_conditions",
    "star_magnitude",
    "magnitude_column",
    "expected_contrast",
    "dataset_frame_conditions",
]

TELEMETRY_CLASS = "AO_TELEMETRY"
#: Widening (s) of a dataset's time span when looking for overlapping telemetry: covers the
#: read-out overheads between the end of the last DIT and the next file.
DEFAULT_MARGIN_S = 300.0
_DAY_S = 86400.0


def _is_maintenance(extra: dict[str, Any] | None) -> bool:
    return bool((extra or {}).get("maintenance"))


def _span_end():  # noqa: ANN202 - an SQL expression
    """Last MJD covered by a raw file: ``mjd_end`` when known, else DATE-OBS + NDIT x DIT."""
    return func.coalesce(
        File.mjd_end, File.mjd_obs + func.coalesce(File.ndit, 1) * func.coalesce(File.dit, 0.0) / _DAY_S
    )


def dataset_time_span(conn: Connection, dataset_id: int) -> tuple[float | None, float | None, dt.date | None]:
    """(first DATE-OBS, end of the last exposure) as MJD, and the night, of a dataset's current
    files; Nones when it has no dated file."""
    start, end, night = conn.execute(
        select(func.min(File.mjd_obs), func.max(_span_end()), func.min(File.night)).where(
            File.dataset_id == dataset_id, File.is_current, File.mjd_obs.is_not(None)
        )
    ).one()
    return start, end, night


def telemetry_file_ids(conn: Connection, dataset_id: int, margin_s: float = DEFAULT_MARGIN_S) -> list[int]:
    """Ids of the current SPARTA files that belong to dataset ``dataset_id`` (see module doc),
    in time order; empty when the dataset has no dated file."""
    start, end, night = dataset_time_span(conn, dataset_id)
    if start is None or night is None:
        return []
    obs = [
        ob
        for ob in conn.scalars(
            select(File.ob_id).where(File.dataset_id == dataset_id, File.is_current).distinct()
        )
        if ob is not None and ob > 0
    ]
    margin = margin_s / _DAY_S
    overlap = and_(File.mjd_obs <= end + margin, _span_end() >= start - margin)
    rows = conn.execute(
        select(File.id, File.extra)
        .where(
            File.file_class == TELEMETRY_CLASS,
            File.is_current,
            File.night == night,
            or_(overlap, File.ob_id.in_(obs)) if obs else overlap,
        )
        .order_by(File.mjd_obs, File.id)
    ).all()
    return [row.id for row in rows if not _is_maintenance(row.extra)]


@dataclass
class NightOverview:
    """A night's AO conditions and science sequences.

    ``series``: :func:`hcdc.instruments.sphere.sparta.conditions_series` of the night's valid
    samples (MJD, seeing and zenith seeing in arcsec, tau0 in s, Strehl, r0 in m, wind in m/s,
    airmass, DTTS flux); ``sequences``: one dict per dataset (key, target, mode, filter, OB,
    start/end MJD, files, ``ambient_seeing``: median ESO DIMM seeing of its headers, arcsec);
    ``telemetry_files``: the SPARTA files read; ``problems``: files that could not be read.
    """

    night: dt.date
    series: dict[str, np.ndarray]
    sequences: list[dict[str, Any]]
    telemetry_files: list[dict[str, Any]]
    ambient: list[tuple[float, float]] = field(default_factory=list)  # (MJD, DIMM seeing arcsec)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians and counts of the night (None where no valid sample)."""
        s = self.series

        def median(key: str) -> float | None:
            v = s[key][np.isfinite(s[key])] if key in s else np.zeros(0)
            return float(np.median(v)) if v.size else None

        return {
            "samples": int(s["mjd"].size),
            "rejected_samples": int(s["rejected"][0]),
            "seeing_median": median("seeing"),
            "seeing_zenith_median": median("seeing_zenith"),
            "tau0_median_s": median("tau0_s"),
            "strehl_median": median("strehl"),
            "wind_median": median("wind_m_s"),
        }

    def to_dict(self) -> dict[str, Any]:
        def clean(values: np.ndarray) -> list[Any]:
            return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]

        return {
            "night": self.night.isoformat(),
            "summary": self.summary(),
            "series": {k: clean(v) for k, v in self.series.items() if k != "rejected"},
            "sequences": self.sequences,
            "telemetry_files": self.telemetry_files,
            "ambient": [{"mjd": m, "seeing": v} for m, v in self.ambient],
            "problems": self.problems,
        }


def night_overview(
    conn: Connection,
    user: Principal,
    night: dt.date,
    storage_root: str | Path,
    now: dt.datetime | None = None,
) -> NightOverview:
    """The overview of ``night`` as ``user`` may see it (files hidden from ``user`` are left out)."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    visible = visible_files_clause(user, now)
    sparta_rows = conn.execute(
        select(File.id, File.storage, File.stored_path, File.path, File.extra, File.ob_id)
        .where(File.file_class == TELEMETRY_CLASS, File.is_current, File.night == night, visible)
        .order_by(File.mjd_obs, File.id)
    ).all()
    telemetries, files, problems = [], [], []
    for row in sparta_rows:
        if _is_maintenance(row.extra):
            continue
        path = resolve_stored_path(row.storage, row.stored_path, storage_root)
        try:
            telemetries.append(read_sparta(path))
        except SpartaError as exc:
            problems.append(f"file {row.id}: {exc}")
            continue
        files.append({"id": row.id, "name": Path(row.path).name, "ob_id": row.ob_id})
    science = conn.execute(
        select(
            File.dataset_id,
            Dataset.key,
            File.target,
            File.mode,
            File.filter,
            File.ob_id,
            File.mjd_obs,
            _span_end().label("mjd_last"),
            File.seeing,
        )
        .join(Dataset, Dataset.id == File.dataset_id)
        # the sequence must be visible as a dataset (its public SKY frames alone do not reveal it)
        .where(File.night == night, File.is_current, File.mjd_obs.is_not(None), visible)
        .where(visible_datasets_clause(user, now))
        .where(or_(File.arm.is_(None), File.arm != "SPARTA"))
        .order_by(File.mjd_obs)
    ).all()
    sequences: dict[int, dict[str, Any]] = {}
    ambient = []
    seeings: dict[int, list[float]] = {}
    for r in science:
        seq = sequences.setdefault(
            r.dataset_id,
            {
                "dataset_id": r.dataset_id,
                "key": r.key,
                "target": r.target,
                "mode": r.mode,
                "filter": r.filter,
                "ob_id": r.ob_id,
                "mjd_start": r.mjd_obs,
                "mjd_end": r.mjd_last,
                "files": 0,
            },
        )
        seq["mjd_start"] = min(seq["mjd_start"], r.mjd_obs)
        seq["mjd_end"] = max(seq["mjd_end"], r.mjd_last)
        seq["files"] += 1
        if r.seeing is not None:
            ambient.append((float(r.mjd_obs), float(r.seeing)))
            seeings.setdefault(r.dataset_id, []).append(float(r.seeing))
    for dataset_id, seq in sequences.items():
        values = seeings.get(dataset_id)
        seq["ambient_seeing"] = float(np.median(values)) if values else None
    return NightOverview(
        night=night,
        series=conditions_series(telemetries),
        sequences=sorted(sequences.values(), key=lambda s: s["mjd_start"]),
        telemetry_files=files,
        ambient=ambient,
        problems=problems,
    )


def product_conditions_dir(
    conn: Connection,
    user: Principal,
    product_id: int,
    storage_root: str | Path,
    now: dt.datetime | None = None,
) -> Path:
    """The folder of Level 1 product ``product_id`` holding its per-frame conditions
    (``frames.fits``), after :func:`hcdc.archive.access.can_see` allowed ``user`` to see it
    (at ``now``, default the present).

    Raises ``AccessDenied`` (the rule and reason), ``LookupError`` when the product does not
    exist or has no ``frames.fits`` (not an IRDIS Level 1 product).
    """
    decision = can_see(conn, user, ("product", product_id), now=now)
    if not decision:
        raise AccessDenied(f"product {product_id}: {decision.reason}")
    detail = prod.product_detail(conn, product_id, Path(storage_root))
    if detail is None:
        raise LookupError(f"no product with id {product_id}")
    frames = [Path(f["path"]) for f in detail["files"] if Path(f["path"]).name == "frames.fits"]
    if not frames:
        raise LookupError(
            f"product {product_id} ({detail.get('type')}) has no frames.fits: not a Level 1 cube"
        )
    return frames[0].parent


def products_conditions(
    conn: Connection,
    user: Principal,
    target: str | None = None,
    limit: int | None = 200,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Current Level 1 products ``user`` may see (:func:`hcdc.archive.access.visible_products_clause`)
    with the AO condition medians of their summary (``ao_conditions``, written by
    ``level1-irdis`` >= 1.1; products without it are left out), newest first: the archive-wide
    table that contrast-versus-conditions studies start from. ``target``: case-insensitive
    substring."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    # the datasets are read in a second query: the visibility clause correlates on datasets
    query = (
        select(Product.id, Product.dataset_id, Product.target, Product.summary)
        .where(Product.level == 1, Product.is_current, visible_products_clause(user, now))
        .order_by(Product.id.desc())
    )
    if target:
        query = query.where(func.lower(Product.target).contains(target.lower()))
    found = []
    for r in conn.execute(query):
        conditions = (r.summary or {}).get("ao_conditions")
        if isinstance(conditions, dict):
            found.append((r, conditions))
            if limit is not None and len(found) >= limit:
                break
    ids = {r.dataset_id for r, _ in found if r.dataset_id is not None}
    datasets = {
        d.id: d
        for d in conn.execute(select(Dataset.id, Dataset.night, Dataset.key).where(Dataset.id.in_(ids)))
    }
    rows = []
    for r, conditions in found:
        d = datasets.get(r.dataset_id)
        rows.append(
            {
                "product_id": r.id,
                "dataset_id": r.dataset_id,
                "dataset": d.key if d else None,
                "night": d.night.isoformat() if d and d.night else None,
                "target": r.target,
                **conditions,
            }
        )
    return rows


#: Median conditions of a Level 1 summary (``ao_conditions``) carried into contrast rows.
CONTRAST_CONDITION_KEYS = (
    "strehl_median",
    "seeing_median_arcsec",
    "seeing_zenith_median_arcsec",
    "tau0_median_s",
    "tau0_zenith_median_s",
    "wind_median_m_s",
    "frames",
    "frames_with_telemetry",
)


def _level1_ancestor(conn: Connection, record: dict[str, Any] | None, max_depth: int = 4) -> int | None:
    """Id of the nearest Level 1 product among the provenance parents of ``record`` (breadth
    first, at most ``max_depth`` generations): the cube a Level 2 product was made from."""
    frontier = list((record or {}).get("parents") or [])
    for _ in range(max_depth):
        if not frontier:
            return None
        rows = conn.execute(
            select(ProvenanceEntry.product_id, ProvenanceEntry.record, Product.level)
            .join(Product, Product.id == ProvenanceEntry.product_id)
            .where(ProvenanceEntry.record_id.in_(frontier))
        ).all()
        for row in rows:
            if row.level == 1:
                return int(row.product_id)
        frontier = [p for row in rows for p in (row.record.get("parents") or [])]
    return None


def _filter_of_dataset(conn: Connection, dataset_id: int) -> str | None:
    """The filter of a dataset: its files' (first one that has it), else from its setup
    summary (``mode=...; filter=...``, or a bare ``DB_H23 / ...``)."""
    first = conn.scalar(
        select(File.filter).where(File.dataset_id == dataset_id, File.filter.is_not(None)).limit(1)
    )
    if first:
        return str(first)
    setup = conn.scalar(select(Dataset.setup).where(Dataset.id == dataset_id)) or ""
    for part in setup.split(";"):
        name, _, value = part.partition("=")
        if name.strip() == "filter" and value.strip():
            return value.strip()
    first = setup.split("/")[0].strip()
    return first if first and "=" not in first else None


def magnitude_column(filter_name: str | None) -> str | None:
    """The Target Data Base magnitude column of a filter (:func:`hcdc.archive.tdb.band_of_filter`:
    ``DB_H23`` -> ``mag_h``); IFS's ``YJ`` / ``YJH`` modes (no Y magnitude in the TDB) take
    ``mag_j``, the catalogued band nearest their centre."""
    from hcdc.archive.tdb import band_of_filter

    column = band_of_filter(filter_name)
    if column is None and filter_name and filter_name.upper().replace("OBS_", "").startswith("YJ"):
        column = "mag_j"
    return column


def star_magnitude(
    conn: Connection, dataset_id: int | None, product_id: int | None, target_name: str | None
) -> dict[str, Any]:
    """The star's magnitude in the band of the dataset's filter, from the Target Data Base:
    the target linked to the product, else to the dataset, else to one of the dataset's files
    (ingest links them), else the target whose name (or alias) is ``target_name``. Returns
    ``{"star_magnitude": mag or None, "magnitude_band": column or None, "target_id": id or
    None}``: None when the filter has no band, no target is known or its magnitude is not."""
    from hcdc.archive.targets import find_target
    from hcdc.archive.tdb_models import Target, TargetLink

    out: dict[str, Any] = {"star_magnitude": None, "magnitude_band": None, "target_id": None}
    column = magnitude_column(_filter_of_dataset(conn, dataset_id)) if dataset_id is not None else None
    target_id = None
    for kind, object_id in (("product", product_id), ("dataset", dataset_id)):
        if object_id is not None and target_id is None:
            target_id = conn.scalar(
                select(TargetLink.target_id).where(TargetLink.kind == kind, TargetLink.object_id == object_id)
            )
    if target_id is None and dataset_id is not None:
        target_id = conn.scalar(
            select(TargetLink.target_id)
            .join(File, and_(TargetLink.kind == "file", TargetLink.object_id == File.id))
            .where(File.dataset_id == dataset_id)
            .limit(1)
        )
    if target_id is None and target_name:
        target_id = find_target(conn, target_name)
    out["magnitude_band"], out["target_id"] = column, target_id
    if column is not None and target_id is not None:
        value = conn.scalar(select(getattr(Target, column)).where(Target.id == target_id))
        out["star_magnitude"] = float(value) if value is not None else None
    return out


def contrast_conditions(
    conn: Connection,
    user: Principal,
    target: str | None = None,
    limit: int | None = 500,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """Current Level 2 products ``user`` may see with their contrast at the standard separations
    (summary ``contrast_at``: 5-sigma contrast per wavelength, None outside the curve) joined
    with the median AO conditions of the Level 1 product they were made from (found through
    their provenance parents; the Level 1 product must be visible too and carry
    ``ao_conditions``, else the Level 2 product is left out). The conditions are the medians over
    the frames the Level 2 product used when its summary records them (``l2-postprocess`` >= 1.3,
    ``conditions_source = "level2"``), else the Level 1 cube's; ``field_rotation_deg``,
    ``variant`` and ``frames_used`` come from the Level 2 summary (None before 1.3);
    ``star_magnitude`` / ``magnitude_band`` from the Target Data Base (:func:`star_magnitude`,
    None when unknown). Newest first."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    visible = visible_products_clause(user, now)
    query = (
        select(Product.id, Product.dataset_id, Product.target, Product.summary, ProvenanceEntry.record)
        .join(ProvenanceEntry, ProvenanceEntry.product_id == Product.id)
        .where(Product.level == 2, Product.is_current, visible)
        .order_by(Product.id.desc())
    )
    if target:
        query = query.where(func.lower(Product.target).contains(target.lower()))
    rows = []
    for r in conn.execute(query):
        summary = r.summary or {}
        contrast = summary.get("contrast_at") or []
        if not contrast:
            continue
        level1_id = _level1_ancestor(conn, r.record)
        if level1_id is None:
            continue
        level1 = conn.execute(
            select(Product.summary).where(Product.id == level1_id, visible_products_clause(user, now))
        ).first()
        conditions = ((level1.summary or {}) if level1 else {}).get("ao_conditions")
        if not isinstance(conditions, dict):
            continue
        # l2-postprocess >= 1.3 records the medians over the frames it used (a selected
        # variant's differ from its Level 1 cube's)
        used = summary.get("conditions")
        source = "level2" if isinstance(used, dict) else "level1"
        selection = summary.get("frame_selection")
        rows.append(
            {
                "product_id": r.id,
                "level1_product_id": level1_id,
                "dataset_id": r.dataset_id,
                "target": r.target,
                "algorithm": summary.get("algorithm"),
                "variant": summary.get("variant"),
                "frames_used": selection.get("kept") if isinstance(selection, dict) else None,
                "field_rotation_deg": summary.get("field_rotation_deg"),
                "conditions_source": source,
                "wavelengths_um": summary.get("wavelengths_um"),
                "contrast": [
                    {"separation_arcsec": c["separation_arcsec"], "contrast": c["contrast"]} for c in contrast
                ],
                **{k: (used if source == "level2" else conditions).get(k) for k in CONTRAST_CONDITION_KEYS},
            }
        )
        if limit is not None and len(rows) >= limit:
            break
    ids = {row["dataset_id"] for row in rows if row["dataset_id"] is not None}
    datasets = (
        {
            r.id: r
            for r in conn.execute(
                select(Dataset.id, Dataset.night, Dataset.instrument, Dataset.arm, Dataset.setup).where(
                    Dataset.id.in_(ids)
                )
            )
        }
        if ids
        else {}
    )
    for row in rows:
        ds = datasets.get(row["dataset_id"])
        night = ds.night if ds else None
        row["night"] = night.isoformat() if night else None
        row["group"] = contrast_group(ds, row["algorithm"])
        magnitude = star_magnitude(conn, row["dataset_id"], row["product_id"], row["target"])
        row["star_magnitude"] = magnitude["star_magnitude"]
        row["magnitude_band"] = magnitude["magnitude_band"]
    return rows


def contrast_group(dataset: Any, algorithm: str | None) -> str:
    """The comparability group of a Level 2 product in the expected-contrast model: instrument
    and arm, the dataset's set-up (filter summary) and the algorithm, e.g. ``SPHERE/IRDIS DB_H23
    pca_annular`` (``?`` for what is unknown). Products of one group share a model."""
    instrument = getattr(dataset, "instrument", None) or "?"
    arm = getattr(dataset, "arm", None) or "?"
    setup = getattr(dataset, "setup", None) or "?"
    return f"{instrument}/{arm} {setup} {algorithm or '?'}"


def expected_contrast(
    conn: Connection,
    user: Principal,
    wavelength: int = 0,
    factor: float = 3.0,
    nsigma: float = 3.0,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The expected-contrast model (:mod:`hcdc.science.monitoring.expected`) fitted on the Level 2
    products ``user`` may see (:func:`contrast_conditions`), one per comparability group
    (:func:`contrast_group`: instrument/arm, set-up, algorithm) and separation, and per product
    the leave-one-out expected contrast from its own group and whether it is flagged (measured
    worse than expected by more than ``max(factor, 10^(nsigma scatter))``). Returns
    ``{"wavelength", "factor", "nsigma", "separations", "groups": [{"group", "products"}] (largest
    first), "models": [{"group", "separation_arcsec", "model": ContrastModel.as_dict() or None}]
    (group by group, separation by separation), "products": [row + {"expected": flags}],
    "flagged": [product ids]}``."""
    from hcdc.science.monitoring.contrast import separations
    from hcdc.science.monitoring.expected import expected_contrast_flags, fit_contrast_model

    rows = contrast_conditions(conn, user, limit=None, now=now)
    seps = separations(rows)
    flags = expected_contrast_flags(rows, seps, wavelength, factor, nsigma)
    sizes: dict[str, int] = {}
    for row in rows:
        sizes[row["group"]] = sizes.get(row["group"], 0) + 1
    groups = sorted(sizes, key=lambda g: (-sizes[g], g))
    models = []
    for group in groups:
        members = [row for row in rows if row["group"] == group]
        for sep in seps:
            model = fit_contrast_model(members, sep, wavelength)
            models.append(
                {"group": group, "separation_arcsec": sep, "model": model.as_dict() if model else None}
            )
    products = [row | {"expected": flag} for row, flag in zip(rows, flags, strict=True)]
    return {
        "wavelength": wavelength,
        "factor": factor,
        "nsigma": nsigma,
        "separations": list(seps),
        "groups": [{"group": g, "products": sizes[g]} for g in groups],
        "models": models,
        "products": products,
        "flagged": [p["product_id"] for p in products if p["expected"]["flagged"]],
    }


def dataset_frame_conditions(
    conn: Connection,
    user: Principal,
    dataset_id: int,
    storage_root: str | Path,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Per-DIT AO conditions of a science dataset of any SPHERE arm (IRDIS, IFS, ...), from the
    SPARTA files associated with it (:func:`telemetry_file_ids`; only files ``user`` may see)
    and its raw OBJECT files, without a Level 1 product: each DIT's mid time is DATE-OBS +
    (k + 0.5) DIT (k = 0 .. NDIT-1; read-out overheads between DITs neglected, < 1 s each), and
    the conditions are interpolated to it (:func:`hcdc.instruments.sphere.sparta.frame_conditions`,
    same columns, gap rule and ``NO_TELEMETRY`` flag as a Level 1 ``CONDITIONS`` table).

    Returns ``{"dataset_id", "telemetry_files", "problems" (unreadable SPARTA files),
    "sampling_interval_s", "frames": [{"file_id", "file", "dit_index", "mjd", "strehl",
    "seeing_arcsec", "seeing_zenith_arcsec", "tau0_s", "tau0_zenith_s", "r0_m", "wind_m_s",
    "dtts_flux_adu", "airmass", "no_telemetry"}]}``; raises LookupError when the dataset does not
    exist or ``user`` may not see it."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    dataset = conn.execute(
        select(Dataset.id).where(Dataset.id == dataset_id, visible_datasets_clause(user, now))
    ).first()
    if dataset is None:
        raise LookupError(f"no dataset with id {dataset_id}")
    ids = telemetry_file_ids(conn, dataset_id)
    telemetries, problems = [], []
    if ids:
        for row in conn.execute(
            select(File.id, File.storage, File.stored_path).where(
                File.id.in_(ids), visible_files_clause(user, now)
            )
        ):
            try:
                telemetries.append(
                    read_sparta(resolve_stored_path(row.storage, row.stored_path, storage_root))
                )
            except SpartaError as exc:
                problems.append(f"file {row.id}: {exc}")
    science = conn.execute(
        select(File.id, File.path, File.mjd_obs, File.dit, File.ndit, File.ra, File.dec)
        .where(
            File.dataset_id == dataset_id,
            File.is_current,
            File.sequence_role == "OBJECT",
            File.mjd_obs.is_not(None),
            visible_files_clause(user, now),
        )
        .order_by(File.mjd_obs, File.id)
    ).all()
    frames: list[dict[str, Any]] = []
    mjds: list[float] = []
    for f in science:
        dit, ndit = (f.dit or 0.0), max(int(f.ndit or 1), 1)
        for k in range(ndit):
            mjds.append(f.mjd_obs + (k + 0.5) * dit / _DAY_S)
            frames.append({"file_id": f.id, "file": Path(f.path).name, "dit_index": k})
    ra = next((f.ra for f in science if f.ra is not None), None)
    dec = next((f.dec for f in science if f.dec is not None), None)
    sampling = None
    if frames:
        table = frame_conditions(telemetries, np.asarray(mjds), ra, dec)
        sampling = float(table.meta["AO_DT"]) if table.meta.get("AO_DT", -1) > 0 else None
        columns = {
            "mjd": "MJD",
            "strehl": "STREHL",
            "seeing_arcsec": "SEEING",
            "seeing_zenith_arcsec": "SEEING_ZENITH",
            "tau0_s": "TAU0",
            "tau0_zenith_s": "TAU0_ZENITH",
            "r0_m": "R0",
            "wind_m_s": "WIND",
            "dtts_flux_adu": "DTTS_FLUX",
            "airmass": "AIRMASS",
        }
        for i, frame in enumerate(frames):
            for key, column in columns.items():
                value = float(table[column][i])
                frame[key] = value if np.isfinite(value) else None
            frame["no_telemetry"] = bool(table["NO_TELEMETRY"][i])
    return {
        "dataset_id": dataset_id,
        "telemetry_files": len(telemetries),
        "problems": problems,
        "sampling_interval_s": sampling,
        "frames": frames,
    }
