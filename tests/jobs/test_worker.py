"""Retries through a real worker: transient failures back off and succeed, permanent ones go dead
with their last error, and requeueing dead tasks finishes the job."""

from __future__ import annotations

from pathlib import Path

from photoindex.jobs.worker import Worker, handler
from photoindex.store.jobs import JobStore, TaskSpec
from support.runtime import make_runtime

calls: dict[str, int] = {}
broken = {"on": True}


@handler("test.transient")
def flaky(worker: Worker, task) -> dict:  # noqa: ANN001
    calls[task.key] = calls.get(task.key, 0) + 1
    if calls[task.key] < 3:
        raise ConnectionError(f"transient failure {calls[task.key]}")
    return {"attempts_seen": calls[task.key]}


@handler("test.broken")
def always_fails(worker: Worker, task) -> dict:  # noqa: ANN001
    if broken["on"]:
        raise ValueError("this input can never work")
    return {"fixed": True}


def test_transient_failure_succeeds_after_backoff_and_permanent_one_goes_dead(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path / "home", None, retry_base_s=0.05, retry_max_s=0.2, max_attempts=3)
    jobs = JobStore(rt.catalog)
    job = jobs.create_job("test", None, {}, tasks=[
        TaskSpec(key="flaky", kind="test.transient", max_attempts=3),
        TaskSpec(key="broken", kind="test.broken", max_attempts=3),
    ])
    worker = Worker(rt, processes=1)
    worker.run_job(job)
    tasks = {t["key"]: t for t in jobs.tasks(job)}
    assert tasks["flaky"]["status"] == "done" and tasks["flaky"]["result"] == {"attempts_seen": 3}
    assert tasks["broken"]["status"] == "dead" and tasks["broken"]["attempts"] == 3
    assert tasks["broken"]["last_error"]["type"] == "ValueError"
    assert "never work" in tasks["broken"]["last_error"]["message"]
    assert jobs.get_job(job)["status"] == "failed"
    perf = [line for line in worker.perf_path.read_text().splitlines() if '"kind": "test.transient"' in line]
    assert len(perf) == 3  # every attempt is in the perf log

    broken["on"] = False  # the cause is fixed: requeue the dead letter
    assert jobs.requeue_dead(job_id=job) == [tasks["broken"]["id"]]
    worker.run_job(job)
    assert jobs.tasks(job, status="done")[-1]["result"] == {"fixed": True}
    assert jobs.get_job(job)["status"] == "completed"
    worker.close()
    rt.close()


def test_unknown_task_kind_goes_dead_with_a_clear_error(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path / "home", None, retry_base_s=0.01)
    jobs = JobStore(rt.catalog)
    job = jobs.create_job("test", None, {}, tasks=[TaskSpec(key="x", kind="test.nope", max_attempts=1)])
    worker = Worker(rt, processes=1)
    worker.run_job(job)
    [dead] = jobs.tasks(job, status="dead")
    assert "unknown task kind" in dead["last_error"]["message"]
    worker.close()
    rt.close()
