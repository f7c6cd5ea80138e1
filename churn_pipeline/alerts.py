"""Failure notifications: a log line always, and a small JSON POST when a webhook is configured.

No Dagster here, so the notification can be tested (and reused) without a run. Sending never raises:
an alert channel that is down must not turn one failure into two (a failed sensor tick hides the
run's own failure from the operator looking at the sensor page).
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

WEBHOOK_ENV = "CHURN_ALERT_WEBHOOK_URL"
DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_ERROR_CHARS = 2_000  # chat webhooks reject or truncate long bodies; the UI has the full trace


def failure_payload(run_id: str, job_name: str, partition: str | None, error: str) -> dict:
    """What an on-call person needs to decide whether to act: which run, which job, which day, why."""
    return {
        "event": "run_failure",
        "run_id": run_id,
        "job": job_name,
        "partition": partition,
        "error": error[:MAX_ERROR_CHARS],
    }


def webhook_host(url: str) -> str:
    """Only the host is ever logged: webhook URLs often carry their secret token in the path."""
    return urlsplit(url).netloc or "<no host>"


def notify_failure(payload: dict, webhook_url: str | None = None,
                   timeout: float = DEFAULT_TIMEOUT_SECONDS, logger: logging.Logger | None = None) -> bool:
    """Log the failure; POST ``payload`` as JSON to the webhook (argument, else ``CHURN_ALERT_WEBHOOK_URL``).

    Returns True when the webhook answered 2xx, False when none is set or it could not be reached.
    """
    logger = logger or log
    logger.error("run %s of %s (partition %s) failed: %s", payload.get("run_id"), payload.get("job"),
                 payload.get("partition"), payload.get("error"))
    url = webhook_url if webhook_url is not None else os.environ.get(WEBHOOK_ENV, "").strip()
    if not url:
        return False
    if urlsplit(url).scheme not in ("http", "https"):
        logger.warning("%s must be an http(s) URL; alert not sent", WEBHOOK_ENV)
        return False
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "churn-pipeline-alerts"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked above
            ok = 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError) as error:  # HTTPError is a URLError
        logger.warning("alert webhook at %s failed: %s", webhook_host(url), error)
        return False
    if not ok:
        logger.warning("alert webhook at %s answered HTTP %s", webhook_host(url), response.status)
    return ok
