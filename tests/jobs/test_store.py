"""Task state transitions in the catalog, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from photoindex.store.catalog import Catalog
from photoindex.store.jobs import JobStore, TaskSpec, backoff_seconds


def make(catalog: Catalog, n: int = 2, **kw) -> tuple[JobStore, int, dict[str, int]]:  # noqa: ANN003
    jobs = JobStore(catalog)
    job = jobs.create_job("test", None, {})
    ids = jobs.add_tasks(job, [TaskSpec(key=f"k{i}", kind="t", payload={"i": i}, **kw) for i in range(n)])
    return jobs, job, ids


def test_enqueueing_a_key_twice_is_a_no_op(catalog: Catalog) -> None:
    jobs, job, ids = make(catalog)
    again = jobs.add_tasks(job, [TaskSpec(key="k0", kind="t", payload={"i": 99})])
    assert again["k0"] == ids["k0"] and len(jobs.tasks(job)) == 2
    assert jobs.payload(ids["k0"]) == {"i": 0}


def test_only_one_worker_wins_a_claim(catalog: Catalog) -> None:
    jobs, job, ids = make(catalog)
    first = jobs.claim(ids["k0"], "a", 30)
    assert first is not None and first.attempts == 1
    assert jobs.claim(ids["k0"], "b", 30) is None
    assert jobs.get_job(job)["status"] == "running"
    assert jobs.claim_next("b", 30, job_id=job).id == ids["k1"]
    assert jobs.claim_next("b", 30, job_id=job) is None


def test_expired_lease_is_reaped_and_heartbeat_keeps_it(catalog: Catalog) -> None:
    jobs, job, ids = make(catalog)
    held = jobs.claim(ids["k0"], "a", 0.3)
    kept = jobs.claim(ids["k1"], "b", 0.3)
    assert held and kept
    time.sleep(0.15)
    assert jobs.heartbeat([ids["k1"]], "b", 30) == 1
    assert jobs.heartbeat([ids["k1"]], "intruder", 30) == 0
    time.sleep(0.3)
    r = jobs.reap(stale_enqueue_s=60)
    assert r.expired == [ids["k0"]] and [t for t, _ in r.to_enqueue] == [ids["k0"]]
    assert not jobs.complete(ids["k0"], "a", {"late": True})  # the lost lease cannot complete it
    again = jobs.claim(ids["k0"], "c", 30)
    assert again is not None and again.attempts == 2
    assert jobs.complete(ids["k0"], "c", {"ok": True})


def test_failures_back_off_then_go_dead_and_requeue(catalog: Catalog) -> None:
    jobs, job, ids = make(catalog, n=1, max_attempts=2)
    t = jobs.claim(ids["k0"], "a", 30)
    assert jobs.fail(t, "a", {"message": "flaky"}, retry_in_s=0.3) == "queued"
    assert jobs.claim(ids["k0"], "a", 30) is None  # not due yet
    time.sleep(0.35)
    t = jobs.claim(ids["k0"], "a", 30)
    assert t is not None and t.attempts == 2
    assert jobs.fail(t, "a", {"message": "still broken"}, retry_in_s=0.0) == "dead"
    [dead] = jobs.tasks(job, status="dead")
    assert dead["last_error"] == {"message": "still broken"} and dead["attempts"] == 2
    assert jobs.requeue_dead(job_id=job) == [ids["k0"]]
    t = jobs.claim(ids["k0"], "a", 30)
    assert t is not None and t.attempts == 1


def test_finalizer_waits_for_the_rest(catalog: Catalog) -> None:
    jobs, job, ids = make(catalog)
    fin = jobs.add_tasks(job, [TaskSpec(key="fin", kind="t.finalize", blocked=True)])["fin"]
    assert jobs.release_finalizers(job) == []
    for key in ("k0", "k1"):
        t = jobs.claim(ids[key], "a", 30)
        jobs.complete(t.id, "a", {})
    assert jobs.release_finalizers(job) == [fin]
    assert jobs.claim_next("a", 30, job_id=job).id == fin


def test_pause_resume_cancel(catalog: Catalog) -> None:
    jobs, job, ids = make(catalog)
    assert jobs.pause(job)
    assert jobs.claim_next("a", 30) is None  # a paused job's tasks are not handed out
    assert jobs.resume(job) and jobs.claim_next("a", 30) is not None
    assert jobs.cancel(job)
    assert jobs.get_job(job)["status"] == "cancelled" and jobs.claim_next("a", 30) is None
    assert {t["status"] for t in jobs.tasks(job)} == {"leased", "cancelled"}


def test_release_keeps_the_attempt_and_partial_result(catalog: Catalog) -> None:
    jobs, job, ids = make(catalog, n=1)
    t = jobs.claim(ids["k0"], "a", 30)
    jobs.release(t.id, "a", partial={"processed": 3})
    again = jobs.claim(ids["k0"], "b", 30)
    assert again.attempts == 1 and again.previous == {"processed": 3}


def test_priorities_order_claims(catalog: Catalog) -> None:
    jobs = JobStore(catalog)
    job = jobs.create_job("test", None, {})
    jobs.add_tasks(job, [TaskSpec(key="low", kind="t", priority=0), TaskSpec(key="high", kind="t", priority=10)])
    assert jobs.claim_next("a", 30).key == "high"


def test_backoff_grows_and_is_capped() -> None:
    assert backoff_seconds(1, 2, 300, jitter=0) == 2
    assert backoff_seconds(4, 2, 300, jitter=0) == 16
    assert backoff_seconds(20, 2, 300, jitter=0) == 300
    assert 1.5 <= backoff_seconds(1, 2, 300, jitter=0.25) <= 2.5
