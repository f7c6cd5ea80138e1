"""Stage 4: scored customers (whom to call first) and the business KPIs."""

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa

from churn_pipeline.assets._metadata import table_metadata
from churn_pipeline.dagster_types import frame_type, table_set_type
from churn_pipeline.logic.drift import population_stability_index
from churn_pipeline.logic.kpis import business_kpis, segment_kpis
from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.logic.scoring import score_customers
from churn_pipeline.partitions import daily_partitions
from churn_pipeline.resources.pipeline_config import ChurnDatabase, PipelineConfig

KPI_TABLES = ("business_kpis", "segment_kpis")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="scoring",
    dagster_type=frame_type("scored_customers"),
    metadata=table_metadata("scored_customers"),
    kinds={"pandas", "sql"},
    check_specs=[
        dg.AssetCheckSpec("probabilities_complete", asset="scored_customers", blocking=True,
                          description="Every active customer has a finite probability in [0, 1]"),
        dg.AssetCheckSpec("score_drift", asset="scored_customers",
                          description="Population stability index of the scores against the previous snapshot"),
    ],
)
def scored_customers(
    context: dg.AssetExecutionContext,
    pipeline: PipelineConfig,
    churn_db: ChurnDatabase,
    clean_customers: dict,
    customer_features: pd.DataFrame,
    churn_model: ChurnModel,
):
    """Every active customer with churn probability, risk tier, expected revenue loss
    (p x monthly charges x horizon), call priority, the expected profit of a retention contact and
    the top reasons, naming the model version. Customers whose labels trained the model are scored
    out-of-fold (cross-fitted)."""
    clean = clean_customers["clean_customers"]
    scored = score_customers(
        clean, customer_features, churn_model,
        model_version=churn_model.version, horizon_months=pipeline.horizon_months,
        cross_fit=churn_model.training_snapshot == context.partition_key,
        success_rate=pipeline.retention_success_rate, contact_cost=pipeline.contact_cost,
    )
    by_tier = scored.groupby("risk_tier", observed=False)["expected_revenue_loss"].sum()
    top = scored.head(5)[["priority_rank", "customer_id", "churn_probability", "expected_revenue_loss", "top_reasons"]]
    yield dg.Output(
        scored,
        metadata={
            "customers_scored": len(scored),
            "revenue_at_risk": dg.MetadataValue.float(float(scored["expected_revenue_loss"].sum())),
            **{f"revenue_at_risk_{tier.lower()}": float(value) for tier, value in by_tier.items()},
            "predicted_churners": float(scored["churn_probability"].sum()),
            "model_version": churn_model.version,
            "call_first": dg.MetadataValue.md(top.to_markdown(index=False) if len(top) else "(none)"),
        },
    )
    p = scored["churn_probability"].to_numpy(dtype="float64")
    active = int((~clean["churned"].fillna(False).astype(bool)).sum())
    yield dg.AssetCheckResult(
        check_name="probabilities_complete",
        passed=bool(len(p) == active and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()),
        metadata={"scored": len(p), "active_customers": active},
    )
    yield _drift_check(churn_db, context.partition_key, p, pipeline.max_score_psi)


def _drift_check(churn_db: ChurnDatabase, day: str, current: np.ndarray, max_psi: float) -> dg.AssetCheckResult:
    """Warn when today's scores are distributed unlike the latest earlier snapshot's."""
    store = churn_db.store()
    table = store.ensure_table("scored_customers")
    with store.engine.connect() as conn:
        previous = conn.execute(sa.select(sa.func.max(table.c.snapshot_date))
                                .where(table.c.snapshot_date < pd.Timestamp(day).date())).scalar()
    if previous is None or len(current) == 0:
        return dg.AssetCheckResult(check_name="score_drift", passed=True,
                                   metadata={"note": "no earlier snapshot to compare with"})
    previous_day = pd.Timestamp(previous).date().isoformat()
    reference = store.read("scored_customers", partition=previous_day, columns=["churn_probability"])
    psi = population_stability_index(reference["churn_probability"].to_numpy(), current)
    return dg.AssetCheckResult(
        check_name="score_drift", passed=psi <= max_psi, severity=dg.AssetCheckSeverity.WARN,
        metadata={"psi": psi, "max_psi": max_psi, "compared_with": previous_day},
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name="scoring",
    dagster_type=table_set_type("ChurnKpis", KPI_TABLES),
    metadata=table_metadata(*KPI_TABLES),
    kinds={"pandas", "sql"},
)
def churn_kpis(
    context: dg.AssetExecutionContext,
    pipeline: PipelineConfig,
    scored_customers: pd.DataFrame,
    clean_customers: dict,
) -> dict:
    """Daily business KPIs (`business_kpis`: active customers, predicted churners, churn rates,
    revenue at risk by tier, the most profitable campaign list) and the same per contract, tenure
    band, internet service and payment method (`segment_kpis`), written together in one transaction."""
    clean = clean_customers["clean_customers"]
    scored = scored_customers.sort_values("priority_rank", kind="stable").reset_index(drop=True)
    overall = business_kpis(scored, clean, pipeline.horizon_months,
                            contact_cost=pipeline.contact_cost, success_rate=pipeline.retention_success_rate)
    row = overall.iloc[0]
    context.add_output_metadata(
        {
            "active_customers": int(row["active_customers"]),
            "predicted_churners": float(row["predicted_churners"]),
            "revenue_at_risk": float(row["revenue_at_risk"]),
            "actual_churn_rate": float(row["actual_churn_rate"]),
            "campaign_list_size": int(row["campaign_list_size"]),
            "campaign_expected_profit": float(row["campaign_expected_profit"]),
            "model_version": str(row["model_version"]),
        }
    )
    return {"business_kpis": overall, "segment_kpis": segment_kpis(scored, clean)}
