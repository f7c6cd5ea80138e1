"""Streaming a landing file in chunks: the same rows as reading it whole, one chunk in memory at a time."""

from __future__ import annotations

import csv
import dataclasses
import io
import tracemalloc
from datetime import datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from churn_pipeline.assets import raw_customers
from churn_pipeline.constants import TELCO_COLUMNS
from churn_pipeline.definitions import build_resources
from churn_pipeline.logic.ingest import SnapshotFileError, open_snapshot, read_snapshot
from churn_pipeline.schemas import RawCustomers
from churn_pipeline.settings import Settings
from churn_pipeline.storage import TableStore
from churn_pipeline.synthetic import generate_customers, write_snapshot

DAY = "2024-03-01"
LOADED_AT = datetime(2024, 3, 2, 1, 2, 3, 456789)
ROWS: list[dict[str, str]] = generate_customers(23, seed=7).astype(str).to_dict("records")


def csv_bytes(rows: list[dict[str, str]], line_end: str = "\n", quoting: int = csv.QUOTE_MINIMAL) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end, quoting=quoting)
    writer.writerow(TELCO_COLUMNS)
    writer.writerows([[row[c] for c in TELCO_COLUMNS] for row in rows])
    return buffer.getvalue().encode("utf-8")


def with_blank_lines(data: bytes, after: tuple[int, ...], line_end: bytes = b"\n") -> bytes:
    """Insert an empty line after each of the given (1-based, original) line numbers."""
    lines = data.split(line_end)
    for line in sorted(after, reverse=True):
        lines.insert(line, b"")
    return line_end.join(lines)


def spanning(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    rows = [dict(row) for row in rows]
    rows[2]["gender"] = "Fe\nmale"  # a quoted value over two lines
    rows[9]["Contract"] = "Month-\r\nto-\r\nmonth"  # over three
    return rows


FILES = {
    "plain LF": csv_bytes(ROWS),
    "plain CRLF": csv_bytes(ROWS, line_end="\r\n"),
    "plain blank lines": with_blank_lines(csv_bytes(ROWS), (1, 4, 5, 11, 24)) + b"\r\n\n",
    "plain CRLF blank lines": with_blank_lines(csv_bytes(ROWS, line_end="\r\n"), (3, 7, 8), b"\r\n"),
    "BOM": b"\xef\xbb\xbf" + csv_bytes(ROWS),
    "quoted": csv_bytes(ROWS, quoting=csv.QUOTE_ALL),
    "quoted CRLF": csv_bytes(ROWS, line_end="\r\n", quoting=csv.QUOTE_ALL),
    "quoted blank lines": with_blank_lines(csv_bytes(ROWS, quoting=csv.QUOTE_ALL), (1, 6, 7, 20)) + b"\n",
    "quoted spanning lines": with_blank_lines(csv_bytes(spanning(ROWS)), (5, 17)),
}


def landing(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"customers_{DAY}.csv"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("chunk_rows", [1, 2, 5, 23, 24, 100_000])
@pytest.mark.parametrize("case", list(FILES))
def test_chunks_concatenated_are_what_read_snapshot_returns(tmp_path, case, chunk_rows):
    path = landing(tmp_path, FILES[case])
    whole = read_snapshot(path, DAY, LOADED_AT)
    snapshot = open_snapshot(path, DAY, LOADED_AT)
    chunks = list(snapshot.chunks(chunk_rows))
    assert [len(c) for c in chunks[:-1]] == [chunk_rows] * (len(chunks) - 1)
    assert 0 < len(chunks[-1]) <= chunk_rows
    for chunk in chunks:
        assert isinstance(chunk.index, pd.RangeIndex) and chunk.index.start == 0
        assert list(chunk.columns) == list(whole.columns)
        pd.testing.assert_series_equal(chunk.dtypes, whole.dtypes)
        RawCustomers.validate(chunk)
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert whole[list(TELCO_COLUMNS)].to_dict("records") == (spanning(ROWS) if "spanning" in case else ROWS)
    assert snapshot.rows == (None if "quoted" in case else len(ROWS))
    assert snapshot.file_bytes == len(FILES[case])


@pytest.mark.parametrize("case", ["plain blank lines", "quoted blank lines", "quoted spanning lines"])
def test_line_numbers_run_on_across_chunk_boundaries(tmp_path, case):
    path = landing(tmp_path, FILES[case])
    expected = read_snapshot(path, DAY)["source_line"].tolist()
    assert len(expected) == len(ROWS) and expected == sorted(expected)
    for chunk_rows in (1, 3, 4):
        chunks = list(open_snapshot(path, DAY).chunks(chunk_rows))
        firsts = [int(c["source_line"].iloc[0]) for c in chunks]
        assert firsts == expected[::chunk_rows], chunk_rows
        assert [line for c in chunks for line in c["source_line"]] == expected
    if case == "plain blank lines":  # blank lines after original lines 1, 4, 5, 11, 24
        assert expected == [3, 4, 5, 7, *range(9, 15), *range(16, 29)]
    if case == "quoted spanning lines":  # row 3 spans 2 lines, row 10 spans 3; blank after lines 5 and 17
        assert expected[:5] == [2, 3, 4, 7, 8] and expected[9:13] == [13, 16, 17, 18] and expected[13] == 20


def test_loaded_at_is_decided_once_for_every_chunk(tmp_path):
    path = landing(tmp_path, FILES["quoted"])
    snapshot = open_snapshot(path, DAY)
    stamps = {stamp for chunk in snapshot.chunks(4) for stamp in chunk["loaded_at"]}
    assert stamps == {snapshot.loaded_at}
    assert {stamp for chunk in snapshot.chunks(7) for stamp in chunk["loaded_at"]} == stamps  # read again: same


def test_a_quote_free_file_is_refused_before_any_chunk(tmp_path):
    lines = csv_bytes(ROWS).split(b"\n")
    lines[22] = lines[22].rsplit(b",", 2)[0]  # line 23 of 24: a short line near the end
    with pytest.raises(SnapshotFileError, match="line 23 has 19 fields"):
        open_snapshot(landing(tmp_path, b"\n".join(lines)), DAY)
    header_only = csv_bytes([])
    with pytest.raises(SnapshotFileError, match="header only, no customer rows"):
        open_snapshot(landing(tmp_path, header_only + b"\n\n"), DAY)
    with pytest.raises(ValueError, match="chunk_rows must be a positive"):
        open_snapshot(landing(tmp_path, FILES["plain LF"]), DAY).chunks(0)


def test_a_quoted_header_only_file_is_refused_when_the_stream_ends(tmp_path):
    path = landing(tmp_path, csv_bytes([], quoting=csv.QUOTE_ALL) + b"\n")
    snapshot = open_snapshot(path, DAY)
    assert snapshot.rows is None
    with pytest.raises(SnapshotFileError, match="header only, no customer rows") as refused:
        list(snapshot.chunks(10))
    assert str(refused.value).startswith(f"{path}: ")


def _late_damage(rows: int, line: int, edit) -> bytes:
    data = csv_bytes(generate_customers(rows, seed=3).astype(str).to_dict("records"), quoting=csv.QUOTE_ALL)
    lines = data.split(b"\n")
    lines[line - 1] = edit(lines[line - 1])
    return b"\n".join(lines)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda line: line.rsplit(b",", 2)[0], "line 1990 has 19 fields, expected 21 (a truncated or damaged line)"),
        (lambda line: line.replace(b'"Yes"', b'"Yes"x', 1).replace(b'"No"', b'"No"x', 1), "line 1990: not valid CSV"),
        (lambda line: line.replace(b'"Male"', b'"' + b"m" * 70_000 + b'"').replace(
            b'"Female"', b'"' + b"m" * 70_000 + b'"'), "line 1990, column 2 (gender) has a value of 70,000 bytes"),
    ],
    ids=["short", "stray quote", "too long"],
)
def test_a_damaged_record_late_in_a_quoted_file_is_raised_with_its_line(tmp_path, edit, message):
    path = landing(tmp_path, _late_damage(2000, 1990, edit))
    snapshot = open_snapshot(path, DAY)  # a file with quotes: records are checked as they stream
    chunks = snapshot.chunks(100)
    produced = 0
    with pytest.raises(SnapshotFileError) as refused:
        for chunk in chunks:
            produced += len(chunk)
    assert produced == 1900  # the rows before the damaged one streamed, chunk by chunk
    assert str(refused.value).startswith(f"{path}: ")
    assert message in str(refused.value)
    with pytest.raises(SnapshotFileError) as whole:
        read_snapshot(path, DAY)
    assert str(whole.value) == str(refused.value)


@pytest.mark.parametrize("quoting", [csv.QUOTE_MINIMAL, csv.QUOTE_ALL], ids=["plain", "quoted"])
def test_a_chunk_of_a_large_file_does_not_hold_the_whole_file(tmp_path, quoting):
    path = tmp_path / f"customers_{DAY}.csv"
    generate_customers(20_000, seed=2).to_csv(path, index=False, quoting=quoting)
    snapshot = open_snapshot(path, DAY)
    tracemalloc.start()
    try:
        sizes = [len(chunk) for chunk in snapshot.chunks(1000)]
        chunked_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        assert len(read_snapshot(path, DAY)) == 20_000
        whole_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(sizes) == 20 and all(size <= 1000 for size in sizes) and sum(sizes) == 20_000
    assert chunked_peak * 3 < whole_peak, (chunked_peak, whole_peak)


# ---- the asset: streamed into one transaction --------------------------------------------------------

def _resources(tmp_path, db_url: str, chunk_rows: int) -> dict:
    settings = dataclasses.replace(
        Settings.from_env(), data_dir=tmp_path, landing_dir=tmp_path / "landing",
        model_dir=tmp_path / "models", db_url=db_url, db_url_from_env=False,
    )
    resources = build_resources(settings)
    pipeline = resources["pipeline"]
    resources["pipeline"] = type(pipeline)(**{**pipeline._get_non_default_public_field_values(),
                                              "chunk_rows": chunk_rows})
    return resources


def _materialization(result) -> dict:
    [event] = result.asset_materializations_for_node("raw_customers")
    return {key: value.value for key, value in event.metadata.items()}


def test_the_asset_streams_the_file_into_the_table(tmp_path, sqlite_url):
    resources = _resources(tmp_path, sqlite_url, chunk_rows=97)
    path = write_snapshot(generate_customers(1000, seed=5, malformed_rate=0.02), tmp_path / "landing", DAY)
    result = dg.materialize([raw_customers], partition_key=DAY, resources=resources)
    assert result.success
    metadata = _materialization(result)
    assert metadata["rows_read"] == 1000 and metadata["dagster/row_count"] == 1000
    assert metadata["file_bytes"] == path.stat().st_size
    assert metadata["source_file"] == str(path)
    stored = TableStore(sqlite_url).read("raw_customers", partition=DAY)
    expected = read_snapshot(path, DAY)
    assert stored["loaded_at"].nunique() == 1
    columns = [c for c in expected.columns if c != "loaded_at"]
    pd.testing.assert_frame_equal(stored[columns].sort_values("source_line").reset_index(drop=True),
                                  expected[columns], check_dtype=False)


def test_a_damaged_record_found_mid_stream_fails_the_run_and_keeps_the_stored_day(tmp_path, db_url):
    resources = _resources(tmp_path, db_url, chunk_rows=50)
    write_snapshot(generate_customers(400, seed=1), tmp_path / "landing", DAY)
    assert dg.materialize([raw_customers], partition_key=DAY, resources=resources).success
    before = TableStore(db_url).read("raw_customers", partition=DAY)
    assert len(before) == 400

    # the next delivery has quotes, so its records are only checked while the chunks are written:
    # line 380 is damaged, after seven chunks of 50 rows went into the (uncommitted) transaction
    path = landing(tmp_path / "landing", _late_damage(600, 380, lambda line: line.rsplit(b",", 3)[0]))
    assert open_snapshot(path, DAY).rows is None
    result = dg.materialize([raw_customers], partition_key=DAY, resources=resources, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "raw_customers"
    message = failure.step_failure_data.error.message
    assert str(path) in message and "line 380 has 18 fields, expected 21" in message, message
    assert not result.asset_materializations_for_node("raw_customers")
    pd.testing.assert_frame_equal(TableStore(db_url).read("raw_customers", partition=DAY), before)
