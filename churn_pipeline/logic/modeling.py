"""Training the churn model: candidates compared by cross-validation, cross-fitted scores, a card.

Leakage rule (DESIGN.md): a customer is never scored by a model that saw that customer's label.
Training keeps the k fold models of the chosen candidate and which fold held each training customer
out; :meth:`ChurnModel.predict_proba` with ``cross_fit=True`` scores a training customer with the
fold model that never saw it, and anyone else with the final model fitted on all training rows.

No class re-weighting: the objective is plain log loss, so probabilities stay calibrated
(sum of p close to the number of churners); the card reports how close.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from churn_pipeline.logic.features import feature_matrix
from churn_pipeline.schemas import FEATURE_COLUMNS

DEFAULT_FOLDS = 5
DEFAULT_MAX_TRAINING_ROWS = 250_000
MIN_TRAINING_ROWS = 200
MIN_CLASS_ROWS = 20
DEFAULT_TIER_THRESHOLDS = (0.25, 0.50)


class TrainingError(ValueError):
    """The labelled data cannot train a trustworthy model."""


def candidate_estimators(seed: int = 0) -> dict[str, Any]:
    """The candidates, compared on the same folds. Parameters are deliberately conservative
    (shallow trees, strong regularisation): they generalise rather than fit one sample."""
    return {
        "logistic_regression": Pipeline(
            [("scale", StandardScaler()), ("model", LogisticRegression(C=0.5, max_iter=2000))]
        ),
        "lightgbm": lgb.LGBMClassifier(
            n_estimators=400, learning_rate=0.02, num_leaves=8, min_child_samples=50,
            subsample=0.8, subsample_freq=1, colsample_bytree=0.7, reg_lambda=5.0,
            random_state=seed, n_jobs=2, verbose=-1,
        ),
    }


@dataclass
class ChurnModel:
    """A trained model with everything needed to score, explain and audit it."""

    algorithm: str
    final_estimator: Any
    fold_estimators: list[Any]
    training_folds: pd.Series  # customer_id -> index of the fold model that held it out
    training_snapshot: str
    tier_thresholds: tuple[float, float]
    metrics: dict[str, float]
    candidates: dict[str, dict[str, float]]
    params: dict[str, Any]
    data_hash: str
    training_rows: int
    churn_rate: float
    feature_names: tuple[str, ...] = field(default=FEATURE_COLUMNS)
    version: str | None = None  # the content hash, set when the model is saved or loaded

    def predict_proba(self, features: pd.DataFrame, cross_fit: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Churn probabilities and, per row, the fold used (-1 = final model).

        With ``cross_fit``, customers this model was trained on are scored by their held-out fold model.
        """
        matrix = feature_matrix(features)
        folds = self._folds(features, cross_fit)
        probabilities = np.empty(len(matrix), dtype="float64")
        for fold in np.unique(folds):
            rows = folds == fold
            estimator = self.final_estimator if fold < 0 else self.fold_estimators[fold]
            probabilities[rows] = estimator.predict_proba(matrix[rows])[:, 1]
        if not np.all(np.isfinite(probabilities)):
            raise ValueError("the model produced non-finite probabilities; refusing to score")
        return probabilities, folds

    def contributions(self, features: pd.DataFrame, folds: np.ndarray) -> np.ndarray:
        """Per-feature contributions to each row's log-odds (rows × features), from the model that scored it."""
        matrix = feature_matrix(features)
        out = np.empty(matrix.shape, dtype="float64")
        for fold in np.unique(folds):
            rows = folds == fold
            estimator = self.final_estimator if fold < 0 else self.fold_estimators[fold]
            out[rows] = _contributions(estimator, matrix[rows])
        return out

    def _folds(self, features: pd.DataFrame, cross_fit: bool) -> np.ndarray:
        if not cross_fit:
            return np.full(len(features), -1, dtype="int64")
        return features["customer_id"].map(self.training_folds).fillna(-1).to_numpy(dtype="int64")

    def tier(self, probabilities: np.ndarray) -> pd.Categorical:
        medium, high = self.tier_thresholds
        labels = np.where(probabilities >= high, "High", np.where(probabilities >= medium, "Medium", "Low"))
        return pd.Categorical(labels, categories=["Low", "Medium", "High"])


def _contributions(estimator: Any, matrix: pd.DataFrame) -> np.ndarray:
    if isinstance(estimator, lgb.LGBMClassifier):
        return estimator.predict(matrix, pred_contrib=True)[:, :-1]  # last column is the bias
    if isinstance(estimator, Pipeline):
        scaler, model = estimator.named_steps["scale"], estimator.named_steps["model"]
        return scaler.transform(matrix) * model.coef_[0]  # relative to the average training customer
    raise TypeError(f"no contributions for {type(estimator).__name__}")


def data_hash(features: pd.DataFrame) -> str:
    """Hash of the training inputs and labels, for the model card."""
    hashed = pd.util.hash_pandas_object(features[["customer_id", *FEATURE_COLUMNS, "churned"]], index=False)
    return hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()


def evaluate(y: np.ndarray, p: np.ndarray, monthly_charges: np.ndarray) -> dict[str, float]:
    """Business and statistical quality of probabilities ``p`` against labels ``y``."""
    order = np.argsort(-(p * monthly_charges), kind="stable")
    churned_revenue = float((y * monthly_charges).sum())

    def capture(share: float) -> float:
        top = order[: max(1, int(round(share * len(order))))]
        return float((y[top] * monthly_charges[top]).sum() / churned_revenue) if churned_revenue else float("nan")

    top_decile = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15))),
        "predicted_to_actual": float(p.sum() / y.sum()),
        "lift_top_decile": float(y[top_decile].mean() / y.mean()),
        "revenue_capture_top10": capture(0.10),
        "revenue_capture_top20": capture(0.20),
    }


def train_churn_model(
    features: pd.DataFrame,
    snapshot_date: str,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    max_training_rows: int = DEFAULT_MAX_TRAINING_ROWS,
    tier_thresholds: tuple[float, float] = DEFAULT_TIER_THRESHOLDS,
    candidates: dict[str, Any] | None = None,
) -> ChurnModel:
    """Compare candidates on stratified folds, keep the best by mean ROC-AUC with its fold models."""
    labelled = features[features["churned"].notna()]
    if len(labelled) > max_training_rows:
        labelled = labelled.groupby("churned", group_keys=False, observed=True).sample(
            frac=max_training_rows / len(labelled), random_state=seed
        )
    labelled = labelled.sort_values("customer_id", kind="stable").reset_index(drop=True)
    y = labelled["churned"].astype(bool).to_numpy(dtype="int64")
    positives = int(y.sum())
    if len(labelled) < MIN_TRAINING_ROWS or min(positives, len(y) - positives) < MIN_CLASS_ROWS:
        raise TrainingError(
            f"snapshot {snapshot_date}: {len(labelled)} labelled customers ({positives} churned); "
            f"need at least {MIN_TRAINING_ROWS} with {MIN_CLASS_ROWS} of each class to train"
        )
    if not 0 < tier_thresholds[0] < tier_thresholds[1] < 1:
        raise ValueError(f"tier thresholds must satisfy 0 < medium < high < 1, got {tier_thresholds}")
    matrix = feature_matrix(labelled)
    monthly = labelled["monthly_charges"].to_numpy(dtype="float64")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(matrix, y))
    fold_of = np.empty(len(y), dtype="int64")
    for k, (_, test) in enumerate(splits):
        fold_of[test] = k

    results: dict[str, dict[str, Any]] = {}
    for name, prototype in (candidates or candidate_estimators(seed)).items():
        oof = np.empty(len(y), dtype="float64")
        fold_models, fold_auc = [], []
        for train, test in splits:
            model = clone(prototype).fit(matrix.iloc[train], y[train])
            oof[test] = model.predict_proba(matrix.iloc[test])[:, 1]
            fold_auc.append(roc_auc_score(y[test], oof[test]))
            fold_models.append(model)
        metrics = evaluate(y, oof, monthly)
        metrics.update(roc_auc=float(np.mean(fold_auc)), roc_auc_std=float(np.std(fold_auc)))
        results[name] = {"metrics": metrics, "fold_models": fold_models, "prototype": prototype}

    best = max(results, key=lambda name: results[name]["metrics"]["roc_auc"])
    chosen = results[best]
    final = clone(chosen["prototype"]).fit(matrix, y)
    return ChurnModel(
        algorithm=best,
        final_estimator=final,
        fold_estimators=chosen["fold_models"],
        training_folds=pd.Series(fold_of, index=labelled["customer_id"].to_numpy()),
        training_snapshot=snapshot_date,
        tier_thresholds=tuple(float(t) for t in tier_thresholds),
        metrics=chosen["metrics"],
        candidates={name: result["metrics"] for name, result in results.items()},
        params={k: _plain(v) for k, v in chosen["prototype"].get_params(deep=False).items()
                if not isinstance(v, list)},
        data_hash=data_hash(labelled),
        training_rows=len(y),
        churn_rate=float(y.mean()),
    )


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)
