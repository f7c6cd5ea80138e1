"""Daily business KPIs, overall (``business_kpis``) and per segment (``segment_kpis``).

:class:`KpiAccumulator` adds the day up chunk by chunk (scored customers and clean customers may
arrive in pieces of any size, in any order), so the KPIs of millions of customers take the memory of
one chunk. Every KPI is a sum or a count, and the campaign plan is one too: the expected profit of a
contact, ``s·loss − c``, falls along the priority list (ranked by loss), so the most profitable list
is every customer whose contact pays (profit > 0), however the rows arrive.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pandas as pd

from churn_pipeline.logic.campaign import CampaignPlan, best_campaign
from churn_pipeline.logic.scoring import SEGMENT_COLUMNS
from churn_pipeline.schemas import BusinessKpis, SegmentKpis

# The columns each side needs (read only these when streaming from the tables).
SCORED_COLUMNS_FOR_KPIS = ["snapshot_date", "churn_probability", "risk_tier", "monthly_charges",
                           "expected_revenue_loss", "expected_contact_profit", "model_version", *SEGMENT_COLUMNS]
CLEAN_COLUMNS_FOR_KPIS = ["snapshot_date", "churned", *SEGMENT_COLUMNS]
_TIERS = ("Low", "Medium", "High")


class KpiAccumulator:
    """Running sums for one snapshot and one model; :meth:`business` and :meth:`segments` give the rows."""

    def __init__(self, horizon_months: float, contact_cost: float = 25.0, success_rate: float = 0.3):
        self.horizon_months, self.contact_cost, self.success_rate = horizon_months, contact_cost, success_rate
        self.days: set = set()
        self.models: set[str] = set()
        self.active = 0
        self.sums = defaultdict(float)  # probability, monthly, loss, loss per tier
        self.counts = defaultdict(int)  # high-risk customers, labels known / churned
        self.campaign = CampaignPlan(0, 0.0)
        # (segment type, value) -> [active, Σp, Σloss]; and -> [labels known, churned]
        self.segment_scores: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        self.segment_labels: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])

    def add_scored(self, scored: pd.DataFrame) -> None:
        if scored.empty:
            return
        self.days.update(pd.to_datetime(scored["snapshot_date"]).unique())
        self.models.update(scored["model_version"].astype(str).unique())
        self._check_one()
        p = scored["churn_probability"].to_numpy(dtype="float64")
        loss = scored["expected_revenue_loss"].to_numpy(dtype="float64")
        profit = scored["expected_contact_profit"].to_numpy(dtype="float64")
        self.active += len(scored)
        self.sums["probability"] += float(p.sum())
        self.sums["monthly"] += float(scored["monthly_charges"].to_numpy(dtype="float64").sum())
        self.sums["loss"] += float(loss.sum())
        tiers = scored["risk_tier"].astype(str).to_numpy()
        for tier in _TIERS:
            self.sums[f"loss_{tier}"] += float(loss[tiers == tier].sum())
        self.counts["high"] += int((tiers == "High").sum())
        self.campaign += best_campaign(profit)
        for segment in SEGMENT_COLUMNS:
            grouped = pd.DataFrame({"value": scored[segment].astype(str), "p": p, "loss": loss}).groupby("value")
            stats = grouped.agg(n=("p", "size"), p=("p", "sum"), loss=("loss", "sum"))
            for value, row in stats.iterrows():
                acc = self.segment_scores[(segment, str(value))]
                acc[0] += int(row["n"])
                acc[1] += float(row["p"])
                acc[2] += float(row["loss"])

    def add_clean(self, clean: pd.DataFrame) -> None:
        if clean.empty:
            return
        self.days.update(pd.to_datetime(clean["snapshot_date"]).unique())
        self._check_one()
        known = clean["churned"].notna().to_numpy()
        churned = clean["churned"].fillna(False).to_numpy(dtype=bool)
        self.counts["known"] += int(known.sum())
        self.counts["churned"] += int((churned & known).sum())
        for segment in SEGMENT_COLUMNS:
            frame = pd.DataFrame({"value": clean[segment].astype(str), "known": known, "churned": churned & known})
            for value, row in frame.groupby("value")[["known", "churned"]].sum().iterrows():
                acc = self.segment_labels[(segment, str(value))]
                acc[0] += int(row["known"])
                acc[1] += int(row["churned"])

    def _check_one(self) -> None:
        if len(self.days) > 1 or len(self.models) > 1:
            raise ValueError("business KPIs are computed for one snapshot and one model at a time")

    @property
    def _day(self):
        return next(iter(self.days)) if self.days else pd.NaT

    @property
    def _model(self) -> str:
        return next(iter(self.models)) if self.models else ""

    def business(self) -> pd.DataFrame:
        """One row: the portfolio's active customers, predicted churners, revenue at risk and the campaign plan."""
        active = self.active
        known = self.counts["known"]
        row = {
            "snapshot_date": self._day,
            "active_customers": active,
            "predicted_churners": self.sums["probability"],
            "predicted_churn_rate": self.sums["probability"] / active if active else 0.0,
            "actual_churn_rate": self.counts["churned"] / known if known else np.nan,
            "monthly_revenue": self.sums["monthly"],
            "revenue_at_risk": self.sums["loss"],
            "revenue_at_risk_high": self.sums["loss_High"],
            "revenue_at_risk_medium": self.sums["loss_Medium"],
            "revenue_at_risk_low": self.sums["loss_Low"],
            "high_risk_customers": self.counts["high"],
            "average_probability": self.sums["probability"] / active if active else 0.0,
            "horizon_months": float(self.horizon_months),
            "contact_cost": float(self.contact_cost),
            "retention_success_rate": float(self.success_rate),
            "campaign_list_size": self.campaign.list_size,
            "campaign_expected_profit": self.campaign.expected_profit,
            "model_version": self._model,
        }
        frame = pd.DataFrame([row])
        frame["snapshot_date"] = frame["snapshot_date"].astype("datetime64[ns]")
        frame["actual_churn_rate"] = frame["actual_churn_rate"].astype("float64")
        return frame[list(BusinessKpis.to_schema().columns)]

    def segments(self) -> pd.DataFrame:
        """Per segment type and value: active customers, predicted churners, churn rates, revenue at risk."""
        rows = []
        for segment in SEGMENT_COLUMNS:
            values = sorted(v for (s, v) in self.segment_scores if s == segment)
            for value in values:
                active, p, loss = self.segment_scores[(segment, value)]
                known, churned = self.segment_labels.get((segment, value), (0, 0))
                rows.append({
                    "segment_type": segment, "segment_value": value, "active_customers": int(active),
                    "predicted_churners": p, "revenue_at_risk": loss,
                    "predicted_churn_rate": p / active, "average_probability": p / active,
                    "actual_churn_rate": churned / known if known else np.nan,
                })
        columns = list(SegmentKpis.to_schema().columns)
        frame = pd.DataFrame(rows, columns=[c for c in columns if c not in ("snapshot_date", "model_version")])
        frame["snapshot_date"] = pd.Series([self._day] * len(frame), dtype="datetime64[ns]")
        frame["model_version"] = self._model
        frame["segment_type"] = pd.Categorical(frame["segment_type"], categories=list(SEGMENT_COLUMNS))
        frame["active_customers"] = frame["active_customers"].astype("int64")
        for column in ("predicted_churners", "revenue_at_risk", "predicted_churn_rate", "average_probability",
                       "actual_churn_rate"):
            frame[column] = frame[column].astype("float64")
        return frame[columns]


def business_kpis(scored: pd.DataFrame, clean: pd.DataFrame, horizon_months: float,
                  contact_cost: float = 25.0, success_rate: float = 0.3) -> pd.DataFrame:
    """One row of KPIs for a day held in memory (see :class:`KpiAccumulator` for streaming)."""
    accumulator = KpiAccumulator(horizon_months, contact_cost, success_rate)
    accumulator.add_scored(scored)
    accumulator.add_clean(clean)
    return accumulator.business()


def segment_kpis(scored: pd.DataFrame, clean: pd.DataFrame) -> pd.DataFrame:
    """Per-segment KPIs for a day held in memory (see :class:`KpiAccumulator` for streaming)."""
    accumulator = KpiAccumulator(horizon_months=1.0)
    accumulator.add_scored(scored)
    accumulator.add_clean(clean)
    return accumulator.segments()
