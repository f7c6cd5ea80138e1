"""The serving champion, swapped without a restart when the pipeline promotes a new one.

A background task asks :meth:`ModelRegistry.champion_version` every ``CHURN_API_MODEL_REFRESH_SECONDS``
(30 s). When the answer changes, the new model is loaded off the request path (file checked against
its registered SHA-256, :class:`Scorer` built, fast path self-checked) and only then published by
rebinding one attribute. A request reads that attribute once and scores with what it got, so it
sees the old model or the new one, never a mix and never a half-loaded one.

When the database is down the loaded model keeps serving (predictions need no database) and the
failure is reported by ``/health``. A champion that cannot be loaded (missing or tampered file) is
not served: the previous model stays, and the error is reported until a load succeeds.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio
import sqlalchemy as sa

from churn_pipeline.api.schemas import TelcoCustomer
from churn_pipeline.api.scorer import Scorer, probe_customers
from churn_pipeline.model_runs import ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Serving:
    """What one request scores with: a fully loaded scorer and when it was published."""

    scorer: Scorer
    loaded_at: datetime


def short_error(error: BaseException) -> str:
    """A database or loading error in one line, without SQL text or driver boilerplate."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    return f"{type(original).__name__}: {text}"[:500]


def _settle_memory() -> None:
    """Collect the previous model, then freeze every live object (the new model included) out of the
    garbage collector's sight: later collections only walk the short-lived objects of requests, instead
    of pausing every request for the hundreds of thousands of objects a model is made of."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelHolder:
    """Holds the serving :class:`Serving` and refreshes it from the model registry."""

    def __init__(self, db_url: str, model_dir, horizon_months: float, refresh_seconds: float):
        self._db_url, self._model_dir = db_url, model_dir
        self.horizon_months = horizon_months
        self.refresh_seconds = refresh_seconds
        self._serving: Serving | None = None
        self._refresh_lock = threading.Lock()  # one load at a time; readers never take it
        self._registry: ModelRegistry | None = None
        self.last_checked_at: datetime | None = None
        self.error: str | None = "the model registry has not been read yet"

    @property
    def serving(self) -> Serving | None:
        """The model to score with (read once per request)."""
        return self._serving

    def _registry_or_create(self) -> ModelRegistry:
        if self._registry is None:
            self._registry = ModelRegistry(self._db_url, self._model_dir)
        return self._registry

    def refresh(self) -> bool:
        """Load the champion if it changed; True when a new model was published. Never raises."""
        with self._refresh_lock:
            try:
                registry = self._registry_or_create()
                version = registry.champion_version()
            except Exception as error:  # noqa: BLE001 - reported by /health; the loaded model keeps serving
                self.error = f"cannot read the model registry (model_runs): {short_error(error)}"
                log.warning("%s", self.error)
                return False
            self.last_checked_at = datetime.now(UTC)
            current = self._serving
            if version is None:
                self._serving = None
                self.error = "no champion model is registered in model_runs yet: run the pipeline first"
                return False
            if current is not None and current.scorer.version == version:
                self.error = None
                return False
            try:
                serving = Serving(self._load(registry, version), datetime.now(UTC))
            except Exception as error:  # noqa: BLE001 - keep serving the previous model, say why
                self.error = f"champion {version} could not be loaded: {short_error(error)}"
                log.error("%s", self.error)
                return False
            self._serving = serving  # the atomic swap: one reference, published fully built
            self.error = None
            _settle_memory()
            log.info("serving model %s (%s; fast single path: %s)", version, serving.scorer.run["algorithm"],
                     serving.scorer.fast_path)
            return True

    def _load(self, registry: ModelRegistry, version: str) -> Scorer:
        model = registry.load(version)  # checks the file against its registered SHA-256
        runs = registry.store.table("model_runs")
        query = sa.select(runs).where(runs.c.model_version == version).order_by(runs.c.trained_at.desc()).limit(1)
        with registry.store.engine.connect() as conn:
            run = dict(conn.execute(query).mappings().one())
        scorer = Scorer(model, run, self.horizon_months)
        scorer.self_check(probe_customers(model, TelcoCustomer.model_validate))
        return scorer

    async def keep_fresh(self, stop: asyncio.Event) -> None:
        """Refresh every ``refresh_seconds`` until ``stop`` is set (the application's lifespan)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.refresh_seconds)
            except TimeoutError:
                await anyio.to_thread.run_sync(self.refresh)
