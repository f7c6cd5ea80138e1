"""The retention team's dashboard: one static page at ``/`` plus its CSS and JavaScript under ``/static``.

The page is plain HTML, CSS and vanilla JavaScript with hand-drawn SVG charts: no build step, no
external CDN, nothing fetched from the internet at run time. It reads the same JSON routes as any
other client (``/kpis``, ``/segments``, ``/customers/at-risk``), one page of the call list at a time,
so it stays fast however many customers are scored.

The page and its files need no API key: they hold no data. When the API requires one, the data calls
answer 401 and the page asks for the key, keeps it in the tab's ``sessionStorage`` and sends it as
``Authorization: Bearer <key>`` with every call (the CSV download is then fetched with the key and
handed to the browser as a file, since a plain link cannot carry a header).

The files live next to this module. An installation without them (a wheel built without package
data) still serves the API; ``/`` then answers 503 naming the missing folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
ASSETS = ("index.html", "dashboard.css", "dashboard.js")

log = logging.getLogger(__name__)
router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
def dashboard():
    missing = [name for name in ASSETS if not (STATIC_DIR / name).is_file()]
    if missing:
        return JSONResponse({"detail": f"the dashboard files {missing} are not installed in {STATIC_DIR}; "
                                       "the API itself works (see /docs)"}, status_code=503)
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


def mount_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    else:
        log.error("dashboard files missing from %s: / will answer 503", STATIC_DIR)
