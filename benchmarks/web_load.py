"""Load on the portal and the REST API (issue 11): product search and product pages on a large
PostgreSQL catalogue, served by ``hcdc serve``, driven from a second process. Not a test.

Builds (with ``benchmarks/access_filters.py``'s catalogue: N files, N/10 datasets and products
over 60 programmes with PIs, co-Is, survey groups and delegations) a data centre on a fresh
PostgreSQL database, gives datasets and products targets and nights and products provenance,
starts ``hcdc serve --workers W``, then a separate client process keeps C requests in flight for
D seconds, alternating: product search (``/api/v1/products?target=...``, anonymous and with a
PI's token) and product pages (``/products/{id}``, the HTML page, anonymous and as the PI).
Reports requests/s, latency percentiles and errors per kind, and the CPU time the server spent
per request (its worker processes and their PostgreSQL backends, from /proc): on a shared machine
the rate depends on what else runs, the CPU time per request much less.

Three load clients. ``--client wrk`` (the default when ``wrk`` is installed: written in C, it
leaves the cores to the server; one mixed run, latencies over all kinds) and ``--client httpx``
(Python asyncio; latencies per kind, but the client itself takes a large share of the CPU) keep
``--concurrency`` requests in flight: a closed loop, which measures the most the server gives,
not its latency at a given load (a slow reply delays the next request instead of meeting it).
``--client open --rate R`` offers R requests/s whatever the latency (Poisson arrivals, or
``--arrivals uniform``), on up to ``--concurrency`` kept-alive connections, and counts each
latency from the request's scheduled arrival, as wrk2 does: "holds 200 requests/s with p99 <
200 ms" is this run with ``--rate 200``.
``--keep DIR`` builds the data centre in DIR once and reuses it on later runs. ``--kinds`` draws
from some of the four kinds of request only (e.g. ``--kinds page-anon,page-pi``: the CPU per
product page).

    python benchmarks/web_load.py --url postgresql+psycopg://postgres@127.0.0.1/hcdc_web_bench \\
        --files 100000 --workers 2 --concurrency 16 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))


def _recreate_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    target = make_url(url)
    admin = target.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{target.database}"')
        conn.execute(f'CREATE DATABASE "{target.database}"')


def prepare(url: str, n_files: int, root: Path) -> dict:
    """The data centre, its catalogue, a PI's token and product ids to ask for."""
    from access_filters import build
    from sqlalchemy import func, insert, select, update

    from hcdc.archive import accounts
    from hcdc.archive.access import ANONYMOUS, AccessContext, load_principal, local_operator
    from hcdc.archive.db import init_data_centre
    from hcdc.archive.models import Dataset
    from hcdc.archive.pipeline_models import Product, ProvenanceEntry
    from hcdc.archive.search import Criteria, search_products

    _recreate_database(url)
    catalogue = init_data_centre(root, database_url=url)
    engine = catalogue.engine
    start = time.perf_counter()
    build(engine, n_files)
    with engine.begin() as conn:
        conn.execute(
            update(Dataset).values(target=func.concat("T", Dataset.id % 500), mode="DBI", setup="DB_H23")
        )
        conn.execute(update(Product).values(target=func.concat("T", Product.dataset_id % 500), level=2))
        ids = list(conn.scalars(select(Product.id)))
        record = {"recipe": "r", "recipe_version": "1", "parameters": {}, "inputs": [], "parents": []}
        for chunk in range(0, len(ids), 5000):
            conn.execute(
                insert(ProvenanceEntry),
                [
                    {"product_id": i, "record_id": f"rec{i}", "recipe": "r", "recipe_version": "1",
                     "parameters": {}, "record": {**record, "id": f"rec{i}"}}
                    for i in ids[chunk : chunk + 5000]
                ],
            )  # fmt: skip
        token = accounts.create_token(conn, local_operator(), "u0", days=1).secret
        pi = load_principal(conn, "u0")
        anonymous_clause = AccessContext(conn, ANONYMOUS).products_clause()
        pi_clause = AccessContext(conn, pi).products_clause()
        public_ids = [r["id"] for r in search_products(conn, Criteria(limit=500), anonymous_clause).rows]
        mine = Criteria(limit=500, programme="100.C-0000")  # u0 leads programme 100.C-0000
        pi_ids = [r["id"] for r in search_products(conn, mine, pi_clause).rows]
    with engine.connect() as conn:  # what autovacuum would have done on a live server
        # VACUUM too, not only ANALYZE: the UPDATEs above left a dead version of every product and
        # dataset row (seq scans read twice the pages) and the whole table in the GIN trigram
        # indexes' pending lists, which every target search then read (~150 pages; a search for
        # T123 spent 5 of its 7 ms there). A server whose autovacuum is off would be as slow.
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    catalogue.close()
    return {
        "build_s": round(time.perf_counter() - start, 1),
        "token": token,
        "public_ids": public_ids,
        "pi_ids": pi_ids or public_ids,
    }


async def _client(base: str, plan: dict, concurrency: int, duration: float) -> dict:
    import httpx

    rng = random.Random(3)
    results: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    lines = iter(_plan_lines(plan, rng, 10**6))

    def request() -> tuple[str, str, dict]:
        kind, url, token = next(lines).split()
        return kind, url, {"Authorization": f"Bearer {token}"} if token != "-" else {}

    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                kind, url, headers = request()
                t0 = time.perf_counter()
                try:
                    response = await client.get(url, headers=headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                results.setdefault(kind, []).append(time.perf_counter() - t0)
                if not ok:
                    errors[kind] = errors.get(kind, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return _latency_report(results, errors, elapsed)


async def _http_get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """One HTTP/1.1 GET on a kept-alive connection: sends ``request``, reads the whole response
    (Content-Length or chunked body) and returns its status code."""
    writer.write(request)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if not chunked:
        await reader.readexactly(length)
        return status
    while (size := int((await reader.readline()).split(b";")[0], 16)) > 0:
        await reader.readexactly(size + 2)
    await reader.readline()  # the blank line after the last chunk
    return status


async def _open_loop_client(
    port: int, plan: dict, rate: float, duration: float, connections: int, arrivals: str
) -> dict:
    """Constant offered load: requests *arrive* at ``rate`` per second (Poisson or evenly spaced)
    whatever the server's latency, as wrk2 does, and each latency counts from the request's
    scheduled arrival, so that a stalled server is charged for the requests that queue behind it
    (no "coordinated omission", which a closed loop like wrk's or the httpx client's has: there a
    slow reply delays the next request instead of being seen by it). Up to ``connections``
    kept-alive connections; a request that finds them all busy waits for one, and that wait
    counts. A bare asyncio HTTP/1.1 client (about 0.1 ms of CPU a request), so that the load
    process leaves the cores to the server."""
    rng = random.Random(3)
    lines = [line.split() for line in _plan_lines(plan, rng, max(1, int(rate * duration * 1.2) + 10))]
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    loop = asyncio.get_running_loop()
    results: dict[str, list[float]] = {}
    errors: dict[str, int] = {}

    async def one(scheduled: float, kind: str, path: str, token: str) -> None:
        reader, writer = await idle.get()
        auth = f"Authorization: Bearer {token}\r\n" if token != "-" else ""
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode()
        try:
            ok = await _http_get(reader, writer, request) == 200
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            ok = False
            writer.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        results.setdefault(kind, []).append(loop.time() - scheduled)
        if not ok:
            errors[kind] = errors.get(kind, 0) + 1
        idle.put_nowait((reader, writer))

    start = loop.time() + 0.05
    scheduled, tasks = start, []
    for kind, path, token in lines:
        if scheduled >= start + duration:
            break
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        tasks.append(asyncio.create_task(one(scheduled, kind, path, token)))
        scheduled += rng.expovariate(rate) if arrivals == "poisson" else 1.0 / rate
    await asyncio.gather(*tasks)
    elapsed = loop.time() - start
    return _latency_report(results, errors, elapsed, offered=len(tasks) / duration)


def _latency_report(results: dict[str, list[float]], errors: dict[str, int], elapsed: float, **extra) -> dict:
    """Requests, rate, p50, p99 and errors per kind of request and over all of them."""
    out = {"elapsed_s": elapsed, "kinds": {}, **extra}
    every = [t for values in results.values() for t in values]
    for kind, values in sorted(results.items()) + [("all", every)]:
        values = sorted(values)
        out["kinds"][kind] = {
            "requests": len(values),
            "rps": len(values) / elapsed,
            "p50_ms": 1e3 * statistics.median(values),
            "p99_ms": 1e3 * values[min(len(values) - 1, int(0.99 * len(values)))],
            "max_ms": 1e3 * values[-1],
            "errors": sum(errors.values()) if kind == "all" else errors.get(kind, 0),
        }
    return out


WRK_SCRIPT = """
-- requests drawn at random from the plan's list (one per line: kind, path, token or -)
local lines = {}
for line in io.lines(os.getenv("HCDC_WRK_PLAN")) do lines[#lines + 1] = line end
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
request = function()
  local kind, path, token = lines[math.random(#lines)]:match("(%S+) (%S+) (%S+)")
  local headers = {}
  if token ~= "-" then headers["Authorization"] = "Bearer " .. token end
  return wrk.format("GET", path, headers)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, '
    .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


KINDS = ("search-anon", "search-pi", "page-anon", "page-pi")


def _plan_lines(plan: dict, rng: random.Random, n: int) -> list[str]:
    """``n`` requests drawn evenly from the plan's kinds (``plan["kinds"]``, default :data:`KINDS`),
    one "kind path token-or-dash" line each."""
    lines = []
    kinds = list(plan.get("kinds") or KINDS)
    for _ in range(n):
        kind = rng.choice(kinds)
        if kind.startswith("search"):
            url = f"/api/v1/products?target=T{rng.randrange(500)}&limit=50"
        else:
            url = f"/products/{rng.choice(plan['public_ids' if kind == 'page-anon' else 'pi_ids'])}"
        lines.append(f"{kind} {url} {plan['token'] if kind.endswith('pi') else '-'}")
    return lines


def _wrk_plan(plan: dict, path: Path, n: int = 4000) -> None:
    """``n`` requests in the same mix as the httpx client, one per line for the Lua script."""
    path.write_text("\n".join(_plan_lines(plan, random.Random(3), n)) + "\n")


def _run_wrk(base: str, plan_file: Path, concurrency: int, duration: float, threads: int) -> dict:
    script = plan_file.with_suffix(".lua")
    script.write_text(WRK_SCRIPT)
    lines = plan_file.with_suffix(".txt")
    _wrk_plan(json.loads(plan_file.read_text()), lines)
    run = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{duration:.0f}s", "--timeout", "10s",
         "-s", str(script), base],
        env={**os.environ, "HCDC_WRK_PLAN": str(lines)}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    elapsed = summary["duration_us"] / 1e6
    errors = sum(summary["errors"].values())
    return {
        "elapsed_s": elapsed,
        "kinds": {
            "all (mixed)": {
                "requests": summary["requests"],
                "rps": summary["requests"] / elapsed,
                "p50_ms": summary["p50_us"] / 1e3,
                "p99_ms": summary["p99_us"] / 1e3,
                "max_ms": summary["max_us"] / 1e3,
                "errors": errors,
            }
        },
        "wrk": summary,
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time (s) of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # the server has ended
        return []


def _server_pids(server_pid: int, url: str, conn: Any = None) -> list[int]:
    """The server's processes (uvicorn's supervisor and workers) and the PostgreSQL backends
    connected to the benchmark's database (the server's pools: the client never connects);
    ``conn``: an open psycopg connection to ask on (else one is opened)."""
    import psycopg
    from sqlalchemy.engine import make_url

    children = _children(server_pid)
    target = make_url(url)
    if conn is None:
        dsn = target.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as own:
            return _server_pids(server_pid, url, own)
    backends = [
        r[0]
        for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (target.database,),
        )
    ]
    return [server_pid, *map(int, children), *backends]


def _cpu_of(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = _cpu_seconds(pid)
        except OSError:  # a backend that ended
            pass
    return out


class _CpuSampler(threading.Thread):
    """Reads the CPU time of the server's processes and PostgreSQL backends every 0.1 s during the
    run and keeps the last value of each: a backend that ends during the run (the pool closes
    its overflow connections) still counts, up to its last 0.1 s. Without it the server CPU of a
    pool that opens and closes connections was undercounted (rounds 1-6)."""

    def __init__(self, server_pid: int, url: str) -> None:
        super().__init__(daemon=True)
        self.server_pid, self.url = server_pid, url
        self.seen: dict[int, float] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        dsn = make_url(self.url).set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn, autocommit=True) as conn:  # one connection: no backend per sample
            while not self.halt.wait(0.1):
                self.seen.update(_cpu_of(_server_pids(self.server_pid, self.url, conn)))

    def stop(self) -> None:
        self.halt.set()
        self.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql+psycopg://postgres@127.0.0.1/hcdc_web_bench")
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="hcdc serve --workers")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    parser.add_argument("--port", type=int, default=18555)
    parser.add_argument(
        "--client",
        choices=("wrk", "httpx", "open"),
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator: wrk (C, light) and httpx (Python, per-kind latencies) keep --concurrency "
        "requests in flight (closed loop: the most the server gives); open offers --rate requests/s "
        "whatever the latency (open loop, as wrk2: the latency at that load)",
    )
    parser.add_argument("--rate", type=float, default=200.0, help="offered requests/s (--client open)")
    parser.add_argument("--arrivals", choices=("poisson", "uniform"), default="poisson", help="--client open")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="build the data centre here once, reuse it afterwards")
    parser.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help="the requests to draw from, comma-separated (default: all four, evenly): measure one "
        "kind's CPU per request with e.g. --kinds page-anon",
    )
    parser.add_argument("--plan", help=argparse.SUPPRESS)  # the httpx load process: its plan (JSON file)
    args = parser.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    if args.plan:
        plan = json.loads(Path(args.plan).read_text())
        if args.client == "open":
            run = _open_loop_client(
                args.port, plan, args.rate, args.duration, args.concurrency, args.arrivals
            )
        else:
            run = _client(base, plan, args.concurrency, args.duration)
        print(json.dumps(asyncio.run(run)))
        return
    root = args.keep or Path(tempfile.mkdtemp(prefix="hcdc-web-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    if args.keep and (root / "plan.json").exists():
        plan = json.loads((root / "plan.json").read_text())
        print(f"catalogue: reusing {root}", flush=True)
    else:
        plan = prepare(args.url, args.files, root / "dc")
        print(
            f"catalogue: {args.files} files, {args.files // 10} products; built in {plan['build_s']} s",
            flush=True,
        )
        (root / "plan.json").write_text(json.dumps(plan))
    kinds = args.kinds.split(",")
    if unknown := set(kinds) - set(KINDS):
        parser.error(f"unknown kinds {sorted(unknown)}: choose among {', '.join(KINDS)}")
    plan["kinds"] = kinds  # in the run's own plan file, read by the load process and _wrk_plan
    (root / "run-plan.json").write_text(json.dumps(plan))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    server = subprocess.Popen(
        [sys.executable, "-c", "from hcdc.cli import main; main()", "serve", "--root", str(root / "dc"),
         "--port", str(args.port), "--workers", str(args.workers)],
        env={**env, "UVICORN_LOG_LEVEL": "warning"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(base + "/health", timeout=2).close()
                break
            except OSError:
                time.sleep(0.5)
        # warm up: every worker opens its pool and compiles its queries before the clock starts
        if shutil.which("wrk"):
            _run_wrk(base, root / "run-plan.json", args.concurrency, 5, 1)
        pids = _server_pids(server.pid, args.url)
        cpu_before = _cpu_of(pids)
        load_start = os.getloadavg()
        sampler = _CpuSampler(server.pid, args.url)
        sampler.start()
        if args.client == "wrk":
            report = _run_wrk(base, root / "run-plan.json", args.concurrency, args.duration, args.wrk_threads)
        else:
            load = subprocess.run(
                [sys.executable, __file__, "--plan", str(root / "run-plan.json"), "--port", str(args.port),
                 "--concurrency", str(args.concurrency), "--duration", str(args.duration),
                 "--client", args.client, "--rate", str(args.rate), "--arrivals", args.arrivals],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            report = json.loads(load.stdout)
        sampler.stop()
        pids = _server_pids(server.pid, args.url)  # backends opened during the run count too
        cpu_after = {**sampler.seen, **_cpu_of(pids)}  # and those that ended during the run
        server_processes = {server.pid, *map(int, _children(server.pid))}  # uvicorn's, not PostgreSQL's
        load_end = os.getloadavg()
    finally:
        server.terminate()
        server.wait(30)
    cpu = sum(cpu_after[p] - cpu_before.get(p, 0.0) for p in cpu_after)
    cpu_python = sum(cpu_after[p] - cpu_before.get(p, 0.0) for p in cpu_after if p in server_processes)
    every = list(report["kinds"].values())[-1]
    if args.client == "open":
        load = (
            f"open loop, {report['offered']:.0f} requests/s offered ({args.arrivals} arrivals) on up to "
            f"{args.concurrency} connections"
        )
    else:
        load = f"{args.concurrency} requests in flight"
    print(
        f"hcdc serve --workers {args.workers}; client {args.client}, {load} "
        f"for {args.duration:.0f} s; load average {load_start[0]:.1f} before, {load_end[0]:.1f} after"
    )
    print("| kind | requests | requests/s | p50 ms | p99 ms | max ms | errors |")
    print("|---|---|---|---|---|---|---|")
    for kind, k in report["kinds"].items():
        print(
            f"| {kind} | {k['requests']} | {k['rps']:.0f} | {k['p50_ms']:.0f} | {k['p99_ms']:.0f} "
            f"| {k['max_ms']:.0f} | {k['errors']} |"
        )
    print(
        f"server CPU: {cpu:.1f} s for {every['requests']} requests = {1e3 * cpu / every['requests']:.1f} ms "
        f"per request (uvicorn workers + PostgreSQL backends) -> at most "
        f"{every['requests'] / cpu:.0f} requests/s per core; of which uvicorn workers "
        f"{1e3 * cpu_python / every['requests']:.1f} ms, PostgreSQL backends "
        f"{1e3 * (cpu - cpu_python) / every['requests']:.1f} ms"
    )


if __name__ == "__main__":
    main()
