"""Database faults and concurrency: a write that dies half-way, two writers racing for one day, and
SQL that stays parameterised whatever the values.

What an operator relies on: a failed write says so with a :class:`StorageError` (``transient`` when
retrying may help), readers see the old rows or the new ones and never a mix, and running the
write again succeeds.
"""

from __future__ import annotations

import ast
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from churn_pipeline.schemas import ModelEvaluation
from churn_pipeline.storage import StorageError, TableStore, dispose_engine
from churn_pipeline_tests.test_storage import DAY_A, DAY_B, assert_same, count_rows, scored_customers

PACKAGE = Path(__file__).resolve().parents[1] / "churn_pipeline"


# ---- a connection killed in the middle of a write ------------------------------------------------------

def _signature(conn, day: str) -> tuple:
    return tuple(conn.execute(sa.text(
        "SELECT COUNT(*), MIN(customer_id), MAX(customer_id) FROM scored_customers WHERE snapshot_date = :day"),
        {"day": day}).one())


class _Watch:
    """Background threads: one reads the day's rows over and over, one kills the writer's connection
    once it is seen executing ``statement`` (information_schema.PROCESSLIST of the test database)."""

    def __init__(self, url: str, statement: str | None):
        self.engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        self.database = sa.engine.make_url(url).database
        self.statement = statement
        self.seen: list[tuple] = []
        self.killed: list[int] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._read)]
        if statement:
            self.threads.append(threading.Thread(target=self._kill))

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        deadline = time.monotonic() + 30
        while not self.seen and time.monotonic() < deadline:  # the reader is reading before the write
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join()
        self.engine.dispose()

    def _read(self):
        with self.engine.connect() as conn:
            while not self.stop.is_set():
                self.seen.append(_signature(conn, DAY_A))

    def _kill(self):
        query = sa.text("SELECT ID FROM information_schema.PROCESSLIST "
                        "WHERE DB = :db AND INFO LIKE :statement AND ID <> CONNECTION_ID()")
        with self.engine.connect() as conn:
            while not self.stop.is_set() and not self.killed:
                found = conn.execute(query, {"db": self.database, "statement": f"{self.statement}%"}).scalar()
                if found is not None:
                    conn.execute(sa.text("KILL :id"), {"id": int(found)})
                    self.killed.append(int(found))
                time.sleep(0.001)


@pytest.fixture
def writer_url(mysql_url):
    """The test database, with a 5 s socket write timeout: a connection killed while PyMySQL streams a
    LOAD DATA LOCAL file can otherwise block in send() for about two minutes before failing."""
    url = sa.engine.make_url(mysql_url).update_query_dict({"write_timeout": "5"}).render_as_string(False)
    yield url
    dispose_engine(url)


@pytest.mark.mysql
@pytest.mark.parametrize("statement", ["DELETE", "LOAD DATA"])
def test_a_connection_killed_mid_write_fails_clearly_keeps_the_old_rows_and_a_retry_succeeds(
        mysql_url, writer_url, statement):
    store = TableStore(writer_url)
    old = scored_customers(DAY_A, 30_000, seed=1)
    new = scored_customers(DAY_A, 20_000, seed=2, prefix="N")
    store.write({"scored_customers": old}, partition=DAY_A)
    store.write({"scored_customers": scored_customers(DAY_B, 7, seed=3)}, partition=DAY_B)
    with store.engine.connect() as conn:
        old_rows = _signature(conn, DAY_A)

    with _Watch(mysql_url, statement) as watch, pytest.raises(StorageError) as failed:
        store.write({"scored_customers": new}, partition=DAY_A)
    assert watch.killed, f"no {statement} seen to kill"
    assert failed.value.transient, failed.value  # a lost connection is worth retrying
    assert "writing 20000 rows to scored_customers (partition 2024-01-02) failed" in str(failed.value)
    assert set(watch.seen) == {old_rows}, set(watch.seen)
    assert_same(store.read("scored_customers", partition=DAY_A), old, "scored_customers")

    with _Watch(mysql_url, None) as watch:
        assert store.write({"scored_customers": new}, partition=DAY_A) == {"scored_customers": 20_000}
    with store.engine.connect() as conn:
        new_rows = _signature(conn, DAY_A)
    assert set(watch.seen) <= {old_rows, new_rows}, set(watch.seen)  # never a mix
    assert_same(store.read("scored_customers", partition=DAY_A), new, "scored_customers")
    assert count_rows(mysql_url, "scored_customers", DAY_B) == 7


def test_an_unreachable_server_is_a_transient_storage_error_naming_the_masked_url():
    password = secrets.token_hex(6)  # built at run time: no credential-looking literal in the repository
    url = sa.engine.URL.create("mysql+pymysql", "churn", password, "127.0.0.1", 1, "churn").render_as_string(False)
    try:
        with pytest.raises(StorageError) as failed:
            TableStore(url).write({"scored_customers": scored_customers(DAY_A, 3)}, partition=DAY_A)
    finally:
        dispose_engine(url)
    assert failed.value.transient and "Can't connect" in str(failed.value)
    assert "churn:***@127.0.0.1:1" in str(failed.value) and password not in str(failed.value)


# ---- two processes writing the same day at once ---------------------------------------------------------

WRITER = """
import sys
import time
import pandas as pd
from churn_pipeline.storage import StorageError, TableStore
url, frame_path, day = sys.argv[1:]
frame = pd.read_pickle(frame_path)
store = TableStore(url)
store.ensure_table("scored_customers")
print("ready", flush=True)
sys.stdin.readline()  # both writers start together
began = time.time()
try:
    store.write({"scored_customers": frame}, partition=day)
    outcome = "written"
except StorageError as error:
    outcome = f"StorageError {'transient' if error.transient else 'permanent'} {error}"
print(began, time.time(), outcome)
"""


def test_two_processes_writing_the_same_day_end_with_exactly_one_of_their_frames(db_url, tmp_path):
    store = TableStore(db_url)
    store.write({"scored_customers": scored_customers(DAY_A, 10, seed=9, prefix="O")}, partition=DAY_A)
    store.write({"scored_customers": scored_customers(DAY_B, 7, seed=3)}, partition=DAY_B)
    frames = [scored_customers(DAY_A, 15_000, seed=1, prefix="A"), scored_customers(DAY_A, 10_000, seed=2, prefix="B")]

    writers = []
    for i, frame in enumerate(frames):
        frame.to_pickle(tmp_path / f"frame{i}.pkl")
        writers.append(subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(tmp_path / f"frame{i}.pkl"), DAY_A],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, cwd=PACKAGE.parent))
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready", writer.communicate()[1][-2000:]
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    reports = [writer.communicate(timeout=240)[0].strip().split(" ", 2) for writer in writers]
    outcomes = [outcome for _, _, outcome in reports]

    assert max(float(began) for began, _, _ in reports) < min(float(ended) for _, ended, _ in reports), reports
    assert all(o == "written" or o.startswith("StorageError transient") for o in outcomes), outcomes
    assert "written" in outcomes
    final = store.read("scored_customers", partition=DAY_A)
    matches = [frame for frame in frames if len(frame) == len(final)]
    assert len(matches) == 1, (len(final), outcomes)
    assert_same(final, matches[0], "scored_customers")
    assert count_rows(db_url, "scored_customers", DAY_B) == 7


# ---- SQL: values are parameters, identifiers come from the schemas ------------------------------------

SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE|LOAD DATA|CREATE|DROP|ALTER|TRUNCATE|GRANT|"
                       r"REVOKE|KILL|SET|SHOW|WITH|CALL)\b")
# Every expression interpolated into SQL text in churn_pipeline/, and why it cannot carry a value.
IDENTIFIER_ONLY = {
    "table.name": "a schema table: TableStore.table() refuses any name not in schemas.TABLES",
    "columns": "LOAD DATA column list: backquoted frame.columns, which _check_frame proved equal the schema's",
    "quoted": "INSERT column list: built like the LOAD DATA one, from the same checked columns",
    "', '.join(['%s'] * len(columns))": "placeholders only; the values go to executemany",
    "', '.join(['?'] * len(columns))": "placeholders only; the values go to executemany",
    "database": "storage.mysql_server_database(): a database name chosen by the calling test or benchmark",
}
# Statements rendered with their values inlined, each reviewed.
LITERAL_BINDS = {
    "storage.py": "TableStore._read_whole (ConnectorX takes no parameters): SQLAlchemy's dialect quoting of "
                  "partition keys and where-clause values; see the hostile-value test below",
}


def _is_message(node: ast.AST, parents: dict) -> bool:
    """An f-string that is an error or log message (mentions SQL words but is never executed)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Raise):
            return True
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name.endswith(("Error", "Exception", "Failure", "Refused")) or name.startswith("log."):
                return True
    return False


def _sql_interpolations() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if SQL_START.match(text) and not _is_message(node, parents):
                    found += [(path.name, node.lineno, ast.unparse(v.value))
                              for v in node.values if isinstance(v, ast.FormattedValue)]
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant):
                if isinstance(node.left.value, str) and SQL_START.match(node.left.value):
                    found.append((path.name, node.lineno, "%-formatting"))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
                target = node.func.value
                if isinstance(target, ast.Constant) and isinstance(target.value, str) and SQL_START.match(target.value):
                    found.append((path.name, node.lineno, ".format()"))
    return found


def test_sql_text_interpolates_only_identifiers_from_the_schemas():
    found = _sql_interpolations()
    assert found, "the scan found no SQL at all: it is broken"
    unreviewed = [f"{name}:{line}: {{{expression}}}" for name, line, expression in found
                  if expression not in IDENTIFIER_ONLY]
    assert not unreviewed, "SQL built from values; use bound parameters:\n" + "\n".join(unreviewed)


def test_values_are_inlined_into_sql_only_where_reviewed():
    inlined = sorted({path.name for path in PACKAGE.rglob("*.py") if "literal_binds" in path.read_text()})
    assert set(inlined) <= set(LITERAL_BINDS), inlined


HOSTILE = ["x' OR '1'='1", "x\\' OR 1=1 -- ", "'; DROP TABLE scored_customers; --", "%s", "%(id)s", "\\",
           "\\'", "\"", "`", "?", ":day", "Zoë 😀", "N'x'", "\x00nul"]


def test_hostile_text_in_partition_keys_and_filters_matches_only_itself(db_url):
    """Reads bind (or, through ConnectorX, quote) partition keys and filter values: a key that looks
    like SQL selects its own rows, nothing more, and breaks nothing."""
    store = TableStore(db_url)
    evaluation = ModelEvaluation.validate(pd.DataFrame({
        "model_version": HOSTILE,
        "customer_id": [f"C{i}" for i in range(len(HOSTILE))],
        "churn_probability": 0.5,
        "churned": False,
        "monthly_charges": 10.0,
    }))
    scored = scored_customers(DAY_A, len(HOSTILE))
    scored["customer_id"] = HOSTILE
    store.write({"model_evaluation": evaluation})
    store.write({"scored_customers": scored}, partition=DAY_A)
    table = store.table("scored_customers")
    for i, text in enumerate(HOSTILE):
        assert store.read("model_evaluation", partition=text)["customer_id"].tolist() == [f"C{i}"], text
        assert store.read("scored_customers", where=table.c.customer_id == text)["customer_id"].tolist() == [text]
    assert store.read("model_evaluation", partition="nobody' OR '1'='1").empty
    assert len(store.read("scored_customers")) == len(HOSTILE)
