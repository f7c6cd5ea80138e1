"""Model quality on the real Telco sample: our pipeline's model against the replaced system's, same run.

    .venv/bin/python bench/bench_model.py [--data ../shared/data/telco_customer_churn.csv] [--repeats 3]

Protocol (DESIGN.md): repeated stratified 5-fold cross-validation (5 x 3), out-of-fold predictions.
Our model is chosen inside each outer training fold by inner 3-fold CV (nested: the folds reported
here never inform the choice) among the pipeline's candidates, then fitted on the outer training
fold and scored on the held-out fold. The replaced system's model is a random forest with balanced
class weights on 7 columns (tenure, monthly and total charges, gender, senior citizen, contract).
ROC-AUC and Brier are per fold (15); calibration, revenue at risk and capture are per repetition
(each covers every customer once). Prints a Markdown table and writes bench/output/model.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold

from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.estimators import candidate_estimators
from churn_pipeline.logic.features import build_features, feature_matrix
from churn_pipeline.logic.ingest import read_snapshot
from churn_pipeline.logic.modeling import select_candidate

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "telco_customer_churn.csv"
REPLACED_COLUMNS = ["tenure_months", "monthly_charges", "total_charges", "is_male", "senior_citizen",
                    "contract_one_year", "contract_two_year"]
HORIZON = 12
TARGETS = {"roc_auc": (">=", 0.852), "brier": ("<=", 0.133), "predicted_to_actual": ("within", 0.03),
           "revenue_at_risk_ratio": ("within", 0.03), "capture_top10": (">=", 0.34)}


def replaced_system(seed: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=300, class_weight="balanced", random_state=seed, n_jobs=1)


def repetition_metrics(y: np.ndarray, p: np.ndarray, monthly: np.ndarray, tenure: np.ndarray) -> dict[str, float]:
    churned_revenue = (y * monthly).sum()
    order = np.argsort(-(p * monthly), kind="stable")

    def capture(share: float) -> float:
        top = order[: int(round(share * len(order)))]
        return float((y[top] * monthly[top]).sum() / churned_revenue)

    return {
        "predicted_to_actual": float(p.sum() / y.sum()),
        "revenue_at_risk": float((p * monthly * HORIZON).sum()),
        "realised_revenue": float((y * monthly * HORIZON).sum()),
        "revenue_at_risk_ratio": float((p * monthly).sum() / churned_revenue),
        "backward_revenue_at_risk": float((p * monthly * tenure).sum()),
        "capture_top10": capture(0.10),
        "capture_top20": capture(0.20),
    }


def run(data: Path, repeats: int, seed: int) -> str:
    started = time.perf_counter()
    clean, rejected = clean_snapshot(read_snapshot(data, "2024-01-01"))
    features = build_features(clean)
    X, y = feature_matrix(features), features["churned"].astype(bool).to_numpy(dtype="int64")
    monthly = features["monthly_charges"].to_numpy()
    tenure = features["tenure_months"].to_numpy()
    candidates = candidate_estimators(seed, n_jobs=1)
    models = ["selected (ours)", *candidates, "replaced system"]
    fold_scores = {m: {"roc_auc": [], "brier": []} for m in models}
    oof = {m: np.zeros((repeats, len(y))) for m in models}
    choices: list[str] = []
    splitter = RepeatedStratifiedKFold(n_splits=5, n_repeats=repeats, random_state=seed)
    for index, (train, test) in enumerate(splitter.split(X, y)):
        repetition = index // 5
        choice, _ = select_candidate(candidates, X.iloc[train], y[train], monthly[train], seed=seed)
        choices.append(choice)
        predictions = {}
        for name, prototype in candidates.items():
            predictions[name] = clone(prototype).fit(X.iloc[train], y[train]).predict_proba(X.iloc[test])[:, 1]
        predictions["selected (ours)"] = predictions[choice]
        baseline = replaced_system(seed + index).fit(X.iloc[train][REPLACED_COLUMNS], y[train])
        predictions["replaced system"] = baseline.predict_proba(X.iloc[test][REPLACED_COLUMNS])[:, 1]
        for name, p in predictions.items():
            oof[name][repetition, test] = p
            fold_scores[name]["roc_auc"].append(roc_auc_score(y[test], p))
            fold_scores[name]["brier"].append(brier_score_loss(y[test], p))
        print(f"fold {index + 1}/{5 * repeats}: chose {choice}, "
              f"ROC-AUC {fold_scores['selected (ours)']['roc_auc'][-1]:.4f}", flush=True)

    rows = []
    for name in models:
        per_rep = [repetition_metrics(y, oof[name][r], monthly, tenure) for r in range(repeats)]
        summary = {k: (np.mean(v), np.std(v)) for k, v in fold_scores[name].items()}
        summary.update({k: (np.mean([m[k] for m in per_rep]), np.std([m[k] for m in per_rep])) for k in per_rep[0]})
        rows.append((name, summary))
    return report(rows, data, len(y), len(rejected), repeats, choices, time.perf_counter() - started)


def _verdict(key: str, value: float) -> str:
    if key not in TARGETS:
        return ""
    kind, bound = TARGETS[key]
    ok = value >= bound if kind == ">=" else value <= bound if kind == "<=" else abs(value - 1) <= bound
    return "PASS" if ok else "MISS"


def report(rows, data: Path, n: int, rejected: int, repeats: int, choices: list[str], seconds: float) -> str:
    def cell(summary, key, fmt="{:.4f}"):
        mean, std = summary[key]
        return f"{fmt.format(mean)} ± {fmt.format(std)}"

    header = ("| model | ROC-AUC | Brier | Σp / actual | revenue at risk p·m·12 | realised churned·m·12 "
              "| top-10% capture | top-20% capture |")
    lines = [
        "# Model quality on the real Telco sample",
        "",
        f"`bench/bench_model.py`: {n:,} customers ({rejected} rejected) from `{data.name}`, "
        f"repeated stratified 5-fold x {repeats}, out-of-fold; mean ± spread (ROC-AUC, Brier over "
        f"{5 * repeats} folds; the rest over {repeats} repetitions). Run time {seconds:.0f} s.",
        "",
        header,
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in rows:
        lines.append(
            f"| {name} | {cell(s, 'roc_auc')} | {cell(s, 'brier')} | {cell(s, 'predicted_to_actual', '{:.3f}')} "
            f"| ${s['revenue_at_risk'][0]:,.0f} | ${s['realised_revenue'][0]:,.0f} "
            f"| {cell(s, 'capture_top10', '{:.3f}')} | {cell(s, 'capture_top20', '{:.3f}')} |"
        )
    ours = dict(rows)["selected (ours)"]
    replaced = dict(rows)["replaced system"]
    lines += ["", "Targets (DESIGN.md) for the selected model:", ""]
    for key, (kind, bound) in TARGETS.items():
        value = ours[key][0]
        target = f"{kind} {bound}" if kind != "within" else f"within ±{bound:.0%} of 1"
        lines.append(f"- {key}: {value:.4f} (target {target}): {_verdict(key, value)}")
    lines += [
        f"- vs replaced system: ROC-AUC {ours['roc_auc'][0] - replaced['roc_auc'][0]:+.4f}, "
        f"Brier {ours['brier'][0] - replaced['brier'][0]:+.4f}, top-10% capture "
        f"{ours['capture_top10'][0] / replaced['capture_top10'][0]:.2f}x",
        f"- the replaced system's backward-looking 'revenue at risk' (p·m·tenure): "
        f"${replaced['backward_revenue_at_risk'][0]:,.0f}",
        f"- choices of the nested selection over the {len(choices)} outer folds: "
        + ", ".join(f"{c} x{choices.count(c)}" for c in sorted(set(choices))),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"real Telco sample not found at {args.data} (pass --data)")
    text = run(args.data, args.repeats, args.seed)
    out = REPO / "bench" / "output"
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
