"""The REST API application: `create_app(settings)`.

Lifespan: one `Runtime` for the process (catalog, vector index, models) and, with `serve_worker`, an
in-process worker thread that claims due tasks straight from the catalog (`Worker.run_forever`), so
`photoindex serve` alone runs the ingest jobs it accepts; resident `photoindex worker`s share the
same tasks safely (leases). Every request is timed into `photoindex_http_seconds` under its route
template and logged as one JSON line on the `photoindex.api` logger.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from photoindex import __version__, metrics
from photoindex.api import errors
from photoindex.api.auth import keys_required, require_key
from photoindex.api.deps import API_PREFIX, Dispatcher
from photoindex.api.routers import (
    assets,
    collections,
    curation,
    duplicates,
    enrich,
    health,
    ingest,
    jobs,
    library,
    search,
)
from photoindex.api.schemas import ErrorBody
from photoindex.config import Settings
from photoindex.runtime import Runtime
from photoindex.web import mount_web

log = logging.getLogger("photoindex.api")
worker_log = logging.getLogger("photoindex.api.worker")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        400: "Bad request", 401: "Missing, unknown or revoked API key", 403: "Forbidden",
        404: "Not found", 409: "Conflict with the current state", 413: "Payload too large",
        415: "Unsupported media type", 416: "Range not satisfiable", 422: "Invalid request",
        500: "Internal error", 503: "A backend (catalog, model, queue) is unavailable",
    }.items()
}


class AccessLog:
    """Pure ASGI middleware (streams such as SSE pass through untouched): latency histogram by route
    template, and one JSON log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            metrics.http_seconds.labels(template, scope["method"], str(status)).observe(elapsed)
            fields: dict[str, Any] = {"method": scope["method"], "route": template, "path": scope.get("path"),
                                      "status": status, "ms": round(elapsed * 1000, 2)}
            job_id = scope.get("photoindex.job_id")
            if job_id is None:
                raw = (scope.get("path_params") or {}).get("job_id")
                job_id = int(raw) if isinstance(raw, int | str) and str(raw).isdigit() else None
            if job_id is not None:
                fields["job_id"] = job_id
            if scope.get("photoindex.api_key"):
                fields["key"] = scope["photoindex.api_key"]
            client = scope.get("client")
            if client:
                fields["client"] = client[0]
            log.info("%s %s %s", scope["method"], template, status, extra={"fields": fields})


class JsonLines(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                               "level": record.levelname.lower(), "logger": record.name}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for photoindex and uvicorn loggers (what `photoindex serve` uses)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


def _relay(stop: threading.Event, inner: threading.Event) -> None:
    while not inner.is_set():
        if stop.wait(0.5):
            inner.set()


def _worker_main(rt: Runtime, stop: threading.Event) -> None:
    """Run the in-process worker until `stop`; a failure (catalog down...) is logged and the worker
    started again. Each worker gets its own stop event (`Worker.close` sets it), relayed from `stop`."""
    from photoindex.jobs.worker import Worker

    while not stop.is_set():
        inner = threading.Event()
        threading.Thread(target=_relay, args=(stop, inner), name="photoindex-worker-stop", daemon=True).start()
        worker = None
        try:
            worker = Worker(rt)
            worker.run_forever(inner)
        except Exception:
            worker_log.exception("in-process worker failed; starting it again in 5 s")
        finally:
            if worker is not None:
                try:
                    worker.close()
                except Exception:
                    worker_log.exception("closing the in-process worker failed")
            inner.set()
        stop.wait(5.0)


def create_app(settings: Settings, *, host: str | None = None) -> FastAPI:
    """The API for these settings. `host` is the address the server listens on (default
    `settings.api_host`); it decides whether API keys are required when `require_api_key` is unset."""
    need_keys = keys_required(settings, host)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = Runtime(settings)
        app.state.rt = rt
        app.state.dispatcher = Dispatcher(rt)
        app.state.keys_required = need_keys
        stop = threading.Event()
        app.state.worker_stop = stop
        app.state.worker_thread = None
        try:
            _ = rt.catalog  # open and migrate now; a failure shows in /readyz, not as a crash
        except Exception as exc:
            log.warning("catalog unavailable at start: %s", exc)
        if settings.serve_worker:
            thread = threading.Thread(target=_worker_main, args=(rt, stop), name="photoindex-worker", daemon=True)
            thread.start()
            app.state.worker_thread = thread
        try:
            yield
        finally:
            stop.set()
            if app.state.worker_thread is not None:
                app.state.worker_thread.join(timeout=30)
            app.state.dispatcher.close()
            rt.close()

    app = FastAPI(
        title="photoindex",
        version=__version__,
        description="Self-hosted photo intelligence: ingest photos, search them by meaning. "
        + ("Every route but /healthz needs an `x-api-key` header." if need_keys else ""),
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        swagger_ui_oauth2_redirect_url=f"{API_PREFIX}/docs/oauth2-redirect",
        redoc_url=None,
        responses=_ERRORS,
    )
    errors.install(app)
    app.add_middleware(AccessLog)
    guard = [Depends(require_key)] if need_keys else []
    app.include_router(health.open_router)
    routers = (health.router, collections.router, ingest.router, jobs.router, search.router, library.router,
               enrich.router, duplicates.router, curation.router,
               assets.build_router(settings))
    for router in routers:
        app.include_router(router, dependencies=guard)
    app.state.api_routes = [r for router in (health.open_router, *routers) for r in router.routes]
    mount_web(app, settings)  # the web UI at / (pages, static files, the key cookie for media and streams)
    return app
