"""Shared helpers of the API and dashboard tests (no tests here).

Materializing the graph is the slow part, so each database kind is prepared once per test session
and shared by ``test_api*.py`` and ``test_dashboard*.py`` through a process-level cache (fixtures
cannot be shared across modules without a conftest). The MySQL database is dropped at session end.
"""

from __future__ import annotations

import dataclasses
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from churn_pipeline.api.app import create_app
from churn_pipeline.api.config import ApiConfig
from churn_pipeline.assets import ALL_ASSETS
from churn_pipeline.definitions import build_resources
from churn_pipeline.logic.champion import TrainingOutcome, evaluation_frame
from churn_pipeline.logic.cleaning import clean_snapshot
from churn_pipeline.logic.estimators import candidate_estimators
from churn_pipeline.logic.features import build_features
from churn_pipeline.logic.modeling import ChurnModel, train_churn_model
from churn_pipeline.model_runs import ModelRegistry
from churn_pipeline.settings import Settings
from churn_pipeline.storage import TableStore, mysql_server_database
from churn_pipeline.synthetic import generate_customers, write_snapshot
from churn_pipeline_tests.helpers import raw_frame

DAY1, DAY2 = "2024-03-01", "2024-03-02"
CUSTOMERS_DAY1, CUSTOMERS_DAY2 = 2000, 1200
DAY2_ID_OFFSET = 400  # day 2 repeats customers 400..1599 of day 1: they get a score history


@dataclass(frozen=True)
class Prepared:
    kind: str
    url: str
    settings: Settings


_PREPARED: dict[str, Prepared] = {}


def settings_for(root: Path, db_url: str) -> Settings:
    # One candidate keeps the graph quick: model selection is tested in test_modeling, and serving
    # every kind of model in test_api_models.
    return dataclasses.replace(
        Settings.from_env(), data_dir=root, landing_dir=root / "landing", model_dir=root / "models",
        db_url=db_url, db_url_from_env=False, model_candidates="logistic_regression",
    )


def prepared_database(kind: str, request: pytest.FixtureRequest, tmp_path_factory) -> Prepared:
    """Two snapshot days materialized through the whole graph, once per session and database kind."""
    if kind not in _PREPARED:
        root = tmp_path_factory.mktemp(f"api_{kind}")
        if kind == "mysql":
            database = mysql_server_database(request.getfixturevalue("mysql_server_url"),
                                             f"churn_api_{uuid.uuid4().hex[:10]}")
            url = database.__enter__()
            request.config.add_cleanup(lambda: database.__exit__(None, None, None))
        else:
            url = f"sqlite:///{root / 'churn.db'}"
        settings = settings_for(root, url)
        write_snapshot(generate_customers(CUSTOMERS_DAY1, seed=11), settings.landing_dir, DAY1)
        write_snapshot(generate_customers(CUSTOMERS_DAY2, seed=11, id_offset=DAY2_ID_OFFSET),
                       settings.landing_dir, DAY2)
        for day in (DAY1, DAY2):
            dg.materialize(ALL_ASSETS, partition_key=day, resources=build_resources(settings))
        _PREPARED[kind] = Prepared(kind, url, settings)
    return _PREPARED[kind]


def api_client(settings: Settings, **config) -> TestClient:
    """A TestClient of a fresh application (use it as a context manager: that runs the lifespan)."""
    return TestClient(create_app(ApiConfig(settings=settings, **config)))


def predict_each(client: TestClient, customers: list[dict]) -> list[dict]:
    """``POST /predict`` for each customer in turn (each must answer 200): the single-customer answers."""
    answers = []
    for customer in customers:
        response = client.post("/predict", json=customer)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def sql(url: str, query: str, **params) -> list[dict]:
    with TableStore(url).engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(query), params).mappings().all()]


def customers_json(n: int, seed: int = 99, id_offset: int = 500_000) -> list[dict]:
    """``n`` new customers as JSON objects, typed as a client would send them."""
    frame = generate_customers(n, seed=seed, id_offset=id_offset).drop(columns="Churn")
    records = []
    for row in frame.astype(str).to_dict("records"):
        total = row["TotalCharges"].strip()
        records.append({**row, "SeniorCitizen": int(row["SeniorCitizen"]), "tenure": int(row["tenure"]),
                        "MonthlyCharges": float(row["MonthlyCharges"]),
                        "TotalCharges": float(total) if total else None})
    return records


def as_csv_frame(customers: list[dict]) -> pd.DataFrame:
    """The same customers as the text records of a snapshot file."""
    return pd.DataFrame([{k: "" if v is None else str(v) for k, v in c.items()} for c in customers])


def quick_model(n: int, seed: int, snapshot: str, candidate: str = "logistic_regression",
                lightgbm_trees: int = 60) -> tuple[ChurnModel, pd.DataFrame]:
    """A small model trained directly (no Dagster), and the features it was trained on."""
    raw = raw_frame(generate_customers(n, seed=seed).astype(str).to_dict("records"), snapshot)
    clean, _ = clean_snapshot(raw)
    features = build_features(clean)
    candidates = candidate_estimators(seed, n_jobs=1)
    candidates["lightgbm"].set_params(n_estimators=lightgbm_trees)
    candidates["random_forest"].set_params(n_estimators=20)
    # Two folds and one selection on a small sample: what is tested here is serving, not selection.
    model = train_churn_model(features, snapshot, candidates={candidate: candidates[candidate]}, folds=2,
                              selection_rows=200)
    return model, features


def register_champion(url: str, model_dir: Path, model: ChurnModel, features: pd.DataFrame) -> str:
    """Register ``model`` as a newly promoted champion, as the pipeline's training step does."""
    outcome = TrainingOutcome(model, promoted=True, champion_version=None, decision="promoted by a test",
                              serving_metrics=model.metrics, evaluation=evaluation_frame(model, features))
    return ModelRegistry(url, model_dir).register(outcome, run_id=f"test-{uuid.uuid4().hex[:12]}",
                                                  trained_at=datetime.now(UTC).replace(tzinfo=None))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
