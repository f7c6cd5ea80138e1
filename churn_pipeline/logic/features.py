"""Clean customers → model-ready features (``customer_features``): numeric, complete, one row each.

The feature list is :data:`churn_pipeline.schemas.FEATURE_COLUMNS`. The formulas exist once, in
:func:`_formulas`, written element by element so that the same code runs on two kinds of input:

- many customers (:func:`build_features`, :func:`feature_columns`): one array per input column, for
  the graph, the ``score`` command and the API's batches;
- one customer (:func:`feature_row`): plain Python values, for the API's single-customer fast path,
  where NumPy's per-call overhead on one-element arrays would cost more than the prediction itself.

Only the handful of primitives that cannot be written with operators (``flag``, ``where``,
``maximum``, ``log1p``) differ between the two, so training and serving cannot drift.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churn_pipeline.schemas import FEATURE_COLUMNS, CustomerFeatures

_ADDONS = ("online_security", "online_backup", "device_protection", "tech_support",
           "streaming_tv", "streaming_movies")

# The clean_customers columns the formulas read: booleans as booleans, categories as their text values.
FEATURE_INPUTS: tuple[str, ...] = (
    "tenure_months", "monthly_charges", "total_charges", "senior_citizen", "gender", "partner", "dependents",
    "phone_service", "multiple_lines", "internet_service", *_ADDONS, "contract", "paperless_billing",
    "payment_method",
)
MIN_AVERAGE_BILL = 0.01  # USD per month: below it charge_increase_ratio is 1 (no billing history to compare)
_NUMBER_INPUTS = ("tenure_months", "monthly_charges", "total_charges")
_FLAG_INPUTS = ("senior_citizen", "partner", "dependents", "phone_service", "paperless_billing")


@dataclass(frozen=True)
class _Primitives:
    flag: Callable[[Any], Any]  # a condition as 1.0 / 0.0
    where: Callable[[Any, Any, Any], Any]  # both branches are evaluated: they must be safe everywhere
    maximum: Callable[[Any, Any], Any]
    log1p: Callable[[Any], Any]


def _flags(condition: Any) -> np.ndarray:
    return np.asarray(condition, dtype="float64")


def _pick(condition: bool, when_true: float, when_false: float) -> float:
    return when_true if condition else when_false


_MANY = _Primitives(flag=_flags, where=np.where, maximum=np.maximum, log1p=np.log1p)
# One customer: plain floats. log1p stays NumPy's, so a value is bit-for-bit the batch's.
_ONE = _Primitives(flag=float, where=_pick, maximum=max, log1p=np.log1p)
_in_feature_order = operator.itemgetter(*FEATURE_COLUMNS)


def _formulas(c: Mapping[str, Any], p: _Primitives) -> dict[str, Any]:
    """Every model input from the clean columns ``c``: arrays of many customers or one customer's values."""
    flag, where = p.flag, p.where
    tenure, monthly, total = c["tenure_months"], c["monthly_charges"], c["total_charges"]
    contract, internet, payment = c["contract"], c["internet_service"], c["payment_method"]
    month_to_month = contract == "Month-to-month"
    # A new customer's average bill is the current bill; otherwise what was billed per month so far.
    avg_billed = where(tenure > 0, total / p.maximum(tenure, 1.0), monthly)
    # Under a cent a month billed is no history to compare with (and 1e-310 would make the ratio inf).
    billed = avg_billed >= MIN_AVERAGE_BILL
    ratio = where(billed, monthly / where(billed, avg_billed, 1.0), 1.0)
    addons = {name: flag(c[name] == "Yes") for name in _ADDONS}
    phone = flag(c["phone_service"])
    multiple = flag(c["multiple_lines"] == "Yes")
    return {
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "avg_monthly_billed": avg_billed,
        "charge_increase_ratio": ratio,
        "log_tenure": p.log1p(tenure),
        "log_total_charges": p.log1p(total),
        "new_customer": flag(tenure < 6),
        "month_to_month_tenure": tenure * flag(month_to_month),
        "service_count": phone + multiple + flag(internet != "No") + sum(addons.values()),
        "senior_citizen": flag(c["senior_citizen"]),
        "is_male": flag(c["gender"] == "Male"),
        "partner": flag(c["partner"]),
        "dependents": flag(c["dependents"]),
        "phone_service": phone,
        "multiple_lines": multiple,
        "internet_dsl": flag(internet == "DSL"),
        "internet_fiber": flag(internet == "Fiber optic"),
        **addons,
        "contract_one_year": flag(contract == "One year"),
        "contract_two_year": flag(contract == "Two year"),
        "paperless_billing": flag(c["paperless_billing"]),
        "pay_electronic_check": flag(payment == "Electronic check"),
        "pay_mailed_check": flag(payment == "Mailed check"),
        "pay_automatic": flag((payment == "Bank transfer (automatic)") | (payment == "Credit card (automatic)")),
        "month_to_month_echeck": flag(month_to_month & (payment == "Electronic check")),
        "fiber_without_support": flag(
            (internet == "Fiber optic") & (c["tech_support"] != "Yes") & (c["online_security"] != "Yes")
        ),
    }


def feature_columns(columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The model inputs of many customers, one float64 array per feature in ``FEATURE_COLUMNS`` order.

    ``columns`` maps each of :data:`FEATURE_INPUTS` to one value per customer: NumPy arrays (numbers as
    float64, flags as bool, categories as text) or pandas Categoricals (compared by code: fast at scale).
    """
    values = _formulas(columns, _MANY)
    return {name: np.asarray(values[name], dtype="float64") for name in FEATURE_COLUMNS}


def feature_row(customer: Mapping[str, Any]) -> np.ndarray:
    """The model inputs of one customer as a 1 × features float64 matrix: the same formulas on plain values.

    ``customer`` maps each of :data:`FEATURE_INPUTS` to a Python value typed as in ``clean_customers``:
    numbers as float, flags as bool, categories as their text.
    """
    return np.array([_in_feature_order(_formulas(customer, _ONE))], dtype="float64")


def _input_columns(clean: pd.DataFrame) -> dict[str, Any]:
    def column(name: str) -> Any:
        series = clean[name]
        if name in _NUMBER_INPUTS:
            return series.to_numpy(dtype="float64")
        if isinstance(series.dtype, pd.CategoricalDtype):
            return series.array  # compares codes, and answers with a NumPy bool array
        return series.to_numpy()

    return {name: column(name) for name in FEATURE_INPUTS}


def build_features(clean: pd.DataFrame) -> pd.DataFrame:
    """Features for every clean customer, in schema column order."""
    frame = pd.DataFrame({
        "snapshot_date": clean["snapshot_date"].to_numpy(),
        "customer_id": clean["customer_id"].to_numpy(),
        **feature_columns(_input_columns(clean)),
        "churned": clean["churned"].astype("boolean").to_numpy(),
    })
    frame["snapshot_date"] = frame["snapshot_date"].astype("datetime64[ns]")
    frame["churned"] = frame["churned"].astype("boolean")
    return frame[list(CustomerFeatures.to_schema().columns)]


def feature_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """The model inputs only, as float64, in the fixed order."""
    return features[list(FEATURE_COLUMNS)].astype("float64")


_SAMPLE = {name: 1.0 if name in _NUMBER_INPUTS else True if name in _FLAG_INPUTS else "Yes" for name in FEATURE_INPUTS}
assert set(_formulas(_SAMPLE, _ONE)) == set(FEATURE_COLUMNS), "the formulas must give exactly FEATURE_COLUMNS"
