"""Cone searches and a 10 000-row sync TAP query over 1 000 000 ObsCore rows (docs/vo.md).

Fills a fresh data centre's ``obscore`` table with N random rows (uniform on the sphere, seeded),
then times, warm (p50 of --repeat runs, after one untimed run):

* a 1-arcmin and a 1-degree ``CONTAINS(POINT(s_ra, s_dec), CIRCLE(...))`` through
  :func:`hcdc.web.vo.tap.run_adql` (ADQL parse + translation + the query: pgSphere GiST index on
  PostgreSQL, bounding box on the (s_dec, s_ra) index + exact distance on SQLite);
* ``SELECT TOP 10000 * FROM ivoa.obscore`` rendered as a BINARY2 VOTable.

Queries run as the data centre's operator (no rights filter: the filter's cost is measured by
benchmarks/access_filters.py). Usage:
``python benchmarks/vo_cone.py --rows 1000000 --database postgresql://postgres@127.0.0.1/hcdc_bench``
(the database is dropped and recreated; default: SQLite in a temporary directory).
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

from sqlalchemy import insert, text

from hcdc.archive.access import DEFAULT_POLICY, local_operator
from hcdc.archive.db import init_data_centre
from hcdc.archive.obscore import DATALINK_FORMAT, ObsCoreRow
from hcdc.web.vo.tap import run_adql
from hcdc.web.vo.votable import render


def rows(n: int, seed: int = 1):
    rng = random.Random(seed)
    for i in range(n):
        ra = rng.uniform(0, 360)
        dec = math.degrees(math.asin(rng.uniform(-1, 1)))
        yield dict(
            hcdc_kind="product", hcdc_key=i + 1, dataproduct_type="image", calib_level=3,
            obs_collection="BENCH L2", obs_id=f"obs-{i}", access_format=DATALINK_FORMAT,
            target_name=f"t{i}", s_ra=ra, s_dec=dec, s_fov=0.0035,
            s_region=(
                f"POLYGON ICRS {ra:.6f} {dec:.6f} {ra + 0.003:.6f} {dec:.6f} "
                f"{ra + 0.003:.6f} {dec + 0.003:.6f}"
            ),
            t_min=60000.0 + i * 1e-3, t_max=60000.01 + i * 1e-3, em_min=1.5e-6, em_max=1.8e-6,
            obs_release_date=dt.datetime(2020, 1, 1),
        )


def fill(engine, n: int, batch: int = 20_000) -> float:
    start = time.perf_counter()
    chunk = []
    with engine.begin() as conn:
        for row in rows(n):
            chunk.append(row)
            if len(chunk) == batch:
                conn.execute(insert(ObsCoreRow), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(ObsCoreRow), chunk)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - start


def timed(function, repeat: int) -> tuple[float, object]:
    result = function()  # warm
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument(
        "--database", default="", help="PostgreSQL URL (dropped and recreated); default SQLite"
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vo-cone-"))
    url = args.database
    if url:
        import psycopg

        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    catalogue = init_data_centre(tmp / "dc", database_url=url or None)
    engine = catalogue.engine
    print(f"database: {engine.dialect.name}, rows: {args.rows}")
    print(f"fill + index + ANALYZE: {fill(engine, args.rows):.1f} s")
    who = local_operator()
    now = dt.datetime(2026, 1, 1)

    def query(adql: str, maxrec: int = 100_000):
        return run_adql(engine, adql, who, now, maxrec=maxrec, authority="bench", base_url="http://b",
                        policy=DEFAULT_POLICY)

    rng = random.Random(7)
    for label, radius in (("1 arcmin", 1 / 60), ("1 degree", 1.0)):
        centres = [
            (rng.uniform(0, 360), math.degrees(math.asin(rng.uniform(-0.9, 0.9))))
            for _ in range(args.repeat)
        ]
        times, counts = [], []
        for ra, dec in centres:
            adql = (f"SELECT obs_publisher_did, s_ra, s_dec FROM ivoa.obscore WHERE "
                    f"1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', {ra}, {dec}, {radius}))")
            query(adql)  # warm
            start = time.perf_counter()
            result = query(adql)
            times.append(time.perf_counter() - start)
            counts.append(len(result.rows))
        print(f"cone {label}: p50 {statistics.median(times) * 1000:.1f} ms "
              f"(rows per cone: median {statistics.median(counts):.0f})")

    def big():
        result = query("SELECT TOP 10000 * FROM ivoa.obscore", maxrec=10_000)
        body, _ = render(result.fields, result.rows, "binary2", overflow=result.overflow)
        return len(body), len(result.rows)

    p50, (size, count) = timed(big, max(3, args.repeat // 3))
    print(f"sync TAP 10 000 rows as BINARY2: p50 {p50 * 1000:.0f} ms ({count} rows, {size / 1e6:.1f} MB)")
    catalogue.close()


if __name__ == "__main__":
    main()
