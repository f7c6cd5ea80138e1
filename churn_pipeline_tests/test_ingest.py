"""Reading landing files: good files load verbatim; broken files stop with file, line and column."""

from __future__ import annotations

import pytest

from churn_pipeline.constants import TELCO_COLUMNS
from churn_pipeline.logic.ingest import SnapshotFileError, read_snapshot, snapshot_path
from churn_pipeline.schemas import RawCustomers
from churn_pipeline_tests.helpers import telco_rows, write_csv


def test_a_good_file_loads_every_value_verbatim_with_line_numbers(tmp_path):
    rows = telco_rows({}, {"TotalCharges": " ", "tenure": "0"}, {"MonthlyCharges": " 19.90 "})
    path = write_csv(tmp_path / "customers_2024-03-01.csv", rows)
    raw = read_snapshot(path, "2024-03-01")
    RawCustomers.validate(raw)
    assert list(raw.columns[4:]) == list(TELCO_COLUMNS)
    assert raw["source_line"].tolist() == [2, 3, 4]
    assert raw["TotalCharges"].tolist() == ["1020.30", " ", "1020.30"]
    assert raw["MonthlyCharges"].iloc[2] == " 19.90 "  # not normalised here: raw means as delivered
    assert (raw["snapshot_date"] == "2024-03-01").all()


def test_real_telco_sample_loads(telco_sample_path):
    raw = read_snapshot(telco_sample_path, "2024-03-01")
    assert len(raw) == 5634
    assert (raw["TotalCharges"].str.strip() == "").sum() == 8


def test_utf8_bom_is_accepted(tmp_path):
    path = write_csv(tmp_path / "f.csv", telco_rows({}))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_snapshot(path, "2024-03-01")["customerID"].tolist() == ["0000-TESTX"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (",".join(TELCO_COLUMNS).encode() + b"\n", "header only"),
        (";".join(TELCO_COLUMNS).encode() + b"\n1;2\n", "not comma-separated"),
        (",".join(c for c in TELCO_COLUMNS if c != "tenure").encode() + b"\n", "missing columns ['tenure']"),
        (",".join([*TELCO_COLUMNS, "Extra"]).encode() + b"\n", "unexpected columns ['Extra']"),
        (",".join(TELCO_COLUMNS).replace("Contract", "Contract_Type").encode() + b"\n",
         "missing columns ['Contract']"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1"),
    ],
    ids=["empty", "header-only", "semicolons", "missing-column", "extra-column", "renamed-column", "binary"],
)
def test_file_level_problems_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "customers_2024-03-01.csv"
    path.write_bytes(content)
    with pytest.raises(SnapshotFileError) as error:
        read_snapshot(path, "2024-03-01")
    assert str(path) in str(error.value)
    assert message in str(error.value)


def test_a_line_with_too_many_fields_is_named(tmp_path):
    path = write_csv(tmp_path / "f.csv", telco_rows({}, {}))
    with path.open("a") as handle:
        handle.write(",".join(["x"] * 25) + "\n")
    with pytest.raises(SnapshotFileError, match="line 4"):
        read_snapshot(path, "2024-03-01")


def test_missing_file_and_bad_dates(tmp_path):
    with pytest.raises(SnapshotFileError, match="no snapshot file"):
        read_snapshot(tmp_path / "customers_2024-03-01.csv", "2024-03-01")
    with pytest.raises(ValueError, match="not YYYY-MM-DD"):
        snapshot_path(tmp_path, "01/03/2024")
    with pytest.raises(ValueError):
        snapshot_path(tmp_path, "2024-02-30")
    assert snapshot_path(tmp_path, "2024-03-01").name == "customers_2024-03-01.csv"
