"""One set of feature formulas: a single customer's features (the API's fast path) are exactly
``build_features``' (the graph, the ``score`` command, the API's batches), bit for bit.

No database and no model: only cleaning and features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_pipeline.api.schemas import TelcoCustomer
from churn_pipeline.api.scorer import customers_frame
from churn_pipeline.api.scorer import feature_row as api_feature_row
from churn_pipeline.constants import (
    CONTRACTS,
    GENDERS,
    INTERNET_ADDON_COLUMNS,
    INTERNET_ADDONS,
    INTERNET_SERVICES,
    MULTIPLE_LINES,
    PAYMENT_METHODS,
)
from churn_pipeline.logic.cleaning import MAX_MONTHLY_CHARGES, MAX_TENURE_MONTHS, TOTAL_CHARGES_SLACK, clean_snapshot
from churn_pipeline.logic.features import FEATURE_INPUTS, build_features, feature_matrix, feature_row
from churn_pipeline.schemas import FEATURE_COLUMNS, CleanCustomers, CustomerFeatures
from churn_pipeline.synthetic import generate_customers
from churn_pipeline_tests.helpers import raw_frame

_ADDONS = ("online_security", "online_backup", "device_protection", "tech_support", "streaming_tv",
           "streaming_movies")
_FLAGS = ("senior_citizen", "partner", "dependents", "phone_service", "paperless_billing")
_CATEGORIES = {"gender": GENDERS, "multiple_lines": MULTIPLE_LINES, "internet_service": INTERNET_SERVICES,
               **{name: INTERNET_ADDONS for name in _ADDONS}, "contract": CONTRACTS,
               "payment_method": PAYMENT_METHODS}


def _ceiling(tenure: int) -> float:
    """The most TotalCharges the cleaning accepts."""
    return TOTAL_CHARGES_SLACK * MAX_MONTHLY_CHARGES * max(tenure, 1)


def assert_bitwise_equal(single: np.ndarray, batch: np.ndarray) -> None:
    assert single.shape == batch.shape and single.dtype == batch.dtype == np.float64
    differ = np.argwhere(single.view("int64") != batch.view("int64"))
    assert not len(differ), [(int(i), FEATURE_COLUMNS[j], single[i, j], batch[i, j]) for i, j in differ[:5]]


# ---- the API: a validated TelcoCustomer against the pipeline's cleaning + build_features ---------------

def _typed(record: dict) -> dict:
    """A snapshot row (text) as a client sends it in JSON."""
    total = record["TotalCharges"].strip()
    return {**record, "SeniorCitizen": int(record["SeniorCitizen"]), "tenure": int(record["tenure"]),
            "MonthlyCharges": float(record["MonthlyCharges"]), "TotalCharges": float(total) if total else None}


def _api_and_batch(customers: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's features by the API's single-customer path, and by cleaning + ``build_features``
    on the same customers as text records (as the API's batch path and its self-check send them)."""
    parsed = [TelcoCustomer.model_validate(c) for c in customers]
    single = np.vstack([api_feature_row(c) for c in parsed])
    clean, rejected = clean_snapshot(raw_frame(customers_frame(parsed).assign(Churn="").to_dict("records")))
    assert rejected.empty, rejected["reasons"].tolist()
    features = build_features(clean).set_index("customer_id").loc[[c.customerID for c in parsed]]
    return single, feature_matrix(features).to_numpy()


def test_the_api_single_path_equals_build_features_on_synthetic_customers():
    records = []
    for seed in (1, 2):
        frame = generate_customers(1500, seed=seed, id_offset=seed * 100_000).drop(columns="Churn")
        records += [_typed(r) for r in frame.astype(str).to_dict("records")]
    edge = {"tenure": 0, "TotalCharges": None}, {"tenure": 0, "TotalCharges": 0.0}, \
        {"tenure": 0, "MonthlyCharges": 0.0, "TotalCharges": None}, {"tenure": 7, "TotalCharges": 0.0}, \
        {"tenure": 5, "MonthlyCharges": 0.0, "TotalCharges": 0.0}, {"tenure": 6}, \
        {"tenure": MAX_TENURE_MONTHS, "MonthlyCharges": MAX_MONTHLY_CHARGES,
         "TotalCharges": TOTAL_CHARGES_SLACK * MAX_MONTHLY_CHARGES * MAX_TENURE_MONTHS}, \
        {"MonthlyCharges": 0.01, "TotalCharges": 0.01}, {"tenure": 1, "MonthlyCharges": 1e-9, "TotalCharges": 3e-9}
    for i, change in enumerate(edge):
        records[i * 40: i * 40 + 40] = [{**r, **change} for r in records[i * 40: i * 40 + 40]]
    single, batch = _api_and_batch(records)
    assert_bitwise_equal(single, batch)
    assert len({row.tobytes() for row in batch}) > 2900  # varied customers, not one repeated


@st.composite
def telco_customers(draw, customer_id: str) -> dict:
    phone = draw(st.sampled_from(["Yes", "No"]))
    internet = draw(st.sampled_from(INTERNET_SERVICES))
    addon = st.just("No internet service") if internet == "No" else st.sampled_from(["Yes", "No"])
    tenure = draw(st.integers(0, MAX_TENURE_MONTHS))
    monthly = draw(st.integers(0, int(MAX_MONTHLY_CHARGES * 100))) / 100
    ceiling = int(_ceiling(tenure) * 100)
    total = draw(st.one_of(st.integers(0, ceiling), st.integers(0, int(monthly * 100) * max(tenure, 1) + 100)))
    return {
        "customerID": customer_id, "gender": draw(st.sampled_from(GENDERS)),
        "SeniorCitizen": draw(st.sampled_from([0, 1])),
        "Partner": draw(st.sampled_from(["Yes", "No"])), "Dependents": draw(st.sampled_from(["Yes", "No"])),
        "tenure": tenure, "PhoneService": phone,
        "MultipleLines": draw(st.sampled_from(["Yes", "No"])) if phone == "Yes" else "No phone service",
        "InternetService": internet, **{column: draw(addon) for column in INTERNET_ADDON_COLUMNS},
        "Contract": draw(st.sampled_from(CONTRACTS)), "PaperlessBilling": draw(st.sampled_from(["Yes", "No"])),
        "PaymentMethod": draw(st.sampled_from(PAYMENT_METHODS)), "MonthlyCharges": monthly,
        "TotalCharges": None if tenure == 0 and draw(st.booleans()) else total / 100,
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 20).flatmap(lambda n: st.tuples(*(telco_customers(f"H{i:04d}") for i in range(n)))))
def test_the_api_single_path_equals_build_features_on_any_valid_customer(customers):
    single, batch = _api_and_batch(list(customers))
    assert_bitwise_equal(single, batch)


# ---- the shared formulas themselves, on clean_customers rows -------------------------------------------

def _clean_frame(rows: list[dict], categorical: bool) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame.insert(0, "snapshot_date", pd.Timestamp("2024-05-01"))
    frame.insert(1, "customer_id", [f"C{i:05d}" for i in range(len(rows))])
    frame["churned"] = pd.array([None] * len(rows), dtype="boolean")
    frame["tenure_months"] = frame["tenure_months"].astype("int64")
    if categorical:
        for name, values in _CATEGORIES.items():
            frame[name] = frame[name].astype(pd.CategoricalDtype(list(values)))
    return frame


@st.composite
def clean_rows(draw) -> dict:
    tenure = draw(st.integers(0, MAX_TENURE_MONTHS))
    # Any float the cleaning accepts, subnormals included: a tiny bill makes charge_increase_ratio overflow
    # to inf, which both paths must still agree on.
    money = st.floats(0, MAX_MONTHLY_CHARGES)
    return {
        "tenure_months": tenure,
        "monthly_charges": draw(money),
        "total_charges": draw(st.one_of(money, st.floats(0, _ceiling(tenure)))),
        **{name: draw(st.booleans()) for name in _FLAGS},
        **{name: draw(st.sampled_from(values)) for name, values in _CATEGORIES.items()},
    }


def _one_customer(row: pd.Series) -> dict:
    """A clean row typed as :func:`feature_row` takes it: floats, bools and text."""
    return {name: float(row[name]) if name.endswith(("_months", "_charges"))
            else bool(row[name]) if name in _FLAGS else str(row[name]) for name in FEATURE_INPUTS}


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(st.lists(clean_rows(), min_size=1, max_size=30), st.booleans())
def test_feature_row_equals_build_features_on_any_clean_row(rows, categorical):
    clean = _clean_frame(rows, categorical)
    batch = feature_matrix(build_features(clean)).to_numpy()
    single = np.vstack([feature_row(_one_customer(row)) for _, row in clean.iterrows()])
    assert_bitwise_equal(single, batch)


def test_the_feature_inputs_are_clean_customer_columns():
    assert set(FEATURE_INPUTS) <= set(CleanCustomers.to_schema().columns)


@pytest.mark.parametrize("categorical", [True, False])
def test_build_features_keeps_its_schema(categorical):
    rows = [{"tenure_months": t, "monthly_charges": 50.0, "total_charges": 50.0 * t,
             **{name: True for name in _FLAGS}, **{name: values[0] for name, values in _CATEGORIES.items()}}
            for t in (0, 1, 30)]
    features = build_features(_clean_frame(rows, categorical))
    assert list(features.columns) == list(CustomerFeatures.to_schema().columns)
    assert features[list(FEATURE_COLUMNS)].dtypes.eq("float64").all()
    assert str(features["snapshot_date"].dtype) == "datetime64[ns]" and str(features["churned"].dtype) == "boolean"
    CustomerFeatures.validate(features)


def test_a_bill_average_below_a_cent_gives_finite_features_on_both_paths():
    """TotalCharges of 1e-310 over 5 months made charge_increase_ratio infinite, which would stop the
    whole day's scoring (the model refuses non-finite probabilities) for one hostile row."""
    base = _typed(generate_customers(3, seed=4).drop(columns="Churn").astype(str).to_dict("records")[0])
    customers = [{**base, "customerID": f"TINY-{i}", "tenure": 5, "MonthlyCharges": 70.0, "TotalCharges": total}
                 for i, total in enumerate((1e-310, 1e-9, 0.04, 0.05))]
    single, batch = _api_and_batch(customers)
    assert_bitwise_equal(single, batch)
    assert np.isfinite(batch).all()
    ratio = batch[:, list(FEATURE_COLUMNS).index("charge_increase_ratio")]
    assert ratio[:3].tolist() == [1.0, 1.0, 1.0]  # under a cent a month: no history to compare with
    assert ratio[3] == pytest.approx(70.0 / 0.01)
