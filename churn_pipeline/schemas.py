"""One pandera ``DataFrameModel`` per output table: the single source of truth.

Each model validates the asset's output, and through :data:`TABLES` gives the MySQL/SQLite DDL
(types, NOT NULL, primary key, indexes, column comments), the Dagster type and the UI column schema.
Column ``metadata={"sql": ...}`` refines the SQL type where the pandas dtype is not enough
(``date`` for a day stored in a ``datetime64`` column, ``text`` / ``long_text`` for free text).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from churn_pipeline.constants import (
    CONTRACTS,
    GENDERS,
    INTERNET_ADDONS,
    INTERNET_SERVICES,
    MULTIPLE_LINES,
    PAYMENT_METHODS,
    TELCO_COLUMNS,
)


def _vectorised_text_check() -> None:
    """Make pandera's ``str`` dtype check vectorised where it can be.

    pandera (0.2x, pandas < 3) checks a ``Series[str]`` column by calling ``isinstance(x, str)`` on
    every value in Python: validating the 1M-row raw snapshot (25 text columns) took 31 s, nearly all
    of it there. pandas' ``infer_dtype`` answers "are all non-missing values str" in C; only when it
    says no (a failure to report) does the original element-wise check run, so failure cases and
    messages are pandera's own. Tested in test_storage (a non-str value is still refused)."""
    from pandas.api.types import infer_dtype
    from pandera.engines import pandas_engine

    original = pandas_engine.NpString.check
    if getattr(original, "_churn_vectorised", False):
        return

    def check(self, pandera_dtype, data_container=None):
        if (isinstance(data_container, pd.Series) and data_container.dtype == object
                and infer_dtype(data_container, skipna=True) in ("string", "empty")):
            return pd.Series(True, index=data_container.index)
        return original(self, pandera_dtype, data_container)

    check._churn_vectorised = True
    pandas_engine.NpString.check = check


_vectorised_text_check()

RISK_TIERS = ("Low", "Medium", "High")
TENURE_BANDS = ("0-5 months", "6-11 months", "12-23 months", "24-47 months", "48+ months")
SEGMENT_TYPES = ("contract", "tenure_band", "internet_service", "payment_method")
SCORE_SOURCES = ("cross_fitted", "final_model")

DATE = {"sql": "date"}
TEXT = {"sql": "text"}  # up to 64 KB
LONG_TEXT = {"sql": "long_text"}  # up to 16 MB
ID_LENGTH = 64


def _day(description: str) -> pa.Field:
    return pa.Field(description=description, metadata=DATE)


def _category(values: tuple[str, ...], description: str, nullable: bool = False):
    return pa.Field(
        dtype_kwargs={"categories": list(values), "ordered": False},
        description=description,
        nullable=nullable,
    )


def _customer_id() -> pa.Field:
    return pa.Field(str_length={"min_value": 1, "max_value": ID_LENGTH}, description="Customer identifier (customerID)")


def _probability(description: str) -> pa.Field:
    return pa.Field(ge=0.0, le=1.0, description=description)


def _money(description: str, nullable: bool = False) -> pa.Field:
    return pa.Field(ge=0.0, description=description, nullable=nullable)


_RAW_METADATA_COLUMNS = {
    "snapshot_date": (Series[pa.DateTime], _day("Snapshot day (partition key), from the file name")),
    "source_line": (Series[int], pa.Field(ge=2, description="Line number in the landing file (header is line 1)")),
    "source_file": (Series[str], pa.Field(str_length={"max_value": 255}, description="Landing file name")),
    "loaded_at": (Series[pa.DateTime], pa.Field(description="When the file was loaded (UTC)")),
}
# The delivered Telco columns are kept verbatim as text, so nothing is lost before validation.
_RAW_COLUMNS = {
    **_RAW_METADATA_COLUMNS,
    **{c: (Series[str], pa.Field(description=f"`{c}` as delivered", metadata=TEXT)) for c in TELCO_COLUMNS},
}
RawCustomers: type[pa.DataFrameModel] = type(
    "RawCustomers",
    (pa.DataFrameModel,),
    {
        "__doc__": "The day's snapshot exactly as delivered (every value as text), plus load metadata.",
        "__module__": __name__,
        "__annotations__": {name: annotation for name, (annotation, _) in _RAW_COLUMNS.items()},
        **{name: fld for name, (_, fld) in _RAW_COLUMNS.items()},
        "Config": type("Config", (), {"strict": True}),
    },
)


class CleanCustomers(pa.DataFrameModel):
    """Typed, deduplicated, validated customers: one row per customer and day."""

    snapshot_date: Series[pa.DateTime] = _day("Snapshot day")
    customer_id: Series[str] = _customer_id()
    gender: Series[pd.CategoricalDtype] = _category(GENDERS, "Gender")
    senior_citizen: Series[bool] = pa.Field(description="65 or older")
    partner: Series[bool] = pa.Field(description="Has a partner")
    dependents: Series[bool] = pa.Field(description="Has dependents")
    tenure_months: Series[int] = pa.Field(ge=0, le=1200, description="Months as a customer")
    phone_service: Series[bool] = pa.Field(description="Has phone service")
    multiple_lines: Series[pd.CategoricalDtype] = _category(MULTIPLE_LINES, "Multiple phone lines")
    internet_service: Series[pd.CategoricalDtype] = _category(INTERNET_SERVICES, "Internet service type")
    online_security: Series[pd.CategoricalDtype] = _category(INTERNET_ADDONS, "Online security add-on")
    online_backup: Series[pd.CategoricalDtype] = _category(INTERNET_ADDONS, "Online backup add-on")
    device_protection: Series[pd.CategoricalDtype] = _category(INTERNET_ADDONS, "Device protection add-on")
    tech_support: Series[pd.CategoricalDtype] = _category(INTERNET_ADDONS, "Tech support add-on")
    streaming_tv: Series[pd.CategoricalDtype] = _category(INTERNET_ADDONS, "Streaming TV add-on")
    streaming_movies: Series[pd.CategoricalDtype] = _category(INTERNET_ADDONS, "Streaming movies add-on")
    contract: Series[pd.CategoricalDtype] = _category(CONTRACTS, "Contract term")
    paperless_billing: Series[bool] = pa.Field(description="Paperless billing")
    payment_method: Series[pd.CategoricalDtype] = _category(PAYMENT_METHODS, "Payment method")
    monthly_charges: Series[float] = _money("Current monthly bill (MonthlyCharges), USD")
    total_charges: Series[float] = _money("Billed to date (TotalCharges), USD; 0 for a new customer")
    tenure_band: Series[pd.CategoricalDtype] = _category(TENURE_BANDS, "Tenure band (segment)")
    churned: Series[pd.BooleanDtype] = pa.Field(nullable=True, description="Churn label (left in the last month); NULL if not delivered")

    class Config:
        strict = True
        unique = ["snapshot_date", "customer_id"]


class RejectedCustomers(pa.DataFrameModel):
    """One row per rejected input row, with every reason and the original values."""

    snapshot_date: Series[pa.DateTime] = _day("Snapshot day")
    source_line: Series[int] = pa.Field(ge=2, description="Line number in the landing file")
    customer_id: Series[str] = pa.Field(nullable=True, description="customerID as delivered (may be blank)", metadata=TEXT)
    reason_codes: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 255}, description="Comma-separated reason codes, e.g. bad_number,unknown_category")
    reasons: Series[str] = pa.Field(str_length={"min_value": 1}, description="Every reason in words, naming the column and value", metadata=TEXT)
    # LONG_TEXT: 21 raw values of up to 64 KB each (the file-level limit), JSON-escaped, exceed TEXT.
    original_values: Series[str] = pa.Field(description="The delivered row as JSON", metadata=LONG_TEXT)

    class Config:
        strict = True


class CustomerFeatures(pa.DataFrameModel):
    """Model-ready features: one row per customer and day (all numeric, no missing values)."""

    snapshot_date: Series[pa.DateTime] = _day("Snapshot day")
    customer_id: Series[str] = _customer_id()
    tenure_months: Series[float] = pa.Field(ge=0, description="Months as a customer")
    monthly_charges: Series[float] = pa.Field(ge=0, description="Monthly bill, USD")
    total_charges: Series[float] = pa.Field(ge=0, description="Billed to date, USD")
    avg_monthly_billed: Series[float] = pa.Field(ge=0, description="total_charges / tenure (monthly_charges when tenure is 0)")
    charge_increase_ratio: Series[float] = pa.Field(description="monthly_charges / avg_monthly_billed: above 1 means the bill went up")
    log_tenure: Series[float] = pa.Field(ge=0, description="log(1 + tenure months): churn risk falls fastest in the first months")
    log_total_charges: Series[float] = pa.Field(ge=0, description="log(1 + total_charges)")
    new_customer: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if tenure is under 6 months")
    month_to_month_tenure: Series[float] = pa.Field(ge=0, description="tenure months if month-to-month, else 0")
    service_count: Series[float] = pa.Field(ge=0, le=9, description="Services taken: phone, extra lines, internet and its six add-ons")
    senior_citizen: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if 65 or older")
    is_male: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if gender is Male")
    partner: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if has a partner")
    dependents: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if has dependents")
    phone_service: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if has phone service")
    multiple_lines: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if has several lines")
    internet_dsl: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if DSL internet")
    internet_fiber: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if fiber-optic internet")
    online_security: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if online security add-on")
    online_backup: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if online backup add-on")
    device_protection: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if device protection add-on")
    tech_support: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if tech support add-on")
    streaming_tv: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if streaming TV")
    streaming_movies: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if streaming movies")
    contract_one_year: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if one-year contract")
    contract_two_year: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if two-year contract")
    paperless_billing: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if paperless billing")
    pay_electronic_check: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if pays by electronic check")
    pay_mailed_check: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if pays by mailed check")
    pay_automatic: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if pays by automatic bank transfer or card")
    month_to_month_echeck: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if month-to-month and electronic check")
    fiber_without_support: Series[float] = pa.Field(isin=[0.0, 1.0], description="1 if fiber without tech support or security")
    churned: Series[pd.BooleanDtype] = pa.Field(nullable=True, description="Churn label; NULL if not delivered")

    class Config:
        strict = True
        unique = ["snapshot_date", "customer_id"]


class ModelRuns(pa.DataFrameModel):
    """One row per training of the churn model: its card."""

    run_id: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": ID_LENGTH}, description="Dagster run id of the training")
    model_version: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": ID_LENGTH}, description="Content hash of the model artifact")
    snapshot_date: Series[pa.DateTime] = _day("Snapshot whose labels trained the model")
    trained_at: Series[pa.DateTime] = pa.Field(description="When training finished (UTC)")
    algorithm: Series[str] = pa.Field(str_length={"max_value": 64}, description="Chosen candidate")
    training_rows: Series[int] = pa.Field(ge=1, description="Labelled rows used to train")
    churn_rate: Series[float] = _probability("Share of churners in the training rows")
    roc_auc: Series[float] = _probability("Cross-validated ROC-AUC (mean over folds)")
    roc_auc_std: Series[float] = pa.Field(ge=0, description="Spread of ROC-AUC over folds")
    pr_auc: Series[float] = _probability("Cross-validated average precision")
    brier: Series[float] = _probability("Brier score of the out-of-fold probabilities")
    log_loss: Series[float] = pa.Field(ge=0, description="Log loss of the out-of-fold probabilities")
    predicted_to_actual: Series[float] = pa.Field(ge=0, description="Sum of out-of-fold p / actual churners (1 = calibrated)")
    tier_medium_threshold: Series[float] = _probability("p at or above which a customer is Medium risk")
    tier_high_threshold: Series[float] = _probability("p at or above which a customer is High risk")
    data_hash: Series[str] = pa.Field(str_length={"max_value": ID_LENGTH}, description="Hash of the training features and labels")
    artifact_path: Series[str] = pa.Field(str_length={"max_value": 1024}, description="Model file")
    artifact_sha256: Series[str] = pa.Field(str_length={"min_value": 64, "max_value": 64}, description="SHA-256 of the model file; checked before every load")
    promoted: Series[bool] = pa.Field(description="True if this training became the champion")
    champion_version: Series[str] = pa.Field(nullable=True, str_length={"max_value": ID_LENGTH}, description="Model that scores after this training (NULL: none passed the quality floor)")
    decision: Series[str] = pa.Field(description="Why the challenger was or was not promoted", metadata=TEXT)
    card: Series[str] = pa.Field(description="Model card as JSON: features, parameters, candidates, metrics", metadata=LONG_TEXT)

    class Config:
        strict = True


class ModelEvaluation(pa.DataFrameModel):
    """Out-of-fold probabilities of a trained model on its training customers (honest evaluation)."""

    model_version: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": ID_LENGTH}, description="Model evaluated")
    customer_id: Series[str] = _customer_id()
    churn_probability: Series[float] = _probability("Probability from the fold model that never saw this customer")
    churned: Series[bool] = pa.Field(description="The label")
    monthly_charges: Series[float] = _money("Monthly bill, USD (for revenue-weighted metrics)")

    class Config:
        strict = True
        unique = ["model_version", "customer_id"]


class ScoredCustomers(pa.DataFrameModel):
    """Active customers with churn probability, expected revenue loss and call priority."""

    snapshot_date: Series[pa.DateTime] = _day("Snapshot day")
    customer_id: Series[str] = _customer_id()
    churn_probability: Series[float] = _probability("Calibrated probability of churning in the next label window")
    risk_tier: Series[pd.CategoricalDtype] = _category(RISK_TIERS, "Low / Medium / High by the model's thresholds")
    monthly_charges: Series[float] = _money("Monthly bill, USD")
    expected_revenue_loss: Series[float] = _money("churn_probability x monthly_charges x horizon months, USD")
    priority_rank: Series[int] = pa.Field(ge=1, description="1 = call first (by expected revenue loss, then probability)")
    expected_contact_profit: Series[float] = pa.Field(description="p x success rate x monthly charges x horizon - contact cost, USD")
    contract: Series[pd.CategoricalDtype] = _category(CONTRACTS, "Contract term (segment)")
    tenure_band: Series[pd.CategoricalDtype] = _category(TENURE_BANDS, "Tenure band (segment)")
    internet_service: Series[pd.CategoricalDtype] = _category(INTERNET_SERVICES, "Internet service (segment)")
    payment_method: Series[pd.CategoricalDtype] = _category(PAYMENT_METHODS, "Payment method (segment)")
    top_reasons: Series[str] = pa.Field(description="The factors pushing this score up most, in words, separated by '; '", metadata=TEXT)
    score_source: Series[pd.CategoricalDtype] = _category(SCORE_SOURCES, "cross_fitted: by a fold model that never saw this customer's label")
    model_version: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": ID_LENGTH}, description="Model that made the score")

    class Config:
        strict = True
        unique = ["snapshot_date", "customer_id"]


class BusinessKpis(pa.DataFrameModel):
    """Daily portfolio KPIs over active customers."""

    snapshot_date: Series[pa.DateTime] = _day("Snapshot day")
    active_customers: Series[int] = pa.Field(ge=0, description="Customers not churned")
    predicted_churners: Series[float] = pa.Field(ge=0, description="Sum of churn probability over active customers")
    predicted_churn_rate: Series[float] = _probability("predicted_churners / active_customers")
    actual_churn_rate: Series[float] = pa.Field(ge=0, le=1, nullable=True, description="Churned / all labelled customers in the snapshot (NULL without labels)")
    monthly_revenue: Series[float] = _money("Monthly charges of active customers, USD")
    revenue_at_risk: Series[float] = _money("Sum of expected revenue loss over active customers, USD")
    revenue_at_risk_high: Series[float] = _money("Revenue at risk from High-tier customers, USD")
    revenue_at_risk_medium: Series[float] = _money("Revenue at risk from Medium-tier customers, USD")
    revenue_at_risk_low: Series[float] = _money("Revenue at risk from Low-tier customers, USD")
    high_risk_customers: Series[int] = pa.Field(ge=0, description="Active customers in the High tier")
    average_probability: Series[float] = _probability("Mean churn probability of active customers")
    horizon_months: Series[float] = pa.Field(gt=0, description="Months of revenue counted as at risk")
    contact_cost: Series[float] = _money("Cost of one retention contact, USD (CHURN_CONTACT_COST)")
    retention_success_rate: Series[float] = _probability("Share of contacted would-be churners kept (CHURN_RETENTION_SUCCESS_RATE)")
    campaign_list_size: Series[int] = pa.Field(ge=0, description="Customers to contact, top of the priority list, that maximises expected campaign profit")
    campaign_expected_profit: Series[float] = pa.Field(description="Expected profit of contacting that list, USD")
    model_version: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": ID_LENGTH}, description="Model behind the scores")

    class Config:
        strict = True
        unique = ["snapshot_date"]


class SegmentKpis(pa.DataFrameModel):
    """Daily KPIs per segment (contract, tenure band, internet service, payment method)."""

    snapshot_date: Series[pa.DateTime] = _day("Snapshot day")
    segment_type: Series[pd.CategoricalDtype] = _category(SEGMENT_TYPES, "Which segmentation")
    segment_value: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": 64}, description="The segment, e.g. Month-to-month")
    active_customers: Series[int] = pa.Field(ge=0, description="Active customers in the segment")
    predicted_churners: Series[float] = pa.Field(ge=0, description="Sum of churn probability")
    predicted_churn_rate: Series[float] = _probability("predicted_churners / active_customers")
    actual_churn_rate: Series[float] = pa.Field(ge=0, le=1, nullable=True, description="Churned / labelled customers in the segment")
    revenue_at_risk: Series[float] = _money("Sum of expected revenue loss, USD")
    average_probability: Series[float] = _probability("Mean churn probability")
    model_version: Series[str] = pa.Field(str_length={"min_value": 1, "max_value": ID_LENGTH}, description="Model behind the scores")

    class Config:
        strict = True
        unique = ["snapshot_date", "segment_type", "segment_value"]


@dataclass(frozen=True)
class TableSpec:
    """How a schema becomes a database table."""

    name: str
    model: type[pa.DataFrameModel]
    primary_key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()
    partition_column: str | None = "snapshot_date"
    description: str = field(default="")
    unique: tuple[tuple[str, ...], ...] = ()  # unique keys besides the primary key

    @property
    def schema(self) -> pa.DataFrameSchema:
        return self.model.to_schema()

    @property
    def columns(self) -> list[str]:
        return list(self.schema.columns)


def _spec(name, model, primary_key, indexes=(), partition_column="snapshot_date", unique=()) -> TableSpec:
    return TableSpec(name, model, tuple(primary_key), tuple(tuple(i) for i in indexes), partition_column,
                     (model.__doc__ or "").strip(), tuple(tuple(u) for u in unique))


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        _spec("raw_customers", RawCustomers, ["snapshot_date", "source_line"]),
        _spec("clean_customers", CleanCustomers, ["snapshot_date", "customer_id"],
              [["customer_id"], ["snapshot_date", "contract"]]),
        _spec("rejected_customers", RejectedCustomers, ["snapshot_date", "source_line"]),
        _spec("customer_features", CustomerFeatures, ["snapshot_date", "customer_id"], [["customer_id"]]),
        _spec("model_runs", ModelRuns, ["run_id"], [["snapshot_date"], ["model_version"]], partition_column=None),
        _spec("model_evaluation", ModelEvaluation, ["model_version", "customer_id"], partition_column="model_version"),
        # Keyed by priority: rows are stored in call order (the call list is a range of the key) and
        # written in that order, so every index but the customer lookup grows at its end (1M-row
        # loads in a small buffer pool; see docs/scaling.md). (customer_id, snapshot_date) is unique.
        _spec("scored_customers", ScoredCustomers, ["snapshot_date", "priority_rank"],
              [["snapshot_date", "risk_tier", "priority_rank"], ["snapshot_date", "contract", "priority_rank"]],
              unique=[["customer_id", "snapshot_date"]]),
        _spec("business_kpis", BusinessKpis, ["snapshot_date"]),
        _spec("segment_kpis", SegmentKpis, ["snapshot_date", "segment_type", "segment_value"]),
    )
}

FEATURE_COLUMNS: tuple[str, ...] = tuple(
    c for c in CustomerFeatures.to_schema().columns if c not in ("snapshot_date", "customer_id", "churned")
)
