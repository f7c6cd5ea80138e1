"""Reading a landing file into ``raw_customers`` rows: every value kept verbatim as text.

File-level problems (no file, not UTF-8, wrong delimiter, missing or extra columns, no rows, a ragged
line) raise :class:`SnapshotFileError` naming the file, line and column before anything is written.
Row-level problems are left to :mod:`churn_pipeline.logic.cleaning`.
"""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from churn_pipeline.constants import TELCO_COLUMNS, snapshot_file_name

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A snapshot far larger than any customer base we serve is a delivery mistake, not data.
MAX_FILE_BYTES = 8 * 1024**3


class SnapshotFileError(ValueError):
    """The landing file cannot be read as a Telco snapshot; nothing was loaded from it."""


def snapshot_path(landing_dir: str | Path, snapshot_date: str) -> Path:
    if not _DATE.match(snapshot_date):
        raise ValueError(f"snapshot date {snapshot_date!r} is not YYYY-MM-DD")
    datetime.strptime(snapshot_date, "%Y-%m-%d")  # raises on 2024-02-30
    return Path(landing_dir) / snapshot_file_name(snapshot_date)


def read_snapshot(path: str | Path, snapshot_date: str, loaded_at: datetime | None = None) -> pd.DataFrame:
    """The file's rows as ``raw_customers``: the 21 Telco columns as text plus load metadata."""
    path = Path(path)
    if not path.is_file():
        raise SnapshotFileError(f"{path}: no snapshot file for {snapshot_date} (expected {path.name})")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise SnapshotFileError(f"{path}: {size:,} bytes is larger than the {MAX_FILE_BYTES:,}-byte limit")
    header = _read_header(path)
    _check_header(path, header)
    try:
        frame = pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
            engine="c", quoting=csv.QUOTE_MINIMAL, skip_blank_lines=False,
        )
    except pd.errors.ParserError as error:
        raise SnapshotFileError(f"{path}: {error}") from None
    except UnicodeDecodeError as error:
        raise SnapshotFileError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if frame.empty:
        raise SnapshotFileError(f"{path}: header only, no customer rows")
    # Short lines leave NaN: keep them as blanks so cleaning rejects them by line number.
    frame = frame[list(TELCO_COLUMNS)].fillna("")
    meta = pd.DataFrame(
        {
            "snapshot_date": pd.Series(pd.Timestamp(snapshot_date), index=frame.index, dtype="datetime64[ns]"),
            "source_line": pd.RangeIndex(2, len(frame) + 2),
            "source_file": path.name,
            "loaded_at": pd.Series(_utc_naive(loaded_at), index=frame.index, dtype="datetime64[ns]"),
        },
        index=frame.index,
    )
    return pd.concat([meta, frame], axis=1).reset_index(drop=True)


def _utc_naive(moment: datetime | None) -> pd.Timestamp:
    stamp = pd.Timestamp(moment or datetime.now(UTC))
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _read_header(path: Path) -> list[str]:
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:
            first = handle.readline()
    except UnicodeDecodeError as error:
        raise SnapshotFileError(f"{path}: line 1 is not UTF-8 text ({error.reason})") from None
    if not first.strip():
        raise SnapshotFileError(f"{path}: empty file (no header line)")
    if "\x00" in first:
        raise SnapshotFileError(f"{path}: line 1 contains NUL bytes; not a CSV text file")
    return next(csv.reader([first]))


def _check_header(path: Path, header: list[str]) -> None:
    names = [h.strip() for h in header]
    if len(names) == 1 and any(sep in names[0] for sep in (";", "\t", "|")):
        raise SnapshotFileError(f"{path}: line 1 is not comma-separated (found {names[0][:60]!r})")
    missing = [c for c in TELCO_COLUMNS if c not in names]
    extra = [c for c in names if c not in TELCO_COLUMNS]
    duplicated = sorted({c for c in names if names.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"unexpected columns {extra}")
    if duplicated:
        problems.append(f"repeated columns {duplicated}")
    if problems:
        raise SnapshotFileError(f"{path}: line 1 (header): " + "; ".join(problems))
    if names != header:
        raise SnapshotFileError(f"{path}: line 1 (header): column names have surrounding spaces")
