"""Sensors: a run for every snapshot file that lands, and an alert for every run that fails.

The landing sensor complements the nightly schedule: a file delivered late (or delivered again,
corrected) is processed when it arrives instead of waiting for, or being missed by, the 02:00 run.
Runs of the same day never overlap whichever started them: the instance's run queue allows one run
per ``dagster/partition`` value at a time (docker/dagster.yaml).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import dagster as dg

from churn_pipeline.alerts import failure_payload, notify_failure
from churn_pipeline.partitions import daily_partitions
from churn_pipeline.schedules import churn_nightly_job
from churn_pipeline.settings import Settings

SNAPSHOT_NAME = re.compile(r"customers_(\d{4}-\d{2}-\d{2})\.csv")
LANDING_SENSOR_INTERVAL_SECONDS = 60


def snapshot_versions(landing_dir: Path) -> dict[str, str]:
    """``customers_YYYY-MM-DD.csv`` file name → version (mtime in ns and size) of each file in the folder.

    The version changes when a file is delivered again, so a corrected file is processed again.
    Hidden files (``.customers_...tmp`` being written) and any other names are not snapshots.
    """
    if not landing_dir.is_dir():
        return {}
    versions = {}
    for path in landing_dir.iterdir():
        if SNAPSHOT_NAME.fullmatch(path.name) and path.is_file():
            stat = path.stat()
            versions[path.name] = f"{stat.st_mtime_ns}-{stat.st_size}"
    return versions


def build_landing_sensor(settings: Settings) -> dg.SensorDefinition:
    """Request a ``churn_nightly`` run for each new or re-delivered snapshot, for the day in its name."""

    @dg.sensor(
        name="landing_file_sensor",
        job=churn_nightly_job,
        minimum_interval_seconds=LANDING_SENSOR_INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"A run for every new or re-delivered customers_YYYY-MM-DD.csv in {settings.landing_dir}.",
    )
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        # The cursor is the version of every snapshot file seen, so each version is handled once
        # even if run keys are purged; files deleted from the folder drop out of it.
        seen = json.loads(context.cursor) if context.cursor else {}
        current = snapshot_versions(settings.landing_dir)
        requests = []
        for name, version in sorted(current.items()):
            if seen.get(name) == version:
                continue
            day = SNAPSHOT_NAME.fullmatch(name).group(1)
            if not daily_partitions.has_partition_key(day):
                context.log.warning(f"ignoring {name}: {day} is not a snapshot day of this pipeline "
                                    f"(not a date, before CHURN_PARTITION_START or in the future)")
                continue
            requests.append(dg.RunRequest(
                run_key=f"{name}@{version}", partition_key=day,
                tags={"churn/trigger": "landing", "churn/file": name},
            ))
        cursor = json.dumps(current, sort_keys=True)
        if not requests:
            return dg.SensorResult(skip_reason=f"no new snapshot in {settings.landing_dir}", cursor=cursor)
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return _sensor


def _root_cause(error) -> str:
    """The innermost error: "RuntimeError: Lost connection", not Dagster's "Error occurred while executing"."""
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


def _failure_details(context: dg.RunFailureSensorContext) -> str:
    """Each failed step with its root error when the run got that far, else the run's own failure message."""
    steps = [
        f"{event.step_key}: {_root_cause(event.step_failure_data.error)}"
        for event in context.get_step_failure_events()
        if event.step_failure_data and event.step_failure_data.error
    ]
    return "\n".join(steps) or (context.failure_event.message or "run failed")


@dg.run_failure_sensor(
    name="churn_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run of this code location and POSTs it to CHURN_ALERT_WEBHOOK_URL when set.",
)
def churn_failure_alert(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    payload = failure_payload(run.run_id, run.job_name, run.tags.get("dagster/partition"), _failure_details(context))
    notify_failure(payload, logger=context.log)


landing_file_sensor = build_landing_sensor(Settings.from_env())
