"""Time ``hcdc.archive.rdi_library.build_library`` choosing the best references among ~10 000
library frames (issue 15: "< 10 s on 2 cores").

Set-up (not timed): one simulated IRDIS DBI sequence (the science star, 64 x 64 px Level 1
frames, 2 wavelengths, 18 frames) and one reference star reduced by ``level1-irdis``; the
reference product is then catalogued ``--products`` times (hard links of its files, each with its
own dataset of OBJECT files of the same set-up and its own target), so that the archive holds
``18 x products`` candidate frames. Timed: the whole build as an account sees the archive
(candidate query with the access clause, set-up match, reading every candidate Level 1 product,
Pearson correlation in the 2-8 lambda/D annulus against the 18 science frames, keeping the 200
best, writing the library FITS and rows).

Command: ``.venv/bin/python benchmarks/rdi_library_build.py --products 556 [--database-url URL]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=556, help="reference products (18 frames each)")
    parser.add_argument("--database-url", default=None, help="default: SQLite in the temporary folder")
    parser.add_argument("--max-frames", type=int, default=200)
    args = parser.parse_args()

    from hcdc.archive import products as prod
    from hcdc.archive.access import local_operator
    from hcdc.archive.db import init_data_centre
    from hcdc.archive.ingest import ingest
    from hcdc.archive.models import Dataset, File
    from hcdc.archive.rdi_library import LibrarySettings, build_library
    from hcdc.instruments.sphere.irdis.simulate import (
        Companion,
        SequenceSpec,
        Target,
        simulate_irdis_night,
    )
    from hcdc.pipeline.registry import run_recipe

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        seq = (SequenceSpec("DB_H23", "DBI", 16.0, 6, 16.0, 4.0, "ND_2.0", "x"),)
        level1 = []
        for i, (name, companions) in enumerate((("SCI", (Companion(200.0, 40.0, 3e-4),)), ("REF", ()))):
            sim = simulate_irdis_night(
                tmp / f"raw{i}",
                seed=100 + i,
                sequences=seq,
                target=Target(name, 70.0 + 5 * i, -5.0),
                companions=companions,
                speckle_seed=4242,
                night=f"2018-11-{20 + i}",
            )
            result = run_recipe(
                "level1-irdis",
                {"raw": sorted(f.path for f in sim.files)},
                ["science_dim=64", "psf_dim=16"],
                work_dir=tmp / f"l1_{i}",
            )
            level1.append((sim, result.outputs["product"]))
        catalogue = init_data_centre(tmp / "dc", database_url=args.database_url)
        ingest(catalogue, [level1[0][0].out_dir], workers=1)
        now = dt.datetime(2026, 12, 7)
        with catalogue.engine.begin() as conn:
            science_ds = conn.execute(Dataset.__table__.select()).first().id
            ref_ds = []
            for k in range(args.products):
                ds = conn.execute(
                    insert(Dataset)
                    .values(
                        key=f"bench/{k}",
                        instrument="SPHERE",
                        arm="IRDIS",
                        target=f"REF{k}",
                        prog_id="0102.C-9999(A)",
                        mjd_start=58000.0,
                        mjd_end=58000.1,
                        n_files=1,
                        role_counts={"OBJECT": 1},
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(Dataset.id)
                ).scalar_one()
                conn.execute(
                    insert(File).values(
                        path=f"/bench/{k}.fits",
                        version=1,
                        is_current=True,
                        sha256=f"{k:064x}",
                        size=2880,
                        storage="reference",
                        stored_path=f"/bench/{k}.fits",
                        ingested_at=now,
                        instrument="SPHERE",
                        arm="IRDIS",
                        filter="DB_H23",
                        coronagraph="N_ALC_YJH_S",
                        dit=16.0,
                        sequence_role="OBJECT",
                        mjd_obs=58000.0,
                        prog_id="0102.C-9999(A)",
                        extra={},
                        header=[],
                        dataset_id=ds,
                    )
                )
                ref_ds.append(ds)
        specs = []
        for ds, folder, target in [(science_ds, level1[0][1], "SCI")] + [
            (ds, level1[1][1], f"REF{k}") for k, ds in enumerate(ref_ds)
        ]:
            dest = catalogue.storage_root / "products" / f"d{ds}" / "level1"
            dest.mkdir(parents=True)
            for f in folder.iterdir():
                os.link(f, dest / f.name)
            specs.append(
                prod.ProductSpec(
                    lineage=prod.dataset_lineage(ds, "level1-cube"),
                    recipe="level1-irdis",
                    recipe_version="1.1",
                    record={"id": f"l1-{ds}", "recipe": "level1-irdis", "recipe_version": "1.1"},
                    storage_dir=dest,
                    files=[prod.FileSpec(p, "product") for p in sorted(dest.iterdir())],
                    level=1,
                    product_type="level1-cube",
                    dataset_id=ds,
                    target=target,
                )
            )
        ids = prod.register_products(catalogue.engine, specs, catalogue.storage_root)
        with catalogue.engine.connect() as conn:
            t0, c0 = time.perf_counter(), time.process_time()
            lib = build_library(
                conn,
                catalogue.engine,
                local_operator(),
                catalogue.storage_root,
                ids[0],
                name="bench",
                settings=LibrarySettings(max_frames=args.max_frames),
            )
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(
            f"{catalogue.engine.dialect.name}: {lib['n_candidates']} candidate frames from "
            f"{args.products} products -> {lib['n_frames']} kept in {wall:.2f} s wall, {cpu:.2f} s CPU "
            f"({wall / lib['n_candidates'] * 1e3:.3f} ms per frame)"
        )
        catalogue.engine.dispose()


if __name__ == "__main__":
    main()
