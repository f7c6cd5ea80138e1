"""The API against a database the whole graph has filled, on SQLite and on MariaDB: scores agree with
the ``score`` command, bad input is a 422 naming the field, and every number equals the SQL on the tables."""

from __future__ import annotations

import csv
import io
import json

import pandas as pd
import pytest

from churn_pipeline import cli
from churn_pipeline_tests.test_api_support import (
    DAY1,
    DAY2,
    DAY2_ID_OFFSET,
    api_client,
    as_csv_frame,
    customers_json,
    predict_each,
    prepared_database,
    sql,
)


@pytest.fixture(scope="module", params=["sqlite", "mysql"])
def db(request, tmp_path_factory):
    return prepared_database(request.param, request, tmp_path_factory)


@pytest.fixture(scope="module")
def client(db):
    with api_client(db.settings) as test_client:
        yield test_client


def _champion(url: str) -> str:
    return sql(url, "SELECT model_version FROM model_runs WHERE promoted = 1 ORDER BY trained_at DESC LIMIT 1")[0][
        "model_version"]


def test_health_names_the_serving_champion(client, db):
    health = client.get("/health")
    assert health.status_code == 200, health.text
    body = health.json()
    assert body["status"] == "ok" and body["database"] == {"reachable": True, "error": None}
    serving = body["model"]["serving"]
    assert serving["version"] == _champion(db.url) and serving["fast_path"] is True
    run = sql(db.url, "SELECT roc_auc, algorithm FROM model_runs WHERE model_version = :v", v=serving["version"])[0]
    assert serving["roc_auc"] == pytest.approx(run["roc_auc"]) and serving["algorithm"] == run["algorithm"]
    assert client.get("/model").json()["version"] == serving["version"]


def test_single_batch_and_score_command_give_the_same_answers(client, db, tmp_path, monkeypatch):
    customers = customers_json(60)
    trained = sql(db.url, "SELECT customer_id FROM model_evaluation WHERE model_version = :v ORDER BY customer_id "
                          "LIMIT 5", v=_champion(db.url))
    for customer, row in zip(customers, trained):  # customers the champion saw: their fold models score them
        customer["customerID"] = row["customer_id"]
    customers[7].update(tenure=0, TotalCharges=None)  # a brand-new customer is valid input

    singles = predict_each(client, customers)
    batch = client.post("/predict/batch", json={"customers": customers})
    assert batch.status_code == 200, batch.text
    predictions = batch.json()["predictions"]

    as_csv_frame(customers).to_csv(tmp_path / "in.csv", index=False)
    monkeypatch.setenv("CHURN_DB_URL", db.url)
    monkeypatch.setenv("CHURN_MODEL_DIR", str(db.settings.model_dir))
    assert cli.main(["score", "--input", str(tmp_path / "in.csv"), "--output", str(tmp_path / "out.csv")]) == 0
    command = pd.read_csv(tmp_path / "out.csv", dtype={"customerID": str})

    ids = [c["customerID"] for c in customers]
    assert [s["customerID"] for s in singles] == [p["customerID"] for p in predictions] == ids
    assert command["customerID"].tolist() == ids
    for column in ("churn_probability", "expected_revenue_loss"):
        expected = command[column].to_numpy()
        assert [s[column] for s in singles] == pytest.approx(expected, rel=1e-12)
        assert [p[column] for p in predictions] == pytest.approx(expected, rel=1e-12)
    assert [s["risk_tier"] for s in singles] == [p["risk_tier"] for p in predictions] == command["risk_tier"].tolist()
    reasons = [r.split("; ") for r in command["top_reasons"]]
    assert [s["top_reasons"] for s in singles] == [p["top_reasons"] for p in predictions] == reasons
    assert {s["model_version"] for s in singles} == {p["model_version"] for p in predictions} == {_champion(db.url)}
    assert [p["priority_rank"] for p in predictions] == command["priority_rank"].tolist()
    by_rank = sorted(predictions, key=lambda p: p["priority_rank"])
    assert [p["expected_revenue_loss"] for p in by_rank] == sorted((p["expected_revenue_loss"] for p in predictions),
                                                                   reverse=True)


def _errors(response) -> dict[tuple, dict]:
    assert response.status_code == 422, response.text
    return {tuple(e["loc"]): e for e in response.json()["detail"]}


@pytest.mark.parametrize(("change", "field", "kind", "words"), [
    ({"MonthlyCharges": "abc"}, "MonthlyCharges", "float_parsing", "valid number"),
    ({"MonthlyCharges": 20_000}, "MonthlyCharges", "less_than_equal", "10000"),
    ({"Contract": "Weekly"}, "Contract", "literal_error", "'Month-to-month', 'One year' or 'Two year'"),
    ({"gender": None}, "gender", "missing", "Field required"),
    ({"tenure": -1}, "tenure", "greater_than_equal", "greater than or equal to 0"),
    ({"tenure": 5, "TotalCharges": ""}, "TotalCharges", "missing_value", "only a new customer (tenure 0)"),
    ({"InternetService": "No"}, "OnlineBackup", "inconsistent_services", "must be 'No internet service'"),
    ({"monthly_charges": 10.0}, "monthly_charges", "extra_forbidden", "not permitted"),
])
def test_bad_input_is_a_422_naming_the_field(client, change, field, kind, words):
    customer = dict(customers_json(1)[0], InternetService="DSL", OnlineBackup="Yes")
    customer.update(change)
    customer = {k: v for k, v in customer.items() if v is not None}
    error = _errors(client.post("/predict", json=customer))[("body", field)]
    assert error["type"] == kind and words in error["msg"]
    batch = [customers_json(1, seed=1)[0], customer]
    assert ("body", "customers", 1, field) in _errors(client.post("/predict/batch", json={"customers": batch}))


def test_a_batch_is_refused_when_too_large_or_inconsistent(db):
    customers = customers_json(4)
    with api_client(db.settings, max_batch=3) as small:
        error = _errors(small.post("/predict/batch", json={"customers": customers}))[("body", "customers")]
        assert error["type"] == "too_long" and "at most 3 items" in error["msg"]
        schema = small.get("/openapi.json").json()["components"]["schemas"]["BatchRequest"]
        assert schema["properties"]["customers"]["maxItems"] == 3
        huge = json.dumps({"customers": customers[:1], "padding": " " * 200_000})
        refused = small.post("/predict/batch", content=huge, headers={"Content-Type": "application/json"})
        assert refused.status_code == 413 and "exceeds the limit" in refused.json()["detail"]
        twice = small.post("/predict/batch", json={"customers": [customers[0], customers[0]]})
        assert "repeat of an earlier line" in _errors(twice)[("body", "customers", 1)]["msg"]
        empty = _errors(small.post("/predict/batch", json={"customers": []}))
        assert empty[("body", "customers")]["type"] == "too_short"


def test_kpis_and_segments_equal_the_tables(client, db):
    body = client.get("/kpis").json()
    stored = sql(db.url, "SELECT * FROM business_kpis ORDER BY snapshot_date")
    assert [h["snapshot_date"] for h in body["history"]] == [DAY1, DAY2]
    assert body["latest"]["snapshot_date"] == DAY2
    for got, row in zip(body["history"], stored):
        for key, value in got.items():
            if key != "snapshot_date":
                assert value == pytest.approx(row[key]), key
    totals = sql(db.url, "SELECT COUNT(*) AS n, SUM(expected_revenue_loss) AS risk, SUM(churn_probability) AS p "
                         "FROM scored_customers WHERE snapshot_date = :d", d=DAY2)[0]
    assert body["latest"]["active_customers"] == totals["n"]
    assert body["latest"]["revenue_at_risk"] == pytest.approx(totals["risk"])
    assert body["latest"]["predicted_churners"] == pytest.approx(totals["p"])
    model = sql(db.url, "SELECT roc_auc FROM model_runs WHERE model_version = :v", v=body["latest"]["model_version"])
    assert body["model"]["version"] == body["latest"]["model_version"]
    assert body["model"]["roc_auc"] == pytest.approx(model[0]["roc_auc"])

    older = client.get("/kpis", params={"date": DAY1}).json()
    assert older["latest"]["snapshot_date"] == DAY1 and len(older["history"]) == 1
    assert client.get("/kpis", params={"date": "2020-01-01"}).status_code == 404
    assert ("query", "date") in _errors(client.get("/kpis", params={"date": "yesterday"}))

    segments = client.get("/segments", params={"date": DAY1}).json()
    rows = sql(db.url, "SELECT * FROM segment_kpis WHERE snapshot_date = :d", d=DAY1)
    assert segments["snapshot_date"] == DAY1 and len(segments["segments"]) == len(rows) == 15
    by_key = {(r["segment_type"], r["segment_value"]): r for r in rows}
    for segment in segments["segments"]:
        row = by_key[(segment["segment_type"], segment["segment_value"])]
        assert segment["active_customers"] == row["active_customers"]
        assert segment["revenue_at_risk"] == pytest.approx(row["revenue_at_risk"])
    contract = client.get("/segments", params={"segment_type": "contract"}).json()["segments"]
    assert [s["segment_value"] for s in contract] == [
        r["segment_value"] for r in sql(db.url, "SELECT segment_value FROM segment_kpis WHERE snapshot_date = :d AND "
                                                "segment_type = 'contract' ORDER BY revenue_at_risk DESC", d=DAY2)]


def _call_list(url: str, where: str = "", limit: int = 1_000_000, offset: int = 0, **params) -> list[dict]:
    return sql(url, f"SELECT * FROM scored_customers WHERE snapshot_date = :d {where} ORDER BY priority_rank "
                    "LIMIT :limit OFFSET :offset", d=params.pop("d", DAY2), limit=limit, offset=offset, **params)


def test_call_list_pages_and_filters_equal_the_sql(client, db):
    page = client.get("/customers/at-risk", params={"limit": 20}).json()
    expected = _call_list(db.url, limit=20)
    assert page["snapshot_date"] == DAY2 and page["total"] == len(_call_list(db.url))
    assert [c["customer_id"] for c in page["customers"]] == [r["customer_id"] for r in expected]
    first = page["customers"][0]
    assert first["churn_probability"] == pytest.approx(expected[0]["churn_probability"])
    assert first["top_reasons"] == expected[0]["top_reasons"].split("; ") and first["priority_rank"] == 1

    filtered = client.get("/customers/at-risk", params={"tier": "High", "contract": "Month-to-month",
                                                        "limit": 7, "offset": 7}).json()
    where = "AND risk_tier = 'High' AND contract = 'Month-to-month'"
    assert filtered["total"] == len(_call_list(db.url, where))
    assert [c["customer_id"] for c in filtered["customers"]] == [
        r["customer_id"] for r in _call_list(db.url, where, limit=7, offset=7)]
    generic = client.get("/customers/at-risk", params={"segment_type": "tenure_band", "segment_value": "0-5 months",
                                                       "limit": 30}).json()
    named = client.get("/customers/at-risk", params={"tenure_band": "0-5 months", "limit": 30}).json()
    assert generic == named and {c["tenure_band"] for c in named["customers"]} == {"0-5 months"}

    walked, after = [], None  # keyset paging through every Medium customer
    while True:
        params = {"tier": "Medium", "limit": 40, **({"after_rank": after} if after is not None else {})}
        part = client.get("/customers/at-risk", params=params).json()
        walked += [c["customer_id"] for c in part["customers"]]
        after = part["next_after_rank"]
        if after is None:
            break
    assert walked == [r["customer_id"] for r in _call_list(db.url, "AND risk_tier = 'Medium'")]

    older = client.get("/customers/at-risk", params={"date": DAY1, "limit": 5}).json()
    assert [c["customer_id"] for c in older["customers"]] == [
        r["customer_id"] for r in _call_list(db.url, limit=5, d=DAY1)]
    too_many = _errors(client.get("/customers/at-risk", params={"limit": 1001}))
    assert too_many[("query", "limit")]["type"] == "less_than_equal"
    assert ("query", "tier") in _errors(client.get("/customers/at-risk", params={"tier": "Urgent"}))
    assert ("query", "segment_value") in _errors(client.get("/customers/at-risk", params={"segment_type": "contract"}))
    wrong = client.get("/customers/at-risk", params={"segment_type": "contract", "segment_value": "DSL"})
    assert "not a contract segment" in _errors(wrong)[("query", "segment_value")]["msg"]
    assert client.get("/customers/at-risk", params={"date": "2020-01-01"}).status_code == 404


def test_csv_download_has_the_same_rows_as_the_sql(client, db):
    response = client.get("/customers/at-risk.csv", params={"tier": "High", "payment_method": "Electronic check"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert f'call_list_{DAY2}_risk_tier-High_payment_method-Electronic-check.csv' in response.headers[
        "content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    expected = _call_list(db.url, "AND risk_tier = 'High' AND payment_method = 'Electronic check'")
    assert len(rows) == len(expected) > 0
    for got, row in zip(rows, expected):
        assert got["customer_id"] == row["customer_id"] and int(got["priority_rank"]) == row["priority_rank"]
        assert float(got["churn_probability"]) == row["churn_probability"]
        assert float(got["expected_revenue_loss"]) == row["expected_revenue_loss"]
        assert got["top_reasons"] == row["top_reasons"] and got["snapshot_date"] == DAY2
    everyone = client.get("/customers/at-risk.csv").text.splitlines()
    assert len(everyone) - 1 == len(_call_list(db.url))
    assert len(client.get("/customers/at-risk.csv", params={"limit": 10}).text.splitlines()) == 11


def test_customer_score_and_history(client, db):
    both = sql(db.url, "SELECT customer_id FROM scored_customers WHERE snapshot_date = :d2 AND customer_id IN "
                       "(SELECT customer_id FROM scored_customers WHERE snapshot_date = :d1) "
                       "ORDER BY customer_id LIMIT 1", d1=DAY1, d2=DAY2)[0]["customer_id"]
    body = client.get(f"/customers/{both}").json()
    history = sql(db.url, "SELECT * FROM scored_customers WHERE customer_id = :c ORDER BY snapshot_date", c=both)
    assert [h["snapshot_date"] for h in body["history"]] == [DAY1, DAY2] and body["in_latest_snapshot"]
    assert [h["churn_probability"] for h in body["history"]] == pytest.approx([h["churn_probability"] for h in history])
    assert body["latest"]["priority_rank"] == history[-1]["priority_rank"]

    gone = sql(db.url, "SELECT customer_id FROM scored_customers WHERE snapshot_date = :d1 AND customer_id NOT IN "
                       "(SELECT customer_id FROM scored_customers WHERE snapshot_date = :d2) LIMIT 1",
               d1=DAY1, d2=DAY2)[0]["customer_id"]
    old = client.get(f"/customers/{gone}").json()
    assert old["latest"]["snapshot_date"] == DAY1 and not old["in_latest_snapshot"]
    missing = client.get("/customers/NO-SUCH-CUSTOMER")
    assert missing.status_code == 404 and "NO-SUCH-CUSTOMER" in missing.json()["detail"]
    assert DAY2_ID_OFFSET > 0  # day 2 drops the first customers of day 1: that is what makes `gone` exist
