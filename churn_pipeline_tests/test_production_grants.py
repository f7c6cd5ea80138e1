"""docker/mysql-init/10-users.sh against the MariaDB here: each user can do its job and nothing more.

Throwaway database and user names; everything is dropped afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from churn_pipeline.storage import TableStore, dispose_engine
from churn_pipeline_tests.helpers import raw_frame, telco_rows

pytestmark = pytest.mark.mysql

INIT_SCRIPT = Path(__file__).resolve().parents[1] / "docker" / "mysql-init" / "10-users.sh"


def _run_init(server: sa.engine.URL, names: dict, passwords: dict) -> subprocess.CompletedProcess:
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_PASSWORD")},
        "MYSQL_CLIENT_ARGS": f"-h {server.host or '127.0.0.1'} -P {server.port or 3306} -u {server.username}",
        "MYSQL_PWD": server.password or "",
        **names, **passwords,
    }
    return subprocess.run(["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60)


def _url(server: sa.engine.URL, user: str, password: str, database: str) -> str:
    url = sa.engine.URL.create("mysql+pymysql", user, password, server.host, server.port, database)
    return url.render_as_string(hide_password=False)


def _denied(url: str, statement: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(statement)
        return False
    except sa.exc.OperationalError as error:  # 1142 command denied, 1044 access denied to database
        return error.orig.args[0] in (1142, 1044)
    finally:
        engine.dispose()


def test_writer_loads_the_pipeline_tables_reader_only_reads_dagster_only_owns_its_database(mysql_server_url):
    if not shutil.which("mysql"):
        pytest.skip("the mysql command-line client is not installed")
    server = sa.engine.make_url(mysql_server_url)
    tag = uuid.uuid4().hex[:8]
    names = {"CHURN_DB_NAME": f"churn_g{tag}", "DAGSTER_MYSQL_DB": f"dagster_g{tag}",
             "CHURN_WRITER_USER": f"w_{tag}", "CHURN_READER_USER": f"r_{tag}", "DAGSTER_MYSQL_USER": f"d_{tag}"}
    # Quotes and backslashes in a password must not break (or inject into) the SQL.
    passwords = {"CHURN_WRITER_PASSWORD": "w'1\\x", "CHURN_READER_PASSWORD": "r-2", "DAGSTER_MYSQL_PASSWORD": "d-3"}
    admin = sa.create_engine(mysql_server_url)
    writer = _url(server, names["CHURN_WRITER_USER"], passwords["CHURN_WRITER_PASSWORD"], names["CHURN_DB_NAME"])
    reader = _url(server, names["CHURN_READER_USER"], passwords["CHURN_READER_PASSWORD"], names["CHURN_DB_NAME"])
    dagster = _url(server, names["DAGSTER_MYSQL_USER"], passwords["DAGSTER_MYSQL_PASSWORD"], names["DAGSTER_MYSQL_DB"])
    try:
        missing = _run_init(server, names, {**passwords, "CHURN_READER_PASSWORD": ""})
        assert missing.returncode != 0 and "CHURN_READER_PASSWORD is not set" in missing.stderr
        done = _run_init(server, names, passwords)
        assert done.returncode == 0, done.stderr
        assert _run_init(server, names, passwords).returncode == 0  # re-runnable: how passwords rotate

        # The pipeline, as churn_writer: creates its table and bulk-loads a day (LOAD DATA LOCAL INFILE).
        day = "2024-03-01"
        assert TableStore(writer).write({"raw_customers": raw_frame(telco_rows({}, {}), day)}, partition=day) == {
            "raw_customers": 2}
        assert len(TableStore(reader).read("raw_customers", partition=day)) == 2  # reader reads it
        assert _denied(reader, "INSERT INTO raw_customers (snapshot_date) VALUES ('2024-03-02')")
        assert _denied(reader, "DELETE FROM raw_customers")
        assert _denied(reader, "CREATE TABLE t (x INT)")
        assert not _denied(dagster, "CREATE TABLE runs_probe (x INT)")  # Dagster migrates its own schema
        assert _denied(dagster, f"SELECT * FROM `{names['CHURN_DB_NAME']}`.raw_customers")
        assert _denied(writer, f"CREATE TABLE `{names['DAGSTER_MYSQL_DB']}`.t (x INT)")
    finally:
        for url in (writer, reader):
            dispose_engine(url)
        with admin.begin() as conn:
            for user in (names["CHURN_WRITER_USER"], names["CHURN_READER_USER"], names["DAGSTER_MYSQL_USER"]):
                conn.exec_driver_sql(f"DROP USER IF EXISTS '{user}'@'%%'")
            for database in (names["CHURN_DB_NAME"], names["DAGSTER_MYSQL_DB"]):
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{database}`")
        admin.dispose()


def test_mysql_image_entrypoint_sources_the_script_and_gets_the_sql_on_stdin(tmp_path):
    """How MySQL's docker-entrypoint runs it on first start: sourced under `set -eo pipefail`, with its
    docker_process_sql reading statements on stdin (a stand-in here records them)."""
    captured = tmp_path / "init.sql"
    env = {"PATH": os.environ["PATH"], "CHURN_WRITER_PASSWORD": "pw-w", "CHURN_READER_PASSWORD": "pw-r",
           "DAGSTER_MYSQL_PASSWORD": "pw-d", "CAPTURED": str(captured)}
    entrypoint = f'set -eo pipefail; docker_process_sql() {{ cat > "$CAPTURED"; }}; source "{INIT_SCRIPT}"; echo after'
    result = subprocess.run(["bash", "-c", entrypoint], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip().endswith("after"), result.stderr
    sql = captured.read_text()
    assert "GRANT SELECT ON `churn`.* TO 'churn_reader'@'%';" in sql
    assert ("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, ALTER, DROP ON `churn`.* "
            "TO 'churn_writer'@'%';") in sql
    assert "GRANT ALL PRIVILEGES ON `dagster`.* TO 'dagster'@'%';" in sql
    # A missing password stops the entrypoint (and the container) instead of creating the user without one.
    del env["CHURN_READER_PASSWORD"]
    failed = subprocess.run(["bash", "-c", entrypoint], env=env, capture_output=True, text=True, timeout=30)
    assert failed.returncode != 0 and "after" not in failed.stdout
