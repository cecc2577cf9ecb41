"""A worker: claims tasks under leases and runs their handlers, with models kept warm.

Two ways to be fed, one way to run a task (`_run`):
* `serve()` — the resident `photoindex worker`: a Huey consumer delivers task ids; a reaper thread
  repairs expired leases and re-sends tasks the transport lost; the model is loaded and warmed up at
  boot; configuration changes are picked up without a restart.
* `run_job(job_id)` — the one-shot `photoindex ingest`: claims its own job's tasks straight from the
  catalog until none is left.

Either way a heartbeat thread renews the leases of the tasks in hand and writes a heartbeat file,
and each task's stage timings go to a JSON-lines perf log.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from photoindex import metrics
from photoindex.config import config_file_path, load_settings
from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.ingest.pool import PreparePool
from photoindex.ingest.stages import NullProgress, Progress
from photoindex.jobs.transport import Transport, set_receiver
from photoindex.runtime import Runtime
from photoindex.store.jobs import ClaimedTask, JobStore, backoff_seconds

log = logging.getLogger("photoindex.worker")

Handler = Callable[["Worker", ClaimedTask], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn
    return register


def _load_handlers() -> None:
    import photoindex.curation.tasks  # noqa: F401  (registers the task kinds)
    import photoindex.enrich.tasks  # noqa: F401
    import photoindex.ingest.tasks  # noqa: F401


class Worker:
    def __init__(self, rt: Runtime, *, processes: int | None = None, progress: Progress | None = None,
                 transport: Transport | None = None) -> None:
        _load_handlers()
        self.rt = rt
        self.jobs = JobStore(rt.catalog)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.pool = PreparePool(processes or rt.settings.prepare_workers)
        self.infer_lock = threading.Semaphore(rt.settings.infer_concurrency)
        self.progress = progress or NullProgress()
        self.transport = transport
        self.stop_event = threading.Event()
        self._held: set[int] = set()
        self._held_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.done = 0
        self.failed = 0
        logs = rt.settings.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.perf_path = logs / f"perf-{socket.gethostname()}-{os.getpid()}.jsonl"
        self.heartbeat_path = rt.settings.home / "workers" / f"{socket.gethostname()}-{os.getpid()}.json"

    # -- running one task -------------------------------------------------------------------------
    def execute(self, task_id: int) -> str | None:
        """Run a delivered task if this worker wins its lease; None when it was not ours to run."""
        task = self.jobs.claim(task_id, self.owner, self.rt.settings.lease_s)
        return None if task is None else self._run(task)

    def _run(self, task: ClaimedTask) -> str:
        fn = HANDLERS.get(task.kind)
        with self._held_lock:
            self._held.add(task.id)
        started = time.monotonic()
        status = "done"
        numbers: dict[str, Any] = {}
        try:
            if fn is None:
                raise PhotoindexError(f"unknown task kind {task.kind!r}", code=ErrorCode.INVALID_REQUEST)
            result = fn(self, task)
            numbers = {k: v for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            if not self.jobs.complete(task.id, self.owner, result):
                log.warning("task %s finished after its lease was lost; its effects are idempotent", task.id)
            self.done += 1
            self._after(task)
        except KeyboardInterrupt:
            status = "interrupted"
            self.jobs.release(task.id, self.owner)
            raise
        except Exception as exc:
            self.failed += 1
            error = {"type": type(exc).__name__, "message": str(exc), "attempt": task.attempts,
                     "code": str(getattr(exc, "code", ErrorCode.INTERNAL)),
                     "trace": traceback.format_exc(limit=8)[-4000:]}
            settings = self.rt.settings
            delay = backoff_seconds(task.attempts, settings.retry_base_s, settings.retry_max_s, jitter=0.25)
            status = self.jobs.fail(task, self.owner, error, retry_in_s=delay)
            log.warning("task %s (%s) failed on attempt %s/%s: %s → %s", task.id, task.kind, task.attempts,
                        task.max_attempts, exc, status)
            if status == "queued":
                self._send([(task.id, task.priority)], delay_s=delay)
            else:
                self._after(task)
        finally:
            metrics.tasks_total.labels(task.kind, status).inc()
            with self._held_lock:
                self._held.discard(task.id)
            self._perf({"task": task.id, "job": task.job_id, "kind": task.kind, "status": status,
                        "attempt": task.attempts, **numbers, "seconds": round(time.monotonic() - started, 4),
                        "queue_depth": self.transport.pending() if self.transport else None})
        return status

    def _after(self, task: ClaimedTask) -> None:
        """A task left the pending set: send the tasks it created, release a finalizer that was waiting
        for it, or close the job."""
        self.jobs.release_finalizers(task.job_id)
        if self.transport is not None:
            self._send(self.jobs.unsent(task.job_id))
        if self.jobs.pending_count(task.job_id) == 0:
            dead = self.jobs.tasks(task.job_id, status="dead", limit=1)
            self.jobs.set_job(task.job_id, status="failed" if dead else "completed", only_if=("queued", "running"))

    def _send(self, tasks: list[tuple[int, int]], delay_s: float | None = None) -> None:
        if self.transport is None:  # one-shot: this worker claims its job's tasks itself
            return
        try:
            for task_id, priority in tasks:
                self.transport.enqueue(task_id, priority=priority, delay_s=delay_s)
            self.jobs.mark_enqueued([t for t, _ in tasks])
        except PhotoindexError as exc:
            log.warning("%s; the reaper will send them again", exc)

    def _perf(self, record: dict[str, Any]) -> None:
        record["time"] = time.time()
        record["worker"] = self.owner
        with self.perf_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    # -- background duties ------------------------------------------------------------------------
    def _every(self, seconds: Callable[[], float], duty: Callable[[], None], name: str) -> None:
        def loop() -> None:
            while not self.stop_event.wait(seconds()):
                try:
                    duty()
                except Exception:  # a failed round is retried at the next one; the log says why
                    log.exception("%s failed", name)
        t = threading.Thread(target=loop, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _heartbeat(self) -> None:
        with self._held_lock:
            held = sorted(self._held)
        if held:
            self.jobs.heartbeat(held, self.owner, self.rt.settings.lease_s)
        depth = self.transport.pending() if self.transport else -1
        if depth >= 0:
            metrics.queue_depth.set(depth)
        self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.heartbeat_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"worker": self.owner, "pid": os.getpid(), "time": time.time(), "tasks": held,
                                   "done": self.done, "failed": self.failed,
                                   "queue": self.transport.pending() if self.transport else None}))
        os.replace(tmp, self.heartbeat_path)

    def run_forever(self, stop: threading.Event, idle_s: float = 0.5) -> None:
        """Take due tasks of any job straight from the catalog until `stop` is set: the in-process worker
        of `photoindex serve`, which needs no transport (and, with resident workers, shares with them)."""
        self.stop_event = stop
        self.start_background(reaper=True)
        while not stop.is_set():
            task = self.jobs.claim_next(self.owner, self.rt.settings.lease_s)
            if task is None:
                stop.wait(idle_s)
                continue
            self._run(task)

    def _reap(self) -> None:
        r = self.jobs.reap(stale_enqueue_s=self.rt.settings.stale_enqueue_s)
        if r.expired:
            log.info("requeued %d tasks whose lease expired", len(r.expired))
        self._send(r.to_enqueue)

    def start_background(self, *, reaper: bool) -> None:
        self._heartbeat()
        self._every(lambda: self.rt.settings.lease_s / 3, self._heartbeat, "heartbeat")
        if reaper:
            self._every(lambda: self.rt.settings.reap_interval_s, self._reap, "reaper")

    def close(self) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(timeout=5)
        self.pool.close()
        try:
            self.heartbeat_path.unlink()
        except OSError:
            pass

    # -- one-shot ---------------------------------------------------------------------------------
    def run_job(self, job_id: int) -> None:
        """Claim and run this job's tasks here until none is pending (tasks waiting for a retry are
        waited for; tasks leased by another worker are left to it)."""
        self.start_background(reaper=False)
        while True:
            task = self.jobs.claim_next(self.owner, self.rt.settings.lease_s, job_id=job_id)
            if task is not None:
                self._run(task)
                continue
            if self.jobs.pending_count(job_id) == 0:
                return
            self._reap_job(job_id)
            time.sleep(0.2)

    def _reap_job(self, job_id: int) -> None:
        # Without a resident worker nobody else repairs this job's expired leases.
        self.jobs.reap(stale_enqueue_s=self.rt.settings.stale_enqueue_s)
        self.jobs.release_finalizers(job_id)

    # -- resident -------------------------------------------------------------------------------
    def boot(self) -> None:
        """Load the models the collections use (concurrently) and warm them up before taking work."""
        names = {self.rt.model_name(c) for c in self.rt.catalog.list_collections()} or {self.rt.settings.model}
        threads = [threading.Thread(target=self._warm, args=(n,), daemon=True) for n in sorted(names)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _warm(self, name: str) -> None:
        model, notice = self.rt.try_embedder(name)
        if model is None:
            log.warning("%s", notice)
            return
        started = time.monotonic()
        # A full batch of synthetic photos: sessions allocate for the batch size before real work arrives.
        size = model.preprocess.size
        model.embed_images(np.random.default_rng(0).integers(0, 256, (model.batch_size, size, size, 3), np.uint8))
        model.embed_texts(["a photo"])
        self._perf({"event": "warmup", "model": model.model_id, "seconds": round(time.monotonic() - started, 3)})

    def _watch_config(self) -> None:
        path = config_file_path()
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            mtime = 0
        if mtime != getattr(self, "_config_mtime", mtime):
            log.info("configuration changed: reloading %s", path)
            self.rt.settings = load_settings(home=self.rt.settings.home)
        self._config_mtime = mtime

    def serve(self, transport: Transport, threads: int | None = None) -> None:
        """Run until SIGTERM / SIGINT: Huey delivers task ids to `execute`."""
        self.transport = transport
        set_receiver(self.execute)
        self.boot()
        self.start_background(reaper=True)
        self._watch_config()
        self._every(lambda: 2.0, self._watch_config, "config")
        self._reap()
        consumer = transport.consumer(threads or self.rt.settings.worker_threads)
        try:
            consumer.run()
        finally:
            set_receiver(None)
            self.close()


def heartbeats(home: Path) -> list[dict[str, Any]]:
    """The workers' heartbeat files (for `photoindex jobs workers` / status displays)."""
    out = []
    for f in sorted((home / "workers").glob("*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return out
