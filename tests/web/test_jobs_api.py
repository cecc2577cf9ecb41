"""The two additions to the jobs API that the web UI relies on: a job's tasks with the reasons of their
failures (`GET /jobs/{id}/tasks?status=dead`, shown on the Jobs page for jobs whose report does not list
them), and job events sent when only the job's report changes (a duplicate search writes its progress
there)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from api.helpers import Server, assert_error, wait_job

from photoindex.store.jobs import JobStore, TaskSpec


def test_dead_tasks_with_their_reasons(start_server: Callable[..., Server], library: Path) -> None:
    server = start_server(allowed_roots=[library])
    coll = server.rt.collection(None)
    jobs = JobStore(server.rt.catalog)
    # a files task naming a collection that does not exist fails on its one attempt
    job_id = jobs.create_job("ingest", coll.id, {"roots": [str(library)], "collection": coll.name,
                                                 "collection_id": coll.id, "embed": False},
                             tasks=[TaskSpec(key="gone:files", kind="ingest.files", max_attempts=1,
                                             payload={"collection": "gone", "embed": False,
                                                      "paths": [str(library / "home" / "cat.jpg")]})])
    with server.client() as c:
        wait_job(c, job_id)
        dead = c.get(f"/jobs/{job_id}/tasks", params={"status": "dead"})
        assert dead.status_code == 200, dead.text
        [task] = dead.json()
        assert task["kind"] == "ingest.files" and task["status"] == "dead" and task["attempts"] == 1
        assert task["last_error"]["code"] and "no collection named 'gone'" in task["last_error"]["message"]
        assert "trace" not in task["last_error"]  # the traceback stays on the server
        every = c.get(f"/jobs/{job_id}/tasks").json()
        assert {t["id"] for t in every} >= {task["id"]} and len(every) >= 1
        assert c.get(f"/jobs/{job_id}/tasks", params={"status": "queued"}).json() == []
        assert_error(c.get(f"/jobs/{job_id}/tasks", params={"status": "sleeping"}), 422)
        assert_error(c.get("/jobs/999999/tasks"), 404)


def read_events(response: httpx.Response, events: list[dict[str, Any]], stop: threading.Event) -> None:
    name = None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append({"event": name, **json.loads(line[6:])})
            if name == "end" or stop.is_set():
                return


def wait_for(events: list[dict[str, Any]], check: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = next((e for e in list(events) if check(e)), None)
        if found is not None:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no such event in {events}")


def test_events_follow_the_report(start_server: Callable[..., Server]) -> None:
    server = start_server(serve_worker=False)  # nothing runs the job: the test moves it along by hand
    coll = server.rt.collection(None)
    jobs = JobStore(server.rt.catalog)
    job_id = jobs.create_job("duplicates", coll.id, {"collection": coll.name},
                             tasks=[TaskSpec(key="by-hand:find", kind="duplicates.find", payload={})])
    events: list[dict[str, Any]] = []
    stop = threading.Event()
    with httpx.Client(base_url=server.url, timeout=30) as c, \
            c.stream("GET", f"/jobs/{job_id}/events", params={"interval": 0.1}) as response:
        assert response.status_code == 200
        reader = threading.Thread(target=read_events, args=(response, events, stop), daemon=True)
        reader.start()
        wait_for(events, lambda e: e["event"] == "progress" and e["status"] == "queued")
        progress = {"phase": "hashing", "done": 3, "total": 10}
        jobs.set_job(job_id, report={"progress": progress})  # status, tasks and counts stay as they were
        seen = wait_for(events, lambda e: e.get("report", {}).get("progress") == progress)
        assert seen["event"] == "progress" and seen["status"] == "queued"
        jobs.set_job(job_id, status="completed", report={"groups": []})
        assert wait_for(events, lambda e: e["event"] == "end")["status"] == "completed"
        stop.set()
        reader.join(timeout=5)


def test_failed_duplicate_search_on_the_jobs_page(start_server: Callable[..., Server], tab: Callable[..., Any]) -> None:
    """A job whose report lists no failures (a duplicate search that died) shows its dead task's reason,
    read from the tasks endpoint, and a Retry button."""
    server = start_server()
    coll = server.rt.collection(None)
    jobs = JobStore(server.rt.catalog)
    job_id = jobs.create_job("duplicates", coll.id, {"collection": "gone", "params": {"tiers": ["exact"]}},
                             tasks=[TaskSpec(key="gone:find", kind="duplicates.find", max_attempts=1,
                                             payload={"collection": "gone", "params": {"tiers": ["exact"]}})])
    with server.client() as c:
        deadline = time.monotonic() + 30
        while not (job := c.get(f"/jobs/{job_id}").json())["finished"] and time.monotonic() < deadline:
            time.sleep(0.1)
    assert job["status"] == "failed" and job["tasks"].get("dead") == 1, job
    with tab(server.base) as t:
        page = t.page
        t.goto("/jobs")
        card = page.locator(f".job[data-id='{job_id}']")
        failure = card.locator(".failures li").first
        failure.wait_for()
        assert card.locator(".status-badge").inner_text() == "failed"
        assert card.locator(".roots").inner_text() == "Collection gone · tiers exact"
        assert card.locator(".numbers").inner_text().startswith("Failed in ")
        assert card.locator("progress").evaluate("p => p.value === 0")
        text = failure.inner_text()
        assert "duplicates.find" in text and "collection_not_found" in text and "gone" in text
        assert card.locator(".failures").get_attribute("open") is not None
        assert card.get_by_role("button", name="Retry 1 dead task").is_visible()
        t.shot("jobs-failed-duplicates")
