"""SIA 2.0 POS queries over N ObsCore rows (docs/vo.md, SIA section): the prefilter and the exact
overlap together.

Fills a fresh data centre's ``obscore`` with N seeded rows uniform on the sphere (the rows of
benchmarks/vo_cone.py), then times, warm (p50 over --repeat random centres, each run once untimed
before), the SIA query of :mod:`hcdc.archive.sia` as the web service runs it (``max_field_deg``,
``build_query`` over the operator's ObsCore SELECT, ``run_query``) for a 0.5-degree CIRCLE, a
1-degree POLYGON and a 2 x 2 degree RANGE. On PostgreSQL the CIRCLE and POLYGON prefilter is
pgSphere's GiST index; RANGE and SQLite use the declination band. Usage:
``python benchmarks/sia_pos.py --rows 200000 [--database postgresql://postgres@127.0.0.1/hcdc_sia_bench]``
(that database is dropped and recreated; default: SQLite in a temporary directory).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from vo_cone import fill  # benchmarks/vo_cone.py: the same rows

from hcdc.archive.access import local_operator
from hcdc.archive.db import init_data_centre
from hcdc.archive.obscore import published_select
from hcdc.archive.sia import build_query, max_field_deg, run_query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--database", default="", help="PostgreSQL URL (dropped and recreated)")
    args = parser.parse_args()
    url = args.database
    if url:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    catalogue = init_data_centre(Path(tempfile.mkdtemp(prefix="sia-pos-")) / "dc", database_url=url or None)
    engine = catalogue.engine
    print(f"database: {engine.dialect.name}, rows: {args.rows}")
    print(f"fill + ANALYZE: {fill(engine, args.rows):.1f} s")
    published = published_select(
        local_operator(), dt.datetime(2026, 1, 1), authority="bench", base_url="http://b"
    )

    def search(pos: str) -> int:
        with engine.connect() as conn:
            query = build_query(
                published, {"POS": [pos]}, dialect=engine.dialect.name, field_margin=max_field_deg(conn)
            )
            rows, _ = run_query(conn, query, 100_000)
        return len(rows)

    shapes = {
        "CIRCLE 0.5 deg": lambda ra, dec: f"CIRCLE {ra} {dec} 0.5",
        "POLYGON ~1 deg": lambda ra, dec: f"POLYGON {ra} {dec} {ra + 1} {dec} {ra + 0.5} {dec + 1}",
        "RANGE 2x2 deg": lambda ra, dec: f"RANGE {ra} {ra + 2} {dec} {dec + 2}",
    }
    rng = random.Random(7)
    for label, make in shapes.items():
        times, counts = [], []
        for _ in range(args.repeat):
            ra, dec = rng.uniform(0, 350), math.degrees(math.asin(rng.uniform(-0.8, 0.8)))
            pos = make(ra, dec)
            search(pos)  # warm
            start = time.perf_counter()
            counts.append(search(pos))
            times.append(time.perf_counter() - start)
        print(
            f"{label}: p50 {statistics.median(times) * 1000:.1f} ms "
            f"(rows: median {statistics.median(counts):.0f})"
        )
    catalogue.close()


if __name__ == "__main__":
    main()
