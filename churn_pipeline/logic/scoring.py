"""Scoring active customers: probability, risk tier, expected revenue loss, priority and reasons.

Expected revenue loss = p · monthly charges · horizon months (forward-looking money, DESIGN.md).
Priority ranks active customers by expected revenue loss, then probability, then customer id.
The expected profit of a retention contact, ``p·s·m·H − c``, ranks the same way (see ``campaign``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_pipeline.logic.campaign import contact_profit
from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.logic.reasons import top_reasons
from churn_pipeline.schemas import ScoredCustomers

SEGMENT_COLUMNS = ("contract", "tenure_band", "internet_service", "payment_method")


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
    """``scored_customers`` rows for the active (not churned) customers of one snapshot.

    ``cross_fit`` must be true when ``model`` was trained on this snapshot's labels: each training
    customer is then scored by the fold model that never saw it (the leakage rule).
    """
    if len(clean) != len(features) or not (clean["customer_id"].to_numpy() == features["customer_id"].to_numpy()).all():
        raise ValueError("clean customers and features must hold the same customers in the same order")
    active = ~clean["churned"].fillna(False).to_numpy(dtype=bool)
    clean, features = clean[active].reset_index(drop=True), features[active].reset_index(drop=True)
    probability, folds = model.predict_proba(features, cross_fit=cross_fit)
    monthly = clean["monthly_charges"].to_numpy(dtype="float64")
    loss = probability * monthly * horizon_months
    scored = pd.DataFrame(
        {
            "snapshot_date": clean["snapshot_date"].astype("datetime64[ns]"),
            "customer_id": clean["customer_id"],
            "churn_probability": probability,
            "risk_tier": model.tier(probability),
            "monthly_charges": monthly,
            "expected_revenue_loss": loss,
            "priority_rank": 0,
            "expected_contact_profit": contact_profit(loss, success_rate, contact_cost),
            **{column: clean[column] for column in SEGMENT_COLUMNS},
            "top_reasons": top_reasons(features, model.contributions(features, folds)),
            "score_source": pd.Categorical(
                np.where(folds >= 0, "cross_fitted", "final_model"), categories=["cross_fitted", "final_model"]
            ),
            "model_version": model_version,
        }
    )
    order = np.lexsort((scored["customer_id"].to_numpy(), -probability, -loss))
    scored = scored.iloc[order].reset_index(drop=True)
    scored["priority_rank"] = np.arange(1, len(scored) + 1, dtype="int64")
    return scored[list(ScoredCustomers.to_schema().columns)]
