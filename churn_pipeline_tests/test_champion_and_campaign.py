"""Champion / challenger gate, campaign maths, score drift, forest explanations, serving rows, registry."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification

from churn_pipeline.logic.campaign import best_campaign, contact_profit
from churn_pipeline.logic.champion import QualityFloor, TrainingOutcome, decide, evaluation_frame
from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.drift import population_stability_index
from churn_pipeline.logic.estimators import CalibratedForest, contributions
from churn_pipeline.logic.features import build_features
from churn_pipeline.logic.modeling import train_churn_model
from churn_pipeline.logic.serving import BadCustomerRows, score_telco_frame
from churn_pipeline.model_runs import ModelRegistry
from churn_pipeline.model_store import ModelStoreError
from churn_pipeline.synthetic import generate_customers
from churn_pipeline_tests.helpers import GOOD_ROW, raw_frame

DAY = "2024-04-01"
FLOOR = QualityFloor(min_roc_auc=0.7, max_calibration_error=0.1)


def _model_with(roc_auc: float, ratio: float = 1.0, version: str = "v"):
    metrics = {"roc_auc": roc_auc, "predicted_to_actual": ratio}
    return dataclasses.make_dataclass("Fake", ["metrics", "version"])(metrics, version)


@pytest.mark.parametrize(
    ("challenger", "champion", "promoted", "serving", "words"),
    [
        ((0.84,), None, True, None, "first model"),
        ((0.60,), None, False, None, "fails the quality floor"),
        ((0.84,), (0.845,), True, None, "promoted"),           # within the 0.005 tolerance
        ((0.83,), (0.845,), False, "champ", "below champion"),
        ((0.86, 1.3), (0.84,), False, "champ", "Σp/actual 1.300"),
        ((0.60,), (0.65,), False, None, "also fails"),
    ],
)
def test_champion_gate(challenger, champion, promoted, serving, words):
    new = _model_with(*challenger, version="new")
    old = _model_with(*champion, version="champ") if champion else None
    outcome = decide(new, old, old.metrics if old else None, FLOOR, tolerance=0.005)
    assert outcome.promoted is promoted
    assert outcome.champion_version == serving
    assert words in outcome.decision
    assert (outcome.serving_metrics is None) == (not promoted and serving is None)


def test_campaign_contacts_everyone_who_pays_and_no_one_else():
    loss = np.array([1000.0, 400.0, 100.0, 50.0])  # in priority order
    profit = contact_profit(loss, success_rate=0.3, contact_cost=25.0)
    np.testing.assert_allclose(profit, [275.0, 95.0, 5.0, -10.0])
    plan = best_campaign(profit)
    assert plan.list_size == 3 and plan.expected_profit == pytest.approx(375.0)
    assert best_campaign(np.array([-1.0, -2.0])).list_size == 0
    with pytest.raises(ValueError, match="success rate"):
        contact_profit(loss, 1.5, 25.0)


def test_population_stability_index():
    rng = np.random.default_rng(0)
    reference = rng.beta(2, 5, 20_000)
    assert population_stability_index(reference, rng.beta(2, 5, 20_000)) < 0.01
    assert population_stability_index(reference, rng.beta(5, 2, 20_000)) > 1.0
    with pytest.raises(ValueError):
        population_stability_index(reference, np.array([]))


def test_forest_contributions_add_up_to_its_probability():
    X, y = make_classification(600, n_features=6, random_state=0)
    X = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    forest = CalibratedForest(n_estimators=20, random_state=0).fit(X, y)
    credit = contributions(forest, X)
    raw = forest.forest_.predict_proba(X.astype("float32"))[:, 1]
    roots = np.mean([t.tree_.value[0, 0, 1] / t.tree_.value[0, 0].sum() for t in forest.forest_.estimators_])
    np.testing.assert_allclose(credit.sum(axis=1) + roots, raw, atol=1e-9)


@pytest.fixture(scope="module")
def trained():
    frame = generate_customers(1500, seed=21)
    clean, _ = clean_snapshot(raw_frame(frame.astype(str).to_dict("records"), DAY))
    features = build_features(clean)
    model = train_churn_model(features, DAY)
    return frame, features, model


def test_serving_scores_rows_in_input_order_and_ignores_the_label(trained):
    frame, _, model = trained
    records = frame.head(50).astype(str)
    scored = score_telco_frame(records, model, horizon_months=12)
    assert scored["customerID"].tolist() == records["customerID"].tolist()
    without_label = score_telco_frame(records.drop(columns="Churn"), model, horizon_months=12)
    pd.testing.assert_frame_equal(scored, without_label)
    np.testing.assert_array_less(0, scored["churn_probability"])
    assert set(scored["priority_rank"]) == set(range(1, 51))


def test_serving_accepts_a_new_customer_and_names_bad_rows(trained):
    _, _, model = trained
    new_customer = dict(GOOD_ROW, customerID="NEW-1", tenure="0", TotalCharges=" ")
    scored = score_telco_frame(pd.DataFrame([new_customer]), model, horizon_months=12)
    assert scored.loc[0, "customerID"] == "NEW-1" and 0 < scored.loc[0, "churn_probability"] < 1
    bad = pd.DataFrame([dict(GOOD_ROW, customerID="A"), dict(GOOD_ROW, customerID="B", MonthlyCharges="-3")])
    with pytest.raises(BadCustomerRows) as error:
        score_telco_frame(bad, model, horizon_months=12, first_row_number=2, row_label="line")
    assert "line 3: MonthlyCharges '-3' is outside" in str(error.value)
    assert [row for row, _, _ in error.value.problems] == [3]


def test_registry_champion_and_serving_model(tmp_path, trained):
    _, features, model = trained
    registry = ModelRegistry(f"sqlite:///{tmp_path / 'db.sqlite'}", tmp_path / "models")
    assert registry.champion() is None
    first = TrainingOutcome(model, True, None, "first model: promoted", model.metrics,
                            evaluation=evaluation_frame(model, features))
    version = registry.register(first, run_id="run-1", trained_at=datetime(2024, 4, 1, 3))
    assert registry.champion_version() == version
    rejected = TrainingOutcome(model, False, version, "challenger below champion; champion kept", model.metrics,
                               evaluation=evaluation_frame(model, features))
    registry.register(rejected, run_id="run-2", trained_at=datetime(2024, 4, 2, 3))
    assert registry.serving_model_for(DAY).version == version
    evaluation = registry.store.read("model_evaluation")
    assert len(evaluation) == model.training_rows  # re-registering a version replaces its rows
    nothing = TrainingOutcome(model, False, None, "no model passes the floor", None,
                              evaluation=evaluation_frame(model, features))
    registry.register(nothing, run_id="run-3", trained_at=datetime(2024, 4, 3, 3))
    with pytest.raises(ModelStoreError, match="no model may score"):
        registry.serving_model_for(DAY)
    with pytest.raises(ModelStoreError, match="not registered"):
        registry.load("0123456789abcdef")
