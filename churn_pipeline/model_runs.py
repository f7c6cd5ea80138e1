"""The model registry: hashed model files plus ``model_runs`` (one row per training) and
``model_evaluation`` (out-of-fold probabilities), and which model is the champion.

The champion is the newest promoted training. A model file is only loaded after its SHA-256 matches
the hash registered in ``model_runs``.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from churn_pipeline.logic.champion import TrainingOutcome
from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.model_store import ModelStoreError, load_model, save_model
from churn_pipeline.schemas import ModelEvaluation, ModelRuns
from churn_pipeline.storage import TableStore, WriteStep


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
    }


def model_run_row(outcome: TrainingOutcome, version: str, path: Path, digest: str, run_id: str,
                  trained_at: datetime) -> pd.DataFrame:
    model, metrics = outcome.challenger, outcome.challenger.metrics
    champion = version if outcome.promoted else outcome.champion_version
    row = {
        "run_id": run_id,
        "model_version": version,
        "snapshot_date": pd.Timestamp(model.training_snapshot),
        "trained_at": pd.Timestamp(trained_at),
        "algorithm": model.algorithm,
        "training_rows": model.training_rows,
        "churn_rate": model.churn_rate,
        **{k: metrics[k] for k in ("roc_auc", "roc_auc_std", "pr_auc", "brier", "log_loss", "predicted_to_actual")},
        "tier_medium_threshold": model.tier_thresholds[0],
        "tier_high_threshold": model.tier_thresholds[1],
        "data_hash": model.data_hash,
        "artifact_path": str(path),
        "artifact_sha256": digest,
        "promoted": outcome.promoted,
        "champion_version": champion,
        "decision": outcome.decision,
        "card": json.dumps({**model_card(model), "decision": outcome.decision}, sort_keys=True, default=str),
    }
    frame = pd.DataFrame([row])
    for column in ("snapshot_date", "trained_at"):
        frame[column] = frame[column].astype("datetime64[ns]")
    return ModelRuns.validate(frame[list(ModelRuns.to_schema().columns)])


def evaluation_rows(outcome: TrainingOutcome, version: str) -> pd.DataFrame:
    """``model_evaluation`` rows: the challenger's out-of-fold probability per training customer."""
    if outcome.evaluation is None:
        raise ValueError("the training outcome carries no out-of-fold evaluation")
    columns = list(ModelEvaluation.to_schema().columns)
    return ModelEvaluation.validate(outcome.evaluation.assign(model_version=version)[columns])


class ModelRegistry:
    """Registers trainings and loads the champion, over the output database and the model folder."""

    def __init__(self, db_url: str, model_dir: str | Path):
        self.store = TableStore(db_url)
        self.model_dir = Path(model_dir)

    def register(self, outcome: TrainingOutcome, run_id: str, trained_at: datetime) -> str:
        """Save the challenger's file; record the training and its out-of-fold scores in one transaction."""
        version, path, digest = save_model(outcome.challenger, self.model_dir)
        self.store.write_steps([
            WriteStep("model_evaluation", evaluation_rows(outcome, version),
                      "replace", partition=version),
            WriteStep("model_runs", model_run_row(outcome, version, path, digest, run_id, trained_at), "append"),
        ])
        outcome.challenger.version = version
        return version

    def _latest(self, where=None) -> dict | None:
        table = self.store.ensure_table("model_runs")
        query = sa.select(table).order_by(table.c.trained_at.desc()).limit(1)
        if where is not None:
            query = query.where(where(table))
        with self.store.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def latest_run(self, snapshot_date: str | None = None) -> dict | None:
        """The newest training, for one snapshot or overall."""
        if snapshot_date is None:
            return self._latest()
        return self._latest(lambda t: t.c.snapshot_date == pd.Timestamp(snapshot_date).date())

    def champion_version(self) -> str | None:
        row = self._latest(lambda t: t.c.promoted.is_(True))
        return row["model_version"] if row else None

    def load(self, version: str) -> ChurnModel:
        """The model file of ``version``, after checking it against its registered hash."""
        row = self._latest(lambda t: t.c.model_version == version)
        if row is None:
            raise ModelStoreError(f"model version {version} is not registered in model_runs")
        model = load_model(row["artifact_path"], row["artifact_sha256"])
        model.version = version
        return model

    def champion(self) -> ChurnModel | None:
        version = self.champion_version()
        return self.load(version) if version else None

    def serving_model_for(self, snapshot_date: str) -> ChurnModel:
        """The model that scores a snapshot: the champion named by that day's newest training."""
        run = self.latest_run(snapshot_date)
        if run is None:
            raise ModelStoreError(f"no training registered in model_runs for snapshot {snapshot_date}")
        if run["champion_version"] is None:
            raise ModelStoreError(f"no model may score snapshot {snapshot_date}: {run['decision']}")
        return self.load(run["champion_version"])
