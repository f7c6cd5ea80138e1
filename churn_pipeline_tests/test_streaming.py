"""Scoring and KPIs stream through a day in chunks: same numbers as all at once, one transaction."""

from __future__ import annotations

import dataclasses

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from churn_pipeline.assets import ALL_ASSETS
from churn_pipeline.definitions import build_resources
from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.estimators import parse_candidates
from churn_pipeline.logic.features import build_features
from churn_pipeline.logic.ingest import read_snapshot
from churn_pipeline.logic.kpis import KpiAccumulator, business_kpis, segment_kpis
from churn_pipeline.logic.modeling import train_churn_model
from churn_pipeline.logic.scoring import (
    in_priority_order,
    plan_scores,
    score_customers,
    scored_chunks,
    scored_chunks_in_priority_order,
)
from churn_pipeline.settings import Settings
from churn_pipeline.storage import FrameChunks, StorageError, TableStore
from churn_pipeline.synthetic import generate_customers, write_snapshot
from churn_pipeline_tests.helpers import count_table_reads

DAY = "2024-05-01"


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """A cleaned, featured, trained day of 2,000 customers (in memory)."""
    folder = tmp_path_factory.mktemp("landing")
    path = write_snapshot(generate_customers(2000, seed=11), folder, DAY)
    clean, _rejected = clean_snapshot(read_snapshot(path, DAY))
    features = build_features(clean)
    model = train_churn_model(features, DAY, candidate_names=parse_candidates("logistic_regression,lightgbm"))
    model.version = "v-test"
    return clean, features, model


def _with(resource, **changes):
    """A copy of a Dagster resource with some fields changed (model_copy misses Dagster's own config)."""
    return type(resource)(**{**resource._get_non_default_public_field_values(), **changes})


def _chunked(frame: pd.DataFrame, rows: int):
    return [frame.iloc[i:i + rows].reset_index(drop=True) for i in range(0, len(frame), rows)]


def test_scoring_in_chunks_gives_the_rows_of_scoring_all_at_once(day):
    clean, features, model = day
    whole = score_customers(clean, features, model, "v-test", 12.0, cross_fit=True)

    pairs = list(zip(_chunked(clean, 173), _chunked(features, 173)))
    plan = plan_scores(pairs, model, 12.0, cross_fit=True)
    streamed = pd.concat(list(scored_chunks(pairs, plan, model, "v-test")), ignore_index=True)

    assert len(pairs) > 10
    streamed = streamed.sort_values("priority_rank").reset_index(drop=True)
    pd.testing.assert_frame_equal(streamed, whole)
    assert (whole["priority_rank"].to_numpy() == np.arange(1, len(whole) + 1)).all()
    # the priority list is ranked by expected loss, then probability
    assert whole["expected_revenue_loss"].is_monotonic_decreasing


def test_the_in_memory_pass_gives_the_same_rows_in_priority_order(day):
    clean, features, model = day
    pairs = list(zip(_chunked(clean, 400), _chunked(features, 400)))
    plan = plan_scores(pairs, model, 12.0, cross_fit=True)
    by_customer = pd.concat(list(scored_chunks(pairs, plan, model, "v-test")), ignore_index=True)
    chunks = list(scored_chunks_in_priority_order(clean, features, plan, model, "v-test", chunk_rows=300))
    assert all(len(c) == 300 for c in chunks[:-1])
    by_priority = pd.concat(chunks, ignore_index=True)
    assert (by_priority["priority_rank"].to_numpy() == np.arange(1, len(by_priority) + 1)).all()
    pd.testing.assert_frame_equal(by_priority, by_customer.sort_values("priority_rank").reset_index(drop=True))


def test_rows_read_in_customer_order_are_written_in_priority_order_through_spill_files(day):
    clean, features, model = day
    pairs = list(zip(_chunked(clean, 400), _chunked(features, 400)))
    plan = plan_scores(pairs, model, 12.0, cross_fit=False)
    by_customer = list(scored_chunks(pairs, plan, model, "v-test"))
    chunks = list(in_priority_order(iter(by_customer), total=len(plan), chunk_rows=250))
    assert [len(c) for c in chunks[:-1]] == [250] * (len(chunks) - 1)
    together = pd.concat(chunks, ignore_index=True)
    assert (together["priority_rank"].to_numpy() == np.arange(1, len(plan) + 1)).all()
    expected = pd.concat(by_customer, ignore_index=True).sort_values("priority_rank").reset_index(drop=True)
    pd.testing.assert_frame_equal(together, expected)
    with pytest.raises(ValueError, match="priority ranks outside"):
        list(in_priority_order(iter(by_customer), total=len(plan) - 1, chunk_rows=250))


def test_a_chunk_that_changed_between_the_passes_is_refused(day):
    clean, features, model = day
    pairs = list(zip(_chunked(clean, 500), _chunked(features, 500)))
    plan = plan_scores(pairs, model, 12.0, cross_fit=False)
    clean_1, features_1 = pairs[1]
    keep = np.ones(len(clean_1), dtype=bool)
    keep[np.flatnonzero(~clean_1["churned"].fillna(False).to_numpy(dtype=bool))[0]] = False  # an active customer
    pairs[1] = (clean_1[keep].reset_index(drop=True), features_1[keep].reset_index(drop=True))
    with pytest.raises(ValueError, match="changed between the two scoring passes"):
        list(scored_chunks(pairs, plan, model, "v-test"))


def test_kpis_added_up_in_chunks_match_the_whole_day(day):
    clean, features, model = day
    scored = score_customers(clean, features, model, "v-test", 12.0, cross_fit=False)
    whole_business = business_kpis(scored, clean, 12.0)
    whole_segments = segment_kpis(scored, clean)

    totals = KpiAccumulator(12.0)
    shuffled = scored.sample(frac=1.0, random_state=3)  # chunks may arrive in any order
    for chunk in _chunked(shuffled, 211):
        totals.add_scored(chunk)
    for chunk in _chunked(clean, 97):
        totals.add_clean(chunk)
    pd.testing.assert_frame_equal(totals.business(), whole_business, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(totals.segments(), whole_segments, check_exact=False, rtol=1e-12)

    # the streamed campaign plan is the best cut of the priority list (searched here over every cut)
    profit = scored.sort_values("priority_rank")["expected_contact_profit"].to_numpy()
    cumulative = np.concatenate([[0.0], np.cumsum(profit)])
    row = whole_business.iloc[0]
    assert row["campaign_list_size"] == int(np.argmax(cumulative)) > 0
    assert row["campaign_expected_profit"] == pytest.approx(cumulative.max())
    assert row["actual_churn_rate"] == pytest.approx(clean["churned"].astype(float).mean())


def test_kpis_refuse_two_models_in_one_day(day):
    clean, features, model = day
    scored = score_customers(clean, features, model, "v-test", 12.0, cross_fit=False)
    other = scored.assign(model_version="v-other")
    totals = KpiAccumulator(12.0)
    totals.add_scored(scored)
    with pytest.raises(ValueError, match="one snapshot and one model"):
        totals.add_scored(other)


def _scored_frame(day, n: int = 2500) -> pd.DataFrame:
    clean, features, model = day
    return score_customers(clean, features, model, "v-test", 12.0, cross_fit=False).head(n)


def test_read_chunks_are_exact_and_in_key_order(db_url, day):
    store = TableStore(db_url)
    clean = day[0]
    store.write({"clean_customers": clean}, partition=DAY)
    chunks = list(store.read_chunks("clean_customers", DAY, chunk_rows=300))
    assert [len(c) for c in chunks[:-1]] == [300] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= 300
    together = pd.concat(chunks, ignore_index=True)
    expected = clean.sort_values("customer_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(together, expected)
    assert [len(c) for c in store.read_chunks("clean_customers", "2030-01-01", chunk_rows=300)] == [0]


def test_aligned_reads_refuse_tables_holding_other_customers(db_url, day):
    clean, features, _ = day
    store = TableStore(db_url)
    store.write({"clean_customers": clean, "customer_features": features.iloc[:-5]}, partition=DAY)
    with pytest.raises(StorageError, match="more rows than customer_features|hold different customers"):
        for _ in store.read_aligned({"customer_features": None, "clean_customers": ["customer_id"]}, DAY, 400):
            pass


def test_a_stream_is_written_whole_or_not_at_all(db_url, day):
    store = TableStore(db_url)
    old = _scored_frame(day)
    store.write({"scored_customers": old}, partition=DAY)
    new = old.assign(model_version="v-new")

    def failing():
        yield new.iloc[:1000]
        yield new.iloc[1000:2000]
        raise ValueError("the model failed on chunk 3")

    with pytest.raises(ValueError, match="chunk 3"):
        store.write({"scored_customers": FrameChunks("scored_customers", failing())}, partition=DAY)
    kept = store.read("scored_customers", partition=DAY)
    assert len(kept) == len(old) and set(kept["model_version"]) == {"v-test"}

    stream = FrameChunks("scored_customers", iter([new.iloc[:1000], new.iloc[1000:]]))
    assert store.write({"scored_customers": stream}, partition=DAY) == {"scored_customers": len(new)}
    assert stream.rows == len(new)
    assert set(store.read("scored_customers", partition=DAY)["model_version"]) == {"v-new"}
    with pytest.raises(StorageError, match="already consumed"):
        store.write({"scored_customers": stream}, partition=DAY)


def test_a_chunk_from_another_day_is_refused_and_nothing_is_written(db_url, day):
    store = TableStore(db_url)
    old = _scored_frame(day, 300)
    store.write({"scored_customers": old}, partition=DAY)
    wrong = old.assign(snapshot_date=pd.Timestamp("2024-05-02"))
    stream = FrameChunks("scored_customers", iter([old.iloc[:100], wrong.iloc[100:]]))
    with pytest.raises(StorageError, match="other than partition"):
        store.write({"scored_customers": stream}, partition=DAY)
    assert len(store.read("scored_customers", partition=DAY)) == 300


def test_the_graph_gives_the_same_tables_whatever_the_chunk_size(tmp_path, sqlite_url):
    """Scoring and KPIs in chunks of 97 customers write what chunks of 100,000 write."""
    settings = dataclasses.replace(
        Settings.from_env(), data_dir=tmp_path, landing_dir=tmp_path / "landing", model_dir=tmp_path / "models",
        db_url=sqlite_url, db_url_from_env=False, model_candidates="logistic_regression",
    )
    write_snapshot(generate_customers(1500, seed=4, malformed_rate=0.01), settings.landing_dir, DAY)
    results = {}
    for chunk_rows in (100_000, 97):
        resources = build_resources(settings)
        resources["pipeline"] = _with(resources["pipeline"], chunk_rows=chunk_rows)
        assert dg.materialize(ALL_ASSETS, partition_key=DAY, resources=resources).success
        store = TableStore(sqlite_url)
        results[chunk_rows] = {
            table: store.read(table, partition=DAY).sort_values(key).reset_index(drop=True)
            for table, key in (("scored_customers", "customer_id"), ("business_kpis", "snapshot_date"),
                               ("segment_kpis", ["segment_type", "segment_value"]))
        }
    for table, frame in results[97].items():
        pd.testing.assert_frame_equal(frame, results[100_000][table], check_exact=False, rtol=1e-9, obj=table)
    with TableStore(sqlite_url).engine.connect() as conn:
        ranks = conn.execute(sa.text("SELECT MIN(priority_rank), MAX(priority_rank), COUNT(*) "
                                     "FROM scored_customers WHERE snapshot_date = :d"), {"d": DAY}).one()
    assert ranks[0] == 1 and ranks[1] == ranks[2]


def test_every_chunk_of_a_stream_is_validated_before_it_is_written(sqlite_url, day):
    from churn_pipeline.dagster_types import SchemaViolation, validate_table

    store = TableStore(sqlite_url)
    old = _scored_frame(day, 300)
    store.write({"scored_customers": old}, partition=DAY)
    bad = old.iloc[100:].assign(churn_probability=1.5)
    stream = FrameChunks("scored_customers", iter([old.iloc[:100], bad]))
    assert validate_table("scored_customers", stream).success  # deferred: checked chunk by chunk
    with pytest.raises(SchemaViolation, match="churn_probability"):
        store.write({"scored_customers": stream}, partition=DAY)
    assert (store.read("scored_customers", partition=DAY)["churn_probability"] <= 1).all()


def test_rows_handed_over_in_memory_give_the_tables_that_reading_back_gives(tmp_path, monkeypatch):
    """The IO manager hands each step's committed rows to the next steps of the run (no read-back);
    with the hand-over off every step reads the database. Both write the same tables and model."""
    reads = count_table_reads(monkeypatch)
    outputs = {}
    for handoff_mb in (2048, 0):
        folder = tmp_path / f"handoff_{handoff_mb}"
        url = f"sqlite:///{folder / 'churn.db'}"
        settings = dataclasses.replace(
            Settings.from_env(), data_dir=folder, landing_dir=folder / "landing", model_dir=folder / "models",
            db_url=url, db_url_from_env=False, model_candidates="logistic_regression",
        )
        write_snapshot(generate_customers(1200, seed=9, malformed_rate=0.01), settings.landing_dir, DAY)
        resources = build_resources(settings)
        resources["io_manager"] = _with(resources["io_manager"], handoff_mb=handoff_mb)
        reads.clear()
        assert dg.materialize(ALL_ASSETS, partition_key=DAY, resources=resources).success
        outputs[handoff_mb] = (sorted(set(reads)), {
            table: TableStore(url).read(table, partition=DAY).drop(columns=["loaded_at"], errors="ignore")
            for table in ("clean_customers", "customer_features", "scored_customers", "business_kpis")
        })
    handed_reads, handed = outputs[2048]
    plain_reads, plain = outputs[0]
    assert "raw_customers" in plain_reads and "customer_features" in plain_reads
    assert not {"raw_customers", "clean_customers", "customer_features"} & set(handed_reads)
    for table, frame in handed.items():
        pd.testing.assert_frame_equal(frame, plain[table], obj=table)


def test_the_vectorised_text_check_still_refuses_a_value_that_is_not_text(day):
    """schemas.py swaps pandera's per-value str check for a vectorised one; failures stay reported."""
    from churn_pipeline.dagster_types import validate_table

    clean = day[0].head(50).copy()
    assert validate_table("clean_customers", clean).success
    clean["customer_id"] = clean["customer_id"].astype(object)
    clean.loc[7, "customer_id"] = 12345
    result = validate_table("clean_customers", clean)
    assert not result.success and "customer_id" in result.description and "12345" in result.description
