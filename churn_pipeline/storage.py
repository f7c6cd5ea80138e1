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

import dataclasses
import datetime
import logging
import numbers
import os
import queue
import tempfile
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from pandas.api.types import infer_dtype
from pandera.engines import pandas_engine
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, Engine

from churn_pipeline.schemas import TABLES, TableSpec
from churn_pipeline.settings import mask_url

log = logging.getLogger(__name__)

try:  # optional fast reader (see TableStore._read_whole)
    import connectorx as _connectorx
except ImportError:  # pragma: no cover - declared in pyproject; absent only in odd installs
    _connectorx = None

BulkMethod = Literal["auto", "load_data", "executemany"]
# MySQL/MariaDB errors meaning "local infile is not allowed here" (server or client side);
# 4166 is MariaDB's ER_LOAD_INFILE_CAPABILITY_DISABLED (server local_infile=OFF).
_LOCAL_INFILE_REFUSED = {1148, 2068, 3948, 1227, 4166}
_INSERT_BATCH_ROWS = 5_000
# Rows per chunk when a partition is read or written in pieces (scoring and KPIs stream at this size).
DEFAULT_CHUNK_ROWS = 100_000

_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_LONG_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class StorageError(RuntimeError):
    """A table could not be created, written or read as the schema says.

    ``transient`` marks failures that may heal by themselves (lost connection, deadlock, lock wait,
    a busy SQLite file): worth retrying. Anything else (bad data, schema mismatch) is not.
    """

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


# MySQL/MariaDB: lock wait timeout, deadlock, too many connections, server gone, lost connection,
# connection killed, can't connect, query interrupted.
_TRANSIENT_MYSQL_CODES = {1205, 1213, 1040, 2003, 2006, 2013, 2055, 1927, 1317, 1053}


def is_transient(error: BaseException) -> bool:
    """Whether a database error is the kind that heals on its own (see StorageError)."""
    original = getattr(error, "orig", None) or error
    code = original.args[0] if getattr(original, "args", None) else None
    if isinstance(code, int) and code in _TRANSIENT_MYSQL_CODES:
        return True
    message = str(original).lower()
    return any(word in message for word in ("database is locked", "database is busy", "lost connection",
                                            "server has gone away", "connection was killed"))


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
    indexes += [sa.Index(f"ux_{spec.name}_{'_'.join(cols)}", *cols, unique=True) for cols in spec.unique]
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
        self._connectorx_warned = False

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
        except sa.exc.OperationalError as error:  # "already exists": another process created it first
            if "already exists" not in str(error).lower():  # e.g. server down, access denied
                raise StorageError(f"cannot create or check table {name} in {mask_url(self.url)}: {error}",
                                   transient=is_transient(error)) from error
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

        ``replace`` with a ``partition`` (e.g. a YYYY-MM-DD day) replaces that partition's rows of each
        table; without one it replaces every row. ``append`` only inserts. Returns rows per table.
        """
        return self.write_steps([WriteStep(name, frame, mode, partition) for name, frame in frames.items()])

    def write_steps(self, steps: list[WriteStep]) -> dict[str, int]:
        """Several table writes, each with its own mode and partition, in ONE transaction.

        A step's rows are a DataFrame, or an iterable of DataFrames (:class:`FrameChunks`) consumed one
        chunk at a time inside the transaction, so a table far larger than memory is still written
        whole or not at all: an exception raised while producing a chunk (bad rows found late, a model
        failing) rolls back everything, and the old rows stay."""
        for step in steps:
            if step.table not in TABLES:
                raise StorageError(f"unknown table {step.table!r}; known tables: {', '.join(TABLES)}")
            if isinstance(step.frame, pd.DataFrame):
                self._check_frame(TABLES[step.table], step.frame, step.partition)
            self.ensure_table(step.table)
        written = {}
        failure: StorageError | None = None
        try:
            with self.engine.connect().execution_options(sqlite_begin="BEGIN IMMEDIATE") as conn, conn.begin():
                for step in steps:
                    table, spec = self.table(step.table), TABLES[step.table]
                    chunks = step.frame
                    rows_done = 0
                    try:
                        if step.mode == "replace":
                            delete = table.delete()
                            if step.partition is not None:
                                delete = delete.where(
                                    table.c[spec.partition_column] == _partition_value(spec, step.partition))
                            conn.execute(delete)
                        if isinstance(step.frame, pd.DataFrame):
                            rows_done = self._bulk_insert(conn, table, spec, step.frame)
                        else:
                            checked = (self._checked(spec, chunk, step.partition) for chunk in chunks)
                            rows_done = self._bulk_insert_chunks(conn, table, spec, checked)
                        written[step.table] = rows_done
                    except (sa.exc.DBAPIError, *_dbapi_errors()) as error:
                        where = f"partition {step.partition}" if step.partition else f"mode {step.mode}"
                        what = (f"{len(step.frame)} rows to {step.table}" if isinstance(step.frame, pd.DataFrame)
                                else f"{step.table} (a stream, after {rows_done:,} rows)")
                        failure = StorageError(f"writing {what} ({where}) failed, nothing was written: {error}",
                                               transient=is_transient(error))
                        raise failure from error
        except (sa.exc.DBAPIError, *_dbapi_errors()) as error:
            # A killed or lost connection fails again in the rollback: report the first failure. Without
            # one, connecting or COMMIT failed; the server then keeps the old rows or (if the COMMIT
            # landed) all the new ones, never a mix, and rewriting the partition is safe either way.
            if failure is not None:
                raise failure from failure.__cause__
            raise StorageError(f"writing {', '.join(s.table for s in steps)} failed before or at COMMIT "
                               f"(the old rows or all the new ones are kept): {error}",
                               transient=is_transient(error)) from error
        return written

    def _check_frame(self, spec: TableSpec, frame: pd.DataFrame, partition: str | None) -> None:
        if list(frame.columns) != spec.columns:
            raise StorageError(
                f"rows for {spec.name} have columns {list(frame.columns)}, the schema wants {spec.columns}"
            )
        if partition is not None:
            if spec.partition_column is None:
                raise StorageError(f"table {spec.name} is not partitioned; cannot replace partition {partition}")
            values = frame[spec.partition_column]
            if column_kind(spec.schema.columns[spec.partition_column]) in ("date", "datetime"):
                mismatch = pd.to_datetime(values).dt.normalize() != pd.Timestamp(partition)
            else:
                mismatch = values.astype(str) != str(partition)
            wrong = frame[mismatch]
            if len(wrong):
                raise StorageError(
                    f"{len(wrong)} rows for {spec.name} have {spec.partition_column} other than partition "
                    f"{partition}, e.g. {wrong[spec.partition_column].iloc[0]!s}; nothing was written"
                )

    def _checked(self, spec: TableSpec, chunk: pd.DataFrame, partition: str | None) -> pd.DataFrame:
        self._check_frame(spec, chunk, partition)
        return chunk

    def _bulk_insert(self, conn: Connection, table: sa.Table, spec: TableSpec, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        if len(frame) > _LOAD_DATA_CHUNK_ROWS:  # large: in primary-key order, a chunk at a time, pipelined
            order = _primary_key_order(spec, frame)
            ordered = frame if order is None else frame.iloc[order]
            return self._bulk_insert_chunks(conn, table, spec, (
                ordered.iloc[start:start + _LOAD_DATA_CHUNK_ROWS]
                for start in range(0, len(frame), _LOAD_DATA_CHUNK_ROWS)), in_key_order=True)
        return self._bulk_insert_chunks(conn, table, spec, iter([frame]))

    def _bulk_insert_chunks(self, conn: Connection, table: sa.Table, spec: TableSpec,
                            chunks: Iterator[pd.DataFrame], in_key_order: bool = False) -> int:
        """Insert chunks in order. On MySQL each chunk is one LOAD DATA LOCAL INFILE, and a thread prepares
        the next chunk (producing it, validating it, writing its text) while the server loads this one:
        client and server work at the same time on the two cores instead of taking turns. Any error,
        on either side, stops both and propagates (the caller's transaction then rolls back).
        ``in_key_order``: the chunks are slices of a frame already sorted by primary key (no re-sort)."""
        use_load_data = self.is_mysql and self.bulk_method in ("auto", "load_data")
        if not use_load_data:
            return sum(self._executemany(conn, table, spec, chunk) for chunk in chunks if not chunk.empty)
        done = 0
        with _Prepared(spec, chunks, in_key_order) as prepared:
            for chunk, path in prepared:
                if use_load_data:
                    try:
                        done += self._load_file(conn, table, chunk, path)
                        continue
                    except _LocalInfileRefused as refused:
                        if self.bulk_method == "load_data":
                            raise StorageError(f"LOAD DATA LOCAL INFILE refused: {refused}") from refused
                        log.info("LOAD DATA LOCAL INFILE refused (%s); using batched INSERT", refused)
                        use_load_data = False
                done += self._executemany(conn, table, spec, chunk)
        return done

    def _load_file(self, conn: Connection, table: sa.Table, frame: pd.DataFrame, path: str) -> int:
        import pymysql

        columns = ", ".join(f"`{c}`" for c in frame.columns)
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
        except AttributeError as error:
            # PyMySQL, having lost the connection while sending the file, fails again writing to the
            # closed socket ('NoneType' object has no attribute 'sendall'): report the loss itself.
            if isinstance(error.__context__, pymysql.err.Error):
                raise error.__context__ from None
            raise
        # LOCAL turns data errors into warnings; any warning means rows were altered or skipped.
        cursor.execute("SHOW WARNINGS LIMIT 5")
        warnings = cursor.fetchall()
        cursor.close()
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
                    where: sa.ColumnElement | None = None, chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
                    ) -> Iterator[pd.DataFrame]:
        """Rows in primary-key order, ``chunk_rows`` at a time (every chunk full but the last), with the
        schema's dtypes; ``chunk_rows=None`` yields the whole result as one frame. Always yields at
        least one frame (empty if there are no rows). Memory is bounded by the chunk, not the table:
        MySQL results stream from the server (ConnectorX's Arrow stream, else a server-side cursor).

        Two tables with the same primary key and the same rows (clean customers and their features)
        read with the same ``chunk_rows`` give aligned chunks: see :meth:`read_aligned`."""
        table = self.ensure_table(name)
        spec = TABLES[name]
        columns = columns or spec.columns
        query = sa.select(*[table.c[c] for c in columns])
        if partition is not None:
            query = query.where(table.c[spec.partition_column] == _partition_value(spec, partition))
        if where is not None:
            query = query.where(where)
        if spec.primary_key:
            query = query.order_by(*[table.c[c] for c in spec.primary_key])
        if chunk_rows is None:
            yield self._restore(spec, self._read_whole(query), columns)
            return
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
        yielded = False
        for frame in _exact_chunks(self._stream(query, columns, chunk_rows), chunk_rows):
            yielded = True
            yield self._restore(spec, frame, columns)
        if not yielded:
            yield self._restore(spec, pd.DataFrame({c: [] for c in columns}), columns)

    def read_aligned(self, tables: Mapping[str, list[str] | None], partition: str,
                     chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[dict[str, pd.DataFrame]]:
        """Aligned chunks of several tables of one partition, keyed by table name (see :func:`read_aligned`)."""
        return read_aligned({name: (PartitionHandle(self, name, partition), columns)
                             for name, columns in tables.items()}, chunk_rows)

    def _stream(self, query: sa.Select, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
        """The result of ``query`` as DataFrames of any size, streamed from the server."""
        if self._connectorx_ok(query) and _pyarrow_ok():
            sql = str(query.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
            try:
                reader = _connectorx.read_sql(self._connectorx_url, sql, return_type="arrow_stream",
                                              batch_size=chunk_rows)
            except Exception as error:  # noqa: BLE001 - as in _read_whole: fall back to SQLAlchemy
                self._warn_connectorx(error)
            else:
                for batch in reader:
                    yield batch.to_pandas()
                return
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(query)
            for rows in result.partitions(chunk_rows):
                yield pd.DataFrame(rows, columns=columns)

    def _connectorx_ok(self, query: sa.Select) -> bool:
        # Only dates and numbers are inlined: SQLAlchemy's literal quoting of text leaves backslashes
        # unescaped and doubles '%' (PyMySQL's paramstyle), so text would match the wrong rows or inject
        # SQL (and "\\'" crashed ConnectorX): any text value is bound through SQLAlchemy instead.
        if _connectorx is None or not self.is_mysql:  # its SQLite reader misses WAL content
            return False
        return all(isinstance(value, (numbers.Number, datetime.date))
                   for value in query.compile(dialect=self.engine.dialect).params.values())

    def _warn_connectorx(self, error: Exception) -> None:
        if not self._connectorx_warned:
            log.warning("ConnectorX could not read (%s); reading through SQLAlchemy", error)
            self._connectorx_warned = True

    def _read_whole(self, query: sa.Select) -> pd.DataFrame:
        """A whole result as a DataFrame: on MySQL through ConnectorX (Rust, ~10x faster than PyMySQL
        decoding rows in Python) where it is installed, else through SQLAlchemy. ConnectorX takes no
        bound parameters, so the statement is rendered by SQLAlchemy's own literal quoting; values in
        our queries are only partition keys and numbers we built, never raw user text (_connectorx_ok)."""
        if self._connectorx_ok(query):
            sql = str(query.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
            try:
                return _connectorx.read_sql(self._connectorx_url, sql)
            except Exception as error:  # noqa: BLE001 - e.g. an auth plugin it lacks: the slow path still works
                self._warn_connectorx(error)
        with self.engine.connect() as conn:
            return pd.read_sql_query(query, conn)

    @property
    def _connectorx_url(self) -> str:
        url = self.engine.url
        return url.set(drivername="mysql", query={}).render_as_string(hide_password=False)

    def _restore(self, spec: TableSpec, frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
        schema_columns = spec.schema.columns
        out = {}
        for name in columns:
            column = schema_columns[name]
            values = frame[name]
            kind = column_kind(column)
            if kind in ("date", "datetime"):
                out[name] = pd.to_datetime(values).astype("datetime64[ns]")
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

    def count(self, name: str, partition: str | None = None, where: sa.ColumnElement | None = None) -> int:
        """Rows of a table (one partition, or all), optionally filtered, counted by the server."""
        table = self.ensure_table(name)
        spec = TABLES[name]
        query = sa.select(sa.func.count()).select_from(table)
        if partition is not None:
            query = query.where(table.c[spec.partition_column] == _partition_value(spec, partition))
        if where is not None:
            query = query.where(where)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar())

    def has_rows(self, name: str, partition: str | None = None) -> bool:
        """Whether a table (one partition, or all) has any row (an index probe, not a count)."""
        table = self.ensure_table(name)
        spec = TABLES[name]
        query = sa.select(sa.literal(1)).select_from(table).limit(1)
        if partition is not None:
            query = query.where(table.c[spec.partition_column] == _partition_value(spec, partition))
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def drop_all(self) -> None:
        """Drop every schema table (tests and resets only)."""
        for name in TABLES:
            self.table(name)
        self.metadata.drop_all(self.engine)
        self._ready.clear()


class HandedRows:
    """Rows this process has just committed for one table partition, in primary-key order: one frame or
    the consecutive chunks of a stream (kept as they were written, so holding them costs no copy)."""

    def __init__(self, pieces: Iterable[pd.DataFrame]):
        self._pieces = [piece for piece in pieces if len(piece)]
        self._whole: pd.DataFrame | None = None

    def __len__(self) -> int:
        return sum(len(piece) for piece in self._pieces)

    @property
    def bytes(self) -> int:
        return sum(approximate_bytes(piece) for piece in self._pieces)

    def whole(self) -> pd.DataFrame:
        """All rows as one frame, index reset (built once, on first use; shared: do not modify)."""
        if self._whole is None:
            if len(self._pieces) == 1:
                self._whole = self._pieces[0].reset_index(drop=True)
            elif self._pieces:
                self._whole = pd.concat(self._pieces, ignore_index=True)
            else:
                self._whole = pd.DataFrame()
            self._pieces = [self._whole] if len(self._whole) else []
        return self._whole

    def chunks(self, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
        """Chunks of exactly ``chunk_rows`` rows (the last may be shorter) with ``columns``: each piece
        is sliced before its columns are picked, so one chunk is copied at a time, never all rows."""
        slices = (piece.iloc[start:start + chunk_rows][columns]
                  for piece in self._pieces for start in range(0, len(piece), chunk_rows))
        yield from _exact_chunks(slices, chunk_rows)


@dataclass(frozen=True)
class PartitionHandle:
    """One partition of one table, not yet read: what a streaming asset receives as its input.

    It reads on demand: a chunk at a time (:meth:`chunks`), aligned with another table's chunks
    (:func:`read_aligned`), whole (:meth:`read`) or only counted (:meth:`count`). With ``handed`` (the
    rows this process has just committed, in primary-key order; see :class:`HandedRows`) chunks are
    slices of them instead of queries: same rows, no round trip."""

    store: TableStore
    table: str
    partition: str
    handed: HandedRows | None = None

    @property
    def frame(self) -> pd.DataFrame | None:
        """The handed-over rows as one frame (shared: do not modify), or None when they must be read."""
        return None if self.handed is None else self.handed.whole()

    def chunks(self, columns: list[str] | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
               where: sa.ColumnElement | None = None) -> Iterator[pd.DataFrame]:
        if self.handed is None or not len(self.handed) or where is not None:  # (no rows: typed, from the store)
            yield from self.store.read_chunks(self.table, self.partition, columns, where, chunk_rows=chunk_rows)
            return
        yield from self.handed.chunks(columns or TABLES[self.table].columns, chunk_rows)

    def read(self, columns: list[str] | None = None) -> pd.DataFrame:
        if self.handed is not None:
            return self.handed.whole()[columns or TABLES[self.table].columns].copy()
        return self.store.read(self.table, self.partition, columns)

    def count(self, where: sa.ColumnElement | None = None) -> int:
        if self.handed is not None and where is None:
            return len(self.handed)
        return self.store.count(self.table, self.partition, where)

    @property
    def columns(self) -> sa.ColumnCollection:
        """The table's columns, for ``where`` clauses."""
        return self.store.ensure_table(self.table).c


def approximate_bytes(frame: pd.DataFrame) -> int:
    """Memory of a frame without visiting every string (``deep=True`` would): ~64 bytes per text value."""
    shallow = int(frame.memory_usage(index=False, deep=False).sum())
    texts = sum(len(frame) for dtype in frame.dtypes if pd.api.types.is_object_dtype(dtype))
    return shallow + 64 * texts


def read_aligned(inputs: Mapping[str, tuple[PartitionHandle, list[str] | None]],
                 chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[dict[str, pd.DataFrame]]:
    """Chunks of several partitions keyed by ``(snapshot_date, customer_id)``, row for row: each item
    maps the names of ``inputs`` to their rows for the same customers. A table holding other customers
    than the first (a stale or half-rebuilt day) is an error naming both, never a silent misalignment."""
    names = list(inputs)
    handles = [inputs[name][0] for name in names]
    if any(handle.handed is None for handle in handles):  # in-memory rows and the database's collation order
        handles = [dataclasses.replace(handle, handed=None) for handle in handles]  # may differ: read all
    readers = [handle.chunks(inputs[name][1], chunk_rows) for name, handle in zip(names, handles)]
    first_table = handles[0].table
    for chunks in zip(*readers, strict=False):
        first = chunks[0]["customer_id"].to_numpy()
        for handle, chunk in zip(handles[1:], chunks[1:]):
            other = chunk["customer_id"].to_numpy()
            if len(other) != len(first) or not (other == first).all():
                raise StorageError(
                    f"{first_table} and {handle.table} for partition {handle.partition} hold different customers "
                    f"(around customer {first[0] if len(first) else '?'}): rebuild {handle.table} for that day")
        yield dict(zip(names, chunks))
    for handle, reader in zip(handles, readers):
        if next(reader, None) is not None:
            raise StorageError(f"{handle.table} for partition {handle.partition} holds more rows than "
                               f"{first_table}: rebuild it for that day")


def is_in_key_order(table: str, frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is sorted by its table's primary key (as :func:`in_key_order` would sort it)."""
    return _primary_key_order(TABLES[table], frame) is None


def in_key_order(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` in its table's primary-key order (the order reads return), index reset."""
    order = _primary_key_order(TABLES[table], frame)
    return frame.reset_index(drop=True) if order is None else frame.iloc[order].reset_index(drop=True)


class FrameChunks:
    """A table's rows as a one-pass stream of DataFrames (each with the table's columns), for tables
    too large to hold at once: :meth:`TableStore.write_steps` writes the chunks in one transaction.

    ``chunks`` is consumed once. ``after_chunk`` callbacks see every chunk before it is written
    (validation, running totals); ``rows`` counts the rows that went through."""

    def __init__(self, table: str, chunks: Iterable[pd.DataFrame], expected_rows: int | None = None):
        self.table = table
        self._chunks = chunks
        self.expected_rows = expected_rows  # a hint (at most this many rows): lets the hand-over decline early
        self._consumed = False
        self.rows = 0
        self.after_chunk: list = []
        self.after_all: list = []  # callables returning metadata, called once every chunk is written

    def finished_metadata(self) -> dict:
        out: dict = {}
        for callback in self.after_all:
            out.update(callback())
        return out

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self._consumed:
            raise StorageError(f"the chunks of {self.table} were already consumed; a stream is written once")
        self._consumed = True
        for chunk in self._chunks:
            for callback in self.after_chunk:
                callback(chunk)
            self.rows += len(chunk)
            yield chunk


@dataclass(frozen=True)
class WriteStep:
    """One table's part of a transaction: ``replace`` a partition (or all rows) or ``append``."""

    table: str
    frame: pd.DataFrame | FrameChunks
    mode: Literal["replace", "append"] = "replace"
    partition: str | None = None


def _partition_value(spec: TableSpec, partition: str):
    """The partition key as the column's SQL type (a date for day partitions)."""
    if column_kind(spec.schema.columns[spec.partition_column]) in ("date", "datetime"):
        return pd.Timestamp(partition).date()
    return str(partition)


class _LocalInfileRefused(Exception):
    pass


class _Prepared:
    """Iterate ``(chunk, LOAD DATA file)`` pairs, each prepared in a thread one step ahead of the loop.

    Empty chunks are skipped. An exception raised while producing or preparing a chunk is raised in
    the loop, and leaving the loop early (an error while loading) stops the thread; every temporary
    file is removed either way."""

    _DONE = object()

    def __init__(self, spec: TableSpec, chunks: Iterator[pd.DataFrame], in_key_order: bool = False):
        self.spec, self.chunks, self.in_key_order = spec, chunks, in_key_order
        self.queue: queue.Queue = queue.Queue(maxsize=1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._produce, name=f"prepare-{spec.name}", daemon=True)

    def __enter__(self) -> Iterator[tuple[pd.DataFrame, str]]:
        self.thread.start()
        return self._consume()

    def _produce(self) -> None:
        try:
            for chunk in self.chunks:
                if self.stop.is_set():
                    return
                if chunk.empty:
                    continue
                handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".tsv", delete=False)
                with handle:
                    order = None if self.in_key_order else _primary_key_order(self.spec, chunk)
                    _write_load_data_file(self.spec, chunk, handle, order)
                if not self._put((chunk, handle.name)):
                    os.unlink(handle.name)
                    return
            self._put(self._DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consuming thread, which raises it
            self._put(error)

    def _put(self, item) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _consume(self) -> Iterator[tuple[pd.DataFrame, str]]:
        while True:
            item = self.queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            chunk, path = item
            try:
                yield chunk, path
            finally:
                os.unlink(path)

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()
        while not self.queue.empty():  # a file prepared for a loop that ended early
            item = self.queue.get_nowait()
            if isinstance(item, tuple):
                os.unlink(item[1])


def _pyarrow_ok() -> bool:
    try:
        import pyarrow  # noqa: F401 - ConnectorX's Arrow stream needs it
    except ImportError:  # pragma: no cover - declared in pyproject
        return False
    return True


def _exact_chunks(frames: Iterable[pd.DataFrame], rows: int) -> Iterator[pd.DataFrame]:
    """Re-cut frames of any sizes into frames of exactly ``rows`` rows (the last may be shorter)."""
    pending: list[pd.DataFrame] = []
    held = 0
    for frame in frames:
        while len(frame):
            take = min(rows - held, len(frame))
            pending.append(frame.iloc[:take])
            held += take
            frame = frame.iloc[take:]
            if held == rows:
                yield pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0].reset_index(drop=True)
                pending, held = [], 0
    if held:
        yield pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0].reset_index(drop=True)


def _dbapi_errors() -> tuple[type[Exception], ...]:
    """The drivers' own error classes (raw DBAPI cursors raise these, not SQLAlchemy's)."""
    import sqlite3

    import pymysql

    return (sqlite3.Error, pymysql.err.Error)


_MYSQL_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"), ("\0", "\\0"))


_LOAD_DATA_CHUNK_ROWS = 100_000


def _write_load_data_file(spec: TableSpec, frame: pd.DataFrame, handle, order: np.ndarray | None = None) -> None:
    """Every row as MySQL LOAD DATA text (tab-separated, backslash-escaped, NULL as \\N), in chunks
    of rows so the text of a large frame is never all in memory; ``order`` reorders the rows."""
    kinds = [column_kind(spec.schema.columns[name]) for name in frame.columns]
    for start in range(0, len(frame), _LOAD_DATA_CHUNK_ROWS):
        stop = start + _LOAD_DATA_CHUNK_ROWS
        chunk = frame.iloc[start:stop] if order is None else frame.iloc[order[start:stop]]
        columns = [_load_data_column(chunk.iloc[:, i], kind) for i, kind in enumerate(kinds)]
        handle.write("\n".join(map("\t".join, zip(*columns))) + "\n")


def _load_data_column(values: pd.Series, kind: str) -> np.ndarray:
    """One column as LOAD DATA text: an object array of str, NULL as \\N.

    Categories, and the distinct values of day, datetime, number columns, are converted once and
    taken by code: a day column or a 0/1 feature costs one hash, not one strftime or repr per row.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes, distinct = values.cat.codes.to_numpy(), pd.Series(dtype.categories)
    elif kind == "float" and dtype == np.float64:
        codes, bits = pd.factorize(values.to_numpy().view(np.int64))  # bit patterns: -0.0 stays apart from 0.0
        distinct = pd.Series(bits.view(np.float64))
    elif kind in ("date", "datetime", "int") and dtype.kind != "O":
        codes, uniques = pd.factorize(values)
        distinct = pd.Series(uniques, dtype=dtype)
    else:
        codes, distinct = None, values
    text = _load_data_text(distinct, kind).to_numpy(dtype=object)
    if codes is not None:
        text = np.append(text, "\\N")[codes]  # code -1 (a missing value) takes the \\N at the end
    text = np.where(values.isna().to_numpy(), "\\N", text)
    if infer_dtype(text, skipna=False) != "string":  # NaN where a value gave no text: an empty field
        text = np.array([v if isinstance(v, str) else "" for v in text], dtype=object)
    return text


def _load_data_text(values: pd.Series, kind: str) -> pd.Series:
    """Each value as LOAD DATA text by storage kind (missing values are replaced by the caller)."""
    if kind == "date":
        return pd.to_datetime(values).dt.strftime("%Y-%m-%d")
    if kind == "datetime":
        return pd.to_datetime(values).dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    if kind == "bool":
        return values.map({True: "1", False: "0"}, na_action="ignore")
    if kind == "float":
        # repr: the shortest text that round-trips exactly (the same text as str(np.float64))
        return pd.Series(list(map(repr, values.astype("float64").tolist())), index=values.index, dtype=object)
    if kind == "int":
        return values.astype("Int64").astype(str)
    text = values.astype(str)
    try:
        clean = not any(old in "".join(text.tolist()) for old, _ in _MYSQL_ESCAPES)
    except TypeError:
        clean = False
    if not clean:
        for old, new in _MYSQL_ESCAPES:
            text = text.str.replace(old, new, regex=False)
    return text


def _primary_key_order(spec: TableSpec, frame: pd.DataFrame) -> np.ndarray | None:
    """The row order that sorts ``frame`` by primary key; None if it is sorted or cannot be sorted.

    InnoDB keeps rows in primary-key order: rows arriving in that order are appended to the
    clustered index instead of splitting its pages all over (LOAD DATA of 1M rows 4-5x faster).
    Only the speed depends on it, so Python's string order standing in for the collation is fine.
    """
    keys = [frame[c].to_numpy() for c in spec.primary_key if c in frame.columns]
    if len(frame) < 2 or not keys:
        return None
    try:
        # object columns as fixed-width strings, which numpy sorts in C
        order = np.lexsort([k.astype(str) if k.dtype == object else k for k in reversed(keys)])
    except (TypeError, ValueError):
        return None
    return None if (order[1:] > order[:-1]).all() else order


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
