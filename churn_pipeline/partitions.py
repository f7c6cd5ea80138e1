"""The daily partitions every per-day asset shares: one partition per snapshot date."""

import dagster as dg

from churn_pipeline.settings import Settings

_settings = Settings.from_env()

# end_offset=1: today's snapshot can be processed as soon as its file lands, not only tomorrow.
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=_settings.partition_start, end_offset=1, timezone=_settings.schedule_timezone,
)
