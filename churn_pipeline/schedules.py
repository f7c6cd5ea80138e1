"""The nightly job and its schedule."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from churn_pipeline.partitions import daily_partitions
from churn_pipeline.settings import Settings

churn_nightly_job = dg.define_asset_job(
    "churn_nightly",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Rebuild the whole churn graph for one snapshot day.",
)


def build_nightly_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """At ``CHURN_SCHEDULE_CRON`` (default 02:00) in ``CHURN_SCHEDULE_TIMEZONE``, run the graph for
    the snapshot of the day before in that timezone (``CHURN_SCHEDULE_DAY_OFFSET`` days, default 1):
    the day that has just ended and whose file has landed."""
    zone = ZoneInfo(settings.schedule_timezone)

    @dg.schedule(
        name="churn_nightly_schedule",
        job=churn_nightly_job,
        cron_schedule=settings.schedule_cron,
        execution_timezone=settings.schedule_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=build_nightly_schedule.__doc__.split(":")[0],
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        local = context.scheduled_execution_time.astimezone(zone)
        day = (local - timedelta(days=settings.schedule_day_offset)).date().isoformat()
        return dg.RunRequest(run_key=f"nightly-{day}", partition_key=day, tags={"churn/trigger": "nightly"})

    return _schedule


churn_nightly_schedule = build_nightly_schedule(Settings.from_env())
