"""Training and champion evaluation stream a day from the database: same customers, same model, same metrics
as the day held in memory, without ever reading the whole partition."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from churn_pipeline.assets.modeling import _labelled_chunks, churn_model
from churn_pipeline.logic.champion import (
    EVALUATION_COLUMNS,
    TrainingOutcome,
    evaluate_on_chunks,
    evaluate_on_snapshot,
    evaluation_frame,
)
from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.estimators import parse_candidates
from churn_pipeline.logic.features import build_features
from churn_pipeline.logic.modeling import train_churn_model, training_rows_from_chunks, training_sample
from churn_pipeline.model_runs import ModelRegistry
from churn_pipeline.resources.pipeline_config import ChurnDatabase, PipelineConfig
from churn_pipeline.storage import HandedRows, PartitionHandle, TableStore, in_key_order
from churn_pipeline.synthetic import generate_customers
from churn_pipeline_tests.helpers import raw_frame

DAY = "2024-03-01"
OTHER_DAY = "2024-02-01"
MAX_ROWS = 900
CHUNK_ROWS = 97
CANDIDATES = parse_candidates("logistic_regression,lightgbm")


def _features(n: int, seed: int, day: str) -> pd.DataFrame:
    clean, rejected = clean_snapshot(raw_frame(generate_customers(n, seed=seed).astype(str).to_dict("records"), day))
    assert rejected.empty
    features = build_features(clean)
    # Some customers' labels are not delivered yet: they neither train nor evaluate.
    unlabelled = np.random.default_rng(seed).random(len(features)) < 0.15
    features.loc[unlabelled, "churned"] = pd.NA
    # Rows in an order unlike the database's: the choice of training customers must not depend on it.
    return features.sample(frac=1.0, random_state=seed).reset_index(drop=True)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return _features(1500, 11, DAY)


def _store(url: str, features: pd.DataFrame) -> PartitionHandle:
    """The day's features in a table, as a handle without rows in memory (read from the database)."""
    store = TableStore(url)
    store.write({"customer_features": features}, partition=DAY)
    return PartitionHandle(store, "customer_features", DAY)


@pytest.fixture
def stored(sqlite_url, features) -> PartitionHandle:
    return _store(sqlite_url, features)


def _handed(stored: PartitionHandle, features: pd.DataFrame, pieces: int = 1) -> PartitionHandle:
    """The same day as rows handed over in memory by the IO manager: in key order, in ``pieces`` pieces."""
    frame = in_key_order(stored.table, features)
    bounds = np.linspace(0, len(frame), pieces + 1).astype(int)
    return PartitionHandle(stored.store, stored.table, stored.partition,
                           handed=HandedRows([frame.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:])]))


def _train(frame: pd.DataFrame, max_rows: int = MAX_ROWS):
    return train_churn_model(frame, DAY, max_training_rows=max_rows, candidate_names=CANDIDATES)


def _streamed_rows(handle: PartitionHandle, max_rows: int = MAX_ROWS) -> pd.DataFrame:
    return training_rows_from_chunks(_labelled_chunks(handle, ["customer_id", "churned"], CHUNK_ROWS),
                                     _labelled_chunks(handle, EVALUATION_COLUMNS, CHUNK_ROWS), max_rows)


def _assert_same_model(streamed, in_memory) -> None:
    assert streamed.data_hash == in_memory.data_hash
    assert streamed.metrics == in_memory.metrics
    assert streamed.candidates == in_memory.candidates
    assert streamed.algorithm == in_memory.algorithm and streamed.params == in_memory.params
    assert streamed.training_rows == in_memory.training_rows and streamed.churn_rate == in_memory.churn_rate
    pd.testing.assert_series_equal(streamed.training_folds, in_memory.training_folds)
    pd.testing.assert_series_equal(streamed.oof_probabilities, in_memory.oof_probabilities)


def test_the_sample_depends_on_the_customers_and_labels_only(features):
    ids = training_sample(features[["customer_id", "churned"]], MAX_ROWS)
    shuffled = features.sample(frac=1.0, random_state=3)
    assert (training_sample(shuffled, MAX_ROWS) == ids).all()  # any order, any other columns
    assert len(ids) == pytest.approx(MAX_ROWS, abs=2) and list(ids) == sorted(ids)
    chosen = features.set_index("customer_id").loc[ids, "churned"]
    labelled = features["churned"].dropna()
    assert chosen.notna().all()
    assert chosen.astype(bool).mean() == pytest.approx(labelled.astype(bool).mean(), abs=0.01)  # stratified


def test_streamed_training_gives_the_model_of_the_day_in_memory(db_url, features, monkeypatch):
    """On SQLite and MariaDB (whose collation orders the rows it returns)."""
    stored = _store(db_url, features)
    labelled = int(features["churned"].notna().sum())
    assert labelled > MAX_ROWS  # the sample is drawn
    read_whole = []
    original = TableStore.read_chunks

    def spy(self, name, partition=None, columns=None, where=None, chunk_rows=100_000):
        read_whole.append(chunk_rows is None or chunk_rows > CHUNK_ROWS)
        return original(self, name, partition, columns, where, chunk_rows)

    monkeypatch.setattr(TableStore, "read_chunks", spy)
    rows = _streamed_rows(stored)
    assert read_whole == [False, False]  # two passes in chunks, never the whole partition
    assert len(rows) == len(training_sample(features, MAX_ROWS)) < labelled

    streamed, in_memory = _train(rows), _train(features)
    _assert_same_model(streamed, in_memory)
    assert streamed.training_rows < labelled
    pd.testing.assert_frame_equal(evaluation_frame(streamed, rows), evaluation_frame(in_memory, features))


def test_without_sampling_every_labelled_customer_trains_either_way(stored, features):
    labelled = int(features["churned"].notna().sum())
    streamed, in_memory = _train(_streamed_rows(stored, 10_000), 10_000), _train(features, 10_000)
    _assert_same_model(streamed, in_memory)
    assert streamed.training_rows == labelled


@pytest.mark.parametrize("pieces", [1, 7])
def test_rows_handed_over_in_memory_train_the_same_model_without_reading_the_database(
        stored, features, monkeypatch, pieces):
    def refuse(*args, **kwargs):
        raise AssertionError("rows handed over in memory must not be read from the database")

    handed = _handed(stored, features, pieces)
    monkeypatch.setattr(TableStore, "read_chunks", refuse)
    monkeypatch.setattr(HandedRows, "whole", refuse)  # nor joined into one frame of the whole day
    chunks = list(_labelled_chunks(handed, EVALUATION_COLUMNS, CHUNK_ROWS))
    assert len(chunks) > 10 and all(len(c) <= CHUNK_ROWS for c in chunks)
    whole = pd.concat(chunks, ignore_index=True)
    assert list(whole.columns) == EVALUATION_COLUMNS
    assert len(whole) == features["churned"].notna().sum() and whole["churned"].notna().all()
    _assert_same_model(_train(_streamed_rows(handed)), _train(features))


@pytest.mark.parametrize("trained_on", [DAY, OTHER_DAY], ids=["cross-fitted", "another-day"])
def test_streamed_champion_evaluation_equals_evaluating_the_whole_frame(stored, features, trained_on):
    training = features if trained_on == DAY else _features(1200, 5, OTHER_DAY)
    champion = train_churn_model(training, trained_on, candidate_names=CANDIDATES)
    chunks = _labelled_chunks(stored, EVALUATION_COLUMNS, CHUNK_ROWS)
    streamed = evaluate_on_chunks(champion, chunks, DAY)
    in_key = in_key_order("customer_features", features)  # the order rows are stored and read in
    assert streamed == evaluate_on_snapshot(champion, in_key, DAY)
    assert streamed == pytest.approx(evaluate_on_snapshot(champion, features, DAY), rel=1e-12)
    handed = _handed(stored, features, pieces=3)
    assert evaluate_on_chunks(champion, _labelled_chunks(handed, EVALUATION_COLUMNS, CHUNK_ROWS), DAY) == streamed


def _run_asset(handle: PartitionHandle, url: str, model_dir, max_rows: int):
    pipeline = PipelineConfig(landing_dir=str(model_dir), max_training_rows=max_rows, chunk_rows=CHUNK_ROWS,
                              candidates="logistic_regression,lightgbm")
    churn_db = ChurnDatabase(db_url=url, model_dir=str(model_dir))
    context = dg.build_asset_context(partition_key=DAY)
    events = list(churn_model(context=context, pipeline=pipeline, churn_db=churn_db, customer_features=handle))
    output = next(e for e in events if isinstance(e, dg.Output))
    checks = {e.check_name: (e.passed, e.metadata) for e in events if isinstance(e, dg.AssetCheckResult)}
    return output, checks


def test_the_asset_gives_the_same_outcome_from_the_database_and_from_memory(stored, features, tmp_path):
    """With a champion from another day to beat: the same challenger, decision, metadata and checks."""
    registry = ModelRegistry(stored.store.url, tmp_path / "models")
    other_day = _features(1200, 5, OTHER_DAY)
    old = train_churn_model(other_day, OTHER_DAY, candidate_names=CANDIDATES)
    registry.register(TrainingOutcome(old, True, None, "first model: promoted", old.metrics,
                                      evaluation_frame(old, other_day)), run_id="r0", trained_at=datetime(2024, 2, 2))
    handed = _handed(stored, features)
    streamed_output, streamed_checks = _run_asset(stored, stored.store.url, tmp_path / "models", MAX_ROWS)
    handed_output, handed_checks = _run_asset(handed, stored.store.url, tmp_path / "models", MAX_ROWS)

    streamed, in_memory = streamed_output.value, handed_output.value
    _assert_same_model(streamed.challenger, in_memory.challenger)
    assert streamed.decision == in_memory.decision and "champion" in streamed.decision
    assert streamed.serving_metrics == in_memory.serving_metrics
    pd.testing.assert_frame_equal(streamed.evaluation, in_memory.evaluation)
    assert len(streamed.evaluation) == streamed.challenger.training_rows < features["churned"].notna().sum()
    assert streamed_output.metadata == handed_output.metadata
    assert {"algorithm", "training_rows", "roc_auc", "promoted", "decision", "plots", "data_hash"} \
        <= set(streamed_output.metadata)
    assert streamed_checks == handed_checks
    assert set(streamed_checks) == {"quality_floor", "calibration"}
    assert all(passed for passed, _ in streamed_checks.values())
