"""Stage 2: typed, validated customers (with every rejected row kept) and model-ready features."""

import dagster as dg
import pandas as pd

from churn_pipeline.assets._metadata import table_metadata
from churn_pipeline.dagster_types import frame_type, table_set_type
from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.features import build_features
from churn_pipeline.partitions import daily_partitions

CLEAN_TABLES = ("clean_customers", "rejected_customers")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="preparation",
    dagster_type=table_set_type("CleanAndRejectedCustomers", CLEAN_TABLES),
    metadata={**table_metadata(*CLEAN_TABLES), "handoff": "keep"},
    kinds={"pandas", "sql"},
    check_specs=[dg.AssetCheckSpec("rows_accounted", asset="clean_customers", blocking=True,
                                   description="Rows read = clean + rejected: no row silently lost")],
)
def clean_customers(context: dg.AssetExecutionContext, raw_customers: pd.DataFrame):
    """Typed, deduplicated customers (`clean_customers`) and every rejected input row with all its
    reasons and original values (`rejected_customers`), written together in one transaction."""
    clean, rejected = clean_snapshot(raw_customers)
    reason_counts = rejected["reason_codes"].str.split(",").explode().value_counts()
    labelled = clean["churned"].dropna()
    yield dg.Output(
        {"clean_customers": clean, "rejected_customers": rejected},
        metadata={
            "rows_read": len(raw_customers),
            "clean_rows": len(clean),
            "rejected_rows": len(rejected),
            "rejected_by_reason": dg.MetadataValue.json({k: int(v) for k, v in reason_counts.items()}),
            "churn_rate": float(labelled.astype(bool).mean()) if len(labelled) else float("nan"),
        },
    )
    accounted = len(clean) + len(rejected) == len(raw_customers)
    yield dg.AssetCheckResult(
        check_name="rows_accounted",
        passed=accounted,
        metadata={"rows_read": len(raw_customers), "clean": len(clean), "rejected": len(rejected)},
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name="preparation",
    dagster_type=frame_type("customer_features"),
    metadata={**table_metadata("customer_features"), "handoff": "keep"},
    kinds={"pandas", "sql"},
)
def customer_features(context: dg.AssetExecutionContext, clean_customers: dict) -> pd.DataFrame:
    """Model-ready numeric features, one row per clean customer, with the churn label where known.
    The same code builds features for the `score` command and the API."""
    features = build_features(clean_customers["clean_customers"])
    context.add_output_metadata({"rows": len(features), "labelled_rows": int(features["churned"].notna().sum())})
    return features
