"""The code location, the asset graph's shape, the nightly schedule and the resources."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml

from churn_pipeline.assets import ALL_ASSETS
from churn_pipeline.definitions import build_resources, defs
from churn_pipeline.schedules import build_nightly_schedule, churn_nightly_schedule
from churn_pipeline.settings import Settings

REPO = Path(__file__).resolve().parents[1]

# Snapshot of the graph: a change here is a change operators will see; update it deliberately.
EXPECTED_GRAPH = {
    "raw_customers": ("ingestion", set()),
    "clean_customers": ("preparation", {"raw_customers"}),
    "customer_features": ("preparation", {"clean_customers"}),
    "churn_model": ("modeling", {"customer_features"}),
    "scored_customers": ("scoring", {"clean_customers", "customer_features", "churn_model"}),
    "churn_kpis": ("scoring", {"scored_customers", "clean_customers"}),
}


def test_code_location_loads_and_graph_matches_snapshot():
    graph = defs.resolve_asset_graph()
    found = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        found[key.to_user_string()] = (node.group_name, {p.to_user_string() for p in node.parent_keys})
    assert found == EXPECTED_GRAPH
    for key in graph.get_all_asset_keys():
        spec = graph.get(key)
        assert spec.description and len(spec.description) > 40, key
        assert spec.partitions_def is not None, key


def test_table_assets_show_column_schema_and_table_name():
    specs = {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}
    for name in ("raw_customers", "clean_customers", "customer_features", "scored_customers", "churn_kpis"):
        metadata = specs[name].metadata
        assert "dagster/column_schema" in metadata and metadata["dagster/table_name"]
    scored_columns = [c.name for c in specs["scored_customers"].metadata["dagster/column_schema"].columns]
    for column in ("snapshot_date", "customer_id", "churn_probability", "risk_tier", "monthly_charges",
                   "expected_revenue_loss", "priority_rank", "model_version"):
        assert column in scored_columns


def test_quality_checks_block_downstream_assets():
    specs = {spec.name: spec for asset in ALL_ASSETS for spec in asset.check_specs}
    assert set(specs) == {"rows_accounted", "quality_floor", "calibration", "probabilities_complete", "score_drift"}
    assert all(spec.blocking for name, spec in specs.items() if name != "score_drift")
    assert not specs["score_drift"].blocking  # drift warns, it does not stop the morning's list


def test_workspace_yaml_points_at_the_code_location():
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]
    assert module["module_name"] == "churn_pipeline.definitions" and module["attribute"] == "defs"


@pytest.mark.parametrize(
    ("timezone", "scheduled_utc", "partition"),
    [
        ("UTC", datetime(2026, 11, 27, 2, 0), "2026-11-26"),
        # 23:30 UTC on the 26th is already 08:30 on the 27th in Tokyo: the 26th has ended there.
        ("Asia/Tokyo", datetime(2026, 11, 26, 23, 30), "2026-11-26"),
        ("America/New_York", datetime(2026, 11, 27, 3, 0), "2026-11-25"),
    ],
)
def test_nightly_schedule_requests_the_day_that_just_ended(monkeypatch, timezone, scheduled_utc, partition):
    monkeypatch.setenv("CHURN_SCHEDULE_TIMEZONE", timezone)
    monkeypatch.setenv("CHURN_SCHEDULE_CRON", "30 1 * * *")
    schedule = build_nightly_schedule(Settings.from_env())
    context = dg.build_schedule_context(
        scheduled_execution_time=scheduled_utc.replace(tzinfo=ZoneInfo("UTC")),
        repository_def=defs.get_repository_def(),
    )
    request = schedule.evaluate_tick(context).run_requests[0]
    assert request.partition_key == partition
    assert request.run_key == f"nightly-{partition}"
    assert schedule.cron_schedule == "30 1 * * *" and schedule.execution_timezone == timezone
    assert schedule.job_name == "churn_nightly"


def test_default_schedule_is_nightly_at_two_utc():
    assert churn_nightly_schedule.cron_schedule == "0 2 * * *"
    assert churn_nightly_schedule.execution_timezone == "UTC"
    assert churn_nightly_schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_job_covers_the_whole_graph():
    job = defs.resolve_job_def("churn_nightly")
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == set(EXPECTED_GRAPH)


def test_database_url_from_environment_is_an_env_var_not_a_literal(monkeypatch):
    monkeypatch.setenv("CHURN_DB_URL", "mysql+pymysql://churn:s3cret@db:3306/churn")
    resources = build_resources(Settings.from_env())
    assert isinstance(resources["io_manager"].db_url, dg.EnvVar)
    monkeypatch.delenv("CHURN_DB_URL")
    local = build_resources(Settings.from_env())
    assert local["io_manager"].db_url.startswith("sqlite:///") and local["io_manager"].db_url.endswith("churn.db")


def test_table_reference_in_docs_is_current():
    from churn_pipeline.table_docs import render

    assert (REPO / "docs" / "tables.md").read_text() == render(), (
        "docs/tables.md is stale: run `python -m churn_pipeline.table_docs > docs/tables.md`"
    )
