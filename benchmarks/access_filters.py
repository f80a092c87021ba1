"""Time the SQL access filters of hcdc.archive.access on a large catalogue (PostgreSQL or SQLite).

Builds a catalogue with N files (science and calibrations), N/10 datasets, N/10 products over 60
programmes (PIs, co-Is, survey groups, delegations), then times, for anonymous, a PI, a survey
member and an admin: a first page of visible files / products (ORDER BY id LIMIT 100) and the
count of all visible files / products. Not part of the test run.

    python benchmarks/access_filters.py --url postgresql+psycopg://postgres@127.0.0.1/bench --files 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time

from sqlalchemy import func, insert, select

from hcdc.archive import accounts
from hcdc.archive.access import (
    ANONYMOUS,
    load_principal,
    local_operator,
    mjd_of,
    visible_files_clause,
    visible_products_clause,
)
from hcdc.archive.access_models import Delegation
from hcdc.archive.db import make_engine, upgrade_schema
from hcdc.archive.models import Dataset, File
from hcdc.archive.pipeline_models import Product


def build(engine, n_files: int, seed: int = 1) -> None:  # noqa: ANN001
    rng = random.Random(seed)
    admin = local_operator()
    t0 = mjd_of(dt.datetime(2019, 1, 1))
    with engine.begin() as conn:
        for i in range(200):
            accounts.add_user(conn, admin, f"u{i}")
        for g in range(5):
            accounts.add_group(conn, admin, f"g{g}")
            accounts.set_group_members(
                conn, admin, f"g{g}", add=[f"u{i}" for i in range(g * 10, g * 10 + 10)]
            )
        progs = []
        for p in range(60):
            prog = f"1{p:02d}.C-{p:04d}"
            spec = accounts.ProgrammeSpec(
                prog,
                pi=f"u{p}",
                cois=(f"u{(p + 1) % 200}", f"u{(p + 7) % 200}"),
                period_months=rng.choice([6, 12, 12, 24]),
                group=f"g{p % 5}" if p % 4 == 0 else None,
            )
            accounts.save_programme(conn, admin, spec)
            progs.append(prog)
        n_datasets = max(1, n_files // 10)
        datasets = []
        for _ in range(n_datasets):
            mjd = t0 + rng.uniform(0, 8 * 365)
            datasets.append((rng.choice(progs), mjd))
        conn.execute(
            insert(Dataset),
            [
                {
                    "key": f"ds{d}",
                    "instrument": "SPHERE",
                    "prog_id": f"{prog}(A)",
                    "mjd_start": mjd,
                    "mjd_end": mjd + 0.05,
                    "n_files": 10,
                    "role_counts": {},
                }
                for d, (prog, mjd) in enumerate(datasets)
            ],
        )
        rows = []
        for f in range(n_files):
            d = f % n_datasets
            prog, mjd = datasets[d]
            cal = rng.random() < 0.3
            rows.append(
                {
                    "path": f"/raw/{f}.fits",
                    "sha256": f"{f:064x}",
                    "size": 1,
                    "storage": "reference",
                    "stored_path": f"/raw/{f}.fits",
                    "instrument": "SPHERE",
                    "prog_id": f"{prog}(A)",
                    "mjd_obs": mjd + rng.uniform(0, 0.05),
                    "extra": {},
                    "header": [],
                    "is_calibration": cal,
                    "dataset_id": None if cal else d + 1,
                }
            )
            if len(rows) == 10000:
                conn.execute(insert(File), rows)
                rows = []
        if rows:
            conn.execute(insert(File), rows)
        conn.execute(
            insert(Product),
            [
                {
                    "lineage": f"l{p}",
                    "version": 1,
                    "product_type": "level2-image" if p % 5 else "master-calibration",
                    "dataset_id": p % n_datasets + 1,
                    "recipe": "r",
                    "recipe_version": "1",
                    "storage_dir": f"p{p}",
                }
                for p in range(n_datasets)
            ],
        )
        for _ in range(100):
            conn.execute(
                insert(Delegation).values(
                    grantee_user_id=rng.randint(1, 200),
                    dataset_id=rng.randint(1, n_datasets),
                    granted_by="bench",
                )
            )


def timed(conn, query, repeat: int) -> tuple[float, object]:  # noqa: ANN001
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = conn.execute(query).all()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="an EMPTY database")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    engine = make_engine(args.url)
    upgrade_schema(engine)
    start = time.perf_counter()
    build(engine, args.files)
    print(
        f"built {args.files} files in {time.perf_counter() - start:.1f} s ({engine.url.get_backend_name()})"
    )
    now = dt.datetime(2026, 12, 1)
    with engine.connect() as conn:
        people = {
            "anonymous": ANONYMOUS,
            "PI (u3)": load_principal(conn, "u3"),
            "survey member (u5)": load_principal(conn, "u5"),
            "admin": local_operator(),
        }
        header = ("user", "files page", "files count", "products page", "products count")
        print("| " + " | ".join(header) + " |")
        for label, user in people.items():
            fc, pc = visible_files_clause(user, now), visible_products_clause(user, now)
            t1, _ = timed(conn, select(File.id).where(fc).order_by(File.id).limit(100), args.repeat)
            t2, n_files = timed(conn, select(func.count()).select_from(File).where(fc), args.repeat)
            t3, _ = timed(conn, select(Product.id).where(pc).order_by(Product.id).limit(100), args.repeat)
            t4, n_products = timed(conn, select(func.count()).select_from(Product).where(pc), args.repeat)
            cells = (
                f"{t1:.1f} ms",
                f"{t2:.1f} ms ({n_files[0][0]})",
                f"{t3:.1f} ms",
                f"{t4:.1f} ms ({n_products[0][0]})",
            )
            print(f"| {label} | " + " | ".join(cells) + " |")
    engine.dispose()


if __name__ == "__main__":
    main()
