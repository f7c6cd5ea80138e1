"""The landing-folder sensor and the failure alert, as an operator would check them.

The webhook is a local ``http.server`` on 127.0.0.1: no traffic leaves the machine.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from churn_pipeline.alerts import failure_payload, notify_failure
from churn_pipeline.definitions import defs
from churn_pipeline.sensors import build_landing_sensor, churn_failure_alert
from churn_pipeline.settings import Settings


def _tick(sensor: dg.SensorDefinition, cursor: str | None = None):
    # The repository resolves the job's daily partitions behind each request's partition key.
    return sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, repository_def=defs.get_repository_def()))


def _requests(data) -> dict[str, dg.RunRequest]:
    return {request.partition_key: request for request in data.run_requests}


def test_landing_sensor_requests_each_snapshot_once_and_again_when_redelivered(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    sensor = build_landing_sensor(dataclasses.replace(Settings.from_env(), landing_dir=landing))
    for name in ("customers_2024-03-01.csv", "customers_2024-03-02.csv",
                 # not snapshots of this pipeline: ignored
                 "README.txt", "customers_2024-03-03.csv.bak", ".customers_2024-03-04.csv.x1y2.tmp",
                 "customers_2024-02-30.csv", "customers_2023-12-31.csv", "customers_2999-01-01.csv"):
        (landing / name).write_text("customerID\n0001-ABCDE\n")

    first = _tick(sensor)
    requests = _requests(first)
    assert sorted(requests) == ["2024-03-01", "2024-03-02"]
    assert requests["2024-03-01"].run_key.startswith("customers_2024-03-01.csv@")
    tags = requests["2024-03-01"].tags
    assert tags["churn/trigger"] == "landing" and tags["churn/file"] == "customers_2024-03-01.csv"
    assert tags["dagster/partition"] == "2024-03-01"  # what the one-run-per-day limit keys on

    second = _tick(sensor, first.cursor)
    assert second.run_requests == [] and "no new snapshot" in second.skip_message

    # A corrected file delivered again reruns its day (new run key); a new day runs once.
    redelivered = landing / "customers_2024-03-01.csv"
    redelivered.write_text("customerID\n0001-ABCDE\n0002-FGHIJ\n")
    os.utime(redelivered, ns=(redelivered.stat().st_atime_ns, redelivered.stat().st_mtime_ns + 10**9))
    (landing / "customers_2024-03-05.csv").write_text("customerID\n")
    third = _requests(_tick(sensor, second.cursor))
    assert sorted(third) == ["2024-03-01", "2024-03-05"]
    assert third["2024-03-01"].run_key != requests["2024-03-01"].run_key


def test_landing_sensor_on_a_missing_folder_skips(tmp_path):
    sensor = build_landing_sensor(dataclasses.replace(Settings.from_env(), landing_dir=tmp_path / "absent"))
    assert _tick(sensor).run_requests == []


class _Webhook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Webhook)
    server.received, server.status = [], 204
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN"


def _failed_nightly_run(instance: dg.DagsterInstance):
    @dg.op
    def scored_customers():
        raise RuntimeError("(2013, 'Lost connection to MySQL server during query')")

    @dg.job(name="churn_nightly")
    def churn_nightly():
        scored_customers()

    return churn_nightly.execute_in_process(instance=instance, raise_on_error=False,
                                            tags={"dagster/partition": "2024-03-01"})


def test_failure_sensor_posts_run_job_partition_and_error(webhook, monkeypatch):
    monkeypatch.setenv("CHURN_ALERT_WEBHOOK_URL", _url(webhook))
    with dg.DagsterInstance.ephemeral() as instance:
        result = _failed_nightly_run(instance)
        context = dg.build_run_status_sensor_context(
            sensor_name="churn_failure_alert", dagster_event=result.get_run_failure_event(),
            dagster_instance=instance, dagster_run=result.dagster_run,
        ).for_run_failure()
        churn_failure_alert(context)

    assert len(webhook.received) == 1
    content_type, payload = webhook.received[0]
    assert content_type == "application/json"
    assert payload["run_id"] == result.run_id
    assert (payload["job"], payload["partition"], payload["event"]) == ("churn_nightly", "2024-03-01", "run_failure")
    assert payload["error"].startswith("scored_customers: RuntimeError") and "Lost connection" in payload["error"]


def test_alert_never_raises_when_the_webhook_is_down_or_failing(webhook, caplog):
    payload = failure_payload("run-1", "churn_nightly", "2024-03-01", "boom")
    with caplog.at_level(logging.WARNING):
        webhook.status = 500
        assert notify_failure(payload, webhook_url=_url(webhook), timeout=2) is False
        port = webhook.server_address[1]
        webhook.shutdown()
        webhook.server_close()
        assert notify_failure(payload, webhook_url=f"http://127.0.0.1:{port}/x", timeout=2) is False
        assert notify_failure(payload, webhook_url="file:///etc/passwd") is False
    assert "HTTP Error 500" in caplog.text and "T0KEN" not in caplog.text  # the secret path is never logged


def test_alert_without_webhook_only_logs(caplog, monkeypatch):
    monkeypatch.delenv("CHURN_ALERT_WEBHOOK_URL", raising=False)
    with caplog.at_level(logging.ERROR):
        assert notify_failure(failure_payload("run-2", "prune_history", None, "disk full")) is False
    assert "run run-2 of prune_history (partition None) failed: disk full" in caplog.text
