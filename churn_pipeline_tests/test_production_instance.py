"""The production instance end to end: code server, daemon and webserver on docker/dagster.yaml + MariaDB.

What an operator relies on after `docker compose up`: a run launched from the UI's API is queued,
started by the daemon, succeeds, and is on record in Dagster's MySQL storage; the pipeline's tables
are filled; a snapshot landing in the folder starts a run by itself; two runs of the same day wait
for each other instead of interleaving their writes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_graphql import DagsterGraphQLClient

from churn_pipeline.definitions import FRESH_ASSETS
from churn_pipeline.storage import mysql_server_database
from churn_pipeline.synthetic import generate_customers, write_snapshot

pytestmark = pytest.mark.mysql

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAY = "2024-03-01"
TIMEOUT_SECONDS = 240


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _process(args: list[str], env: dict, log_path: Path):
    """Start a process in its own process group; on exit stop the whole group (servers spawn children)."""
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        yield proc
    finally:
        _stop_group(proc)


def _stop_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:  # whatever is left of the group (children outliving the leader, or a leader ignoring TERM)
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _wait_for(what: str, check, procs: dict[str, tuple[subprocess.Popen, Path]], timeout: float = TIMEOUT_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, (proc, log) in procs.items():
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} while waiting for {what}:\n"
                            + log.read_text(errors="replace")[-4000:])
        result = check()
        if result:
            return result
        time.sleep(1)
    logs = "\n".join(f"--- {n}\n{log.read_text(errors='replace')[-2000:]}" for n, (_, log) in procs.items())
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{logs}")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _environment(tmp_path: Path, dagster_db_url: str, churn_db_url: str, code_port: int) -> dict:
    dagster_db = sa.engine.make_url(dagster_db_url)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "docker" / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_MYSQL_HOST": dagster_db.host or "127.0.0.1",
        "DAGSTER_MYSQL_PORT": str(dagster_db.port or 3306),
        "DAGSTER_MYSQL_USER": dagster_db.username or "root",
        "DAGSTER_MYSQL_PASSWORD": dagster_db.password or "",
        "DAGSTER_MYSQL_DB": dagster_db.database,
        "DAGSTER_MAX_CONCURRENT_RUNS": "4",
        "DAGSTER_COMPUTE_LOG_DIR": str(home / "compute_logs"),
        "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
        "DAGSTER_CODE_SERVER_PORT": str(code_port),
        "CHURN_DB_URL": churn_db_url,
        "CHURN_DATA_DIR": str(tmp_path / "data"),
        "CHURN_LANDING_DIR": str(tmp_path / "data" / "landing"),
        "CHURN_MODEL_DIR": str(tmp_path / "data" / "models"),
        "CHURN_ALERT_WEBHOOK_URL": "",
        # As in docker-compose.yml: one OpenMP thread per run. Spinning LightGBM threads on a busy
        # 2-core machine made model training 5x slower.
        "OMP_NUM_THREADS": "1",
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",  # default 30: evaluate freshness soon after the runs
    }


def test_daemon_and_webserver_run_the_nightly_job_on_mysql(tmp_path, mysql_server_url, mysql_url, monkeypatch):
    code_port, web_port = _free_port(), _free_port()
    dagster_db_name = f"dagster_test_{uuid.uuid4().hex[:12]}"
    with mysql_server_database(mysql_server_url, dagster_db_name) as dagster_db_url, ExitStack() as stack:
        env = _environment(tmp_path, dagster_db_url, mysql_url, code_port)
        write_snapshot(generate_customers(2000, seed=1), env["CHURN_LANDING_DIR"], DAY)
        workspace = str(REPO / "docker" / "workspace.yaml")
        commands = {
            "code-server": [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(code_port),
                            "-m", "churn_pipeline.definitions", "--location-name", "churn_pipeline"],
            "webserver": [str(BIN / "dagster-webserver"), "-w", workspace, "-h", "127.0.0.1", "-p", str(web_port)],
            "daemon": [str(BIN / "dagster-daemon"), "run", "-w", workspace],
        }
        procs = {}
        for name, args in commands.items():
            log = tmp_path / f"{name}.log"
            procs[name] = (stack.enter_context(_process(args, env, log)), log)
            if name == "code-server":  # the others load the code location from it
                _wait_for("the code server's port", lambda: _port_open(code_port), procs)
        _wait_for("the webserver", lambda: _http_ok(f"http://127.0.0.1:{web_port}/server_info"), procs)

        client = DagsterGraphQLClient("127.0.0.1", port_number=web_port)
        run_id = client.submit_job_execution("churn_nightly", tags={"dagster/partition": DAY})

        for name, value in env.items():  # the instance from that yaml, as the containers load it
            monkeypatch.setenv(name, value)
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
        stack.callback(instance.dispose)

        def runs_of_the_day():
            records = instance.get_run_records(RunsFilter(job_name="churn_nightly", tags={"dagster/partition": DAY}))
            done = all(r.dagster_run.status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE) for r in records)
            return records if len(records) >= 2 and done else None

        # The landing sensor starts a run for the file by itself; the API's run queues behind it.
        records = _wait_for("both runs of the day to finish", runs_of_the_day, procs)
        run_output = procs["code-server"][1].read_text(errors="replace")[-6000:]  # runs execute under it
        assert client.get_run_status(run_id) == DagsterRunStatus.SUCCESS, run_output

        by_trigger = {r.dagster_run.tags.get("churn/trigger", "api"): r for r in records}
        assert sorted(by_trigger) == ["api", "landing"] and by_trigger["api"].dagster_run.run_id == run_id
        assert all(r.dagster_run.status == DagsterRunStatus.SUCCESS for r in records), run_output
        assert by_trigger["landing"].dagster_run.tags["churn/file"] == f"customers_{DAY}.csv"
        # Never interleaved: one run of the day ended before the other started (tag concurrency limit).
        first, second = sorted(records, key=lambda r: r.start_time)
        assert first.end_time <= second.start_time

        # The freshness daemon has judged the morning's answers fresh: what the UI shows on the assets.
        fresh = [AssetKey(name) for name in FRESH_ASSETS]
        _wait_for("freshness PASS", lambda: {
            key for key, record in instance.get_freshness_state_records(fresh).items()
            if record.freshness_state == FreshnessState.PASS} == set(fresh), procs, timeout=90)

        # The compose health checks pass against these processes.
        for check in (["dagster", "api", "grpc-health-check", "-p", str(code_port)],
                      ["dagster-daemon", "liveness-check"]):
            probe = subprocess.run([str(BIN / check[0]), *check[1:]], env=env, capture_output=True, text=True,
                                   timeout=120)
            assert probe.returncode == 0, (check, probe.stdout, probe.stderr)

        # The run is on record in Dagster's own MySQL database, as the webserver and daemon wrote it.
        dagster_engine = sa.create_engine(dagster_db_url)
        stack.callback(dagster_engine.dispose)
        with dagster_engine.connect() as conn:
            row = conn.execute(sa.text("SELECT pipeline_name, status FROM runs WHERE run_id = :id"),
                               {"id": run_id}).one()
            heartbeats = {r[0] for r in conn.execute(sa.text("SELECT daemon_type FROM daemon_heartbeats"))}
        assert tuple(row) == ("churn_nightly", "SUCCESS")
        assert set(instance.get_required_daemon_types()) <= heartbeats  # incl. FRESHNESS_DAEMON, MONITORING
        # ... and the pipeline's answers are in the pipeline's database.
        churn_engine = sa.create_engine(mysql_url)
        stack.callback(churn_engine.dispose)
        with churn_engine.connect() as conn:
            scored = conn.execute(sa.text("SELECT COUNT(*) FROM scored_customers WHERE snapshot_date = :d"),
                                  {"d": DAY}).scalar()
            kpi_days = conn.execute(sa.text("SELECT COUNT(*) FROM business_kpis")).scalar()
        assert scored > 1000 and kpi_days == 1


def test_instance_yaml_limits_one_run_per_day_and_cli_backfill_queues_a_run_per_day(
        tmp_path, mysql_server_url, mysql_url, monkeypatch):
    """The README's backfill command against the production instance: one queued run per day, each
    tagged with its day, which is what the `dagster/partition` concurrency limit keys on."""

    with mysql_server_database(mysql_server_url, f"dagster_test_{uuid.uuid4().hex[:12]}") as dagster_db_url:
        env = _environment(tmp_path, dagster_db_url, mysql_url, code_port=0)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        instance = DagsterInstance.from_config(env["DAGSTER_HOME"])
        try:
            assert type(instance.run_storage).__module__.startswith("dagster_mysql")
            assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
            queue = instance.run_coordinator.get_run_queue_config()
            assert queue.max_concurrent_runs == 4
            assert queue.tag_concurrency_limits == [
                {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]

            # No daemon here: the runs stay queued, which is what we want to look at.
            backfill = subprocess.run(
                [str(BIN / "dagster"), "job", "backfill", "-m", "churn_pipeline.definitions", "-j", "churn_nightly",
                 "--from", "2024-03-01", "--to", "2024-03-03", "--noprompt"],
                env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
            )
            assert backfill.returncode == 0, backfill.stdout + backfill.stderr
            runs = instance.get_runs(RunsFilter(job_name="churn_nightly"))
            assert sorted(r.tags["dagster/partition"] for r in runs) == ["2024-03-01", "2024-03-02", "2024-03-03"]
            assert {r.status for r in runs} == {DagsterRunStatus.QUEUED}
            assert len({r.tags["dagster/backfill"] for r in runs}) == 1
        finally:
            instance.dispose()
