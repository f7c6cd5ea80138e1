"""Cleaning and features stream through a day: the same tables as all at once, in key order, one transaction."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from churn_pipeline.assets import ALL_ASSETS
from churn_pipeline.definitions import build_resources
from churn_pipeline.logic.cleaning import CleanStream, clean_snapshot, scan_ids
from churn_pipeline.logic.features import build_features
from churn_pipeline.logic.ingest import read_snapshot
from churn_pipeline.logic.spill import bucket_sorted, range_bounds
from churn_pipeline.resources.io_managers import HANDOFF
from churn_pipeline.storage import HandedRows, TableStore, approximate_bytes
from churn_pipeline.synthetic import generate_customers, write_snapshot
from churn_pipeline_tests.helpers import count_table_reads, local_settings, with_fields

DAY = "2024-05-01"


@pytest.fixture(scope="module")
def messy_raw(tmp_path_factory) -> pd.DataFrame:
    """3,000 customers plus repeats (exact and conflicting) and malformed rows, read as raw_customers."""
    folder = tmp_path_factory.mktemp("landing")
    frame = generate_customers(3000, seed=21, duplicate_rate=0.06, malformed_rate=0.03)
    # a repeat whose id differs only in case and surrounding spaces, far from its original
    twin = frame.iloc[[5]].copy()
    twin["customerID"] = " " + twin["customerID"].str.lower() + " "
    frame = pd.concat([frame, twin], ignore_index=True)
    return read_snapshot(write_snapshot(frame, folder, DAY), DAY)


def _streamed(raw: pd.DataFrame, rows: int) -> tuple[pd.DataFrame, pd.DataFrame, list[pd.DataFrame]]:
    def chunks():
        return (raw.iloc[i:i + rows].reset_index(drop=True) for i in range(0, len(raw), rows))

    ids = scan_ids((chunk["customerID"] for chunk in chunks()), rows)
    split = CleanStream(ids.repeated)
    pieces = list(bucket_sorted(split.clean_chunks(chunks()), ids.bucket_of, ids.buckets, ["customer_id"]))
    return pd.concat(pieces, ignore_index=True), split.rejected(), pieces


@pytest.mark.parametrize("rows", [1, 97, 500, 100_000])
def test_cleaning_in_chunks_splits_the_day_as_cleaning_it_whole(messy_raw, rows):
    raw = messy_raw if rows > 1 else messy_raw.iloc[:120].reset_index(drop=True)  # one row a chunk: a slice
    clean, rejected = clean_snapshot(raw)
    streamed_clean, streamed_rejected, pieces = _streamed(raw, rows)
    pd.testing.assert_frame_equal(streamed_clean, clean.sort_values("customer_id").reset_index(drop=True))
    pd.testing.assert_frame_equal(streamed_rejected, rejected)
    assert len(streamed_clean) + len(streamed_rejected) == len(raw)
    assert streamed_clean["customer_id"].is_monotonic_increasing  # written in the order of the table's key
    if rows == 500:
        assert {"duplicate_row", "duplicate_conflict"} <= set(",".join(rejected["reason_codes"]).split(","))
        assert max(len(piece) for piece in pieces) < 2 * 500  # one key range at a time, not the day


def test_repeats_far_apart_in_the_file_are_still_judged_together(messy_raw):
    """The id on line 7 comes back lower-cased and padded on the last line, 12 chunks later: the same
    customer (ids ignore case, as MySQL's key does) with a different id spelling, so both are rejected."""
    clean, rejected, _ = _streamed(messy_raw, 250)
    both = rejected[rejected["source_line"].isin([7, messy_raw["source_line"].max()])]
    assert both["reason_codes"].tolist() == ["duplicate_conflict", "duplicate_conflict"]
    assert messy_raw["customerID"].iloc[5] not in set(clean["customer_id"])


def test_rejected_rows_are_known_only_after_the_clean_stream():
    split = CleanStream(np.empty(0, dtype="uint64"))
    with pytest.raises(RuntimeError, match="once every clean row"):
        split.rejected()


def test_range_bounds_split_keys_into_contiguous_buckets():
    keys = np.array([f"{i:05d}-ABCDE" for i in range(1000)])
    bounds = range_bounds(keys[::10], 4)
    buckets = np.searchsorted(bounds, keys, side="right")
    assert len(bounds) == 3 and set(buckets) == {0, 1, 2, 3}
    assert (np.diff(buckets) >= 0).all()  # sorted keys never go back to an earlier bucket
    assert range_bounds(keys, 1).size == 0 and range_bounds(keys[:0], 5).size == 0


def test_handed_rows_re_cut_the_pieces_of_a_stream_into_chunks(messy_raw):
    frame = messy_raw.iloc[:1000].reset_index(drop=True)
    handed = HandedRows([frame.iloc[:300], frame.iloc[300:310], frame.iloc[310:]])
    columns = ["source_line", "customerID"]
    chunks = list(handed.chunks(columns, 400))
    assert [len(c) for c in chunks] == [400, 400, 200] and len(handed) == 1000
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), frame[columns])
    pd.testing.assert_frame_equal(handed.whole(), frame)


def test_the_graph_streams_preparation_in_small_chunks_and_hands_rows_over(tmp_path):
    """Chunks of 97 rows: clean_customers and customer_features equal cleaning and featurising the whole
    file at once, clean rows are stored in key order, and the committed chunks are handed over."""
    settings = local_settings(tmp_path)
    path = write_snapshot(generate_customers(1500, seed=5, duplicate_rate=0.03, malformed_rate=0.02),
                          settings.landing_dir, DAY)
    resources = build_resources(settings)
    resources["pipeline"] = with_fields(resources["pipeline"], chunk_rows=97)
    result = dg.materialize(ALL_ASSETS, partition_key=DAY, resources=resources)
    assert result.success
    store = TableStore(settings.db_url)
    clean, rejected = clean_snapshot(read_snapshot(path, DAY))
    stored_clean = store.read("clean_customers", partition=DAY)
    pd.testing.assert_frame_equal(stored_clean, clean.sort_values("customer_id").reset_index(drop=True))
    stored_rejected = store.read("rejected_customers", partition=DAY)
    assert stored_rejected["source_line"].tolist() == rejected["source_line"].tolist()
    features = store.read("customer_features", partition=DAY)
    pd.testing.assert_frame_equal(features, build_features(stored_clean), check_exact=False)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["rows_accounted"]
    metadata = result.asset_materializations_for_node("clean_customers")[0].metadata
    assert metadata["rows_read"].value == len(clean) + len(rejected)
    assert metadata["rejected_rows"].value == len(rejected)
    HANDOFF.clear()


def test_rows_kept_for_pairing_are_dropped_once_a_later_table_does_not_fit(tmp_path, monkeypatch):
    """handoff_mb = 1 and 3,500 customers: the raw snapshot does not fit (cleaning reads it back), the
    clean rows fit (features read them from memory), the features do not: the clean rows are then
    dropped as well, scoring and KPIs read both from the database, and the tables are the same."""
    reads = count_table_reads(monkeypatch)
    settings = local_settings(tmp_path)
    write_snapshot(generate_customers(3500, seed=8), settings.landing_dir, DAY)
    resources = build_resources(settings)
    resources["io_manager"] = with_fields(resources["io_manager"], handoff_mb=1)
    HANDOFF.clear()
    result = dg.materialize(ALL_ASSETS, partition_key=DAY, resources=resources)
    assert result.success
    assert reads.count("raw_customers") == 2  # the id scan and the cleaning pass
    assert reads.count("clean_customers") == 3  # scoring's two passes and the KPIs; features read memory
    assert not HANDOFF._rows  # nothing of the run is kept


def test_a_day_whose_every_row_is_rejected_stops_at_features_with_a_clear_reason(tmp_path):
    settings = local_settings(tmp_path)
    frame = generate_customers(300, seed=2)
    frame["Contract"] = "Forever"
    write_snapshot(frame, settings.landing_dir, DAY)
    result = dg.materialize(ALL_ASSETS, partition_key=DAY, resources=build_resources(settings), raise_on_error=False)
    assert not result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["rows_accounted"]  # 300 read = 0 clean + 300 rejected
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failures] == ["customer_features"]
    assert "no rows in clean_customers" in failures[0].event_specific_data.error.message
    assert "every row rejected" in failures[0].event_specific_data.error.message
    assert len(TableStore(settings.db_url).read("rejected_customers", partition=DAY)) == 300
    HANDOFF.clear()


def test_the_hand_over_declines_a_stream_that_announces_more_rows_than_fit(messy_raw):
    from churn_pipeline.resources.io_managers import _Collector

    chunk = messy_raw.iloc[:100].reset_index(drop=True)
    per_row = approximate_bytes(chunk) / len(chunk)
    fits = _Collector("raw_customers", budget=int(per_row * 1000), expected_rows=900)
    fits.add(chunk)
    assert fits.rows() is not None and len(fits.rows()) == 100
    too_many = _Collector("raw_customers", budget=int(per_row * 1000), expected_rows=5000)
    too_many.add(chunk)  # declined at the first chunk: nothing held while the rest streams
    assert too_many.rows() is None
    unordered = _Collector("raw_customers", budget=10**9)
    unordered.add(chunk.iloc[50:])
    unordered.add(chunk.iloc[:50])  # a chunk before the previous one: not in key order, let go
    assert unordered.rows() is None
