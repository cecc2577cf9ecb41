"""Cross-request batching for the ML service, and the start-up probe that picks the batch size.

`Batcher` merges what concurrent callers submit into one model call. Each caller awaits `submit(items)`
(an array of model inputs, or a list of texts); a background task takes the first waiting submission,
keeps collecting for at most `max_wait_s` after that submission arrived (or until `max_batch` items are
waiting; with `expecting`, only while that says more submissions are on their way, e.g. requests whose
bodies are still being read, so that a lone caller never waits), runs the model once in a thread pool
(ONNX Runtime releases the GIL, so the event loop keeps serving requests) and hands every caller its
own rows. While `concurrency` batches are running, new submissions simply queue up, so a busy device
gets full batches without waiting and an idle one answers a lone request after at most `max_wait_s`. A
submission larger than `max_batch` is split into chunks.

`probe_max_batch` runs growing batches (1, 2, 4, ... up to a cap) of synthetic inputs through a model and
returns the largest size that still ran and still paid off: it stops at the first failure (out of memory,
say) and, past a floor (16) that spreads the service's per-call costs, once a doubling no longer lowers
the time per image.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from photoindex.metrics import REGISTRY

log = logging.getLogger(__name__)

_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

batch_items = Histogram(
    "photoindex_ml_batch_items",
    "Items per model call of the ML service",
    ["model", "kind"],
    buckets=_SIZES,
    registry=REGISTRY,
)
batches_total = Counter(
    "photoindex_ml_batches_total",
    "Model calls (batches) run by the ML service",
    ["model", "kind"],
    registry=REGISTRY,
)
items_total = Counter(
    "photoindex_ml_items_total", "Items embedded by the ML service", ["model", "kind"], registry=REGISTRY
)
submissions_total = Counter(
    "photoindex_ml_submissions_total",
    "Submissions (request parts) handed to the batcher",
    ["model", "kind"],
    registry=REGISTRY,
)
inference_seconds = Histogram(
    "photoindex_ml_inference_seconds",
    "Time of one model call (a batch)",
    ["model", "kind"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
queue_seconds = Histogram(
    "photoindex_ml_queue_seconds",
    "Time a submission waited before its batch ran",
    ["model", "kind"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
items_per_second = Gauge(
    "photoindex_ml_items_per_second",
    "Throughput of the last batch (items/s in the model)",
    ["model", "kind"],
    registry=REGISTRY,
)


class BatcherClosed(RuntimeError):
    """The batcher was closed before (or while) the submission ran."""


@dataclass(eq=False)
class _Pending:
    payload: Any  # np.ndarray (rows) or list[str]
    future: asyncio.Future[np.ndarray]
    enqueued: float  # loop time

    @property
    def size(self) -> int:
        return len(self.payload)


def _combine(parts: Sequence[Any]) -> Any:
    if isinstance(parts[0], np.ndarray):
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    out: list[Any] = []
    for part in parts:
        out.extend(part)
    return out


@dataclass
class BatcherStats:
    submissions: int = 0
    batches: int = 0
    items: int = 0
    largest_batch: int = 0
    sizes: list[int] = field(default_factory=list)  # the last 1000 batch sizes


class Batcher:
    """Batches submissions from concurrent callers into single calls of `fn` (see the module doc).

    `fn(batch) -> float32 (n, D)` runs in `executor` (the loop's default one when None). Start it with
    `start()` inside the running event loop; `close()` fails whatever is still waiting.
    """

    def __init__(
        self,
        fn: Callable[[Any], np.ndarray],
        *,
        max_batch: int,
        max_wait_s: float = 0.005,
        concurrency: int = 1,
        executor: Executor | None = None,
        model: str = "",
        kind: str = "image",
        expecting: Callable[[], int] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.fn = fn
        self.max_batch = int(max_batch)
        self.max_wait_s = max(0.0, float(max_wait_s))
        self.concurrency = max(1, int(concurrency))
        self.executor = executor
        self.expecting = expecting
        self.model = model
        self.kind = kind
        self.stats = BatcherStats()
        self._items: deque[_Pending] = deque()
        self._waiting = 0  # items (not submissions) in _items
        self._wakeup: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False
        self._labels = (model, kind)

    # lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(self.concurrency)
        self._task = asyncio.get_running_loop().create_task(
            self._collect(), name=f"batcher-{self.model}-{self.kind}"
        )

    async def close(self) -> None:
        """Stop collecting; batches already running finish, submissions still waiting fail."""
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        while self._items:
            pending = self._items.popleft()
            if not pending.future.done():
                pending.future.set_exception(BatcherClosed("the ML service is shutting down"))
        self._waiting = 0

    def wake(self) -> None:
        """Make the collector look again (an expected submission will not come after all)."""
        if self._wakeup is not None:
            self._wakeup.set()

    @property
    def waiting(self) -> int:
        """Items queued and not yet taken into a batch."""
        return self._waiting

    # callers ---------------------------------------------------------------------------------------
    async def submit(self, payload: Any) -> np.ndarray:
        """Embed `payload` (rows of an array, or a list of texts) in whatever batches come; float32 (n, D)."""
        if self._closed or self._task is None or self._wakeup is None:
            raise BatcherClosed("the batcher is not running")
        n = len(payload)
        if n == 0:
            raise ValueError("nothing to embed")
        loop = asyncio.get_running_loop()
        now = loop.time()
        parts = []
        for start in range(0, n, self.max_batch):
            pending = _Pending(payload[start : start + self.max_batch], loop.create_future(), now)
            self._items.append(pending)
            self._waiting += pending.size
            parts.append(pending)
        self.stats.submissions += 1
        submissions_total.labels(*self._labels).inc()
        self._wakeup.set()
        try:
            results = await asyncio.gather(*(p.future for p in parts))
        except BaseException:
            for p in parts:  # a caller that went away: its chunks are skipped when their turn comes
                p.future.cancel()
            raise
        return results[0] if len(results) == 1 else np.concatenate(results)

    # the background task ---------------------------------------------------------------------------
    async def _collect(self) -> None:
        assert self._wakeup is not None and self._slots is not None
        loop = asyncio.get_running_loop()
        while not self._closed:
            await self._slots.acquire()
            try:
                while not self._items and not self._closed:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                if self._closed:
                    self._slots.release()
                    return
                # wait for company until max_wait_s after the oldest submission arrived
                deadline = self._items[0].enqueued + self.max_wait_s
                while self._waiting < self.max_batch and not self._closed and self._company_expected():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    self._wakeup.clear()
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), remaining)
                    except TimeoutError:
                        break
                batch = self._take()
            except BaseException:
                self._slots.release()
                raise
            if not batch:
                self._slots.release()
                continue
            task = loop.create_task(self._run(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def _company_expected(self) -> bool:
        return self.expecting is None or self.expecting() > 0

    def _take(self) -> list[_Pending]:
        batch: list[_Pending] = []
        count = 0
        while self._items:
            head = self._items[0]
            if head.future.done():  # cancelled by its caller
                self._items.popleft()
                self._waiting -= head.size
                continue
            if batch and count + head.size > self.max_batch:
                break
            self._items.popleft()
            self._waiting -= head.size
            batch.append(head)
            count += head.size
        return batch

    async def _run(self, batch: list[_Pending]) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        try:
            now = loop.time()
            for p in batch:
                queue_seconds.labels(*self._labels).observe(now - p.enqueued)
            payload = _combine([p.payload for p in batch])
            n = len(payload)
            started = time.perf_counter()
            try:
                out = await loop.run_in_executor(self.executor, self.fn, payload)
            except Exception as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                return
            elapsed = time.perf_counter() - started
            self._record(n, elapsed)
            offset = 0
            for p in batch:
                rows = out[offset : offset + p.size]
                offset += p.size
                if not p.future.done():
                    p.future.set_result(rows)
        finally:
            self._slots.release()

    def _record(self, n: int, elapsed: float) -> None:
        s = self.stats
        s.batches += 1
        s.items += n
        s.largest_batch = max(s.largest_batch, n)
        s.sizes.append(n)
        if len(s.sizes) > 1000:
            del s.sizes[:-1000]
        labels = self._labels
        batches_total.labels(*labels).inc()
        items_total.labels(*labels).inc(n)
        batch_items.labels(*labels).observe(n)
        inference_seconds.labels(*labels).observe(elapsed)
        if elapsed > 0:
            items_per_second.labels(*labels).set(n / elapsed)


# -- probing the batch size ---------------------------------------------------------------------------


@dataclass
class ProbeStep:
    batch: int
    ms_per_item: float | None  # None: the batch failed
    error: str | None = None


@dataclass
class ProbeResult:
    max_batch: int
    steps: list[ProbeStep]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_batch": self.max_batch,
            "reason": self.reason,
            "steps": [
                {
                    "batch": s.batch,
                    "ms_per_item": None if s.ms_per_item is None else round(s.ms_per_item, 4),
                    **({"error": s.error} if s.error else {}),
                }
                for s in self.steps
            ],
        }


def probe_max_batch(
    run: Callable[[np.ndarray], Any],
    make_batch: Callable[[int], np.ndarray],
    *,
    cap: int = 256,
    min_batch: int = 16,
    min_gain: float = 0.05,
    budget_s: float = 20.0,
    slow_step_s: float = 5.0,
    repeats: int = 2,
) -> ProbeResult:
    """The largest batch (a power of two up to `cap`) worth running: sizes 1, 2, 4, ... are tried in turn.

    Growing stops at the first size that fails (an out-of-memory error, say: the previous size is kept),
    once a doubling past `min_batch` lowers the time per item by less than `min_gain` (that size is kept,
    since it costs nothing in throughput, unless it was clearly slower), when one run takes more than
    `slow_step_s`, or when `budget_s` is spent. Up to `min_batch` the size grows whatever the timings say:
    the probe times bare model calls, and each call through the service also pays for a request, a
    future and a copy, which bigger batches spread out (on a CPU the time per item is often flat from
    batch 2 on). Each size runs once to warm up (allocations, kernels), then the best of `repeats` counts.
    """
    cap = max(1, int(cap))
    min_batch = max(1, min(int(min_batch), cap))
    steps: list[ProbeStep] = []
    started = time.perf_counter()
    best_ok = 0
    best_time: float | None = None  # the lowest time per item so far
    reason = f"reached the cap of {cap}"
    size = 1
    while size <= cap:
        try:
            batch = make_batch(size)
            run(batch)  # warm-up for this shape
            times = []
            for _ in range(max(1, repeats)):
                t0 = time.perf_counter()
                run(batch)
                times.append(time.perf_counter() - t0)
            per_item = min(times) / size
        except Exception as exc:  # onnxruntime raises plain RuntimeError-likes for out of memory
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            steps.append(ProbeStep(size, None, text))
            reason = f"batch {size} failed: {text}"
            log.info("batch probe: %d failed (%s)", size, text)
            break
        steps.append(ProbeStep(size, per_item * 1000.0))
        growing = size < min_batch
        if not growing and best_time is not None and per_item > best_time * (1.0 + 5 * min_gain):
            reason = f"batch {size} was slower per item than batch {best_ok}"
            break
        last_ok, best_ok = best_ok, size
        if not growing and best_time is not None and per_item > best_time * (1.0 - min_gain):
            reason = f"batch {size} was not {min_gain:.0%} faster per item than batch {last_ok}"
            break
        best_time = per_item if best_time is None else min(best_time, per_item)
        if min(times) > slow_step_s:
            reason = f"one batch of {size} took {min(times):.1f} s"
            break
        if time.perf_counter() - started > budget_s:
            reason = f"the probe's time budget of {budget_s:.0f} s was spent"
            break
        if size == cap:
            break
        size = min(cap, size * 2)
    if best_ok == 0:  # even one item failed: the model is broken, let the caller find out
        best_ok = 1
    return ProbeResult(best_ok, steps, reason)
