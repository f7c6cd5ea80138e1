#!/usr/bin/env python
"""Write-path benchmark: TableStore (LOAD DATA / executemany) vs pandas ``to_sql``.

Run from the repository root::

    .venv/bin/python bench/bench_io_write.py                 # 1,000,000 rows, all three tables
    .venv/bin/python bench/bench_io_write.py --rows 20000    # smoke run, seconds

For each table (default: scored_customers, clean_customers - the one closest to 20 columns -
and customer_features; column counts follow churn_pipeline.schemas, 15 / 23 / 35 at the time of
writing) it builds a deterministic, seeded, vectorised frame that validates against the table's
pandera model, and times, against a fresh database on the MySQL/MariaDB server in
``CHURN_BENCH_MYSQL_URL`` (created and dropped here):

  (c) pandas ``frame.to_sql(name, engine, if_exists="replace", index=False)``, default settings:
      the baseline (1.00x);
  (a) ``TableStore(url).write({table: frame}, partition=day)``, bulk_method "auto" (LOAD DATA
      LOCAL INFILE) into an empty table;
  (d) the same write again: the nightly re-run, DELETE of the partition + insert in one transaction;
  (b) ``TableStore(url, bulk_method="executemany")`` into an empty table;

and the same on SQLite files (TableStore write and re-run vs to_sql into its own temp file).
Prints a table (best of ``--repeats``), writes it as Markdown to bench/output/io_write.md, and
reports peak RSS. ``--profile`` adds a breakdown of one LOAD DATA write (frame check, sort, text
conversion per column, TSV file, server side).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import platform
import resource
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # runnable from a checkout without an install
    sys.path.insert(0, str(REPO_ROOT))

from churn_pipeline import storage  # noqa: E402
from churn_pipeline.constants import (  # noqa: E402
    CONTRACTS,
    GENDERS,
    INTERNET_ADDONS,
    INTERNET_SERVICES,
    MULTIPLE_LINES,
    PAYMENT_METHODS,
)
from churn_pipeline.schemas import (  # noqa: E402
    RISK_TIERS,
    SCORE_SOURCES,
    TABLES,
    TENURE_BANDS,
)
from churn_pipeline.storage import TableStore, mysql_server_database  # noqa: E402

DEFAULT_SERVER_URL = "mysql+pymysql://root@127.0.0.1:3306"
DEFAULT_TABLES = ("scored_customers", "clean_customers", "customer_features")
TARGET_RATIO = 2.5  # LOAD DATA path vs to_sql, the acceptance target
OUTPUT = Path(__file__).resolve().parent / "output" / "io_write.md"

# ---- deterministic data ------------------------------------------------------------------------

_ADDONS = ("online_security", "online_backup", "device_protection", "tech_support",
           "streaming_tv", "streaming_movies")
_REASON_PHRASES = (
    "month-to-month contract", "tenure under 6 months", "tenure under a year", "fiber-optic internet",
    "pays by electronic check", "no online security", "no tech support", "paperless billing",
    "senior citizen", "no partner", "no dependents", "monthly bill of $89.85", "monthly bill of $104.20",
    "bill up 18% on its average", "bill up 7% on its average", "takes 6 services",
    "fiber internet without tech support or security", "only $74.40 billed to date",
    "month-to-month contract paid by electronic check", "no online backup",
)


def _customer_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unique Telco-style ids ("004711-QWERT"), in random order, built from byte arrays."""
    width = max(4, len(str(max(n - 1, 0))))
    number = rng.permutation(n).astype(np.int64)
    chars = np.empty((n, width + 6), dtype=np.uint8)
    for pos in range(width - 1, -1, -1):  # loop over digit positions, not rows
        chars[:, pos] = ord("0") + number % 10
        number //= 10
    chars[:, width] = ord("-")
    chars[:, width + 1:] = ord("A") + rng.integers(0, 26, (n, 5))
    return chars.view(f"S{width + 6}").ravel().astype(f"U{width + 6}").astype(object)


def _base(n: int, seed: int) -> dict[str, np.ndarray]:
    """Customer attributes shared by the three frames (vectorised, seeded)."""
    rng = np.random.default_rng(seed)
    internet = rng.choice(3, n, p=[0.34, 0.44, 0.22])  # DSL, Fiber optic, No
    has_net = internet != 2
    phone = (internet != 0) | (rng.random(n) < 0.72)
    tenure = rng.integers(0, 73, n)
    charges = np.round(rng.uniform(18.25, 118.75, n) * 20) / 20
    total = np.where(tenure > 0, np.round(charges * tenure * rng.uniform(0.85, 1.15, n), 2), 0.0)
    churned = pd.array(rng.random(n) < 0.265, dtype="boolean")
    churned[rng.random(n) < 0.01] = pd.NA  # a few unlabelled rows: exercises the NULL path
    return {
        "customer_id": _customer_ids(rng, n),
        "male": rng.random(n) < 0.505,
        "senior": rng.random(n) < 0.162,
        "partner": rng.random(n) < 0.48,
        "dependents": rng.random(n) < 0.30,
        "tenure": tenure,
        "phone": phone,
        "multi": phone & (rng.random(n) < 0.42),
        "internet": internet,
        "addons": has_net[:, None] & (rng.random((n, 6)) < 0.4),
        "contract": rng.choice(3, n, p=[0.55, 0.21, 0.24]),
        "paperless": rng.random(n) < 0.59,
        "payment": rng.choice(4, n, p=[0.34, 0.23, 0.22, 0.21]),
        "charges": charges,
        "total": total,
        "churned": churned,
        "probability": rng.beta(1.6, 3.5, n),
        "reason_pick": rng.integers(0, 20 * 19 * 18, n),
        "cross_fitted": rng.random(n) < 0.9,
    }


def _cat(values: tuple[str, ...], codes: np.ndarray) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(np.int8), categories=list(values))


def _tenure_band(tenure: np.ndarray) -> pd.Categorical:
    return _cat(TENURE_BANDS, np.searchsorted([6, 12, 24, 48], tenure, side="right"))


def _day_column(day: str, n: int) -> np.ndarray:
    return np.full(n, np.datetime64(day, "ns"))


def _in_schema_order(table: str, cols: dict) -> pd.DataFrame:
    """The columns in schema order. A numeric column added to the schema after this benchmark was
    written is filled with zeros (with a warning), so the benchmark keeps running as the schema grows."""
    spec = TABLES[table]
    n = len(next(iter(cols.values())))
    for name, column in spec.schema.columns.items():
        if name not in cols:
            kind = storage.column_kind(column)
            if kind not in ("float", "int"):
                raise SystemExit(f"bench: no generator for new {kind} column {table}.{name}; add one to {__file__}")
            print(f"bench: {table}.{name} is new in the schema; filled with zeros", file=sys.stderr)
            cols[name] = np.zeros(n, dtype=np.float64 if kind == "float" else np.int64)
    return pd.DataFrame({name: cols[name] for name in spec.columns})


def clean_customers_frame(b: dict, day: str) -> pd.DataFrame:
    n = len(b["tenure"])
    has_net = b["internet"] != 2
    cols = {
        "snapshot_date": _day_column(day, n),
        "customer_id": b["customer_id"],
        "gender": _cat(GENDERS, b["male"]),
        "senior_citizen": b["senior"],
        "partner": b["partner"],
        "dependents": b["dependents"],
        "tenure_months": b["tenure"].astype(np.int64),
        "phone_service": b["phone"],
        "multiple_lines": _cat(MULTIPLE_LINES, np.where(b["phone"], b["multi"], 2)),
        "internet_service": _cat(INTERNET_SERVICES, b["internet"]),
        **{name: _cat(INTERNET_ADDONS, np.where(has_net, b["addons"][:, i], 2)) for i, name in enumerate(_ADDONS)},
        "contract": _cat(CONTRACTS, b["contract"]),
        "paperless_billing": b["paperless"],
        "payment_method": _cat(PAYMENT_METHODS, b["payment"]),
        "monthly_charges": b["charges"],
        "total_charges": b["total"],
        "tenure_band": _tenure_band(b["tenure"]),
        "churned": b["churned"],
    }
    return _in_schema_order("clean_customers", cols)


def customer_features_frame(b: dict, day: str) -> pd.DataFrame:
    n = len(b["tenure"])
    tenure = b["tenure"].astype(np.float64)
    avg = np.where(tenure > 0, b["total"] / np.maximum(tenure, 1), b["charges"])
    has_net = b["internet"] != 2
    addons = b["addons"]

    def f(x):
        return np.asarray(x, dtype=np.float64)

    cols = {
        "snapshot_date": _day_column(day, n),
        "customer_id": b["customer_id"],
        "tenure_months": tenure,
        "monthly_charges": b["charges"],
        "total_charges": b["total"],
        "avg_monthly_billed": avg,
        "charge_increase_ratio": b["charges"] / avg,
        "log_tenure": np.log1p(tenure),
        "log_total_charges": np.log1p(b["total"]),
        "new_customer": f(tenure < 6),
        "month_to_month_tenure": np.where(b["contract"] == 0, tenure, 0.0),
        "service_count": f(b["phone"] + b["multi"] + has_net + addons.sum(axis=1)),
        "senior_citizen": f(b["senior"]),
        "is_male": f(b["male"]),
        "partner": f(b["partner"]),
        "dependents": f(b["dependents"]),
        "phone_service": f(b["phone"]),
        "multiple_lines": f(b["multi"]),
        "internet_dsl": f(b["internet"] == 0),
        "internet_fiber": f(b["internet"] == 1),
        **{name: f(addons[:, i]) for i, name in enumerate(_ADDONS)},
        "contract_one_year": f(b["contract"] == 1),
        "contract_two_year": f(b["contract"] == 2),
        "paperless_billing": f(b["paperless"]),
        "pay_electronic_check": f(b["payment"] == 0),
        "pay_mailed_check": f(b["payment"] == 1),
        "pay_automatic": f(b["payment"] >= 2),
        "month_to_month_echeck": f((b["contract"] == 0) & (b["payment"] == 0)),
        "fiber_without_support": f((b["internet"] == 1) & ~addons[:, 0] & ~addons[:, 3]),
        "churned": b["churned"],
    }
    return _in_schema_order("customer_features", cols)


def scored_customers_frame(b: dict, day: str) -> pd.DataFrame:
    n = len(b["tenure"])
    probability = b["probability"]
    loss = probability * b["charges"] * 12.0
    tier = np.searchsorted([0.3, 0.6], probability, side="right")
    # Reasons: every ordered triple of 20 phrases (6,840 strings, built once), picked per row.
    pool = np.array(["; ".join(t) for t in itertools.permutations(_REASON_PHRASES, 3)], dtype=object)
    frame = _in_schema_order("scored_customers", {
        "snapshot_date": _day_column(day, n),
        "customer_id": b["customer_id"],
        "churn_probability": probability,
        "risk_tier": _cat(RISK_TIERS, tier),
        "monthly_charges": b["charges"],
        "expected_revenue_loss": loss,
        "priority_rank": np.zeros(n, dtype=np.int64),
        "expected_contact_profit": probability * 0.3 * b["charges"] * 12.0 - 5.0,
        "contract": _cat(CONTRACTS, b["contract"]),
        "tenure_band": _tenure_band(b["tenure"]),
        "internet_service": _cat(INTERNET_SERVICES, b["internet"]),
        "payment_method": _cat(PAYMENT_METHODS, b["payment"]),
        "top_reasons": pool[b["reason_pick"]],
        "score_source": _cat(SCORE_SOURCES, (~b["cross_fitted"]).astype(np.int8)),
        "model_version": "3f9a1c0d5e7b2a64",
    })
    # Like score_customers: rows in call order (loss, then probability, then id), rank 1..n.
    order = np.lexsort((frame["customer_id"].to_numpy(), -probability, -loss))
    frame = frame.iloc[order].reset_index(drop=True)
    frame["priority_rank"] = np.arange(1, n + 1, dtype=np.int64)
    return frame[TABLES["scored_customers"].columns]


BUILDERS: dict[str, Callable[[dict, str], pd.DataFrame]] = {
    "scored_customers": scored_customers_frame,
    "clean_customers": clean_customers_frame,
    "customer_features": customer_features_frame,
}


def build_frames(tables: list[str], rows: int, day: str, seed: int) -> dict[str, pd.DataFrame]:
    base = _base(rows, seed)
    frames = {}
    for name in tables:
        frame = BUILDERS[name](base, day)
        TABLES[name].model.validate(frame.head(20_000))  # the frame really is what the asset writes
        frames[name] = frame
    return frames


# ---- measuring ---------------------------------------------------------------------------------


@dataclass
class Result:
    backend: str
    table: str
    method: str
    rows: int
    columns: int
    seconds: list[float] = field(default_factory=list)
    baseline: bool = False
    target: bool = False  # the row the >= TARGET_RATIO target applies to
    note: str = ""

    @property
    def best(self) -> float:
        return min(self.seconds)


class _FallbackWatcher(logging.Handler):
    """Notices TableStore falling back from LOAD DATA to INSERT (bulk_method auto)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.fell_back = False

    def emit(self, record):
        if "refused" in record.getMessage():
            self.fell_back = True


def _timed(fn: Callable[..., object], *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def _count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"SELECT COUNT(*) FROM {table}").scalar_one()


def _drop(engine: sa.Engine, table: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")


def _check_rows(engine: sa.Engine, table: str, expected: int, what: str) -> None:
    got = _count(engine, table)
    if got != expected:
        raise SystemExit(f"{what}: {table} holds {got} rows, expected {expected}")


def bench_backend(backend: str, url: str, baseline_url: str, frames: dict[str, pd.DataFrame],
                  day: str, repeats: int, watcher: _FallbackWatcher, progress, *,
                  rerun: bool = True, executemany: bool = True) -> list[Result]:
    """Times to_sql, TableStore write (+ re-run) and, on MySQL, TableStore executemany.

    ``rerun=False`` / ``executemany=False`` skip those two (bench_pipeline.py times only to_sql
    against the write into an empty table)."""
    mysql = backend == "mysql"
    engine = storage.get_engine(url)
    baseline_engine = sa.create_engine(baseline_url)  # to_sql with default settings
    results = []
    for name, frame in frames.items():
        rows, cols = len(frame), frame.shape[1]
        base_table = f"{name}_to_sql"
        r_sql = Result(backend, name, "pandas to_sql (baseline)", rows, cols, baseline=True)
        r_auto = Result(backend, name, "TableStore.write, LOAD DATA (auto)" if mysql
                        else "TableStore.write (executemany)", rows, cols, target=mysql)
        r_rerun = Result(backend, name, "TableStore.write re-run: replace partition", rows, cols,
                         note="DELETE day + insert, one transaction")
        r_many = Result(backend, name, 'TableStore.write, bulk_method="executemany"', rows, cols)
        for _ in range(repeats):
            _drop(baseline_engine, f"`{base_table}`" if mysql else f'"{base_table}"')
            progress(f"{backend} {name}: to_sql")
            r_sql.seconds.append(_timed(frame.to_sql, base_table, baseline_engine, if_exists="replace", index=False))
            _check_rows(baseline_engine, base_table, rows, "to_sql")
            _drop(baseline_engine, f"`{base_table}`" if mysql else f'"{base_table}"')

            _drop(engine, name)
            store = TableStore(url)
            watcher.fell_back = False
            progress(f"{backend} {name}: TableStore write ({'auto' if mysql else 'sqlite'})")
            r_auto.seconds.append(_timed(store.write, {name: frame}, partition=day))
            _check_rows(engine, name, rows, "TableStore write")
            if rerun:
                progress(f"{backend} {name}: TableStore re-run (replace partition)")
                r_rerun.seconds.append(_timed(store.write, {name: frame}, partition=day))
                _check_rows(engine, name, rows, "TableStore re-run")
            if mysql and watcher.fell_back:  # e.g. another session set GLOBAL local_infile = 0
                r_auto.note = r_rerun.note = "fell back to INSERT: LOAD DATA LOCAL refused"

            if mysql and executemany:
                _drop(engine, name)
                store = TableStore(url, bulk_method="executemany")
                progress(f"{backend} {name}: TableStore write (executemany)")
                r_many.seconds.append(_timed(store.write, {name: frame}, partition=day))
                _check_rows(engine, name, rows, "TableStore executemany")
            _drop(engine, name)
        results += [r_sql, r_auto] + ([r_many] if mysql and executemany else []) + ([r_rerun] if rerun else [])
    baseline_engine.dispose()
    return results


# ---- profiling the LOAD DATA path --------------------------------------------------------------


# Steps of TableStore's LOAD DATA write that the profile times, where storage.py has them:
# (label, owner, attribute). Older storage.py converted with _to_load_data_text, then to_csv.
_STEPS = (
    ("frame check", TableStore, "_check_frame"),
    ("sort by primary key", storage, "_primary_key_order"),
    ("text + TSV file", storage, "_write_load_data_file"),
    ("text conversion", storage, "_to_load_data_text"),
    ("to_csv", pd.DataFrame, "to_csv"),
)


@contextmanager
def _instrument(timings: dict[str, float]):
    """Wraps the steps of TableStore.write's LOAD DATA path with timers (restored afterwards)."""
    originals = [(label, owner, attr, getattr(owner, attr)) for label, owner, attr in _STEPS if hasattr(owner, attr)]

    def wrap(label, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings[label] = timings.get(label, 0.0) + time.perf_counter() - start
        return timed

    for label, owner, attr, fn in originals:
        setattr(owner, attr, wrap(label, fn))
    try:
        yield
    finally:
        for _, owner, attr, fn in originals:
            setattr(owner, attr, fn)


def _column_conversion_seconds(spec, frame: pd.DataFrame) -> list[tuple[float, str, str]]:
    """Seconds to turn each column into LOAD DATA text, with the storage.py at hand."""
    out = []
    for column in frame.columns:
        kind = storage.column_kind(spec.schema.columns[column])
        if hasattr(storage, "_load_data_column"):
            chunk_rows = getattr(storage, "_LOAD_DATA_CHUNK_ROWS", len(frame))
            values = frame[column]
            start = time.perf_counter()
            for first in range(0, len(frame), chunk_rows):
                storage._load_data_column(values.iloc[first:first + chunk_rows], kind)
            seconds = time.perf_counter() - start
        else:
            seconds = _timed(storage._to_load_data_text, spec, frame[[column]])
        out.append((seconds, column, kind))
    return out


def profile_load_data(url: str, frames: dict[str, pd.DataFrame], day: str, progress) -> list[str]:
    """Where the time of one LOAD DATA write (into an empty table) goes, as Markdown lines."""
    engine = storage.get_engine(url)
    lines = []
    for name, frame in frames.items():
        spec = TABLES[name]
        _drop(engine, name)
        store = TableStore(url)
        store.ensure_table(name)
        progress(f"profile {name}")
        timings: dict[str, float] = {}
        with _instrument(timings):
            total = _timed(store.write, {name: frame}, partition=day)
        _drop(engine, name)
        server = total - sum(timings.values())
        steps = " + ".join(f"{label} {seconds:.2f} s" for label, seconds in timings.items())
        lines.append(f"**{name}** ({len(frame):,} rows x {frame.shape[1]} cols): write {total:.2f} s = {steps} + "
                     f"server (DELETE, LOAD DATA, warnings, commit) {server:.2f} s")
        per_column = _column_conversion_seconds(spec, frame)
        by_kind: dict[str, float] = {}
        for seconds, _, kind in per_column:
            by_kind[kind] = by_kind.get(kind, 0.0) + seconds
        lines.append("  - conversion by kind: " + ", ".join(
            f"{kind} {seconds:.2f} s" for kind, seconds in sorted(by_kind.items(), key=lambda kv: -kv[1])))
        lines.append("  - slowest columns: " + ", ".join(
            f"{column} ({kind}) {seconds:.2f} s" for seconds, column, kind in sorted(per_column, reverse=True)[:5]))
    return lines


# ---- reporting ---------------------------------------------------------------------------------


def _table(results: list[Result], repeats: int) -> list[list[str]]:
    baselines = {(r.backend, r.table): r.best for r in results if r.baseline}
    rows = []
    for r in results:
        ratio = baselines[(r.backend, r.table)] / r.best
        target = ""
        if r.target:
            target = f">= {TARGET_RATIO:.1f}x: {'PASS' if ratio >= TARGET_RATIO else 'FAIL'}"
        seconds = f"{r.best:.2f}" if repeats == 1 else f"{r.best:.2f} (median {np.median(r.seconds):.2f})"
        rows.append([r.backend, f"{r.table} ({r.columns})", r.method, f"{r.rows:,}", seconds,
                     f"{r.rows / r.best:,.0f}", f"{ratio:.2f}x", target or r.note])
    return rows


HEADERS = ["db", "table (cols)", "method", "rows", "seconds", "rows/s", "vs to_sql", "target / note"]


def _plain(rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    right = {3, 4, 5, 6}

    def fmt(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(HEADERS), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def _markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |",
             "|" + "|".join("---:" if i in {3, 4, 5, 6} else "---" for i in range(len(HEADERS))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per table (default 1,000,000)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per method; the best is shown")
    parser.add_argument("--tables", default=",".join(DEFAULT_TABLES),
                        help=f"comma-separated tables among {', '.join(BUILDERS)} (default: all three)")
    parser.add_argument("--day", default="2024-06-30", help="snapshot day (the partition written)")
    parser.add_argument("--seed", type=int, default=20240630)
    parser.add_argument("--mysql-url", default=os.environ.get("CHURN_BENCH_MYSQL_URL", DEFAULT_SERVER_URL),
                        help="server URL without a database (env CHURN_BENCH_MYSQL_URL)")
    parser.add_argument("--no-mysql", action="store_true", help="skip the MySQL/MariaDB part")
    parser.add_argument("--no-sqlite", action="store_true", help="skip the SQLite part")
    parser.add_argument("--profile", action="store_true",
                        help="also break one LOAD DATA write down into check / conversion / to_csv / server")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"Markdown report (default {OUTPUT})")
    args = parser.parse_args(argv)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()]
    unknown = [t for t in tables if t not in BUILDERS]
    if unknown or args.rows < 1 or args.repeats < 1:
        parser.error(f"unknown tables {unknown}" if unknown else "--rows and --repeats must be >= 1")

    started = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s, peak RSS {_peak_rss_mb():6,.0f} MB] {message}",
              file=sys.stderr, flush=True)

    watcher = _FallbackWatcher()
    storage.log.addHandler(watcher)
    storage.log.setLevel(logging.INFO)

    progress(f"building {args.rows:,} rows for {', '.join(tables)}")
    start = time.perf_counter()
    frames = build_frames(tables, args.rows, args.day, args.seed)
    generation = time.perf_counter() - start
    rss_after_data = _peak_rss_mb()
    progress(f"frames built in {generation:.1f} s, "
             f"{sum(f.memory_usage(deep=True).sum() for f in frames.values()) / 1e6:,.0f} MB in memory")

    results: list[Result] = []
    profile: list[str] = []
    server_version = "not run"
    if not args.no_mysql:
        database = f"churn_bench_{uuid.uuid4().hex[:10]}"
        with mysql_server_database(args.mysql_url, database) as url:
            with storage.get_engine(url).connect() as conn:
                server_version = conn.exec_driver_sql("SELECT VERSION()").scalar_one()
            results += bench_backend("mysql", url, url, frames, args.day, args.repeats, watcher, progress)
            if args.profile:
                profile = profile_load_data(url, frames, args.day, progress)
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="churn_bench_") as tmp:
            url = f"sqlite:///{Path(tmp) / 'tablestore.db'}"
            baseline_url = f"sqlite:///{Path(tmp) / 'to_sql.db'}"
            results += bench_backend("sqlite", url, baseline_url, frames, args.day, args.repeats, watcher, progress)
            storage.dispose_engine(url)
    if not results:
        parser.error("nothing to run (--no-mysql and --no-sqlite)")

    rows = _table(results, args.repeats)
    peak = _peak_rss_mb()
    targets = [r for r in rows if r[-1].startswith(">=")]
    summary = [
        f"Rows per table: {args.rows:,}; repeats: {args.repeats} (best shown); partition {args.day}; "
        f"seed {args.seed}; total run {time.perf_counter() - started:,.0f} s",
        f"Server: {server_version} ({storage.mask_url(args.mysql_url) if not args.no_mysql else '-'}); "
        f"Python {platform.python_version()}, pandas {pd.__version__}, SQLAlchemy {sa.__version__}; "
        f"{os.cpu_count()} CPUs",
        f"Target: TableStore LOAD DATA path >= {TARGET_RATIO:.1f}x pandas to_sql: "
        + ("; ".join(f"{r[1]} {r[6]} {r[7].split(': ')[1]}" for r in targets) or "not measured"),
        f"Peak RSS: {peak:,.0f} MB (after building the frames: {rss_after_data:,.0f} MB)",
    ]
    print()
    print(_plain(rows))
    print()
    print("\n".join(summary))
    if profile:
        print("\nLOAD DATA write breakdown (one write into an empty table):")
        print("\n".join(profile))

    args.output.parent.mkdir(parents=True, exist_ok=True)
    markdown = [
        "# TableStore write benchmark", "",
        "`" + " ".join(["bench/bench_io_write.py", *(argv if argv is not None else sys.argv[1:])]) + "`", "",
        _markdown(rows), "",
        *(f"- {line}" for line in summary), "",
        "Ratios are what matter: absolute times move with the machine and its load. "
        "to_sql writes a table without primary key or indexes; TableStore's table has the schema's "
        "primary key, secondary indexes, NOT NULL and types.",
    ]
    if profile:
        markdown += ["", "## LOAD DATA write breakdown", "", *profile]
    args.output.write_text("\n".join(markdown) + "\n", encoding="utf-8")
    print(f"\nMarkdown written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
