"""Training the churn model: nested model selection, cross-fitted scores, metrics for the card.

Which labelled customers train is decided by :func:`training_sample` from their ids and labels only,
so a day held in memory (:func:`train_churn_model` on the whole frame) and a day streamed from the
database in chunks (:func:`training_rows_from_chunks`, never the whole partition at once) train on
the same customers and give the same model.

Leakage rule (DESIGN.md): a customer is never scored by a model that saw that customer's label.
Training keeps the k outer fold models and which fold held each training customer out;
:meth:`ChurnModel.predict_proba` with ``cross_fit=True`` scores a training customer with the fold
model that never saw it, and anyone else with the final model fitted on all training rows.

No class re-weighting: the candidates optimise log loss (the forest is sigmoid-calibrated), so
probabilities stay calibrated (sum of p close to the number of churners); the card reports how close.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from churn_pipeline.logic.estimators import BlendClassifier, candidate_estimators, contributions
from churn_pipeline.logic.features import feature_matrix
from churn_pipeline.schemas import FEATURE_COLUMNS

DEFAULT_FOLDS = 5
DEFAULT_MAX_TRAINING_ROWS = 100_000
MIN_TRAINING_ROWS = 200
MIN_CLASS_ROWS = 20
DEFAULT_TIER_THRESHOLDS = (0.25, 0.50)
DEFAULT_SELECTION_ROWS = 10_000
INNER_FOLDS = 3
PARALLEL_TRAINING_ROWS = 100_000


class TrainingError(ValueError):
    """The labelled data cannot train a trustworthy model."""


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
    oof_probabilities: pd.Series | None = None  # customer_id -> out-of-fold p (model_evaluation)
    version: str | None = None  # the content hash, set when the model is saved or loaded

    def __getstate__(self) -> dict:
        # The version is the hash of the saved content, so it is never part of that content.
        return {**self.__dict__, "version": None}

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
            out[rows] = contributions(estimator, matrix[rows])
        return out

    def _folds(self, features: pd.DataFrame, cross_fit: bool) -> np.ndarray:
        if not cross_fit:
            return np.full(len(features), -1, dtype="int64")
        return features["customer_id"].map(self.training_folds).fillna(-1).to_numpy(dtype="int64")

    def tier(self, probabilities: np.ndarray) -> pd.Categorical:
        medium, high = self.tier_thresholds
        labels = np.where(probabilities >= high, "High", np.where(probabilities >= medium, "Medium", "Low"))
        return pd.Categorical(labels, categories=["Low", "Medium", "High"])


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


def _inner_oof(candidates: dict[str, Any], X: pd.DataFrame, y: np.ndarray, folds: int, seed: int) -> dict:
    """Out-of-fold probabilities of every candidate on inner folds of ``X`` (a blend reuses its members')."""
    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + 1).split(X, y))
    oof: dict[str, np.ndarray] = {}
    blends = {n: c for n, c in candidates.items() if isinstance(c, BlendClassifier)}
    for name, prototype in candidates.items():
        if name in blends and all(member in candidates for member, _ in prototype.members):
            continue
        oof[name] = np.empty(len(y))
        for train, test in splits:
            oof[name][test] = clone(prototype).fit(X.iloc[train], y[train]).predict_proba(X.iloc[test])[:, 1]
    for name, blend in blends.items():
        if name not in oof:
            oof[name] = np.mean([oof[member] for member, _ in blend.members], axis=0)
    return oof


def select_candidate(candidates: dict[str, Any], X: pd.DataFrame, y: np.ndarray, monthly: np.ndarray,
                     folds: int = INNER_FOLDS, seed: int = 0) -> tuple[str, dict[str, dict[str, float]]]:
    """The candidate with the best inner-cross-validated ROC-AUC on these rows, and every candidate's scores."""
    scores = {name: evaluate(y, p, monthly) for name, p in _inner_oof(candidates, X, y, folds, seed).items()}
    best = max(scores, key=lambda name: (scores[name]["roc_auc"], -scores[name]["brier"]))
    return best, scores


def train_churn_model(
    features: pd.DataFrame,
    snapshot_date: str,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    max_training_rows: int = DEFAULT_MAX_TRAINING_ROWS,
    selection_rows: int = DEFAULT_SELECTION_ROWS,
    tier_thresholds: tuple[float, float] = DEFAULT_TIER_THRESHOLDS,
    candidates: dict[str, Any] | None = None,
    candidate_names: tuple[str, ...] | None = None,
) -> ChurnModel:
    """Cross-fitted training with nested model selection among ``candidates`` (default: the
    standard candidates named by ``candidate_names``, all of them if None).

    Each outer fold chooses its candidate by inner cross-validation on its own training rows only,
    so the reported out-of-fold metrics never come from folds that informed the choice. Above
    ``selection_rows`` labelled rows the choice is made once, on a stratified sample of that size
    (the optimism of one choice among four is negligible at that size, and it keeps training linear).

    The training rows are the labelled rows of the customers :func:`training_sample` picks (all of
    them up to ``max_training_rows``), in customer order: rows already reduced to that sample (see
    :func:`training_rows_from_chunks`) train exactly the model the whole frame trains.
    """
    # Only the chosen rows are copied: a day of millions of customers handed over in memory is not.
    chosen = training_sample(features[["customer_id", "churned"]], max_training_rows, seed)
    keep = features["churned"].notna().to_numpy()
    if len(chosen) < keep.sum():
        keep &= features["customer_id"].isin(chosen).to_numpy()
    labelled = features[keep].sort_values("customer_id", kind="stable").reset_index(drop=True)
    y = labelled["churned"].astype(bool).to_numpy(dtype="int64")
    positives = int(y.sum())
    if len(labelled) < MIN_TRAINING_ROWS or min(positives, len(y) - positives) < MIN_CLASS_ROWS:
        raise TrainingError(
            f"snapshot {snapshot_date}: {len(labelled)} labelled customers ({positives} churned); "
            f"need at least {MIN_TRAINING_ROWS} with {MIN_CLASS_ROWS} of each class to train"
        )
    if not 0 < tier_thresholds[0] < tier_thresholds[1] < 1:
        raise ValueError(f"tier thresholds must satisfy 0 < medium < high < 1, got {tier_thresholds}")
    # Threads only pay off on large data; on small data OpenMP spin-waiting makes LightGBM 10x slower.
    if candidates is None:
        standard = candidate_estimators(seed, n_jobs=1 if len(labelled) < PARALLEL_TRAINING_ROWS else 2)
        candidates = {name: standard[name] for name in (candidate_names or standard)}
    matrix = feature_matrix(labelled)
    monthly = labelled["monthly_charges"].to_numpy(dtype="float64")

    nested = len(labelled) <= selection_rows
    if not nested:
        sample = _stratified_sample(labelled.assign(_row=np.arange(len(labelled))), selection_rows, seed)["_row"]
        global_choice, selection_scores = select_candidate(candidates, matrix.iloc[sample], y[sample],
                                                           monthly[sample], seed=seed)

    splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(matrix, y))
    oof = np.empty(len(y), dtype="float64")
    fold_of = np.empty(len(y), dtype="int64")
    fold_models, fold_choices, fold_auc = [], [], []
    for k, (train, test) in enumerate(splits):
        choice = select_candidate(candidates, matrix.iloc[train], y[train], monthly[train], seed=seed)[0] \
            if nested else global_choice
        model = clone(candidates[choice]).fit(matrix.iloc[train], y[train])
        oof[test] = model.predict_proba(matrix.iloc[test])[:, 1]
        fold_of[test] = k
        fold_auc.append(roc_auc_score(y[test], oof[test]))
        fold_models.append(model)
        fold_choices.append(choice)
    if nested:
        global_choice, selection_scores = select_candidate(candidates, matrix, y, monthly, seed=seed)
    final = clone(candidates[global_choice]).fit(matrix, y)

    metrics = evaluate(y, oof, monthly)
    metrics.update(roc_auc=float(np.mean(fold_auc)), roc_auc_std=float(np.std(fold_auc)))
    return ChurnModel(
        algorithm=global_choice,
        final_estimator=final,
        fold_estimators=fold_models,
        training_folds=pd.Series(fold_of, index=labelled["customer_id"].to_numpy()),
        training_snapshot=snapshot_date,
        tier_thresholds=tuple(float(t) for t in tier_thresholds),
        metrics=metrics,
        candidates=selection_scores,
        params={"fold_algorithms": fold_choices, "nested_selection": nested, "folds": folds,
                "inner_folds": INNER_FOLDS, "seed": seed,
                **{k: _plain(v) for k, v in candidates[global_choice].get_params(deep=False).items()
                   if not isinstance(v, (list, tuple))}},
        data_hash=data_hash(labelled),
        training_rows=len(y),
        churn_rate=float(y.mean()),
        oof_probabilities=pd.Series(oof, index=labelled["customer_id"].to_numpy()),
    )


def training_sample(ids_and_labels: pd.DataFrame, max_rows: int = DEFAULT_MAX_TRAINING_ROWS,
                    seed: int = 0) -> np.ndarray:
    """The ids of the customers that train the model, in ``customer_id`` order.

    ``ids_and_labels`` holds ``customer_id`` (unique) and ``churned``; unlabelled rows are ignored.
    Every labelled customer trains, or, above ``max_rows``, a sample stratified by label. The rows are
    put in customer order before sampling, so the same customers and labels give the same sample
    whatever order they arrived in (from the database, or handed over in memory) and whatever other
    columns came with them.
    """
    labelled = ids_and_labels.loc[ids_and_labels["churned"].notna().to_numpy(), ["customer_id", "churned"]]
    labelled = labelled.sort_values("customer_id", kind="stable")
    if len(labelled) > max_rows:
        labelled = _stratified_sample(labelled, max_rows, seed).sort_values("customer_id", kind="stable")
    return labelled["customer_id"].to_numpy(dtype=object)


def training_rows_from_chunks(ids_and_labels: Iterable[pd.DataFrame], feature_chunks: Iterable[pd.DataFrame],
                              max_rows: int = DEFAULT_MAX_TRAINING_ROWS, seed: int = 0) -> pd.DataFrame:
    """The rows :func:`train_churn_model` would train on, gathered in two passes over a day in chunks.

    First pass (``ids_and_labels``: chunks of ``customer_id`` and ``churned``): the ids and labels
    of the labelled customers only (ids as compact Arrow strings), from which :func:`training_sample`
    picks the training customers. Second pass (``feature_chunks``: chunks of the feature rows, read
    only once the first pass is done): the rows of those customers. Memory is the ids and labels of
    the day plus at most ``max_rows`` feature rows, never the whole day. ``train_churn_model`` on the
    result (with the same ``max_rows`` and ``seed``) gives the model it gives on the whole day.
    """
    ids = [_compact_ids(chunk.loc[chunk["churned"].notna().to_numpy(), ["customer_id", "churned"]])
           for chunk in ids_and_labels]
    chosen = training_sample(pd.concat(ids, ignore_index=True) if ids else
                             pd.DataFrame({"customer_id": [], "churned": pd.array([], dtype="boolean")}),
                             max_rows, seed)
    del ids
    parts = [chunk[chunk["churned"].notna().to_numpy() & chunk["customer_id"].isin(chosen).to_numpy()]
             for chunk in feature_chunks]
    if not parts:
        raise TrainingError("no feature rows to train on")
    rows = pd.concat(parts, ignore_index=True)
    if len(rows) != len(chosen):
        raise TrainingError(f"{len(chosen)} customers were chosen to train but {len(rows)} labelled feature rows "
                            "of them were read: the day changed while it was being read; run it again")
    return rows


def _compact_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """``customer_id`` as Arrow strings (about 20 bytes per id instead of about 70 for a Python str)."""
    return frame.assign(customer_id=frame["customer_id"].astype("string[pyarrow]"))


def _stratified_sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame.groupby("churned", group_keys=False, observed=True).sample(
        frac=min(1.0, rows / len(frame)), random_state=seed
    )


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool, type(None))) else repr(value)
