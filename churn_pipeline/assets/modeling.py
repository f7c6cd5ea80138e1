"""Stage 3: the trained, calibrated churn model and its card."""

import dagster as dg
import pandas as pd

from churn_pipeline.logic.modeling import TrainingError, train_churn_model
from churn_pipeline.partitions import daily_partitions
from churn_pipeline.resources.pipeline_config import PipelineConfig


@dg.asset(
    partitions_def=daily_partitions,
    group_name="modeling",
    io_manager_key="model_io_manager",
    kinds={"lightgbm", "scikitlearn"},
    metadata={"dagster/table_name": "model_runs"},
    check_specs=[dg.AssetCheckSpec(
        "quality_floor", asset="churn_model", blocking=True,
        description="Cross-validated ROC-AUC above the floor and sum of p within tolerance of actual churners",
    )],
)
def churn_model(context: dg.AssetExecutionContext, pipeline: PipelineConfig, customer_features: pd.DataFrame):
    """Logistic regression and LightGBM compared on the same stratified folds; the best by mean
    ROC-AUC is kept with its fold models for cross-fitted scoring (a customer is never scored by a
    model that saw its label). Saved as a content-hashed file plus a row in `model_runs`."""
    try:
        model = train_churn_model(
            customer_features, context.partition_key,
            max_training_rows=pipeline.max_training_rows,
            tier_thresholds=(pipeline.tier_medium_threshold, pipeline.tier_high_threshold),
        )
    except TrainingError as error:
        raise dg.Failure(str(error)) from None
    m = model.metrics
    candidates = "\n".join(
        f"| {name} | {c['roc_auc']:.4f} ± {c['roc_auc_std']:.4f} | {c['brier']:.4f} | {c['predicted_to_actual']:.3f} |"
        for name, c in model.candidates.items()
    )
    yield dg.Output(
        model,
        metadata={
            "algorithm": model.algorithm,
            "training_rows": model.training_rows,
            "roc_auc": m["roc_auc"], "roc_auc_std": m["roc_auc_std"], "pr_auc": m["pr_auc"],
            "brier": m["brier"], "log_loss": m["log_loss"],
            "predicted_to_actual": m["predicted_to_actual"],
            "lift_top_decile": m["lift_top_decile"],
            "revenue_capture_top10": m["revenue_capture_top10"],
            "revenue_capture_top20": m["revenue_capture_top20"],
            "candidates": dg.MetadataValue.md(
                "| candidate | ROC-AUC | Brier | Σp / actual |\n|---|---|---|---|\n" + candidates
            ),
            "data_hash": model.data_hash,
        },
    )
    calibration_error = abs(m["predicted_to_actual"] - 1)
    yield dg.AssetCheckResult(
        check_name="quality_floor",
        passed=m["roc_auc"] >= pipeline.min_roc_auc and calibration_error <= pipeline.max_calibration_error,
        metadata={"roc_auc": m["roc_auc"], "min_roc_auc": pipeline.min_roc_auc,
                  "calibration_error": calibration_error, "max_calibration_error": pipeline.max_calibration_error},
    )
