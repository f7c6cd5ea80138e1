"""Where authentication plugs in: every API router depends on :func:`api_access`.

There is no authentication yet (a later issue). When it comes, this function is the one place to
require it, e.g. an ``X-API-Key`` header checked with ``fastapi.security.APIKeyHeader`` against a
hashed key from the environment, raising 401; every scoring and data route then requires it at once
and the OpenAPI page shows the security scheme. The dashboard page itself stays public; its data
calls go through the same routes.
"""

from __future__ import annotations


async def api_access() -> None:
    """Allow every caller (no authentication yet); see the module docstring.

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in the threadpool, a thread hop on
    every request, which costs more than scoring one customer."""
    return None
