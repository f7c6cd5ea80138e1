"""The API follows the model registry: a newly promoted champion is served without a restart, never
half-loaded; no model or no database is a 503 that says so, never a made-up probability."""

from __future__ import annotations

import time

import pytest

from churn_pipeline.logic.serving import score_telco_frame
from churn_pipeline.storage import TableStore
from churn_pipeline_tests.test_api_support import (
    api_client,
    as_csv_frame,
    customers_json,
    free_port,
    quick_model,
    register_champion,
    settings_for,
)


def test_a_new_champion_is_served_without_a_restart(tmp_path, db_url):
    settings = settings_for(tmp_path, db_url)
    first, first_features = quick_model(700, seed=31, snapshot="2024-04-01")
    second, second_features = quick_model(700, seed=32, snapshot="2024-04-02", candidate="lightgbm")
    old = register_champion(db_url, settings.model_dir, first, first_features)
    customer = customers_json(1, seed=8)[0]
    first_answer, second_answer = (score_telco_frame(as_csv_frame([customer]), model, settings.horizon_months).iloc[0]
                                   for model in (first, second))

    with api_client(settings, model_refresh_seconds=0.2) as client:
        assert client.get("/health").json()["model"]["serving"]["version"] == old
        assert client.post("/predict", json=customer).json()["model_version"] == old

        new = register_champion(db_url, settings.model_dir, second, second_features)
        assert new != old
        expected = {old: first_answer, new: second_answer}
        answers, deadline = [], time.monotonic() + 30
        while time.monotonic() < deadline:  # score all through the swap: each answer is wholly one model's
            response = client.post("/predict", json=customer)
            assert response.status_code == 200, response.text
            answers.append(response.json())
            if answers[-1]["model_version"] == new:
                break
            time.sleep(0.02)
        assert answers[-1]["model_version"] == new, "the new champion was not picked up within 30 s"
        for answer in answers:
            right = expected[answer["model_version"]]
            assert answer["churn_probability"] == pytest.approx(right["churn_probability"], rel=1e-12)
            assert answer["top_reasons"] == right["top_reasons"].split("; ")
        health = client.get("/health").json()
        assert health["model"]["serving"]["version"] == new and health["model"]["serving"]["algorithm"] == "lightgbm"
        assert client.get("/model").json()["version"] == new


def test_no_registered_model_is_a_503_with_the_reason(tmp_path, sqlite_url):
    with api_client(settings_for(tmp_path, sqlite_url)) as client:
        for response in (client.post("/predict", json=customers_json(1)[0]),
                         client.post("/predict/batch", json={"customers": customers_json(2)})):
            assert response.status_code == 503
            assert "no champion model is registered in model_runs yet" in response.json()["detail"]
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["model"]["loaded"] is False
        tables = client.get("/kpis")
        assert tables.status_code == 503 and "run the pipeline first" in tables.json()["detail"]


def test_an_unreachable_database_is_a_503_with_the_reason(tmp_path):
    closed = f"mysql+pymysql://root@127.0.0.1:{free_port()}/churn"  # nothing listens there
    with api_client(settings_for(tmp_path, closed)) as client:
        predict = client.post("/predict", json=customers_json(1)[0])
        assert predict.status_code == 503
        assert "cannot read the model registry" in predict.json()["detail"]
        assert "Can't connect" in predict.json()["detail"]
        for path in ("/kpis", "/segments", "/customers/at-risk", "/customers/at-risk.csv", "/customers/0001-ABCDE"):
            response = client.get(path)
            assert response.status_code == 503, path
            assert "database cannot be reached" in response.json()["detail"], path
        health = client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "unavailable" and health.json()["database"]["reachable"] is False


def test_predictions_go_on_when_the_database_goes_away(tmp_path, mysql_url):
    settings = settings_for(tmp_path, mysql_url)
    model, features = quick_model(600, seed=33, snapshot="2024-04-03")
    version = register_champion(mysql_url, settings.model_dir, model, features)
    with api_client(settings, model_refresh_seconds=0.2) as client:
        assert client.post("/predict", json=customers_json(1)[0]).json()["model_version"] == version
        with TableStore(mysql_url).engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE `{TableStore(mysql_url).engine.url.database}`")
        deadline = time.monotonic() + 15
        while "cannot read the model registry" not in (client.get("/health").json()["model"]["error"] or ""):
            assert time.monotonic() < deadline, "the refresher never noticed the database was gone"
            time.sleep(0.1)
        assert client.post("/predict", json=customers_json(1)[0]).json()["model_version"] == version
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        assert health.json()["model"]["loaded"] and health.json()["database"]["reachable"] is False
        assert client.get("/kpis").status_code == 503
