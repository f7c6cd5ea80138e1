"""Dagster types and UI column schemas made from the pandera schemas (see ``schemas.py``)."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
import pandas as pd
import pandera.pandas as pa

from churn_pipeline.schemas import TABLES, TableSpec
from churn_pipeline.storage import FrameChunks, StorageError, column_kind, sql_type

EXAMPLES_PER_CHECK = 5


def table_schema(spec: TableSpec) -> dg.TableSchema:
    """The column schema shown in the Dagster UI: name, SQL type, description, constraints."""
    columns = []
    for name, column in spec.schema.columns.items():
        other = [str(check) for check in column.checks]
        if name in spec.primary_key:
            other.insert(0, "primary key")
        columns.append(
            dg.TableColumn(
                name=name,
                type=str(sql_type(column)).lower() if column_kind(column) != "category"
                else f"category({', '.join(column.dtype.categories)})",
                description=column.description,
                constraints=dg.TableColumnConstraints(nullable=column.nullable, other=other),
            )
        )
    return dg.TableSchema(columns=columns)


def describe_failures(table: str, error: pa.errors.SchemaErrors) -> str:
    """Which column failed which check, with example values and row positions."""
    cases = error.failure_cases
    lines = [f"{table}: {len(cases)} failing values"]
    for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        examples = ", ".join(
            f"row {index}: {value!r}" for index, value in
            zip(group["index"].head(EXAMPLES_PER_CHECK), group["failure_case"].head(EXAMPLES_PER_CHECK))
        )
        lines.append(f"- column {column!s}, check {check}: {len(group)} failures ({examples})")
    return "\n".join(lines)


class SchemaViolation(StorageError):
    """Rows that break their table's schema, found while a stream was being written (never transient)."""


def validate_chunks(table: str, stream: FrameChunks) -> dg.TypeCheck:
    """A stream cannot be checked before it is written: each chunk is validated on its way to the
    database, and a failing chunk aborts the write (the transaction keeps the old rows)."""

    def check(chunk: pd.DataFrame) -> None:
        result = validate_table(table, chunk)
        if not result.success:
            raise SchemaViolation(f"{result.description}\n(row numbers count from the start of the failing "
                                  "chunk; nothing was written)")

    stream.after_chunk.insert(0, check)
    return dg.TypeCheck(True, description=f"{table}: every chunk is validated as it is written")


def validate_table(table: str, frame: pd.DataFrame) -> dg.TypeCheck:
    if isinstance(frame, FrameChunks) and frame.table == table:
        return validate_chunks(table, frame)
    if not isinstance(frame, pd.DataFrame):
        return dg.TypeCheck(False, f"{table}: expected a pandas DataFrame, got {type(frame).__name__}")
    try:
        TABLES[table].model.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as error:
        return dg.TypeCheck(False, describe_failures(table, error))
    return dg.TypeCheck(True, metadata={f"{table} rows": len(frame)})


def frame_type(table: str) -> dg.DagsterType:
    """A Dagster type that validates one table's rows against its pandera schema."""
    spec = TABLES[table]
    return dg.DagsterType(
        type_check_fn=lambda _context, value: validate_table(table, value),
        name=spec.model.__name__,
        description=spec.description,
        typing_type=pd.DataFrame,
        metadata={"schema": table_schema(spec)},
    )


def table_set_type(name: str, tables: tuple[str, ...]) -> dg.DagsterType:
    """A Dagster type for an asset stored as several tables (a mapping of table name to rows)."""

    def check(_context, value) -> dg.TypeCheck:
        if not isinstance(value, Mapping) or set(value) != set(tables):
            return dg.TypeCheck(False, f"{name}: expected tables {list(tables)}")
        failures = [result.description for t in tables if not (result := validate_table(t, value[t])).success]
        if failures:
            return dg.TypeCheck(False, "\n".join(failures))
        return dg.TypeCheck(True, metadata={f"{t} rows": len(value[t]) for t in tables
                                            if isinstance(value[t], pd.DataFrame)})

    return dg.DagsterType(
        type_check_fn=check,
        name=name,
        description=" and ".join(TABLES[t].description for t in tables),
        typing_type=dict,
        metadata={f"{t} schema": table_schema(TABLES[t]) for t in tables},
    )
