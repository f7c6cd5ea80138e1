"""The Dagster code location: ``churn_pipeline.definitions:defs``.

Resources come from the environment (``Settings``): ``CHURN_DB_URL`` unset means the embedded SQLite
file under ``CHURN_DATA_DIR``; set, it is read through ``dg.EnvVar`` so the UI never shows it.
Besides the asset graph: the nightly schedule, a sensor on the landing folder, a failure alert, the
weekly history pruning, and freshness policies so the UI shows when the morning's answers are late.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta

import dagster as dg

from churn_pipeline.assets import ALL_ASSETS
from churn_pipeline.maintenance import (
    HistoryRetention,
    history_days_from_env,
    prune_history_job,
    prune_history_schedule,
)
from churn_pipeline.memory import limit_malloc_arenas
from churn_pipeline.resources.io_managers import ModelIOManager, SqlTableIOManager
from churn_pipeline.resources.pipeline_config import ChurnDatabase, PipelineConfig
from churn_pipeline.schedules import churn_nightly_job, churn_nightly_schedule
from churn_pipeline.sensors import churn_failure_alert, landing_file_sensor
from churn_pipeline.settings import Settings

# Before any step thread exists: fewer malloc arenas keep a large run's memory down (see memory.py).
limit_malloc_arenas()

# What the retention team reads each morning; the inputs behind them are only as late as these.
FRESH_ASSETS = ("scored_customers", "churn_kpis")
DEFAULT_FRESHNESS_HOURS = 26  # the nightly run plus two hours of slack


def freshness_policy() -> dg.FreshnessPolicy:
    """Late after ``CHURN_FRESHNESS_HOURS`` (26) hours without a materialization, warned an hour earlier.

    The freshness daemon (part of ``dagster-daemon``) evaluates it and the UI marks the asset as
    warning/failing freshness; a time window rather than a cron deadline, so it holds whatever
    ``CHURN_SCHEDULE_CRON`` says.
    """
    hours = float(os.environ.get("CHURN_FRESHNESS_HOURS") or DEFAULT_FRESHNESS_HOURS)
    if hours < 2:
        raise ValueError(f"CHURN_FRESHNESS_HOURS must be at least 2, got {hours}")
    return dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=hours),
                                          warn_window=timedelta(hours=hours - 1))


def with_freshness(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets, with the freshness policy attached to those in ``FRESH_ASSETS`` (asset files untouched)."""
    policy = freshness_policy()
    return dg.map_asset_specs(
        lambda spec: dg.apply_freshness_policy(spec, policy) if spec.key.to_user_string() in FRESH_ASSETS
        else spec,
        assets,
    )


def build_resources(settings: Settings) -> dict:
    db_url = dg.EnvVar("CHURN_DB_URL") if settings.db_url_from_env else settings.db_url
    return {
        "io_manager": SqlTableIOManager(db_url=db_url),
        "model_io_manager": ModelIOManager(db_url=db_url, model_dir=str(settings.model_dir)),
        "pipeline": PipelineConfig(
            landing_dir=str(settings.landing_dir), horizon_months=settings.horizon_months,
            contact_cost=settings.contact_cost, retention_success_rate=settings.retention_success_rate,
            candidates=settings.model_candidates,
        ),
        "churn_db": ChurnDatabase(db_url=db_url, model_dir=str(settings.model_dir)),
        "history": HistoryRetention(db_url=db_url, keep_days=history_days_from_env(),
                                    timezone=settings.schedule_timezone),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=with_freshness(ALL_ASSETS),
        jobs=[churn_nightly_job, prune_history_job],
        schedules=[churn_nightly_schedule, prune_history_schedule],
        sensors=[landing_file_sensor, churn_failure_alert],
        resources=build_resources(settings or Settings.from_env()),
    )


defs = build_definitions()
