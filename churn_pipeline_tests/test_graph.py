"""The whole asset graph through ``materialize``, on SQLite and MariaDB, checked with SQL."""

from __future__ import annotations

import dataclasses

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from churn_pipeline.assets import ALL_ASSETS
from churn_pipeline.definitions import build_resources
from churn_pipeline.settings import Settings
from churn_pipeline.storage import TableStore
from churn_pipeline.summary import load_summary
from churn_pipeline.synthetic import generate_customers, write_snapshot

DAY = "2024-03-01"
NEXT_DAY = "2024-03-02"


def _settings(tmp_path, db_url) -> Settings:
    # Two candidates keep the graph tests quick; model selection itself is tested in test_modeling.
    return dataclasses.replace(
        Settings.from_env(), data_dir=tmp_path, landing_dir=tmp_path / "landing",
        model_dir=tmp_path / "models", db_url=db_url, db_url_from_env=False,
        model_candidates="logistic_regression,lightgbm",
    )


def _materialize(settings: Settings, day: str, raise_on_error: bool = True):
    return dg.materialize(ALL_ASSETS, partition_key=day, resources=build_resources(settings),
                          raise_on_error=raise_on_error)


def _sql(url: str, query: str, **params):
    with TableStore(url).engine.connect() as conn:
        return conn.execute(sa.text(query), params).mappings().all()


def test_whole_graph_materializes_and_sql_matches_the_summary(tmp_path, db_url):
    settings = _settings(tmp_path, db_url)
    snapshot = generate_customers(3000, seed=5, duplicate_rate=0.01, malformed_rate=0.01)
    write_snapshot(snapshot, settings.landing_dir, DAY)

    result = _materialize(settings, DAY)
    assert result.success
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"rows_accounted": True, "quality_floor": True, "calibration": True,
                      "probabilities_complete": True, "score_drift": True}

    counts = _sql(db_url, """
        SELECT (SELECT COUNT(*) FROM raw_customers WHERE snapshot_date = :d) AS raw_rows,
               (SELECT COUNT(*) FROM clean_customers WHERE snapshot_date = :d) AS clean_rows,
               (SELECT COUNT(*) FROM rejected_customers WHERE snapshot_date = :d) AS rejected_rows,
               (SELECT COUNT(*) FROM customer_features WHERE snapshot_date = :d) AS feature_rows,
               (SELECT COUNT(*) FROM clean_customers WHERE snapshot_date = :d AND churned = 0) AS active,
               (SELECT COUNT(*) FROM scored_customers WHERE snapshot_date = :d) AS scored_rows,
               (SELECT COUNT(*) FROM model_runs) AS trainings,
               (SELECT COUNT(*) FROM segment_kpis WHERE snapshot_date = :d) AS segment_rows
    """, d=DAY)[0]
    assert counts["raw_rows"] == len(snapshot)
    assert counts["clean_rows"] + counts["rejected_rows"] == counts["raw_rows"]
    assert counts["rejected_rows"] >= 30
    assert counts["feature_rows"] == counts["clean_rows"]
    assert counts["scored_rows"] == counts["active"]
    assert counts["trainings"] == 1
    assert counts["segment_rows"] == 3 + 5 + 3 + 4

    summary = load_summary(db_url, DAY)
    sql = _sql(db_url, """
        SELECT COUNT(*) AS customers, SUM(churn_probability) AS churners,
               SUM(churn_probability * monthly_charges * 12) AS at_risk, MAX(model_version) AS version
        FROM scored_customers WHERE snapshot_date = :d
    """, d=DAY)[0]
    assert summary.kpis["active_customers"] == sql["customers"]
    assert summary.kpis["predicted_churners"] == pytest.approx(sql["churners"])
    assert summary.kpis["revenue_at_risk"] == pytest.approx(sql["at_risk"])
    assert summary.kpis["model_version"] == sql["version"]
    top = _sql(db_url, "SELECT customer_id FROM scored_customers WHERE snapshot_date = :d "
                       "ORDER BY expected_revenue_loss DESC, churn_probability DESC LIMIT 5", d=DAY)
    assert summary.call_first["customer_id"].tolist() == [r["customer_id"] for r in top]
    text = summary.render()
    assert f"{sql['customers']:,}" in text and f"${sql['at_risk']:,.2f}" in text

    run = _sql(db_url, "SELECT model_version, promoted, champion_version, training_rows FROM model_runs")[0]
    assert run["model_version"] == sql["version"] == run["champion_version"] and run["promoted"]
    assert (settings.model_dir / f"churn_model_{run['model_version']}.joblib").is_file()
    evaluation = _sql(db_url, "SELECT COUNT(*) AS n, SUM(churn_probability) AS p, SUM(churned) AS y "
                              "FROM model_evaluation WHERE model_version = :v", v=run["model_version"])[0]
    assert evaluation["n"] == run["training_rows"] == counts["clean_rows"]
    assert abs(float(evaluation["p"]) / float(evaluation["y"]) - 1) < 0.1  # calibrated out of fold


def test_rerunning_a_day_is_idempotent_and_other_days_are_untouched(tmp_path, sqlite_url):
    settings = _settings(tmp_path, sqlite_url)
    write_snapshot(generate_customers(1500, seed=1), settings.landing_dir, DAY)
    write_snapshot(generate_customers(1200, seed=2), settings.landing_dir, NEXT_DAY)
    _materialize(settings, DAY)
    _materialize(settings, NEXT_DAY)
    store = TableStore(sqlite_url)
    first = store.read("scored_customers", partition=DAY)
    other_day = store.read("scored_customers", partition=NEXT_DAY)
    _materialize(settings, DAY)
    pd.testing.assert_frame_equal(store.read("scored_customers", partition=DAY), first)
    pd.testing.assert_frame_equal(store.read("scored_customers", partition=NEXT_DAY), other_day)
    per_day = _sql(sqlite_url, "SELECT snapshot_date, COUNT(*) AS n FROM raw_customers GROUP BY snapshot_date")
    assert sorted(r["n"] for r in per_day) == [1200, 1500]
    # Champion / challenger: every day's scores name the model its training row says serves.
    runs = _sql(sqlite_url, "SELECT snapshot_date, champion_version, promoted, decision FROM model_runs "
                            "ORDER BY trained_at")
    assert len(runs) == 3 and runs[0]["promoted"] and all(r["decision"] for r in runs)
    for day in (DAY, NEXT_DAY):
        serving = [r["champion_version"] for r in runs if str(r["snapshot_date"]).startswith(day)][-1]
        assert set(store.read("scored_customers", partition=day)["model_version"]) == {serving}


def test_a_broken_file_fails_the_run_and_keeps_the_stored_day(tmp_path, sqlite_url):
    settings = _settings(tmp_path, sqlite_url)
    path = write_snapshot(generate_customers(1500, seed=1), settings.landing_dir, DAY)
    _materialize(settings, DAY)
    before = TableStore(sqlite_url).read("scored_customers", partition=DAY)
    path.write_text("customerID;gender\n1;2\n")
    result = _materialize(settings, DAY, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "not comma-separated" in failure.step_failure_data.error.message
    assert str(path) in failure.step_failure_data.error.message
    pd.testing.assert_frame_equal(TableStore(sqlite_url).read("scored_customers", partition=DAY), before)
