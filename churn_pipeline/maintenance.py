"""History retention: the per-day tables keep ``CHURN_HISTORY_DAYS`` days, pruned by a weekly job.

Every nightly run adds a day of rows to each per-day table (raw, clean, rejected, features, scores,
KPIs); without pruning MySQL grows without bound and the call-list indexes get slower. ``model_runs``
is not per-day (it is the model registry, a row per training) and is kept whole.
"""

import os
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from churn_pipeline.schemas import TABLES
from churn_pipeline.settings import Settings, mask_url
from churn_pipeline.storage import TableStore

DEFAULT_HISTORY_DAYS = 400  # a year plus a margin: year-over-year comparisons keep working
DEFAULT_PRUNE_CRON = "0 4 * * 0"  # Sundays 04:00, after the nightly run


def history_days_from_env() -> int:
    raw = os.environ.get("CHURN_HISTORY_DAYS", "").strip()
    days = int(raw) if raw else DEFAULT_HISTORY_DAYS
    if days < 1:
        raise ValueError(f"CHURN_HISTORY_DAYS must be at least 1, got {days}")
    return days


def prune_history(db_url: str, keep_days: int, today: date) -> dict[str, int]:
    """Delete rows older than ``today - keep_days`` from every per-day table; rows deleted per table.

    One transaction per table: a failure leaves that table whole, and no long lock spans all tables.
    Tables that do not exist yet are skipped (nothing to prune, and pruning must not create them).
    """
    cutoff = today - timedelta(days=keep_days)
    store = TableStore(db_url)
    existing = set(sa.inspect(store.engine).get_table_names())
    deleted = {}
    for name, spec in TABLES.items():
        if spec.partition_column is None or name not in existing:
            continue
        table = store.table(name)
        statement = table.delete().where(table.c[spec.partition_column] < sa.bindparam("cutoff"))
        with store.engine.connect().execution_options(sqlite_begin="BEGIN IMMEDIATE") as conn, conn.begin():
            deleted[name] = conn.execute(statement, {"cutoff": cutoff}).rowcount
    return deleted


class HistoryRetention(dg.ConfigurableResource):
    """Where the per-day tables are and how many days of them to keep."""

    db_url: str = Field(description="SQLAlchemy URL of the pipeline database (CHURN_DB_URL)")
    keep_days: int = Field(default=DEFAULT_HISTORY_DAYS, gt=0, description="Days of history kept (CHURN_HISTORY_DAYS)")
    timezone: str = Field(default="UTC", description="Timezone of 'today' (CHURN_SCHEDULE_TIMEZONE)")


@dg.op(description="Delete per-day rows older than CHURN_HISTORY_DAYS days, one transaction per table.")
def prune_old_days(context: dg.OpExecutionContext, history: HistoryRetention) -> dg.Output[int]:
    today = datetime.now(ZoneInfo(history.timezone)).date()
    deleted = prune_history(history.db_url, history.keep_days, today)
    cutoff = today - timedelta(days=history.keep_days)
    context.log.info(f"pruned rows before {cutoff} from {mask_url(history.db_url)}: {deleted}")
    return dg.Output(
        sum(deleted.values()),
        metadata={"cutoff": cutoff.isoformat(), "keep_days": history.keep_days,
                  **{f"deleted: {name}": count for name, count in deleted.items()}},
    )


@dg.job(name="prune_history", description=__doc__.splitlines()[0])
def prune_history_job():
    prune_old_days()


def build_prune_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """Weekly at ``CHURN_PRUNE_CRON`` (Sundays 04:00) in the nightly schedule's timezone."""
    return dg.ScheduleDefinition(
        name="prune_history_schedule",
        job=prune_history_job,
        cron_schedule=os.environ.get("CHURN_PRUNE_CRON") or DEFAULT_PRUNE_CRON,
        execution_timezone=settings.schedule_timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=build_prune_schedule.__doc__,
    )


prune_history_schedule = build_prune_schedule(Settings.from_env())
