"""Business settings the assets read, as a Dagster resource (defaults from the environment)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from churn_pipeline.logic.modeling import DEFAULT_MAX_TRAINING_ROWS, DEFAULT_TIER_THRESHOLDS


class PipelineConfig(dg.ConfigurableResource):
    """Where snapshots land and the business parameters of scoring."""

    landing_dir: str = Field(description="Folder of customers_YYYY-MM-DD.csv files (CHURN_LANDING_DIR)")
    horizon_months: float = Field(default=12.0, gt=0, description="Months of revenue counted as at risk")
    tier_medium_threshold: float = Field(default=DEFAULT_TIER_THRESHOLDS[0], description="p for Medium risk")
    tier_high_threshold: float = Field(default=DEFAULT_TIER_THRESHOLDS[1], description="p for High risk")
    max_training_rows: int = Field(default=DEFAULT_MAX_TRAINING_ROWS, gt=0,
                                   description="Labelled rows sampled (stratified) for training")
    min_roc_auc: float = Field(default=0.70, description="A model below this cross-validated ROC-AUC scores nothing")
    max_calibration_error: float = Field(
        default=0.10, description="Largest allowed |sum of p / actual churners - 1| on out-of-fold scores"
    )
