"""The monitoring report a data centre sends back to the observatory, per night or period.

For every science dataset of the nights asked for that the principal may see
(:func:`hcdc.archive.access.visible_datasets_clause`):

* **missing calibrations**: the association rules (:func:`hcdc.archive.associations.association_report`,
  run on the catalogue as it is now, nothing stored) give the required calibration types that
  no catalogued file satisfies, the optional ones, and the fall-backs used (e.g. a DARK where a
  sky background was wanted);
* **conditions**: the medians over the dataset's time span of its SPARTA samples
  (:func:`hcdc.archive.telemetry.telemetry_file_ids`, only files the principal may see;
  invalid samples discarded as everywhere, :mod:`hcdc.instruments.sphere.sparta`) -- Strehl,
  zenith seeing (arcsec), zenith tau0 (s), wind (m/s) -- and the median ESO DIMM seeing of the
  science headers; a median outside :class:`Thresholds` is a problem, and so is a dataset with
  no valid AO sample at all;
* **failed jobs**: pipeline jobs of the dataset that failed and were not followed by a
  successful run of the same workflow (only jobs the principal may see,
  :func:`hcdc.archive.access.visible_jobs_clause`);
* **centring fall-backs**: for each current Level 1 product of the dataset the principal may
  see, how many OBJECT frames were centred by a fall-back rather than the four-spot waffle fit
  (:func:`hcdc.instruments.sphere.irdis.centring_report.centring_summary`).

:func:`problem_rows` flattens the report to one row per problem (the CSV sent to ESO).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from sqlalchemy import Connection, select

from hcdc.archive import products as prod
from hcdc.archive.access import (
    Principal,
    visible_datasets_clause,
    visible_files_clause,
    visible_jobs_clause,
    visible_products_clause,
)
from hcdc.archive.associations import DEFAULT_WINDOW_DAYS, association_report
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Job, Product
from hcdc.archive.storage import resolve_stored_path
from hcdc.archive.telemetry import dataset_time_span, expected_contrast, telemetry_file_ids
from hcdc.instruments.sphere.irdis.centring_report import centring_summary
from hcdc.instruments.sphere.sparta import SpartaError, SpartaTelemetry, conditions_series, read_sparta

__all__ = [
    "CSV_COLUMNS",
    "Thresholds",
    "monitoring_report",
    "problem_rows",
    "problems_csv",
    "write_problems_csv",
]

CSV_COLUMNS = (
    "night",
    "dataset_id",
    "dataset",
    "target",
    "setup",
    "category",
    "item",
    "value",
    "limit",
    "detail",
)


@dataclass(frozen=True)
class Thresholds:
    """Limits on a dataset's median conditions; a median beyond one is reported.

    Seeing and tau0 are zenith values (comparable across airmasses and with the DIMM).
    Defaults: assumed "bad conditions" marks (not taken from a SPHERE DC or ESO document);
    adjust them per programme."""

    strehl_min: float = 0.5
    seeing_max_arcsec: float = 1.2
    tau0_min_s: float = 0.002
    #: a Level 2 product is flagged when its contrast is worse than the expected-contrast model's
    #: (hcdc.science.monitoring.expected) by more than max(contrast_factor, 10^(contrast_nsigma
    #: x scatter in dex)); assumed defaults
    contrast_factor: float = 3.0
    contrast_nsigma: float = 3.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _median(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None


def _dataset_conditions(
    conn: Connection,
    user: Principal,
    now: dt.datetime,
    dataset_id: int,
    storage_root: Path,
    cache: dict[int, SpartaTelemetry | str],
) -> dict[str, Any]:
    """Median AO conditions of one dataset's time span from its SPARTA files the user may see."""
    ids = telemetry_file_ids(conn, dataset_id)
    rows = (
        conn.execute(
            select(File.id, File.storage, File.stored_path).where(
                File.id.in_(ids), visible_files_clause(user, now)
            )
        ).all()
        if ids
        else []
    )
    telemetries, problems = [], []
    for row in rows:
        if row.id not in cache:
            path = resolve_stored_path(row.storage, row.stored_path, storage_root)
            try:
                cache[row.id] = read_sparta(path)
            except SpartaError as exc:
                cache[row.id] = f"file {row.id}: {exc}"
        item = cache[row.id]
        (problems if isinstance(item, str) else telemetries).append(item)
    start, end, _night = dataset_time_span(conn, dataset_id)
    dimm_values = np.array(
        [
            float(v)
            for v in conn.scalars(
                select(File.seeing).where(
                    File.dataset_id == dataset_id, File.is_current, File.seeing.is_not(None)
                )
            )
        ]
    )
    series = conditions_series(telemetries)
    inside = (series["mjd"] >= start) & (series["mjd"] <= end) if start is not None else series["mjd"] < 0
    return {
        "telemetry_files": len(telemetries),
        "samples": int(inside.sum()),
        "strehl_median": _median(series["strehl"][inside]),
        "seeing_zenith_median_arcsec": _median(series["seeing_zenith"][inside]),
        "tau0_zenith_median_s": _median(series["tau0_zenith_s"][inside]),
        "wind_median_m_s": _median(series["wind_m_s"][inside]),
        "dimm_seeing_median_arcsec": _median(dimm_values),
        "problems": problems,
    }


def _failed_jobs(conn: Connection, user: Principal, dataset_id: int) -> list[dict[str, Any]]:
    """Failed jobs of a dataset (those ``user`` may see) not followed by a successful run of
    the same workflow: a failure already repaired is not a problem any more."""
    jobs = conn.execute(
        select(Job.id, Job.workflow, Job.state, Job.error, Job.finished_at)
        .where(Job.dataset_id == dataset_id, visible_jobs_clause(user))
        .order_by(Job.id)
    ).all()
    done_after: dict[str | None, int] = {}
    for job in jobs:
        if job.state == "done":
            done_after[job.workflow] = job.id
    return [
        {
            "job_id": job.id,
            "workflow": job.workflow,
            "error": (job.error or "").strip().splitlines()[-1] if job.error else None,
            "finished_at": job.finished_at.isoformat(timespec="seconds") if job.finished_at else None,
        }
        for job in jobs
        if job.state == "failed" and done_after.get(job.workflow, -1) < job.id
    ]


def _centring(
    conn: Connection, user: Principal, now: dt.datetime, dataset_id: int, storage_root: Path
) -> list[dict[str, Any]]:
    """Centring summary of each current Level 1 product of the dataset that ``user`` may see
    and that has a per-frame table (IRDIS; others are skipped, unreadable ones say why)."""
    ids = conn.scalars(
        select(Product.id)
        .where(Product.dataset_id == dataset_id, Product.level == 1, Product.is_current)
        .where(visible_products_clause(user, now))
        .order_by(Product.id)
    ).all()
    return centring_of_products(conn, ids, storage_root)


def centring_of_products(
    conn: Connection, product_ids: Iterable[int], storage_root: Path
) -> list[dict[str, Any]]:
    """``{"product_id", **centring_summary}`` of each Level 1 product of ``product_ids`` (the
    caller decided who may see them) that has a per-frame table (``frames.fits``: IRDIS; others
    are skipped), or ``{"product_id", "problem"}`` naming why its table is unreadable."""
    out = []
    for product_id in product_ids:
        detail = prod.product_detail(conn, product_id, storage_root)
        frames = [
            Path(f["path"]) for f in (detail or {}).get("files", []) if Path(f["path"]).name == "frames.fits"
        ]
        if not frames:
            continue
        try:
            out.append({"product_id": product_id, **centring_summary(frames[0].parent)})
        except (OSError, ValueError) as exc:
            out.append({"product_id": product_id, "problem": str(exc)})
    return out


def _outside(conditions: dict[str, Any], limits: Thresholds) -> list[dict[str, Any]]:
    """The medians beyond their limit (missing medians are not judged here)."""
    checks = (
        ("strehl", conditions["strehl_median"], limits.strehl_min, lambda v, lim: v < lim, "<"),
        (
            "seeing_zenith_arcsec",
            conditions["seeing_zenith_median_arcsec"],
            limits.seeing_max_arcsec,
            lambda v, lim: v > lim,
            ">",
        ),
        ("tau0_zenith_s", conditions["tau0_zenith_median_s"], limits.tau0_min_s, lambda v, lim: v < lim, "<"),
    )
    return [
        {"quantity": name, "value": value, "limit": limit, "comparison": sign}
        for name, value, limit, bad, sign in checks
        if value is not None and bad(value, limit)
    ]


def monitoring_report(
    conn: Connection,
    user: Principal,
    first_night: dt.date,
    last_night: dt.date,
    storage_root: str | Path,
    thresholds: Thresholds | None = None,
    window_days: float = DEFAULT_WINDOW_DAYS,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The quality-control report of nights ``first_night`` .. ``last_night`` (inclusive) as
    ``user`` may see them (see the module doc). Returns a JSON-friendly dict: ``from``, ``to``,
    ``thresholds``, ``datasets`` (one entry each, in night and time order) and ``nights``
    (counts per night)."""
    if last_night < first_night:
        raise ValueError(f"period ends ({last_night}) before it starts ({first_night})")
    limits = thresholds or Thresholds()
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    datasets = conn.execute(
        select(Dataset.id, Dataset.key, Dataset.night, Dataset.target, Dataset.setup, Dataset.mode)
        .where(Dataset.night >= first_night, Dataset.night <= last_night)
        .where(visible_datasets_clause(user, now))
        .order_by(Dataset.night, Dataset.mjd_start, Dataset.id)
    ).all()
    cache: dict[int, SpartaTelemetry | str] = {}
    # the expected-contrast model is fitted on every product the user may see, not only the period's
    expected = expected_contrast(
        conn, user, factor=limits.contrast_factor, nsigma=limits.contrast_nsigma, now=now
    )
    flagged_by_dataset: dict[int, list[dict[str, Any]]] = {}
    for p in expected["products"]:
        if p["expected"]["flagged"] and p["dataset_id"] is not None:
            flagged_by_dataset.setdefault(p["dataset_id"], []).append(
                {
                    "product_id": p["product_id"],
                    "variant": p["variant"],
                    "separations": [e for e in p["expected"]["separations"] if e["flagged"]],
                }
            )
    entries = []
    for d in datasets:
        report = association_report(conn, d.id, window_days)
        conditions = _dataset_conditions(conn, user, now, d.id, Path(storage_root), cache)
        entries.append(
            {
                "dataset_id": d.id,
                "dataset": d.key,
                "night": d.night.isoformat() if d.night else None,
                "target": d.target,
                "setup": d.setup,
                "mode": d.mode,
                "missing_calibrations": [
                    {"need": n, "reason": report.missing_reasons.get(n)} for n in report.missing
                ],
                "optional_missing": [
                    {"need": n, "reason": report.missing_reasons.get(n)} for n in report.optional_missing
                ],
                "fallbacks": [
                    {"need": need, "kind": c.kind, "reason": c.reason}
                    for need, c in report.chosen.items()
                    if c.fallback
                ],
                "failed_jobs": _failed_jobs(conn, user, d.id),
                "centring": _centring(conn, user, now, d.id, Path(storage_root)),
                "conditions": conditions,
                "conditions_outside": _outside(conditions, limits),
                "contrast_worse_than_expected": flagged_by_dataset.get(d.id, []),
            }
        )
    nights: dict[str, dict[str, int]] = {}
    for e in entries:
        n = nights.setdefault(
            e["night"],
            {
                "datasets": 0,
                "missing_calibrations": 0,
                "bad_conditions": 0,
                "no_telemetry": 0,
                "failed_jobs": 0,
                "centring_fallbacks": 0,
                "contrast_problems": 0,
            },
        )
        n["datasets"] += 1
        n["missing_calibrations"] += bool(e["missing_calibrations"])
        n["bad_conditions"] += bool(e["conditions_outside"])
        n["no_telemetry"] += e["conditions"]["samples"] == 0
        n["failed_jobs"] += len(e["failed_jobs"])
        n["centring_fallbacks"] += any(c.get("fallback_frames") for c in e["centring"])
        n["contrast_problems"] += len(e["contrast_worse_than_expected"])
    return {
        "from": first_night.isoformat(),
        "to": last_night.isoformat(),
        "thresholds": limits.as_dict(),
        "association_window_days": window_days,
        "contrast_models": expected["models"],
        "nights": [{"night": k, **v} for k, v in nights.items()],
        "datasets": entries,
    }


def _problem(
    base: dict[str, Any],
    category: str,
    item: str,
    value: Any = None,
    limit: Any = None,
    detail: str | None = None,
) -> dict[str, Any]:
    return base | {"category": category, "item": item, "value": value, "limit": limit, "detail": detail or ""}


def problem_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per problem of ``report`` (columns :data:`CSV_COLUMNS`): categories
    ``missing_calibration``, ``optional_calibration``, ``calibration_fallback``,
    ``conditions``, ``no_telemetry``, ``unreadable_telemetry``, ``failed_job``,
    ``centring_fallback`` (value: frames that fell back, limit: frames),
    ``centring_unreadable`` and ``contrast_worse_than_expected`` (value: measured / expected
    contrast, limit: the ratio allowed; one row per flagged separation)."""
    rows = []
    for e in report["datasets"]:
        base = {k: e[k] for k in ("night", "dataset_id", "dataset", "target", "setup")}
        rows += [
            _problem(base, "missing_calibration", m["need"], detail=m["reason"])
            for m in e["missing_calibrations"]
        ]
        rows += [
            _problem(base, "optional_calibration", m["need"], detail=m["reason"])
            for m in e["optional_missing"]
        ]
        rows += [
            _problem(base, "calibration_fallback", f["need"], value=f["kind"], detail=f["reason"])
            for f in e["fallbacks"]
        ]
        rows += [
            _problem(
                base,
                "conditions",
                o["quantity"],
                value=round(o["value"], 5),
                limit=o["limit"],
                detail=f"median {o['comparison']} limit",
            )
            for o in e["conditions_outside"]
        ]
        if e["conditions"]["samples"] == 0:
            rows.append(
                _problem(
                    base,
                    "no_telemetry",
                    "ao_telemetry",
                    detail="no valid SPARTA sample in the dataset's time span",
                )
            )
        rows += [
            _problem(base, "unreadable_telemetry", "ao_telemetry", detail=p)
            for p in e["conditions"]["problems"]
        ]
        rows += [
            _problem(base, "failed_job", f"j{j['job_id']}", value=j["workflow"], detail=j["error"])
            for j in e["failed_jobs"]
        ]
        for c in e["centring"]:
            if c.get("problem"):
                rows.append(_problem(base, "centring_unreadable", f"p{c['product_id']}", detail=c["problem"]))
            elif c["fallback_frames"]:
                methods = ", ".join(f"{m}: {n}" for m, n in c["methods"].items())
                rows.append(
                    _problem(
                        base,
                        "centring_fallback",
                        f"p{c['product_id']}",
                        value=c["fallback_frames"],
                        limit=c["frames"],
                        detail=f"{c['not_ok_frames']} frame(s) above the error limit; methods {methods}",
                    )
                )
        for flagged in e["contrast_worse_than_expected"]:
            for sep in flagged["separations"]:
                rows.append(
                    _problem(
                        base,
                        "contrast_worse_than_expected",
                        f"p{flagged['product_id']}",
                        value=round(sep["ratio"], 3),
                        limit=round(sep["limit_ratio"], 3),
                        detail=f"at {sep['separation_arcsec']:g} arcsec: measured {sep['measured']:.3g}, "
                        f"expected {sep['expected']:.3g} from the conditions (model of {sep['fitted_on']} "
                        f"products: {', '.join(sep['features'])})",
                    )
                )
    return rows


def _write_problems(handle: TextIO, rows: Iterable[dict[str, Any]]) -> None:
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_COLUMNS})


def write_problems_csv(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write ``rows`` (from :func:`problem_rows`) as CSV with a header line; returns the path."""
    out = Path(path)
    with out.open("w", newline="", encoding="utf-8") as handle:
        _write_problems(handle, rows)
    return out


def problems_csv(rows: Iterable[dict[str, Any]]) -> str:
    """``rows`` (from :func:`problem_rows`) as CSV text, as :func:`write_problems_csv` writes it."""
    buffer = io.StringIO(newline="")
    _write_problems(buffer, rows)
    return buffer.getvalue()
