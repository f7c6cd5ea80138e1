"""Schemathesis fuzzes every operation of the API's own OpenAPI spec: no input ever gets a 5xx, and the
answers conform to what the spec documents (status codes, content types, response schemas).

Runs in-process against the ASGI application (no network: a guard refuses any connection that is not
to the loopback database), over the two snapshot days the whole graph writes in ``test_api_support``:

- open (no API keys, as in local development) on SQLite;
- with API keys, as in production, on MariaDB: the generated requests carry the key, and the
  ``ignored_auth`` check re-sends them without it / with a wrong one and expects 401.

Deterministic (a fixed seed, derandomized Hypothesis, no example database) and bounded: at most
``MAX_EXAMPLES`` generated cases per operation in the fuzzing phase, plus Schemathesis' examples and
coverage phases (boundary values, missing and malformed parameters).

Left out on purpose: ``positive_data_acceptance`` (a customer valid by the JSON schema may still break
a cross-field rule the schema cannot express, e.g. add-ons 'No internet service' exactly when
InternetService is 'No': a 422 naming the field is the right answer) and ``negative_data_rejection``
(the API deliberately accepts what the pipeline's files accept beyond the schema's letter: numbers as
strings such as ``"tenure": "12"``, ``SeniorCitizen`` as ``"1"``, a customerID with surrounding spaces).
"""

from __future__ import annotations

import dataclasses
import socket
from collections import Counter, defaultdict

import pytest
import schemathesis
from schemathesis.python import asgi

from churn_pipeline.api.app import create_app
from churn_pipeline.api.config import ApiConfig
from churn_pipeline.api.security import new_key
from churn_pipeline.settings import Settings
from churn_pipeline_tests.test_api_support import prepared_database

MAX_EXAMPLES = 25
# The batch limit is a setting (CHURN_API_MAX_BATCH); a small one keeps the boundary cases (maxItems + 1
# customers) cheap to generate, and the limit's code is the same.
MAX_BATCH = 5
SEED = 20_241_126
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
KEY, KEY_DIGEST = new_key()  # made for this test run


def _config(auth: dict | None = None) -> schemathesis.Config:
    checks = {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}
    operations = []
    if auth:
        checks["ignored_auth"] = {"enabled": True}
        # A batch is scored by the pipeline's own code (~0.1 s however small): the open run fuzzes it in
        # full; here, where only the key differs, a few cases show it is guarded like every route.
        operations.append({"include-path": "/predict/batch", "phases": {"coverage": {"enabled": False}},
                           "generation": {"max-examples": 8}})
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "checks": checks,
        **({"auth": {"openapi": auth}} if auth else {}),
        **({"operations": operations} if operations else {}),
    })


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Any connection but to the local test database fails the test: everything else is in-process."""
    real_connect = socket.socket.connect

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise AssertionError(f"unexpected network access to {address} during the schemathesis run")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


class LateApp:
    """The ASGI application a schema calls, set by a fixture: the schema is loaded at import (the spec
    needs no database), the application behind it needs the database a fixture prepares."""

    def __init__(self):
        self.target = None

    async def __call__(self, scope, receive, send):
        assert self.target is not None, "no application set: the fixture has not run"
        await self.target(scope, receive, send)


def _spec() -> dict:
    """The OpenAPI document, from an application that is never started: the spec needs no database."""
    settings = dataclasses.replace(Settings.from_env(), db_url="sqlite://", db_url_from_env=False)
    return create_app(ApiConfig(settings=settings, max_batch=MAX_BATCH, api_key_sha256=(KEY_DIGEST,))).openapi()


@pytest.fixture(scope="module")
def lifespans():
    """Schemathesis starts each application's lifespan once and keeps it; stop them with the module."""
    yield
    asgi.shutdown_lifespans()


OPEN_APP, KEYED_APP = LateApp(), LateApp()


@pytest.fixture(scope="module")
def open_app(request, tmp_path_factory, lifespans):
    db = prepared_database("sqlite", request, tmp_path_factory)
    OPEN_APP.target = create_app(ApiConfig(settings=db.settings, max_batch=MAX_BATCH))
    return OPEN_APP


@pytest.fixture(scope="module")
def keyed_app(request, tmp_path_factory, lifespans):
    db = prepared_database("mysql", request, tmp_path_factory)
    KEYED_APP.target = create_app(ApiConfig(settings=db.settings, max_batch=MAX_BATCH, api_key_sha256=(KEY_DIGEST,),
                                            require_auth=True))
    return KEYED_APP


SPEC = _spec()
open_schema = schemathesis.openapi.from_dict(SPEC, config=_config())
keyed_schema = schemathesis.openapi.from_dict(
    SPEC, config=_config({"ApiKeyHeader": {"api_key": KEY}, "BearerKey": {"bearer": KEY}}))
open_schema.app, keyed_schema.app = OPEN_APP, KEYED_APP


ANSWERS: dict[str, dict[str, Counter]] = {"open": defaultdict(Counter), "keyed": defaultdict(Counter)}


@open_schema.parametrize()
def test_open_api_conforms_and_never_fails(case, open_app):
    response = case.call_and_validate()
    ANSWERS["open"][case.operation.label][response.status_code] += 1


@keyed_schema.parametrize()
def test_keyed_api_conforms_never_fails_and_needs_the_key(case, keyed_app):
    response = case.call_and_validate()
    ANSWERS["keyed"][case.operation.label][response.status_code] += 1


@pytest.mark.parametrize("run", ["open", "keyed"])
def test_the_fuzzing_got_past_validation_on_every_operation(run):
    """Not only 422s and 401s: every operation was also answered for real (a customer id made up by the
    fuzzer is never stored, so that operation's real answers are 404s, which query the database too)."""
    answers = ANSWERS[run]
    if not answers:
        pytest.skip(f"the {run} run did not run")
    operations = {f"{method.upper()} {path}" for path, methods in SPEC["paths"].items() for method in methods}
    assert set(answers) == operations
    for operation, statuses in answers.items():
        real = {200, 404} if operation == "GET /customers/{customer_id}" else {200}
        assert real & set(statuses), (operation, dict(statuses))
    assert not any(status >= 500 for statuses in answers.values() for status in statuses)

