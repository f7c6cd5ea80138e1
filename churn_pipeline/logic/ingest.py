"""Reading a landing file into ``raw_customers`` rows: every value kept verbatim as text.

A file that is not a clean Telco CSV stops the run with :class:`SnapshotFileError`, naming the file,
the line and (where there is one) the column, before anything is written: a half-read file would
silently drop customers, and partial rows cannot be told apart from real blanks later. Checked:

- no file, larger than ``CHURN_MAX_SNAPSHOT_BYTES`` (default 8 GiB), empty, header only;
- the header (line 1): exactly the 21 Telco columns, comma-separated (any order);
- bytes: UTF-8 (a BOM at the start is fine), no NUL byte, no carriage return except in a CRLF line
  end (a bare CR would make "line N" mean different things to different tools);
- records: exactly 21 fields each (a short line is a truncated or damaged line: the C parser would
  pad it with blanks), no value longer than :data:`MAX_FIELD_BYTES`, and a line break after the
  last line (without one the file may have been cut off in transfer). Blank lines hold no customer
  and are skipped.

Line numbers are physical lines of the file (header = 1), also when a quoted value spans lines: a
file without any ``"`` is parsed by pandas' C parser after a vectorised byte scan (the common,
fast case), a file with quotes by the ``csv`` module, which reports where each record starts.
Row-level problems are left to :mod:`churn_pipeline.logic.cleaning`.

Chunked reading: :func:`open_snapshot` does every file-level check up front (the file, its size,
the header and the byte scan, which reads the file in 16 MiB blocks and keeps only the line numbers
of the data lines) and returns a :class:`Snapshot`, whose :meth:`Snapshot.chunks` streams the rows
as DataFrames of at most ``chunk_rows`` rows, in file order, with the columns and values
:func:`read_snapshot` returns (which is their concatenation). Memory is bounded by one chunk, never
the whole file: at 5 million customers the snapshot as Python strings would take ~5 GB.

- A quote-free file has been checked line by line by the scan: every file-level error (including
  "header only") is raised by :func:`open_snapshot`, before any row is produced; pandas' C parser
  then reads it ``chunk_rows`` rows at a time, and the line numbers come from the scan in order. If
  the parser and the scan disagree on the number of rows (the file changed in between), the stream
  stops with :class:`SnapshotFileError`.
- A file with quotes is checked record by record by the ``csv`` module as the chunks are produced:
  a damaged record late in the file is raised (with its line number) after earlier chunks were
  yielded, and a file without a record raises "header only" when the stream ends. Whoever writes
  the chunks must therefore write them in one transaction and roll back on error (as the IO
  manager does with :class:`~churn_pipeline.storage.FrameChunks`).
"""

from __future__ import annotations

import csv
import numbers
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from churn_pipeline.constants import TELCO_COLUMNS, snapshot_file_name
from churn_pipeline.settings import int_env

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A snapshot far larger than any customer base we serve is a delivery mistake, not data.
DEFAULT_MAX_FILE_BYTES = 8 * 1024**3
MAX_FILE_BYTES_ENV = "CHURN_MAX_SNAPSHOT_BYTES"
# raw_customers keeps each delivered value in a MySQL TEXT column (at most 65,535 bytes): a longer
# value could not be stored verbatim, and no Telco value is anywhere near it.
MAX_FIELD_BYTES = 65_535
_FIELDS = len(TELCO_COLUMNS)
_MAX_LINE_BYTES = _FIELDS * (MAX_FIELD_BYTES + 3)  # every field at the limit, quoted, plus commas
_CHUNK_BYTES = 16 * 1024**2
# Rows per chunk when read_snapshot reads a whole file (the chunks are then concatenated).
_READ_CHUNK_ROWS = 100_000
_BARE_CR = re.compile(rb"\r(?!\n)")


class SnapshotFileError(ValueError):
    """The landing file cannot be read as a Telco snapshot; nothing was loaded from it."""


def snapshot_path(landing_dir: str | Path, snapshot_date: str) -> Path:
    if not _DATE.match(snapshot_date):
        raise ValueError(f"snapshot date {snapshot_date!r} is not YYYY-MM-DD")
    datetime.strptime(snapshot_date, "%Y-%m-%d")  # raises on 2024-02-30
    return Path(landing_dir) / snapshot_file_name(snapshot_date)


def max_file_bytes() -> int:
    """The size limit: ``CHURN_MAX_SNAPSHOT_BYTES`` if set, else 8 GiB."""
    return int_env(MAX_FILE_BYTES_ENV, DEFAULT_MAX_FILE_BYTES, minimum=1, unit=" of bytes")


class Snapshot:
    """A landing file that passed every file-level check of :func:`open_snapshot`, ready to stream.

    ``rows`` is the number of data rows when the byte scan counted them (a quote-free file), None
    for a file with quotes (its records are only known while :meth:`chunks` parses it)."""

    def __init__(self, path: Path, snapshot_date: str, header: list[str], lines: np.ndarray | None,
                 file_bytes: int, loaded_at: pd.Timestamp):
        self.path = path
        self.snapshot_date = snapshot_date
        self.file_bytes = file_bytes
        self.loaded_at = loaded_at  # the same in every chunk
        self._header = header
        self._lines = lines

    @property
    def rows(self) -> int | None:
        return None if self._lines is None else len(self._lines)

    def __repr__(self) -> str:
        return f"Snapshot({str(self.path)!r}, rows={self.rows})"

    def chunks(self, chunk_rows: int = _READ_CHUNK_ROWS) -> Iterator[pd.DataFrame]:
        """The rows as ``raw_customers`` frames of at most ``chunk_rows`` rows each, in file order
        (index reset per chunk). Each call reads the file again. Raises :class:`SnapshotFileError`
        while iterating for problems found only then (see the module docstring)."""
        if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, numbers.Integral) or chunk_rows <= 0:
            raise ValueError(f"chunk_rows must be a positive whole number, got {chunk_rows!r}")
        chunk_rows = int(chunk_rows)
        if self._lines is None:
            return self._quoted_chunks(chunk_rows)
        return self._plain_chunks(chunk_rows)

    def _raw(self, frame: pd.DataFrame, lines) -> pd.DataFrame:
        frame = frame[list(TELCO_COLUMNS)].reset_index(drop=True)
        meta = pd.DataFrame(
            {
                "snapshot_date": pd.Series(pd.Timestamp(self.snapshot_date), index=frame.index,
                                           dtype="datetime64[ns]"),
                "source_line": np.asarray(lines, dtype="int64"),
                "source_file": self.path.name,
                "loaded_at": pd.Series(self.loaded_at, index=frame.index, dtype="datetime64[ns]"),
            },
            index=frame.index,
        )
        return pd.concat([meta, frame], axis=1)

    def _plain_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """A quote-free file whose every line was checked by :func:`_scan`: pandas' C parser."""
        path, lines = self.path, self._lines
        expected = len(lines)
        done = 0
        try:
            reader = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig",
                engine="c", quoting=csv.QUOTE_MINIMAL, skip_blank_lines=True, index_col=False,
                chunksize=chunk_rows,
            )
        except OSError as error:
            raise _unreadable(path, error) from None
        except (ValueError, csv.Error) as error:  # ParserError and UnicodeDecodeError are ValueErrors
            raise SnapshotFileError(f"{path}: {error}") from None
        with reader:
            while True:
                frame = _next_parsed(path, reader)
                if frame is None:
                    break
                if done + len(frame) > expected:  # the scan and the parser disagree: do not guess lines
                    parsed = done + len(frame) + _rows_left(reader)
                    raise SnapshotFileError(f"{path}: {parsed} rows parsed but {expected} data lines found")
                if len(frame):
                    yield self._raw(frame, lines[done:done + len(frame)])
                    done += len(frame)
        if done != expected:
            raise SnapshotFileError(f"{path}: {done} rows parsed but {expected} data lines found")

    def _quoted_chunks(self, chunk_rows: int) -> Iterator[pd.DataFrame]:
        """A file with quotes, record by record with the csv module: the line each record starts on."""
        path, header = self.path, self._header
        rows: list[list[str]] = []
        lines: list[int] = []
        produced = 0
        try:
            handle = path.open("r", encoding="utf-8-sig", newline="")
        except OSError as error:
            raise _unreadable(path, error) from None
        with handle:
            for start, row in _records(path, handle, header):
                rows.append(row)
                lines.append(start)
                if len(rows) == chunk_rows:
                    yield self._raw(pd.DataFrame(rows, columns=header, dtype=object), lines)
                    produced += len(rows)
                    rows, lines = [], []
        if rows:
            yield self._raw(pd.DataFrame(rows, columns=header, dtype=object), lines)
            produced += len(rows)
        if not produced:
            raise SnapshotFileError(f"{path}: header only, no customer rows")


def open_snapshot(path: str | Path, snapshot_date: str, loaded_at: datetime | None = None) -> Snapshot:
    """Check the landing file (existence, size, header, bytes and, without quotes, every line's
    fields) and return it as a :class:`Snapshot` to stream with :meth:`Snapshot.chunks`.
    ``loaded_at`` (default: now) is decided here, once for every chunk."""
    path = Path(path)
    if not path.is_file():
        raise SnapshotFileError(f"{path}: no snapshot file for {snapshot_date} (expected {path.name})")
    try:
        size, limit = path.stat().st_size, max_file_bytes()
        if size > limit:
            raise SnapshotFileError(f"{path}: {size:,} bytes is larger than the {limit:,}-byte limit "
                                    f"({MAX_FILE_BYTES_ENV})")
        header = _read_header(path)
        _check_header(path, header)
        lines = _scan(path, header)
    except OSError as error:
        raise _unreadable(path, error) from None
    if lines is not None and not len(lines):
        raise SnapshotFileError(f"{path}: header only, no customer rows")
    return Snapshot(path, snapshot_date, header, lines, size, _utc_naive(loaded_at))


def read_snapshot(path: str | Path, snapshot_date: str, loaded_at: datetime | None = None) -> pd.DataFrame:
    """The file's rows as ``raw_customers``: the 21 Telco columns as text plus load metadata (the
    whole file at once: :func:`open_snapshot` streams it in chunks)."""
    chunks = list(open_snapshot(path, snapshot_date, loaded_at).chunks(_READ_CHUNK_ROWS))
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def _unreadable(path: Path, error: OSError) -> SnapshotFileError:
    return SnapshotFileError(f"{path}: cannot be read ({error.strerror or error})")


def _utc_naive(moment: datetime | None) -> pd.Timestamp:
    stamp = pd.Timestamp(moment or datetime.now(UTC))
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp


def _read_header(path: Path) -> list[str]:
    with path.open("rb") as handle:
        raw = handle.readline(_MAX_LINE_BYTES)  # bounded: a binary file may have no line break
    try:
        first = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise SnapshotFileError(f"{path}: line 1 is not UTF-8 text ({error.reason})") from None
    if not raw:
        raise SnapshotFileError(f"{path}: empty file (no header line)")
    if not first.strip():
        raise SnapshotFileError(f"{path}: line 1 is blank; the header must be the first line")
    if "\x00" in first:
        raise SnapshotFileError(f"{path}: line 1 contains NUL bytes; not a CSV text file")
    if len(raw) >= _MAX_LINE_BYTES:
        raise SnapshotFileError(f"{path}: line 1 is longer than {_MAX_LINE_BYTES:,} bytes; not a CSV header")
    try:
        return next(csv.reader([first.rstrip("\r\n")]))
    except csv.Error as error:
        raise SnapshotFileError(f"{path}: line 1 (header) is not CSV: {error}") from None


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
        problems.append(f"unexpected columns {[c[:60] for c in extra[:5]]}")
    if duplicated:
        problems.append(f"repeated columns {duplicated}")
    if problems:
        raise SnapshotFileError(f"{path}: line 1 (header): " + "; ".join(problems))
    if names != header:
        raise SnapshotFileError(f"{path}: line 1 (header): column names have surrounding spaces")


def _scan(path: Path, header: list[str]) -> np.ndarray | None:
    """One pass over the bytes, in chunks of whole lines: encoding, NUL, CR, the final line break
    and, until the first ``"``, the fields of every line. Returns the line numbers of the data
    lines, or None if the file has quotes (its records are then located by the csv module)."""
    data_lines: list[np.ndarray] = []
    quoted = False
    first_line = 1
    pending = b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(_CHUNK_BYTES)
            chunk = pending + block
            if block:
                cut = chunk.rfind(b"\n") + 1
                chunk, pending = chunk[:cut], chunk[cut:]
                if len(pending) > _MAX_LINE_BYTES:
                    line = first_line + chunk.count(b"\n")
                    raise SnapshotFileError(f"{path}: line {line} is longer than {_MAX_LINE_BYTES:,} bytes "
                                            "without a line break; not a customer record")
            elif chunk:
                line = first_line + chunk.count(b"\n")
                raise SnapshotFileError(f"{path}: line {line}, the last, does not end with a line break: "
                                        "the file may be truncated")
            if chunk:
                _check_bytes(path, chunk, first_line, header)
                quoted = quoted or b'"' in chunk
                if not quoted:
                    data_lines.append(_check_fields(path, chunk, first_line, header))
                first_line += chunk.count(b"\n")
            if not block:
                break
    if quoted:
        return None
    lines = np.concatenate(data_lines) if data_lines else np.empty(0, dtype="int64")
    return lines[lines > 1]


def _check_bytes(path: Path, chunk: bytes, first_line: int, header: list[str]) -> None:
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _located(path, chunk, first_line, error.start, header,
                       f"is not UTF-8 text (byte 0x{chunk[error.start]:02x}); re-export the file as UTF-8") from None
    nul = chunk.find(b"\x00")
    if nul >= 0:
        raise _located(path, chunk, first_line, nul, header, "contains a NUL byte")
    bare_cr = chunk.count(b"\r") != chunk.count(b"\r\n") and _BARE_CR.search(chunk)
    if bare_cr:
        raise _located(path, chunk, first_line, bare_cr.start(), header,
                       "has a carriage return that does not end the line (only LF or CRLF line ends)")


def _check_fields(path: Path, chunk: bytes, first_line: int, header: list[str]) -> np.ndarray:
    """Field count and length of every line of a quote-free chunk; the numbers of its non-blank lines."""
    data = np.frombuffer(chunk, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)  # the chunk ends with a line break
    starts = np.concatenate(([0], ends[:-1] + 1))
    lengths = ends - starts - ((ends > starts) & (data[np.maximum(ends - 1, 0)] == 13))  # without CRLF
    fields = np.diff(np.searchsorted(np.flatnonzero(data == 44), ends), prepend=0) + 1
    line_numbers = first_line + np.arange(len(ends))
    blank = lengths == 0
    bad = np.flatnonzero((fields != _FIELDS) & ~blank & (line_numbers > 1))  # the header was checked by name
    if len(bad):
        raise SnapshotFileError(f"{path}: line {line_numbers[bad[0]]} has {fields[bad[0]]} fields, expected "
                                f"{_FIELDS} (a truncated or damaged line)")
    for index in np.flatnonzero(lengths > MAX_FIELD_BYTES):  # rare: only then look at single values
        offset = int(starts[index])
        for value in chunk[offset:offset + lengths[index]].split(b","):
            if len(value) > MAX_FIELD_BYTES:
                raise _located(path, chunk, first_line, offset, header, _too_long(len(value)))
            offset += len(value) + 1
    return line_numbers[~blank]


def _located(path: Path, chunk: bytes, first_line: int, offset: int, header: list[str], problem: str
             ) -> SnapshotFileError:
    """An error naming the line (and, on a line without quotes, the column) of byte ``offset``."""
    line_start = chunk.rfind(b"\n", 0, offset) + 1
    line = first_line + chunk.count(b"\n", 0, offset)
    prefix = chunk[line_start:offset]
    where = f"line {line}"
    if b'"' not in prefix and b"\r" not in prefix:
        column = prefix.count(b",")
        if column < len(header):
            where += f", column {column + 1} ({header[column]})"
    return SnapshotFileError(f"{path}: {where} {problem}")


def _too_long(size: int) -> str:
    return f"has a value of {size:,} bytes, more than the {MAX_FIELD_BYTES:,} a raw value may hold"


def _next_parsed(path: Path, reader) -> pd.DataFrame | None:
    """The parser's next chunk, None at the end; its errors as :class:`SnapshotFileError`."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except OSError as error:
        raise _unreadable(path, error) from None
    except (ValueError, csv.Error) as error:  # ParserError and UnicodeDecodeError are ValueErrors
        raise SnapshotFileError(f"{path}: {error}") from None


def _rows_left(reader) -> int:
    """Rows the parser still finds (only to report how far it and the scan disagree)."""
    left = 0
    try:
        for frame in reader:
            left += len(frame)
    except (OSError, ValueError, csv.Error):
        pass
    return left


def _records(path: Path, handle, header: list[str]) -> Iterator[tuple[int, list[str]]]:
    """``(line, values)`` of each non-blank record of a file with quotes, checked as it is read."""
    reader = csv.reader(handle, strict=True)
    start = 1
    try:
        if next(reader, None) is None:  # the header (checked before); gone if the file was replaced
            return
        start = reader.line_num + 1
        for row in reader:
            if row:  # blank lines hold no customer
                if len(row) != _FIELDS:
                    raise SnapshotFileError(f"{path}: line {start} has {len(row)} fields, expected {_FIELDS} "
                                            "(a truncated or damaged line)")
                for column, value in enumerate(row):
                    size = len(value.encode()) if len(value) * 4 > MAX_FIELD_BYTES else 0  # <= 4 bytes a char
                    if size > MAX_FIELD_BYTES:
                        raise SnapshotFileError(f"{path}: line {start}, column {column + 1} ({header[column]}) "
                                                + _too_long(size))
                yield start, row
            start = reader.line_num + 1
    except csv.Error as error:
        raise SnapshotFileError(f"{path}: line {start}: not valid CSV ({error})") from None
    except OSError as error:
        raise _unreadable(path, error) from None
