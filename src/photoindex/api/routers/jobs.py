"""Jobs: list, inspect, their tasks (dead ones with reasons), cancel / pause / resume, retry dead tasks, and a
live progress stream (SSE)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from photoindex.api.deps import API_PREFIX, get_rt, job_out, note_job
from photoindex.api.errors import INVALID_STATE, ApiError
from photoindex.api.schemas import JobOut, JobStatus, RetryResult
from photoindex.jobs.service import progress
from photoindex.runtime import Runtime
from photoindex.schemas import UtcDateTime
from photoindex.store.jobs import FINISHED_JOB, JobStore

router = APIRouter(prefix=f"{API_PREFIX}/jobs", tags=["jobs"])
JOB_ID = PathParam(ge=1, le=2**62)
POLL_S = 1.0
# One event of the stream (Open API 3.1 describes each event of a text/event-stream with `schema`)
SSE_EVENT = {
    "type": "object",
    "required": ["event", "data", "id"],
    "properties": {
        "event": {"type": "string", "enum": ["progress", "end"]},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"$ref": "#/components/schemas/JobOut"}},
    },
}
KEEPALIVE_S = 15.0
TaskStatus = Literal["queued", "leased", "done", "dead", "blocked", "cancelled"]


class TaskError(BaseModel):
    """Why a task's last attempt failed (the worker's traceback stays in the catalog and the logs)."""

    code: str | None = None
    type: str | None = None
    message: str | None = None
    attempt: int | None = None


class TaskOut(BaseModel):
    id: int
    kind: str
    status: str
    attempts: int
    max_attempts: int
    last_error: TaskError | None = None
    next_run_at: UtcDateTime | None = None


@router.get("", response_model=list[JobOut], summary="Recent jobs, newest first")
def list_jobs(limit: int = Query(default=20, ge=1, le=500), status: JobStatus | None = Query(default=None),
              rt: Runtime = Depends(get_rt)) -> list[dict[str, Any]]:
    return [job_out(j) for j in JobStore(rt.catalog).list_jobs(limit=limit, status=status)]


@router.get("/{job_id}", response_model=JobOut, summary="A job with task counts and file progress")
def get_job(request: Request, job_id: int = JOB_ID, rt: Runtime = Depends(get_rt)) -> dict[str, Any]:
    note_job(request, job_id)
    return job_out(progress(rt, job_id))


@router.get("/{job_id}/tasks", response_model=list[TaskOut],
            summary="A job's tasks, e.g. the dead ones (`status=dead`) with the reason of their last failure")
def list_tasks(request: Request, job_id: int = JOB_ID, status: TaskStatus | None = Query(default=None),
               limit: int = Query(default=100, ge=1, le=1000), rt: Runtime = Depends(get_rt)) -> list[TaskOut]:
    note_job(request, job_id)
    store = JobStore(rt.catalog)
    store.get_job(job_id)  # 404 for an unknown job
    return [TaskOut(**{k: t[k] for k in ("id", "kind", "status", "attempts", "max_attempts", "next_run_at")},
                    last_error=TaskError.model_validate(t["last_error"]) if t["last_error"] else None)
            for t in store.tasks(job_id, status=status, limit=limit)]


def _transition(request: Request, rt: Runtime, job_id: int, verb: str) -> dict[str, Any]:
    note_job(request, job_id)
    store = JobStore(rt.catalog)
    if not getattr(store, verb)(job_id):
        state = store.get_job(job_id)["status"]  # 404 for an unknown job
        raise ApiError(409, INVALID_STATE, f"cannot {verb} job {job_id}: it is {state}",
                       details={"job_id": job_id, "status": state})
    if verb == "resume":
        request.app.state.dispatcher(job_id)
    return job_out(progress(rt, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut,
             summary="Cancel: waiting tasks are dropped; running ones finish their files")
def cancel(request: Request, job_id: int = JOB_ID, rt: Runtime = Depends(get_rt)) -> dict[str, Any]:
    return _transition(request, rt, job_id, "cancel")


@router.post("/{job_id}/pause", response_model=JobOut, summary="Pause: workers take none of its tasks")
def pause(request: Request, job_id: int = JOB_ID, rt: Runtime = Depends(get_rt)) -> dict[str, Any]:
    return _transition(request, rt, job_id, "pause")


@router.post("/{job_id}/resume", response_model=JobOut, summary="Resume a paused or interrupted job")
def resume(request: Request, job_id: int = JOB_ID, rt: Runtime = Depends(get_rt)) -> dict[str, Any]:
    return _transition(request, rt, job_id, "resume")


@router.post("/{job_id}/retry", response_model=RetryResult,
             summary="Requeue the job's dead tasks (failed every attempt) with fresh attempts")
def retry(request: Request, job_id: int = JOB_ID, rt: Runtime = Depends(get_rt)) -> RetryResult:
    note_job(request, job_id)
    store = JobStore(rt.catalog)
    store.get_job(job_id)  # 404 for an unknown job
    ids = store.requeue_dead(job_id=job_id)
    if ids:
        request.app.state.dispatcher(job_id)
    return RetryResult(job_id=job_id, requeued=ids, status=store.get_job(job_id)["status"])


def _sse(event: str, data: dict[str, Any], event_id: int) -> bytes:
    payload = JobOut.model_validate(data).model_dump_json()
    return f"id: {event_id}\nevent: {event}\ndata: {payload}\n\n".encode()


def _fingerprint(state: dict[str, Any]) -> str:
    # the report too: jobs other than ingest (duplicate searches) write their progress there
    return json.dumps({k: state.get(k) for k in ("status", "tasks", "files", "counts", "report")}, sort_keys=True,
                      default=str)


@router.get("/{job_id}/events", summary="Live progress as Server-Sent Events",
            response_class=StreamingResponse,
            responses={200: {"description": "`progress` events (a JobOut as JSON) each time the job changes, "
                                            "then one `end` event when it has finished (or is paused)",
                             "content": {"text/event-stream": {"schema": SSE_EVENT}}}})
async def events(request: Request, job_id: int = JOB_ID,
                 interval: float = Query(default=POLL_S, ge=0.1, le=10.0, description="Polling period, seconds"),
                 rt: Runtime = Depends(get_rt)) -> StreamingResponse:
    note_job(request, job_id)
    first = job_out(await run_in_threadpool(progress, rt, job_id))  # 404 before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        state, last, n = first, "", 0
        idle = 0.0
        while True:
            ended = state["status"] in FINISHED_JOB or state["status"] == "paused"
            mark = _fingerprint(state)
            if ended:
                n += 1
                yield _sse("end", state, n)
                return
            if mark != last:
                n += 1
                last, idle = mark, 0.0
                yield _sse("progress", state, n)
            elif idle >= KEEPALIVE_S:
                idle = 0.0
                yield b": keep-alive\n\n"
            with anyio.move_on_after(interval):
                # wake early when the client goes away, so the poller stops at once
                while not await request.is_disconnected():
                    await anyio.sleep(min(0.25, interval))
                return
            idle += interval
            state = job_out(await run_in_threadpool(progress, rt, job_id))

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
