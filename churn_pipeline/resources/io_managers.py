"""IO managers: DataFrames to typed SQL tables, the model to a hashed file plus a ``model_runs`` row.

Table-slice semantics (like Dagster's DuckDB IO manager): a partitioned asset replaces only its
day's rows (``snapshot_date = partition``), so re-running a day is idempotent. Unlike a delete
followed by a separate insert, the delete and the insert share one transaction: readers never see
the table empty or half-written (dagster issue #14091). An asset stored as several tables
(``metadata={"tables": [...]}``) writes them all in that one transaction.

Streaming: an asset may return :class:`~churn_pipeline.storage.FrameChunks` (its rows chunk by chunk,
still written in one transaction), and an input declared with ``AssetIn(metadata={"load": "lazy"})``
arrives as a :class:`~churn_pipeline.storage.PartitionHandle` that reads on demand, so scoring and
KPIs of millions of customers hold one chunk at a time.

Hand-over: the rows a step has just committed are kept in this process for the next steps of the
same run (an asset's ``metadata={"handoff": "once" | "keep"}``: dropped at the first load, or kept for
several consumers), within ``handoff_mb``. A step that finds them skips reading back what the
database already holds (at 1M customers ~20 s for the raw snapshot alone); a step in another process,
a retry or another run reads the database as before. The database stays the record: rows are kept
only after their COMMIT, and in the order a read returns (primary key). A streamed table is kept as
the chunks that were written (no copy), if they arrive in key order and fit. Once a ``keep`` table
of the run does not fit, the run's kept rows are dropped too: the steps that pair them with it read
the database anyway (at 5M customers that frees ~0.7 GB of clean rows for scoring).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from churn_pipeline.logic.champion import TrainingOutcome
from churn_pipeline.logic.modeling import ChurnModel
from churn_pipeline.model_runs import ModelRegistry
from churn_pipeline.model_store import ModelStoreError
from churn_pipeline.settings import mask_url
from churn_pipeline.storage import (
    FrameChunks,
    HandedRows,
    PartitionHandle,
    StorageError,
    TableStore,
    approximate_bytes,
    in_key_order,
    is_in_key_order,
)


def _tables(context: dg.OutputContext) -> list[str]:
    metadata = context.definition_metadata or {}
    return list(metadata.get("tables") or [context.asset_key.path[-1]])


@contextmanager
def _failures_explained():
    """Database trouble that retrying cannot fix fails the step at once, with its message; transient
    trouble (lost connection, deadlock) is raised as is, so the job's retry policy retries it."""
    try:
        yield
    except StorageError as error:
        if error.transient:
            raise
        raise dg.Failure(str(error), allow_retries=False) from None
    except ModelStoreError as error:
        raise dg.Failure(str(error), allow_retries=False) from None
    except ValueError as error:  # raised while producing a stream's chunks: bad data, not bad luck
        raise dg.Failure(f"{type(error).__name__}: {error}", allow_retries=False) from error


class _Handoff:
    """Committed rows of the current run, keyed by (database, run, table, partition), within a byte budget."""

    def __init__(self):
        self._rows: OrderedDict[tuple, tuple[HandedRows, str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: tuple, rows: HandedRows, policy: str, budget: int) -> None:
        size = rows.bytes
        with self._lock:
            for other in [k for k in self._rows if k[:2] != key[:2]]:  # another run or database: done with
                del self._rows[other]
            self._rows.pop(key, None)
            if size > budget:
                return
            while self._rows and sum(n for *_, n in self._rows.values()) + size > budget:
                self._rows.popitem(last=False)  # the oldest first
            self._rows[key] = (rows, policy, size)

    def take(self, key: tuple) -> HandedRows | None:
        """The rows (shared with later consumers under the ``keep`` policy: never modify them)."""
        with self._lock:
            entry = self._rows.get(key)
            if entry is None:
                return None
            rows, policy, _ = entry
            if policy == "once":
                del self._rows[key]
            return rows

    def drop_run(self, key: tuple) -> None:
        """Forget every entry of ``key``'s database and run: a table of the day outgrew the budget, so
        its consumers read the database anyway, and rows kept for pairing with it would only hold memory."""
        with self._lock:
            for other in [k for k in self._rows if k[:2] == key[:2]]:
                del self._rows[other]

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()


class _Collector:
    """Keeps the chunks of a stream as they go to the database, for the hand-over, while they fit
    ``budget`` bytes and arrive in primary-key order; gives up (and lets them go) otherwise."""

    def __init__(self, table: str, budget: int, expected_rows: int | None = None):
        self.table, self.budget, self.expected_rows = table, budget, expected_rows
        self.pieces: list[pd.DataFrame] | None = []
        self.size = 0

    def add(self, chunk: pd.DataFrame) -> None:
        if self.pieces is None or not len(chunk):
            return
        size = approximate_bytes(chunk)
        if not self.pieces and self.expected_rows and size / len(chunk) * self.expected_rows > self.budget:
            self.pieces = None  # the stream announced more rows than would fit: do not hold any
            return
        self.size += size
        if self.size > self.budget or not self._follows(chunk):
            self.pieces = None
            return
        self.pieces.append(chunk)

    def _follows(self, chunk: pd.DataFrame) -> bool:
        """Whether ``chunk`` is sorted by primary key and starts after the previous chunk ended."""
        if not is_in_key_order(self.table, chunk):
            return False
        return not self.pieces or is_in_key_order(self.table, pd.concat([self.pieces[-1].iloc[-1:], chunk.iloc[:1]]))

    def rows(self) -> HandedRows | None:
        return None if self.pieces is None else HandedRows(self.pieces)


HANDOFF = _Handoff()


def _run_id(context) -> str | None:
    """The run that wrote (an output) or that will read (an input's upstream output); None if unknown."""
    try:
        return context.run_id if isinstance(context, dg.OutputContext) else context.upstream_output.run_id
    except Exception:  # noqa: BLE001 - contexts built outside a run (tests, direct calls) have none
        return None


def _partition(context) -> str | None:
    return context.asset_partition_key if context.has_asset_partitions else None


class SqlTableIOManager(dg.ConfigurableIOManager):
    """Stores DataFrames in the schema tables of a MySQL/MariaDB or SQLite database."""

    db_url: str = Field(description="SQLAlchemy URL, e.g. mysql+pymysql://user@host:3306/churn")
    bulk_method: str = Field(
        default="auto",
        description="auto (LOAD DATA LOCAL INFILE on MySQL, batched INSERT if refused) | load_data | executemany",
    )
    handoff_mb: int = Field(
        default=1024, ge=0,
        description="Memory for handing committed rows to the next steps of the same run in this process (0: off)",
    )

    def _handoff_key(self, context, table: str, partition: str | None) -> tuple:
        return (self.db_url, _run_id(context), table, partition)

    def _store(self) -> TableStore:
        return TableStore(self.db_url, bulk_method=self.bulk_method)  # type: ignore[arg-type]

    def handle_output(self, context: dg.OutputContext,
                      obj: pd.DataFrame | FrameChunks | Mapping[str, pd.DataFrame | FrameChunks]) -> None:
        tables = _tables(context)
        frames = dict(obj) if isinstance(obj, Mapping) else {tables[0]: obj}
        if sorted(frames) != sorted(tables):
            asset = context.asset_key.to_user_string()
            raise dg.Failure(f"{asset} produced tables {sorted(frames)}, expected {tables}", allow_retries=False)
        partition = _partition(context)
        policy = (context.definition_metadata or {}).get("handoff")
        handing = policy in ("once", "keep") and self.handoff_mb and _run_id(context) is not None
        budget = self.handoff_mb * 2**20
        collectors = {}
        if handing:
            for table, frame in frames.items():
                if isinstance(frame, FrameChunks):
                    collectors[table] = _Collector(table, budget, frame.expected_rows)
                    frame.after_chunk.append(collectors[table].add)
        with _failures_explained():
            written = self._store().write(frames, partition=partition)
        if handing:
            for table, frame in frames.items():
                key = self._handoff_key(context, table, partition)
                if table in collectors:
                    rows = collectors[table].rows()
                else:  # a frame: sorted only if it will be kept
                    rows = HandedRows([in_key_order(table, frame)]) if approximate_bytes(frame) <= budget else None
                if rows is None or rows.bytes > budget:
                    if policy == "keep":  # later steps pair this table with the earlier ones: all read the database
                        HANDOFF.drop_run(key)
                    continue
                HANDOFF.put(key, rows, policy, budget)
        finished = {}
        for frame in frames.values():
            if isinstance(frame, FrameChunks):
                finished.update(frame.finished_metadata())
        context.add_output_metadata(
            {
                **finished,
                **{f"rows: {table}": dg.MetadataValue.int(count) for table, count in written.items()},
                "dagster/row_count": dg.MetadataValue.int(sum(written.values())),
                "tables": dg.MetadataValue.text(", ".join(tables)),
                "database": dg.MetadataValue.text(mask_url(self.db_url)),
            }
        )

    def load_input(self, context: dg.InputContext) -> pd.DataFrame | dict[str, pd.DataFrame] | PartitionHandle:
        upstream = context.upstream_output
        tables = _tables(upstream)
        partition = _partition(context)
        store = self._store()
        handed = {table: HANDOFF.take(self._handoff_key(context, table, partition)) if _run_id(context) else None
                  for table in tables}
        def nothing_there() -> dg.Failure:
            return dg.Failure(
                f"no rows in {tables[0]} for partition {partition}: materialize "
                f"{upstream.asset_key.to_user_string()} for that day first (if it ran, it kept no row of the "
                "day: see its metadata, e.g. every row rejected)", allow_retries=False,
            )

        if (context.definition_metadata or {}).get("load") == "lazy":
            if handed[tables[0]] is not None:
                if not len(handed[tables[0]]):
                    raise nothing_there()
                return PartitionHandle(store, tables[0], partition, handed=handed[tables[0]])
            with _failures_explained():
                if not store.has_rows(tables[0], partition):
                    raise nothing_there()
            return PartitionHandle(store, tables[0], partition)
        with _failures_explained():  # a copy of handed rows: the consumer may change its frame
            frames = {table: handed[table].whole().copy() if handed[table] is not None and len(handed[table])
                      else store.read(table, partition=partition) for table in tables}  # typed even when empty
        if frames[tables[0]].empty:
            raise nothing_there()
        multi = bool((upstream.definition_metadata or {}).get("tables"))
        return frames if multi else frames[tables[0]]


class ModelIOManager(dg.ConfigurableIOManager):
    """Registers each training (hashed model file, ``model_runs`` row, ``model_evaluation`` rows) and
    hands downstream assets the model that may score the partition: the champion after that training."""

    db_url: str = Field(description="SQLAlchemy URL of the database holding model_runs")
    model_dir: str = Field(description="Folder of model files (CHURN_MODEL_DIR)")

    def _registry(self) -> ModelRegistry:
        return ModelRegistry(self.db_url, self.model_dir)

    def handle_output(self, context: dg.OutputContext, obj: TrainingOutcome) -> None:
        with _failures_explained():
            version = self._registry().register(obj, run_id=context.run_id,
                                                trained_at=datetime.now(UTC).replace(tzinfo=None))
        context.add_output_metadata(
            {
                "model_version": dg.MetadataValue.text(version),
                "promoted": obj.promoted,
                "serving_version": dg.MetadataValue.text(version if obj.promoted else str(obj.champion_version)),
                "tables": dg.MetadataValue.text("model_runs, model_evaluation"),
            }
        )

    def load_input(self, context: dg.InputContext) -> ChurnModel:
        partition = _partition(context)
        with _failures_explained():
            return self._registry().serving_model_for(partition)
