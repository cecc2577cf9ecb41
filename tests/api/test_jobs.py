"""Jobs over HTTP: listing, the SSE progress stream, cancel / pause / resume, retrying dead tasks."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from photoindex.jobs.worker import Worker, handler
from photoindex.runtime import Runtime
from photoindex.store.jobs import ClaimedTask, JobStore, TaskSpec

from .helpers import Server, assert_error, wait_job


def read_events(client: httpx.Client, job_id: int, out: list[dict[str, Any]], **params: Any) -> None:
    """Collect the SSE events of a job's stream into `out` until the server ends it."""
    with client.stream("GET", f"/jobs/{job_id}/events", params=params, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        for line in r.iter_lines():
            if line.startswith(":"):
                continue
            if not line:
                if event:
                    out.append(event)
                event = {}
                continue
            key, _, value = line.partition(": ")
            event[key] = json.loads(value) if key == "data" else value


def test_sse_streams_progress_then_end(serve: Callable[..., Server], library: Path) -> None:
    # no worker in the server: the job waits until this test runs it, so the stream sees it queued first
    server = serve(serve_worker=False, allowed_roots=[library], task_files=2)
    c = server.client()
    job_id = c.post("/ingest/scan", json={"path": str(library)}).json()["job_id"]
    events: list[dict[str, Any]] = []
    reader = threading.Thread(target=read_events, args=(server.client(), job_id, events), kwargs={"interval": 0.2})
    reader.start()
    deadline = time.monotonic() + 10
    while not events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert events and events[0]["event"] == "progress" and events[0]["data"]["status"] == "queued"

    rt = Runtime(server.settings)  # a worker of its own, as `photoindex worker` would be
    try:
        worker = Worker(rt, processes=1)
        try:
            worker.run_job(job_id)
        finally:
            worker.close()
    finally:
        rt.close()
    reader.join(timeout=30)
    assert not reader.is_alive()
    kinds = [e["event"] for e in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1 and set(kinds[:-1]) == {"progress"}
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))
    final = events[-1]["data"]
    assert final["status"] == "completed" and final["finished"] and final["files"] == {"done": 5, "total": 5}

    # a finished job's stream is one `end` event
    again: list[dict[str, Any]] = []
    read_events(c, job_id, again)
    assert [e["event"] for e in again] == ["end"]
    assert_error(c.get("/jobs/424242/events"), 404, "job_not_found")


def test_sse_client_disconnect(serve: Callable[..., Server], library: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = serve(serve_worker=False, allowed_roots=[library])
    c = server.client()
    job_id = c.post("/ingest/scan", json={"path": str(library)}).json()["job_id"]

    def stream_closed() -> bool:  # the access line is written when the server has ended the stream
        return any(getattr(r, "fields", {}).get("route") == "/api/v1/jobs/{job_id}/events" for r in caplog.records)

    with caplog.at_level(logging.INFO, logger="photoindex.api"):
        with c.stream("GET", f"/jobs/{job_id}/events", params={"interval": 5}) as r:
            lines = r.iter_lines()  # (held: a dropped iterator would close the response at once)
            assert next(lines) == "id: 1"
            time.sleep(0.5)
            assert not stream_closed()  # the job is still queued: the stream stays open
        deadline = time.monotonic() + 3  # well before the next 5 s poll
        while not stream_closed():
            assert time.monotonic() < deadline, "the server kept streaming to a client that left"
            time.sleep(0.05)
    assert c.get(f"/jobs/{job_id}").json()["status"] == "queued"  # and it keeps serving


def test_list_get_cancel_pause_resume(serve: Callable[..., Server], library: Path) -> None:
    server = serve(serve_worker=False, allowed_roots=[library])
    c = server.client()
    first = c.post("/ingest/scan", json={"path": str(library)}).json()["job_id"]
    second = c.post("/ingest/scan", json={"path": str(library / "home")}).json()["job_id"]

    listed = c.get("/jobs").json()
    assert [j["id"] for j in listed] == [second, first] and {j["status"] for j in listed} == {"queued"}
    assert [j["id"] for j in c.get("/jobs", params={"limit": 1}).json()] == [second]
    assert c.get("/jobs", params={"status": "completed"}).json() == []
    job = c.get(f"/jobs/{first}").json()
    assert job["kind"] == "ingest" and job["tasks"] == {"queued": 1} and job["finished"] is False
    assert job["params"]["roots"] == [str(library)]

    paused = c.post(f"/jobs/{first}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert_error(c.post(f"/jobs/{first}/pause"), 409, "invalid_state")
    assert c.post(f"/jobs/{first}/resume").json()["status"] == "running"
    cancelled = c.post(f"/jobs/{first}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["tasks"] == {"cancelled": 1} and cancelled.json()["finished"] is True
    assert_error(c.post(f"/jobs/{first}/cancel"), 409, "invalid_state")
    assert_error(c.post(f"/jobs/{first}/resume"), 409, "invalid_state")
    for verb in ("cancel", "pause", "resume", "retry"):
        assert_error(c.post(f"/jobs/999999/{verb}"), 404, "job_not_found")
    assert_error(c.get("/jobs/999999"), 404, "job_not_found")
    assert_error(c.get("/jobs", params={"status": "exploded"}), 422, "validation_error")

    # the cancelled job's status says so, with the (empty) report
    status = c.get(f"/ingest/status/{first}").json()
    assert status["finished"] and status["status"] == "cancelled" and status["result"]["totals"]["processed"] == 0


FLAKY_FLAG: dict[str, Path] = {}


@handler("test.flaky")
def _flaky(worker: Worker, task: ClaimedTask) -> dict[str, Any]:
    """Fails until its flag file exists (the cause 'is fixed')."""
    if not Path(task.payload["flag"]).exists():
        raise RuntimeError("the flag file is not there yet")
    return {"ok": True}


def test_retry_dead_tasks(serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve()  # the in-process worker (this process: it knows the test.flaky handler)
    c = server.client()
    flag = tmp_path / "fixed"
    store = JobStore(server.rt.catalog)
    coll = server.rt.collection(None)
    job_id = store.create_job("test", coll.id, {}, tasks=[
        TaskSpec(key="flaky:1", kind="test.flaky", payload={"flag": str(flag)}, max_attempts=1)])

    deadline = time.monotonic() + 20
    while c.get(f"/jobs/{job_id}").json()["status"] != "failed":
        assert time.monotonic() < deadline, c.get(f"/jobs/{job_id}").json()
        time.sleep(0.1)
    assert c.get(f"/jobs/{job_id}").json()["tasks"] == {"dead": 1}
    assert_error(c.get(f"/ingest/status/{job_id}"), 404, "job_not_found")  # not an ingest job

    flag.write_text("fixed")
    r = c.post(f"/jobs/{job_id}/retry")
    assert r.status_code == 200, r.text
    assert r.json()["job_id"] == job_id and len(r.json()["requeued"]) == 1
    while c.get(f"/jobs/{job_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline + 20
        time.sleep(0.1)
    assert c.get(f"/jobs/{job_id}").json()["tasks"] == {"done": 1}
    assert c.post(f"/jobs/{job_id}/retry").json()["requeued"] == []


def test_ingest_failures_are_reported(serve: Callable[..., Server], library: Path) -> None:
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 100)
    (library / "notes.jpg").write_text("not a photo")
    server = serve(allowed_roots=[library])
    c = server.client()
    done = wait_job(c, c.post("/ingest/scan", json={"path": str(library)}).json()["job_id"])
    result = done["result"]
    assert result["totals"]["processed"] == 5 and result["totals"]["failed"] == 2
    failed = {Path(f["path"]).name: f for f in result["failed_files"]}
    assert set(failed) == {"broken.jpg", "notes.jpg"}
    assert failed["notes.jpg"]["code"] == "unsupported_type" and failed["broken.jpg"]["message"]


def test_jobs_are_queued_for_resident_workers(serve: Callable[..., Server], library: Path, redis_url: str) -> None:
    """With Redis (workers on other machines) and no in-process worker, accepted jobs go to the queue,
    and a worker fed by the queue runs them (the Huey messages are consumed here one by one, as a
    resident worker's consumer threads would)."""
    from photoindex.jobs.transport import Transport, set_receiver

    server = serve(serve_worker=False, redis_url=redis_url, allowed_roots=[library])
    c = server.client()
    ready = c.get("/readyz").json()
    assert ready["ready"] and ready["checks"]["queue"]["detail"].startswith("redis")
    job_id = c.post("/ingest/scan", json={"path": str(library)}).json()["job_id"]
    transport = Transport(server.settings)
    rt = Runtime(server.settings)
    worker = Worker(rt, processes=1, transport=transport)
    set_receiver(worker.execute)
    try:
        assert transport.pending() == 1  # the scan task's doorbell
        deadline = time.monotonic() + 60
        while c.get(f"/jobs/{job_id}").json()["status"] not in ("completed", "failed"):
            assert time.monotonic() < deadline
            message = transport.huey.dequeue()
            if message is None:
                time.sleep(0.05)
            else:
                transport.huey.execute(message)
    finally:
        set_receiver(None)
        worker.close()
        rt.close()
        transport.close()
    done = wait_job(c, job_id)
    assert done["status"] == "completed" and done["result"]["totals"]["processed"] == 5
