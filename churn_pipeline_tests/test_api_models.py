"""The API's fast single-customer path gives the pipeline's answers, for every kind of model.

No database here: models are trained directly on small synthetic snapshots.
"""

from __future__ import annotations

import numpy as np
import pytest

from churn_pipeline.api.schemas import TelcoCustomer
from churn_pipeline.api.scorer import Scorer, _Fast, probe_customers, split_reasons
from churn_pipeline.logic.serving import score_telco_frame
from churn_pipeline_tests.test_api_support import as_csv_frame, customers_json, quick_model


def _customers(model, n: int) -> list[dict]:
    """New customers, plus some the model was trained on (scored by their fold models), plus a newcomer."""
    customers = customers_json(n, seed=3)
    for customer, trained_id in zip(customers[:40], model.training_folds.index[::7]):
        customer["customerID"] = trained_id
    customers[-1].update(tenure=0, TotalCharges=None)
    return customers


@pytest.mark.parametrize("candidate", ["logistic_regression", "lightgbm", "blend", "random_forest"])
def test_fast_single_path_equals_score_telco_frame(candidate):
    model, _ = quick_model(900, seed=21, snapshot="2024-02-01", candidate=candidate)
    model.version = f"test-{candidate}"
    scorer = Scorer(model, {"algorithm": candidate}, horizon_months=12)
    scorer.self_check(probe_customers(model, TelcoCustomer.model_validate))
    assert scorer.fast_path, scorer.fast_path_problem
    assert scorer.inline == (candidate != "random_forest")  # the forest's own code runs off the event loop

    customers = _customers(model, 120 if candidate == "random_forest" else 400)  # the forest is slow per row
    expected = score_telco_frame(as_csv_frame(customers), model, 12)
    fast = [scorer.score_one(TelcoCustomer.model_validate(c)) for c in customers]
    np.testing.assert_allclose([f.churn_probability for f in fast], expected["churn_probability"], rtol=1e-12)
    np.testing.assert_allclose([f.expected_revenue_loss for f in fast], expected["expected_revenue_loss"], rtol=1e-12)
    assert [f.risk_tier for f in fast] == expected["risk_tier"].astype(str).tolist()
    assert [f.top_reasons for f in fast] == [split_reasons(r) for r in expected["top_reasons"]]
    assert {f.model_version for f in fast} == {model.version}
    # the fold models really were used for the trained customers (different from the final model's answer)
    final_only = score_telco_frame(as_csv_frame(customers[:40]).assign(customerID=[f"new-{i}" for i in range(40)]),
                                   model, 12)
    assert not np.allclose(final_only["churn_probability"], expected["churn_probability"][:40])


def test_a_fast_path_that_disagrees_is_switched_off_and_answers_stay_right():
    model, _ = quick_model(600, seed=22, snapshot="2024-02-01")
    model.version = "test-broken"

    class Skewed(_Fast):  # a fast estimator off by a hair: the self-check must notice
        def __init__(self, inner):
            self.inner = inner

        def proba(self, row):
            return self.inner.proba(row) + 1e-6

        def contrib(self, row):
            return self.inner.contrib(row)

    scorer = Scorer(model, {"algorithm": "logistic_regression"}, horizon_months=12)
    scorer._fast = {fold: Skewed(fast) for fold, fast in scorer._fast.items()}
    scorer.self_check(probe_customers(model, TelcoCustomer.model_validate))
    assert not scorer.fast_path and not scorer.inline and "fast p=" in scorer.fast_path_problem

    customer = customers_json(1, seed=5)[0]
    expected = score_telco_frame(as_csv_frame([customer]), model, 12).iloc[0]
    answer = scorer.score_one(TelcoCustomer.model_validate(customer))
    assert answer.churn_probability == expected["churn_probability"]
    assert answer.top_reasons == split_reasons(expected["top_reasons"])


@pytest.fixture(scope="module")
def small_model():
    model, _ = quick_model(500, seed=23, snapshot="2024-02-01")
    model.version = "test-variants"
    return model


_VARIANTS = [  # (change to a valid customer, accepted by the API?)
    ({}, True),
    ({"tenure": 0, "TotalCharges": None}, True),
    ({"tenure": 0, "TotalCharges": ""}, True),
    ({"tenure": "12"}, True),
    ({"SeniorCitizen": "1"}, True),
    ({"customerID": "  0042-PADDED  "}, True),
    ({"customerID": "0042 SPACE"}, False),
    ({"customerID": "0042-ZERO\u200bWIDTH"}, False),
    ({"customerID": "X" * 65}, False),
    ({"tenure": 3, "TotalCharges": None}, False),
    ({"tenure": 1.5}, False),
    ({"tenure": 1201}, False),
    ({"MonthlyCharges": -1}, False),
    ({"MonthlyCharges": float("nan")}, False),
    ({"TotalCharges": 10_000_000.0}, False),
    ({"PhoneService": "No", "MultipleLines": "Yes"}, False),
    ({"InternetService": "No"}, False),
    ({"Contract": "Weekly"}, False),
    ({"PaymentMethod": "Cash"}, False),
    ({"SeniorCitizen": 2}, False),
]


@pytest.mark.parametrize(("change", "accepted"), _VARIANTS)
def test_the_api_accepts_only_what_the_pipeline_scores(small_model, change, accepted):
    """The API's typed validation never lets through a customer the pipeline's cleaning would reject
    (the fast path does not run the cleaning), and what it accepts scores exactly as the pipeline does."""
    from pydantic import ValidationError

    from churn_pipeline.logic.serving import BadCustomerRows

    model = small_model
    customer = dict(customers_json(1, seed=12)[0], InternetService="DSL", OnlineSecurity="No", PhoneService="Yes")
    customer.update(change)
    try:
        parsed = TelcoCustomer.model_validate(customer)
    except ValidationError:
        parsed = None
    assert (parsed is not None) == accepted
    try:
        expected = score_telco_frame(as_csv_frame([customer]), model, 12).iloc[0]
    except BadCustomerRows:
        expected = None
    if parsed is not None:
        assert expected is not None, "the API accepted a customer the pipeline rejects"
        scorer = Scorer(model, {"algorithm": model.algorithm}, horizon_months=12)
        scorer.fast_path = True  # the fast path itself, whatever the self-check would say
        assert scorer.score_one(parsed).churn_probability == pytest.approx(expected["churn_probability"], rel=1e-12)

