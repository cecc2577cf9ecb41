"""A Progress that keeps the job's report up to date while a task runs, so every process (the API's
event stream, `photoindex jobs status`) sees `report.progress = {phase, done, total}`."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from photoindex.store.jobs import JobStore

if TYPE_CHECKING:
    from photoindex.ingest.stages import Progress

SAVE_EVERY_S = 0.5


class JobProgress:
    """Writes at most every SAVE_EVERY_S seconds (and at each new phase); `inner` is the worker's own
    display (a Rich bar in the CLI)."""

    def __init__(self, jobs: JobStore, job_id: int, inner: Progress | None = None) -> None:
        from photoindex.ingest.stages import NullProgress

        self.jobs, self.job_id, self.inner = jobs, job_id, inner or NullProgress()
        self.state: dict[str, Any] = {"phase": "starting", "done": 0, "total": None}
        self._saved = 0.0
        self._lock = threading.Lock()  # stages may report from a thread pool

    def phase(self, description: str, total: int | None) -> None:
        self.inner.phase(description, total)
        with self._lock:
            self.state = {"phase": description, "done": 0, "total": total}
        self._save(force=True)

    def advance(self, n: int = 1) -> None:
        self.inner.advance(n)
        with self._lock:
            self.state["done"] += n
        self._save()

    def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._saved < SAVE_EVERY_S:
            return
        self._saved = now
        with self._lock:
            state = dict(self.state)
        self.jobs.set_job(self.job_id, report={"progress": state})
