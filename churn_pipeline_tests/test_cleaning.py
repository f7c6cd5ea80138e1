"""Cleaning rules: harmless variants are normalised, bad rows are rejected with every reason."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.ingest import read_snapshot
from churn_pipeline.schemas import CleanCustomers, RejectedCustomers
from churn_pipeline_tests.helpers import raw_frame, telco_rows


def _clean(*overrides):
    clean, rejected = clean_snapshot(raw_frame(telco_rows(*overrides)))
    CleanCustomers.validate(clean)
    RejectedCustomers.validate(rejected)
    return clean, rejected


def test_valid_rows_are_typed():
    clean, rejected = _clean({})
    assert rejected.empty
    row = clean.iloc[0]
    assert row["customer_id"] == "0000-TESTX"
    assert row["tenure_months"] == 12 and row["monthly_charges"] == 85.5 and row["total_charges"] == 1020.3
    assert row["partner"] is True or row["partner"] == True  # noqa: E712 - numpy bool
    assert row["contract"] == "Month-to-month" and row["tenure_band"] == "12-23 months"
    assert row["churned"] == False  # noqa: E712


@pytest.mark.parametrize(
    ("override", "column", "expected"),
    [
        ({"Contract": "  month-to-month "}, "contract", "Month-to-month"),
        ({"PaymentMethod": "ELECTRONIC CHECK"}, "payment_method", "Electronic check"),
        ({"Partner": "yes"}, "partner", True),
        ({"SeniorCitizen": "Yes"}, "senior_citizen", True),
        ({"MonthlyCharges": " 85.50 "}, "monthly_charges", 85.5),
        ({"tenure": "0", "TotalCharges": " "}, "total_charges", 0.0),
        ({"tenure": "0", "TotalCharges": ""}, "total_charges", 0.0),
        ({"Churn": ""}, "churned", pd.NA),
        ({"Churn": "yes"}, "churned", True),
    ],
    ids=["case+space", "upper-case", "lower-yes", "senior-yes", "padded-number", "new-customer-space",
         "new-customer-blank", "no-label", "label-case"],
)
def test_harmless_variants_are_normalised(override, column, expected):
    clean, rejected = _clean(override)
    assert rejected.empty, rejected["reasons"].tolist()
    value = clean.iloc[0][column]
    assert (value is pd.NA) if expected is pd.NA else value == expected


@pytest.mark.parametrize(
    ("override", "code", "words"),
    [
        ({"MonthlyCharges": "abc"}, "bad_number", "MonthlyCharges is not a finite number: 'abc'"),
        ({"MonthlyCharges": "nan"}, "bad_number", "MonthlyCharges"),
        ({"MonthlyCharges": "inf"}, "bad_number", "MonthlyCharges"),
        ({"MonthlyCharges": "-5"}, "out_of_range", "MonthlyCharges '-5'"),
        ({"MonthlyCharges": "1e12"}, "out_of_range", "MonthlyCharges"),
        ({"tenure": "-1"}, "out_of_range", "tenure '-1'"),
        ({"tenure": "2.5"}, "out_of_range", "tenure '2.5'"),
        ({"TotalCharges": " "}, "missing_value", "TotalCharges is blank but tenure is not 0"),
        ({"TotalCharges": "-10"}, "out_of_range", "TotalCharges"),
        ({"Contract": "Weekly"}, "unknown_category", "Contract has unknown value 'Weekly'"),
        ({"gender": ""}, "missing_value", "gender is blank"),
        ({"customerID": ""}, "missing_value", "customerID is blank"),
        ({"customerID": "X" * 65}, "id_too_long", "customerID"),
        ({"Churn": "Maybe"}, "bad_label", "Churn has unknown value 'Maybe'"),
        ({"SeniorCitizen": "2"}, "unknown_category", "SeniorCitizen"),
        ({"InternetService": "No"}, "inconsistent_services", "OnlineSecurity"),
        ({"PhoneService": "No"}, "inconsistent_services", "MultipleLines"),
    ],
)
def test_bad_rows_are_rejected_with_reason_and_original_values(override, code, words):
    rows = telco_rows({}, override)
    clean, rejected = clean_snapshot(raw_frame(rows))
    assert clean["customer_id"].tolist() == ["0000-TESTX"]
    assert len(rejected) == 1
    row = rejected.iloc[0]
    assert row["source_line"] == 3
    assert code in row["reason_codes"].split(",")
    assert words in row["reasons"]
    assert json.loads(row["original_values"]) == rows[1]


def test_every_reason_of_a_row_is_kept_in_one_rejected_row():
    _, rejected = _clean({"MonthlyCharges": "abc", "Contract": "Weekly", "Churn": "Maybe"})
    assert len(rejected) == 1
    assert set(rejected.iloc[0]["reason_codes"].split(",")) == {"bad_number", "unknown_category", "bad_label"}


def test_duplicates_exact_repeats_keep_one_conflicts_reject_all():
    rows = telco_rows({"customerID": "A"}, {"customerID": "A"}, {"customerID": "B"},
                      {"customerID": "B", "MonthlyCharges": "20.00"}, {"customerID": "C"})
    clean, rejected = clean_snapshot(raw_frame(rows))
    assert sorted(clean["customer_id"]) == ["A", "C"]
    codes = dict(zip(rejected["source_line"], rejected["reason_codes"]))
    assert codes == {3: "duplicate_row", 4: "duplicate_conflict", 5: "duplicate_conflict"}


def test_rows_read_equal_clean_plus_rejected_on_messy_synthetic_data():
    from churn_pipeline.synthetic import generate_customers

    frame = generate_customers(3000, seed=3, duplicate_rate=0.03, malformed_rate=0.05)
    raw = raw_frame(frame.astype(str).to_dict("records"))
    clean, rejected = clean_snapshot(raw)
    assert len(clean) + len(rejected) == len(raw)
    assert len(rejected) > 0.05 * len(raw) * 0.8
    assert clean["customer_id"].is_unique
    assert rejected["source_line"].is_unique


def test_real_sample_cleans_completely(telco_sample_path):
    raw = read_snapshot(telco_sample_path, "2024-03-01")
    clean, rejected = clean_snapshot(raw)
    assert len(rejected) == 0 and len(clean) == 5634
    new = clean[clean["tenure_months"] == 0]
    assert len(new) == 8 and (new["total_charges"] == 0).all()
    assert abs(clean["churned"].astype(bool).mean() - 0.2654) < 0.001
