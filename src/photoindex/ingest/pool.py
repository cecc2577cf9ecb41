"""The process pool that runs the CPU stage (`prepare.py`), shared by every task a worker runs.

Work goes in as chunks of paths, at most two chunks per process in flight (backpressure). A worker
process that dies (a native decoder crash, the OOM killer) breaks the whole pool; the pool is then
rebuilt, and the files that were in flight are retried one at a time, so the one that kills its
process again is reported as `decoder_crashed` and the others go through.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from photoindex import metrics
from photoindex.errors import ErrorCode
from photoindex.ingest.prepare import Failed, PrepareConfig, Result, init_worker, prepare_many

INLINE_LIMIT = 4  # fewer files than this are prepared in the calling process: no pool round trip
CRASHED = "the decoder process died on this file (damaged or hostile data)"

PrepareFn = Callable[[list[str], PrepareConfig], list[Result]]


class PreparePool:
    prepare_fn: PrepareFn = staticmethod(prepare_many)

    def __init__(self, processes: int) -> None:
        self.processes = max(1, processes)
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                ctx = mp.get_context("forkserver")  # workers start clean, not as forks of a threaded process
                ctx.set_forkserver_preload(["photoindex.ingest.prepare"])
                self._pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=ctx,
                                                 initializer=init_worker)
            return self._pool

    def _rebuild(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def run(self, paths: list[str], config: PrepareConfig, emit: Callable[[Iterable[Result]], None],
            stop: Callable[[], bool] = lambda: False) -> None:
        """Prepare `paths`, handing results to `emit` as chunks finish, until done or `stop()`."""
        if len(paths) < INLINE_LIMIT or self.processes == 1:
            for path in paths:
                if stop():
                    return
                emit(prepare_many([path], config))
            return
        size = max(1, min(16, math.ceil(len(paths) / (self.processes * 4))))
        todo = deque(paths[i : i + size] for i in range(0, len(paths), size))
        suspects: deque[list[str]] = deque()
        inflight: dict[Future, list[str]] = {}
        started: dict[Future, float] = {}  # chunk latency, queueing included (what backpressure costs)
        pool = self._executor()
        try:
            while (todo or suspects or inflight) and not stop():
                if suspects:  # one at a time, so a crash names its file
                    if not inflight:
                        chunk = suspects.popleft()
                        fut = pool.submit(self.prepare_fn, chunk, config)
                        inflight[fut], started[fut] = chunk, time.perf_counter()
                else:
                    while todo and len(inflight) < 2 * self.processes:
                        chunk = todo.popleft()
                        fut = pool.submit(self.prepare_fn, chunk, config)
                        inflight[fut], started[fut] = chunk, time.perf_counter()
                done, _ = wait(inflight, timeout=1.0, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    chunk = inflight.pop(fut)
                    try:
                        results = fut.result()
                        metrics.stage_seconds.labels("prepare").observe(time.perf_counter() - started.pop(fut, 0.0))
                        emit(results)
                    except BrokenProcessPool:
                        broken = True
                        if len(chunk) == 1 and not inflight:
                            emit([Failed(chunk[0], ErrorCode.DECODER_CRASHED, CRASHED)])
                        else:
                            suspects.extend([p] for p in chunk)
                if broken:
                    suspects.extend([p] for chunk in inflight.values() for p in chunk)
                    inflight.clear()
                    self._rebuild(pool)
                    pool = self._executor()
        finally:
            for fut in inflight:
                fut.cancel()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
