"""Data routes over the pipeline's output tables: KPIs, segments, the call list (JSON and CSV), one
customer's scores, and ``/health``.

The call list filters by tier and by segment. A segment is named either by its column
(``contract=Month-to-month``, ``tenure_band=0-5 months``, ``internet_service=Fiber optic``,
``payment_method=Electronic check``; several combine with AND) or generically by the pair that
``GET /segments`` returns (``segment_type=contract&segment_value=Month-to-month``), which is what a
client iterating over segments has at hand. Both spellings reach the same indexed columns.

Every route here but ``/health`` needs the API key when keys are configured
(:mod:`churn_pipeline.api.security`). ``/health`` is for orchestrators and load balancers and needs none:
its status code and ``status`` always tell whether the service can answer, but the serving model's
details and any error text are only shown to a caller with a valid key (or when no keys are configured).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Annotated, get_args

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from churn_pipeline.api.config import MAX_CSV_ROWS, MAX_PAGE_SIZE
from churn_pipeline.api.model_holder import short_error
from churn_pipeline.api.predict import serving_model_info
from churn_pipeline.api.queries import SCORE_COLUMNS, Reader
from churn_pipeline.api.schemas import (
    AtRiskPage,
    Contract,
    CustomerResponse,
    DatabaseStatus,
    ErrorResponse,
    Health,
    InternetService,
    KpisResponse,
    ModelStatus,
    PaymentMethod,
    RiskTier,
    SegmentsResponse,
    SegmentType,
    TenureBand,
)
from churn_pipeline.api.security import api_access, caller_authenticated
from churn_pipeline.schemas import ID_LENGTH

SEGMENT_VALUES: dict[str, tuple[str, ...]] = {
    "contract": get_args(Contract), "tenure_band": get_args(TenureBand),
    "internet_service": get_args(InternetService), "payment_method": get_args(PaymentMethod),
}
_ERRORS = {401: {"model": ErrorResponse, "description": "No valid API key (when the server requires keys)"},
           404: {"model": ErrorResponse, "description": "The day or customer is not stored"},
           503: {"model": ErrorResponse, "description": "The database cannot be reached or holds no tables yet"}}
AFTER_RANK_HELP = "Keyset paging: only priority_rank above this (next_after_rank of the previous page)"
MAX_RANK = 2**63 - 1  # priority_rank is a 64-bit integer column
DayParam = Annotated[date | None, Query(description="Snapshot day (YYYY-MM-DD); default: the newest stored")]

router = APIRouter(tags=["data"], dependencies=[Depends(api_access)], responses=_ERRORS)
health_router = APIRouter(tags=["health"])  # no key: orchestrators probe it


def reader(request: Request) -> Reader:
    return request.app.state.reader


class CallListFilters:
    """The call-list filters shared by the JSON page and the CSV download."""

    def __init__(
        self,
        date: DayParam = None,
        tier: Annotated[RiskTier | None, Query(description="Only this risk tier")] = None,
        contract: Annotated[Contract | None, Query()] = None,
        tenure_band: Annotated[TenureBand | None, Query()] = None,
        internet_service: Annotated[InternetService | None, Query()] = None,
        payment_method: Annotated[PaymentMethod | None, Query()] = None,
        segment_type: Annotated[SegmentType | None, Query(description="With segment_value: a segment as "
                                                                       "GET /segments names it")] = None,
        segment_value: Annotated[str | None, Query(max_length=64)] = None,
    ):
        self.date = date
        self.columns: dict[str, str] = {k: v for k, v in {
            "risk_tier": tier, "contract": contract, "tenure_band": tenure_band,
            "internet_service": internet_service, "payment_method": payment_method}.items() if v is not None}
        if (segment_type is None) != (segment_value is None):
            missing = "segment_value" if segment_value is None else "segment_type"
            raise _query_error(missing, "is required when the other of segment_type/segment_value is given", None)
        if segment_type is not None:
            allowed = SEGMENT_VALUES[segment_type]
            if segment_value not in allowed:
                raise _query_error("segment_value", f"is not a {segment_type} segment; allowed: "
                                   + ", ".join(allowed), segment_value)
            if self.columns.get(segment_type, segment_value) != segment_value:
                raise _query_error(segment_type, f"contradicts segment_value {segment_value!r}",
                                   self.columns[segment_type])
            self.columns[segment_type] = segment_value

    def label(self) -> str:
        """For a download's file name, e.g. ``risk_tier-High_contract-Month-to-month``."""
        return "_".join(f"{k}-{v}" for k, v in self.columns.items()).replace(" ", "-").replace("/", "-")


def _query_error(field: str, message: str, value) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("query", field), "msg": message, "input": value}])


@router.get("/kpis", response_model=KpisResponse, summary="Portfolio KPIs: one day and the days before it")
def kpis(db: Annotated[Reader, Depends(reader)], date: DayParam = None,
         history_days: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Days of history")] = 90):
    latest, history, model = db.kpis(date, history_days)
    return {"latest": latest, "history": history, "model": model}


@router.get("/segments", response_model=SegmentsResponse, summary="KPIs per segment for one day")
def segments(db: Annotated[Reader, Depends(reader)], date: DayParam = None,
             segment_type: Annotated[SegmentType | None, Query(description="Only this segmentation")] = None):
    day, rows = db.segments(date, segment_type)
    return {"snapshot_date": day, "segments": rows}


@router.get("/customers/at-risk", response_model=AtRiskPage,
            summary="The call list: scored customers in priority order, filtered and paged")
def at_risk(db: Annotated[Reader, Depends(reader)], filters: Annotated[CallListFilters, Depends()],
            limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
            offset: Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip (page number x limit)")] = 0,
            after_rank: Annotated[int | None, Query(ge=0, le=MAX_RANK, description=AFTER_RANK_HELP)] = None):
    day, total, rows = db.at_risk(filters.date, filters.columns, limit, offset, after_rank)
    last_page = len(rows) < limit or (after_rank is None and offset + len(rows) >= total)
    return {"snapshot_date": day, "total": total, "limit": limit, "offset": offset,
            "next_after_rank": None if last_page or not rows else rows[-1]["priority_rank"], "customers": rows}


CSV_COLUMNS = ("priority_rank", "customer_id", "risk_tier", "churn_probability", "monthly_charges",
               "expected_revenue_loss", "expected_contact_profit", "contract", "tenure_band", "internet_service",
               "payment_method", "top_reasons", "score_source", "model_version", "snapshot_date")
assert set(CSV_COLUMNS) == set(SCORE_COLUMNS)


@router.get("/customers/at-risk.csv", response_class=StreamingResponse,
            summary="The filtered call list as CSV (every matching customer, up to limit)",
            responses={200: {"content": {"text/csv": {}}}})
def at_risk_csv(db: Annotated[Reader, Depends(reader)], filters: Annotated[CallListFilters, Depends()],
                limit: Annotated[int, Query(ge=1, le=MAX_CSV_ROWS)] = MAX_CSV_ROWS):
    day, rows = db.at_risk_stream(filters.date, filters.columns, limit)
    name = "_".join(filter(None, ("call_list", day.isoformat(), filters.label()))) + ".csv"
    return StreamingResponse(_csv_lines(rows), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _csv_lines(rows: Iterator[dict]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for count, row in enumerate(rows, start=1):
        writer.writerow([
            "; ".join(row[c]) if c == "top_reasons" else row[c].isoformat() if c == "snapshot_date"
            else repr(row[c]) if isinstance(row[c], float) else row[c]
            for c in CSV_COLUMNS
        ])
        if count % 1000 == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get("/customers/{customer_id:path}", response_model=CustomerResponse,
            summary="One customer's newest score and its history")
def customer(customer_id: Annotated[str, Path(min_length=1, max_length=ID_LENGTH)],
             db: Annotated[Reader, Depends(reader)],
             history_days: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 400):
    rows, newest_day = db.customer(customer_id, history_days)
    latest = rows[-1]
    return {"customer_id": customer_id, "latest": latest, "in_latest_snapshot": latest["snapshot_date"] == newest_day,
            "history": rows}


@health_router.get("/health", response_model=Health, responses={503: {"model": Health}},
                   summary="Model loaded and database reachable (200), else 503 with the reason")
def health(request: Request, db: Annotated[Reader, Depends(reader)]):
    """No API key needed. Without a valid key (when keys are configured) the answer says only whether the
    model is loaded and the database reachable: no model version, no metrics, no error text."""
    holder = request.app.state.holder
    try:
        db.ping()
        database = DatabaseStatus(reachable=True)
    except Exception as error:  # noqa: BLE001 - reported, not raised
        database = DatabaseStatus(reachable=False, error=short_error(error))
    serving = holder.serving
    model = ModelStatus(loaded=serving is not None, serving=serving_model_info(serving) if serving else None,
                        last_checked_at=holder.last_checked_at, error=holder.error)
    status = "ok" if serving and database.reachable else "degraded" if serving or database.reachable \
        else "unavailable"
    if not caller_authenticated(request):
        model = ModelStatus(loaded=model.loaded)
        database = DatabaseStatus(reachable=database.reachable)
    body = Health(status=status, model=model, database=database)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if status == "ok" else 503)
