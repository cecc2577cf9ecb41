"""The batcher and the batch-size probe, driven directly (the service tests drive them over HTTP)."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from photoindex.ml.batching import Batcher, BatcherClosed, probe_max_batch
from photoindex.ml.clip import ImageTextEmbedder

pytestmark = pytest.mark.timeout(30)


class Recorder:
    """A model function that records the batches it was given (rows are tagged so callers can check them)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        with self.lock:
            self.calls.append(len(batch))
        time.sleep(self.delay)
        return np.asarray(batch, dtype=np.float32).reshape(len(batch), -1)[:, :2] * 2


def run(coro):
    return asyncio.run(coro)


def test_concurrent_submissions_share_model_calls() -> None:
    rec = Recorder(delay=0.02)

    async def main() -> list[np.ndarray]:
        b = Batcher(rec, max_batch=32, max_wait_s=0.02)
        b.start()
        try:
            subs = [np.full((3, 2), i, dtype=np.float32) for i in range(10)]
            out = await asyncio.gather(*(b.submit(s) for s in subs))
            assert b.stats.submissions == 10 and b.stats.items == 30
            return out
        finally:
            await b.close()

    out = run(main())
    assert len(rec.calls) < 10 and sum(rec.calls) == 30
    for i, rows in enumerate(out):  # every caller gets its own rows, in order
        np.testing.assert_array_equal(rows, np.full((3, 2), 2 * i, dtype=np.float32))


def test_big_submissions_are_split_and_busy_devices_get_full_batches() -> None:
    rec = Recorder(delay=0.03)

    async def main() -> None:
        b = Batcher(rec, max_batch=8, max_wait_s=0.001)
        b.start()
        try:
            big = np.arange(21 * 2, dtype=np.float32).reshape(21, 2)
            out = await b.submit(big)
            np.testing.assert_array_equal(out, big * 2)
            rec.calls.clear()
            # while one batch runs, the rest queue up and leave together
            first = asyncio.ensure_future(b.submit(np.zeros((1, 2), np.float32)))
            await asyncio.sleep(0.005)
            rest = [b.submit(np.ones((1, 2), np.float32)) for _ in range(8)]
            await asyncio.gather(first, *rest)
        finally:
            await b.close()

    run(main())
    assert rec.calls == [1, 8]


def test_texts_and_failures() -> None:
    seen: list[list[str]] = []

    def embed_texts(texts: list[str]) -> np.ndarray:
        seen.append(list(texts))
        if "boom" in texts:
            raise RuntimeError("model failed")
        return np.array([[len(t), 0] for t in texts], dtype=np.float32)

    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            b = Batcher(embed_texts, max_batch=16, max_wait_s=0.01, executor=pool, kind="text")
            b.start()
            a, c = await asyncio.gather(b.submit(["a", "bb"]), b.submit(["ccc"]))
            assert a[:, 0].tolist() == [1, 2] and c[:, 0].tolist() == [3]
            with pytest.raises(RuntimeError, match="model failed"):
                await b.submit(["boom"])
            with pytest.raises(ValueError):
                await b.submit([])
            await b.close()
            with pytest.raises(BatcherClosed):
                await b.submit(["late"])

    run(main())
    assert seen[0] == ["a", "bb", "ccc"]


def test_a_caller_that_goes_away_is_skipped() -> None:
    rec = Recorder(delay=0.05)

    async def main() -> None:
        b = Batcher(rec, max_batch=4, max_wait_s=0.0)
        b.start()
        try:
            first = asyncio.ensure_future(b.submit(np.zeros((4, 2), np.float32)))
            await asyncio.sleep(0.01)  # the first batch is running
            gone = asyncio.ensure_future(b.submit(np.ones((4, 2), np.float32)))
            await asyncio.sleep(0.001)
            gone.cancel()
            await first
            out = await b.submit(np.full((2, 2), 3, np.float32))
            np.testing.assert_array_equal(out, np.full((2, 2), 6, np.float32))
        finally:
            await b.close()

    run(main())
    assert rec.calls == [4, 2]


def test_probe_stops_at_the_first_failure_and_at_no_gain() -> None:
    def fails_above_8(batch: np.ndarray) -> None:
        if len(batch) > 8:
            raise MemoryError("out of memory")
        time.sleep(0.002)  # a fixed cost per call: bigger batches are cheaper per item

    result = probe_max_batch(fails_above_8, lambda n: np.zeros((n, 1)), cap=64)
    assert result.max_batch == 8
    assert [s.batch for s in result.steps] == [1, 2, 4, 8, 16]
    assert result.steps[-1].ms_per_item is None and "out of memory" in (result.steps[-1].error or "")

    def per_item_cost(batch: np.ndarray) -> None:
        time.sleep(0.002 * len(batch))  # no gain from batching at all

    result = probe_max_batch(per_item_cost, lambda n: np.zeros((n, 1)), cap=64, min_batch=1)
    assert result.max_batch <= 2 and "faster" in result.reason
    result = probe_max_batch(per_item_cost, lambda n: np.zeros((n, 1)), cap=64, min_batch=4)
    assert 4 <= result.max_batch <= 8  # grown to min_batch whatever the timings, then stopped

    result = probe_max_batch(lambda b: time.sleep(0.002), lambda n: np.zeros((n, 1)), cap=4)
    assert result.max_batch == 4 and [s.batch for s in result.steps] == [1, 2, 4] and "cap" in result.reason


def test_probe_on_the_real_tiny_model(local_model: ImageTextEmbedder) -> None:
    size = local_model.preprocess.size
    rng = np.random.default_rng(0)
    result = probe_max_batch(
        local_model.embed_images, lambda n: rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8), cap=64
    )
    assert result.max_batch > 1
    assert result.to_dict()["steps"][0]["batch"] == 1


def test_a_lone_caller_does_not_wait_for_company() -> None:
    rec = Recorder()
    incoming = {"n": 0}

    async def main() -> tuple[float, float]:
        b = Batcher(rec, max_batch=64, max_wait_s=0.3, expecting=lambda: incoming["n"])
        b.start()
        try:
            t0 = time.perf_counter()
            await b.submit(np.zeros((2, 2), np.float32))  # nobody else is on the way: runs at once
            alone = time.perf_counter() - t0
            incoming["n"] = 1  # a request is being read: the batch waits for it ...
            t0 = time.perf_counter()
            first = asyncio.ensure_future(b.submit(np.zeros((2, 2), np.float32)))
            await asyncio.sleep(0.05)
            incoming["n"] = 0
            second = b.submit(np.ones((3, 2), np.float32))  # ... and it joins
            await asyncio.gather(first, second)
            together = time.perf_counter() - t0
            return alone, together
        finally:
            await b.close()

    alone, together = run(main())
    assert alone < 0.2
    assert together < 0.29  # the arrival ended the wait, not the deadline
    assert rec.calls == [2, 5]
