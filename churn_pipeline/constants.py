"""Names that operators, analysts and other tools rely on: tables, columns, category values."""

from __future__ import annotations

# Input: the IBM Telco customer-churn schema, in file order.
TELCO_COLUMNS: tuple[str, ...] = (
    "customerID", "gender", "SeniorCitizen", "Partner", "Dependents", "tenure",
    "PhoneService", "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup",
    "DeviceProtection", "TechSupport", "StreamingTV", "StreamingMovies", "Contract",
    "PaperlessBilling", "PaymentMethod", "MonthlyCharges", "TotalCharges", "Churn",
)
LABEL_COLUMN = "Churn"

YES_NO = ("No", "Yes")
GENDERS = ("Female", "Male")
MULTIPLE_LINES = ("No", "Yes", "No phone service")
INTERNET_SERVICES = ("DSL", "Fiber optic", "No")
INTERNET_ADDONS = ("No", "Yes", "No internet service")
CONTRACTS = ("Month-to-month", "One year", "Two year")
PAYMENT_METHODS = (
    "Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)",
)
INTERNET_ADDON_COLUMNS = (
    "OnlineSecurity", "OnlineBackup", "DeviceProtection", "TechSupport",
    "StreamingTV", "StreamingMovies",
)

# Allowed values of every categorical input column.
CATEGORY_VALUES: dict[str, tuple[str, ...]] = {
    "gender": GENDERS,
    "Partner": YES_NO,
    "Dependents": YES_NO,
    "PhoneService": YES_NO,
    "MultipleLines": MULTIPLE_LINES,
    "InternetService": INTERNET_SERVICES,
    **{column: INTERNET_ADDONS for column in INTERNET_ADDON_COLUMNS},
    "Contract": CONTRACTS,
    "PaperlessBilling": YES_NO,
    "PaymentMethod": PAYMENT_METHODS,
}

# Model candidates compared by nested cross-validation, as named in CHURN_MODEL_CANDIDATES (default: all).
# Here rather than in logic.estimators, which builds them, so that settings can name them without
# importing LightGBM and scikit-learn.
MODEL_CANDIDATES: tuple[str, ...] = ("logistic_regression", "random_forest", "lightgbm", "blend")

# Landing files: customers_YYYY-MM-DD.csv; the date is the daily partition key.
SNAPSHOT_FILE_PREFIX = "customers_"
SNAPSHOT_FILE_SUFFIX = ".csv"


def snapshot_file_name(snapshot_date: str) -> str:
    return f"{SNAPSHOT_FILE_PREFIX}{snapshot_date}{SNAPSHOT_FILE_SUFFIX}"
