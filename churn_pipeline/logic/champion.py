"""Champion / challenger: a new model replaces the champion only if it is not worse beyond a tolerance.

Both are measured on the same labelled customers of the day: the challenger by its out-of-fold
probabilities, the champion by scoring them (cross-fitted when it was trained on these very labels,
so neither side is flattered). Neither may serve unless it clears the quality floor. The champion
is scored chunk by chunk (:func:`evaluate_on_chunks`): a day of millions of customers is never
needed in memory at once, only its probabilities, labels and monthly charges.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_pipeline.logic.modeling import ChurnModel, evaluate
from churn_pipeline.schemas import FEATURE_COLUMNS

DEFAULT_TOLERANCE = 0.005  # ROC-AUC a challenger may lose and still replace the champion
# What training and the champion's evaluation read of customer_features (not the snapshot date).
EVALUATION_COLUMNS = ["customer_id", *FEATURE_COLUMNS, "churned"]


@dataclass(frozen=True)
class QualityFloor:
    min_roc_auc: float = 0.70
    max_calibration_error: float = 0.10  # |Σp / actual churners − 1|

    def failures(self, metrics: dict[str, float]) -> list[str]:
        problems = []
        if metrics["roc_auc"] < self.min_roc_auc:
            problems.append(f"ROC-AUC {metrics['roc_auc']:.3f} < {self.min_roc_auc:.3f}")
        error = abs(metrics["predicted_to_actual"] - 1)
        if error > self.max_calibration_error:
            problems.append(f"Σp/actual {metrics['predicted_to_actual']:.3f} is off by more than "
                            f"{self.max_calibration_error:.0%}")
        return problems


@dataclass
class TrainingOutcome:
    """A trained challenger and what it means for serving."""

    challenger: ChurnModel
    promoted: bool
    champion_version: str | None  # the serving model after this decision; None with promoted = the challenger
    decision: str
    serving_metrics: dict[str, float] | None  # the serving model on today's labels; None if nothing can serve
    evaluation: pd.DataFrame | None = None  # the challenger's out-of-fold scores (see evaluation_frame)


def evaluation_frame(model: ChurnModel, features: pd.DataFrame) -> pd.DataFrame:
    """The challenger's out-of-fold probability, label and monthly charges per training customer.

    ``features`` holds at least the training customers' rows (e.g. only them: the training rows);
    only three of its columns are copied."""
    oof = model.oof_probabilities
    labelled = features[["customer_id", "churned", "monthly_charges"]].set_index("customer_id").loc[oof.index]
    return pd.DataFrame({
        "customer_id": oof.index.astype(str),
        "churn_probability": oof.to_numpy(dtype="float64"),
        "churned": labelled["churned"].astype(bool).to_numpy(),
        "monthly_charges": labelled["monthly_charges"].to_numpy(dtype="float64"),
    })


def evaluate_on_snapshot(model: ChurnModel, features: pd.DataFrame, snapshot_date: str) -> dict[str, float]:
    """Quality of ``model`` on the day's labelled customers, honestly (cross-fitted on its own training day)."""
    return evaluate_on_chunks(model, [features], snapshot_date)


def evaluate_on_chunks(model: ChurnModel, chunks: Iterable[pd.DataFrame], snapshot_date: str) -> dict[str, float]:
    """:func:`evaluate_on_snapshot` over a day given as chunks of feature rows (unlabelled rows are
    skipped): each chunk is scored and dropped, only p, labels and monthly charges are kept (three
    floats per labelled customer), and the metrics are computed once on all of them. The same rows
    in the same order give the same metrics however they are cut."""
    cross_fit = model.training_snapshot == snapshot_date
    p: list[np.ndarray] = []
    y: list[np.ndarray] = []
    monthly: list[np.ndarray] = []
    for chunk in chunks:
        labelled = chunk[chunk["churned"].notna().to_numpy()]
        if labelled.empty:
            continue
        p.append(model.predict_proba(labelled, cross_fit=cross_fit)[0])
        y.append(labelled["churned"].astype(bool).to_numpy(dtype="int64"))
        # a copy: a view would keep the chunk's whole block of feature columns alive until the end
        monthly.append(labelled["monthly_charges"].to_numpy(dtype="float64", copy=True))
    if not p:
        raise ValueError(f"snapshot {snapshot_date} has no labelled customers to evaluate the model on")
    probabilities = np.concatenate(p)
    del p  # each list of pieces is freed as soon as it is joined
    labels = np.concatenate(y)
    del y
    charges = np.concatenate(monthly)
    del monthly
    return evaluate(labels, probabilities, charges)


def decide(challenger: ChurnModel, champion: ChurnModel | None, champion_metrics: dict[str, float] | None,
           floor: QualityFloor, tolerance: float = DEFAULT_TOLERANCE) -> TrainingOutcome:
    challenger_problems = floor.failures(challenger.metrics)
    if champion is None:
        if challenger_problems:
            return TrainingOutcome(challenger, False, None,
                                   "no champion yet and the challenger fails the quality floor: "
                                   + "; ".join(challenger_problems), None)
        return TrainingOutcome(challenger, True, None, "first model: promoted", challenger.metrics)
    new, old = challenger.metrics["roc_auc"], champion_metrics["roc_auc"]
    if challenger_problems:
        reason = "challenger fails the quality floor: " + "; ".join(challenger_problems)
    elif new < old - tolerance:
        reason = f"challenger ROC-AUC {new:.4f} is below champion {old:.4f} by more than {tolerance}"
    else:
        return TrainingOutcome(challenger, True, None,
                               f"promoted: ROC-AUC {new:.4f} vs champion {champion.version} {old:.4f} "
                               f"(tolerance {tolerance})", challenger.metrics)
    champion_problems = floor.failures(champion_metrics)
    if champion_problems:
        return TrainingOutcome(challenger, False, None,
                               f"{reason}; champion {champion.version} also fails on this snapshot: "
                               + "; ".join(champion_problems), None)
    return TrainingOutcome(challenger, False, champion.version, f"{reason}; champion {champion.version} kept",
                           champion_metrics)

