"""Stage 2: typed, validated customers (with every rejected row kept) and model-ready features.

Both stream: the day is read a chunk at a time (``PipelineConfig.chunk_rows``), so memory does not
grow with the customer count, and each table is still written whole or not at all (one transaction).
"""

from collections import Counter

import dagster as dg

from churn_pipeline.assets._metadata import LAZY, table_metadata
from churn_pipeline.dagster_types import frame_type, table_set_type
from churn_pipeline.logic.cleaning import CleanStream, scan_ids
from churn_pipeline.logic.features import FEATURE_INPUTS, build_features
from churn_pipeline.logic.spill import bucket_sorted
from churn_pipeline.partitions import daily_partitions
from churn_pipeline.resources.pipeline_config import PipelineConfig
from churn_pipeline.storage import FrameChunks, PartitionHandle

CLEAN_TABLES = ("clean_customers", "rejected_customers")
_FEATURE_SOURCE = ["snapshot_date", "customer_id", *FEATURE_INPUTS, "churned"]


@dg.asset(
    partitions_def=daily_partitions,
    group_name="preparation",
    dagster_type=table_set_type("CleanAndRejectedCustomers", CLEAN_TABLES),
    metadata={**table_metadata(*CLEAN_TABLES), "handoff": "keep"},
    kinds={"pandas", "sql"},
    ins={"raw_customers": LAZY},
    check_specs=[dg.AssetCheckSpec("rows_accounted", asset="clean_customers", blocking=True,
                                   description="Rows read = clean + rejected: no row silently lost")],
)
def clean_customers(context: dg.AssetExecutionContext, pipeline: PipelineConfig, raw_customers: PartitionHandle):
    """Typed, deduplicated customers (`clean_customers`) and every rejected input row with all its
    reasons and original values (`rejected_customers`), written together in one transaction.

    Streams: a first pass over the ids finds the ids on several rows (only those rows wait for the
    others) and the key ranges; then each chunk is cleaned, and clean rows go to the database in
    customer order (re-ordered through local spill files), the order of the table's key."""
    chunk_rows = pipeline.chunk_rows
    ids = scan_ids((chunk["customerID"] for chunk in raw_customers.chunks(["customerID"], chunk_rows)), chunk_rows)
    split = CleanStream(ids.repeated)
    clean = FrameChunks("clean_customers", bucket_sorted(
        split.clean_chunks(raw_customers.chunks(chunk_rows=chunk_rows)), ids.bucket_of, ids.buckets,
        ["customer_id"], prefix="churn-clean-"), expected_rows=ids.rows)

    def rejected_rows():
        yield split.rejected()  # written after clean_customers, in the same transaction

    rejected = FrameChunks("rejected_customers", rejected_rows())
    reasons: Counter = Counter()
    rejected.after_chunk.append(lambda frame: reasons.update(
        code for codes in frame["reason_codes"] for code in codes.split(",")))
    rejected.after_all.append(lambda: {
        "rows_read": split.rows_read,
        "clean_rows": split.clean_rows,
        "rejected_rows": rejected.rows,
        "rejected_by_reason": dg.MetadataValue.json(dict(reasons.most_common())),
        "churn_rate": split.churned / split.labelled if split.labelled else float("nan"),
    })
    yield dg.Output({"clean_customers": clean, "rejected_customers": rejected})
    accounted = split.rows_read == ids.rows and clean.rows + rejected.rows == ids.rows
    yield dg.AssetCheckResult(
        check_name="rows_accounted",
        passed=accounted,
        metadata={"rows_read": ids.rows, "clean": clean.rows, "rejected": rejected.rows},
    )


@dg.asset(
    partitions_def=daily_partitions,
    group_name="preparation",
    dagster_type=frame_type("customer_features"),
    metadata={**table_metadata("customer_features"), "handoff": "keep"},
    kinds={"pandas", "sql"},
    ins={"clean_customers": LAZY},
)
def customer_features(context: dg.AssetExecutionContext, pipeline: PipelineConfig,
                      clean_customers: PartitionHandle) -> FrameChunks:
    """Model-ready numeric features, one row per clean customer, with the churn label where known.
    The same code builds features for the `score` command and the API. Streams chunk by chunk."""
    features = FrameChunks("customer_features", (
        build_features(chunk) for chunk in clean_customers.chunks(_FEATURE_SOURCE, pipeline.chunk_rows)),
        expected_rows=clean_customers.count())
    labelled = Counter()

    def count_labels(chunk):
        labelled["rows"] += int(chunk["churned"].notna().sum())

    features.after_chunk.append(count_labels)
    features.after_all.append(lambda: {"rows": features.rows, "labelled_rows": labelled["rows"]})
    return features
