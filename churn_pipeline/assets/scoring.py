"""Stage 4: scored customers (whom to call first) and the business KPIs."""

import dagster as dg
import numpy as np
import pandas as pd
import sqlalchemy as sa

from churn_pipeline.assets._metadata import LAZY, table_metadata
from churn_pipeline.dagster_types import frame_type, table_set_type
from churn_pipeline.logic.drift import population_stability_index
from churn_pipeline.logic.kpis import CLEAN_COLUMNS_FOR_KPIS, SCORED_COLUMNS_FOR_KPIS, KpiAccumulator
from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.logic.scoring import (
    CLEAN_COLUMNS_FOR_SCORING,
    in_priority_order,
    plan_scores,
    scored_chunks,
    scored_chunks_in_priority_order,
)
from churn_pipeline.partitions import daily_partitions
from churn_pipeline.resources.pipeline_config import ChurnDatabase, PipelineConfig
from churn_pipeline.storage import FrameChunks, PartitionHandle, read_aligned

KPI_TABLES = ("business_kpis", "segment_kpis")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="scoring",
    dagster_type=frame_type("scored_customers"),
    metadata=table_metadata("scored_customers"),
    kinds={"pandas", "sql"},
    ins={"clean_customers": LAZY, "customer_features": LAZY},
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
    clean_customers: PartitionHandle,
    customer_features: PartitionHandle,
    churn_model: ChurnModel,
):
    """Every active customer with churn probability, risk tier, expected revenue loss
    (p x monthly charges x horizon), call priority, the expected profit of a retention contact and
    the top reasons, naming the model version. Customers whose labels trained the model are scored
    out-of-fold (cross-fitted). Streams through the day in chunks (two passes: probabilities and
    priorities, then reasons and rows), written in one transaction."""

    def chunks():
        for pair in read_aligned({"clean": (clean_customers, CLEAN_COLUMNS_FOR_SCORING),
                                  "features": (customer_features, None)}, pipeline.chunk_rows):
            yield pair["clean"], pair["features"]

    plan = plan_scores(chunks(), churn_model, pipeline.horizon_months,
                       cross_fit=churn_model.training_snapshot == context.partition_key)
    money = {"success_rate": pipeline.retention_success_rate, "contact_cost": pipeline.contact_cost}
    if clean_customers.frame is not None and customer_features.frame is not None:  # handed over: in key order
        rows = FrameChunks("scored_customers", scored_chunks_in_priority_order(
            clean_customers.frame[CLEAN_COLUMNS_FOR_SCORING], customer_features.frame, plan, churn_model,
            model_version=churn_model.version, chunk_rows=pipeline.chunk_rows, **money))
    else:  # read from the database in customer order: re-ordered through local spill files
        rows = FrameChunks("scored_customers", in_priority_order(
            scored_chunks(chunks(), plan, churn_model, model_version=churn_model.version, **money),
            total=len(plan), chunk_rows=pipeline.chunk_rows))
    call_first = _CallFirst(5)
    rows.after_chunk.append(call_first.add)
    rows.after_all.append(call_first.metadata)
    tiers = pd.Series(plan.expected_revenue_loss).groupby(np.asarray(churn_model.tier(plan.probability)),
                                                          observed=False).sum()
    yield dg.Output(
        rows,
        metadata={
            "customers_scored": len(plan),
            "revenue_at_risk": dg.MetadataValue.float(float(plan.expected_revenue_loss.sum())),
            **{f"revenue_at_risk_{tier.lower()}": float(tiers.get(tier, 0.0)) for tier in ("Low", "Medium", "High")},
            "predicted_churners": float(plan.probability.sum()),
            "model_version": churn_model.version,
        },
    )
    p = plan.probability
    not_churned = sa.or_(clean_customers.columns.churned.is_(None), clean_customers.columns.churned == sa.false())
    active = clean_customers.count(where=not_churned)
    yield dg.AssetCheckResult(
        check_name="probabilities_complete",
        passed=bool(len(p) == active == rows.rows and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()),
        metadata={"scored": len(p), "written": rows.rows, "active_customers": active},
    )
    yield _drift_check(churn_db, context.partition_key, p, pipeline.max_score_psi)


class _CallFirst:
    """The top of the priority list, gathered from the chunks as they are written (for the UI)."""

    def __init__(self, size: int):
        self.size, self.rows = size, []

    def add(self, chunk: pd.DataFrame) -> None:
        self.rows.append(chunk[chunk["priority_rank"] <= self.size])

    def metadata(self) -> dict:
        columns = ["priority_rank", "customer_id", "churn_probability", "expected_revenue_loss", "top_reasons"]
        top = pd.concat(self.rows)[columns].sort_values("priority_rank") if self.rows else pd.DataFrame()
        return {"call_first": dg.MetadataValue.md(top.to_markdown(index=False) if len(top) else "(none)")}


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
    ins={"scored_customers": LAZY, "clean_customers": LAZY},
)
def churn_kpis(
    context: dg.AssetExecutionContext,
    pipeline: PipelineConfig,
    scored_customers: PartitionHandle,
    clean_customers: PartitionHandle,
) -> dict:
    """Daily business KPIs (`business_kpis`: active customers, predicted churners, churn rates,
    revenue at risk by tier, the most profitable campaign list) and the same per contract, tenure
    band, internet service and payment method (`segment_kpis`), written together in one transaction.
    Added up chunk by chunk from the stored scores and labels."""
    totals = KpiAccumulator(pipeline.horizon_months, contact_cost=pipeline.contact_cost,
                            success_rate=pipeline.retention_success_rate)
    for chunk in scored_customers.chunks(SCORED_COLUMNS_FOR_KPIS, pipeline.chunk_rows):
        totals.add_scored(chunk)
    for chunk in clean_customers.chunks(CLEAN_COLUMNS_FOR_KPIS, pipeline.chunk_rows):
        totals.add_clean(chunk)
    overall = totals.business()
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
    return {"business_kpis": overall, "segment_kpis": totals.segments()}
