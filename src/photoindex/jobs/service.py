"""Job use cases for the faces: hand a job to the queue, list and follow jobs, dead letters."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from photoindex.jobs.transport import Transport
from photoindex.runtime import Runtime
from photoindex.store.jobs import FINISHED_JOB, JobStore


def dispatch(rt: Runtime, job_id: int, transport: Transport | None = None) -> int:
    """Send a job's due tasks to the queue for resident workers; returns how many were sent."""
    jobs = JobStore(rt.catalog)
    transport = transport or Transport(rt.settings)
    due = [t for t in jobs.tasks(job_id, status="queued")]
    for t in due:
        transport.enqueue(t["id"], priority=t["priority"])
    jobs.mark_enqueued([t["id"] for t in due])
    return len(due)


def progress(rt: Runtime, job_id: int) -> dict[str, Any]:
    """A job with task counts and, for ingest jobs, file counts so far."""
    jobs = JobStore(rt.catalog)
    job = jobs.get_job(job_id)
    files_total = sum(r.get("todo", 0) for r in jobs.results(job_id, "ingest.scan"))
    files_done = 0
    for r in jobs.results(job_id, "ingest.files"):
        files_done += r.get("processed", 0) + r.get("exact_duplicates", 0) + len(r.get("errors", []))
    job["files"] = {"total": files_total, "done": files_done}
    return job


def follow(rt: Runtime, job_id: int, *, interval_s: float = 1.0,
           until: Callable[[dict[str, Any]], bool] | None = None) -> Iterator[dict[str, Any]]:
    """Yield the job's progress every `interval_s` until it is finished."""
    while True:
        state = progress(rt, job_id)
        yield state
        if state["status"] in FINISHED_JOB or state["status"] == "paused" or (until and until(state)):
            return
        time.sleep(interval_s)
