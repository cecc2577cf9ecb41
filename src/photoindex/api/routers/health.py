"""`/healthz` (the process answers), `/readyz` (it can do its work) and `/metrics` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from photoindex import __version__, metrics
from photoindex.api.deps import API_PREFIX, get_rt
from photoindex.api.schemas import Check, Health, Readiness
from photoindex.runtime import Runtime

open_router = APIRouter(prefix=API_PREFIX, tags=["health"])
router = APIRouter(prefix=API_PREFIX, tags=["health"])


@open_router.get("/healthz", response_model=Health, summary="The process is up")
def healthz() -> Health:
    return Health(version=__version__)


def _check(fn) -> Check:
    try:
        detail = fn()
        return Check(ok=True, detail=detail)
    except Exception as exc:  # every failure is a finding here, not an error of the request
        return Check(ok=False, detail=f"{type(exc).__name__}: {exc}"[:500])


def readiness(rt: Runtime, worker_alive: bool | None) -> Readiness:
    checks: dict[str, Check] = {}

    def catalog() -> str:
        with rt.catalog.session() as s:
            s.execute(text("SELECT 1"))
        return rt.catalog.dialect

    checks["catalog"] = _check(catalog)

    def index() -> str:
        idx = rt.index
        client = getattr(idx, "client", None)
        if client is not None:  # a Qdrant server: ask it
            client.get_collections()
        return rt.settings.vector_backend

    checks["vector_index"] = _check(index)

    def model() -> str:
        settings = rt.settings
        if settings.ml_url:
            import httpx

            headers = {"x-api-key": settings.ml_api_key} if settings.ml_api_key else {}
            r = httpx.get(settings.ml_url.rstrip("/") + "/health", timeout=3.0, headers=headers)
            r.raise_for_status()
            return f"remote {settings.ml_url}"
        active = next((c for c in rt.catalog.list_collections() if c.active), None) if checks["catalog"].ok else None
        name = rt.model_name(active) if active is not None else settings.model
        path = rt.registry.require(name)
        return f"{name} ({path})"

    checks["model"] = _check(model)

    def queue() -> str:
        settings = rt.settings
        if settings.redis_url:
            from photoindex.jobs.transport import Transport

            transport = Transport(settings)
            try:
                transport.huey.storage.conn.ping()
                return f"redis, {max(0, transport.pending())} waiting"
            finally:
                transport.close()
        settings.ensure_home()
        return "sqlite"

    checks["queue"] = _check(queue)
    if worker_alive is not None:
        checks["worker"] = Check(ok=worker_alive, detail="in-process worker " + ("running" if worker_alive else "stopped"))
    return Readiness(ready=all(c.ok for c in checks.values()), checks=checks)


@router.get("/readyz", response_model=Readiness, summary="Catalog, vector index, model and queue are usable",
            responses={503: {"model": Readiness, "description": "Not ready: `checks` says what fails"}})
def readyz(request: Request, rt: Runtime = Depends(get_rt)) -> JSONResponse:
    thread = getattr(request.app.state, "worker_thread", None)
    result = readiness(rt, None if thread is None else thread.is_alive())
    return JSONResponse(result.model_dump(mode="json"), status_code=200 if result.ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition"}})
def prometheus_metrics() -> Response:
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
