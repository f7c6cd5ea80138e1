"""Typed tables from the pandera schemas, written atomically and fast, on MySQL/MariaDB and SQLite.

No Dagster here: :class:`TableStore` is the storage engine behind the IO manager, the CLI summary,
the benchmarks and the tests.

- DDL comes from :data:`churn_pipeline.schemas.TABLES`: column types, NOT NULL, primary key, indexes
  and comments. An existing table whose columns differ from the schema is an error, never altered.
- A write replaces one partition (``WHERE snapshot_date = :day``), or the whole table, or appends,
  inside one transaction: readers on other connections see the old rows or the new ones, never an
  empty or half-written table (InnoDB MVCC; SQLite WAL).
- Bulk rows go in through ``LOAD DATA LOCAL INFILE`` on MySQL (falling back to batched multi-row
  ``INSERT`` where the server or client refuses local infile) and ``executemany`` on SQLite.
"""

from __future__ import annotations

import csv
import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Literal

import pandas as pd
import sqlalchemy as sa
from pandera.engines import pandas_engine
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine

from churn_pipeline.schemas import TABLES, TableSpec
from churn_pipeline.settings import mask_url

log = logging.getLogger(__name__)

BulkMethod = Literal["auto", "load_data", "executemany"]
# MySQL/MariaDB errors meaning "local infile is not allowed here" (server or client side);
# 4166 is MariaDB's ER_LOAD_INFILE_CAPABILITY_DISABLED (server local_infile=OFF).
_LOCAL_INFILE_REFUSED = {1148, 2068, 3948, 1227, 4166}
_INSERT_BATCH_ROWS = 5_000

_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class StorageError(RuntimeError):
    """A table could not be created, written or read as the schema says."""


def column_kind(column) -> str:
    """The storage kind of a pandera column: date, datetime, bool, int, float, category, text, long_text, str."""
    sql = (column.metadata or {}).get("sql")
    if sql in ("date", "text", "long_text"):
        return sql
    dtype = column.dtype
    if isinstance(dtype, pandas_engine.DateTime):
        return "datetime"
    if isinstance(dtype, pandas_engine.Category):
        return "category"
    type_name = str(dtype).lower()
    if "bool" in type_name:
        return "bool"
    if "int" in type_name:
        return "int"
    if "float" in type_name:
        return "float"
    return "str"


def _max_length(column) -> int:
    for check in column.checks:
        if check.name == "str_length" and check.statistics.get("max_value"):
            return int(check.statistics["max_value"])
    return 255


def sql_type(column):
    kind = column_kind(column)
    if kind == "category":
        return sa.String(max(len(c) for c in column.dtype.categories))
    return {
        "date": sa.Date(),
        "datetime": _DATETIME,
        "bool": sa.Boolean(create_constraint=False),
        "int": sa.BigInteger(),
        "float": sa.Double(),
        "text": sa.Text(),
        "long_text": _LONG_TEXT,
    }.get(kind) or sa.String(_max_length(column))


def build_table(spec: TableSpec, metadata: sa.MetaData) -> sa.Table:
    """The SQLAlchemy table for a schema: typed columns, NOT NULL, primary key, indexes, comments."""
    columns = [
        sa.Column(
            name,
            sql_type(column),
            nullable=column.nullable,
            primary_key=name in spec.primary_key,
            autoincrement=False,
            comment=column.description,
        )
        for name, column in spec.schema.columns.items()
    ]
    indexes = [sa.Index(f"ix_{spec.name}_{'_'.join(cols)}", *cols) for cols in spec.indexes]
    return sa.Table(
        spec.name, metadata, *columns, *indexes,
        comment=spec.description, mysql_engine="InnoDB", mysql_charset="utf8mb4",
    )


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def get_engine(url: str) -> Engine:
    """One pooled engine per URL and process. MySQL connections allow LOAD DATA LOCAL INFILE;
    SQLite files use WAL so readers never block on (or see half of) a write."""
    with _ENGINES_LOCK:
        if url not in _ENGINES:
            _ENGINES[url] = _create_engine(url)
        return _ENGINES[url]


def _create_engine(url: str) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see begin below)
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):
            # Writers take the write lock up front (no upgrade deadlocks); readers never block.
            conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))

        return engine
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        return sa.create_engine(
            url, pool_pre_ping=True, pool_recycle=3600,
            connect_args={"local_infile": True, "charset": "utf8mb4"},
        )
    raise StorageError(f"unsupported database {mask_url(url)}: use a mysql+pymysql:// or sqlite:/// URL")


class TableStore:
    """Reads and writes the schema tables of one database."""

    def __init__(self, url: str, bulk_method: BulkMethod = "auto"):
        self.url = url
        self.engine = get_engine(url)
        self.bulk_method = bulk_method
        self.metadata = sa.MetaData()
        self._tables: dict[str, sa.Table] = {}
        self._ready: set[str] = set()

    @property
    def is_mysql(self) -> bool:
        return self.engine.dialect.name in ("mysql", "mariadb")

    def table(self, name: str) -> sa.Table:
        if name not in TABLES:
            raise StorageError(f"unknown table {name!r}; known tables: {', '.join(TABLES)}")
        if name not in self._tables:
            self._tables[name] = build_table(TABLES[name], self.metadata)
        return self._tables[name]

    def ensure_table(self, name: str) -> sa.Table:
        """Create the table if missing; refuse a table whose columns differ from the schema."""
        table = self.table(name)
        if name in self._ready:
            return table
        try:
            table.create(self.engine, checkfirst=True)
        except sa.exc.OperationalError as error:  # another process created it first
            if "already exists" not in str(error).lower():
                raise
        existing = [c["name"] for c in sa.inspect(self.engine).get_columns(name)]
        expected = [c.name for c in table.columns]
        if sorted(existing, key=str.lower) != sorted(expected, key=str.lower):
            missing = sorted(set(expected) - set(existing))
            extra = sorted(set(existing) - set(expected))
            raise StorageError(
                f"table {name} in {mask_url(self.url)} does not match its schema "
                f"(missing columns: {missing or 'none'}; unexpected columns: {extra or 'none'}); "
                "migrate or rename the old table, nothing was written"
            )
        self._ready.add(name)
        return table

    # ---- writing -------------------------------------------------------------------------------

    def write(self, frames: Mapping[str, pd.DataFrame], partition: str | None = None,
              mode: Literal["replace", "append"] = "replace") -> dict[str, int]:
        """Write several tables in ONE transaction.

        ``replace`` with a ``partition`` (YYYY-MM-DD) replaces that day's rows of each table;
        without one it replaces every row. ``append`` only inserts. Returns rows written per table.
        """
        for name, frame in frames.items():
            spec = TABLES[name] if name in TABLES else None
            if spec is None:
                raise StorageError(f"unknown table {name!r}")
            self._check_frame(spec, frame, partition)
            self.ensure_table(name)
        written = {}
        with self.engine.connect().execution_options(sqlite_begin="BEGIN IMMEDIATE") as conn, conn.begin():
            for name, frame in frames.items():
                table = self.table(name)
                spec = TABLES[name]
                if mode == "replace":
                    delete = table.delete()
                    if partition is not None:
                        delete = delete.where(table.c[spec.partition_column] == pd.Timestamp(partition).date())
                    conn.execute(delete)
                try:
                    written[name] = self._bulk_insert(conn, table, spec, frame)
                except (sa.exc.DBAPIError, *_dbapi_errors()) as error:
                    where = f"partition {partition}" if partition else f"mode {mode}"
                    raise StorageError(
                        f"writing {len(frame)} rows to {name} ({where}) failed, nothing was written: {error}"
                    ) from error
        return written

    def _check_frame(self, spec: TableSpec, frame: pd.DataFrame, partition: str | None) -> None:
        if list(frame.columns) != spec.columns:
            raise StorageError(
                f"rows for {spec.name} have columns {list(frame.columns)}, the schema wants {spec.columns}"
            )
        if partition is not None:
            if spec.partition_column is None:
                raise StorageError(f"table {spec.name} is not partitioned; cannot replace partition {partition}")
            days = pd.to_datetime(frame[spec.partition_column]).dt.normalize()
            wrong = frame[days != pd.Timestamp(partition)]
            if len(wrong):
                raise StorageError(
                    f"{len(wrong)} rows for {spec.name} have {spec.partition_column} other than partition "
                    f"{partition}, e.g. {wrong[spec.partition_column].iloc[0]!s}; nothing was written"
                )

    def _bulk_insert(self, conn: Connection, table: sa.Table, spec: TableSpec, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        if self.is_mysql and self.bulk_method in ("auto", "load_data"):
            try:
                return self._load_data(conn, table, spec, frame)
            except _LocalInfileRefused as refused:
                if self.bulk_method == "load_data":
                    raise StorageError(f"LOAD DATA LOCAL INFILE refused: {refused}") from refused
                log.info("LOAD DATA LOCAL INFILE refused (%s); using batched INSERT", refused)
        return self._executemany(conn, table, spec, frame)

    def _load_data(self, conn: Connection, table: sa.Table, spec: TableSpec, frame: pd.DataFrame) -> int:
        import pymysql

        text = _to_load_data_text(spec, frame)
        columns = ", ".join(f"`{c}`" for c in frame.columns)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".tsv", delete=False) as handle:
            text.to_csv(handle, sep="\t", header=False, index=False, quoting=csv.QUOTE_NONE,
                        lineterminator="\n")
            path = handle.name
        try:
            cursor = conn.connection.dbapi_connection.cursor()
            try:
                loaded = cursor.execute(
                    f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table.name}` CHARACTER SET utf8mb4 "
                    f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({columns})",
                    (path,),
                )
            except (pymysql.err.OperationalError, pymysql.err.InternalError,
                    pymysql.err.ProgrammingError, pymysql.err.NotSupportedError) as error:
                if error.args and error.args[0] in _LOCAL_INFILE_REFUSED:
                    raise _LocalInfileRefused(str(error)) from error
                raise
            # LOCAL turns data errors into warnings; any warning means rows were altered or skipped.
            cursor.execute("SHOW WARNINGS LIMIT 5")
            warnings = cursor.fetchall()
            cursor.close()
        finally:
            os.unlink(path)
        if warnings or loaded != len(frame):
            raise StorageError(
                f"loading {table.name}: {loaded} of {len(frame)} rows loaded; server warnings: {list(warnings)}"
            )
        return loaded

    def _executemany(self, conn: Connection, table: sa.Table, spec: TableSpec, frame: pd.DataFrame) -> int:
        columns = list(frame.columns)
        values = _to_python_rows(spec, frame, iso_dates=not self.is_mysql)
        if self.is_mysql:
            quoted = ", ".join(f"`{c}`" for c in columns)
            sql = f"INSERT INTO `{table.name}` ({quoted}) VALUES ({', '.join(['%s'] * len(columns))})"
        else:
            quoted = ", ".join(f'"{c}"' for c in columns)
            sql = f'INSERT INTO "{table.name}" ({quoted}) VALUES ({", ".join(["?"] * len(columns))})'
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            for start in range(0, len(values), _INSERT_BATCH_ROWS):
                cursor.executemany(sql, values[start:start + _INSERT_BATCH_ROWS])
        finally:
            cursor.close()
        return len(values)

    # ---- reading -------------------------------------------------------------------------------

    def read(self, name: str, partition: str | None = None, columns: list[str] | None = None,
             where: sa.ColumnElement | None = None) -> pd.DataFrame:
        """Rows of a table (one partition, or all) with the schema's dtypes restored."""
        for frame in self.read_chunks(name, partition, columns, where, chunk_rows=None):
            return frame
        raise AssertionError("read_chunks yields at least one frame")

    def read_chunks(self, name: str, partition: str | None = None, columns: list[str] | None = None,
                    where: sa.ColumnElement | None = None, chunk_rows: int | None = 200_000,
                    ) -> Iterator[pd.DataFrame]:
        table = self.ensure_table(name)
        spec = TABLES[name]
        columns = columns or spec.columns
        query = sa.select(*[table.c[c] for c in columns])
        if partition is not None:
            query = query.where(table.c[spec.partition_column] == pd.Timestamp(partition).date())
        if where is not None:
            query = query.where(where)
        if spec.primary_key:
            query = query.order_by(*[table.c[c] for c in spec.primary_key])
        with self.engine.connect() as conn:
            if chunk_rows is None:
                yield self._restore(spec, pd.read_sql_query(query, conn), columns)
                return
            result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(query)
            yielded = False
            for rows in result.partitions(chunk_rows):
                yielded = True
                yield self._restore(spec, pd.DataFrame(rows, columns=columns), columns)
            if not yielded:
                yield self._restore(spec, pd.DataFrame(columns=columns), columns)

    def _restore(self, spec: TableSpec, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        schema_columns = spec.schema.columns
        out = {}
        for name in columns:
            column = schema_columns[name]
            values = frame[name]
            kind = column_kind(column)
            if kind in ("date", "datetime"):
                out[name] = pd.to_datetime(values)
            elif kind == "category":
                out[name] = pd.Categorical(values, categories=list(column.dtype.categories))
            elif kind == "bool":
                if column.nullable or str(column.dtype) == "boolean":
                    out[name] = pd.array([None if pd.isna(v) else bool(v) for v in values], dtype="boolean")
                else:
                    out[name] = values.astype(bool)
            elif kind == "int":
                out[name] = values.astype("Int64" if column.nullable else "int64")
            elif kind == "float":
                out[name] = pd.to_numeric(values, errors="raise").astype("float64")
            else:
                out[name] = values.astype(object).where(values.notna(), None)
        return pd.DataFrame(out, index=pd.RangeIndex(len(frame)))

    def drop_all(self) -> None:
        """Drop every schema table (tests and resets only)."""
        for name in TABLES:
            self.table(name)
        self.metadata.drop_all(self.engine)
        self._ready.clear()


class _LocalInfileRefused(Exception):
    pass


def _dbapi_errors() -> tuple[type[Exception], ...]:
    """The drivers' own error classes (raw DBAPI cursors raise these, not SQLAlchemy's)."""
    import sqlite3

    import pymysql

    return (sqlite3.Error, pymysql.err.Error)


_MYSQL_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\0", "\\0"))


def _to_load_data_text(spec: TableSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """Every value as MySQL LOAD DATA text (tab-separated, backslash-escaped, NULL as \\N)."""
    out = {}
    schema_columns = spec.schema.columns
    for name in frame.columns:
        values = frame[name]
        kind = column_kind(schema_columns[name])
        missing = values.isna().to_numpy()
        if kind == "date":
            text = pd.to_datetime(values).dt.strftime("%Y-%m-%d")
        elif kind == "datetime":
            text = pd.to_datetime(values).dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        elif kind == "bool":
            text = values.map({True: "1", False: "0"}, na_action="ignore")
        elif kind == "float":
            text = values.astype("float64").astype(str)  # shortest repr: round-trips exactly
        elif kind == "int":
            text = values.astype("Int64").astype(str)
        else:
            text = values.astype(str)
            for old, new in _MYSQL_ESCAPES:
                text = text.str.replace(old, new, regex=False)
        out[name] = text.astype(object).where(~missing, "\\N")
    return pd.DataFrame(out)


def _to_python_rows(spec: TableSpec, frame: pd.DataFrame, iso_dates: bool) -> list[tuple]:
    """Rows of plain Python values for DBAPI executemany (None for NULL)."""
    schema_columns = spec.schema.columns
    columns = []
    for name in frame.columns:
        values = frame[name]
        kind = column_kind(schema_columns[name])
        missing = values.isna().to_numpy()
        if kind == "date":
            stamps = pd.to_datetime(values)
            converted = stamps.dt.strftime("%Y-%m-%d") if iso_dates else pd.Series(stamps.dt.date, index=values.index)
        elif kind == "datetime":
            stamps = pd.to_datetime(values)
            converted = (stamps.dt.strftime("%Y-%m-%d %H:%M:%S.%f") if iso_dates
                         else pd.Series([t.to_pydatetime() for t in stamps], index=values.index, dtype=object))
        elif kind == "bool":
            converted = values.map({True: 1, False: 0}, na_action="ignore")
        elif kind == "category":
            converted = values.astype(object)
        else:
            converted = values
        columns.append([None if m else v for v, m in zip(converted.astype(object).tolist(), missing)])
    return list(zip(*columns))


@contextmanager
def mysql_server_database(server_url: str, database: str) -> Iterator[str]:
    """Create ``database`` on a MySQL server for the duration of the block, then drop it (tests, benchmarks)."""
    engine = sa.create_engine(server_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
            conn.exec_driver_sql(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
        yield sa.engine.make_url(server_url).set(database=database).render_as_string(hide_password=False)
    finally:
        dispose_engine(sa.engine.make_url(server_url).set(database=database).render_as_string(hide_password=False))
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        engine.dispose()


def dispose_engine(url: str) -> None:
    with _ENGINES_LOCK:
        engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()
