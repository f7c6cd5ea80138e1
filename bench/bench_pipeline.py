"""The whole nightly graph at scale: wall time, rows/s and peak memory per asset, database size.

    .venv/bin/python bench/bench_pipeline.py --customers 100000 1000000 [--db mysql|sqlite]

Each size runs in its own process (so peak RSS is that run's alone) against a fresh database on the
MariaDB at 127.0.0.1 (CHURN_BENCH_MYSQL_URL) or a SQLite file, on a snapshot made by the project's
generator (generation is not timed). Prints a Markdown table per size and the growth between the
first two sizes, and writes bench/output/pipeline.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER = os.environ.get("CHURN_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
DAY = "2026-06-30"


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_one(customers: int, db: str, candidates: str) -> dict:
    """One size, in this process: generate, materialize the job, measure."""
    import dagster as dg
    import sqlalchemy as sa

    from churn_pipeline.definitions import build_definitions
    from churn_pipeline.settings import Settings
    from churn_pipeline.storage import mysql_server_database
    from churn_pipeline.synthetic import generate_customers, write_snapshot

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        write_snapshot(generate_customers(customers, seed=7), tmp_path / "landing", DAY)
        rss_before = _peak_rss_mb()
        database = f"churn_bench_{uuid.uuid4().hex[:8]}"
        context = (mysql_server_database(SERVER, database) if db == "mysql"
                   else _sqlite(tmp_path / "bench.db"))
        with context as url:
            settings = dataclasses.replace(
                Settings.from_env(), data_dir=tmp_path, landing_dir=tmp_path / "landing",
                model_dir=tmp_path / "models", db_url=url, db_url_from_env=False, model_candidates=candidates,
            )
            job = build_definitions(settings).resolve_job_def("churn_nightly")
            started = time.perf_counter()
            result = job.execute_in_process(partition_key=DAY, instance=dg.DagsterInstance.ephemeral(),
                                            raise_on_error=True,
                                            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
            total = time.perf_counter() - started
            steps = {}
            for event in result.all_events:
                if event.event_type_value == "STEP_SUCCESS":
                    steps[event.step_key] = event.event_specific_data.duration_ms / 1000
            size_mb = None
            if db == "mysql":
                engine = sa.create_engine(url)
                with engine.connect() as conn:
                    size_mb = float(conn.execute(sa.text(
                        "SELECT SUM(data_length + index_length) / 1048576 FROM information_schema.TABLES "
                        "WHERE table_schema = :s"), {"s": database}).scalar())
                engine.dispose()
            else:
                size_mb = (tmp_path / "bench.db").stat().st_size / 1048576
    return {"customers": customers, "db": db, "total_s": total, "steps": steps,
            "peak_rss_mb": _peak_rss_mb(), "rss_before_run_mb": rss_before, "db_size_mb": size_mb}


class _sqlite:
    def __init__(self, path: Path):
        self.url = f"sqlite:///{path}"

    def __enter__(self) -> str:
        return self.url

    def __exit__(self, *exc) -> None:
        return None


def render(results: list[dict]) -> str:
    lines = ["# Whole graph at scale", ""]
    for r in results:
        n = r["customers"]
        lines += [f"## {n:,} customers on {r['db']}: {r['total_s']:.1f} s, peak RSS {r['peak_rss_mb']:,.0f} MB "
                  f"(process before the run: {r['rss_before_run_mb']:,.0f} MB), database {r['db_size_mb']:,.0f} MB",
                  "", "| asset | seconds | customers/s |", "|---|---:|---:|"]
        for step, seconds in r["steps"].items():
            lines.append(f"| {step} | {seconds:.1f} | {n / seconds:,.0f} |")
        lines.append("")
    if len(results) >= 2:
        a, b = results[0], results[1]
        scale = b["customers"] / a["customers"]
        lines.append(f"Growth {a['customers']:,} → {b['customers']:,} (x{scale:g} customers): time "
                     f"x{b['total_s'] / a['total_s']:.2f}, peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f} "
                     "(linear or better means ≤ the customer ratio).")
    lines += ["", "Targets (issue 8): 1M customers in ≤ 180 s and ≤ 3 GB peak; 5M in ≤ 900 s and ≤ 4 GB."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--db", choices=["mysql", "sqlite"], default="mysql")
    parser.add_argument("--candidates", default="logistic_regression,random_forest,lightgbm,blend")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.customers[0], args.db, args.candidates)))
        return
    results = []
    for n in args.customers:
        print(f"running {n:,} customers on {args.db} ...", flush=True)
        out = subprocess.run([sys.executable, __file__, "--one", "--customers", str(n), "--db", args.db,
                              "--candidates", args.candidates], capture_output=True, text=True, cwd=REPO)
        if out.returncode != 0:
            raise SystemExit(f"{n:,} customers failed:\n{out.stderr[-4000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(render(results[-1:]), flush=True)
    text = render(results)
    (REPO / "bench" / "output").mkdir(parents=True, exist_ok=True)
    (REPO / "bench" / "output" / "pipeline.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
