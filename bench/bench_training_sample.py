"""What sampling the training rows costs in model quality, and what it saves in time.

    .venv/bin/python bench/bench_training_sample.py [--customers 1000000] [--rows 25000 50000 100000 200000]

At scale the nightly model trains on a stratified sample of the labelled customers
(``CHURN``-pipeline ``max_training_rows``, default 100,000). This trains the pipeline's own model
(nested selection, cross-fitting, all candidates) on samples of several sizes from one generated
snapshot and scores a held-out set of 200,000 other customers of the same snapshot, in one run:
ROC-AUC, Brier, Σp / actual churners and training seconds per sample size. Writes
bench/output/training_sample.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sklearn.metrics import brier_score_loss, roc_auc_score

from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.features import build_features
from churn_pipeline.logic.ingest import read_snapshot
from churn_pipeline.logic.modeling import train_churn_model
from churn_pipeline.synthetic import generate_customers, write_snapshot

REPO = Path(__file__).resolve().parents[1]
DAY = "2026-06-30"
HELD_OUT = 200_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--rows", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000])
    parser.add_argument("--candidates", default=None, help="comma-separated candidates (default: all)")
    args = parser.parse_args()

    out = REPO / "bench" / "output"
    out.mkdir(parents=True, exist_ok=True)
    path = write_snapshot(generate_customers(args.customers, seed=7), out / "training_sample_landing", DAY)
    clean, _ = clean_snapshot(read_snapshot(path, DAY))
    features = build_features(clean)
    features = features[features["churned"].notna()].sample(frac=1.0, random_state=1).reset_index(drop=True)
    test, pool = features.iloc[:HELD_OUT], features.iloc[HELD_OUT:]
    y = test["churned"].astype(bool).to_numpy()
    names = tuple(args.candidates.split(",")) if args.candidates else None

    lines = [f"# Training sample size ({args.customers:,} generated customers; held-out {HELD_OUT:,})", "",
             "| training rows | chosen model | seconds | held-out ROC-AUC | held-out Brier | Σp / actual |",
             "|---:|---|---:|---:|---:|---:|"]
    for rows in args.rows:
        started = time.perf_counter()
        model = train_churn_model(pool, DAY, max_training_rows=rows, candidate_names=names)
        seconds = time.perf_counter() - started
        p, _ = model.predict_proba(test)
        lines.append(f"| {model.training_rows:,} | {model.algorithm} | {seconds:.1f} | {roc_auc_score(y, p):.4f} | "
                     f"{brier_score_loss(y, p):.4f} | {p.sum() / y.sum():.3f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    (out / "training_sample.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
