"""The web UI that `photoindex serve` offers at `/`: server-rendered pages (Jinja2) with small plain
JavaScript modules that talk to the REST API under /api/v1. No build step, no third-party files.

`mount_web(app, settings)` adds the pages, the static files and the key cookie bridge to the API app.
"""

from __future__ import annotations

from fastapi import FastAPI

from photoindex.config import Settings
from photoindex.web.keycookie import KeyCookie
from photoindex.web.routes import build_router


def mount_web(app: FastAPI, settings: Settings) -> None:
    app.include_router(build_router(settings))
    app.add_middleware(KeyCookie)


__all__ = ["mount_web"]
