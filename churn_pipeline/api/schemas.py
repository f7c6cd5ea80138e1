"""Pydantic models of every request and response: the OpenAPI page (``/docs``) is the API's documentation.

A :class:`TelcoCustomer` accepts exactly what the pipeline's cleaning keeps (categories, ranges and the
consistency rules of :mod:`churn_pipeline.logic.cleaning`), so a customer the API accepts is scored,
and anything else is a 422 that names the field and the problem. Category values are exact (the
OpenAPI enum); the CSV path (``churn-pipeline score``) is more lenient about letter case and spaces.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from churn_pipeline.constants import INTERNET_ADDON_COLUMNS
from churn_pipeline.logic.cleaning import MAX_MONTHLY_CHARGES, MAX_TENURE_MONTHS, TOTAL_CHARGES_SLACK
from churn_pipeline.schemas import ID_LENGTH

YesNo = Literal["Yes", "No"]
InternetAddon = Literal["Yes", "No", "No internet service"]
Contract = Literal["Month-to-month", "One year", "Two year"]
InternetService = Literal["DSL", "Fiber optic", "No"]
PaymentMethod = Literal["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"]
TenureBand = Literal["0-5 months", "6-11 months", "12-23 months", "24-47 months", "48+ months"]
RiskTier = Literal["Low", "Medium", "High"]
SegmentType = Literal["contract", "tenure_band", "internet_service", "payment_method"]
CustomerId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=ID_LENGTH)]
Money = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Probability = Annotated[float, Field(ge=0, le=1)]

_PRINTABLE_ASCII = re.compile(r"[!-~]+")  # as the cleaning requires of a customerID
_EXAMPLE = {
    "customerID": "7590-VHVEG", "gender": "Female", "SeniorCitizen": 0, "Partner": "Yes", "Dependents": "No",
    "tenure": 1, "PhoneService": "No", "MultipleLines": "No phone service", "InternetService": "DSL",
    "OnlineSecurity": "No", "OnlineBackup": "Yes", "DeviceProtection": "No", "TechSupport": "No",
    "StreamingTV": "No", "StreamingMovies": "No", "Contract": "Month-to-month", "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check", "MonthlyCharges": 29.85, "TotalCharges": 29.85,
}


def _error(field: str, kind: str, message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=value)


class TelcoCustomer(BaseModel):
    """One customer in the IBM Telco schema (the columns of a snapshot file, ``Churn`` optional and ignored)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    customerID: CustomerId = Field(description="Customer identifier (1-64 characters). A customer the champion "
                                               "was trained on is scored by the fold model that never saw its label.")
    gender: Literal["Female", "Male"]
    SeniorCitizen: Literal[0, 1] = Field(description="1 if 65 or older (also accepted as \"0\"/\"1\")")
    Partner: YesNo
    Dependents: YesNo
    tenure: int = Field(ge=0, le=MAX_TENURE_MONTHS, description="Whole months as a customer; 0 = new customer")
    PhoneService: YesNo
    MultipleLines: Literal["Yes", "No", "No phone service"] = Field(
        description="'No phone service' when PhoneService is No")
    InternetService: InternetService
    OnlineSecurity: InternetAddon = Field(description="'No internet service' exactly when InternetService is No "
                                                      "(the same rule for the five other add-ons)")
    OnlineBackup: InternetAddon
    DeviceProtection: InternetAddon
    TechSupport: InternetAddon
    StreamingTV: InternetAddon
    StreamingMovies: InternetAddon
    Contract: Contract
    PaperlessBilling: YesNo
    PaymentMethod: PaymentMethod
    MonthlyCharges: float = Field(ge=0, le=MAX_MONTHLY_CHARGES, allow_inf_nan=False, description="Monthly bill, USD")
    TotalCharges: float | None = Field(
        default=None, ge=0, allow_inf_nan=False,
        description="Billed to date, USD. May be null, blank or absent only for a new customer (tenure 0).")
    Churn: Literal["Yes", "No", ""] | None = Field(default=None, description="Ignored: a label is not an input")

    @field_validator("customerID")
    @classmethod
    def _printable_id(cls, value: str) -> str:
        if not _PRINTABLE_ASCII.fullmatch(value):
            raise PydanticCustomError("bad_customer_id", "must be printable ASCII without spaces or invisible "
                                                         "characters (two ids must never merely look the same)")
        return value

    @field_validator("SeniorCitizen", mode="before")
    @classmethod
    def _senior_as_text(cls, value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.strip() in ("0", "1") else value

    @field_validator("TotalCharges", mode="before")
    @classmethod
    def _blank_total(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip() == "" else value

    @model_validator(mode="after")
    def _consistent(self) -> TelcoCustomer:
        """The cleaning's cross-column rules, reported on the field that breaks them."""
        errors = []
        if self.PhoneService == "No" and self.MultipleLines != "No phone service":
            errors.append(_error("MultipleLines", "inconsistent_services",
                                 "must be 'No phone service' when PhoneService is No", self.MultipleLines))
        no_internet = self.InternetService == "No"
        for addon in INTERNET_ADDON_COLUMNS:
            value = getattr(self, addon)
            if no_internet != (value == "No internet service"):
                rule = "must be" if no_internet else "cannot be"
                errors.append(_error(addon, "inconsistent_services",
                                     f"{rule} 'No internet service' when InternetService is "
                                     f"{self.InternetService!r}", value))
        if self.TotalCharges is None and self.tenure > 0:
            errors.append(_error("TotalCharges", "missing_value",
                                 "is blank, which only a new customer (tenure 0) may be; "
                                 f"tenure is {self.tenure}", self.TotalCharges))
        elif self.TotalCharges is not None \
                and self.TotalCharges > TOTAL_CHARGES_SLACK * MAX_MONTHLY_CHARGES * max(self.tenure, 1):
            errors.append(_error("TotalCharges", "out_of_range",
                                 "is far above what MonthlyCharges x tenure allows", self.TotalCharges))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


class Prediction(BaseModel):
    """The champion's answer for one customer."""

    customerID: str
    churn_probability: Probability = Field(description="Calibrated probability of churning in the next label window")
    risk_tier: RiskTier = Field(description="Low / Medium / High by the model's stored thresholds")
    expected_revenue_loss: Money = Field(description="churn_probability x MonthlyCharges x horizon months, USD")
    top_reasons: list[str] = Field(description="The factors pushing this score up most, strongest first")
    model_version: str = Field(description="Content hash of the model that scored")


class BatchPrediction(Prediction):
    priority_rank: int = Field(ge=1, description="1 = call first within this batch (expected loss, then probability)")


class BatchResponse(BaseModel):
    model_version: str
    horizon_months: float
    count: int
    predictions: list[BatchPrediction] = Field(description="One per input customer, in input order")


def batch_request_model(max_batch: int) -> type[BaseModel]:
    """The batch request with its size limit in the schema (``CHURN_API_MAX_BATCH`` is read at start-up)."""
    return create_model(
        "BatchRequest",
        __config__=ConfigDict(extra="forbid"),
        customers=(list[TelcoCustomer], Field(min_length=1, max_length=max_batch,
                                              description=f"1 to {max_batch:,} customers (CHURN_API_MAX_BATCH)")),
    )


class ModelInfo(BaseModel):
    """A trained model as registered in ``model_runs``."""

    version: str
    algorithm: str
    snapshot_date: date = Field(description="Snapshot whose labels trained it")
    trained_at: datetime
    training_rows: int
    roc_auc: float
    roc_auc_std: float
    pr_auc: float
    brier: float
    predicted_to_actual: float
    tier_medium_threshold: float
    tier_high_threshold: float

    @field_validator("trained_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        """``model_runs`` stores UTC without a zone (MySQL DATETIME); say so, as RFC 3339 requires."""
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class ServingModel(ModelInfo):
    loaded_at: datetime = Field(description="When this API process loaded it (UTC)")
    fast_path: bool = Field(description="Single predictions use the checked fast path (else the pipeline's code)")


class DatabaseStatus(BaseModel):
    reachable: bool = Field(description="The output tables can be read")
    error: str | None = None


class ModelStatus(BaseModel):
    loaded: bool
    serving: ServingModel | None = None
    last_checked_at: datetime | None = Field(default=None, description="Last look at model_runs for a new champion")
    error: str | None = Field(default=None, description="Why no model, or why the newest champion is not loaded")


class Health(BaseModel):
    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="ok: model loaded and database reachable (HTTP 200); otherwise HTTP 503")
    model: ModelStatus
    database: DatabaseStatus


class Kpis(BaseModel):
    """One day of ``business_kpis``."""

    snapshot_date: date
    active_customers: int
    predicted_churners: float
    predicted_churn_rate: float
    actual_churn_rate: float | None
    monthly_revenue: float
    revenue_at_risk: float
    revenue_at_risk_high: float
    revenue_at_risk_medium: float
    revenue_at_risk_low: float
    high_risk_customers: int
    average_probability: float
    horizon_months: float
    campaign_list_size: int
    campaign_expected_profit: float
    model_version: str


class KpisResponse(BaseModel):
    latest: Kpis = Field(description="The requested day (default: the newest stored)")
    model: ModelInfo | None = Field(description="The model behind that day's scores, from model_runs")
    history: list[Kpis] = Field(description="Days up to and including the requested one, oldest first")


class Segment(BaseModel):
    """One row of ``segment_kpis``."""

    segment_type: SegmentType
    segment_value: str
    active_customers: int
    predicted_churners: float
    predicted_churn_rate: float
    actual_churn_rate: float | None
    revenue_at_risk: float
    average_probability: float


class SegmentsResponse(BaseModel):
    snapshot_date: date
    segments: list[Segment] = Field(description="Ordered by segment type, then revenue at risk (largest first)")


class ScoredCustomer(BaseModel):
    """One row of ``scored_customers``."""

    snapshot_date: date
    customer_id: str
    priority_rank: int = Field(description="1 = call first")
    churn_probability: float
    risk_tier: RiskTier
    monthly_charges: float
    expected_revenue_loss: float
    expected_contact_profit: float
    contract: Contract
    tenure_band: TenureBand
    internet_service: InternetService
    payment_method: PaymentMethod
    top_reasons: list[str]
    score_source: Literal["cross_fitted", "final_model"]
    model_version: str


class AtRiskPage(BaseModel):
    snapshot_date: date
    total: int = Field(description="Customers matching the filters")
    limit: int
    offset: int
    next_after_rank: int | None = Field(description="Pass as after_rank for the next page; null on the last page")
    customers: list[ScoredCustomer] = Field(description="In priority order")


class ScoreHistoryPoint(BaseModel):
    snapshot_date: date
    churn_probability: float
    risk_tier: RiskTier
    expected_revenue_loss: float
    priority_rank: int
    model_version: str


class CustomerResponse(BaseModel):
    customer_id: str
    latest: ScoredCustomer = Field(description="The customer's newest score")
    in_latest_snapshot: bool = Field(description="False if the newest snapshot no longer scores this customer "
                                                 "(churned, or not delivered)")
    history: list[ScoreHistoryPoint] = Field(description="Every stored score, oldest first")


class ErrorResponse(BaseModel):
    detail: str
