"""Programme overview for monitoring: per observing programme (``Dataset.prog_id``), its nights,
science datasets, reductions (jobs by state, current products by level), the median AO
conditions of its Level 1 products and the 5-sigma contrast of its Level 2 products.

Everything is what ``user`` may see (:mod:`hcdc.archive.access`): datasets through
``visible_datasets_clause``, products through ``visible_products_clause``, jobs through
``visible_jobs_clause``. Conditions are the medians, over the programme's current Level 1
products with telemetry, of each product's median (``summary.ao_conditions``); contrast is the
median and the best (smallest) over its current Level 2 products of ``summary.contrast_at`` at
each standard separation (first wavelength).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from sqlalchemy import Connection, func, select

from hcdc.archive.access import (
    Principal,
    visible_datasets_clause,
    visible_jobs_clause,
    visible_products_clause,
)
from hcdc.archive.models import Dataset
from hcdc.archive.pipeline_models import Job, Product

__all__ = ["programme_overview"]

#: Level 1 summary key (``ao_conditions``) -> overview key
_CONDITIONS = {
    "strehl_median": "strehl",
    "seeing_median_arcsec": "seeing_arcsec",
    "seeing_zenith_median_arcsec": "seeing_zenith_arcsec",
    "tau0_median_s": "tau0_s",
    "wind_median_m_s": "wind_m_s",
}


def _median(values: list[float]) -> float | None:
    return float(np.median(values)) if values else None


def programme_overview(
    conn: Connection,
    user: Principal,
    prog_id: str | None = None,
    now: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """One entry per programme with at least one visible science dataset (``prog_id`` given:
    only that one; datasets without programme are grouped under None), sorted by programme:
    ``prog_id``, ``nights`` (sorted ISO dates), ``datasets``, ``targets``, ``modes``,
    ``exposure_s`` (sum), ``jobs`` ({state: count}), ``products`` ({level: current products}),
    ``level1_with_conditions``, ``conditions`` (medians, keys of :data:`_CONDITIONS`, None when
    no product has telemetry), ``contrast`` ([{"separation_arcsec", "products", "median",
    "best"}])."""
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    query = select(
        Dataset.id, Dataset.prog_id, Dataset.night, Dataset.target, Dataset.mode, Dataset.exposure_s
    ).where(visible_datasets_clause(user, now))
    if prog_id is not None:
        query = query.where(Dataset.prog_id == prog_id)
    programmes: dict[str | None, dict[str, Any]] = {}
    dataset_programme: dict[int, str | None] = {}
    for d in conn.execute(query):
        p = programmes.setdefault(
            d.prog_id,
            {"nights": set(), "datasets": 0, "targets": set(), "modes": set(), "exposure_s": 0.0},
        )
        p["datasets"] += 1
        if d.night:
            p["nights"].add(d.night.isoformat())
        if d.target:
            p["targets"].add(d.target)
        if d.mode:
            p["modes"].add(d.mode)
        p["exposure_s"] += d.exposure_s or 0.0
        dataset_programme[d.id] = d.prog_id
    ids = list(dataset_programme)
    jobs: dict[str | None, dict[str, int]] = {}
    products: dict[str | None, dict[str, int]] = {}
    conditions: dict[str | None, dict[str, list[float]]] = {}
    with_conditions: dict[str | None, int] = {}
    contrast: dict[str | None, dict[float, list[float]]] = {}
    if ids:
        for dataset_id, state, count in conn.execute(
            select(Job.dataset_id, Job.state, func.count())
            .where(Job.dataset_id.in_(ids), visible_jobs_clause(user))
            .group_by(Job.dataset_id, Job.state)
        ):
            by_state = jobs.setdefault(dataset_programme[dataset_id], {})
            by_state[state] = by_state.get(state, 0) + int(count)
        for row in conn.execute(
            select(Product.dataset_id, Product.level, Product.summary).where(
                Product.dataset_id.in_(ids), Product.is_current, visible_products_clause(user, now)
            )
        ):
            prog = dataset_programme[row.dataset_id]
            by_level = products.setdefault(prog, {})
            level = str(row.level) if row.level is not None else "other"
            by_level[level] = by_level.get(level, 0) + 1
            summary = row.summary or {}
            ao = summary.get("ao_conditions") if row.level == 1 else None
            if isinstance(ao, dict) and ao.get("frames_with_telemetry"):
                with_conditions[prog] = with_conditions.get(prog, 0) + 1
                values = conditions.setdefault(prog, {})
                for key, name in _CONDITIONS.items():
                    if ao.get(key) is not None:
                        values.setdefault(name, []).append(float(ao[key]))
            if row.level == 2:
                for c in summary.get("contrast_at") or []:
                    value = (c.get("contrast") or [None])[0]
                    if value is not None and value > 0:
                        contrast.setdefault(prog, {}).setdefault(float(c["separation_arcsec"]), []).append(
                            float(value)
                        )
    out = []
    for prog in sorted(programmes, key=lambda p: (p is None, p or "")):
        p = programmes[prog]
        medians = conditions.get(prog)
        out.append(
            {
                "prog_id": prog,
                "nights": sorted(p["nights"]),
                "datasets": p["datasets"],
                "targets": sorted(p["targets"]),
                "modes": sorted(p["modes"]),
                "exposure_s": p["exposure_s"],
                "jobs": jobs.get(prog, {}),
                "products": products.get(prog, {}),
                "level1_with_conditions": with_conditions.get(prog, 0),
                "conditions": (
                    {name: _median(medians.get(name, [])) for name in _CONDITIONS.values()}
                    if medians
                    else None
                ),
                "contrast": [
                    {"separation_arcsec": sep, "products": len(v), "median": _median(v), "best": min(v)}
                    for sep, v in sorted(contrast.get(prog, {}).items())
                ],
            }
        )
    return out
