"""Small builders shared by tests: valid Telco rows and snapshot files."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from churn_pipeline.constants import TELCO_COLUMNS

GOOD_ROW = {
    "customerID": "0001-ABCDE", "gender": "Female", "SeniorCitizen": "0", "Partner": "Yes",
    "Dependents": "No", "tenure": "12", "PhoneService": "Yes", "MultipleLines": "No",
    "InternetService": "Fiber optic", "OnlineSecurity": "No", "OnlineBackup": "Yes",
    "DeviceProtection": "No", "TechSupport": "No", "StreamingTV": "Yes", "StreamingMovies": "No",
    "Contract": "Month-to-month", "PaperlessBilling": "Yes", "PaymentMethod": "Electronic check",
    "MonthlyCharges": "85.50", "TotalCharges": "1020.30", "Churn": "No",
}


def telco_rows(*overrides: dict) -> list[dict]:
    """One valid row per override dict, each with a distinct customerID unless overridden."""
    rows = []
    for i, override in enumerate(overrides):
        row = dict(GOOD_ROW, customerID=f"{i:04d}-TESTX")
        row.update(override)
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict], columns=TELCO_COLUMNS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    return path


def raw_frame(rows: list[dict], snapshot_date: str = "2024-03-01") -> pd.DataFrame:
    """Rows as ``raw_customers`` would hold them."""
    frame = pd.DataFrame(rows, columns=list(TELCO_COLUMNS)).astype(str)
    meta = pd.DataFrame({
        "snapshot_date": pd.Series([pd.Timestamp(snapshot_date)] * len(rows), dtype="datetime64[ns]"),
        "source_line": range(2, len(rows) + 2),
        "source_file": f"customers_{snapshot_date}.csv",
        "loaded_at": pd.Series([pd.Timestamp("2024-03-02 01:02:03.456789")] * len(rows), dtype="datetime64[ns]"),
    })
    return pd.concat([meta, frame], axis=1)


def local_settings(folder: Path, db_url: str | None = None, candidates: str = "logistic_regression"):
    """Settings that keep everything (landing files, models, a SQLite database) under ``folder``."""
    import dataclasses

    from churn_pipeline.settings import Settings

    return dataclasses.replace(
        Settings.from_env(), data_dir=folder, landing_dir=folder / "landing", model_dir=folder / "models",
        db_url=db_url or f"sqlite:///{folder / 'churn.db'}", db_url_from_env=False, model_candidates=candidates,
    )


def with_fields(resource, **changes):
    """A copy of a Dagster resource with some fields changed (model_copy misses Dagster's own config)."""
    return type(resource)(**{**resource._get_non_default_public_field_values(), **changes})


def count_table_reads(monkeypatch) -> list[str]:
    """The names of the tables read chunk by chunk from now on (TableStore.read_chunks), in order."""
    from churn_pipeline.storage import TableStore

    reads: list[str] = []
    original = TableStore.read_chunks

    def counting(self, name, *args, **kwargs):
        reads.append(name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(TableStore, "read_chunks", counting)
    return reads
