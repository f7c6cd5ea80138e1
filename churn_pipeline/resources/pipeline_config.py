"""Business settings the assets read, as Dagster resources (defaults from the environment)."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from churn_pipeline.logic.champion import DEFAULT_TOLERANCE, QualityFloor
from churn_pipeline.logic.estimators import CANDIDATE_NAMES
from churn_pipeline.logic.modeling import DEFAULT_MAX_TRAINING_ROWS, DEFAULT_TIER_THRESHOLDS
from churn_pipeline.model_runs import ModelRegistry
from churn_pipeline.storage import DEFAULT_CHUNK_ROWS, TableStore


class PipelineConfig(dg.ConfigurableResource):
    """Where snapshots land and the business parameters of training, scoring and campaigns."""

    landing_dir: str = Field(description="Folder of customers_YYYY-MM-DD.csv files (CHURN_LANDING_DIR)")
    horizon_months: float = Field(default=12.0, gt=0, description="Months of revenue counted as at risk")
    tier_medium_threshold: float = Field(default=DEFAULT_TIER_THRESHOLDS[0], description="p for Medium risk")
    tier_high_threshold: float = Field(default=DEFAULT_TIER_THRESHOLDS[1], description="p for High risk")
    max_training_rows: int = Field(default=DEFAULT_MAX_TRAINING_ROWS, gt=0,
                                   description="Labelled rows sampled (stratified) for training")
    min_roc_auc: float = Field(default=QualityFloor.min_roc_auc,
                               description="No model below this ROC-AUC on the day's labels scores anything")
    max_calibration_error: float = Field(
        default=QualityFloor.max_calibration_error,
        description="Largest allowed |sum of p / actual churners - 1| on the day's labels",
    )
    champion_tolerance: float = Field(default=DEFAULT_TOLERANCE, ge=0,
                                      description="ROC-AUC a challenger may lose and still replace the champion")
    contact_cost: float = Field(default=25.0, ge=0, description="Cost of one retention contact, USD")
    retention_success_rate: float = Field(default=0.3, ge=0, le=1,
                                          description="Share of contacted would-be churners who stay")
    candidates: str = Field(default=",".join(CANDIDATE_NAMES),
                            description="Model candidates compared by nested cross-validation (CHURN_MODEL_CANDIDATES)")
    max_score_psi: float = Field(default=0.2, gt=0, description="Score drift (PSI) above which a warning is raised")
    chunk_rows: int = Field(default=DEFAULT_CHUNK_ROWS, gt=0,
                            description="Customers per chunk when scoring and KPIs stream through a day")

    def quality_floor(self) -> QualityFloor:
        return QualityFloor(self.min_roc_auc, self.max_calibration_error)


class ChurnDatabase(dg.ConfigurableResource):
    """Direct access to the output tables and the model registry, for assets that compare with history."""

    db_url: str = Field(description="SQLAlchemy URL of the output database (CHURN_DB_URL)")
    model_dir: str = Field(description="Folder of model files (CHURN_MODEL_DIR)")

    def store(self) -> TableStore:
        return TableStore(self.db_url)

    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.db_url, self.model_dir)
