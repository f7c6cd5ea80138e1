"""Benchmark of small batches: ``POST /predict/batch`` of 1, 3, 30 and 300 customers, the old path
(``score_telco_frame``: the cleaning of raw text, then features and scoring) against the new one (clean
rows typed straight from the validated customers, then the same steps), in the same run.

    .venv/bin/python bench/bench_api_batch.py                         # logistic regression champion
    .venv/bin/python bench/bench_api_batch.py --candidate lightgbm
    .venv/bin/python bench/bench_api_batch.py --profile               # also cProfile 200 batches of 3, both paths

Two measurements, each the median of ``--repeat`` runs, old and new interleaved so that load from
other processes weighs on both alike:

- the scorer object (``Scorer.score_frame(customers_frame(...))`` against ``Scorer.score_customers``),
  no HTTP; the answers of both are checked to be identical, bit for bit;
- the application through FastAPI's TestClient (a SQLite registry holding the model), with
  ``direct_batches`` switched off and on, next to single ``POST /predict`` for the ratio.

No database server and no pipeline run are needed: the model is trained directly on synthetic customers.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SIZES = (1, 3, 30, 300)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def interleaved(old, new, repeat: int) -> tuple[float, float]:
    """Median milliseconds of ``old()`` and ``new()``, called alternately."""
    old_times, new_times = [], []
    for _ in range(repeat):
        for call, times in ((old, old_times), (new, new_times)):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
    return median_ms(old_times), median_ms(new_times)


def profile(label: str, call, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(200):
        call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    print(f"\n--- cProfile, 200 batches of 3 customers, {label} ---")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidate", default="logistic_regression",
                        choices=["logistic_regression", "lightgbm", "blend", "random_forest"])
    parser.add_argument("--repeat", type=int, default=60, help="timed calls per size and path (default 60)")
    parser.add_argument("--profile", action="store_true", help="also cProfile 200 batches of 3 on both paths")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)

    from churn_pipeline.api.schemas import TelcoCustomer
    from churn_pipeline.api.scorer import Scorer, customers_frame, identical, probe_customers
    from churn_pipeline_tests.test_api_support import (
        api_client,
        customers_json,
        quick_model,
        register_champion,
        settings_for,
    )

    print(f"training a {args.candidate} model on 900 synthetic customers ...", flush=True)
    model, features = quick_model(900, seed=21, snapshot="2024-02-01", candidate=args.candidate)
    model.version = f"bench-{args.candidate}"
    scorer = Scorer(model, {"algorithm": args.candidate}, horizon_months=12)
    scorer.self_check(probe_customers(model, TelcoCustomer.model_validate))
    print(f"fast single path: {scorer.fast_path}, direct batches: {scorer.direct_batches}")
    if not scorer.direct_batches:
        print("direct batches are off for this model: nothing to compare")
        return 1
    payloads = customers_json(max(SIZES), seed=4)
    for payload, trained_id in zip(payloads[::5], model.training_folds.index[:20]):  # some take fold models
        payload["customerID"] = str(trained_id)
    customers = [TelcoCustomer.model_validate(p) for p in payloads]

    print("\nscorer object (no HTTP): ms per batch, median of", args.repeat)
    print(f"{'customers':>9}  {'old':>8}  {'new':>8}  {'old/new':>7}  identical")
    for n in SIZES:
        batch = customers[:n]
        same = identical(scorer.score_customers(batch), scorer.score_frame(customers_frame(batch)))
        old, new = interleaved(lambda b=batch: scorer.score_frame(customers_frame(b)),
                               lambda b=batch: scorer.score_customers(b), args.repeat)
        print(f"{n:>9}  {old:>8.2f}  {new:>8.2f}  {old / new:>7.1f}  {same}")

    with tempfile.TemporaryDirectory(prefix="bench-api-batch-") as tmp:
        settings = settings_for(Path(tmp), f"sqlite:///{Path(tmp) / 'churn.db'}")
        register_champion(settings.db_url, settings.model_dir, model, features)
        with api_client(settings) as client:
            served = client.app.state.holder.serving.scorer
            assert served.direct_batches, "the served model should have direct batches"

            def post_batch(n: int, direct: bool) -> None:
                served.direct_batches = direct
                response = client.post("/predict/batch", json={"customers": payloads[:n]})
                assert response.status_code == 200, response.text

            single_times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                response = client.post("/predict", json=payloads[0])
                single_times.append(time.perf_counter() - started)
                assert response.status_code == 200, response.text
            single = median_ms(single_times)
            print(f"\nHTTP through TestClient: ms per request, median of {args.repeat}; "
                  f"single POST /predict: {single:.2f} ms")
            print(f"{'customers':>9}  {'old':>8}  {'new':>8}  {'old/new':>7}  {'old/single':>10}  {'new/single':>10}")
            for n in SIZES:
                old, new = interleaved(lambda n=n: post_batch(n, False), lambda n=n: post_batch(n, True), args.repeat)
                print(f"{n:>9}  {old:>8.2f}  {new:>8.2f}  {old / new:>7.1f}  {old / single:>10.1f}  "
                      f"{new / single:>10.1f}")
            served.direct_batches = True

    if args.profile:
        batch = customers[:3]
        profile("old path (score_telco_frame)", lambda: scorer.score_frame(customers_frame(batch)), 30)
        profile("new path (clean_frame + score_clean)", lambda: scorer.score_customers(batch), 30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
