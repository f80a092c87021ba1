"""Time target-name substring searches with and without the trigram indexes (PostgreSQL, issue 11).

Builds the catalogue of ``access_filters.py`` (N files, N/10 datasets and products, 200 accounts,
60 programmes), names its targets (``HD <k>`` for 5 000 stars, so that a search for one star
matches ~0.02 % of the rows), then times the portal's searches (``hcdc.archive.search``, the same
calls as the web's search pages and ``GET /api/v1/{files,datasets,products}``) for one star, as
a PI and as an admin: first with migration ``0023_search_index``'s GIN trigram indexes on
``lower(target)``, then with them dropped (and the tables analysed again). Not part of the tests.

    python benchmarks/target_search.py --url postgresql+psycopg://postgres@127.0.0.1/bench --files 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

from access_filters import build  # the same catalogue as the access-filter benchmark
from sqlalchemy import text

from hcdc.archive.access import (
    load_principal,
    local_operator,
    visible_datasets_clause,
    visible_files_clause,
    visible_products_clause,
)
from hcdc.archive.db import make_engine, upgrade_schema
from hcdc.archive.search import Criteria, search_datasets, search_files, search_products

INDEXES = {
    "ix_files_target_trgm": "files",
    "ix_datasets_target_trgm": "datasets",
    "ix_products_target_trgm": "products",
}


def name_targets(engine, stars: int = 5000) -> None:  # noqa: ANN001
    with engine.begin() as conn:
        for table in INDEXES.values():
            conn.execute(text(f"UPDATE {table} SET target = 'HD ' || (10000 + id % {stars})"))
            conn.execute(text(f"ANALYZE {table}"))


def time_searches(engine, repeat: int) -> dict[str, float]:  # noqa: ANN001
    now = dt.datetime(2026, 12, 1)
    criteria = Criteria(target="hd 12345", limit=50)
    out: dict[str, float] = {}
    with engine.connect() as conn:
        for label, user in (("PI", load_principal(conn, "u3")), ("admin", local_operator())):
            files, products = visible_files_clause(user, now), visible_products_clause(user, now)
            datasets = visible_datasets_clause(user, now)
            for kind, call in (
                ("files", lambda: search_files(conn, criteria, files)),  # noqa: B023
                ("datasets", lambda: search_datasets(conn, criteria, datasets)),  # noqa: B023
                ("products", lambda: search_products(conn, criteria, products)),  # noqa: B023
            ):
                call()  # warm: plans, caches
                times = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    call()
                    times.append(time.perf_counter() - start)
                out[f"{kind} ({label})"] = statistics.median(times) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="an EMPTY PostgreSQL database")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    engine = make_engine(args.url)
    if engine.url.get_backend_name() != "postgresql":
        parser.error("the trigram indexes exist on PostgreSQL only")
    upgrade_schema(engine)
    build(engine, args.files)
    name_targets(engine)
    with_index = time_searches(engine, args.repeat)
    with engine.begin() as conn:
        for index, table in INDEXES.items():
            conn.execute(text(f"DROP INDEX {index}"))
            conn.execute(text(f"ANALYZE {table}"))
    without = time_searches(engine, args.repeat)
    print(f"{args.files} files, median of {args.repeat} (ms)")
    print("| search for 'hd 12345' | with trigram index | without | ratio |")
    print("|---|---|---|---|")
    for key, ms in with_index.items():
        print(f"| {key} | {ms:.1f} | {without[key]:.1f} | {without[key] / ms:.1f}x |")
    engine.dispose()


if __name__ == "__main__":
    main()
