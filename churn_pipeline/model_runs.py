"""The ``model_runs`` registry: one row per training, the model card as JSON."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.schemas import ModelRuns
from churn_pipeline.storage import TableStore


def model_card(model: ChurnModel) -> dict:
    return {
        "algorithm": model.algorithm,
        "training_snapshot": model.training_snapshot,
        "training_rows": model.training_rows,
        "features": list(model.feature_names),
        "parameters": model.params,
        "metrics": model.metrics,
        "candidates": model.candidates,
        "tier_thresholds": {"medium": model.tier_thresholds[0], "high": model.tier_thresholds[1]},
        "data_hash": model.data_hash,
        "cross_fitting": {"folds": len(model.fold_estimators)},
    }


def model_run_row(model: ChurnModel, version: str, path: Path, digest: str, run_id: str,
                  trained_at: datetime) -> pd.DataFrame:
    metrics = model.metrics
    row = {
        "run_id": run_id,
        "model_version": version,
        "snapshot_date": pd.Timestamp(model.training_snapshot),
        "trained_at": pd.Timestamp(trained_at),
        "algorithm": model.algorithm,
        "training_rows": model.training_rows,
        "churn_rate": model.churn_rate,
        "roc_auc": metrics["roc_auc"],
        "roc_auc_std": metrics["roc_auc_std"],
        "pr_auc": metrics["pr_auc"],
        "brier": metrics["brier"],
        "log_loss": metrics["log_loss"],
        "predicted_to_actual": metrics["predicted_to_actual"],
        "tier_medium_threshold": model.tier_thresholds[0],
        "tier_high_threshold": model.tier_thresholds[1],
        "data_hash": model.data_hash,
        "artifact_path": str(path),
        "artifact_sha256": digest,
        "card": json.dumps(model_card(model), sort_keys=True),
    }
    frame = pd.DataFrame([row])
    for column in ("snapshot_date", "trained_at"):
        frame[column] = frame[column].astype("datetime64[ns]")
    frame = frame[list(ModelRuns.to_schema().columns)]
    return ModelRuns.validate(frame)


def latest_model_run(store: TableStore, snapshot_date: str | None = None) -> dict | None:
    """The newest registered training, for one snapshot or overall."""
    table = store.ensure_table("model_runs")
    query = sa.select(table).order_by(table.c.trained_at.desc()).limit(1)
    if snapshot_date is not None:
        query = query.where(table.c.snapshot_date == pd.Timestamp(snapshot_date).date())
    with store.engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row else None
