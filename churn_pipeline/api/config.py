"""API settings from the environment, on top of the pipeline's :class:`Settings`.

The database (``CHURN_DB_URL``), the model folder (``CHURN_MODEL_DIR``) and the revenue horizon
(``CHURN_HORIZON_MONTHS``) are the pipeline's own settings, so the API scores and reads exactly what
the pipeline wrote. Only what is specific to serving is added here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from churn_pipeline.settings import Settings

DEFAULT_MAX_BATCH = 10_000
DEFAULT_MODEL_REFRESH_SECONDS = 30.0
MAX_PAGE_SIZE = 1_000  # rows per page of any list endpoint
MAX_CSV_ROWS = 1_000_000  # a CSV download streams at most this many rows


def _positive_env(name: str, default: float, integer: bool = False) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"environment variable {name}={raw!r} is not {kind}") from None
    if value <= 0:
        raise ValueError(f"environment variable {name} must be positive, got {raw!r}")
    return value


@dataclass(frozen=True)
class ApiConfig:
    """Everything the application needs; tests build one directly instead of setting variables."""

    settings: Settings
    max_batch: int = DEFAULT_MAX_BATCH  # CHURN_API_MAX_BATCH: customers per POST /predict/batch
    model_refresh_seconds: float = DEFAULT_MODEL_REFRESH_SECONDS  # CHURN_API_MODEL_REFRESH_SECONDS

    @classmethod
    def from_env(cls) -> ApiConfig:
        return cls(
            settings=Settings.from_env(),
            max_batch=int(_positive_env("CHURN_API_MAX_BATCH", DEFAULT_MAX_BATCH, integer=True)),
            model_refresh_seconds=_positive_env("CHURN_API_MODEL_REFRESH_SECONDS", DEFAULT_MODEL_REFRESH_SECONDS),
        )

    @property
    def max_batch_bytes(self) -> int:
        """Largest batch body accepted before parsing: a Telco customer is ~0.6 KB of JSON, allow 4 KB."""
        return self.max_batch * 4096 + 65_536
