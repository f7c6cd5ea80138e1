"""What the production code location declares: freshness, retries, sensors, jobs."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.definitions.freshness import TimeWindowFreshnessPolicy  # not re-exported by dagster

from churn_pipeline.definitions import FRESH_ASSETS, build_definitions, defs, freshness_policy


def test_morning_answers_declare_freshness_and_the_rest_do_not():
    policies = {spec.key.to_user_string(): spec.freshness_policy for spec in defs.resolve_all_asset_specs()}
    assert set(FRESH_ASSETS) == {"scored_customers", "churn_kpis"}
    for name in FRESH_ASSETS:
        policy = policies[name]
        assert isinstance(policy, TimeWindowFreshnessPolicy)
        assert policy.fail_window.to_timedelta() == timedelta(hours=26)
        assert policy.warn_window.to_timedelta() == timedelta(hours=25)
    assert {name for name, policy in policies.items() if policy is not None} == set(FRESH_ASSETS)


def test_freshness_window_follows_the_environment(monkeypatch):
    monkeypatch.setenv("CHURN_FRESHNESS_HOURS", "50")
    assert freshness_policy().fail_window.to_timedelta() == timedelta(hours=50)
    specs = {s.key.to_user_string(): s for s in build_definitions().resolve_all_asset_specs()}
    assert specs["churn_kpis"].freshness_policy.fail_window.to_timedelta() == timedelta(hours=50)
    monkeypatch.setenv("CHURN_FRESHNESS_HOURS", "1")
    with pytest.raises(ValueError, match="CHURN_FRESHNESS_HOURS"):
        freshness_policy()


def test_nightly_steps_retry_with_exponential_backoff_in_one_process():
    job = defs.resolve_job_def("churn_nightly")
    policy = job.op_retry_policy
    assert policy.max_retries == 3 and policy.delay == 15
    assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS
    assert job.executor_def.name == "in_process"


def test_sensors_jobs_and_schedules_are_registered_and_on_by_default():
    repo = defs.get_repository_def()
    assert {j.name for j in repo.get_all_jobs()} >= {"churn_nightly", "prune_history"}
    assert {s.name for s in repo.schedule_defs} == {"churn_nightly_schedule", "prune_history_schedule"}
    sensors = {s.name: s for s in repo.sensor_defs}
    assert set(sensors) == {"landing_file_sensor", "churn_failure_alert"}
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    assert sensors["landing_file_sensor"].job_name == "churn_nightly"
