"""Scoring active customers: probability, risk tier, expected revenue loss, priority and reasons.

Expected revenue loss = p · monthly charges · horizon months (forward-looking money, DESIGN.md).
Priority ranks active customers by expected revenue loss, then probability, then customer id.
The expected profit of a retention contact, ``p·s·m·H − c``, ranks the same way (see ``campaign``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn_pipeline.logic.campaign import contact_profit
from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.logic.reasons import top_reasons
from churn_pipeline.logic.spill import bucket_sorted
from churn_pipeline.schemas import ScoredCustomers

SEGMENT_COLUMNS = ("contract", "tenure_band", "internet_service", "payment_method")


# The columns of clean_customers that scoring needs (the rest of a customer is in its features).
CLEAN_COLUMNS_FOR_SCORING = ["snapshot_date", "customer_id", "churned", "monthly_charges", *SEGMENT_COLUMNS]


@dataclass
class ScorePlan:
    """Pass one of scoring: every active customer's probability and priority, a few numbers per customer.

    Priority ranks need every customer's expected loss before any row can be written, so scoring
    streams in two passes over the day's chunks: :func:`plan_scores` keeps ~40 bytes per customer,
    then :func:`scored_chunks` explains and writes one chunk at a time. Memory grows with the chunk
    (features, contributions, reason text), not with the customer count, beyond these arrays."""

    customer_id: np.ndarray  # active customers in chunk order
    probability: np.ndarray
    folds: np.ndarray  # the fold model that scored each customer (-1 = final model)
    expected_revenue_loss: np.ndarray
    monthly_charges: np.ndarray
    priority_rank: np.ndarray  # 1 = call first

    def __len__(self) -> int:
        return len(self.probability)


def _check_aligned(clean: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
    """The active-customer mask of a chunk whose clean rows and features hold the same customers."""
    if len(clean) != len(features) or not (clean["customer_id"].to_numpy() == features["customer_id"].to_numpy()).all():
        raise ValueError("clean customers and features must hold the same customers in the same order")
    return ~clean["churned"].fillna(False).to_numpy(dtype=bool)


def plan_scores(chunks: Iterable[tuple[pd.DataFrame, pd.DataFrame]], model: ChurnModel,
                horizon_months: float, cross_fit: bool) -> ScorePlan:
    """Pass one over ``(clean, features)`` chunks: probabilities, expected losses and priority ranks.

    ``cross_fit`` must be true when ``model`` was trained on this snapshot's labels: each training
    customer is then scored by the fold model that never saw it (the leakage rule)."""
    ids, probabilities, folds, monthly = [], [], [], []
    for clean, features in chunks:
        active = _check_aligned(clean, features)
        features = features[active]
        p, f = model.predict_proba(features, cross_fit=cross_fit)
        ids.append(features["customer_id"].to_numpy(dtype=object))
        probabilities.append(p)
        folds.append(f.astype("int16"))
        monthly.append(clean["monthly_charges"].to_numpy(dtype="float64")[active])
    customer_id = np.concatenate(ids) if ids else np.array([], dtype=object)
    probability = np.concatenate(probabilities) if probabilities else np.array([], dtype="float64")
    monthly_charges = np.concatenate(monthly) if monthly else np.array([], dtype="float64")
    loss = probability * monthly_charges * horizon_months
    # Priority: expected revenue loss, then probability, then customer id (a stable, total order).
    order = np.lexsort((customer_id.astype(str), -probability, -loss))
    rank = np.empty(len(order), dtype="int64")
    rank[order] = np.arange(1, len(order) + 1, dtype="int64")
    return ScorePlan(customer_id, probability, np.concatenate(folds) if folds else np.array([], dtype="int16"),
                     loss, monthly_charges, rank)


def scored_chunks(chunks: Iterable[tuple[pd.DataFrame, pd.DataFrame]], plan: ScorePlan, model: ChurnModel,
                  model_version: str, success_rate: float = 0.3, contact_cost: float = 25.0,
                  ) -> Iterator[pd.DataFrame]:
    """Pass two over the same chunks as pass one (customer order): ``scored_customers`` rows, one chunk
    at a time, with reasons.

    The probabilities are the plan's (never recomputed, so the written rows are the ones ranked);
    a chunk holding other customers than pass one saw is an error, not a silent mix."""
    start = 0
    for clean, features in chunks:
        active = _check_aligned(clean, features)
        clean, features = clean[active].reset_index(drop=True), features[active].reset_index(drop=True)
        positions = np.arange(start, start + len(features))
        start += len(features)
        yield _scored_rows(clean, features, positions, plan, model, model_version, success_rate, contact_cost)
    if start != len(plan):
        raise ValueError(f"the second scoring pass saw {start:,} active customers, the first {len(plan):,}; "
                         "nothing was written, run the step again")


def scored_chunks_in_priority_order(clean: pd.DataFrame, features: pd.DataFrame, plan: ScorePlan,
                                    model: ChurnModel, model_version: str, chunk_rows: int,
                                    success_rate: float = 0.3, contact_cost: float = 25.0,
                                    ) -> Iterator[pd.DataFrame]:
    """Pass two when the day is in memory (handed over by the IO manager): the same rows as
    :func:`scored_chunks`, but chunk by chunk in priority order, the order of the table's key, so the
    database appends to its indexes instead of inserting all over them. ``clean`` and ``features`` are
    the frames pass one read, in the same order."""
    active_rows = np.flatnonzero(_check_aligned(clean, features))
    if len(active_rows) != len(plan):
        raise ValueError(f"the day holds {len(active_rows):,} active customers, pass one scored {len(plan):,}")
    by_priority = np.argsort(plan.priority_rank, kind="stable")
    for start in range(0, len(by_priority), chunk_rows):
        positions = by_priority[start:start + chunk_rows]
        rows = active_rows[positions]
        yield _scored_rows(clean.iloc[rows].reset_index(drop=True), features.iloc[rows].reset_index(drop=True),
                           positions, plan, model, model_version, success_rate, contact_cost)


def in_priority_order(chunks: Iterable[pd.DataFrame], total: int, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """Scored rows arriving in any order (customer order, from the database), re-emitted in priority
    order ``chunk_rows`` at a time, in the memory of about one chunk: each arriving chunk is spilled
    to local files by priority range (a bucket sort on disk), then the buckets are read back in order.

    The table is keyed by priority, so rows written in that order append to its indexes; in customer
    order a day of millions of rows would insert all over them (see ``scored_chunks_in_priority_order``
    for the in-memory path)."""
    def bucket_of(chunk: pd.DataFrame) -> np.ndarray:
        ranks = chunk["priority_rank"].to_numpy()
        if ranks.min() < 1 or ranks.max() > total:
            raise ValueError(f"priority ranks outside 1..{total:,} in the scored rows")
        return (ranks - 1) // chunk_rows

    yield from bucket_sorted(chunks, bucket_of, -(-total // chunk_rows), ["priority_rank"], prefix="churn-priority-")


def _scored_rows(clean: pd.DataFrame, features: pd.DataFrame, positions: np.ndarray, plan: ScorePlan,
                 model: ChurnModel, model_version: str, success_rate: float, contact_cost: float) -> pd.DataFrame:
    """``scored_customers`` rows for active customers at ``positions`` of the plan."""
    if (len(positions) and positions.max() >= len(plan)) or \
            not (plan.customer_id[positions] == features["customer_id"].to_numpy()).all():
        raise ValueError("the customers changed between the two scoring passes (was the day rewritten "
                         "meanwhile?); nothing was written, run the step again")
    probability, folds = plan.probability[positions], plan.folds[positions]
    loss = plan.expected_revenue_loss[positions]
    scored = pd.DataFrame(
        {
            "snapshot_date": clean["snapshot_date"].astype("datetime64[ns]"),
            "customer_id": clean["customer_id"],
            "churn_probability": probability,
            "risk_tier": model.tier(probability),
            "monthly_charges": plan.monthly_charges[positions],
            "expected_revenue_loss": loss,
            "priority_rank": plan.priority_rank[positions],
            "expected_contact_profit": contact_profit(loss, success_rate, contact_cost),
            **{column: clean[column] for column in SEGMENT_COLUMNS},
            "top_reasons": top_reasons(features, model.contributions(features, folds.astype("int64"))),
            "score_source": pd.Categorical(
                np.where(folds >= 0, "cross_fitted", "final_model"), categories=["cross_fitted", "final_model"]
            ),
            "model_version": model_version,
        }
    )
    return scored[list(ScoredCustomers.to_schema().columns)]


def score_customers(
    clean: pd.DataFrame,
    features: pd.DataFrame,
    model: ChurnModel,
    model_version: str,
    horizon_months: float,
    cross_fit: bool,
    success_rate: float = 0.3,
    contact_cost: float = 25.0,
) -> pd.DataFrame:
    """``scored_customers`` rows for the active (not churned) customers of one snapshot held in memory,
    in priority order: both passes over a single chunk (the pipeline streams; see ScorePlan)."""
    chunks = [(clean, features)]
    plan = plan_scores(chunks, model, horizon_months, cross_fit)
    frames = list(scored_chunks(chunks, plan, model, model_version, success_rate, contact_cost))
    scored = frames[0] if frames else pd.DataFrame(columns=list(ScoredCustomers.to_schema().columns))
    return scored.sort_values("priority_rank", kind="stable").reset_index(drop=True)
