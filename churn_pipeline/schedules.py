"""The nightly job and its schedule."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from churn_pipeline.partitions import daily_partitions
from churn_pipeline.settings import Settings

# Every step reads or writes MySQL, and a lost connection, a deadlock or a failover usually heals in
# seconds to a minute or two: retry a failed step after 15 s, 45 s and 105 s (exponential, each
# ±15 s of jitter so several days running at once do not hammer a recovering server together).
# Retrying is safe: each step replaces its day in one transaction, so a failed attempt wrote nothing.
DB_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL,
                                 jitter=dg.Jitter.PLUS_MINUS)

churn_nightly_job = dg.define_asset_job(
    "churn_nightly",
    selection=dg.AssetSelection.all(),
    partitions_def=daily_partitions,
    description="Rebuild the whole churn graph for one snapshot day.",
    op_retry_policy=DB_RETRY_POLICY,
    # The steps form a chain, so a process per step (the default) buys no parallelism and costs an
    # interpreter start and the library imports (~7 s) per step; days run in parallel as separate runs.
    executor_def=dg.in_process_executor,
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
