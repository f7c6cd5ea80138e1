"""Access control, request limits and CORS of the API (in-process, over the graph's SQLite tables).

Keys: every scoring and data route answers 401 with a ``WWW-Authenticate`` challenge without a valid key
(``Authorization: Bearer`` or ``X-API-Key``), ``/health`` stays open but says nothing without one, no
keys is open with a warning, ``CHURN_API_REQUIRE_AUTH`` without keys stops the start. Limits: bodies
over the limit are a 413 whether announced or streamed (chunked), too many customers a 422. CORS: no
header at all unless origins are configured, and then only for exactly those. The real server (uvicorn)
is exercised the same way in ``test_dashboard.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import pytest
import yaml

from churn_pipeline.api import security
from churn_pipeline.api.app import create_app
from churn_pipeline.api.config import ApiConfig
from churn_pipeline.api.security import new_key
from churn_pipeline_tests.test_api_support import DAY2, api_client, customers_json, prepared_database

REPO = Path(__file__).resolve().parents[1]
KEY, KEY_DIGEST = new_key()  # made for this test run
OTHER_KEY, OTHER_DIGEST = new_key()
ALLOWED_ORIGIN = "https://bi.example.com"
# Every operation of the API with a request that answers 200 with a valid key.
CALLS = [
    ("POST", "/predict", "one"), ("POST", "/predict/batch", "batch"), ("GET", "/model", None),
    ("GET", "/kpis", None), ("GET", "/segments", None), ("GET", "/customers/at-risk", None),
    ("GET", "/customers/at-risk.csv", None), ("GET", "/customers/{customer_id}", None),
]


@pytest.fixture(scope="module")
def db(request, tmp_path_factory):
    return prepared_database("sqlite", request, tmp_path_factory)


@pytest.fixture(scope="module")
def keyed(db):
    """Two keys accepted (a rotation in progress), CORS open to one origin."""
    with api_client(db.settings, api_key_sha256=(KEY_DIGEST, OTHER_DIGEST.upper()), require_auth=True,
                    cors_origins=(ALLOWED_ORIGIN,)) as client:
        yield client


@pytest.fixture(scope="module")
def open_client(db):
    with api_client(db.settings) as client:
        yield client


def _call(client, method: str, path: str, body: str | None, headers: dict | None = None):
    customers = customers_json(3)
    if path == "/customers/{customer_id}":
        path = "/customers/" + client.get("/customers/at-risk", params={"limit": 1},
                                          headers={"X-API-Key": KEY}).json()["customers"][0]["customer_id"]
    payload = {"one": customers[0], "batch": {"customers": customers}, None: None}[body]
    return client.request(method, path, json=payload, headers=headers or {})


def test_every_operation_but_health_declares_the_keys_in_openapi(keyed):
    spec = keyed.get("/openapi.json").json()  # the spec and /docs need no key
    assert keyed.get("/docs").status_code == 200
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "X-API-Key",
                                       "description": schemes["ApiKeyHeader"]["description"]}
    assert schemes["BearerKey"]["type"] == "http" and schemes["BearerKey"]["scheme"] == "bearer"
    operations = {(method.upper(), path): operation for path, methods in spec["paths"].items()
                  for method, operation in methods.items()}
    assert set(operations) == {(m, p) for m, p, _ in CALLS} | {("GET", "/health")}
    for (method, path), operation in operations.items():
        if path == "/health":
            assert "security" not in operation and "401" not in operation["responses"]
        else:
            assert operation["security"] == [{"ApiKeyHeader": []}, {"BearerKey": []}], (method, path)
            assert "401" in operation["responses"], (method, path)


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
def test_every_scoring_and_data_route_needs_a_valid_key(keyed, method, path, body):
    missing = _call(keyed, method, path, body)
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"] == 'Bearer realm="churn-api"'
    assert missing.json() == {"detail": "an API key is required: send it as 'Authorization: Bearer <key>' or as "
                                        "'X-API-Key: <key>'"}
    for headers in ({"X-API-Key": "not-" + KEY}, {"Authorization": f"Bearer {KEY}x"}, {"X-API-Key": KEY[:-1]}):
        wrong = _call(keyed, method, path, body, headers)
        assert wrong.status_code == 401 and "not valid" in wrong.json()["detail"], headers
        assert wrong.headers["www-authenticate"] == 'Bearer realm="churn-api", error="invalid_token"'
    basic = _call(keyed, method, path, body, {"Authorization": f"Basic {KEY}"})
    assert basic.status_code == 401 and basic.json()["detail"] == "the Authorization header must be 'Bearer <key>'"

    for headers in ({"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer  {KEY} "}, {"X-API-Key": KEY},
                    {"X-API-Key": OTHER_KEY}, {"X-API-Key": "wrong", "Authorization": f"Bearer {KEY}"}):
        answer = _call(keyed, method, path, body, headers)
        assert answer.status_code == 200, (headers, answer.text)


def test_health_is_open_but_names_nothing_without_a_key(keyed, open_client):
    anonymous = keyed.get("/health")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ok", "model": {"loaded": True, "serving": None, "last_checked_at": None,
                                                         "error": None},
                                "database": {"reachable": True, "error": None}}
    assert keyed.get("/health", headers={"X-API-Key": "wrong"}).json() == anonymous.json()
    detailed = keyed.get("/health", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert detailed["model"]["serving"]["version"] and detailed["model"]["last_checked_at"]
    assert open_client.get("/health").json()["model"]["serving"]["version"] == detailed["model"]["serving"]["version"]
    assert keyed.get("/").status_code == 200 and keyed.get("/static/dashboard.js").status_code == 200


def test_an_anonymous_body_is_refused_before_it_is_read(keyed):
    """The key is checked before FastAPI reads (and parses) a body: garbage, or a body over the limit,
    from a client without a key is a 401, never a 422 or 413 that shows the body was looked at."""
    garbage = keyed.post("/predict", content=b"\xff not json", headers={"Content-Type": "application/json"})
    assert garbage.status_code == 401
    huge = keyed.post("/predict/batch", content=b" " * 300_000, headers={"Content-Length": "50000000"})
    assert huge.status_code == 401
    keyed_garbage = keyed.post("/predict", content=b"\xff not json",
                               headers={"Content-Type": "application/json", "X-API-Key": KEY})
    assert keyed_garbage.status_code == 422  # not UTF-8: bad input like malformed JSON, not FastAPI's 400
    assert keyed_garbage.json()["detail"][0]["loc"] == ["body"]


def test_without_keys_the_api_is_open_and_says_so_at_start(db, caplog):
    with caplog.at_level(logging.WARNING, logger="churn_pipeline.api.app"):
        app = create_app(ApiConfig(settings=db.settings))
    assert "API authentication is OFF: CHURN_API_KEYS is empty" in caplog.text
    assert app.state.api_keys.enabled is False
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="churn_pipeline.api.app"):
        create_app(ApiConfig(settings=db.settings, api_key_sha256=(KEY_DIGEST,)))
    assert "authentication is OFF" not in caplog.text


def test_required_auth_without_keys_stops_the_start(db, monkeypatch):
    with pytest.raises(ValueError, match="CHURN_API_REQUIRE_AUTH is true but CHURN_API_KEYS is empty"):
        ApiConfig(settings=db.settings, require_auth=True)
    monkeypatch.setenv("CHURN_API_REQUIRE_AUTH", "true")
    monkeypatch.delenv("CHURN_API_KEYS", raising=False)
    with pytest.raises(ValueError, match="refuses to start without authentication"):
        create_app()  # what `uvicorn churn_pipeline.api.app:app` does first
    monkeypatch.setenv("CHURN_API_KEYS", f" {KEY_DIGEST} , {OTHER_DIGEST},")
    monkeypatch.setenv("CHURN_API_CORS_ORIGINS", f"{ALLOWED_ORIGIN}, http://127.0.0.1:8080")
    config = ApiConfig.from_env()
    assert config.api_key_sha256 == (KEY_DIGEST, OTHER_DIGEST) and config.require_auth
    assert config.cors_origins == (ALLOWED_ORIGIN, "http://127.0.0.1:8080")
    monkeypatch.setenv("CHURN_API_REQUIRE_AUTH", "maybe")
    with pytest.raises(ValueError, match="CHURN_API_REQUIRE_AUTH='maybe' is not true or false"):
        ApiConfig.from_env()


def test_a_plaintext_key_in_the_environment_is_refused_without_echoing_it(db, monkeypatch):
    monkeypatch.setenv("CHURN_API_KEYS", f"{KEY_DIGEST},{KEY}")
    with pytest.raises(ValueError) as error:
        ApiConfig.from_env()
    assert "CHURN_API_KEYS entry 2 is not a SHA-256 hex digest" in str(error.value)
    assert KEY not in str(error.value)
    for origins in ("*", "https://bi.example.com/", "bi.example.com", "https://bi.example.com/path"):
        with pytest.raises(ValueError, match="is not an exact origin"):
            ApiConfig(settings=db.settings, cors_origins=(origins,))


def test_the_key_tool_prints_a_key_and_its_digest(capsys, monkeypatch):
    assert security.main([]) == 0
    out = capsys.readouterr().out
    key = re.search(r"client; it is not stored anywhere\): (\S+)", out).group(1)
    digest = re.search(r"for CHURN_API_KEYS .*:\s+([0-9a-f]{64})", out).group(1)
    assert len(key) >= 43 and hashlib.sha256(key.encode()).hexdigest() == digest
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(key + "\n"))
    assert security.main(["--digest"]) == 0 and capsys.readouterr().out.strip() == digest


def test_bodies_over_the_limit_are_refused_announced_or_streamed(open_client):
    def chunks(size: int, pieces: int):
        for _ in range(pieces):
            yield b" " * size

    announced = open_client.post("/predict", content=b" " * 300_000, headers={"Content-Type": "application/json"})
    assert announced.status_code == 413 and "request body of 300,000 bytes" in announced.json()["detail"]
    streamed = open_client.post("/predict", content=chunks(16_384, 20), headers={"Content-Type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert streamed.json()["detail"] == "request body exceeds the limit of 262,144 bytes for /predict"
    fits = open_client.post("/predict", content=(json.dumps(customers_json(1)[0]).encode(),),
                            headers={"Content-Type": "application/json"})  # streamed too, and small: scored
    assert "content-length" not in fits.request.headers and fits.status_code == 200, fits.text


def test_a_streamed_batch_is_limited_and_too_many_customers_are_a_422(db):
    with api_client(db.settings, max_batch=3) as small:
        limit = ApiConfig(settings=db.settings, max_batch=3).max_batch_bytes
        body = json.dumps({"customers": customers_json(1), "padding": " " * limit}).encode()
        streamed = small.post("/predict/batch", content=(body[i:i + 65_536] for i in range(0, len(body), 65_536)),
                              headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413 and f"limit of {limit:,} bytes" in streamed.json()["detail"]
        too_many = small.post("/predict/batch", json={"customers": customers_json(4)})
        assert too_many.status_code == 422
        assert too_many.json()["detail"][0]["type"] == "too_long" and "at most 3 items" in too_many.text
        assert small.post("/predict/batch", json={"customers": customers_json(3)}).status_code == 200


def test_parameters_that_reached_the_database_are_bounded(open_client):
    """Found in review while adding the fuzzing: a keyset position past 64 bits overflowed SQLite (500),
    a customer id of any length went to the database."""
    rank = open_client.get("/customers/at-risk", params={"after_rank": 2**63})
    assert rank.status_code == 422 and rank.json()["detail"][0]["loc"] == ["query", "after_rank"]
    assert open_client.get("/customers/at-risk", params={"after_rank": 2**63 - 1}).json()["customers"] == []
    long_id = open_client.get("/customers/" + "X" * 65)
    assert long_id.status_code == 422 and long_id.json()["detail"][0]["loc"] == ["path", "customer_id"]
    model = open_client.get("/model").json()
    assert model["trained_at"].endswith("Z") or model["trained_at"].endswith("+00:00")  # RFC 3339: with a zone


def test_no_cors_headers_unless_origins_are_configured(open_client, keyed):
    preflight = {"Origin": ALLOWED_ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    closed = open_client.options("/predict", headers=preflight)
    assert closed.status_code == 405
    assert not any(name.startswith("access-control-") for name in closed.headers)
    read = open_client.get("/kpis", headers={"Origin": ALLOWED_ORIGIN})
    assert read.status_code == 200 and "access-control-allow-origin" not in read.headers

    allowed = keyed.options("/predict", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    for origin in ("https://evil.example.com", "http://bi.example.com", "https://bi.example.com.evil.net"):
        refused = keyed.options("/predict", headers={**preflight, "Origin": origin})
        assert "access-control-allow-origin" not in refused.headers, origin
        answer = keyed.get("/kpis", headers={"Origin": origin, "X-API-Key": KEY})
        assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers, origin
    page = keyed.get("/customers/at-risk.csv", params={"date": DAY2, "limit": 3},
                     headers={"Origin": ALLOWED_ORIGIN, "X-API-Key": KEY})
    assert page.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "content-disposition" in page.headers["access-control-expose-headers"].lower()
    refused_key = keyed.get("/kpis", headers={"Origin": ALLOWED_ORIGIN})  # a browser app can read why
    assert refused_key.status_code == 401 and refused_key.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


def test_the_api_settings_are_wired_through_compose_and_the_env_example():
    """Every CHURN_API_* variable the API reads can be set for the compose `api` service and is listed,
    with instructions, in docker/.env.example; production requires keys."""
    read = set()
    for path in (REPO / "churn_pipeline" / "api").rglob("*.py"):
        read |= set(re.findall(r"\"(CHURN_API_[A-Z0-9_]+)\"", path.read_text()))
    assert {"CHURN_API_KEYS", "CHURN_API_REQUIRE_AUTH", "CHURN_API_CORS_ORIGINS", "CHURN_API_MAX_BATCH",
            "CHURN_API_MODEL_REFRESH_SECONDS"} <= read
    api = yaml.safe_load((REPO / "docker" / "docker-compose.yml").read_text())["services"]["api"]["environment"]
    assert read <= set(api), sorted(read - set(api))
    assert api["CHURN_API_REQUIRE_AUTH"] == "${CHURN_API_REQUIRE_AUTH:-true}"
    example = (REPO / "docker" / ".env.example").read_text()
    values = dict(line.split("=", 1) for line in example.splitlines() if line.strip() and not line.startswith("#"))
    assert read <= set(values), sorted(read - set(values))
    assert values["CHURN_API_KEYS"] == "" and values["CHURN_API_REQUIRE_AUTH"] == "true"
    assert "python -m churn_pipeline.api.security" in example
