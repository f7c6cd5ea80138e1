#!/usr/bin/env python
"""The plain-script baseline of the scale benchmark: what an analyst writes WITHOUT churn_pipeline.

    .venv/bin/python bench/baseline_script.py --landing-file data/landing/customers_2026-06-30.csv \\
        --db-url mysql+pymysql://root@127.0.0.1:3306/churn_script --day 2026-06-30

One pandas + scikit-learn script, top to bottom, no Dagster, no validation framework, no IO manager:

1. ``pd.read_csv`` of the landing file;
2. cleaning: ``TotalCharges`` coerced with ``pd.to_numeric(errors="coerce")`` (blank for new
   customers: 0), rows with a missing id, a negative tenure, an unknown contract or an unparsable
   number dropped, duplicate ids dropped (first kept), ``Churn`` mapped to 0/1;
3. features: a few derived numbers and ``pd.get_dummies(drop_first=True)`` of the categoricals;
4. a model: ``StandardScaler`` + ``LogisticRegression`` fitted on a stratified sample of at most
   100,000 labelled rows (no model selection, no calibration step, no cross-fitting);
5. scores for every active (not churned) customer: probability, risk tier, expected revenue loss
   (p x monthly charges x 12), call priority, and the three features pushing each score up most
   (linear contributions, the way an analyst explains a logistic regression);
6. KPIs: one portfolio row and one row per segment (contract, tenure band, internet service,
   payment method) with ``groupby``;
7. the tables ``raw_customers``, ``clean_customers``, ``customer_features``, ``scored_customers``,
   ``business_kpis``, ``segment_kpis`` written with pandas ``DataFrame.to_sql(name, engine,
   if_exists="replace", index=False)``: the DEFAULT usage (``method=None``: PyMySQL's executemany,
   which sends multi-row INSERTs; ``chunksize=None``), untyped heap tables without keys or indexes.

It prints its stage timings as one JSON line at the end (the benchmark reads it); the benchmark
measures wall time and peak memory from outside.
"""

from __future__ import annotations

import argparse
import json
import time

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

IMPORTED = time.perf_counter()

CATEGORICAL = ["gender", "Partner", "Dependents", "PhoneService", "MultipleLines", "InternetService",
               "OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport", "StreamingTV",
               "StreamingMovies", "Contract", "PaperlessBilling", "PaymentMethod"]
SEGMENTS = {"contract": "Contract", "tenure_band": "tenure_band", "internet_service": "InternetService",
            "payment_method": "PaymentMethod"}
HORIZON_MONTHS = 12
MAX_TRAINING_ROWS = 100_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landing-file", required=True)
    parser.add_argument("--db-url", required=True, help="SQLAlchemy URL of a database to write into")
    parser.add_argument("--day", required=True, help="snapshot date, YYYY-MM-DD")
    args = parser.parse_args()
    timings: dict[str, float] = {"imports": IMPORTED - T0}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        timings[name] = now - mark
        mark = now

    # 1. read
    raw = pd.read_csv(args.landing_file)
    lap("read_csv")

    # 2. clean
    df = raw.copy()
    df["TotalCharges"] = pd.to_numeric(df["TotalCharges"], errors="coerce")
    df["MonthlyCharges"] = pd.to_numeric(df["MonthlyCharges"], errors="coerce")
    df["tenure"] = pd.to_numeric(df["tenure"], errors="coerce")
    df.loc[df["TotalCharges"].isna() & (df["tenure"] == 0), "TotalCharges"] = 0.0
    df = df.dropna(subset=["customerID", "tenure", "MonthlyCharges", "TotalCharges"])
    df = df[(df["tenure"] >= 0) & df["Contract"].isin(["Month-to-month", "One year", "Two year"])
            & df["Churn"].isin(["Yes", "No"])]
    df = df.drop_duplicates("customerID", keep="first")
    df["tenure"] = df["tenure"].astype(int)
    df["churned"] = (df["Churn"] == "Yes").astype(int)
    df["tenure_band"] = pd.cut(df["tenure"], [-1, 5, 11, 23, 47, 1000],
                               labels=["0-5", "6-11", "12-23", "24-47", "48+"]).astype(str)
    df["snapshot_date"] = pd.Timestamp(args.day)
    clean = df.drop(columns=["Churn"]).reset_index(drop=True)
    lap("clean")

    # 3. features
    numeric = clean[["tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"]].astype(float)
    numeric["avg_monthly"] = np.where(clean["tenure"] > 0, clean["TotalCharges"] / clean["tenure"].clip(lower=1),
                                      clean["MonthlyCharges"])
    numeric["log_tenure"] = np.log1p(clean["tenure"])
    dummies = pd.get_dummies(clean[CATEGORICAL], drop_first=True, dtype=float)
    features = pd.concat([clean[["snapshot_date", "customerID"]], numeric, dummies, clean[["churned"]]], axis=1)
    feature_columns = list(numeric.columns) + list(dummies.columns)
    lap("features")

    # 4. train on a sample
    if len(features) > MAX_TRAINING_ROWS:
        sample, _ = train_test_split(features, train_size=MAX_TRAINING_ROWS, stratify=features["churned"],
                                     random_state=0)
    else:
        sample = features
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(sample[feature_columns].to_numpy(), sample["churned"].to_numpy())
    lap("train")

    # 5. score the active customers, with reasons
    active = clean["churned"].to_numpy() == 0
    x = features.loc[active, feature_columns].to_numpy()
    probability = model.predict_proba(x)[:, 1]
    scaler, logistic = model[0], model[1]
    contributions = scaler.transform(x) * logistic.coef_[0]
    top = np.argsort(-contributions, axis=1)[:, :3]
    names = np.asarray(feature_columns, dtype=object)
    reasons = ["; ".join(row) for row in names[top].tolist()]
    current = clean.loc[active]
    scored = pd.DataFrame({
        "snapshot_date": current["snapshot_date"].to_numpy(),
        "customer_id": current["customerID"].to_numpy(),
        "churn_probability": probability,
        "risk_tier": pd.cut(probability, [-0.01, 0.3, 0.6, 1.0], labels=["Low", "Medium", "High"]).astype(str),
        "monthly_charges": current["MonthlyCharges"].to_numpy(),
        "expected_revenue_loss": probability * current["MonthlyCharges"].to_numpy() * HORIZON_MONTHS,
        "contract": current["Contract"].to_numpy(),
        "tenure_band": current["tenure_band"].to_numpy(),
        "internet_service": current["InternetService"].to_numpy(),
        "payment_method": current["PaymentMethod"].to_numpy(),
        "top_reasons": reasons,
    })
    scored = scored.sort_values(["expected_revenue_loss", "churn_probability"], ascending=False, ignore_index=True)
    scored["priority_rank"] = np.arange(1, len(scored) + 1)
    lap("score")

    # 6. KPIs
    business = pd.DataFrame([{
        "snapshot_date": pd.Timestamp(args.day),
        "active_customers": len(scored),
        "predicted_churners": scored["churn_probability"].sum(),
        "actual_churn_rate": clean["churned"].mean(),
        "monthly_revenue": scored["monthly_charges"].sum(),
        "revenue_at_risk": scored["expected_revenue_loss"].sum(),
        "high_risk_customers": int((scored["risk_tier"] == "High").sum()),
    }])
    segments = []
    for segment_type, column in SEGMENTS.items():
        scored_column = {"Contract": "contract", "InternetService": "internet_service",
                         "PaymentMethod": "payment_method"}.get(column, column)
        by = scored.groupby(scored_column).agg(active_customers=("customer_id", "size"),
                                               predicted_churners=("churn_probability", "sum"),
                                               revenue_at_risk=("expected_revenue_loss", "sum"),
                                               average_probability=("churn_probability", "mean"))
        by["actual_churn_rate"] = clean.groupby(column)["churned"].mean()
        by = by.reset_index(names="segment_value")
        by.insert(0, "segment_type", segment_type)
        segments.append(by)
    segment_kpis = pd.concat(segments, ignore_index=True)
    segment_kpis.insert(0, "snapshot_date", pd.Timestamp(args.day))
    lap("kpis")

    # 7. write, pandas defaults
    engine = sa.create_engine(args.db_url)
    for name, frame in (("raw_customers", raw), ("clean_customers", clean), ("customer_features", features),
                        ("scored_customers", scored), ("business_kpis", business), ("segment_kpis", segment_kpis)):
        frame.to_sql(name, engine, if_exists="replace", index=False)
        lap(f"to_sql {name}")
    engine.dispose()

    rows = {"raw_customers": len(raw), "clean_customers": len(clean), "customer_features": len(features),
            "scored_customers": len(scored), "segment_kpis": len(segment_kpis)}
    print(json.dumps({"timings": timings, "total_s": time.perf_counter() - IMPORTED, "rows": rows,
                      "training_rows": len(sample)}))


if __name__ == "__main__":
    main()
