"""History retention: old days leave every per-day table, recent days and the model registry stay."""

from __future__ import annotations

from datetime import date

import dagster as dg
import pytest
import sqlalchemy as sa

from churn_pipeline.definitions import build_resources, defs
from churn_pipeline.maintenance import HistoryRetention, history_days_from_env, prune_history, prune_history_job
from churn_pipeline.settings import Settings
from churn_pipeline.storage import TableStore
from churn_pipeline_tests.helpers import raw_frame, telco_rows

DAYS = ["2024-01-01", "2024-02-08", "2024-02-09", "2024-03-01"]


def _days_left(db_url: str, table: str) -> list[str]:
    with TableStore(db_url).engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT DISTINCT snapshot_date FROM {table} ORDER BY snapshot_date"))
        return [str(value)[:10] for (value,) in rows]


def test_prune_keeps_the_last_n_days_and_creates_nothing(db_url):
    store = TableStore(db_url)
    for day in DAYS:
        store.write({"raw_customers": raw_frame(telco_rows({}, {}), day)}, partition=day)

    deleted = prune_history(db_url, keep_days=30, today=date(2024, 3, 10))  # cutoff 2024-02-09

    assert deleted == {"raw_customers": 4}  # two rows on each of the two days before the cutoff
    assert _days_left(db_url, "raw_customers") == ["2024-02-09", "2024-03-01"]
    # Tables that were never written are skipped, not created by the pruning.
    assert "scored_customers" not in sa.inspect(store.engine).get_table_names()
    assert prune_history(db_url, keep_days=30, today=date(2024, 3, 10)) == {"raw_customers": 0}


def test_prune_history_job_reports_what_it_deleted(sqlite_url):
    store = TableStore(sqlite_url)
    store.write({"raw_customers": raw_frame(telco_rows({}), "2024-01-01")}, partition="2024-01-01")
    result = prune_history_job.execute_in_process(
        resources={"history": HistoryRetention(db_url=sqlite_url, keep_days=1)})
    assert result.success and result.output_for_node("prune_old_days") == 1
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = output.step_output_data.metadata  # what the run page shows
    assert metadata["deleted: raw_customers"].value == 1 and metadata["keep_days"].value == 1
    assert _days_left(sqlite_url, "raw_customers") == []


def test_history_days_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("CHURN_HISTORY_DAYS", raising=False)
    assert history_days_from_env() == 400
    monkeypatch.setenv("CHURN_HISTORY_DAYS", "90")
    monkeypatch.setenv("CHURN_DATA_DIR", str(tmp_path))
    assert build_resources(Settings.from_env())["history"].keep_days == 90
    monkeypatch.setenv("CHURN_HISTORY_DAYS", "0")
    with pytest.raises(ValueError, match="CHURN_HISTORY_DAYS"):
        history_days_from_env()


def test_pruning_is_scheduled_weekly():
    schedule = defs.resolve_schedule_def("prune_history_schedule")
    assert schedule.job_name == "prune_history" and schedule.cron_schedule == "0 4 * * 0"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
