"""IO managers: DataFrames to typed SQL tables, the model to a hashed file plus a ``model_runs`` row.

Table-slice semantics (like Dagster's DuckDB IO manager): a partitioned asset replaces only its
day's rows (``snapshot_date = partition``), so re-running a day is idempotent. Unlike a delete
followed by a separate insert, the delete and the insert share one transaction: readers never see
the table empty or half-written (dagster issue #14091). An asset stored as several tables
(``metadata={"tables": [...]}``) writes them all in that one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.model_runs import latest_model_run, model_run_row
from churn_pipeline.model_store import load_model, save_model
from churn_pipeline.settings import mask_url
from churn_pipeline.storage import TableStore


def _tables(context: dg.OutputContext) -> list[str]:
    metadata = context.definition_metadata or {}
    return list(metadata.get("tables") or [context.asset_key.path[-1]])


def _partition(context) -> str | None:
    return context.asset_partition_key if context.has_asset_partitions else None


class SqlTableIOManager(dg.ConfigurableIOManager):
    """Stores DataFrames in the schema tables of a MySQL/MariaDB or SQLite database."""

    db_url: str = Field(description="SQLAlchemy URL, e.g. mysql+pymysql://user@host:3306/churn")
    bulk_method: str = Field(
        default="auto",
        description="auto (LOAD DATA LOCAL INFILE on MySQL, batched INSERT if refused) | load_data | executemany",
    )

    def _store(self) -> TableStore:
        return TableStore(self.db_url, bulk_method=self.bulk_method)  # type: ignore[arg-type]

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | Mapping[str, pd.DataFrame]) -> None:
        tables = _tables(context)
        frames = dict(obj) if isinstance(obj, Mapping) else {tables[0]: obj}
        if sorted(frames) != sorted(tables):
            asset = context.asset_key.to_user_string()
            raise dg.Failure(f"{asset} produced tables {sorted(frames)}, expected {tables}")
        partition = _partition(context)
        written = self._store().write(frames, partition=partition)
        context.add_output_metadata(
            {
                **{f"rows: {table}": dg.MetadataValue.int(count) for table, count in written.items()},
                "dagster/row_count": dg.MetadataValue.int(sum(written.values())),
                "tables": dg.MetadataValue.text(", ".join(tables)),
                "database": dg.MetadataValue.text(mask_url(self.db_url)),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | dict[str, pd.DataFrame]:
        upstream = context.upstream_output
        tables = _tables(upstream)
        partition = _partition(context)
        store = self._store()
        frames = {table: store.read(table, partition=partition) for table in tables}
        for table, frame in frames.items():
            if frame.empty and table == tables[0]:
                raise dg.Failure(
                    f"no rows in {table} for partition {partition}: materialize "
                    f"{upstream.asset_key.to_user_string()} for that day first"
                )
        multi = bool((upstream.definition_metadata or {}).get("tables"))
        return frames if multi else frames[tables[0]]


class ModelIOManager(dg.ConfigurableIOManager):
    """Saves the trained model as a content-hashed file and registers it in ``model_runs``."""

    db_url: str = Field(description="SQLAlchemy URL of the database holding model_runs")
    model_dir: str = Field(description="Folder of model files (CHURN_MODEL_DIR)")

    def handle_output(self, context: dg.OutputContext, obj: ChurnModel) -> None:
        version, path, digest = save_model(obj, self.model_dir)
        row = model_run_row(obj, version, path, digest, run_id=context.run_id,
                            trained_at=datetime.now(UTC).replace(tzinfo=None))
        TableStore(self.db_url).write({"model_runs": row}, mode="append")
        obj.version = version
        context.add_output_metadata(
            {
                "model_version": dg.MetadataValue.text(version),
                "artifact": dg.MetadataValue.path(str(path)),
                "table": dg.MetadataValue.text("model_runs"),
            }
        )

    def load_input(self, context: dg.InputContext) -> ChurnModel:
        partition = _partition(context)
        store = TableStore(self.db_url)
        run = latest_model_run(store, snapshot_date=partition)
        if run is None:
            raise dg.Failure(f"no trained model registered in model_runs for snapshot {partition}")
        model = load_model(run["artifact_path"], run["artifact_sha256"])
        model.version = run["model_version"]
        return model
