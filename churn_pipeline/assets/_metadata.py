"""Definition metadata every table-backed asset shows in the UI."""

from __future__ import annotations

import dagster as dg

from churn_pipeline.dagster_types import table_schema
from churn_pipeline.schemas import TABLES

# An input that arrives as a PartitionHandle (see the IO manager): read chunk by chunk, never whole.
LAZY = dg.AssetIn(metadata={"load": "lazy"})


def table_metadata(*tables: str) -> dict:
    """Column schema and table name(s); several tables are written together in one transaction."""
    main = TABLES[tables[0]]
    metadata = {
        "dagster/column_schema": table_schema(main),
        "dagster/table_name": main.name,
        "primary_key": ", ".join(main.primary_key),
    }
    if main.partition_column:
        metadata["partition_expr"] = main.partition_column
    if len(tables) > 1:
        metadata["tables"] = list(tables)
        for extra in tables[1:]:
            metadata[f"{extra} column schema"] = dg.MetadataValue.table_schema(table_schema(TABLES[extra]))
    return metadata
