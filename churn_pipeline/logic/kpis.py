"""Daily business KPIs, overall (``business_kpis``) and per segment (``segment_kpis``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn_pipeline.logic.campaign import best_campaign
from churn_pipeline.logic.scoring import SEGMENT_COLUMNS
from churn_pipeline.schemas import BusinessKpis, SegmentKpis


def _actual_churn_rate(labels: pd.Series) -> float:
    known = labels.dropna()
    return float(known.astype(bool).mean()) if len(known) else np.nan


def business_kpis(scored: pd.DataFrame, clean: pd.DataFrame, horizon_months: float,
                  contact_cost: float = 25.0, success_rate: float = 0.3) -> pd.DataFrame:
    """One row: the portfolio's active customers, predicted churners, revenue at risk and the campaign plan.

    ``scored`` must be in priority order (as ``score_customers`` returns it)."""
    if scored["snapshot_date"].nunique() > 1 or scored["model_version"].nunique() > 1:
        raise ValueError("business KPIs are computed for one snapshot and one model at a time")
    p = scored["churn_probability"]
    loss_by_tier = scored.groupby("risk_tier", observed=False)["expected_revenue_loss"].sum()
    active = len(scored)
    if not scored["priority_rank"].is_monotonic_increasing:
        raise ValueError("scored customers must be in priority order")
    plan = best_campaign(scored["expected_contact_profit"].to_numpy(dtype="float64"))
    row = {
        "snapshot_date": clean["snapshot_date"].iloc[0] if len(clean) else pd.NaT,
        "active_customers": active,
        "predicted_churners": float(p.sum()),
        "predicted_churn_rate": float(p.mean()) if active else 0.0,
        "actual_churn_rate": _actual_churn_rate(clean["churned"]),
        "monthly_revenue": float(scored["monthly_charges"].sum()),
        "revenue_at_risk": float(scored["expected_revenue_loss"].sum()),
        "revenue_at_risk_high": float(loss_by_tier.get("High", 0.0)),
        "revenue_at_risk_medium": float(loss_by_tier.get("Medium", 0.0)),
        "revenue_at_risk_low": float(loss_by_tier.get("Low", 0.0)),
        "high_risk_customers": int((scored["risk_tier"] == "High").sum()),
        "average_probability": float(p.mean()) if active else 0.0,
        "horizon_months": float(horizon_months),
        "contact_cost": float(contact_cost),
        "retention_success_rate": float(success_rate),
        "campaign_list_size": plan.list_size,
        "campaign_expected_profit": plan.expected_profit,
        "model_version": scored["model_version"].iloc[0] if active else "",
    }
    frame = pd.DataFrame([row])
    frame["snapshot_date"] = frame["snapshot_date"].astype("datetime64[ns]")
    frame["actual_churn_rate"] = frame["actual_churn_rate"].astype("float64")
    return frame[list(BusinessKpis.to_schema().columns)]


def segment_kpis(scored: pd.DataFrame, clean: pd.DataFrame) -> pd.DataFrame:
    """Per segment type and value: active customers, predicted churners, churn rates, revenue at risk."""
    frames = []
    for segment in SEGMENT_COLUMNS:
        grouped = scored.groupby(segment, observed=True)
        stats = pd.DataFrame(
            {
                "active_customers": grouped.size(),
                "predicted_churners": grouped["churn_probability"].sum(),
                "revenue_at_risk": grouped["expected_revenue_loss"].sum(),
            }
        )
        stats["predicted_churn_rate"] = stats["predicted_churners"] / stats["active_customers"]
        stats["average_probability"] = stats["predicted_churn_rate"]
        actual = clean.groupby(segment, observed=True)["churned"].agg(_actual_churn_rate)
        stats["actual_churn_rate"] = actual.reindex(stats.index).astype("float64")
        stats = stats.reset_index(names="segment_value")
        stats["segment_type"] = segment
        stats["segment_value"] = stats["segment_value"].astype(str)
        frames.append(stats)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    frame["snapshot_date"] = clean["snapshot_date"].iloc[0]
    frame["snapshot_date"] = frame["snapshot_date"].astype("datetime64[ns]")
    frame["model_version"] = scored["model_version"].iloc[0] if len(scored) else ""
    frame["segment_type"] = pd.Categorical(frame["segment_type"], categories=list(SEGMENT_COLUMNS))
    frame["active_customers"] = frame["active_customers"].astype("int64")
    return frame[list(SegmentKpis.to_schema().columns)]
