"""Small batches of the API skip the cleaning's fixed cost and still give exactly its answers.

``POST /predict/batch`` types the clean rows straight from the validated customers
(:func:`churn_pipeline.api.scorer.clean_frame`) instead of running ``clean_snapshot`` on their text:
the rows, the answers and the 422s must be identical, bit for bit, to ``score_telco_frame``'s; and a
batch of three must cost a fraction of what it did (~25 ms, nearly all pandas overhead in the cleaning).
The cleaning's own small-input shortcuts must not change a single value either. No database server:
models are trained directly; the HTTP tests use a SQLite registry.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import pandas as pd
import pytest

from churn_pipeline.api import scorer as scorer_module
from churn_pipeline.api.schemas import TelcoCustomer
from churn_pipeline.api.scorer import Scorer, clean_frame, customers_frame, identical, probe_customers
from churn_pipeline.logic import cleaning, serving
from churn_pipeline.logic.serving import BadCustomerRows
from churn_pipeline_tests.helpers import raw_frame, telco_rows
from churn_pipeline_tests.test_api_support import (
    api_client,
    customers_json,
    predict_each,
    quick_model,
    register_champion,
    settings_for,
)


def _mixed(model, n: int = 120, seed: int = 17) -> list[dict]:
    """New customers, customers the model was trained on (their fold models), and the awkward valid ones."""
    rng = np.random.default_rng(seed)
    customers = customers_json(n, seed=seed)
    for customer, trained_id in zip(customers[:20], model.training_folds.index[::9]):
        customer["customerID"] = str(trained_id)
    customers[20]["customerID"] = str(model.training_folds.index[1]).lower()  # another customer: ids are exact
    customers[21].update(tenure=0, TotalCharges=None)  # a newcomer with no bill yet
    customers[22].update(tenure=0, TotalCharges="")
    customers[23].update(tenure=0, TotalCharges=0.0)
    customers[24].update(customerID="  0042-PADDED  ", SeniorCitizen="1", tenure="12")
    customers[25].update(MonthlyCharges=-0.0, TotalCharges=-0.0)  # stored as 0.0, and so answered
    customers[26].update(MonthlyCharges=10_000.0, tenure=1200, TotalCharges=2 * 10_000.0 * 1200)
    customers[27].update(MonthlyCharges=0.0, tenure=1, TotalCharges=0.0)
    for customer in customers[30:90]:  # full precision: the cleaning's parser is sometimes one ulp off repr
        customer["MonthlyCharges"] = float(rng.uniform(0, 10_000))
        customer["TotalCharges"] = float(rng.uniform(0, 2 * 10_000 * max(customer["tenure"], 1)))
    return customers


def _validated(customers: list[dict]) -> list[TelcoCustomer]:
    return [TelcoCustomer.model_validate(c) for c in customers]


def _cleanings_rows(customers: list[TelcoCustomer], monkeypatch) -> pd.DataFrame:
    """The clean rows ``score_telco_frame`` makes of the customers' text, caught on their way."""
    caught = []

    def catch(raw):
        caught.append(cleaning.clean_snapshot(raw))
        raise LookupError("caught")

    with monkeypatch.context() as patch:
        patch.setattr(serving, "clean_snapshot", catch)
        with pytest.raises(LookupError):
            serving.score_telco_frame(customers_frame(customers), None, 12, first_row_number=0)
    clean, rejected = caught[0]
    assert rejected.empty, rejected["reasons"].tolist()
    return clean


@pytest.fixture(scope="module")
def trained():
    model, features = quick_model(700, seed=41, snapshot="2024-03-01")
    model.version = "test-batches"
    return model, features


@pytest.fixture(scope="module")
def scorer(trained):
    scorer = Scorer(trained[0], {"algorithm": "logistic_regression"}, horizon_months=12)
    scorer.self_check(probe_customers(trained[0], TelcoCustomer.model_validate))
    assert scorer.direct_batches and scorer.fast_path
    return scorer


def test_the_direct_clean_rows_are_the_cleanings_own(trained, monkeypatch):
    customers = _validated(_mixed(trained[0], n=400))
    for n in (1, 3, len(customers)):
        expected = _cleanings_rows(customers[:n], monkeypatch)
        got = clean_frame(customers[:n], expected["snapshot_date"].iloc[0].date())
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert identical(got, expected)  # and floats bit for bit: no -0.0
    # Reading repr with Python's float would be wrong: the cleaning's parser differs on some of these.
    expected = _cleanings_rows(customers, monkeypatch)
    assert (expected["monthly_charges"].to_numpy() != [c.MonthlyCharges for c in customers]).any()


@pytest.mark.parametrize("candidate", ["logistic_regression", "lightgbm", "blend"])
def test_batches_answer_exactly_as_score_telco_frame(candidate):
    model, _ = quick_model(700, seed=42, snapshot="2024-03-01", candidate=candidate)
    model.version = f"test-{candidate}"
    scorer = Scorer(model, {"algorithm": candidate}, horizon_months=12)
    scorer.self_check(probe_customers(model, TelcoCustomer.model_validate))
    assert scorer.direct_batches
    customers = _validated(_mixed(model))
    for batch in (customers[:1], customers[:3], customers[18:30], customers):
        got = scorer.score_customers(batch)
        expected = scorer.score_frame(customers_frame(batch))
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert identical(got, expected)


def test_repeated_ids_are_left_to_the_cleaning(scorer, trained):
    customers = _validated(customers_json(4, seed=5))
    twin = customers[1].model_copy(update={"customerID": customers[1].customerID.lower()})
    for batch in ([*customers, customers[2]], [*customers, twin]):  # an exact repeat; a conflicting one
        assert clean_frame(batch, pd.Timestamp.now().date()) is None
        with pytest.raises(BadCustomerRows) as direct:
            scorer.score_customers(batch)
        with pytest.raises(BadCustomerRows) as old:
            scorer.score_frame(customers_frame(batch))
        assert direct.value.problems == old.value.problems and str(direct.value) == str(old.value)


def test_direct_batches_that_would_differ_stay_off(trained, monkeypatch):
    model = trained[0]

    def skewed(customers, snapshot_date):
        clean = clean_frame(customers, snapshot_date)
        return clean.assign(monthly_charges=clean["monthly_charges"] + 0.01)

    monkeypatch.setattr(scorer_module, "clean_frame", skewed)
    scorer = Scorer(model, {"algorithm": "logistic_regression"}, horizon_months=12)
    scorer.self_check(probe_customers(model, TelcoCustomer.model_validate))
    assert not scorer.direct_batches and scorer.fast_path
    batch = _validated(_mixed(model, n=30))
    assert identical(scorer.score_customers(batch), scorer.score_frame(customers_frame(batch)))


def test_a_mixed_batch_answers_as_single_predictions_and_as_before(trained, tmp_path, sqlite_url):
    model, features = trained
    settings = settings_for(tmp_path, sqlite_url)
    register_champion(sqlite_url, settings.model_dir, model, features)
    customers = _mixed(model, n=60)
    with api_client(settings) as client:
        served = client.app.state.holder.serving.scorer
        assert served.direct_batches
        singles = predict_each(client, customers)
        batch = client.post("/predict/batch", json={"customers": customers})
        served.direct_batches = False  # the way batches were scored before: score_telco_frame
        before = client.post("/predict/batch", json={"customers": customers})
        duplicates = [*customers[:5], dict(customers[3], customerID=customers[3]["customerID"].lower())]
        refused_before = client.post("/predict/batch", json={"customers": duplicates})
        served.direct_batches = True
        refused = client.post("/predict/batch", json={"customers": duplicates})

    assert batch.status_code == before.status_code == 200, batch.text
    assert batch.json() == before.json()  # exactly: every digit, rank and reason
    predictions = batch.json()["predictions"]
    assert [p["customerID"] for p in predictions] == [s["customerID"] for s in singles] \
        == [c["customerID"].strip() for c in customers]
    for column in ("risk_tier", "top_reasons", "model_version"):
        assert [p[column] for p in predictions] == [s[column] for s in singles], column
    for column in ("churn_probability", "expected_revenue_loss"):
        # One customer is one row through the fast estimators, a batch one matrix through scikit-learn:
        # a product of 30 terms may round differently in the last bit (as it always could).
        assert [p[column] for p in predictions] == pytest.approx([s[column] for s in singles], rel=1e-12), column
    assert not np.signbit([s["expected_revenue_loss"] for s in singles]).any()  # a bill of -0.0 is 0.0
    by_rank = sorted(predictions, key=lambda p: p["priority_rank"])
    assert [p["priority_rank"] for p in by_rank] == list(range(1, len(customers) + 1))
    assert [p["expected_revenue_loss"] for p in by_rank] == sorted((p["expected_revenue_loss"] for p in predictions),
                                                                  reverse=True)

    assert refused.status_code == refused_before.status_code == 422, refused.text
    assert refused.json() == refused_before.json()
    assert {tuple(e["loc"]) for e in refused.json()["detail"]} == {("body", "customers", 3),
                                                                   ("body", "customers", 5)}


def test_a_small_batch_no_longer_pays_the_cleanings_fixed_cost(scorer, trained):
    """A loose guard: three customers cost well under half of what the cleaning's path costs (about a
    quarter when measured, ~6 ms against ~25 ms on a 2-core machine). Both paths are timed alternately,
    so load from other processes weighs on both alike."""
    batch = _validated(_mixed(trained[0], n=30))[18:21]
    old_path = [], lambda: scorer.score_frame(customers_frame(batch))
    new_path = [], lambda: scorer.score_customers(batch)
    for _ in range(5):  # warm up
        old_path[1]()
        new_path[1]()
    for _ in range(50):
        for times, call in (old_path, new_path):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
    old, new = statistics.median(old_path[0]) * 1000, statistics.median(new_path[0]) * 1000
    assert new < 0.5 * old, f"a batch of 3 costs {new:.1f} ms, the cleaning's path {old:.1f} ms"


# ---- the cleaning's small-input shortcuts change nothing ------------------------------------------

_ODD_ROWS = [
    {}, {"customerID": " 0001-abcde "}, {"customerID": "0001-ABCDE"}, {"customerID": "0001-ABCDE"},
    {"Contract": "month-to-month"}, {"InternetService": "FIBER OPTIC"}, {"Partner": "\xa0Yes\xa0"},
    {"SeniorCitizen": "yes"}, {"SeniorCitizen": "１"}, {"PaymentMethod": "Electronic chec\u212a"},
    {"gender": "Fe\u0301male"}, {"tenure": "+12"}, {"tenure": "12.5"}, {"tenure": "１２"},
    {"MonthlyCharges": "8.55E+01"}, {"MonthlyCharges": "NaN"}, {"MonthlyCharges": "-0.0"},
    {"MonthlyCharges": "1,020.30"}, {"tenure": "0", "TotalCharges": ""}, {"tenure": "3", "TotalCharges": " "},
    {"TotalCharges": "1e15"}, {"Churn": "Ｙes"}, {"Churn": "yes"}, {"Churn": ""},
    {"InternetService": "No"}, {"PhoneService": "No", "MultipleLines": "Yes"},
    {"customerID": "0001 ABCDE"}, {"customerID": "C" * 65}, {"customerID": ""},
]


@pytest.mark.parametrize("rows", [_ODD_ROWS[:1], _ODD_ROWS[:3], _ODD_ROWS, [{}] * 3, _ODD_ROWS[4:9]],
                         ids=["one", "three", "odd", "repeats", "valid-variants"])
def test_the_cleanings_small_input_shortcuts_change_nothing(rows, monkeypatch):
    raw = raw_frame(telco_rows(*rows))
    shortcut = cleaning.clean_snapshot(raw)
    monkeypatch.setattr(cleaning, "_FEW_VALUES", -1)  # per_distinct factorizes every column again
    monkeypatch.setattr(cleaning, "_rejected", cleaning._rejected_rows)  # no cached empty table
    factorized = cleaning.clean_snapshot(raw)
    for got, expected in zip(shortcut, factorized):
        pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_the_empty_rejected_table_is_a_fresh_copy():
    raw = raw_frame(telco_rows({}, {}))
    problems = cleaning._Problems(len(raw))
    first = cleaning._rejected(raw, problems, np.empty(0, dtype="int64"))
    pd.testing.assert_frame_equal(first, cleaning._rejected_rows(raw, problems, np.empty(0, dtype="int64")))
    first["changed"] = 1  # a caller may change what it gets
    again = cleaning._rejected(raw, problems, np.empty(0, dtype="int64"))
    assert again is not first and "changed" not in again.columns
    assert cleaning._Problems(3).describe(np.empty(0, dtype="int64")) == ([], [])
