"""Ingest throughput next to a bare astropy header-reading loop (issue 2's benchmark).

Generates N small FITS files carrying the real SPHERE headers of ../shared/data/sphere_headers
(each clone's DATE-OBS / MJD-OBS / ARCFILE / detector times moved, so every file is distinct),
then times, on the same files:

(a) a bare loop that only reads each primary header with ``astropy.io.fits.getheader``;
(b) ``hcdc ingest`` of the folder into a fresh data centre (SQLite, then PostgreSQL), through
    the same code path as the command line (``hcdc.archive.ingest.ingest``), which hashes each
    file, keeps the full header, identifies and classifies it, extracts the metadata, writes one
    row per file and groups the datasets.

The page cache is warmed before timing so that both read the files from memory. The bare loop
is timed right before each ingest (the machine may be shared; the ratio compares neighbours).

    .venv/bin/python benchmarks/ingest.py --files 2000
    .venv/bin/python benchmarks/ingest.py --files 2000 --databases sqlite --workers 2

Target: ingest >= 0.8 x the bare loop's files/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from astropy.io import fits

from hcdc.archive.db import init_data_centre
from hcdc.archive.ingest import ingest
from hcdc.archive.samples import TimeShiftTemplate
from hcdc.instruments.eso_headers import read_header_text

REPO = Path(__file__).resolve().parents[1]
DEFAULT_HEADERS = Path(os.environ.get("HCDC_SHARED_DATA", REPO.parent / "shared" / "data")) / "sphere_headers"
DEFAULT_PG = os.environ.get("HCDC_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def generate(headers_dir: Path, out: Path, count: int) -> list[Path]:
    """``count`` distinct files cycling over the real headers, 5 s apart per template."""
    templates = [TimeShiftTemplate(read_header_text(p)) for p in sorted(headers_dir.glob("*.hdr.txt"))]
    if not templates:
        raise SystemExit(f"no *.hdr.txt header in {headers_dir}")
    paths = []
    for i in range(count):
        template = templates[i % len(templates)]
        when = template.date_obs + dt.timedelta(seconds=5 * (i // len(templates) + 1))
        name = f"SPHER.{when.isoformat(timespec='milliseconds').replace(':', '_')}.{i:06d}.fits"
        paths.append(template.write(out / name, when))
    return paths


def warm(paths: list[Path]) -> None:
    for path in paths:
        path.read_bytes()


def bare_loop(paths: list[Path]) -> float:
    """Seconds to read every primary header with astropy (nothing else)."""
    start = time.perf_counter()
    for path in paths:
        fits.getheader(path)
    return time.perf_counter() - start


def _pg_database(admin_url: str):
    import psycopg

    name = f"hcdc_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"{base}/{name}", drop


def timed_ingest(
    folder: Path, work: Path, database: str, pg_admin: str, workers: int | None
) -> tuple[float, dict]:
    drop = None
    url = None
    if database == "postgresql":
        url, drop = _pg_database(pg_admin)
    catalogue = init_data_centre(work / f"dc-{database}", database_url=url)
    try:
        start = time.perf_counter()
        summary = ingest(catalogue, [folder], workers=workers)
        elapsed = time.perf_counter() - start
    finally:
        catalogue.close()
        if drop:
            drop()
    return elapsed, summary.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--headers", type=Path, default=DEFAULT_HEADERS)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="hcdc-bench-"))
    try:
        folder = work / "raw"
        start = time.perf_counter()
        paths = generate(args.headers, folder, args.files)
        print(f"generated {len(paths)} files in {time.perf_counter() - start:.1f} s ({folder})")
        print(
            f"machine: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        )
        warm(paths)
        bare_loop(paths[:50])  # import/first-call costs out of the timing
        rows = []
        for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
            bare = bare_loop(paths)
            elapsed, summary = timed_ingest(folder, work, database, args.pg_admin_url, args.workers)
            assert summary["ingested"] == len(paths), summary
            rows.append(
                (database, len(paths) / bare, len(paths) / elapsed, bare / elapsed, summary["workers"])
            )
        print(f"\n{'database':<11} {'bare files/s':>13} {'ingest files/s':>15} {'ratio':>6} {'workers':>8}")
        for database, bare_rate, ingest_rate, ratio, workers in rows:
            print(f"{database:<11} {bare_rate:>13.0f} {ingest_rate:>15.0f} {ratio:>6.2f} {workers:>8}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
