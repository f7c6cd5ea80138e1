"""Training, the leakage rule, scoring maths, reasons, KPIs and the model store."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.tree import DecisionTreeClassifier

from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.estimators import candidate_estimators
from churn_pipeline.logic.features import build_features
from churn_pipeline.logic.kpis import business_kpis, segment_kpis
from churn_pipeline.logic.modeling import TrainingError, train_churn_model
from churn_pipeline.logic.reasons import NO_REASON, top_reasons
from churn_pipeline.logic.scoring import score_customers
from churn_pipeline.model_store import ModelStoreError, load_model, save_model
from churn_pipeline.schemas import BusinessKpis, CustomerFeatures, ScoredCustomers, SegmentKpis
from churn_pipeline.synthetic import generate_customers
from churn_pipeline_tests.helpers import raw_frame

DAY = "2024-03-01"


@pytest.fixture(scope="module")
def snapshot():
    frame = generate_customers(3000, seed=11)
    clean, rejected = clean_snapshot(raw_frame(frame.astype(str).to_dict("records"), DAY))
    assert rejected.empty
    features = build_features(clean)
    CustomerFeatures.validate(features)
    return clean, features


@pytest.fixture(scope="module")
def model(snapshot):
    return train_churn_model(snapshot[1], DAY)


def test_candidates_are_compared_and_the_best_is_kept(model):
    assert set(model.candidates) == {"logistic_regression", "random_forest", "lightgbm", "blend"}
    best = max(model.candidates, key=lambda name: model.candidates[name]["roc_auc"])
    assert model.algorithm == best
    assert 0.78 < model.metrics["roc_auc"] < 0.92
    assert model.metrics["roc_auc_std"] < 0.05
    assert len(model.fold_estimators) == 5 and model.training_rows == 3000
    assert set(model.params["fold_algorithms"]) <= set(model.candidates)
    assert model.params["nested_selection"] is True


def test_selection_never_sees_the_fold_it_is_reported_on(snapshot, monkeypatch):
    from churn_pipeline.logic import modeling

    seen: list[set] = []
    original = modeling.select_candidate

    def spy(candidates, X, y, monthly, **kwargs):
        seen.append(set(X.index))
        return original(candidates, X, y, monthly, **kwargs)

    monkeypatch.setattr(modeling, "select_candidate", spy)
    fast = {"logistic_regression": modeling.candidate_estimators()["logistic_regression"],
            "tree": DecisionTreeClassifier(max_depth=3, random_state=0)}
    trained = modeling.train_churn_model(snapshot[1], DAY, candidates=fast)
    folds = trained.training_folds.to_numpy()
    assert len(seen) == 6  # one selection inside each outer fold, one for the final model
    for k, rows in enumerate(seen[:5]):
        held_out = set(np.flatnonzero(folds == k))
        assert rows.isdisjoint(held_out)
        assert len(rows) == len(folds) - len(held_out)


def test_probabilities_are_calibrated_out_of_fold(model):
    # Sum of out-of-fold p within 5% of the actual number of churners: no class re-weighting.
    assert abs(model.metrics["predicted_to_actual"] - 1) < 0.05
    assert model.metrics["brier"] < 0.16


def test_leakage_rule_training_customers_are_scored_by_a_model_that_never_saw_them(snapshot):
    clean, features = snapshot
    y = features["churned"].astype(bool).to_numpy()
    # A fully grown tree memorises its training labels: in-sample it is perfect.
    memoriser = train_churn_model(features, DAY, candidates={"tree": DecisionTreeClassifier(random_state=0)})
    in_sample, folds_final = memoriser.predict_proba(features, cross_fit=False)
    cross_fitted, folds = memoriser.predict_proba(features, cross_fit=True)
    assert (folds_final == -1).all() and (folds >= 0).all()
    assert roc_auc_score(y, in_sample) > 0.99
    assert roc_auc_score(y, cross_fitted) < 0.8  # honest: each row by the fold model that held it out


def test_unlabelled_customers_are_scored_by_the_final_model(snapshot, model):
    clean, features = snapshot
    clean = clean.copy()
    features = features.copy()
    clean.loc[:9, "churned"] = pd.NA
    features.loc[:9, "churned"] = pd.NA
    logistic = candidate_estimators()["logistic_regression"]
    retrained = train_churn_model(features, DAY, candidates={"logistic_regression": logistic})
    assert retrained.training_rows == 2990
    scored = score_customers(clean, features, retrained, "v-test", 12, cross_fit=True)
    sources = scored.set_index("customer_id")["score_source"]
    assert (sources[clean["customer_id"].iloc[:10]] == "final_model").all()
    assert (sources.drop(clean["customer_id"].iloc[:10]) == "cross_fitted").all()


def test_training_refuses_too_few_labels(snapshot):
    _, features = snapshot
    with pytest.raises(TrainingError, match="need at least"):
        train_churn_model(features.head(50), DAY)
    one_class = features.copy()
    one_class["churned"] = pd.array([False] * len(one_class), dtype="boolean")
    with pytest.raises(TrainingError, match="0 churned"):
        train_churn_model(one_class, DAY)


def test_scores_expected_loss_priority_and_tiers(snapshot, model):
    clean, features = snapshot
    scored = score_customers(clean, features, model, "v-test", horizon_months=12, cross_fit=True)
    ScoredCustomers.validate(scored)
    active = clean[~clean["churned"].astype(bool)]
    assert sorted(scored["customer_id"]) == sorted(active["customer_id"])
    np.testing.assert_allclose(
        scored["expected_revenue_loss"], scored["churn_probability"] * scored["monthly_charges"] * 12
    )
    assert scored["priority_rank"].tolist() == list(range(1, len(scored) + 1))
    assert scored["expected_revenue_loss"].is_monotonic_decreasing
    medium, high = model.tier_thresholds
    expected_tier = np.where(scored["churn_probability"] >= high, "High",
                             np.where(scored["churn_probability"] >= medium, "Medium", "Low"))
    assert (scored["risk_tier"].astype(str).to_numpy() == expected_tier).all()
    assert (scored["score_source"] == "cross_fitted").all()
    assert (scored["model_version"] == "v-test").all()


def test_reasons_are_words_and_at_most_three(snapshot, model):
    clean, features = snapshot
    scored = score_customers(clean, features, model, "v", 12, cross_fit=False)
    reasons = scored["top_reasons"].str.split("; ")
    assert reasons.map(len).max() <= 3
    top = scored.head(50)
    assert top["top_reasons"].str.contains("month-to-month|tenure|fiber|electronic check|bill").all()
    assert not scored["top_reasons"].str.contains("contract_one_year|_").any()


def test_reasons_without_positive_contribution():
    features = pd.DataFrame({name: [0.0] for name in CustomerFeatures.to_schema().columns
                             if name not in ("snapshot_date", "customer_id", "churned")})
    contributions = -np.ones((1, features.shape[1]))
    assert top_reasons(features, contributions).tolist() == [NO_REASON]


def test_kpis_add_up(snapshot, model):
    clean, features = snapshot
    scored = score_customers(clean, features, model, "v-test", 12, cross_fit=True)
    overall = business_kpis(scored, clean, 12)
    BusinessKpis.validate(overall)
    row = overall.iloc[0]
    assert row["active_customers"] == len(scored)
    assert row["revenue_at_risk"] == pytest.approx(scored["expected_revenue_loss"].sum())
    assert row["revenue_at_risk_high"] + row["revenue_at_risk_medium"] + row["revenue_at_risk_low"] == pytest.approx(
        row["revenue_at_risk"])
    assert row["actual_churn_rate"] == pytest.approx(clean["churned"].astype(bool).mean())
    segments = segment_kpis(scored, clean)
    SegmentKpis.validate(segments)
    for _, group in segments.groupby("segment_type", observed=True):
        assert group["active_customers"].sum() == row["active_customers"]
        assert group["revenue_at_risk"].sum() == pytest.approx(row["revenue_at_risk"])


def test_model_store_round_trip_and_tamper_refusal(tmp_path, model, snapshot):
    version, path, digest = save_model(model, tmp_path)
    assert path.name == f"churn_model_{version}.joblib" and digest.startswith(version)
    loaded = load_model(path, digest)
    _, features = snapshot
    np.testing.assert_array_equal(loaded.predict_proba(features)[0], model.predict_proba(features)[0])
    assert save_model(model, tmp_path)[0] == version  # same content, same version
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ModelStoreError, match="not loading"):
        load_model(path, digest)
    with pytest.raises(ModelStoreError, match="missing"):
        load_model(tmp_path / "nope.joblib", digest)
