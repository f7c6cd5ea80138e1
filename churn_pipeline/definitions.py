"""The Dagster code location: ``churn_pipeline.definitions:defs``.

Resources come from the environment (``Settings``): ``CHURN_DB_URL`` unset means the embedded SQLite
file under ``CHURN_DATA_DIR``; set, it is read through ``dg.EnvVar`` so the UI never shows it.
"""

from __future__ import annotations

import dagster as dg

from churn_pipeline.assets import ALL_ASSETS
from churn_pipeline.resources.io_managers import ModelIOManager, SqlTableIOManager
from churn_pipeline.resources.pipeline_config import PipelineConfig
from churn_pipeline.schedules import churn_nightly_job, churn_nightly_schedule
from churn_pipeline.settings import Settings


def build_resources(settings: Settings) -> dict:
    db_url = dg.EnvVar("CHURN_DB_URL") if settings.db_url_from_env else settings.db_url
    return {
        "io_manager": SqlTableIOManager(db_url=db_url),
        "model_io_manager": ModelIOManager(db_url=db_url, model_dir=str(settings.model_dir)),
        "pipeline": PipelineConfig(landing_dir=str(settings.landing_dir), horizon_months=settings.horizon_months),
    }


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        jobs=[churn_nightly_job],
        schedules=[churn_nightly_schedule],
        resources=build_resources(settings or Settings.from_env()),
    )


defs = build_definitions()
