"""Hostile input, as an operator meets it.

- A broken file stops the run before anything is written, with an error naming the file, the line
  and (where there is one) the column; every table keeps the day's previous rows.
- A bad row goes to ``rejected_customers`` with its reason codes and its original values verbatim;
  harmless variants (surrounding whitespace, ASCII letter case) are normalised instead.
- Nothing is lost in between: rows read = clean + rejected, checked here on random corruptions too.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import gzip
import io
import json
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churn_pipeline.assets import ALL_ASSETS
from churn_pipeline.constants import CATEGORY_VALUES, TELCO_COLUMNS
from churn_pipeline.definitions import build_resources
from churn_pipeline.logic import cleaning
from churn_pipeline.logic.cleaning import REASON_CODES, clean_snapshot
from churn_pipeline.logic.ingest import MAX_FIELD_BYTES, SnapshotFileError, read_snapshot
from churn_pipeline.schemas import TABLES, CleanCustomers, RawCustomers, RejectedCustomers
from churn_pipeline.settings import Settings
from churn_pipeline.storage import TableStore
from churn_pipeline.synthetic import generate_customers, write_snapshot
from churn_pipeline_tests.helpers import raw_frame, telco_rows

DAY = "2024-03-01"
ROWS: list[dict[str, str]] = generate_customers(12, seed=11).astype(str).to_dict("records")
MARK = "MARK"  # put into line 5, column 9 (InternetService), then replaced by the bytes under test
NUMBER_COLUMNS = ("tenure", "MonthlyCharges", "TotalCharges")
PROPERTY_SETTINGS = settings(max_examples=80, deadline=None, database=None)


def csv_bytes(rows: list[dict[str, str]], line_end: str = "\n", quoting: int = csv.QUOTE_MINIMAL,
              header: tuple[str, ...] = TELCO_COLUMNS) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end, quoting=quoting)
    writer.writerow(header)
    writer.writerows([[row[c] for c in header] for row in rows])
    return buffer.getvalue().encode("utf-8")


def marked(replacement: bytes) -> bytes:
    rows = [dict(row) for row in ROWS]
    rows[3]["InternetService"] = MARK
    return csv_bytes(rows).replace(MARK.encode(), replacement)


def with_line(data: bytes, line: int, edit) -> bytes:
    lines = data.split(b"\n")
    lines[line - 1] = edit(lines[line - 1])
    return b"\n".join(lines)


def landing(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / f"customers_{DAY}.csv"
    path.write_bytes(data)
    return path


# ---- file level: stop before anything is written, naming file, line and column ---------------------

GOOD = csv_bytes(ROWS)
HEADER = csv_bytes([])
BROKEN_FILES = {
    "empty": (b"", ["empty file"]),
    "header only": (HEADER, ["header only"]),
    "BOM + header only": (codecs.BOM_UTF8 + HEADER, ["header only"]),
    "missing column": (csv_bytes(ROWS, header=TELCO_COLUMNS[:-1]), ["line 1 (header)", "missing columns ['Churn']"]),
    "renamed column": (GOOD.replace(b"Contract", b"ContractType", 1),
                       ["line 1 (header)", "missing columns ['Contract']", "unexpected columns ['ContractType']"]),
    "extra column": (with_line(GOOD, 1, lambda line: line + b",Notes"), ["unexpected columns ['Notes']"]),
    "semicolons": (GOOD.replace(b",", b";"), ["line 1 is not comma-separated"]),
    "tabs": (GOOD.replace(b",", b"\t"), ["line 1 is not comma-separated"]),
    "UTF-16": (GOOD.decode().encode("utf-16"), ["line 1 is not UTF-8"]),
    "gzip, not a CSV": (gzip.compress(GOOD), ["line 1 is not UTF-8"]),
    "JSON, not a CSV": (b'{"customers": [1, 2]}\n', ["line 1 (header)", "missing columns"]),
    "Latin-1 byte": (marked("Fibér".encode("latin-1")),
                     ["line 5, column 9 (InternetService) is not UTF-8", "byte 0xe9"]),
    "NUL byte": (marked(b"Fi\x00ber"), ["line 5, column 9 (InternetService) contains a NUL byte"]),
    "bare CR": (marked(b"Fi\rber"), ["line 5, column 9 (InternetService) has a carriage return"]),
    "short line": (with_line(GOOD, 5, lambda line: line.rsplit(b",", 3)[0]),
                   ["line 5 has 18 fields, expected 21", "truncated or damaged"]),
    "ragged long line": (with_line(GOOD, 5, lambda line: line + b",x"), ["line 5 has 22 fields, expected 21"]),
    "truncated last line": (GOOD[:-25], ["line 13, the last, does not end with a line break", "truncated"]),
    "no final line break": (GOOD[:-1], ["line 13, the last, does not end with a line break"]),
    "unterminated quote": (marked(b'"Fiber'), ["line 5: not valid CSV"]),
    "stray quote": (marked(b'"Fiber"optic'), ["line 5: not valid CSV"]),
    "100 KB value": (marked(b"x" * 100_000), ["line 5, column 9 (InternetService) has a value of 100,000 bytes"]),
    "100 KB quoted value": (marked(b'"' + b"x" * 100_000 + b'"'),
                            ["line 5, column 9 (InternetService) has a value of 100,000 bytes"]),
    "64 KB + 1 byte value": (marked(b"y" * (MAX_FIELD_BYTES + 1)), ["line 5, column 9", "65,536 bytes"]),
}


@pytest.mark.parametrize("case", list(BROKEN_FILES))
def test_a_broken_file_is_refused_naming_file_line_and_column(tmp_path, case):
    data, fragments = BROKEN_FILES[case]
    path = landing(tmp_path, data)
    with pytest.raises(SnapshotFileError) as refused:
        read_snapshot(path, DAY)
    message = str(refused.value)
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_a_file_larger_than_the_configured_limit_is_refused(tmp_path, monkeypatch):
    path = landing(tmp_path, GOOD)
    monkeypatch.setenv("CHURN_MAX_SNAPSHOT_BYTES", "1000")
    with pytest.raises(SnapshotFileError, match=rf"{len(GOOD):,} bytes is larger than the 1,000-byte limit"):
        read_snapshot(path, DAY)
    monkeypatch.setenv("CHURN_MAX_SNAPSHOT_BYTES", "lots")
    with pytest.raises(ValueError, match="CHURN_MAX_SNAPSHOT_BYTES='lots' is not a whole number"):
        read_snapshot(path, DAY)
    monkeypatch.setenv("CHURN_MAX_SNAPSHOT_BYTES", str(len(GOOD)))
    assert len(read_snapshot(path, DAY)) == len(ROWS)


def _values(raw: pd.DataFrame) -> list[dict[str, str]]:
    return raw[list(TELCO_COLUMNS)].to_dict("records")


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (GOOD, list(range(2, 14))),
        (csv_bytes(ROWS, line_end="\r\n"), list(range(2, 14))),
        (codecs.BOM_UTF8 + csv_bytes(ROWS, line_end="\r\n"), list(range(2, 14))),
        (csv_bytes(ROWS, quoting=csv.QUOTE_ALL), list(range(2, 14))),
        (with_line(GOOD, 4, lambda line: b"\n" + line) + b"\r\n\n", [2, 3, *range(5, 15)]),  # blank lines skipped
        (csv_bytes(ROWS, header=TELCO_COLUMNS[::-1]), list(range(2, 14))),  # columns in another order
    ],
    ids=["LF", "CRLF", "BOM+CRLF", "all quoted", "blank lines", "columns reordered"],
)
def test_harmless_file_variants_load_verbatim_with_their_line_numbers(tmp_path, data, lines):
    raw = read_snapshot(landing(tmp_path, data), DAY)
    RawCustomers.validate(raw)
    assert raw["source_line"].tolist() == lines
    assert _values(raw) == ROWS


def test_a_quoted_value_spanning_lines_keeps_every_line_number_right(tmp_path):
    rows = [dict(row) for row in ROWS]
    rows[1]["gender"] = "Fe\nmale"  # line 3, continued on line 4
    rows[4]["Contract"] = "Month-\r\nto-\r\nmonth"  # line 7, continued on lines 8 and 9
    raw = read_snapshot(landing(tmp_path, csv_bytes(rows)), DAY)
    assert raw["source_line"].tolist() == [2, 3, 5, 6, 7, 10, 11, 12, 13, 14, 15, 16]
    assert _values(raw) == rows  # verbatim, line breaks included
    _, rejected = clean_snapshot(raw)
    assert dict(zip(rejected["source_line"], rejected["reason_codes"])) == {3: "unknown_category",
                                                                            7: "unknown_category"}


def test_the_largest_allowed_value_loads(tmp_path):
    raw = read_snapshot(landing(tmp_path, marked(b"y" * MAX_FIELD_BYTES)), DAY)
    assert len(raw["InternetService"].iloc[3]) == MAX_FIELD_BYTES


# ---- row level: rejected with reason and original values, or normalised --------------------------

def test_the_rows_corrupted_below_are_all_valid_to_start_with():
    clean, rejected = clean_snapshot(raw_frame(ROWS))
    assert rejected.empty and len(clean) == len(ROWS)


def _one_row(override: dict) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    rows = telco_rows({}, override)
    clean, rejected = clean_snapshot(raw_frame(rows))
    CleanCustomers.validate(clean)
    RejectedCustomers.validate(rejected)
    return clean, rejected, rows


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ({"Contract": "Month-to-month\u200b"}, "unknown_category"),  # zero-width space
        ({"Partner": "\u200fYes"}, "unknown_category"),  # right-to-left mark
        ({"Dependents": "\ufeffNo"}, "unknown_category"),  # BOM inside the file
        ({"gender": "Female 😀"}, "unknown_category"),
        ({"gender": "Fe\u0301male"}, "unknown_category"),  # combining accent
        ({"gender": "\u041cale"}, "unknown_category"),  # Cyrillic capital M
        ({"Partner": "ＹＥＳ"}, "unknown_category"),  # fullwidth letters
        ({"PaymentMethod": "Electronic chec\u212a"}, "unknown_category"),  # Kelvin sign lowers to k
        ({"InternetService": "Fiber\xa0optic"}, "unknown_category"),  # no-break space inside
        ({"StreamingTV": "x" * 60_000}, "unknown_category"),
        ({"SeniorCitizen": "１"}, "unknown_category"),
        ({"Churn": "Ｙes"}, "bad_label"),
        ({"tenure": "１２"}, "bad_number"),  # fullwidth digits
        ({"tenure": "١٢"}, "bad_number"),  # Arabic-Indic digits
        ({"tenure": "1_2"}, "bad_number"),
        ({"MonthlyCharges": "1,020.30"}, "bad_number"),
        ({"MonthlyCharges": "0x55"}, "bad_number"),
        ({"MonthlyCharges": "NaN"}, "bad_number"),
        ({"MonthlyCharges": "-Infinity"}, "bad_number"),
        ({"MonthlyCharges": "1e400"}, "bad_number"),
        ({"MonthlyCharges": "9" * 5000}, "bad_number"),
        ({"MonthlyCharges": "85.50\u200b"}, "bad_number"),
        ({"MonthlyCharges": "1e308"}, "out_of_range"),
        ({"MonthlyCharges": "-0.01"}, "out_of_range"),
        ({"tenure": "99999999999999999999"}, "out_of_range"),
        ({"TotalCharges": "1e15"}, "out_of_range"),
        ({"customerID": "0001-AB\u200bCDE"}, "bad_customer_id"),
        ({"customerID": "0001 ABCDE"}, "bad_customer_id"),
        ({"customerID": "0001-ABCDE😀"}, "bad_customer_id"),
        ({"customerID": "0001-ＡBCDE"}, "bad_customer_id"),
        ({"customerID": "\x00"}, "bad_customer_id"),
        ({"customerID": "C" * 65}, "id_too_long"),
        ({"tenure": " ", "MonthlyCharges": ""}, "missing_value"),
    ],
)
def test_odd_values_are_rejected_with_a_reason_and_the_row_verbatim(override, code):
    clean, rejected, rows = _one_row(override)
    assert clean["customer_id"].tolist() == ["0000-TESTX"]
    [row] = rejected.to_dict("records")
    assert code in row["reason_codes"].split(",")
    assert json.loads(row["original_values"]) == rows[1]
    assert len(row["reasons"]) < 2000  # a 60 KB value is quoted, not copied, into the reason


@pytest.mark.parametrize(
    ("override", "column", "expected"),
    [
        ({"Partner": "\xa0Yes\xa0"}, "partner", True),  # no-break spaces around
        ({"gender": "\tMale\u3000"}, "gender", "Male"),  # tab, ideographic space
        ({"Contract": "Two year\n"}, "contract", "Two year"),  # a quoted line break at the edge
        ({"InternetService": "FIBER OPTIC"}, "internet_service", "Fiber optic"),
        ({"SeniorCitizen": "yes"}, "senior_citizen", True),
        ({"tenure": "+12"}, "tenure_months", 12),
        ({"tenure": "12.0"}, "tenure_months", 12),
        ({"MonthlyCharges": "8.55E+01"}, "monthly_charges", 85.5),
        ({"customerID": " 0001-ABCDE "}, "customer_id", "0001-ABCDE"),
    ],
)
def test_harmless_variants_are_normalised(override, column, expected):
    clean, rejected, _ = _one_row(override)
    assert rejected.empty, rejected["reasons"].tolist()
    assert clean.iloc[1][column] == expected


def test_negative_zero_is_stored_as_zero():
    clean, _, _ = _one_row({"tenure": "-0", "TotalCharges": "-0.0"})
    assert not np.signbit(clean["total_charges"]).any() and clean.iloc[1]["tenure_months"] == 0


def test_ids_differing_only_in_letter_case_are_one_customer_in_conflict():
    # MySQL compares ids ignoring case: both rows in clean_customers would break its primary key.
    clean, rejected = clean_snapshot(raw_frame(telco_rows({"customerID": "0001-ABCDE"}, {"customerID": "0001-abcde"},
                                                          {"customerID": "0002-ABCDE"})))
    assert clean["customer_id"].tolist() == ["0002-ABCDE"]
    assert rejected["reason_codes"].tolist() == ["duplicate_conflict", "duplicate_conflict"]


def test_the_documented_reason_codes_are_those_in_use():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Input files and cleaning rules")[1].split("\n## ")[0]
    for code in REASON_CODES:
        assert f"`{code}`" in section and f"``{code}``" in cleaning.__doc__, code


@pytest.mark.mysql
@pytest.mark.parametrize("bulk_method", ["load_data", "executemany"])
def test_the_longest_values_a_file_may_hold_are_stored_verbatim_on_mysql(tmp_path, mysql_url, bulk_method):
    """Raw values are TEXT (64 KB): longer ones are refused with the file. The JSON of a row of such
    values (control characters escaped six-fold) needs original_values' MEDIUMTEXT."""
    rows = [dict(row) for row in ROWS]
    rows[2] = {column: "\x01" * MAX_FIELD_BYTES for column in TELCO_COLUMNS}  # 1.4 MB line, 8 MB of JSON
    rows[3]["StreamingTV"] = "é" * (MAX_FIELD_BYTES // 2)  # two bytes each
    rows[4]["customerID"] = "0004-abcde"
    rows[5]["customerID"] = "0004-ABCDE"  # the same key for MySQL's collation
    raw = read_snapshot(landing(tmp_path, csv_bytes(rows)), DAY)
    clean, rejected = clean_snapshot(raw)
    assert len(clean) == len(rows) - 4 and sorted(rejected["source_line"]) == [4, 5, 6, 7]

    store = TableStore(mysql_url, bulk_method=bulk_method)
    store.write({"raw_customers": raw}, partition=DAY)
    store.write({"clean_customers": clean, "rejected_customers": rejected}, partition=DAY)
    assert _values(store.read("raw_customers", partition=DAY)) == rows
    back = store.read("rejected_customers", partition=DAY)
    assert [json.loads(v) for v in back["original_values"]] == rows[2:6]
    assert back["customer_id"].iloc[0] == "\x01" * MAX_FIELD_BYTES
    assert len(store.read("clean_customers", partition=DAY)) == len(clean)


# ---- property-based: random corruptions of rows and of whole files ----------------------------------

ALLOWED = {**CATEGORY_VALUES, "SeniorCitizen": ("0", "1", "No", "Yes"), "Churn": ("Yes", "No", "")}
ODD_VALUES = ["", " ", "\xa0", "nan", "NaN", "inf", "-inf", "1e400", "-1", "-0", "0", "1e9", "１２", "١٢",
              "\u200b", "\u200f", "\ufeff", "😀", "e\u0301", "\x00", "\x1f", "\n", '"', "'; DROP TABLE x; --",
              "%s", "\\N", "NULL", "x" * 3000, "Yes", "yes", "No", "DSL", "Month-to-month", "０"]


def _variant(value: str) -> st.SearchStrategy[str]:
    """Harmless and harmful spellings of a valid value."""
    return st.sampled_from([value.upper(), value.lower(), f" {value}\xa0", f"\u3000{value}\t", f"{value}\u200b",
                            f"\u200f{value}", value.replace("e", "ｅ"), value[:-1]])


def _hostile_value(column: str, value: str) -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=20), st.sampled_from(ODD_VALUES), _variant(value),
                     st.sampled_from(ALLOWED.get(column, ("12", "0", "85.5"))))


@st.composite
def corrupted_rows(draw) -> tuple[list[dict[str, str]], set[int]]:
    rows = [dict(row) for row in ROWS]
    touched: set[int] = set()
    for _ in range(draw(st.integers(1, 8))):
        index = draw(st.integers(0, len(rows) - 1))
        column = draw(st.sampled_from(TELCO_COLUMNS))
        rows[index][column] = draw(_hostile_value(column, rows[index][column]))
        touched.add(index)
    for _ in range(draw(st.integers(0, 2))):  # a repeated customer, as is or with another value
        copy = dict(rows[draw(st.integers(0, len(rows) - 1))])
        if draw(st.booleans()):
            copy["MonthlyCharges"] = draw(st.sampled_from(["19.99", copy["MonthlyCharges"]]))
        touched.add(len(rows))
        rows.append(copy)
    return rows, touched


def _definitely_bad(column: str, value: str, row: dict[str, str]) -> bool:
    """An oracle independent of the cleaning code, for values no rule may accept."""
    text = value.strip()
    if column in ALLOWED:
        return text.lower() not in {a.lower() for a in ALLOWED[column]}
    if column in NUMBER_COLUMNS:
        if column == "TotalCharges" and text == "":
            try:
                return float(row["tenure"].strip()) != 0  # blank is fine for a new customer
            except ValueError:
                return True
        try:
            float(text)
        except ValueError:
            return True
    return column == "customerID" and (text == "" or len(text) > 64)


@PROPERTY_SETTINGS
@given(corrupted_rows())
def test_property_every_corrupted_row_ends_clean_or_rejected_with_its_values(case):
    rows, touched = case
    raw = raw_frame(rows)
    clean, rejected = clean_snapshot(raw)

    assert len(clean) + len(rejected) == len(raw)  # rows_accounted
    CleanCustomers.validate(clean)
    RejectedCustomers.validate(rejected)
    assert rejected["source_line"].is_unique and set(rejected["source_line"]) <= set(raw["source_line"])
    assert clean["customer_id"].str.upper().is_unique
    for line, codes, original in rejected[["source_line", "reason_codes", "original_values"]].itertuples(index=False):
        assert json.loads(original) == rows[line - 2]  # verbatim
        assert codes and set(codes.split(",")) <= set(REASON_CODES)

    rejected_lines = set(rejected["source_line"])
    keys = pd.Series([row["customerID"].strip().upper() for row in rows])
    for index, row in enumerate(rows):
        if index not in touched and (keys == keys[index]).sum() == 1:
            assert index + 2 not in rejected_lines, (row, rejected)  # a good row is never collateral damage
        bad = [c for c in TELCO_COLUMNS if _definitely_bad(c, row[c], row)]
        if bad:
            reasons = rejected.loc[rejected["source_line"] == index + 2, "reasons"]
            assert len(reasons) == 1 and bad[0] in reasons.iloc[0], (bad, row)


@st.composite
def harmless_files(draw) -> tuple[bytes, list[int], list[dict[str, str]]]:
    """A valid file written any legal way (line ends, BOM, quoting, column order, blank lines, values
    with commas, quotes and line breaks), with the line each record starts on counted as it is written."""
    rows = [dict(row) for row in ROWS]
    for _ in range(draw(st.integers(0, 4))):
        row, column = draw(st.integers(0, len(rows) - 1)), draw(st.sampled_from(TELCO_COLUMNS))
        rows[row][column] = draw(st.sampled_from(["a\nb", "a\r\nb\r\n", '"quoted"', "x, y", "\n", '"', "é"]))
    line_end = draw(st.sampled_from(["\n", "\r\n"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    header = draw(st.permutations(TELCO_COLUMNS))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end, quoting=quoting)
    writer.writerow(header)
    text, lines = [buffer.getvalue()], []
    line = 2
    for row in rows:
        blank = line_end * draw(st.integers(0, 2) if draw(st.integers(0, 3)) == 0 else st.just(0))
        text.append(blank)
        line += blank.count("\n")
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator=line_end, quoting=quoting).writerow([row[c] for c in header])
        text.append(buffer.getvalue())
        lines.append(line)
        line += buffer.getvalue().count("\n")
    data = "".join(text).encode()
    return (codecs.BOM_UTF8 if draw(st.booleans()) else b"") + data, lines, rows


@PROPERTY_SETTINGS
@given(harmless_files())
def test_property_a_valid_file_written_any_legal_way_loads_verbatim_with_its_line_numbers(case):
    data, lines, rows = case
    with tempfile.TemporaryDirectory() as folder:
        raw = read_snapshot(landing(Path(folder), data), DAY)
    assert raw["source_line"].tolist() == lines
    assert _values(raw) == rows


INSERTS = [b",", b'"', b'""', b"\n", b"\r", b"\r\n", b"\x00", b"\xff", b"\xc3", "é".encode(), "\u200b".encode(),
           b" ", b";", b"\t", codecs.BOM_UTF8, b"x" * 70_000]


@st.composite
def corrupted_files(draw) -> bytes:
    data = bytearray(draw(st.sampled_from([GOOD, csv_bytes(ROWS, line_end="\r\n"),
                                           csv_bytes(ROWS, quoting=csv.QUOTE_ALL)])))
    header_end = data.index(b"\n") + 1
    for _ in range(draw(st.integers(1, 4))):
        # mostly past the header: a broken header is refused at once, the lines below are the hard part
        at = draw(st.integers(0 if draw(st.integers(0, 9)) == 0 else min(header_end, len(data)), len(data)))
        kind = draw(st.sampled_from(["insert", "insert", "delete", "replace", "truncate", "duplicate line",
                                     "re-encode"]))
        if kind == "insert":
            data[at:at] = draw(st.one_of(st.sampled_from(INSERTS), st.binary(min_size=1, max_size=3)))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        elif kind == "replace" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate line":
            lines = bytes(data).split(b"\n")
            index = draw(st.integers(0, len(lines) - 1))
            data = bytearray(b"\n".join([*lines[:index + 1], *lines[index:]]))
        elif kind == "re-encode":
            text = bytes(data).decode("utf-8", errors="replace")
            data = bytearray(text.encode(draw(st.sampled_from(["latin-1", "utf-16", "utf-8-sig"])), errors="replace"))
    return bytes(data)


def _reference_records(data: bytes) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(line a record starts on, its values) by the csv module: the CSV standard we hold the reader to."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    header = next(reader)
    records, start = [], reader.line_num + 1
    for row in reader:
        if row:
            records.append((start, dict(zip(header, row))))
        start = reader.line_num + 1
    return header, records


@PROPERTY_SETTINGS
@given(corrupted_files())
def test_property_a_corrupted_file_loads_with_right_line_numbers_or_is_refused_naming_it(data):
    with tempfile.TemporaryDirectory() as folder:
        path = landing(Path(folder), data)
        try:
            raw = read_snapshot(path, DAY)
        except SnapshotFileError as error:
            assert str(error).startswith(f"{path}: "), error
            return
    RawCustomers.validate(raw)
    header, expected = _reference_records(data)
    assert list(zip(raw["source_line"], _values(raw))) == [(line, {c: r[c] for c in TELCO_COLUMNS})
                                                           for line, r in expected]
    physical = data.decode("utf-8-sig").split("\n")
    for line, values in zip(raw["source_line"], _values(raw)):  # the record starts on its line
        assert physical[line - 1].startswith((values[header[0]].split("\n")[0], '"'))
    clean, rejected = clean_snapshot(raw)
    assert len(clean) + len(rejected) == len(raw)
    CleanCustomers.validate(clean)
    RejectedCustomers.validate(rejected)


# ---- the graph: a broken file for a stored day fails the run and changes nothing --------------------

def _day_rows(url: str) -> dict[str, pd.DataFrame]:
    store = TableStore(url)
    return {name: store.read(name, partition=DAY if spec.partition_column == "snapshot_date" else None)
            for name, spec in TABLES.items()}


@pytest.mark.mysql
def test_a_broken_delivery_for_a_stored_day_fails_the_run_and_keeps_every_table(tmp_path, mysql_url, monkeypatch):
    settings_ = dataclasses.replace(
        Settings.from_env(), data_dir=tmp_path, landing_dir=tmp_path / "landing", model_dir=tmp_path / "models",
        db_url=mysql_url, db_url_from_env=False, model_candidates="logistic_regression",
    )
    path = write_snapshot(generate_customers(1500, seed=1, malformed_rate=0.01), settings_.landing_dir, DAY)
    assert dg.materialize(ALL_ASSETS, partition_key=DAY, resources=build_resources(settings_)).success
    before = _day_rows(mysql_url)
    assert all(len(before[name]) for name in TABLES)
    good = path.read_bytes()
    deliveries = {
        "short line": (with_line(good, 40, lambda line: line.rsplit(b",", 2)[0]), "line 40 has 19 fields"),
        "Latin-1": (good.replace(b"Fiber optic", "Fibér optic".encode("latin-1"), 1), "is not UTF-8"),
        "NUL": (good.replace(b"Mailed check", b"Mailed\x00check", 1), "contains a NUL byte"),
        "truncated": (good[:-7], "does not end with a line break"),
        "missing column": (good.replace(b",Churn\n", b"\n", 1), "missing columns ['Churn']"),
        "too large": (good, "-byte limit"),
    }
    for case, (data, message) in deliveries.items():
        path.write_bytes(data)
        if case == "too large":
            monkeypatch.setenv("CHURN_MAX_SNAPSHOT_BYTES", str(len(good) - 1))
        result = dg.materialize(ALL_ASSETS, partition_key=DAY, resources=build_resources(settings_),
                                raise_on_error=False)
        assert not result.success, case
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert failure.step_key == "raw_customers", case
        error = failure.step_failure_data.error.message
        assert str(path) in error and message in error, (case, error)
        after = _day_rows(mysql_url)
        for name in TABLES:
            pd.testing.assert_frame_equal(after[name], before[name], obj=f"{case}: {name}")
