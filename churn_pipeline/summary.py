"""The morning summary: customers scored, revenue at risk and whom to call first, read from the tables."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import sqlalchemy as sa

from churn_pipeline.storage import TableStore

CALL_LIST_SIZE = 5


@dataclass
class Summary:
    snapshot_date: str
    kpis: dict
    call_first: pd.DataFrame

    def render(self) -> str:
        k = self.kpis
        lines = [
            f"Churn summary for {self.snapshot_date} (model {k['model_version']})",
            f"  customers scored (active): {k['active_customers']:,}",
            f"  predicted churners:        {k['predicted_churners']:,.1f} ({k['predicted_churn_rate']:.1%})",
            f"  revenue at risk ({k['horizon_months']:g} months): ${k['revenue_at_risk']:,.2f}"
            f"  (High ${k['revenue_at_risk_high']:,.0f} / Medium ${k['revenue_at_risk_medium']:,.0f}"
            f" / Low ${k['revenue_at_risk_low']:,.0f})",
            "  call first:",
        ]
        for row in self.call_first.itertuples(index=False):
            lines.append(
                f"    {row.priority_rank:>2}. {row.customer_id:<12} p={row.churn_probability:.2f} "
                f"{row.risk_tier:<6} expected loss ${row.expected_revenue_loss:,.2f}  ({row.top_reasons})"
            )
        return "\n".join(lines)


def load_summary(db_url: str, snapshot_date: str | None = None) -> Summary | None:
    """The day's KPI row and top of the call list, or None when nothing is stored."""
    store = TableStore(db_url)
    kpis = store.ensure_table("business_kpis")
    if snapshot_date is None:
        with store.engine.connect() as conn:
            latest = conn.execute(sa.select(sa.func.max(kpis.c.snapshot_date))).scalar()
        if latest is None:
            return None
        snapshot_date = pd.Timestamp(latest).date().isoformat()
    rows = store.read("business_kpis", partition=snapshot_date)
    if rows.empty:
        return None
    scored = store.ensure_table("scored_customers")
    call_first = store.read(
        "scored_customers", partition=snapshot_date,
        columns=["priority_rank", "customer_id", "churn_probability", "risk_tier", "expected_revenue_loss",
                 "top_reasons"],
        where=scored.c.priority_rank <= CALL_LIST_SIZE,
    )
    return Summary(snapshot_date, rows.iloc[0].to_dict(), call_first.sort_values("priority_rank"))
