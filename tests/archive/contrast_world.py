"""A catalogue of Level 1 + Level 2 product pairs whose contrast follows a known law of the
conditions (no reduction run: summaries and provenance only), with one product made 8 times
worse at 0.2" than its conditions predict: the known answer of the expected-contrast tests."""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import update

from archive.access_world import add_dataset
from hcdc.archive import products as prod
from hcdc.archive.access import mjd_of
from hcdc.archive.db import Catalogue
from hcdc.archive.models import Dataset

LAW = {"intercept": -4.2, "seeing": 1.5, "tau0": -0.8, "field_rotation": -0.5}
N_PRODUCTS = 14
DEGRADED = 4  # index of the product made worse
NIGHT0 = dt.date(2025, 3, 1)
#: even products belong to the first programme, odd ones to the second
PROGRAMMES = ("0114.C-0001(A)", "0114.C-0002(B)")


def _log_contrast(seeing: float, tau0: float, rotation: float, offset: float) -> float:
    return (
        LAW["intercept"]
        + offset
        + LAW["seeing"] * np.log10(seeing)
        + LAW["tau0"] * np.log10(tau0 / 1e-3)
        + LAW["field_rotation"] * np.log10(rotation)
    )


def build_contrast_world(
    catalogue: Catalogue,
    seed: int = 5,
    magnitude_slope: float | None = None,
    n_products: int = N_PRODUCTS,
    degraded: int | None = DEGRADED,
) -> dict[str, list[int]]:
    """Register the products; returns ``{"datasets": [...], "level2": [...], "seeing": [...],
    "contrast_02": [...], "mag_h": [...]}`` (same order; the last three: the known values).
    ``magnitude_slope``: when given, every star gets a Target Data Base target ``HD 1000+i``
    with an H magnitude drawn in 4-11 and the contrast gains ``magnitude_slope (H - 5)`` dex
    (a star whose photon noise matters); ``degraded``: the product made 8x worse at 0.2" (None:
    none)."""
    rng = np.random.default_rng(seed)
    datasets, specs, seeings, contrasts_02, mags = [], [], [], [], []
    with catalogue.engine.begin() as conn:
        for i in range(n_products):
            night = NIGHT0 + dt.timedelta(days=i)
            when = dt.datetime.combine(night, dt.time(3, 0))
            ds = add_dataset(conn, PROGRAMMES[i % 2], mjd_end=mjd_of(when), mjd_start=mjd_of(when))
            conn.execute(
                update(Dataset)
                .where(Dataset.id == ds)
                .values(target=f"HD {1000 + i}", mode="DBI", night=night, setup="DB_H23")
            )
            datasets.append(ds)
            if magnitude_slope is not None:
                from hcdc.archive.targets import create_target

                mag = float(np.random.default_rng(seed + 1000 + i).uniform(4.0, 11.0))
                create_target(conn, f"HD {1000 + i}", {"mag_h": mag})
                mags.append(mag)
    for i, ds in enumerate(datasets):
        seeing, tau0, rotation = rng.uniform(0.5, 1.5), rng.uniform(1.5e-3, 8e-3), rng.uniform(10, 80)
        seeings.append(seeing)
        conditions = {
            "strehl_median": 0.8,
            "seeing_median_arcsec": seeing,
            "tau0_median_s": tau0,
            "wind_median_m_s": 10.0,
            "frames": 30,
            "frames_with_telemetry": 30,
        }
        contrast = []
        for sep, offset in ((0.2, 0.0), (0.5, -0.7)):
            log_c = _log_contrast(seeing, tau0, rotation, offset)
            if magnitude_slope is not None:
                log_c += magnitude_slope * (mags[i] - 5.0)
            value = 10 ** (log_c + rng.normal(0, 0.05))
            if i == degraded and sep == 0.2:
                value *= 8.0
            if sep == 0.2:
                contrasts_02.append(value)
            contrast.append({"separation_arcsec": sep, "separation_px": sep / 0.01225, "contrast": [value]})
        l1_record = {"id": f"l1-{ds}", "recipe": "level1-irdis", "recipe_version": "1.1", "parents": []}
        l2_record = {
            "id": f"l2-{ds}",
            "recipe": "l2-postprocess",
            "recipe_version": "1.3",
            "parents": [l1_record["id"]],
        }
        for level, record, summary in (
            (1, l1_record, {"ao_conditions": conditions}),
            (
                2,
                l2_record,
                {
                    "algorithm": "pca_annular",
                    "contrast_at": contrast,
                    "field_rotation_deg": rotation,
                    "conditions": conditions,
                    "frame_selection": None,
                },
            ),
        ):
            specs.append(
                prod.ProductSpec(
                    lineage=prod.dataset_lineage(ds, f"level{level}"),
                    recipe=record["recipe"],
                    recipe_version=record["recipe_version"],
                    record=record,
                    storage_dir=catalogue.storage_root / "products" / record["id"],
                    files=[],
                    level=level,
                    product_type=f"level{level}",
                    dataset_id=ds,
                    target=f"HD {1000 + i}",
                    summary=summary,
                )
            )
    ids = prod.register_products(catalogue.engine, specs, catalogue.storage_root)
    return {
        "datasets": datasets,
        "level2": ids[1::2],
        "seeing": seeings,
        "contrast_02": contrasts_02,
        "mag_h": mags,
    }
