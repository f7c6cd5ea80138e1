"""Clean customers → model-ready features (``customer_features``): numeric, complete, one row each.

The feature list is :data:`churn_pipeline.schemas.FEATURE_COLUMNS`; the same function builds
features for the graph, the ``score`` command and the API, so training and serving cannot drift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_pipeline.schemas import FEATURE_COLUMNS, CustomerFeatures

_ADDONS = ("online_security", "online_backup", "device_protection", "tech_support",
           "streaming_tv", "streaming_movies")


def _flag(mask) -> np.ndarray:
    return np.asarray(mask, dtype="float64")


def build_features(clean: pd.DataFrame) -> pd.DataFrame:
    """Features for every clean customer, in schema column order."""
    tenure = clean["tenure_months"].to_numpy(dtype="float64")
    contract = clean["contract"]
    monthly = clean["monthly_charges"].to_numpy(dtype="float64")
    total = clean["total_charges"].to_numpy(dtype="float64")
    # A new customer's average bill is the current bill; otherwise what was billed per month so far.
    avg_billed = np.where(tenure > 0, total / np.maximum(tenure, 1), monthly)
    ratio = np.where(avg_billed > 0, monthly / np.where(avg_billed > 0, avg_billed, 1), 1.0)

    addons = {name: _flag(clean[name] == "Yes") for name in _ADDONS}
    internet = clean["internet_service"]
    payment = clean["payment_method"]
    phone = _flag(clean["phone_service"])
    multiple = _flag(clean["multiple_lines"] == "Yes")
    has_internet = _flag(internet != "No")

    features = {
        "snapshot_date": clean["snapshot_date"].to_numpy(),
        "customer_id": clean["customer_id"].to_numpy(),
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": total,
        "avg_monthly_billed": avg_billed,
        "charge_increase_ratio": ratio,
        "log_tenure": np.log1p(tenure),
        "log_total_charges": np.log1p(total),
        "new_customer": _flag(tenure < 6),
        "month_to_month_tenure": tenure * _flag(contract == "Month-to-month"),
        "service_count": phone + multiple + has_internet + sum(addons.values()),
        "senior_citizen": _flag(clean["senior_citizen"]),
        "is_male": _flag(clean["gender"] == "Male"),
        "partner": _flag(clean["partner"]),
        "dependents": _flag(clean["dependents"]),
        "phone_service": phone,
        "multiple_lines": multiple,
        "internet_dsl": _flag(internet == "DSL"),
        "internet_fiber": _flag(internet == "Fiber optic"),
        **addons,
        "contract_one_year": _flag(contract == "One year"),
        "contract_two_year": _flag(contract == "Two year"),
        "paperless_billing": _flag(clean["paperless_billing"]),
        "pay_electronic_check": _flag(payment == "Electronic check"),
        "pay_mailed_check": _flag(payment == "Mailed check"),
        "pay_automatic": _flag(payment.isin(["Bank transfer (automatic)", "Credit card (automatic)"])),
        "month_to_month_echeck": _flag((contract == "Month-to-month") & (payment == "Electronic check")),
        "fiber_without_support": _flag(
            (internet == "Fiber optic") & (clean["tech_support"] != "Yes") & (clean["online_security"] != "Yes")
        ),
        "churned": clean["churned"].astype("boolean").to_numpy(),
    }
    frame = pd.DataFrame(features)
    frame["snapshot_date"] = frame["snapshot_date"].astype("datetime64[ns]")
    frame["churned"] = frame["churned"].astype("boolean")
    return frame[list(CustomerFeatures.to_schema().columns)]


def feature_matrix(features: pd.DataFrame) -> pd.DataFrame:
    """The model inputs only, as float64, in the fixed order."""
    return features[list(FEATURE_COLUMNS)].astype("float64")
