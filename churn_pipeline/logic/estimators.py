"""The candidate models and how each explains a score (per-feature contributions).

- ``logistic_regression``: standardised features, L2; calibrated by construction (log loss).
- ``random_forest``: averaged trees squash probabilities toward the middle, so a sigmoid fitted on
  its out-of-bag predictions calibrates it: "calibrate where it helps".
- ``lightgbm``: shallow, strongly regularised boosting on log loss; calibrated without re-weighting.
- ``blend``: the mean of the logistic regression and LightGBM probabilities (they err differently).

Contributions are in log-odds for the logistic regression and LightGBM (``pred_contrib``), and the
exact path decomposition of the forest's probability (Saabas) for the random forest; a blend
averages its members'. Only their ranking within a row is used: the top reasons.
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from churn_pipeline.constants import MODEL_CANDIDATES

PARALLEL_EXPLAIN_ROWS = 20_000


class CalibratedForest(ClassifierMixin, BaseEstimator):
    """A random forest whose probabilities are mapped through a sigmoid fitted on its own
    out-of-bag predictions: calibration without refitting the forest on folds."""

    def __init__(self, n_estimators: int = 100, min_samples_leaf: int = 20, max_features: float = 0.3,
                 max_samples: float = 0.5, n_jobs: int = 2, random_state: int = 0):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.n_jobs = n_jobs
        self.random_state = random_state

    def fit(self, X, y):
        self.forest_ = RandomForestClassifier(
            n_estimators=self.n_estimators, min_samples_leaf=self.min_samples_leaf,
            max_features=self.max_features, max_samples=self.max_samples, n_jobs=self.n_jobs,
            random_state=self.random_state, oob_score=True,
        ).fit(X, y)
        oob = np.nan_to_num(self.forest_.oob_decision_function_[:, 1], nan=float(np.mean(y)))
        self.calibrator_ = LogisticRegression(C=1e4).fit(_logit(oob)[:, None], y)
        self.classes_ = self.forest_.classes_
        return self

    def predict_proba(self, X):
        raw = self.forest_.predict_proba(X)[:, 1]
        return self.calibrator_.predict_proba(_logit(raw)[:, None])


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-4, 1 - 1e-4)
    return np.log(p / (1 - p))


class BlendClassifier(ClassifierMixin, BaseEstimator):
    """Mean of its members' probabilities (soft vote of already-calibrated models)."""

    def __init__(self, members: tuple[tuple[str, Any], ...] = ()):
        self.members = members

    def fit(self, X, y):
        self.fitted_ = [(name, clone(model).fit(X, y)) for name, model in self.members]
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X):
        return np.mean([model.predict_proba(X) for _, model in self.fitted_], axis=0)


def candidate_estimators(seed: int = 0, n_jobs: int = 2) -> dict[str, Any]:
    """The candidates, compared on the same folds. Parameters are conservative (shallow trees,
    strong regularisation) and fixed in code: chosen to generalise, not tuned to one sample."""
    logistic = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(C=0.5, max_iter=3000))])
    booster = lgb.LGBMClassifier(
        n_estimators=400, learning_rate=0.02, num_leaves=8, min_child_samples=50,
        subsample=0.8, subsample_freq=1, colsample_bytree=0.7, reg_lambda=5.0,
        random_state=seed, n_jobs=n_jobs, verbose=-1,
    )
    forest = CalibratedForest(n_jobs=n_jobs, random_state=seed)
    candidates = {
        "logistic_regression": logistic,
        "random_forest": forest,
        "lightgbm": booster,
        "blend": BlendClassifier((("logistic_regression", logistic), ("lightgbm", booster))),
    }
    if tuple(candidates) != CANDIDATE_NAMES:
        raise AssertionError(f"candidate_estimators builds {tuple(candidates)}, constants.MODEL_CANDIDATES names "
                             f"{CANDIDATE_NAMES}: keep the two in step")
    return candidates


CANDIDATE_NAMES = MODEL_CANDIDATES  # the one list, in churn_pipeline.constants (settings reads it too)


def parse_candidates(names: str) -> tuple[str, ...]:
    """Candidate names from a comma-separated setting such as ``CHURN_MODEL_CANDIDATES``."""
    chosen = tuple(name.strip() for name in names.split(",") if name.strip())
    unknown = [name for name in chosen if name not in CANDIDATE_NAMES]
    if unknown or not chosen:
        raise ValueError(f"unknown model candidates {unknown or names!r}; choose from {', '.join(CANDIDATE_NAMES)}")
    return chosen


def contributions(estimator: Any, matrix: pd.DataFrame) -> np.ndarray:
    """Per-feature contributions to each row's score (rows × features)."""
    if isinstance(estimator, lgb.LGBMClassifier):
        # TreeSHAP dominates scoring at scale (68 of 74 s at 200k rows): use both cores for big batches,
        # whatever thread count the model was trained with (last column is the bias).
        threads = {"num_threads": 2} if len(matrix) >= PARALLEL_EXPLAIN_ROWS else {}
        return estimator.predict(matrix, pred_contrib=True, **threads)[:, :-1]
    if isinstance(estimator, Pipeline):
        scaler, model = estimator.named_steps["scale"], estimator.named_steps["model"]
        return scaler.transform(matrix) * model.coef_[0]  # relative to the average training customer
    if isinstance(estimator, BlendClassifier):
        return np.mean([contributions(model, matrix) for _, model in estimator.fitted_], axis=0)
    if isinstance(estimator, CalibratedForest):
        return _forest_contributions(estimator.forest_, matrix.to_numpy(dtype="float32"))
    raise TypeError(f"no contributions for {type(estimator).__name__}")


def _forest_contributions(forest: RandomForestClassifier, X: np.ndarray) -> np.ndarray:
    """Each split's change in P(churn) credited to its feature, averaged over trees (Saabas)."""
    out = np.zeros((X.shape[0], forest.n_features_in_))
    for tree in forest.estimators_:
        t = tree.tree_
        value = t.value[:, 0, 1] / t.value[:, 0, :].sum(axis=1)  # P(churn) at each node
        parent = np.full(t.node_count, -1)
        for side in (t.children_left, t.children_right):
            has_child = side >= 0
            parent[side[has_child]] = np.flatnonzero(has_child)
        child = np.flatnonzero(parent >= 0)
        credit = sparse.csr_matrix(
            (value[child] - value[parent[child]], (child, t.feature[parent[child]])),
            shape=(t.node_count, forest.n_features_in_),
        )
        out += (tree.decision_path(X) @ credit).toarray()
    return out / len(forest.estimators_)
