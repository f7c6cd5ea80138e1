"""The FastAPI application: ``uvicorn churn_pipeline.api.app:app``.

:func:`create_app` wires settings, the model holder, the database reader, error handlers, middleware and
the routers; tests call it with their own :class:`ApiConfig`. The module attribute ``app`` is created on
first access (PEP 562 ``__getattr__``), from the environment, so importing this module for
``create_app`` has no side effects and a bad setting fails the server's start with its message.

Middleware, outermost first (each refuses before the next one runs):

- CORS (only with ``CHURN_API_CORS_ORIGINS``): browser pages of exactly those origins may call the API;
  without it no CORS header is ever sent, so only same-origin pages (the dashboard) can read answers.
- :class:`~churn_pipeline.api.security.KeyGate` (only with ``CHURN_API_KEYS``): a request with a body
  needs a valid key before the body is read (401).
- :class:`BodyLimit`: a body over its limit is refused with 413, whether it announces its length
  (``Content-Length``) or streams it (``Transfer-Encoding: chunked``: the bytes are counted as they come).

Errors: bad input is a 422 naming the field (pydantic), a missing or wrong API key a 401, a day or
customer that is not stored a 404, and a missing model or an unreachable database a 503 saying so.
Predictions need only the loaded model, so they keep working while the database is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from contextlib import asynccontextmanager

import anyio
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from churn_pipeline.api.config import DEFAULT_BODY_LIMIT, ApiConfig
from churn_pipeline.api.dashboard import mount_dashboard
from churn_pipeline.api.data import health_router
from churn_pipeline.api.data import router as data_router
from churn_pipeline.api.model_holder import ModelHolder, short_error
from churn_pipeline.api.predict import ServiceUnavailable, predict_router
from churn_pipeline.api.queries import NotFound, Reader
from churn_pipeline.api.security import API_KEY_HEADER, ApiKeys, KeyGate
from churn_pipeline.storage import StorageError, TableStore

log = logging.getLogger(__name__)

DESCRIPTION = """Churn scores for people and systems.

* **Scoring**: `POST /predict` scores one customer in the IBM Telco schema with the champion model;
  `POST /predict/batch` scores many in one vectorised pass. The champion is reloaded without a restart
  when the pipeline promotes a new one.
* **Data**: KPIs, segments, the call list (JSON pages or CSV) and customers' score history, read from
  the pipeline's output tables.
* **Dashboard**: the retention team's page at `/`.

**Authentication**: when the server is configured with API keys (`CHURN_API_KEYS`), every scoring and
data route needs one, as `Authorization: Bearer <key>` or `X-API-Key: <key>` (the *Authorize* button
below); without a valid key the answer is 401. `GET /health` needs none, and without a key it names no
model and no error, only whether the service is up.

Errors: 422 names the field and the problem; 401 means the API key is missing or wrong; 404 means the
day or customer is not stored; 413 means the request body is too large; 503 means no model is loaded
or the database cannot be reached. No probability is ever made up.
"""
_MISSING_TABLE = ("no such table", "doesn't exist", "1146")


class BodyTooLarge(HTTPException):
    """A streamed body went over its limit while being read (FastAPI passes an HTTPException through)."""

    def __init__(self, limit: int, path: str):
        super().__init__(413, f"request body exceeds the limit of {limit:,} bytes for {path}",
                         headers={"Connection": "close"})


class BodyLimit:
    """Refuse oversized request bodies with 413.

    A ``Content-Length`` over the limit is refused before anything is read. A body without one (chunked
    transfer encoding) or longer than it claims is counted as it is received, and refused as soon as the
    count goes over the limit: the rest is never read, nothing oversized is ever held in memory."""

    def __init__(self, app, limits: dict[str, int], default: int):
        self.app, self.limits, self.default = app, limits, default

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        limit = self.limits.get(path, self.default)
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await self._refuse(scope, receive, send, f"request body of {int(value):,} bytes exceeds the "
                                                             f"limit of {limit:,} bytes for {path}")
                    return
                break
        received = 0
        started = False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, path)
            return message

        async def watching_send(message):
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as error:  # read outside a route (a route turns it into the 413 itself)
            if started:
                raise
            await self._refuse(scope, receive, send, error.detail)

    @staticmethod
    async def _refuse(scope, receive, send, detail: str) -> None:
        await JSONResponse({"detail": detail}, status_code=413, headers={"Connection": "close"})(scope, receive, send)


def _database_error(_request: Request, error: Exception) -> JSONResponse:
    text = short_error(error)
    if any(marker in text for marker in _MISSING_TABLE):
        detail = f"the output tables are not there yet (run the pipeline first): {text}"
    else:
        detail = f"the database cannot be reached or failed: {text}"
    log.warning("503: %s", detail)
    return JSONResponse({"detail": detail}, status_code=503)


async def _http_error(request: Request, error: StarletteHTTPException):
    """FastAPI's own answer, except for a body it could not even decode (not UTF-8, say): FastAPI says 400,
    but that is bad input like malformed JSON, so it is the same 422 that names the body."""
    if error.status_code == 400 and isinstance(error.__cause__, UnicodeDecodeError):
        reason = error.__cause__.reason
        return JSONResponse({"detail": [{"type": "json_invalid", "loc": ["body"], "input": None,
                                         "msg": f"the body is not JSON in UTF-8 ({reason})"}]}, status_code=422)
    return await http_exception_handler(request, error)


def create_app(config: ApiConfig | None = None) -> FastAPI:
    config = config or ApiConfig.from_env()
    settings = config.settings
    holder = ModelHolder(settings.db_url, settings.model_dir, settings.horizon_months, config.model_refresh_seconds)
    reader = Reader(TableStore(settings.db_url))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await anyio.to_thread.run_sync(holder.refresh)  # serve the champion from the first request on
        stop = asyncio.Event()
        refresher = asyncio.create_task(holder.keep_fresh(stop))
        try:
            yield
        finally:
            stop.set()
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    api_keys = ApiKeys(config.api_key_sha256)
    if not api_keys.enabled:
        log.warning("API authentication is OFF: CHURN_API_KEYS is empty, so anyone who can reach this server "
                    "can score customers and read the call list. Fine on a laptop; in production set "
                    "CHURN_API_KEYS (and CHURN_API_REQUIRE_AUTH=true). See python -m churn_pipeline.api.security")
    app = FastAPI(title="Churn API", version="1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.config, app.state.holder, app.state.reader, app.state.api_keys = config, holder, reader, api_keys

    app.add_exception_handler(NotFound, lambda _r, e: JSONResponse({"detail": str(e)}, status_code=404))
    app.add_exception_handler(ServiceUnavailable, lambda _r, e: JSONResponse({"detail": str(e)}, status_code=503))
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(sa.exc.DBAPIError, _database_error)
    app.add_exception_handler(StorageError, _database_error)
    # Added innermost first: a request meets CORS, then the key gate, then the body limit.
    app.add_middleware(BodyLimit, limits={"/predict/batch": config.max_batch_bytes}, default=DEFAULT_BODY_LIMIT)
    if api_keys.enabled:
        app.add_middleware(KeyGate, keys=api_keys)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", API_KEY_HEADER, "Content-Type", "Accept"],
                           expose_headers=["Content-Disposition", "WWW-Authenticate"], max_age=600)

    app.include_router(predict_router(config.max_batch))
    app.include_router(data_router)
    app.include_router(health_router)
    mount_dashboard(app)
    return app


_app_lock = threading.Lock()


def __getattr__(name: str):
    """``app``, built from the environment on first access (what ``uvicorn churn_pipeline.api.app:app`` does)."""
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    with _app_lock:
        if "app" not in globals():
            globals()["app"] = create_app()
    return globals()["app"]
