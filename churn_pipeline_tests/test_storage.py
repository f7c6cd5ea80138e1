"""TableStore and SqlTableIOManager against real SQLite and MariaDB/MySQL databases."""

import json
import threading
import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from churn_pipeline.constants import (
    CONTRACTS,
    GENDERS,
    INTERNET_ADDONS,
    INTERNET_SERVICES,
    MULTIPLE_LINES,
    PAYMENT_METHODS,
    TELCO_COLUMNS,
    snapshot_file_name,
)
from churn_pipeline.resources.io_managers import SqlTableIOManager
from churn_pipeline.schemas import (
    RISK_TIERS,
    SCORE_SOURCES,
    SEGMENT_TYPES,
    TABLES,
    TENURE_BANDS,
    BusinessKpis,
    CleanCustomers,
    RawCustomers,
    RejectedCustomers,
    ScoredCustomers,
    SegmentKpis,
)
from churn_pipeline.storage import StorageError, TableStore

DAY_A, DAY_B = "2024-01-02", "2024-01-03"
AWKWARD = (
    "tab\there", "two\nlines", "crlf\r\nend", "back\\slash", "trailing backslash\\",
    "\"double\" and 'single' quotes", "Zoë 😀 naïve café — 中文", "\\N", "NULL", "",
    "  padded  ", "\\t is not a tab", "comma, semi; pipe|", "%s %(x)s {0}",
)
TRICKY_FLOATS = (0.1 + 0.2, 1 / 3, 1e-12, 0.0, 1.0, 0.9999999999999999)


# ---- frames --------------------------------------------------------------------------------------

def _days(day: str, n: int) -> pd.Series:
    return pd.Series(pd.Timestamp(day), index=range(n), dtype="datetime64[ns]")


def _pick(rng: np.random.Generator, values: tuple[str, ...], n: int) -> pd.Categorical:
    return pd.Categorical(rng.choice(list(values), n), categories=list(values))


def _cycle(values, n: int, shift: int = 0) -> np.ndarray:
    return np.array(list(values), dtype=object)[(np.arange(n) + shift) % len(values)]


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(n)]


def scored_customers(day: str, n: int, seed: int = 0, prefix: str = "C") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    probability = rng.uniform(0, 1, n)
    probability[: min(n, len(TRICKY_FLOATS))] = TRICKY_FLOATS[: min(n, len(TRICKY_FLOATS))]
    charges = rng.uniform(18.25, 118.75, n)
    charges[-1:] = 123456789.98765432
    loss = probability * charges * 3
    frame = pd.DataFrame({
        "snapshot_date": _days(day, n),
        "customer_id": _ids(prefix, n),
        "churn_probability": probability,
        "risk_tier": pd.Categorical(np.select([probability >= 0.5, probability >= 0.2], ["High", "Medium"], "Low"),
                                    categories=list(RISK_TIERS)),
        "monthly_charges": charges,
        "expected_revenue_loss": loss,
        "priority_rank": pd.Series(loss).rank(ascending=False, method="first").astype("int64"),
        "expected_contact_profit": 0.3 * loss - 25.0,
        "contract": _pick(rng, CONTRACTS, n),
        "tenure_band": _pick(rng, TENURE_BANDS, n),
        "internet_service": _pick(rng, INTERNET_SERVICES, n),
        "payment_method": _pick(rng, PAYMENT_METHODS, n),
        "top_reasons": _cycle(AWKWARD, n, seed),
        "score_source": _pick(rng, SCORE_SOURCES, n),
        "model_version": f"model-{seed:04d}",
    })
    return ScoredCustomers.validate(frame)


def clean_customers(day: str, n: int, seed: int = 0, prefix: str = "C") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    flag = lambda: rng.random(n) < 0.5  # noqa: E731
    churned = pd.array(_cycle([True, None, False], n, seed), dtype="boolean")
    frame = pd.DataFrame({
        "snapshot_date": _days(day, n),
        "customer_id": _ids(prefix, n),
        "gender": _pick(rng, GENDERS, n),
        "senior_citizen": flag(),
        "partner": flag(),
        "dependents": flag(),
        "tenure_months": rng.integers(0, 73, n),
        "phone_service": flag(),
        "multiple_lines": _pick(rng, MULTIPLE_LINES, n),
        "internet_service": _pick(rng, INTERNET_SERVICES, n),
        **{c: _pick(rng, INTERNET_ADDONS, n) for c in (
            "online_security", "online_backup", "device_protection", "tech_support",
            "streaming_tv", "streaming_movies")},
        "contract": _pick(rng, CONTRACTS, n),
        "paperless_billing": flag(),
        "payment_method": _pick(rng, PAYMENT_METHODS, n),
        "monthly_charges": rng.uniform(18.25, 118.75, n),
        "total_charges": rng.uniform(0, 8000, n),
        "tenure_band": _pick(rng, TENURE_BANDS, n),
        "churned": churned,
    })
    return CleanCustomers.validate(frame)


def rejected_customers(day: str, n: int, seed: int = 0) -> pd.DataFrame:
    ids = _cycle([None, "", "7590-VHVEG", *AWKWARD], n, seed)
    bad = _cycle(AWKWARD, n, seed + 3)
    frame = pd.DataFrame({
        "snapshot_date": _days(day, n),
        "source_line": np.arange(2, n + 2, dtype="int64"),
        "customer_id": ids,
        "reason_codes": _cycle(["bad_number", "bad_number,unknown_category", "missing_id"], n, seed),
        "reasons": [f"TotalCharges is not a number: {value!s}" for value in bad],
        "original_values": [json.dumps({"customerID": i, "TotalCharges": v}, ensure_ascii=False)
                            for i, v in zip(ids, bad)],
    })
    return RejectedCustomers.validate(frame)


def raw_customers(day: str, n: int) -> pd.DataFrame:
    loaded_at = pd.Timestamp(f"{day} 06:30:15.123456") + pd.to_timedelta(np.arange(n) * 1_001, unit="us")
    frame = pd.DataFrame({
        "snapshot_date": _days(day, n),
        "source_line": np.arange(2, n + 2, dtype="int64"),
        "source_file": snapshot_file_name(day),
        "loaded_at": pd.Series(loaded_at, dtype="datetime64[ns]"),
        **{column: _cycle(AWKWARD, n, shift) for shift, column in enumerate(TELCO_COLUMNS)},
    })
    return RawCustomers.validate(frame)


def business_kpis(day: str, actual_churn_rate: float = np.nan, active: int = 1_000) -> pd.DataFrame:
    frame = pd.DataFrame({
        "snapshot_date": _days(day, 1),
        "active_customers": [active],
        "predicted_churners": [265.123456789],
        "predicted_churn_rate": [0.265123456789],
        "actual_churn_rate": [actual_churn_rate],
        "monthly_revenue": [64_761.55],
        "revenue_at_risk": [51_234.5],
        "revenue_at_risk_high": [30_000.25],
        "revenue_at_risk_medium": [15_000.125],
        "revenue_at_risk_low": [6_234.125],
        "high_risk_customers": [120],
        "average_probability": [1 / 3],
        "horizon_months": [3.0],
        "contact_cost": [25.0],
        "retention_success_rate": [0.3],
        "campaign_list_size": [412],
        "campaign_expected_profit": [10_321.75],
        "model_version": ["model-0001"],
    })
    return BusinessKpis.validate(frame)


def segment_kpis(day: str) -> pd.DataFrame:
    segments = [("contract", "Month-to-month"), ("contract", "Two year"),
                ("tenure_band", "0-5 months"), ("payment_method", "Electronic check")]
    n = len(segments)
    frame = pd.DataFrame({
        "snapshot_date": _days(day, n),
        "segment_type": pd.Categorical([t for t, _ in segments], categories=list(SEGMENT_TYPES)),
        "segment_value": [v for _, v in segments],
        "active_customers": np.array([500, 300, 120, 400], dtype="int64"),
        "predicted_churners": [200.5, 10.25, 60.0, 150.75],
        "predicted_churn_rate": [0.401, 10.25 / 300, 0.5, 150.75 / 400],
        "actual_churn_rate": [0.42, np.nan, 0.55, 0.0],
        "revenue_at_risk": [40_000.0, 1_000.5, 7_000.25, 30_000.0],
        "average_probability": [0.401, 10.25 / 300, 0.5, 150.75 / 400],
        "model_version": "model-0001",
    })
    return SegmentKpis.validate(frame)


def by_key(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    as_stored = lambda column: column.astype(str) if column.dtype == "category" else column  # noqa: E731
    return frame.sort_values(list(TABLES[name].primary_key), key=as_stored).reset_index(drop=True)


def assert_same(actual: pd.DataFrame, expected: pd.DataFrame, name: str) -> None:
    pd.testing.assert_frame_equal(actual, by_key(name, expected), check_exact=True)


def is_mysql(url: str) -> bool:
    return url.startswith("mysql")


def count_rows(url: str, table: str, day: str | None = None) -> int:
    query = f"SELECT COUNT(*) FROM {table}" + (" WHERE snapshot_date = :day" if day else "")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(query), {"day": day}).scalar_one()
    finally:
        engine.dispose()


# ---- DDL -------------------------------------------------------------------------------------------

def _type_name(column_type) -> str:
    name = type(column_type).__name__.upper()
    for size in ("length", "fsp"):
        if getattr(column_type, size, None):
            name += f"({getattr(column_type, size)})"
    return name


def expected_type(column, mysql: bool) -> str:
    sql, dtype = (column.metadata or {}).get("sql"), str(column.dtype)
    if sql == "date":
        return "DATE"
    if sql == "text":
        return "TEXT"
    if sql == "long_text":
        return "MEDIUMTEXT" if mysql else "TEXT"
    if dtype.startswith("datetime64"):
        return "DATETIME(6)" if mysql else "DATETIME"
    if dtype in ("bool", "boolean"):
        return "TINYINT" if mysql else "BOOLEAN"
    if dtype == "int64":
        return "BIGINT"
    if dtype == "float64":
        return "DOUBLE"
    if dtype == "category":
        return f"VARCHAR({max(len(c) for c in column.dtype.categories)})"
    lengths = [c.statistics["max_value"] for c in column.checks
               if c.name == "str_length" and c.statistics.get("max_value")]
    return f"VARCHAR({lengths[0] if lengths else 255})"


@pytest.mark.parametrize("name", list(TABLES))
def test_ddl_follows_schema(db_url, name):
    spec = TABLES[name]
    store = TableStore(db_url)
    store.ensure_table(name)
    inspector = sa.inspect(store.engine)
    mysql = is_mysql(db_url)

    reflected = {c["name"]: c for c in inspector.get_columns(name)}
    assert list(reflected) == spec.columns
    for column_name, column in spec.schema.columns.items():
        actual = reflected[column_name]
        assert _type_name(actual["type"]) == expected_type(column, mysql), column_name
        assert actual["nullable"] == column.nullable, column_name
    assert tuple(inspector.get_pk_constraint(name)["constrained_columns"]) == spec.primary_key
    indexes = {(tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(name)}
    assert indexes == {(cols, False) for cols in spec.indexes} | {(cols, True) for cols in spec.unique}

    if mysql:
        with store.engine.connect() as conn:
            comments = dict(conn.execute(sa.text(
                "SELECT COLUMN_NAME, COLUMN_COMMENT FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"), {"t": name}).all())
            engine_name = conn.execute(sa.text(
                "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                "AND TABLE_NAME = :t"), {"t": name}).scalar_one()
        assert comments == {c: column.description for c, column in spec.schema.columns.items()}
        assert all(comments.values())
        assert engine_name == "InnoDB"


SPOT_CHECKED = ("scored_customers", "clean_customers", "raw_customers", "model_runs")


@pytest.mark.mysql
def test_mysql_column_types_are_specific(mysql_url):
    store = TableStore(mysql_url)
    for name in SPOT_CHECKED:
        store.ensure_table(name)
    with store.engine.connect() as conn:
        types = {(t, c): v for t, c, v in conn.execute(sa.text(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE()")).all()}
    assert types[("scored_customers", "churn_probability")] == "double"
    assert types[("scored_customers", "snapshot_date")] == "date"
    assert types[("scored_customers", "customer_id")] == "varchar(64)"
    assert types[("scored_customers", "priority_rank")].startswith("bigint")
    assert types[("scored_customers", "risk_tier")] == "varchar(6)"
    assert types[("scored_customers", "top_reasons")] == "text"
    assert types[("raw_customers", "loaded_at")] == "datetime(6)"
    assert types[("raw_customers", "customerID")] == "text"
    assert types[("clean_customers", "churned")] == "tinyint(1)"
    assert types[("model_runs", "card")] == "mediumtext"
    text_columns = {(t, c) for (t, c), v in types.items() if v.endswith("text")}
    assert text_columns == {(t, c) for t in SPOT_CHECKED for c, column in TABLES[t].schema.columns.items()
                            if (column.metadata or {}).get("sql") in ("text", "long_text")}


# ---- round trip ------------------------------------------------------------------------------------

ROUND_TRIP_FRAMES = {
    "scored_customers": lambda: scored_customers(DAY_A, 40),
    "clean_customers": lambda: clean_customers(DAY_A, 30),
    "rejected_customers": lambda: rejected_customers(DAY_A, 25),
    "raw_customers": lambda: raw_customers(DAY_A, 20),
    "business_kpis": lambda: business_kpis(DAY_A),
    "segment_kpis": lambda: segment_kpis(DAY_A),
}


@pytest.mark.parametrize("name", list(ROUND_TRIP_FRAMES))
def test_round_trip_is_exact(db_url, name):
    frame = ROUND_TRIP_FRAMES[name]()
    store = TableStore(db_url)
    assert store.write({name: frame}, partition=DAY_A) == {name: len(frame)}

    back = store.read(name, partition=DAY_A)
    assert_same(back, frame, name)
    TABLES[name].model.validate(back)
    assert_same(TableStore(db_url).read(name), frame, name)
    chunks = list(store.read_chunks(name, partition=DAY_A, chunk_rows=7))
    assert len(chunks) == -(-len(frame) // 7)
    assert_same(pd.concat(chunks, ignore_index=True), frame, name)
    empty = store.read(name, partition=DAY_B)
    assert empty.empty
    assert empty.dtypes.to_dict() == frame.dtypes.to_dict()


def test_coarser_datetime_units_come_back_as_nanoseconds(db_url):
    frame = raw_customers(DAY_A, 5)
    coarse = RawCustomers.validate(frame.astype({"snapshot_date": "datetime64[s]", "loaded_at": "datetime64[us]"}))
    store = TableStore(db_url)
    store.write({"raw_customers": coarse}, partition=DAY_A)
    assert_same(store.read("raw_customers", partition=DAY_A), frame, "raw_customers")


def test_round_trip_keeps_nulls_dates_and_awkward_text(db_url):
    store = TableStore(db_url)
    frames = {
        "clean_customers": clean_customers(DAY_A, 9),
        "rejected_customers": rejected_customers(DAY_A, len(AWKWARD) + 3),
        "raw_customers": raw_customers(DAY_A, len(AWKWARD)),
        "business_kpis": business_kpis(DAY_A, actual_churn_rate=np.nan),
        "scored_customers": scored_customers(DAY_A, len(AWKWARD)),
    }
    store.write(frames, partition=DAY_A)
    back = {name: store.read(name, partition=DAY_A) for name in frames}

    churned = back["clean_customers"]["churned"]
    assert churned.dtype == "boolean"
    assert churned.isna().sum() == 3 and churned.sum() == 3

    kpis = back["business_kpis"]
    assert kpis["actual_churn_rate"].dtype == "float64" and kpis["actual_churn_rate"].isna().all()
    assert kpis["snapshot_date"].dtype == "datetime64[ns]"
    assert (kpis["snapshot_date"] == pd.Timestamp(DAY_A)).all()
    assert (kpis["snapshot_date"] == kpis["snapshot_date"].dt.normalize()).all()

    ids = back["rejected_customers"]["customer_id"].tolist()
    assert ids[0] is None and ids[1] == "" and ids.count(None) == 1
    assert set(AWKWARD) <= set(ids)

    raw = back["raw_customers"]
    assert raw["loaded_at"].dtype == "datetime64[ns]"
    assert raw["loaded_at"].iloc[0] == pd.Timestamp(f"{DAY_A} 06:30:15.123456")
    assert raw["loaded_at"].dt.microsecond.tolist() == frames["raw_customers"]["loaded_at"].dt.microsecond.tolist()
    assert sorted(raw["customerID"]) == sorted(AWKWARD)

    scored = back["scored_customers"]
    assert scored["risk_tier"].cat.categories.tolist() == list(RISK_TIERS)
    assert scored["contract"].cat.categories.tolist() == list(CONTRACTS)
    assert set(TRICKY_FLOATS) <= set(scored["churn_probability"])
    assert scored["priority_rank"].dtype == "int64"
    for name, frame in frames.items():
        assert_same(back[name], frame, name)


@pytest.mark.mysql
@pytest.mark.parametrize("bulk_method", ["load_data", "executemany"])
def test_overlong_text_is_refused_not_truncated(mysql_url, bulk_method):
    store = TableStore(mysql_url, bulk_method=bulk_method)
    before = rejected_customers(DAY_A, 3)
    store.write({"rejected_customers": before}, partition=DAY_A)
    too_long = rejected_customers(DAY_A, 3, seed=1)
    too_long.loc[1, "reasons"] = "é" * 70_000
    with pytest.raises(StorageError, match="reasons"):
        store.write({"rejected_customers": RejectedCustomers.validate(too_long)}, partition=DAY_A)
    assert_same(store.read("rejected_customers"), before, "rejected_customers")


# ---- partitions, validation --------------------------------------------------------------------------

def test_partition_replace_touches_only_its_day_and_is_idempotent(db_url):
    store = TableStore(db_url)
    first_a = scored_customers(DAY_A, 30, seed=1)
    day_b = scored_customers(DAY_B, 20, seed=2)
    second_a = scored_customers(DAY_A, 12, seed=3, prefix="R")

    store.write({"scored_customers": first_a}, partition=DAY_A)
    store.write({"scored_customers": day_b}, partition=DAY_B)
    assert_same(store.read("scored_customers", partition=DAY_A), first_a, "scored_customers")
    assert store.write({"scored_customers": second_a}, partition=DAY_A) == {"scored_customers": 12}

    assert_same(store.read("scored_customers", partition=DAY_A), second_a, "scored_customers")
    assert_same(store.read("scored_customers", partition=DAY_B), day_b, "scored_customers")
    whole = store.read("scored_customers")
    assert_same(whole, pd.concat([second_a, day_b], ignore_index=True), "scored_customers")

    store.write({"scored_customers": second_a}, partition=DAY_A)
    pd.testing.assert_frame_equal(store.read("scored_customers"), whole, check_exact=True)
    assert count_rows(db_url, "scored_customers") == 32


def test_whole_table_replace_and_append(db_url):
    store = TableStore(db_url)
    store.write({"business_kpis": business_kpis(DAY_A, 0.2)}, partition=DAY_A)
    store.write({"business_kpis": business_kpis(DAY_B, 0.3)}, mode="append")
    assert store.read("business_kpis")["actual_churn_rate"].tolist() == [0.2, 0.3]
    store.write({"business_kpis": business_kpis(DAY_B, 0.4)})
    assert_same(store.read("business_kpis"), business_kpis(DAY_B, 0.4), "business_kpis")


def _bad_requests():
    wrong_day = scored_customers(DAY_B, 5)
    mixed = pd.concat([scored_customers(DAY_A, 3), scored_customers(DAY_B, 3, prefix="X")], ignore_index=True)
    missing = scored_customers(DAY_A, 5).drop(columns="top_reasons")
    extra = scored_customers(DAY_A, 5).assign(comment="x")
    reordered = scored_customers(DAY_A, 5).iloc[:, ::-1]
    return {
        "wrong_day": ({"scored_customers": wrong_day}, DAY_A, "other than partition"),
        "mixed_days": ({"scored_customers": mixed}, DAY_A, "3 rows"),
        "missing_column": ({"scored_customers": missing}, DAY_A, "columns"),
        "extra_column": ({"scored_customers": extra}, DAY_A, "columns"),
        "reordered_columns": ({"scored_customers": reordered}, DAY_A, "columns"),
        "unknown_table": ({"scored_customer": wrong_day}, DAY_A, "unknown table"),
        "frame_of_other_table": ({"model_runs": wrong_day}, DAY_A, "columns"),
        "second_frame_bad": ({"business_kpis": business_kpis(DAY_A, 0.9), "scored_customers": wrong_day},
                             DAY_A, "other than partition"),
    }


@pytest.mark.parametrize("case", list(_bad_requests()))
def test_bad_write_is_refused_and_writes_nothing(db_url, case):
    frames, partition, message = _bad_requests()[case]
    store = TableStore(db_url)
    before = {"scored_customers": scored_customers(DAY_A, 8, seed=5), "business_kpis": business_kpis(DAY_A, 0.1)}
    store.write(before, partition=DAY_A)
    store.write({"scored_customers": scored_customers(DAY_B, 4, seed=6)}, partition=DAY_B)

    with pytest.raises(StorageError, match=message):
        store.write(frames, partition=partition)

    assert_same(store.read("scored_customers", partition=DAY_A), before["scored_customers"], "scored_customers")
    assert_same(store.read("business_kpis"), before["business_kpis"], "business_kpis")
    assert count_rows(db_url, "scored_customers", DAY_B) == 4


def test_partition_on_unpartitioned_table_is_refused(db_url):
    store = TableStore(db_url)
    columns = TABLES["model_runs"].columns
    with pytest.raises(StorageError, match="not partitioned"):
        store.write({"model_runs": pd.DataFrame(columns=columns)}, partition=DAY_A)
    with pytest.raises(StorageError, match="unknown table"):
        store.read("no_such_table")


# ---- transactions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("failure", ["insert_raises", "duplicate_primary_key"])
def test_multi_table_write_is_one_transaction(db_url, failure, monkeypatch):
    store = TableStore(db_url)
    old = {"clean_customers": clean_customers(DAY_A, 15, seed=1),
           "rejected_customers": rejected_customers(DAY_A, 6, seed=1)}
    store.write(old, partition=DAY_A)
    new_clean = clean_customers(DAY_A, 25, seed=2, prefix="N")
    new_rejected = rejected_customers(DAY_A, 10, seed=2)

    if failure == "insert_raises":
        original = TableStore._bulk_insert

        def failing(self, conn, table, spec, frame):
            if table.name == "rejected_customers":
                raise RuntimeError("disk full")
            return original(self, conn, table, spec, frame)

        monkeypatch.setattr(TableStore, "_bulk_insert", failing)
        expected_error: type[Exception] = RuntimeError
    else:
        new_rejected = pd.concat([new_rejected, new_rejected.iloc[[3]]], ignore_index=True)
        expected_error = StorageError

    with pytest.raises(expected_error):
        store.write({"clean_customers": new_clean, "rejected_customers": new_rejected}, partition=DAY_A)

    monkeypatch.undo()
    for name, frame in old.items():
        assert_same(store.read(name, partition=DAY_A), frame, name)
    store.write({"clean_customers": new_clean, "rejected_customers": new_rejected.iloc[:10]}, partition=DAY_A)
    assert_same(store.read("clean_customers"), new_clean, "clean_customers")
    assert_same(store.read("rejected_customers"), new_rejected.iloc[:10], "rejected_customers")


def test_replacing_a_partition_is_atomic_for_concurrent_readers(db_url, monkeypatch):
    n, m = 50_000, 20_000
    store = TableStore(db_url)
    store.write({"scored_customers": scored_customers(DAY_A, n, seed=1)}, partition=DAY_A)
    store.write({"scored_customers": scored_customers(DAY_B, 7, seed=3)}, partition=DAY_B)
    replacement = scored_customers(DAY_A, m, seed=2, prefix="R")

    window: dict[str, float] = {}
    original = TableStore._bulk_insert

    def timed(self, *args):
        window["start"] = time.perf_counter()
        try:
            return original(self, *args)
        finally:
            window["end"] = time.perf_counter()

    monkeypatch.setattr(TableStore, "_bulk_insert", timed)
    errors: list[BaseException] = []

    def write():
        try:
            store.write({"scored_customers": replacement}, partition=DAY_A)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    reader = sa.create_engine(db_url, isolation_level="AUTOCOMMIT")
    query = sa.text("SELECT COUNT(*) FROM scored_customers WHERE snapshot_date = :day")
    observed: list[tuple[float, float, int]] = []
    writer = threading.Thread(target=write)
    with reader.connect() as conn:
        writer.start()
        while writer.is_alive():
            began = time.perf_counter()
            count = conn.execute(query, {"day": DAY_A}).scalar_one()
            observed.append((began, time.perf_counter(), count))
        writer.join()
        final = conn.execute(query, {"day": DAY_A}).scalar_one()
    reader.dispose()

    assert not errors, errors
    assert {count for _, _, count in observed} <= {n, m}, sorted({c for _, _, c in observed})
    during_insert = [count for began, ended, count in observed if window["start"] < began and ended < window["end"]]
    assert len(during_insert) >= 3, (len(observed), window)
    assert set(during_insert) == {n}
    assert final == m
    assert count_rows(db_url, "scored_customers", DAY_B) == 7


# ---- MySQL bulk paths -----------------------------------------------------------------------------

def _raw_rows(url: str, table: str) -> list[tuple]:
    order = ", ".join(f"`{c}`" for c in TABLES[table].primary_key)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.exec_driver_sql(f"SELECT * FROM `{table}` ORDER BY {order}")]
    finally:
        engine.dispose()


def _bulk_frames() -> dict[str, pd.DataFrame]:
    return {
        "scored_customers": scored_customers(DAY_A, 300, seed=4),
        "clean_customers": clean_customers(DAY_A, 60, seed=4),
        "rejected_customers": rejected_customers(DAY_A, 40, seed=4),
        "raw_customers": raw_customers(DAY_A, 40),
        "segment_kpis": segment_kpis(DAY_A),
    }


@pytest.fixture
def local_infile_disabled(mysql_server_url):
    engine = sa.create_engine(mysql_server_url)
    with engine.connect() as conn:
        original = int(conn.exec_driver_sql("SELECT @@GLOBAL.local_infile").scalar_one())
        conn.exec_driver_sql("SET GLOBAL local_infile = 0")
    try:
        yield
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f"SET GLOBAL local_infile = {original}")
        engine.dispose()


def _spy_executemany(monkeypatch) -> list[str]:
    calls: list[str] = []
    original = TableStore._executemany

    def spy(self, conn, table, spec, frame):
        calls.append(table.name)
        return original(self, conn, table, spec, frame)

    monkeypatch.setattr(TableStore, "_executemany", spy)
    return calls


@pytest.mark.mysql
def test_load_data_and_executemany_store_identical_rows(mysql_url, monkeypatch):
    frames = _bulk_frames()
    calls = _spy_executemany(monkeypatch)
    TableStore(mysql_url, bulk_method="load_data").write(frames, partition=DAY_A)
    assert calls == []
    loaded = {name: _raw_rows(mysql_url, name) for name in frames}
    TableStore(mysql_url, bulk_method="auto").write(frames, partition=DAY_A)
    assert calls == []

    TableStore(mysql_url, bulk_method="executemany").write(frames, partition=DAY_A)
    assert calls == list(frames)
    for name, frame in frames.items():
        assert _raw_rows(mysql_url, name) == loaded[name], name
        assert len(loaded[name]) == len(frame)
        assert_same(TableStore(mysql_url).read(name, partition=DAY_A), frame, name)


@pytest.mark.mysql
def test_auto_falls_back_when_local_infile_is_disabled(mysql_url, local_infile_disabled, monkeypatch):
    frames = _bulk_frames()
    calls = _spy_executemany(monkeypatch)
    with pytest.raises(StorageError, match="LOCAL INFILE refused"):
        TableStore(mysql_url, bulk_method="load_data").write(frames, partition=DAY_A)
    assert calls == []
    for name in frames:
        assert count_rows(mysql_url, name) == 0

    written = TableStore(mysql_url, bulk_method="auto").write(frames, partition=DAY_A)
    assert written == {name: len(frame) for name, frame in frames.items()}
    assert calls == list(frames)
    for name, frame in frames.items():
        assert_same(TableStore(mysql_url).read(name, partition=DAY_A), frame, name)


# ---- schema drift ----------------------------------------------------------------------------------

def test_table_with_other_columns_is_refused_and_untouched(db_url):
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE business_kpis (snapshot_date DATE NOT NULL PRIMARY KEY, "
                             "active_customers BIGINT NOT NULL, legacy_score DOUBLE)"))
        conn.execute(sa.text("INSERT INTO business_kpis VALUES ('2024-01-02', 7, 0.5)"))
    store = TableStore(db_url)

    with pytest.raises(StorageError) as refused:
        store.write({"business_kpis": business_kpis(DAY_A, 0.2)}, partition=DAY_A)
    message = str(refused.value)
    assert "business_kpis" in message and "does not match its schema" in message
    assert "unexpected columns: ['legacy_score']" in message
    missing = sorted(set(TABLES["business_kpis"].columns) - {"snapshot_date", "active_customers"})
    assert f"missing columns: {missing}" in message
    with pytest.raises(StorageError, match="legacy_score"):
        store.read("business_kpis")

    assert [c["name"] for c in sa.inspect(engine).get_columns("business_kpis")] == [
        "snapshot_date", "active_customers", "legacy_score"]
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT active_customers, legacy_score FROM business_kpis")).all()
    assert [tuple(r) for r in rows] == [(7, 0.5)]
    engine.dispose()


# ---- Dagster IO manager ---------------------------------------------------------------------------

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2024-01-01")


def _materialization_metadata(result, node: str) -> dict:
    [materialization] = result.asset_materializations_for_node(node)
    return {key: value.value for key, value in materialization.metadata.items()}


def test_io_manager_writes_and_loads_a_partitioned_asset(db_url):
    expected = business_kpis(DAY_A, actual_churn_rate=np.nan, active=4_321)
    loaded: dict[str, pd.DataFrame] = {}

    @dg.asset(name="business_kpis", partitions_def=PARTITIONS, metadata={"partition_expr": "snapshot_date"})
    def kpis_asset(context: dg.AssetExecutionContext) -> pd.DataFrame:
        return business_kpis(context.partition_key, actual_churn_rate=np.nan, active=4_321)

    @dg.asset(partitions_def=PARTITIONS, io_manager_key="mem")
    def kpi_report(business_kpis: pd.DataFrame) -> int:
        loaded["business_kpis"] = business_kpis
        return len(business_kpis)

    store = TableStore(db_url)
    store.write({"business_kpis": business_kpis(DAY_B, 0.3)}, partition=DAY_B)
    resources = {"io_manager": SqlTableIOManager(db_url=db_url), "mem": dg.mem_io_manager}
    for _ in range(2):
        result = dg.materialize([kpis_asset, kpi_report], partition_key=DAY_A, resources=resources)
        assert result.success

    assert_same(loaded["business_kpis"], expected, "business_kpis")
    metadata = _materialization_metadata(result, "business_kpis")
    assert metadata["rows: business_kpis"] == 1
    assert metadata["dagster/row_count"] == 1
    assert metadata["tables"] == "business_kpis"
    assert_same(store.read("business_kpis"),
                pd.concat([expected, business_kpis(DAY_B, 0.3)], ignore_index=True), "business_kpis")


def test_io_manager_writes_a_multi_table_asset_in_one_go(db_url):
    loaded: dict[str, dict[str, pd.DataFrame]] = {}

    @dg.asset(partitions_def=PARTITIONS,
              metadata={"tables": ["business_kpis", "segment_kpis"], "partition_expr": "snapshot_date"})
    def kpis(context: dg.AssetExecutionContext) -> dict:
        return {"business_kpis": business_kpis(context.partition_key, 0.25),
                "segment_kpis": segment_kpis(context.partition_key)}

    @dg.asset(partitions_def=PARTITIONS, io_manager_key="mem")
    def kpi_report(kpis: dict) -> int:
        loaded["kpis"] = kpis
        return len(kpis)

    resources = {"io_manager": SqlTableIOManager(db_url=db_url), "mem": dg.mem_io_manager}
    result = dg.materialize([kpis, kpi_report], partition_key=DAY_A, resources=resources)
    assert result.success

    metadata = _materialization_metadata(result, "kpis")
    assert metadata["rows: business_kpis"] == 1
    assert metadata["rows: segment_kpis"] == 4
    assert metadata["dagster/row_count"] == 5
    assert sorted(loaded["kpis"]) == ["business_kpis", "segment_kpis"]
    assert_same(loaded["kpis"]["business_kpis"], business_kpis(DAY_A, 0.25), "business_kpis")
    assert_same(loaded["kpis"]["segment_kpis"], segment_kpis(DAY_A), "segment_kpis")


def test_io_manager_refuses_missing_table_and_wrong_partition(db_url):
    @dg.asset(name="kpis", partitions_def=PARTITIONS, metadata={"tables": ["business_kpis", "segment_kpis"]})
    def incomplete(context: dg.AssetExecutionContext) -> dict:
        return {"business_kpis": business_kpis(context.partition_key, 0.25)}

    @dg.asset(name="business_kpis", partitions_def=PARTITIONS)
    def wrong_day() -> pd.DataFrame:
        return business_kpis(DAY_B, 0.25)

    resources = {"io_manager": SqlTableIOManager(db_url=db_url)}
    for asset, message in ((incomplete, "expected"), (wrong_day, "other than partition")):
        result = dg.materialize([asset], partition_key=DAY_A, resources=resources, raise_on_error=False)
        assert not result.success
        [failure] = result.get_step_failure_events()
        assert message in str(failure.step_failure_data.error), failure.step_failure_data.error
    assert TableStore(db_url).read("business_kpis").empty
