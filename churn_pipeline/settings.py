"""Settings from the environment, with safe local defaults.

Every path defaults under ``CHURN_DATA_DIR`` (``./data`` of the working directory), never under the
package's own folder, so two deployments on one machine do not mix. Credentials only ever come from
``CHURN_DB_URL``; nothing here holds a password.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from churn_pipeline.constants import MODEL_CANDIDATES

DEFAULT_SCHEDULE_CRON = "0 2 * * *"
DEFAULT_SCHEDULE_TIMEZONE = "UTC"
DEFAULT_PARTITION_START = "2024-01-01"
DEFAULT_HORIZON_MONTHS = 12
DEFAULT_MODEL_CANDIDATES = ",".join(MODEL_CANDIDATES)


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None


def int_env(name: str, default: int, minimum: int, unit: str = "") -> int:
    """A whole number from the environment (``default`` when unset or blank), at least ``minimum``;
    anything else is an error naming the variable and the value."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a whole number{unit}") from None
    if value < minimum:
        raise ValueError(f"{name} must be {minimum} or more, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    landing_dir: Path
    model_dir: Path
    db_url: str
    db_url_from_env: bool
    horizon_months: float
    schedule_cron: str
    schedule_timezone: str
    schedule_day_offset: int
    partition_start: str
    contact_cost: float
    retention_success_rate: float
    model_candidates: str

    @classmethod
    def from_env(cls) -> Settings:
        data_dir = Path(os.environ.get("CHURN_DATA_DIR") or "data").resolve()
        db_url = os.environ.get("CHURN_DB_URL") or ""
        horizon = _float_env("CHURN_HORIZON_MONTHS", DEFAULT_HORIZON_MONTHS)
        if horizon <= 0:
            raise ValueError(f"CHURN_HORIZON_MONTHS must be positive, got {horizon}")
        return cls(
            data_dir=data_dir,
            landing_dir=Path(os.environ.get("CHURN_LANDING_DIR") or data_dir / "landing").resolve(),
            model_dir=Path(os.environ.get("CHURN_MODEL_DIR") or data_dir / "models").resolve(),
            db_url=db_url or f"sqlite:///{data_dir / 'churn.db'}",
            db_url_from_env=bool(db_url),
            horizon_months=horizon,
            schedule_cron=os.environ.get("CHURN_SCHEDULE_CRON") or DEFAULT_SCHEDULE_CRON,
            schedule_timezone=os.environ.get("CHURN_SCHEDULE_TIMEZONE") or DEFAULT_SCHEDULE_TIMEZONE,
            schedule_day_offset=int(_float_env("CHURN_SCHEDULE_DAY_OFFSET", 1)),
            partition_start=os.environ.get("CHURN_PARTITION_START") or DEFAULT_PARTITION_START,
            contact_cost=_float_env("CHURN_CONTACT_COST", 25.0),
            retention_success_rate=_float_env("CHURN_RETENTION_SUCCESS_RATE", 0.3),
            model_candidates=os.environ.get("CHURN_MODEL_CANDIDATES") or DEFAULT_MODEL_CANDIDATES,
        )


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, for logs and metadata."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is still never echoed whole
        return "<unparsable database URL>"
