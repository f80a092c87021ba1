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
import resource
import shutil
import statistics
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


def _cpu() -> float:
    """CPU seconds used so far by this process and its finished children (pool workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def bare_loop(paths: list[Path]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to read every primary header with astropy (nothing else)."""
    start, cpu = time.perf_counter(), _cpu()
    for path in paths:
        fits.getheader(path)
    return time.perf_counter() - start, _cpu() - cpu


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
) -> tuple[float, float, dict]:
    """(wall seconds, CPU seconds incl. workers, summary) of one ingest into a fresh catalogue."""
    drop = None
    url = None
    if database == "postgresql":
        url, drop = _pg_database(pg_admin)
    catalogue = init_data_centre(Path(tempfile.mkdtemp(prefix=f"dc-{database}-", dir=work)), database_url=url)
    try:
        start, cpu = time.perf_counter(), _cpu()
        summary = ingest(catalogue, [folder], workers=workers)
        elapsed, used = time.perf_counter() - start, _cpu() - cpu
    finally:
        catalogue.close()
        if drop:
            drop()
    return elapsed, used, summary.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--headers", type=Path, default=DEFAULT_HEADERS)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG)
    parser.add_argument("--rounds", type=int, default=2, help="bare loop + ingest pairs per database")
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
        n = len(paths)
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        print(
            f"\n{'database':<11} {'round':>5} {'bare files/s':>13} {'ingest files/s':>15} {'ratio':>6}"
            f" {'bare CPU ms/file':>17} {'ingest CPU ms/file':>19} {'workers':>8}"
        )
        ratios: dict[str, list[float]] = {}
        for database in [d.strip() for d in args.databases.split(",") if d.strip()]:
            for round_ in range(1, args.rounds + 1):
                bare_wall, bare_cpu = bare_loop(paths)
                wall, cpu, summary = timed_ingest(folder, work, database, args.pg_admin_url, args.workers)
                assert summary["ingested"] == n, summary
                ratios.setdefault(database, []).append(bare_wall / wall)
                print(
                    f"{database:<11} {round_:>5} {n / bare_wall:>13.0f} {n / wall:>15.0f}"
                    f" {bare_wall / wall:>6.2f}"
                    f" {1e3 * bare_cpu / n:>17.2f} {1e3 * cpu / n:>19.2f} {summary['workers']:>8}"
                )
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        for database, values in ratios.items():
            print(f"{database}: median ratio ingest/bare = {statistics.median(values):.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
