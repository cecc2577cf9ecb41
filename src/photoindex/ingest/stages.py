"""prepare → infer → commit for one list of files, connected by bounded queues.

* prepare: the shared `PreparePool` (one process per core): hashes, decode, EXIF, thumbnails, model input.
* infer (a thread; ONNX Runtime releases the GIL): batches model inputs, reuses vectors the same
  content already has for this model revision, embeds the rest.
* commit (a thread): batched, idempotent upserts of assets, files and vectors, one transaction each,
  then the vector index.

A slow stage holds back the ones before it instead of piling up decoded images. Ctrl-C (or a stop
request) stops the feeding; what is in flight is embedded and committed before `run` returns.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field

from photoindex import metrics
from photoindex.cache import observe
from photoindex.ingest.embed import sync_index
from photoindex.ingest.pool import PreparePool
from photoindex.ingest.prepare import Failed, Known, PrepareConfig, Prepared, Result
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.runtime import Runtime
from photoindex.schemas import CollectionInfo, FileError
from photoindex.store.catalog import FileRecord, ModelVectors, NewAsset

_DONE = object()


class Progress(Protocol):
    """What the pipeline tells a progress display. The CLI renders it with Rich."""

    def phase(self, description: str, total: int | None) -> None: ...

    def advance(self, n: int = 1) -> None: ...


class NullProgress:
    def phase(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


class FilesOutcome(BaseModel):
    """What one batch of files did; task results and job reports are sums of these."""

    processed: int = 0
    exact_duplicates: int = 0  # new paths whose content the collection already had (moves included)
    linked_assets: list[int] = Field(default_factory=list)  # assets of those paths, to tell moves apart
    embedded: int = 0
    embeddings_reused: int = 0
    errors: list[FileError] = Field(default_factory=list)
    infer_s: float = 0.0  # time in the model (for the perf log)
    commit_s: float = 0.0  # time in catalog and index writes


@dataclass(frozen=True)
class _Embedded:
    """What infer hands to commit."""

    items: list[Known | Prepared]
    vectors: dict[str, np.ndarray]
    computed: int
    reused: int
    fresh: frozenset[str] = frozenset()  # hashes whose vectors the model computed just now


def prepare_config(rt: Runtime, coll: CollectionInfo, model: ImageTextEmbedder | None) -> PrepareConfig:
    settings = rt.settings
    return PrepareConfig(
        catalog_url=settings.resolved_catalog_url, collection_id=coll.id,
        thumbnails_dir=settings.thumbnails_dir, thumbnail_sizes=tuple(settings.thumbnail_sizes),
        thumbnail_quality=settings.thumbnail_quality, max_file_bytes=settings.max_file_bytes,
        max_image_pixels=settings.max_image_pixels, raw_preview_min=settings.raw_preview_min_size,
        preprocess=model.preprocess if model else None,
    )


class FileStages:
    def __init__(self, rt: Runtime, coll: CollectionInfo, model: ImageTextEmbedder | None, pool: PreparePool,
                 progress: Progress | None = None, infer_lock: threading.Semaphore | None = None) -> None:
        self.rt, self.coll, self.model, self.pool = rt, coll, model, pool
        self.progress = progress or NullProgress()
        self.infer_lock = infer_lock or threading.Semaphore(1)
        self.batch_size = rt.settings.batch_size
        self.infer_q: queue.Queue = queue.Queue(maxsize=max(64, 4 * self.batch_size))
        self.commit_q: queue.Queue = queue.Queue(maxsize=8)
        self.failure: BaseException | None = None
        self.seen_hashes: set[str] = set()
        self.out = FilesOutcome()
        self._noted_collection = False
        self._embedded: dict[str, np.ndarray] = {}  # vectors this run computed, by content

    def run(self, paths: list[str]) -> FilesOutcome:
        if not paths:
            return self.out
        threads = [threading.Thread(target=self._guard(self._infer_loop), name="infer", daemon=True),
                   threading.Thread(target=self._guard(self._commit_loop), name="commit", daemon=True)]
        for t in threads:
            t.start()
        try:
            self.pool.run(paths, prepare_config(self.rt, self.coll, self.model), self._emit,
                          stop=lambda: self.failure is not None)
        finally:
            # Drain: whatever was prepared is embedded and committed, also after Ctrl-C.
            self._put(self.infer_q, _DONE)
            for t in threads:
                t.join()
        if self.failure is not None:
            raise self.failure
        return self.out

    def _guard(self, loop: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                loop()
            except BaseException as exc:  # surfaced by run(); the other stages stop at their next item
                self.failure = exc
                _drain(self.infer_q)
                self._put(self.commit_q, _DONE)
        return run

    def _put(self, q: queue.Queue, item: object) -> None:
        """Block while the next stage is busy (backpressure), but not once a stage has failed: then
        nothing downstream may be left to take the item."""
        while True:
            try:
                q.put(item, timeout=0.2)
                return
            except queue.Full:
                if self.failure is not None:
                    return

    def _emit(self, results: Iterable[Result]) -> None:
        for r in results:
            if isinstance(r, Failed):
                self.out.errors.append(FileError(path=r.path, code=r.code, message=r.message))
                metrics.files_total.labels("failed").inc()
                metrics.errors_total.labels(str(r.code)).inc()
                self.progress.advance()
            else:
                self._put(self.infer_q, r)

    # infer ------------------------------------------------------------------------------------
    def _infer_loop(self) -> None:
        for batch in _batches(self.infer_q, self.batch_size, idle_s=0.25):
            self._embed_and_pass(batch)
        self._put(self.commit_q, _DONE)

    def _embed_and_pass(self, batch: list[Known | Prepared]) -> None:
        vectors: dict[str, np.ndarray] = {}
        fresh_hashes: frozenset[str] = frozenset()
        reused = 0
        model = self.model
        todo = [r for r in batch if isinstance(r, Prepared) and r.pixels is not None]
        if model is not None and todo:
            # the same content twice in one run (a copy in another batch) is embedded once
            vectors = {r.sha256: self._embedded[r.sha256] for r in todo if r.sha256 in self._embedded}
            vectors.update(self.rt.catalog.vectors_by_sha256([r.sha256 for r in todo if r.sha256 not in vectors],
                                                             model.name, model.revision))
            reused = len({r.sha256 for r in todo} & vectors.keys())
            metrics.cache_total.labels("vector", "hit").inc(reused)
            metrics.cache_total.labels("vector", "miss").inc(len({r.sha256 for r in todo}) - reused)
            fresh = list({r.sha256: r for r in todo if r.sha256 not in vectors}.values())
            if fresh:
                with self.infer_lock:  # the device's concurrency budget, shared by a worker's tasks
                    started = time.perf_counter()
                    out = model.embed_images(np.stack([r.pixels for r in fresh]))
                    elapsed = time.perf_counter() - started
                    self.out.infer_s += elapsed
                    metrics.stage_seconds.labels("infer").observe(elapsed)
                vectors.update({r.sha256: out[i] for i, r in enumerate(fresh)})
                self._embedded.update({r.sha256: out[i] for i, r in enumerate(fresh)})
                fresh_hashes = frozenset(r.sha256 for r in fresh)
        self._put(self.commit_q, _Embedded(batch, vectors, len(fresh_hashes), reused, fresh_hashes))

    # commit -----------------------------------------------------------------------------------
    def _commit_loop(self) -> None:
        for parts in _batches(self.commit_q, self.rt.settings.commit_batch_size, idle_s=0.5,
                              weight=lambda part: len(part.items)):
            self._commit(parts)

    def _commit(self, parts: list[_Embedded]) -> None:
        started = time.perf_counter()
        items = [r for part in parts for r in part.items]
        vectors = {h: v for part in parts for h, v in part.vectors.items()}
        new = [r for r in items if isinstance(r, Prepared)]
        # Content another task (or worker) committed meanwhile is a duplicate here, not new.
        existing = self.rt.catalog.assets_by_sha256(self.coll.id, [r.sha256 for r in new]) if new else {}
        assets = [_new_asset(r) for r in new]
        files = [_file_record(r) for r in items]
        model = self.model
        self._record(new, items, {h: v for part in parts for h, v in part.vectors.items() if h in part.fresh})
        ids = self.rt.catalog.commit_batch(
            self.coll.id, assets, files,
            ModelVectors(model.name, model.revision, vectors) if model is not None and vectors else None,
        )
        for r in items:
            if isinstance(r, Prepared) and r.sha256 not in self.seen_hashes and r.sha256 not in existing:
                self.out.processed += 1
            else:
                self.out.exact_duplicates += 1
                if isinstance(r, Known):
                    self.out.linked_assets.append(ids[r.sha256])
            self.seen_hashes.add(r.sha256)
        if model is not None:
            sync_index(self.rt, self.rt.space(self.coll, model), {ids[h]: v for h, v in vectors.items()},
                       touched=[ids[r.sha256] for r in items if isinstance(r, Known)])
        # counted once committed: vectors of a batch that never reached the catalog were not delivered
        self.out.embedded += sum(part.computed for part in parts)
        self.out.embeddings_reused += sum(part.reused for part in parts)
        elapsed = time.perf_counter() - started
        self.out.commit_s += elapsed
        metrics.stage_seconds.labels("commit").observe(elapsed)
        metrics.files_total.labels("new").inc(sum(isinstance(r, Prepared) for r in items))
        metrics.files_total.labels("known").inc(sum(isinstance(r, Known) for r in items))
        self.progress.advance(len(items))

    def _record(self, new: list[Prepared], items: list[Known | Prepared], fresh: dict[str, np.ndarray]) -> None:
        """Into the result cache before the catalog: what a rebuild of the catalog needs."""
        cache, model = self.rt.result_cache, self.model
        if not self._noted_collection:
            observe.collection(cache, self.coll, model.name if model else None, model.dim if model else None)
            self._noted_collection = True
        observe.assets(cache, [_new_asset(r) for r in {r.sha256: r for r in new}.values()])
        observe.files(cache, self.coll.name, [_file_record(r) for r in items])
        if model is not None and fresh:
            observe.vectors(cache, model.name, model.revision, fresh)


def _new_asset(r: Prepared) -> NewAsset:
    return NewAsset(sha256=r.sha256, sha1=r.sha1, bytes=r.size, mime=r.mime, width=r.width, height=r.height,
                    exif=r.exif)


def _file_record(r: Known | Prepared) -> FileRecord:
    return FileRecord(path=r.path, size=r.size, mtime_ns=r.mtime_ns, sha256=r.sha256)


def _batches(q: queue.Queue, limit: int, *, idle_s: float,
             weight: Callable[[Any], int] = lambda _: 1) -> Iterator[list[Any]]:
    """Group a stage's input into batches of about `limit`; a batch also goes out when the queue has
    been empty for `idle_s` (a slow producer must not hold finished work back). Ends at _DONE."""
    batch: list[Any] = []
    size = 0
    while True:
        try:
            item = q.get(timeout=idle_s)
        except queue.Empty:
            if batch:
                yield batch
                batch, size = [], 0
            continue
        if item is _DONE:
            if batch:
                yield batch
            return
        batch.append(item)
        size += weight(item)
        if size >= limit:
            yield batch
            batch, size = [], 0


def _drain(q: queue.Queue) -> None:
    try:
        while True:
            q.get_nowait()
    except queue.Empty:
        pass
