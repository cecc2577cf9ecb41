"""The queue transport: Huey carries task ids from whoever enqueues to whichever worker is free.

SqliteHuey (a file in the data directory) by default; Redis (priority queue) when `redis_url` is
set, so workers on several machines share one queue. Huey's dequeue is destructive — a message taken
by a worker that dies is gone — so the transport is only a doorbell: the task table in the catalog
holds the truth, and the reaper re-sends any due task that nobody has claimed for a while.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey

from photoindex.config import Settings
from photoindex.errors import ErrorCode, PhotoindexError

TASK_NAME = "photoindex.run_task"
_deliver: Callable[[int], Any] | None = None


def set_receiver(fn: Callable[[int], Any] | None) -> None:
    """Route delivered task ids to this function (the worker of this process)."""
    global _deliver
    _deliver = fn


def _receive(task_id: int) -> Any:
    if _deliver is None:  # a message reached a process with no worker: put nothing at risk, say so
        raise RuntimeError("no photoindex worker in this process to run task %s" % task_id)
    return _deliver(task_id)


class Transport:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        try:
            if settings.redis_url:
                self.huey: Huey = PriorityRedisHuey("photoindex", url=settings.redis_url, results=False)
            else:
                settings.ensure_home()
                self.huey = SqliteHuey("photoindex", filename=str(settings.queue_path), results=False)
        except Exception as exc:
            raise PhotoindexError(f"cannot open the task queue: {exc}", code=ErrorCode.BACKEND_UNAVAILABLE,
                                  hint="check PHOTOINDEX_REDIS_URL (or that the data directory is writable)") from exc
        self._task = self.huey.task(name=TASK_NAME, retries=0)(_receive)

    @property
    def kind(self) -> str:
        return "redis" if self.settings.redis_url else "sqlite"

    def enqueue(self, task_id: int, *, priority: int = 0, delay_s: float | None = None) -> None:
        try:
            if delay_s:
                self._task.schedule(args=(task_id,), delay=delay_s, priority=priority)
            else:
                self.huey.enqueue(self._task.s(task_id, priority=priority))
        except Exception as exc:
            # Not fatal for durability: the task is in the catalog and the reaper re-sends it.
            raise PhotoindexError(f"cannot reach the task queue: {exc}", code=ErrorCode.BACKEND_UNAVAILABLE,
                                  hint="is Redis running? (PHOTOINDEX_REDIS_URL)") from exc

    def pending(self) -> int:
        try:
            return int(self.huey.pending_count())
        except Exception:
            return -1

    def consumer(self, threads: int) -> Any:
        return self.huey.create_consumer(workers=threads, worker_type="thread", periodic=False,
                                         initial_delay=0.05, backoff=1.5, max_delay=0.5,
                                         check_worker_health=True, health_check_interval=5)

    def close(self) -> None:
        storage = getattr(self.huey, "storage", None)
        close = getattr(getattr(storage, "conn", None), "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                pass
