"""Tests of the synthetic Telco customer generator."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from churn_pipeline.constants import (
    CATEGORY_VALUES,
    INTERNET_ADDON_COLUMNS,
    TELCO_COLUMNS,
    snapshot_file_name,
)
from churn_pipeline.synthetic import _customer_ids, generate_customers, write_snapshot

ID_PATTERN = re.compile(r"\d{4}-[A-Z]{5}")


@pytest.fixture(scope="module")
def customers() -> pd.DataFrame:
    return generate_customers(60_000, seed=7)


def read_back(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_columns_dtypes_and_values(customers):
    assert tuple(customers.columns) == TELCO_COLUMNS
    assert customers["SeniorCitizen"].dtype == np.int64
    assert customers["tenure"].dtype == np.int64
    assert customers["MonthlyCharges"].dtype == np.float64
    assert customers["TotalCharges"].map(type).eq(str).all()
    for column, values in CATEGORY_VALUES.items():
        assert set(customers[column]) <= set(values), column
    assert set(customers["Churn"]) == {"No", "Yes"}
    assert set(customers["SeniorCitizen"]) == {0, 1}
    assert customers["tenure"].between(0, 72).all()
    charges = customers["MonthlyCharges"]
    assert charges.between(18.25, 118.75).all()
    assert np.allclose(charges, charges.round(2))


def test_deterministic_and_seed_dependent():
    first = generate_customers(3_000, seed=11, duplicate_rate=0.1, malformed_rate=0.05)
    again = generate_customers(3_000, seed=11, duplicate_rate=0.1, malformed_rate=0.05)
    pd.testing.assert_frame_equal(first, again)
    other = generate_customers(3_000, seed=12, duplicate_rate=0.1, malformed_rate=0.05)
    assert not first["customerID"].isin(other["customerID"]).all()
    assert not first.drop(columns="customerID").equals(other.drop(columns="customerID"))


def test_rows_depend_only_on_seed_and_absolute_index():
    full = generate_customers(70_000, seed=3)
    pd.testing.assert_frame_equal(generate_customers(1_000, seed=3), full.iloc[:1_000])
    shifted = generate_customers(5_000, seed=3, id_offset=64_000)
    pd.testing.assert_frame_equal(shifted, full.iloc[64_000:69_000].reset_index(drop=True))
    assert generate_customers(0).columns.tolist() == list(TELCO_COLUMNS)


def test_customer_ids_unique_and_formatted(customers):
    ids = customers["customerID"]
    assert ids.is_unique
    assert ids.map(lambda value: bool(ID_PATTERN.fullmatch(value))).all()
    many = pd.Series(_customer_ids(np.arange(2_000_000, dtype=np.int64), seed=0))
    assert many.is_unique
    late = generate_customers(2_000, seed=0, id_offset=19_998_000)["customerID"]
    assert late.is_unique and not late.isin(many).any()
    assert not generate_customers(1_000, seed=1)["customerID"].equals(
        generate_customers(1_000, seed=2)["customerID"])


def test_service_consistency_rules(customers):
    no_phone = customers["PhoneService"] == "No"
    assert (customers.loc[no_phone, "MultipleLines"] == "No phone service").all()
    assert customers.loc[~no_phone, "MultipleLines"].isin(["Yes", "No"]).all()
    no_internet = customers["InternetService"] == "No"
    addons = customers[list(INTERNET_ADDON_COLUMNS)]
    assert (addons[no_internet] == "No internet service").all().all()
    assert addons[~no_internet].isin(["Yes", "No"]).all().all()
    assert no_phone.any() and no_internet.any()


def test_total_charges_follow_tenure(customers):
    blank = customers["TotalCharges"] == ""
    assert blank.equals(customers["tenure"] == 0)
    assert 0 < blank.sum() < 0.01 * len(customers)
    billed = customers[~blank]
    total = billed["TotalCharges"].astype(float)
    ratio = total / (billed["MonthlyCharges"] * billed["tenure"])
    assert ratio.between(0.6, 1.6).all() and abs(ratio.median() - 1) < 0.01
    first_month = billed["tenure"] == 1
    assert np.allclose(total[first_month], billed.loc[first_month, "MonthlyCharges"])
    assert not billed["TotalCharges"].str.contains(r"\.\d*0$|\.$").any()


def test_marginals_close_to_the_real_sample(customers):
    expected = {  # shares in the public IBM sample
        ("Contract", "Month-to-month"): 0.552, ("Contract", "Two year"): 0.239,
        ("InternetService", "Fiber optic"): 0.438, ("InternetService", "No"): 0.216,
        ("PaymentMethod", "Electronic check"): 0.335, ("PaperlessBilling", "Yes"): 0.589,
        ("Partner", "Yes"): 0.481, ("Dependents", "Yes"): 0.299, ("PhoneService", "No"): 0.098,
        ("OnlineSecurity", "Yes"): 0.289, ("StreamingTV", "Yes"): 0.385,
    }
    for (column, value), share in expected.items():
        assert abs((customers[column] == value).mean() - share) < 0.03, (column, value)
    assert abs(customers["SeniorCitizen"].mean() - 0.161) < 0.02
    assert 29 <= customers["tenure"].mean() <= 35
    assert 60 <= customers["MonthlyCharges"].mean() <= 70


def test_churn_rate_and_drivers(customers):
    churn = customers["Churn"] == "Yes"
    assert 0.24 <= churn.mean() <= 0.30
    by_contract = churn.groupby(customers["Contract"]).mean()
    assert by_contract["Month-to-month"] > 3 * by_contract["Two year"]
    tenure = customers["tenure"]
    assert churn[tenure < 6].mean() > 2 * churn[tenure > 48].mean()
    fiber = customers["InternetService"] == "Fiber optic"
    assert churn[fiber].mean() > churn[~fiber].mean()
    echeck = customers["PaymentMethod"] == "Electronic check"
    assert churn[echeck].mean() > churn[~echeck].mean()
    assert not churn[tenure == 0].any()


def test_signal_is_learnable_but_noisy(customers):
    frame = customers.iloc[:20_000]
    y = (frame["Churn"] == "Yes").to_numpy()
    numeric = frame[["SeniorCitizen", "tenure", "MonthlyCharges"]].astype(float)
    numeric["TotalCharges"] = pd.to_numeric(frame["TotalCharges"], errors="coerce").fillna(0.0)
    numeric = (numeric - numeric.mean()) / numeric.std()
    categorical = [c for c in CATEGORY_VALUES if c in frame]
    x = pd.concat([numeric, pd.get_dummies(frame[categorical], dtype=float)], axis=1).to_numpy()
    model = LogisticRegression(max_iter=2_000).fit(x[:14_000], y[:14_000])
    auc = roc_auc_score(y[14_000:], model.predict_proba(x[14_000:])[:, 1])
    assert 0.78 <= auc <= 0.90


def test_duplicate_rate_appends_exact_and_conflicting_copies():
    clean = generate_customers(2_000, seed=5)
    frame = generate_customers(2_000, seed=5, duplicate_rate=0.1)
    assert len(frame) == 2_200
    assert not frame["customerID"].head(2_000).equals(clean["customerID"])  # shuffled
    counts = frame["customerID"].value_counts()
    assert set(counts) == {1, 2} and (counts == 2).sum() == 200
    repeated = frame[frame["customerID"].isin(counts[counts == 2].index)]
    exact = repeated.duplicated(keep=False).sum() // 2
    assert exact == 100
    distinct = repeated.drop_duplicates()
    conflicting = distinct[distinct["customerID"].duplicated(keep=False)]
    assert conflicting["customerID"].nunique() == 100
    assert (conflicting.drop(columns="MonthlyCharges").duplicated(keep=False)).all()
    merged = frame.drop_duplicates().merge(clean, how="left", indicator=True)
    assert (merged["_merge"] == "both").sum() == 2_000
    assert generate_customers(2_000, seed=5, duplicate_rate=0.0).equals(clean)


def test_malformed_rate_corrupts_one_value_per_row():
    clean = generate_customers(6_000, seed=9)
    frame = generate_customers(6_000, seed=9, malformed_rate=0.06)
    assert frame["tenure"].dtype == object and frame["MonthlyCharges"].dtype == object
    reference = clean.astype({"tenure": str, "MonthlyCharges": str})
    changed = frame != reference
    assert (changed.sum(axis=1) <= 1).all() and changed.any(axis=1).sum() == 360
    kinds = {
        "MonthlyCharges": frame["MonthlyCharges"] == "abc",
        "tenure": frame["tenure"].str.startswith("-"),
        "TotalCharges": (frame["TotalCharges"] == "") & (clean["tenure"] > 0),
        "Contract": ~frame["Contract"].isin(CATEGORY_VALUES["Contract"]),
        "customerID": frame["customerID"] == "",
        "Churn": ~frame["Churn"].isin(["Yes", "No"]),
    }
    for column, mask in kinds.items():
        assert mask.sum() == 60, column
        assert changed.loc[mask, column].all(), column
    assert set(frame.loc[kinds["Contract"], "Contract"]) == {"Weekly"}
    assert set(frame.loc[kinds["Churn"], "Churn"]) == {"Maybe"}


@pytest.mark.parametrize("kwargs", [
    {"n": -1}, {"n": 10, "seed": -1}, {"n": 10, "duplicate_rate": 1.5},
    {"n": 10, "malformed_rate": -0.1}, {"n": 10, "id_offset": -5},
])
def test_rejects_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        generate_customers(**kwargs)


@pytest.mark.parametrize("options", [{}, {"duplicate_rate": 0.05, "malformed_rate": 0.05}])
def test_write_snapshot_round_trips(tmp_path, options):
    frame = generate_customers(3_000, seed=4, **options)
    landing = tmp_path / "landing" / "nested"
    path = write_snapshot(frame, landing, "2024-03-31")
    assert path == landing / snapshot_file_name("2024-03-31")
    assert path.name == "customers_2024-03-31.csv"
    assert [p.name for p in landing.iterdir()] == [path.name]
    assert path.stat().st_mode & 0o777 == 0o644
    pd.testing.assert_frame_equal(read_back(path), frame.astype(str))
    write_snapshot(frame.head(10), str(landing), "2024-03-31")
    assert len(read_back(path)) == 10


@pytest.mark.parametrize("bad", ["2024-13-01", "2024-02-30", "20240301", "2024-3-1", "yesterday", "",
                                 "2024-03-31/../x", None])
def test_write_snapshot_rejects_bad_dates(tmp_path, bad):
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        write_snapshot(generate_customers(5), tmp_path / "landing", bad)
    assert not (tmp_path / "landing").exists() or not any((tmp_path / "landing").iterdir())
