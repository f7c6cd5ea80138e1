"""The FastAPI application: ``uvicorn churn_pipeline.api.app:app``.

:func:`create_app` wires settings, the model holder, the database reader, error handlers and the
routers; tests call it with their own :class:`ApiConfig`. The module attribute ``app`` is created on
first access (PEP 562 ``__getattr__``), from the environment, so importing this module for
``create_app`` has no side effects and a bad setting fails the server's start with its message.

Errors: bad input is a 422 naming the field (pydantic), a day or customer that is not stored is a
404, and a missing model or an unreachable database is a 503 saying so. Predictions need only the
loaded model, so they keep working while the database is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from contextlib import asynccontextmanager

import anyio
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from churn_pipeline.api.config import ApiConfig
from churn_pipeline.api.dashboard import mount_dashboard
from churn_pipeline.api.data import router as data_router
from churn_pipeline.api.model_holder import ModelHolder, short_error
from churn_pipeline.api.predict import ServiceUnavailable, predict_router
from churn_pipeline.api.queries import NotFound, Reader
from churn_pipeline.storage import StorageError, TableStore

log = logging.getLogger(__name__)

DESCRIPTION = """Churn scores for people and systems.

* **Scoring**: `POST /predict` scores one customer in the IBM Telco schema with the champion model;
  `POST /predict/batch` scores many in one vectorised pass. The champion is reloaded without a restart
  when the pipeline promotes a new one.
* **Data**: KPIs, segments, the call list (JSON pages or CSV) and customers' score history, read from
  the pipeline's output tables.
* **Dashboard**: the retention team's page at `/`.

Errors: 422 names the field and the problem; 404 means the day or customer is not stored; 503 means no
model is loaded or the database cannot be reached. No probability is ever made up.
"""
_MISSING_TABLE = ("no such table", "doesn't exist", "1146")


class BodyLimit:
    """Refuse oversized request bodies (by Content-Length) with 413 before anything reads them."""

    def __init__(self, app, limits: dict[str, int], default: int):
        self.app, self.limits, self.default = app, limits, default

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            limit = self.limits.get(scope["path"], self.default)
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                response = JSONResponse({"detail": f"request body of {int(length):,} bytes exceeds the limit of "
                                                   f"{limit:,} bytes for {scope['path']}"}, status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _database_error(_request: Request, error: Exception) -> JSONResponse:
    text = short_error(error)
    if any(marker in text for marker in _MISSING_TABLE):
        detail = f"the output tables are not there yet (run the pipeline first): {text}"
    else:
        detail = f"the database cannot be reached or failed: {text}"
    log.warning("503: %s", detail)
    return JSONResponse({"detail": detail}, status_code=503)


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

    app = FastAPI(title="Churn API", version="1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.config, app.state.holder, app.state.reader = config, holder, reader

    app.add_exception_handler(NotFound, lambda _r, e: JSONResponse({"detail": str(e)}, status_code=404))
    app.add_exception_handler(ServiceUnavailable, lambda _r, e: JSONResponse({"detail": str(e)}, status_code=503))
    app.add_exception_handler(sa.exc.DBAPIError, _database_error)
    app.add_exception_handler(StorageError, _database_error)
    app.add_middleware(BodyLimit, limits={"/predict/batch": config.max_batch_bytes}, default=256 * 1024)

    app.include_router(predict_router(config.max_batch))
    app.include_router(data_router)
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
