"""Durable job and task state in the catalog: idempotent enqueueing, leases, retries, dead letters.

The queue transport (Huey) only carries task ids; this table is the truth. A worker *claims* a task
with a conditional UPDATE (only one claimant can win), renews the lease while it works, and marks
the task done or failed. A lease that expires (the worker was killed) puts the task back; a task that
failed `max_attempts` times is `dead` until someone requeues it. Every transition is one statement or
one short transaction, so a process killed at any point leaves a state the reaper can repair.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import aliased

from photoindex.errors import CatalogError, ErrorCode
from photoindex.store.catalog import Catalog, _chunks
from photoindex.store.models import Job, Task, utcnow

ACTIVE_JOB = ("queued", "running")
FINISHED_JOB = ("completed", "failed", "cancelled", "interrupted")
PENDING_TASK = ("queued", "leased")


@dataclass(frozen=True)
class TaskSpec:
    key: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    priority: int = 0
    max_attempts: int = 5
    blocked: bool = False  # runs once every other task of its job is done or dead (a finalizer)


@dataclass(frozen=True)
class ClaimedTask:
    id: int
    job_id: int
    key: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    priority: int
    previous: dict[str, Any] | None = None  # what an interrupted earlier attempt had done


@dataclass(frozen=True)
class ReapResult:
    expired: list[int]  # leases that ran out: back to queued
    released: list[int]  # finalizers whose job has nothing else pending
    to_enqueue: list[tuple[int, int]]  # (task id, priority) due but not (or no longer) in the transport


def backoff_seconds(attempt: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with multiplicative jitter: attempt 1 → base, 2 → 2·base, …, at most cap."""
    import random

    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * (1 + random.uniform(-jitter, jitter))


class JobStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    # -- jobs -------------------------------------------------------------------------------------
    def create_job(self, kind: str, collection_id: int | None, params: dict[str, Any], *, priority: int = 0,
                   tasks: Sequence[TaskSpec] = ()) -> int:
        with self.catalog.session() as s:
            job = Job(kind=kind, collection_id=collection_id, params=params, status="queued", counts={},
                      report={}, priority=priority, updated_at=utcnow())
            s.add(job)
            s.flush()
            job_id = int(job.id)
        if tasks:
            self.add_tasks(job_id, tasks)
        return job_id

    def get_job(self, job_id: int) -> dict[str, Any]:
        with self.catalog.session() as s:
            job = s.get(Job, job_id)
            if job is None:
                raise CatalogError(f"no job with id {job_id}", code=ErrorCode.JOB_NOT_FOUND,
                                   hint="list jobs with `photoindex jobs list`")
            by_status = dict(s.execute(select(Task.status, func.count()).where(Task.job_id == job_id)
                                       .group_by(Task.status)).all())
            return {
                "id": job.id, "kind": job.kind, "status": job.status, "collection_id": job.collection_id,
                "params": job.params, "priority": job.priority, "created_at": job.created_at,
                "started_at": job.started_at, "finished_at": job.finished_at, "counts": job.counts or {},
                "report": job.report or {}, "tasks": {k: int(v) for k, v in by_status.items()},
            }

    def set_job(self, job_id: int, *, status: str | None = None, counts: dict[str, Any] | None = None,
                report: dict[str, Any] | None = None, only_if: Sequence[str] | None = None) -> bool:
        values: dict[str, Any] = {"updated_at": utcnow()}
        if status is not None:
            values["status"] = status
            if status in FINISHED_JOB:
                values["finished_at"] = utcnow()
        if counts is not None:
            values["counts"] = counts
        if report is not None:
            values["report"] = report
        conds = [Job.id == job_id] + ([Job.status.in_(only_if)] if only_if else [])
        with self.catalog.session() as s:
            return s.execute(update(Job).where(*conds).values(**values)).rowcount > 0

    def list_jobs(self, limit: int = 20, status: str | None = None) -> list[dict[str, Any]]:
        with self.catalog.session() as s:
            q = select(Job.id).order_by(Job.id.desc()).limit(limit)
            if status:
                q = q.where(Job.status == status)
            ids = list(s.scalars(q))
        return [self.get_job(i) for i in ids]

    def pause(self, job_id: int) -> bool:
        return self.set_job(job_id, status="paused", only_if=ACTIVE_JOB)

    def resume(self, job_id: int) -> bool:
        return self.set_job(job_id, status="running", only_if=("paused", "interrupted"))

    def cancel(self, job_id: int) -> bool:
        if not self.set_job(job_id, status="cancelled", only_if=(*ACTIVE_JOB, "paused")):
            return False
        with self.catalog.session() as s:
            s.execute(update(Task).where(Task.job_id == job_id, Task.status.in_(("queued", "blocked")))
                      .values(status="cancelled", updated_at=utcnow()))
        return True

    # -- tasks ------------------------------------------------------------------------------------
    def add_tasks(self, job_id: int, specs: Sequence[TaskSpec]) -> dict[str, int]:
        """Insert tasks; a key that exists already is left as it is. Returns key → task id."""
        now = utcnow()
        rows = [
            {"job_id": job_id, "key": t.key, "kind": t.kind, "payload": t.payload, "priority": t.priority,
             "max_attempts": t.max_attempts, "status": "blocked" if t.blocked else "queued", "attempts": 0,
             "next_run_at": now, "created_at": now, "updated_at": now}
            for t in specs
        ]
        out: dict[str, int] = {}
        with self.catalog.session() as s:
            if rows:
                s.execute(self.catalog._insert(Task).on_conflict_do_nothing(index_elements=["key"]), rows)
            for chunk in _chunks([t.key for t in specs]):
                out.update(s.execute(select(Task.key, Task.id).where(Task.key.in_(chunk))).all())
        return out

    def _claim_where(self, now: datetime) -> list[Any]:
        runnable_jobs = select(Job.id).where(Job.status.in_(ACTIVE_JOB))
        return [Task.status == "queued", Task.next_run_at <= now, Task.job_id.in_(runnable_jobs)]

    def claim(self, task_id: int, owner: str, lease_s: float) -> ClaimedTask | None:
        """Take a task under a lease; None if another worker has it, it is done, or not due yet."""
        now = utcnow()
        with self.catalog.session() as s:
            won = s.execute(
                update(Task).where(Task.id == task_id, *self._claim_where(now)).values(
                    status="leased", lease_owner=owner, lease_until=now + timedelta(seconds=lease_s),
                    attempts=Task.attempts + 1, updated_at=now)
            ).rowcount
            if not won:
                return None
            t = s.get(Task, task_id)
            assert t is not None
            s.execute(update(Job).where(Job.id == t.job_id, Job.status == "queued")
                      .values(status="running", started_at=now, updated_at=now))
            return ClaimedTask(t.id, t.job_id, t.key, t.kind, dict(t.payload or {}), t.attempts, t.max_attempts,
                               t.priority, t.result)

    def claim_next(self, owner: str, lease_s: float, *, job_id: int | None = None) -> ClaimedTask | None:
        """The most urgent due task (of one job, or any), claimed; None when nothing is due."""
        for _ in range(20):  # another worker may win each candidate; try the next ones
            with self.catalog.session() as s:
                q = select(Task.id).where(*self._claim_where(utcnow()))
                if job_id is not None:
                    q = q.where(Task.job_id == job_id)
                ids = list(s.scalars(q.order_by(Task.priority.desc(), Task.id).limit(5)))
            if not ids:
                return None
            for task_id in ids:
                claimed = self.claim(task_id, owner, lease_s)
                if claimed is not None:
                    return claimed
        return None

    def heartbeat(self, task_ids: Sequence[int], owner: str, lease_s: float) -> int:
        """Extend the leases this owner still holds; returns how many it still holds."""
        if not task_ids:
            return 0
        now = utcnow()
        with self.catalog.session() as s:
            return s.execute(update(Task).where(
                Task.id.in_(list(task_ids)), Task.lease_owner == owner, Task.status == "leased",
            ).values(lease_until=now + timedelta(seconds=lease_s), updated_at=now)).rowcount

    def complete(self, task_id: int, owner: str, result: dict[str, Any]) -> bool:
        """Mark done. False when the lease was lost meanwhile (the effects are idempotent, so a second
        run elsewhere does no harm; its result is the one that counts)."""
        now = utcnow()
        with self.catalog.session() as s:
            return s.execute(update(Task).where(
                Task.id == task_id, Task.lease_owner == owner, Task.status == "leased",
            ).values(status="done", result=result, lease_owner=None, lease_until=None, updated_at=now)).rowcount > 0

    def fail(self, task: ClaimedTask, owner: str, error: dict[str, Any], *, retry_in_s: float) -> str:
        """Record a failure: back to the queue after `retry_in_s`, or dead after the last attempt."""
        now = utcnow()
        dead = task.attempts >= task.max_attempts
        values: dict[str, Any] = {"lease_owner": None, "lease_until": None, "last_error": error, "updated_at": now,
                                  "status": "dead" if dead else "queued"}
        if not dead:
            values["next_run_at"] = now + timedelta(seconds=retry_in_s)
            values["enqueued_at"] = None
        with self.catalog.session() as s:
            s.execute(update(Task).where(Task.id == task.id, Task.lease_owner == owner, Task.status == "leased")
                      .values(**values))
        return values["status"]

    def release(self, task_id: int, owner: str, *, partial: dict[str, Any] | None = None) -> None:
        """Hand a task back unfinished (the worker is stopping), without spending an attempt; `partial`
        keeps what it did so far for the report and for the next attempt."""
        values: dict[str, Any] = {"status": "queued", "attempts": Task.attempts - 1, "lease_owner": None,
                                  "lease_until": None, "enqueued_at": None, "updated_at": utcnow()}
        if partial is not None:
            values["result"] = partial
        with self.catalog.session() as s:
            s.execute(update(Task).where(Task.id == task_id, Task.lease_owner == owner, Task.status == "leased")
                      .values(**values))

    def unsent(self, job_id: int) -> list[tuple[int, int]]:
        """Due tasks of a job that were never handed to the transport (e.g. just created by a scan)."""
        with self.catalog.session() as s:
            rows = s.execute(select(Task.id, Task.priority).where(
                Task.job_id == job_id, *self._claim_where(utcnow()), Task.enqueued_at.is_(None)))
            return [(int(i), int(p)) for i, p in rows]

    def save_partial(self, task_id: int, owner: str, partial: dict[str, Any]) -> None:
        """Keep what a failing attempt did, for the report and the next attempt."""
        with self.catalog.session() as s:
            s.execute(update(Task).where(Task.id == task_id, Task.lease_owner == owner, Task.status == "leased")
                      .values(result=partial, updated_at=utcnow()))

    def mark_enqueued(self, task_ids: Sequence[int]) -> None:
        with self.catalog.session() as s:
            for chunk in _chunks(list(task_ids)):
                s.execute(update(Task).where(Task.id.in_(chunk)).values(enqueued_at=utcnow()))

    def release_finalizers(self, job_id: int | None = None) -> list[int]:
        """Unblock finalizer tasks of jobs that have nothing else queued, leased or blocked."""
        with self.catalog.session() as s:
            sibling = aliased(Task)
            other = select(sibling.id).where(sibling.job_id == Task.job_id, sibling.status.in_(PENDING_TASK)).exists()
            q = select(Task.id).join(Job, Job.id == Task.job_id).where(
                Task.status == "blocked", Job.status.in_(ACTIVE_JOB), ~other)
            if job_id is not None:
                q = q.where(Task.job_id == job_id)
            ids = list(s.scalars(q))
            released = []
            for task_id in ids:
                # blocked siblings other than this one would also hold it back (a finalizer of a finalizer)
                if s.execute(update(Task).where(Task.id == task_id, Task.status == "blocked").values(
                        status="queued", next_run_at=utcnow(), enqueued_at=None, updated_at=utcnow())).rowcount:
                    released.append(task_id)
            return released

    def reap(self, *, stale_enqueue_s: float) -> ReapResult:
        """Repair what dead workers and lost transport messages left: expired leases go back to the
        queue; due tasks that were never (or too long ago) handed to the transport are listed for it."""
        now = utcnow()
        with self.catalog.session() as s:
            expired = list(s.scalars(select(Task.id).where(Task.status == "leased", Task.lease_until < now)))
            for chunk in _chunks(expired):
                s.execute(update(Task).where(Task.id.in_(chunk), Task.status == "leased", Task.lease_until < now)
                          .values(status="queued", lease_owner=None, lease_until=None, enqueued_at=None,
                                  next_run_at=now, updated_at=now))
        released = self.release_finalizers()
        stale = now - timedelta(seconds=stale_enqueue_s)
        with self.catalog.session() as s:
            rows = s.execute(select(Task.id, Task.priority).where(
                *self._claim_where(now), or_(Task.enqueued_at.is_(None), Task.enqueued_at < stale),
            ).order_by(Task.priority.desc(), Task.id).limit(10_000)).all()
        return ReapResult(expired, released, [(int(i), int(p)) for i, p in rows])

    def pending_count(self, job_id: int) -> int:
        with self.catalog.session() as s:
            return int(s.scalar(select(func.count()).select_from(Task).where(
                Task.job_id == job_id, Task.status.in_((*PENDING_TASK, "blocked")))) or 0)

    def tasks(self, job_id: int | None = None, *, status: str | None = None, kind: str | None = None,
              limit: int = 1000) -> list[dict[str, Any]]:
        conds = []
        if job_id is not None:
            conds.append(Task.job_id == job_id)
        if status is not None:
            conds.append(Task.status == status)
        if kind is not None:
            conds.append(Task.kind == kind)
        with self.catalog.session() as s:
            rows = s.scalars(select(Task).where(and_(*conds)).order_by(Task.id).limit(limit)).all()
            return [
                {"id": t.id, "job_id": t.job_id, "key": t.key, "kind": t.kind, "status": t.status,
                 "attempts": t.attempts, "max_attempts": t.max_attempts, "priority": t.priority,
                 "lease_owner": t.lease_owner, "lease_until": t.lease_until, "next_run_at": t.next_run_at,
                 "last_error": t.last_error, "result": t.result, "payload_size": len(t.payload or {})}
                for t in rows
            ]

    def payload(self, task_id: int) -> dict[str, Any]:
        with self.catalog.session() as s:
            return dict(s.scalar(select(Task.payload).where(Task.id == task_id)) or {})

    def results(self, job_id: int, kind: str) -> list[dict[str, Any]]:
        """Results of a job's tasks of one kind: finished ones, and the partial results that
        interrupted ones left."""
        with self.catalog.session() as s:
            return [r for r in s.scalars(select(Task.result).where(
                Task.job_id == job_id, Task.kind == kind, Task.result.is_not(None))) if r]

    def requeue_dead(self, *, job_id: int | None = None, task_ids: Sequence[int] = ()) -> list[int]:
        """Give dead tasks (all, a job's, or the listed ones) a fresh set of attempts; their job runs again
        and its finalizer (if it already ran) runs again after them."""
        conds = [Task.status == "dead"]
        if job_id is not None:
            conds.append(Task.job_id == job_id)
        if task_ids:
            conds.append(Task.id.in_(list(task_ids)))
        now = utcnow()
        with self.catalog.session() as s:
            rows = s.execute(select(Task.id, Task.job_id).where(*conds)).all()
            ids = [int(r[0]) for r in rows]
            jobs = {int(r[1]) for r in rows}
            for chunk in _chunks(ids):
                s.execute(update(Task).where(Task.id.in_(chunk)).values(
                    status="queued", attempts=0, next_run_at=now, enqueued_at=None, lease_owner=None,
                    lease_until=None, updated_at=now))
            for jid in jobs:
                s.execute(update(Task).where(Task.job_id == jid, Task.status == "done",
                                             Task.kind.like("%.finalize")).values(status="blocked", updated_at=now))
                s.execute(update(Job).where(Job.id == jid).values(status="running", finished_at=None,
                                                                  updated_at=now))
        return ids
