"""What route handlers share: the process's Runtime, the job store, and queue dispatch."""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import Request

from photoindex.config import Settings
from photoindex.errors import PhotoindexError
from photoindex.runtime import Runtime
from photoindex.store.jobs import FINISHED_JOB, JobStore

log = logging.getLogger("photoindex.api")
API_PREFIX = "/api/v1"


def get_rt(request: Request) -> Runtime:
    return request.app.state.rt


def get_settings(request: Request) -> Settings:
    return request.app.state.rt.settings


def get_jobs(request: Request) -> JobStore:
    return JobStore(request.app.state.rt.catalog)


def note_job(request: Request, job_id: int) -> None:
    """Name the job this request concerns in the access log."""
    request.scope["photoindex.job_id"] = int(job_id)


def job_urls(job_id: int) -> dict[str, str]:
    return {"status_url": f"{API_PREFIX}/ingest/status/{job_id}", "events_url": f"{API_PREFIX}/jobs/{job_id}/events"}


def job_out(job: dict[str, Any]) -> dict[str, Any]:
    """A job for listings and event streams: a duplicate search's groups (thousands, megabytes) stay
    behind GET /duplicates/report/{id}, which pages them; the count remains."""
    report = job.get("report") or {}
    if isinstance(report.get("groups"), list):
        report = {**report, "groups": len(report["groups"])}
    return {**job, "report": report, "finished": job["status"] in FINISHED_JOB}


class Dispatcher:
    """Hands new or requeued tasks to the queue for resident workers when there are any to serve them:
    with Redis configured (workers on other machines), or when this server runs no worker itself.
    Otherwise the in-process worker claims them straight from the catalog and nothing is sent (a
    SqliteHuey message nobody consumes would only pile up)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._transport: Any = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        s = self.rt.settings
        return bool(s.redis_url) or not s.serve_worker

    def transport(self) -> Any:
        from photoindex.jobs.transport import Transport

        with self._lock:
            if self._transport is None:
                self._transport = Transport(self.rt.settings)
            return self._transport

    def __call__(self, job_id: int) -> int:
        if not self.enabled:
            return 0
        from photoindex.jobs.service import dispatch

        try:
            return dispatch(self.rt, job_id, self.transport())
        except PhotoindexError as exc:  # durable anyway: the reapers re-send due tasks
            log.warning("could not queue job %s: %s", job_id, exc)
            return 0

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
