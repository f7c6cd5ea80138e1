"""The churn API and the retention team's dashboard: one FastAPI application.

Run it with ``uvicorn churn_pipeline.api.app:app``. Modules:

- ``app``: the application factory (settings, lifespan, error handlers, routers).
- ``config``: API settings from the environment, on top of :class:`churn_pipeline.settings.Settings`.
- ``schemas``: the pydantic models of every request and response (the OpenAPI page documents them).
- ``model_holder``: the serving champion, reloaded in the background when a new one is promoted.
- ``scorer``: a loaded champion with a fast single-customer path, checked against the pipeline's own
  scoring code before it serves.
- ``queries``: read-only SQLAlchemy Core queries over the output tables.
- ``predict``, ``data``, ``dashboard``: the routers.
- ``security``: API keys (``CHURN_API_KEYS``, SHA-256 digests; ``Authorization: Bearer`` or ``X-API-Key``),
  the dependency every scoring and data route goes through, and ``python -m churn_pipeline.api.security``
  to make a key. ``app`` adds the request limits (413) and CORS (``CHURN_API_CORS_ORIGINS``).
"""
