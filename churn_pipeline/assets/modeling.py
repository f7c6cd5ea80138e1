"""Stage 3: the trained, calibrated churn model, its card, and the champion decision."""

from collections.abc import Iterator

import dagster as dg
import pandas as pd

from churn_pipeline.logic.champion import EVALUATION_COLUMNS, decide, evaluate_on_chunks, evaluation_frame
from churn_pipeline.logic.estimators import parse_candidates
from churn_pipeline.logic.modeling import TrainingError, train_churn_model, training_rows_from_chunks
from churn_pipeline.partitions import daily_partitions
from churn_pipeline.resources.pipeline_config import ChurnDatabase, PipelineConfig
from churn_pipeline.storage import PartitionHandle
from churn_pipeline.viz import model_plots_markdown

_METRICS = ("roc_auc", "roc_auc_std", "pr_auc", "brier", "log_loss", "predicted_to_actual", "lift_top_decile",
            "revenue_capture_top10", "revenue_capture_top20")


@dg.asset(
    partitions_def=daily_partitions,
    group_name="modeling",
    io_manager_key="model_io_manager",
    kinds={"lightgbm", "scikitlearn"},
    metadata={"dagster/table_name": "model_runs"},
    ins={"customer_features": dg.AssetIn(metadata={"load": "lazy"})},  # a PartitionHandle, never read whole
    check_specs=[
        dg.AssetCheckSpec("quality_floor", asset="churn_model", blocking=True,
                          description="The model that will score clears the ROC-AUC floor on the day's labels"),
        dg.AssetCheckSpec("calibration", asset="churn_model", blocking=True,
                          description="Sum of p of the serving model within tolerance of the actual churners"),
    ],
)
def churn_model(context: dg.AssetExecutionContext, pipeline: PipelineConfig, churn_db: ChurnDatabase,
                customer_features: PartitionHandle):
    """Logistic regression, random forest (calibrated on out-of-bag scores), LightGBM and their blend,
    chosen by nested cross-validation (the reported folds never inform the choice), trained with
    cross-fitting so a customer is never scored by a model that saw its label. The challenger
    replaces the champion only if it is not worse beyond a tolerance on the same labels; a blocking
    check stops any model below the quality floor from scoring. Saved as a content-hashed file with
    its card in `model_runs` and out-of-fold scores in `model_evaluation`.

    The day's features are never held whole (5 million customers' are ~1.7 GB), whether handed over
    in memory by the IO manager or read from the database: a first pass over the ids and labels of the
    labelled customers picks the training sample (at most `max_training_rows`, the rule of
    `train_churn_model`), a second pass keeps only its rows (same customers, same model either way).
    The champion is scored on all the labelled customers chunk by chunk."""
    day = context.partition_key
    chunk_rows = pipeline.chunk_rows
    try:
        training = training_rows_from_chunks(
            _labelled_chunks(customer_features, ["customer_id", "churned"], chunk_rows),
            _labelled_chunks(customer_features, EVALUATION_COLUMNS, chunk_rows),
            pipeline.max_training_rows,
        )
        challenger = train_churn_model(
            training, day, max_training_rows=pipeline.max_training_rows,
            tier_thresholds=(pipeline.tier_medium_threshold, pipeline.tier_high_threshold),
            candidate_names=parse_candidates(pipeline.candidates),
        )
    except (TrainingError, ValueError) as error:
        raise dg.Failure(str(error), allow_retries=False) from None  # retrying cannot fix it
    champion = churn_db.registry().champion()
    champion_metrics = evaluate_on_chunks(
        champion, _labelled_chunks(customer_features, EVALUATION_COLUMNS, chunk_rows), day,
    ) if champion else None
    outcome = decide(challenger, champion, champion_metrics, pipeline.quality_floor(), pipeline.champion_tolerance)
    outcome.evaluation = evaluation_frame(challenger, training)
    context.log.info(outcome.decision)

    m = challenger.metrics
    candidates = "\n".join(
        f"| {name} | {c['roc_auc']:.4f} | {c['brier']:.4f} | {c['predicted_to_actual']:.3f} |"
        for name, c in challenger.candidates.items()
    )
    yield dg.Output(
        outcome,
        metadata={
            "algorithm": challenger.algorithm,
            "fold_algorithms": ", ".join(challenger.params["fold_algorithms"]),
            "training_rows": challenger.training_rows,
            **{name: float(m[name]) for name in _METRICS},
            "promoted": outcome.promoted,
            "decision": outcome.decision,
            "candidates (inner CV)": dg.MetadataValue.md(
                "| candidate | ROC-AUC | Brier | Σp / actual |\n|---|---|---|---|\n" + candidates
            ),
            "plots": dg.MetadataValue.md(model_plots_markdown(outcome.evaluation)),
            "data_hash": challenger.data_hash,
        },
    )
    serving = outcome.serving_metrics
    floor = pipeline.quality_floor()
    yield dg.AssetCheckResult(
        check_name="quality_floor",
        passed=serving is not None and serving["roc_auc"] >= floor.min_roc_auc,
        metadata={"serving_roc_auc": float(serving["roc_auc"]) if serving else float("nan"),
                  "min_roc_auc": floor.min_roc_auc, "decision": outcome.decision},
    )
    calibration_error = abs(serving["predicted_to_actual"] - 1) if serving else float("nan")
    yield dg.AssetCheckResult(
        check_name="calibration",
        passed=serving is not None and calibration_error <= floor.max_calibration_error,
        metadata={"predicted_to_actual": float(serving["predicted_to_actual"]) if serving else float("nan"),
                  "max_calibration_error": floor.max_calibration_error},
    )


def _labelled_chunks(features: PartitionHandle, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """``columns`` of the labelled customers, from ``chunk_rows`` rows of the day at a time: slices of the
    rows handed over in memory (one chunk copied at a time, never the whole day; ``.frame`` would join
    handed-over chunks into one frame), else read from the database with ``churned IS NOT NULL``."""
    if features.handed is None:
        yield from features.chunks(columns, chunk_rows, where=features.columns.churned.isnot(None))
        return
    for chunk in features.chunks(columns, chunk_rows):
        yield chunk[chunk["churned"].notna().to_numpy()]
