"""The nightly job and its schedule."""

from __future__ import annotations

import os
from datetime import timedelta

import dagster as dg

from churn_pipeline.partitions import daily_partitions
from churn_pipeline.settings import Settings

_settings = Settings.from_env()

churn_nightly_job = dg.define_asset_job(
    "churn_nightly",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Rebuild the whole churn graph for one snapshot day.",
)

# The run at 02:00 on day D processes the snapshot of day D - offset (by default the day just ended).
DAY_OFFSET = int(os.environ.get("CHURN_SCHEDULE_DAY_OFFSET", "1"))


@dg.schedule(
    job=churn_nightly_job,
    cron_schedule=_settings.schedule_cron,
    execution_timezone=_settings.schedule_timezone,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly rebuild for the day's snapshot (CHURN_SCHEDULE_CRON, CHURN_SCHEDULE_TIMEZONE).",
)
def churn_nightly_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = (context.scheduled_execution_time - timedelta(days=DAY_OFFSET)).date().isoformat()
    return dg.RunRequest(run_key=f"nightly-{day}", partition_key=day, tags={"churn/trigger": "nightly"})
