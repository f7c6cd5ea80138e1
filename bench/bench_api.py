"""Benchmark of the API: single /predict latency and throughput under 16 concurrent clients, a batch of
1,000, and the dashboard's data calls, against uvicorn in a subprocess on 127.0.0.1.

    .venv/bin/python bench/bench_api.py                       # prepares bench/output/api_db_* once, then reuses it
    .venv/bin/python bench/bench_api.py --candidates lightgbm # a LightGBM champion instead
    .venv/bin/python bench/bench_api.py --profile             # also profile single and batch scoring in-process

The database is SQLite with a champion trained by the pipeline itself (``dg.materialize`` of the whole
graph on ``--customers`` synthetic customers). Targets (a 2-core machine): single /predict p99 <= 25 ms
at 16 concurrent clients, >= 400 requests/s, a batch of 1,000 <= 150 ms. The load generator runs on the
same machine and takes CPU from the server: the figures are conservative. Results are printed and
written to bench/output/api.md.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DAY = "2024-06-01"
TARGETS = {"p99_ms": 25.0, "throughput_rps": 400.0, "batch_ms": 150.0}


def prepare(directory: Path, customers: int, candidates: str) -> Path:
    """A SQLite database holding one materialized day (reused when already there)."""
    import dagster as dg
    import sqlalchemy as sa

    from churn_pipeline.assets import ALL_ASSETS
    from churn_pipeline.definitions import build_resources
    from churn_pipeline.settings import Settings
    from churn_pipeline.synthetic import generate_customers, write_snapshot

    database = directory / "churn.db"
    if database.is_file():
        engine = sa.create_engine(f"sqlite:///{database}")
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            ready = "business_kpis" in tables and conn.execute(sa.text("SELECT COUNT(*) FROM business_kpis")).scalar()
        engine.dispose()
        if ready:
            print(f"reusing {database}")
            return database
    settings = dataclasses.replace(
        Settings.from_env(), data_dir=directory, landing_dir=directory / "landing", model_dir=directory / "models",
        db_url=f"sqlite:///{database}", db_url_from_env=False, model_candidates=candidates)
    write_snapshot(generate_customers(customers, seed=7), settings.landing_dir, DAY)
    print(f"materializing {customers:,} customers with candidates {candidates} into {database} ...", flush=True)
    started = time.perf_counter()
    dg.materialize(ALL_ASSETS, partition_key=DAY, resources=build_resources(settings))
    print(f"  done in {time.perf_counter() - started:.0f} s")
    return database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(directory: Path, port: int, workers: int, key_digest: str) -> subprocess.Popen:
    env = {**os.environ, "CHURN_DB_URL": f"sqlite:///{directory / 'churn.db'}",
           "CHURN_MODEL_DIR": str(directory / "models"), "CHURN_DATA_DIR": str(directory),
           "CHURN_API_KEYS": key_digest, "CHURN_API_REQUIRE_AUTH": "true"}
    command = [sys.executable, "-m", "uvicorn", "churn_pipeline.api.app:app", "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "warning", "--no-access-log", "--workers", str(workers)]
    return subprocess.Popen(command, env=env, cwd=REPO)


def customers_json(n: int, seed: int, id_offset: int) -> list[dict]:
    from churn_pipeline.synthetic import generate_customers

    out = []
    frame = generate_customers(n, seed=seed, id_offset=id_offset).drop(columns="Churn").astype(str)
    for row in frame.to_dict("records"):
        total = row["TotalCharges"].strip()
        out.append({**row, "SeniorCitizen": int(row["SeniorCitizen"]), "tenure": int(row["tenure"]),
                    "MonthlyCharges": float(row["MonthlyCharges"]), "TotalCharges": float(total) if total else None})
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def wait_ready(session: aiohttp.ClientSession, base: str, process: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"uvicorn exited with {process.returncode}")
        try:
            async with session.get(f"{base}/health") as response:
                if response.status == 200:
                    return await response.json()
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the API did not become healthy within 120 s")


async def single_load(session, base: str, bodies: list[bytes], clients: int, requests: int, seconds: float):
    """``clients`` closed-loop clients, each sending its next request as soon as the previous answered."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    stop_at = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"}

    async def client() -> None:
        nonlocal errors
        for i in counter:
            if time.perf_counter() > stop_at:
                return
            started = time.perf_counter()
            async with session.post(f"{base}/predict", data=bodies[i % len(bodies)], headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started, errors


async def timed(session, method: str, url: str, runs: int, body: bytes | None = None) -> list[float]:
    out = []
    for _ in range(runs):
        started = time.perf_counter()
        async with session.request(method, url, data=body, headers={"Content-Type": "application/json"}) as response:
            await response.read()
            if response.status != 200:
                raise SystemExit(f"{method} {url}: HTTP {response.status}")
        out.append(time.perf_counter() - started)
    return out


async def run(args, directory: Path) -> list[tuple]:
    from churn_pipeline.api.security import new_key

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    key, key_digest = new_key()
    process = start_server(directory, port, args.workers, key_digest)
    rows = []
    try:
        connector = aiohttp.TCPConnector(limit=args.clients)
        async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {key}"}) as session:
            health = await wait_ready(session, base, process)
            serving = health["model"]["serving"]
            print(f"serving model {serving['version']} ({serving['algorithm']}, fast path: {serving['fast_path']})")
            bodies = [json.dumps(c).encode() for c in customers_json(2000, seed=3, id_offset=9_000_000)]
            await single_load(session, base, bodies, args.clients, 400, 30)  # warm-up
            latencies, elapsed, errors = await single_load(session, base, bodies, args.clients, args.requests,
                                                           args.seconds)
            ms = [x * 1000 for x in latencies]
            rps = len(latencies) / elapsed
            rows += [
                ("single /predict p50 (16 clients)", statistics.median(ms), "ms", None),
                ("single /predict p99 (16 clients)", percentile(ms, 0.99), "ms", TARGETS["p99_ms"]),
                ("single /predict throughput", rps, "req/s", TARGETS["throughput_rps"]),
            ]
            if errors:
                rows.append(("single /predict non-200 answers", errors, "", None))
            print(f"  {len(latencies):,} requests in {elapsed:.1f} s")

            batch = json.dumps({"customers": customers_json(1000, seed=4, id_offset=9_500_000)}).encode()
            await timed(session, "POST", f"{base}/predict/batch", 3, batch)
            batch_ms = [x * 1000 for x in await timed(session, "POST", f"{base}/predict/batch", args.batch_runs, batch)]
            rows += [("batch of 1,000 p50", statistics.median(batch_ms), "ms", TARGETS["batch_ms"]),
                     ("batch of 1,000 max", max(batch_ms), "ms", None)]

            for label, path in (("dashboard page /", "/"), ("GET /kpis", "/kpis?history_days=365"),
                                ("GET /segments", "/segments"), ("call list page (50)", "/customers/at-risk?limit=50"),
                                ("call list, High, page 20", "/customers/at-risk?tier=High&limit=50&offset=950"),
                                ("CSV of the High tier", "/customers/at-risk.csv?tier=High")):
                await timed(session, "GET", base + path, 2)
                rows.append((label + " p50", statistics.median([x * 1000 for x in await timed(
                    session, "GET", base + path, 10)]), "ms", None))
    finally:
        process.terminate()
        process.wait(timeout=30)
    return rows


def profile(directory: Path) -> str:
    """In-process profile of the scoring itself (no HTTP): 2,000 single customers and one batch of 1,000."""
    from churn_pipeline.api.model_holder import ModelHolder
    from churn_pipeline.api.schemas import TelcoCustomer

    holder = ModelHolder(f"sqlite:///{directory / 'churn.db'}", directory / "models", 12, 30)
    holder.refresh()
    scorer = holder.serving.scorer
    customers = [TelcoCustomer.model_validate(c) for c in customers_json(2000, seed=3, id_offset=9_000_000)]
    for customer in customers[:200]:
        scorer.score_one(customer)
    out = io.StringIO()
    for label, work in (("2,000 single predictions", lambda: [scorer.score_one(c) for c in customers]),
                        ("one batch of 1,000", lambda: scorer.score_customers(customers[:1000]))):
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.runcall(work)
        out.write(f"\n== {label}: {(time.perf_counter() - started) * 1000:.1f} ms under the profiler ==\n")
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(r"churn_pipeline|lightgbm|sklearn", 14)
    return out.getvalue()


def render(rows: list[tuple], args, load: str) -> str:
    lines = ["| measure | value | target | ratio (value/target) | |", "|---|---:|---:|---:|---|"]
    for label, value, unit, target in rows:
        if target is None:
            lines.append(f"| {label} | {value:,.1f} {unit} | | | |")
            continue
        ratio = value / target
        higher_is_better = unit == "req/s"
        met = ratio >= 1 if higher_is_better else ratio <= 1
        bound = ">=" if higher_is_better else "<="
        lines.append(f"| {label} | {value:,.1f} {unit} | {bound} {target:,.0f} {unit} | {ratio:.2f} | "
                     f"{'met' if met else 'MISSED'} |")
    header = (f"API benchmark: {args.customers:,} scored customers, candidates {args.candidates}, "
              f"{args.workers} uvicorn worker(s), {args.clients} clients; {os.cpu_count()} CPUs, "
              f"Python {platform.python_version()}; load average before the run: {load}")
    return header + "\n\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000, help="customers in the prepared snapshot")
    parser.add_argument("--candidates", default="logistic_regression,lightgbm",
                        help="model candidates of the prepared database's training")
    parser.add_argument("--db-dir", type=Path, help="default: bench/output/api_db_<customers>_<candidates>")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=8_000, help="at most this many single requests")
    parser.add_argument("--seconds", type=float, default=20.0, help="and at most this long")
    parser.add_argument("--batch-runs", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="also profile scoring in-process")
    args = parser.parse_args()
    name = f"api_db_{args.customers}_{args.candidates.replace(',', '-')}"
    directory = (args.db_dir or REPO / "bench" / "output" / name).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    prepare(directory, args.customers, args.candidates)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    report = render(asyncio.run(run(args, directory)), args, load)
    if args.profile:
        report += "\n```\n" + profile(directory) + "```\n"
    print("\n" + report)
    output = REPO / "bench" / "output" / "api.md"
    output.write_text(report)
    print(f"written to {output}")


if __name__ == "__main__":
    main()
