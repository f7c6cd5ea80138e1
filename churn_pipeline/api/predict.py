"""Scoring routes: ``POST /predict`` (one customer), ``POST /predict/batch`` (many), ``GET /model``.

One customer is scored inline on the event loop when the model has the checked fast path (well under
a millisecond, cheaper than a thread hop); anything slower runs in the threadpool so it never stalls
other requests. A batch is one DataFrame through the pipeline's own steps, with exactly
``score_telco_frame``'s answers and 422s (:meth:`Scorer.score_customers`: the clean rows are typed
straight from the validated customers, which saves the cleaning's ~17 ms of fixed cost; ids repeated
in a batch go through the cleaning, which rejects them). It runs in the threadpool: a few milliseconds
even for three customers, too slow for the event loop.

If no model is loaded the answer is 503 with the reason; if scoring fails it is 500 with the reason.
There is never a default or made-up probability. When API keys are configured every route here needs
one (401 otherwise; :mod:`churn_pipeline.api.security`), and a body over its size limit is a 413.
"""

# No ``from __future__ import annotations`` here: the batch request model is built at start-up (its
# size limit is a setting) and FastAPI must see the class itself in the endpoint's signature.

import json
import logging

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool

from churn_pipeline.api.model_holder import Serving
from churn_pipeline.api.schemas import (
    BatchResponse,
    ErrorResponse,
    Prediction,
    ServingModel,
    TelcoCustomer,
    batch_request_model,
)
from churn_pipeline.api.scorer import Scored, Scorer, split_reasons
from churn_pipeline.api.security import api_access
from churn_pipeline.logic.serving import BadCustomerRows

log = logging.getLogger(__name__)

_ERRORS = {401: {"model": ErrorResponse, "description": "No valid API key (when the server requires keys)"},
           503: {"model": ErrorResponse, "description": "No model loaded (none registered, or the database is down)"},
           500: {"model": ErrorResponse, "description": "Scoring failed; no probability is made up"}}
_TOO_LARGE = {413: {"model": ErrorResponse, "description": "The request body is larger than allowed"}}


class ServiceUnavailable(Exception):
    """HTTP 503 with a message: no model, or the database cannot be reached."""


def current_serving(request: Request) -> Serving:
    holder = request.app.state.holder
    serving = holder.serving
    if serving is None:
        raise ServiceUnavailable(f"no churn model is loaded, so nothing can be scored: {holder.error}")
    return serving


def _json(payload: dict) -> Response:
    return Response(json.dumps(payload), media_type="application/json")


def _prediction(scored: Scored) -> dict:
    return {"customerID": scored.customerID, "churn_probability": scored.churn_probability,
            "risk_tier": scored.risk_tier, "expected_revenue_loss": scored.expected_revenue_loss,
            "top_reasons": scored.top_reasons, "model_version": scored.model_version}


def _scoring_failed(scorer: Scorer, error: Exception) -> HTTPException:
    log.exception("scoring with model %s failed", scorer.version)
    return HTTPException(500, f"scoring with model {scorer.version} failed: {type(error).__name__}: {error}")


def _bad_rows(error: BadCustomerRows) -> RequestValidationError:
    """Rows the pipeline's cleaning rejects (e.g. a customerID twice in one batch), as a 422."""
    return RequestValidationError([
        {"type": codes, "loc": ("body", "customers", int(row)), "msg": reasons, "input": None}
        for row, codes, reasons in error.problems
    ])


def predict_router(max_batch: int) -> APIRouter:
    router = APIRouter(tags=["scoring"], dependencies=[Depends(api_access)])
    BatchRequest = batch_request_model(max_batch)  # noqa: N806 - a class, named like one

    @router.post("/predict", response_model=Prediction, responses={**_ERRORS, **_TOO_LARGE},
                 summary="Score one customer with the champion model")
    async def predict(customer: TelcoCustomer, request: Request) -> Response:
        scorer = current_serving(request).scorer
        try:
            if scorer.inline:
                scored = scorer.score_one(customer)
            else:
                scored = await run_in_threadpool(scorer.score_one, customer)
        except BadCustomerRows as error:
            raise RequestValidationError([{"type": codes, "loc": ("body",), "msg": reasons, "input": None}
                                          for _, codes, reasons in error.problems]) from None
        except Exception as error:  # noqa: BLE001 - any other failure is a 500 with its reason
            raise _scoring_failed(scorer, error) from None
        return _json(_prediction(scored))

    @router.post("/predict/batch", response_model=BatchResponse, responses={**_ERRORS, **_TOO_LARGE},
                 summary=f"Score up to {max_batch:,} customers in one vectorised pass")
    def predict_batch(body: BatchRequest, request: Request) -> Response:
        scorer = current_serving(request).scorer
        try:
            frame = scorer.score_customers(body.customers)
        except BadCustomerRows as error:
            raise _bad_rows(error) from None
        except Exception as error:  # noqa: BLE001
            raise _scoring_failed(scorer, error) from None
        predictions = [
            {"customerID": cid, "churn_probability": p, "risk_tier": tier, "expected_revenue_loss": loss,
             "top_reasons": split_reasons(reasons), "model_version": version, "priority_rank": rank}
            for cid, p, tier, loss, rank, reasons, version in zip(
                frame["customerID"].tolist(), frame["churn_probability"].tolist(),
                frame["risk_tier"].astype(str).tolist(), frame["expected_revenue_loss"].tolist(),
                frame["priority_rank"].tolist(), frame["top_reasons"].tolist(), frame["model_version"].tolist())
        ]
        return _json({"model_version": scorer.version, "horizon_months": scorer.horizon_months,
                      "count": len(predictions), "predictions": predictions})

    @router.get("/model", response_model=ServingModel, responses=_ERRORS, summary="The model this API scores with")
    def serving_model(request: Request) -> ServingModel:
        return serving_model_info(current_serving(request))

    return router


def serving_model_info(serving: Serving) -> ServingModel:
    run = serving.scorer.run
    return ServingModel(version=serving.scorer.version, loaded_at=serving.loaded_at,
                        fast_path=serving.scorer.fast_path,
                        **{k: run[k] for k in ServingModel.model_fields if k in run and k != "version"})
