"""API settings from the environment, on top of the pipeline's :class:`Settings`.

The database (``CHURN_DB_URL``), the model folder (``CHURN_MODEL_DIR``) and the revenue horizon
(``CHURN_HORIZON_MONTHS``) are the pipeline's own settings, so the API scores and reads exactly what
the pipeline wrote. Only what is specific to serving is added here:

- ``CHURN_API_KEYS``: comma-separated SHA-256 hex digests of the accepted API keys (the keys themselves
  never go into the environment; ``python -m churn_pipeline.api.security`` makes a key and its digest).
  Empty: no authentication (local development; a warning is logged at start).
- ``CHURN_API_REQUIRE_AUTH``: ``true`` makes an empty ``CHURN_API_KEYS`` a start-up error (production).
- ``CHURN_API_CORS_ORIGINS``: comma-separated exact origins (``https://bi.example.com``) whose browser
  pages may call the API; empty: no CORS headers at all (only same-origin pages, like the dashboard).
- ``CHURN_API_MAX_BATCH``, ``CHURN_API_MODEL_REFRESH_SECONDS``: batch size and champion refresh period.

Every value is checked when the configuration is built, so a bad setting stops the server's start with
a message that names the variable (never echoing a value that might be a key).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from churn_pipeline.settings import Settings

DEFAULT_MAX_BATCH = 10_000
DEFAULT_MODEL_REFRESH_SECONDS = 30.0
MAX_PAGE_SIZE = 1_000  # rows per page of any list endpoint
MAX_CSV_ROWS = 1_000_000  # a CSV download streams at most this many rows
DEFAULT_BODY_LIMIT = 256 * 1024  # bytes of any request body but a batch's (one customer is ~0.6 KB of JSON)

_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


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


def _bool_env(name: str) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"environment variable {name}={raw!r} is not true or false")


def _list_env(name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in (os.environ.get(name) or "").split(",") if part.strip())


@dataclass(frozen=True)
class ApiConfig:
    """Everything the application needs; tests build one directly instead of setting variables."""

    settings: Settings
    max_batch: int = DEFAULT_MAX_BATCH  # CHURN_API_MAX_BATCH: customers per POST /predict/batch
    model_refresh_seconds: float = DEFAULT_MODEL_REFRESH_SECONDS  # CHURN_API_MODEL_REFRESH_SECONDS
    api_key_sha256: tuple[str, ...] = ()  # CHURN_API_KEYS: SHA-256 hex digests of the accepted keys
    require_auth: bool = False  # CHURN_API_REQUIRE_AUTH: no keys configured is a start-up error
    cors_origins: tuple[str, ...] = ()  # CHURN_API_CORS_ORIGINS: browser origins allowed to call the API

    def __post_init__(self) -> None:
        digests = tuple(self.api_key_sha256)
        for number, digest in enumerate(digests, start=1):
            if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
                # The value is never echoed: a mistake here is most likely a plaintext key.
                raise ValueError(
                    f"CHURN_API_KEYS entry {number} is not a SHA-256 hex digest (64 hex characters). Put the "
                    "digest of each key there, never the key itself: python -m churn_pipeline.api.security "
                    "makes a new key and prints both")
        object.__setattr__(self, "api_key_sha256", tuple(dict.fromkeys(d.lower() for d in digests)))
        if self.require_auth and not self.api_key_sha256:
            raise ValueError(
                "CHURN_API_REQUIRE_AUTH is true but CHURN_API_KEYS is empty: the API refuses to start without "
                "authentication. Set CHURN_API_KEYS to the SHA-256 digest of at least one key "
                "(python -m churn_pipeline.api.security makes one)")
        for origin in self.cors_origins:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"CHURN_API_CORS_ORIGINS entry {origin!r} is not an exact origin like https://bi.example.com "
                    "(scheme://host[:port]: no path, no trailing slash, no wildcard)")
        object.__setattr__(self, "cors_origins", tuple(dict.fromkeys(self.cors_origins)))
        if self.max_batch < 1:
            raise ValueError(f"CHURN_API_MAX_BATCH must be positive, got {self.max_batch}")

    @classmethod
    def from_env(cls) -> ApiConfig:
        return cls(
            settings=Settings.from_env(),
            max_batch=int(_positive_env("CHURN_API_MAX_BATCH", DEFAULT_MAX_BATCH, integer=True)),
            model_refresh_seconds=_positive_env("CHURN_API_MODEL_REFRESH_SECONDS", DEFAULT_MODEL_REFRESH_SECONDS),
            api_key_sha256=_list_env("CHURN_API_KEYS"),
            require_auth=_bool_env("CHURN_API_REQUIRE_AUTH"),
            cors_origins=_list_env("CHURN_API_CORS_ORIGINS"),
        )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key_sha256)

    @property
    def max_batch_bytes(self) -> int:
        """Largest batch body accepted before parsing: a Telco customer is ~0.6 KB of JSON, allow 4 KB."""
        return self.max_batch * 4096 + 65_536
