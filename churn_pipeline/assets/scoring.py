"""Stage 4: scored customers (whom to call first) and the business KPIs."""

import dagster as dg
import pandas as pd

from churn_pipeline.assets._metadata import table_metadata
from churn_pipeline.dagster_types import frame_type, table_set_type
from churn_pipeline.logic.kpis import business_kpis, segment_kpis
from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.logic.scoring import score_customers
from churn_pipeline.partitions import daily_partitions
from churn_pipeline.resources.pipeline_config import PipelineConfig

KPI_TABLES = ("business_kpis", "segment_kpis")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="scoring",
    dagster_type=frame_type("scored_customers"),
    metadata=table_metadata("scored_customers"),
    kinds={"pandas", "sql"},
)
def scored_customers(
    context: dg.AssetExecutionContext,
    pipeline: PipelineConfig,
    clean_customers: dict,
    customer_features: pd.DataFrame,
    churn_model: ChurnModel,
) -> pd.DataFrame:
    """Every active customer with churn probability, risk tier, expected revenue loss
    (p x monthly charges x horizon), call priority and the top reasons, naming the model version.
    Customers whose labels trained the model are scored out-of-fold (cross-fitted)."""
    scored = score_customers(
        clean_customers["clean_customers"], customer_features, churn_model,
        model_version=churn_model.version, horizon_months=pipeline.horizon_months,
        cross_fit=churn_model.training_snapshot == context.partition_key,
    )
    by_tier = scored.groupby("risk_tier", observed=False)["expected_revenue_loss"].sum()
    top = scored.head(5)[["priority_rank", "customer_id", "churn_probability", "expected_revenue_loss", "top_reasons"]]
    context.add_output_metadata(
        {
            "customers_scored": len(scored),
            "revenue_at_risk": dg.MetadataValue.float(float(scored["expected_revenue_loss"].sum())),
            **{f"revenue_at_risk_{tier.lower()}": float(value) for tier, value in by_tier.items()},
            "predicted_churners": float(scored["churn_probability"].sum()),
            "model_version": churn_model.version,
            "call_first": dg.MetadataValue.md(top.to_markdown(index=False) if len(top) else "(none)"),
        }
    )
    return scored


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
    """Daily business KPIs (`business_kpis`) and the same per contract, tenure band, internet
    service and payment method (`segment_kpis`), written together in one transaction."""
    clean = clean_customers["clean_customers"]
    overall = business_kpis(scored_customers, clean, pipeline.horizon_months)
    row = overall.iloc[0]
    context.add_output_metadata(
        {
            "active_customers": int(row["active_customers"]),
            "predicted_churners": float(row["predicted_churners"]),
            "revenue_at_risk": float(row["revenue_at_risk"]),
            "actual_churn_rate": float(row["actual_churn_rate"]),
            "model_version": str(row["model_version"]),
        }
    )
    return {"business_kpis": overall, "segment_kpis": segment_kpis(scored_customers, clean)}
