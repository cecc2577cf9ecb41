"""scan → prepare → infer → commit, connected by bounded queues.

* scan (this thread): walk the roots, compare (size, mtime_ns) with the catalog; unchanged files are
  never opened.
* prepare (a process pool, one process per core): one read per file → hashes → decode with
  downscale → EXIF → thumbnails → model input (`prepare.py`).
* infer (one thread; ONNX Runtime releases the GIL): batches model inputs, reuses vectors already
  computed for the same content, embeds the rest.
* commit (one thread): batched, idempotent upserts of assets, files and vectors in one transaction
  per batch, then the vector index.

Each queue is bounded, so a slow stage holds back the ones before it instead of piling up decoded
images in memory. Ctrl-C stops feeding new files, lets the stages drain what is in flight and
commits it: the catalog is always consistent and the next run resumes where this one stopped.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from photoindex.errors import ErrorCode
from photoindex.ingest.embed import embed_pending, sync_index
from photoindex.ingest.prepare import Failed, Known, PrepareConfig, Prepared, Result, init_worker, prepare_many
from photoindex.ingest.scan import ScannedFile, Walker, normalize_path
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.runtime import Runtime
from photoindex.schemas import CollectionInfo, FileError, IngestReport
from photoindex.store.catalog import FileRecord, FileState, ModelVectors, NewAsset, folder_range

INLINE_LIMIT = 4  # fewer files than this are prepared in-process: starting workers would cost more
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


@dataclass
class ScanPlan:
    todo: list[ScannedFile] = field(default_factory=list)
    gone: dict[str, FileState] = field(default_factory=dict)  # known paths not found on disk
    reappeared: list[int] = field(default_factory=list)  # file ids marked missing that are back unchanged
    folders: list[str] = field(default_factory=list)  # the folders whose catalog state was compared


def ingest(
    rt: Runtime,
    roots: Sequence[str | Path],
    *,
    collection: str | None = None,
    progress: Progress | None = None,
    embed: bool = True,
) -> IngestReport:
    """Ingest the photos below `roots` into a collection (the active one by default)."""
    started = time.monotonic()
    progress = progress or NullProgress()
    coll = rt.collection(collection)
    report = IngestReport(collection=coll.name, roots=[normalize_path(r) for r in roots])
    report.job_id = rt.catalog.start_job("ingest", coll.id, {"roots": report.roots})
    model: ImageTextEmbedder | None = None
    if embed:
        model, notice = rt.try_embedder(rt.model_name(coll), progress=not isinstance(progress, NullProgress))
        if model is None:
            report.notices.append(f"{notice}; embeddings stay pending until then")
        else:
            rt.bind_model(coll, model)
            report.model = model.model_id
    status = "failed"  # what the job says if something unexpected ends the run (it is re-raised)
    try:
        plan = scan(rt, report, progress)
        _Stages(rt, coll, model, report, progress, plan).run(plan.todo)
        _reconcile(rt, report, plan)
        if model is not None:
            report.embedded += embed_pending(rt, coll, model, progress)
        status = "completed"
    except KeyboardInterrupt:
        report.interrupted = True
        status = "interrupted"
    finally:
        report.embeddings_pending = rt.catalog.count_assets_needing_vectors(
            coll.id, model.name if model else rt.model_name(coll), model.revision if model else None)
        report.failed = len(report.errors)
        report.elapsed_s = round(time.monotonic() - started, 3)
        rt.catalog.finish_job(report.job_id, status, report.model_dump(mode="json"), _counts(report))
    return report


def _counts(report: IngestReport) -> dict[str, int]:
    return report.model_dump(include={"files_seen", "processed", "skipped_unchanged", "exact_duplicates",
                                      "moved", "missing", "failed", "embedded", "embeddings_pending"})


# -- scan ---------------------------------------------------------------------------------------------
def scan(rt: Runtime, report: IngestReport, progress: Progress) -> ScanPlan:
    settings = rt.settings
    coll = rt.collection(report.collection)
    walker = Walker.from_names(settings.exclude_dirs, archive_dir_name=settings.archive_dir_name,
                               follow_symlinks=settings.follow_symlinks)
    folders = [r for r in report.roots if Path(r).is_dir()]
    files = [r for r in report.roots if Path(r).is_file()]
    plan = ScanPlan(folders=folders + [Path(f).parent.as_posix() for f in files])
    known = rt.catalog.file_states(coll.id, plan.folders)
    unreadable: list[str] = []

    def on_error(path: str, code: ErrorCode, message: str) -> None:
        if code == ErrorCode.FILE_UNREADABLE and Path(path).is_dir():
            unreadable.append(path)
        report.errors.append(FileError(path=path, code=code, message=message))

    seen: set[str] = set()
    progress.phase("scanning", None)
    for f in walker.walk(report.roots, on_error):
        seen.add(f.path)
        report.files_seen += 1
        progress.advance()
        state = known.get(f.path)
        if state is not None and state.size == f.size and state.mtime_ns == f.mtime_ns:
            report.skipped_unchanged += 1
            if state.missing:
                plan.reappeared.append(state.id)
            continue
        plan.todo.append(f)
    # A file counts as gone only below a root that was walked and not below a folder we could not list:
    # an unmounted drive or a permission error must not mark a library missing.
    walked = [folder_range(d) for d in folders]
    blind = [folder_range(d) for d in unreadable]
    for path, state in known.items():
        if path in seen or state.missing:
            continue
        inside = path in files or any(lo <= path < hi for lo, hi in walked)
        if inside and not any(lo <= path < hi for lo, hi in blind):
            plan.gone[path] = state
    return plan


def _reconcile(rt: Runtime, report: IngestReport, plan: ScanPlan) -> None:
    """Files gone from disk: a gone path whose content now lives at another path was moved (its row
    goes, the asset stays, with the new path); the rest are marked missing."""
    if plan.reappeared:
        rt.catalog.set_missing(plan.reappeared, missing=False)
    if not plan.gone:
        return
    now = rt.catalog.file_states(rt.collection(report.collection).id, plan.folders)
    live = {s.asset_id for p, s in now.items() if p not in plan.gone and not s.missing}
    moved = [s for s in plan.gone.values() if s.asset_id in live]
    missing = [s.id for s in plan.gone.values() if s.asset_id not in live]
    rt.catalog.delete_files([s.id for s in moved])
    rt.catalog.set_missing(missing)
    report.moved += len({s.asset_id for s in moved})
    report.missing += len(missing)


# -- prepare / infer / commit -----------------------------------------------------------------------
class _Stages:
    def __init__(self, rt: Runtime, coll: CollectionInfo, model: ImageTextEmbedder | None,
                 report: IngestReport, progress: Progress, plan: ScanPlan) -> None:
        self.rt, self.coll, self.model, self.report, self.progress = rt, coll, model, report, progress
        self.gone_assets = {s.asset_id for s in plan.gone.values()}
        settings = rt.settings
        self.batch_size = settings.batch_size
        self.infer_q: queue.Queue = queue.Queue(maxsize=max(64, 4 * self.batch_size))
        self.commit_q: queue.Queue = queue.Queue(maxsize=8)
        self.failure: BaseException | None = None
        self.seen_hashes: set[str] = set()
        self.config = PrepareConfig(
            catalog_url=settings.resolved_catalog_url, collection_id=coll.id,
            thumbnails_dir=settings.thumbnails_dir, thumbnail_sizes=tuple(settings.thumbnail_sizes),
            thumbnail_quality=settings.thumbnail_quality, max_file_bytes=settings.max_file_bytes,
            max_image_pixels=settings.max_image_pixels, raw_preview_min=settings.raw_preview_min_size,
            preprocess=model.preprocess if model else None,
        )

    def run(self, todo: list[ScannedFile]) -> None:
        if not todo:
            return
        self.progress.phase("ingesting", len(todo))
        threads = [threading.Thread(target=self._guard(self._infer_loop), name="infer", daemon=True),
                   threading.Thread(target=self._guard(self._commit_loop), name="commit", daemon=True)]
        for t in threads:
            t.start()
        try:
            self._feed([f.path for f in todo])
        finally:
            # Drain: whatever was prepared is embedded and committed, also after Ctrl-C.
            self._put(self.infer_q, _DONE)
            for t in threads:
                t.join()
        if self.failure is not None:
            raise self.failure

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

    # prepare ----------------------------------------------------------------------------------
    prepare_fn: Callable[[list[str]], list[Result]] = staticmethod(prepare_many)

    def _feed(self, paths: list[str]) -> None:
        workers = self.rt.settings.prepare_workers
        if len(paths) < INLINE_LIMIT or workers == 1:
            init_worker(self.config, in_process=True)
            for path in paths:
                self._emit(prepare_many([path]))
                if self.failure is not None:
                    return
            return
        size = max(1, min(16, math.ceil(len(paths) / (workers * 4))))
        todo = deque(paths[i : i + size] for i in range(0, len(paths), size))
        # Files that were in a worker when it died (a native decoder crash, the OOM killer): each is
        # retried alone, so the one that kills its worker again is reported and the rest go through.
        suspects: deque[list[str]] = deque()
        inflight: dict[Future, list[str]] = {}
        pool = self._new_pool(workers)
        try:
            while (todo or suspects or inflight) and self.failure is None:
                if suspects:
                    if not inflight:
                        chunk = suspects.popleft()
                        inflight[pool.submit(self.prepare_fn, chunk)] = chunk
                else:
                    while todo and len(inflight) < 2 * workers:  # bounded: two chunks per worker
                        chunk = todo.popleft()
                        inflight[pool.submit(self.prepare_fn, chunk)] = chunk
                done, _ = wait(inflight, timeout=1.0, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    chunk = inflight.pop(fut)
                    try:
                        self._emit(fut.result())
                    except BrokenProcessPool:
                        broken = True
                        if len(chunk) == 1 and not inflight:
                            self._emit([Failed(chunk[0], ErrorCode.DECODER_CRASHED,
                                               "the decoder process died on this file (damaged or hostile data)")])
                        else:
                            suspects.extend([p] for p in chunk)
                if broken:
                    suspects.extend([p] for chunk in inflight.values() for p in chunk)
                    inflight.clear()
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._new_pool(workers)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        ctx = mp.get_context("forkserver")  # workers start clean, not as forks of a threaded process
        ctx.set_forkserver_preload(["photoindex.ingest.prepare"])
        return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=init_worker,
                                   initargs=(self.config,))

    def _emit(self, results: Iterable[Result]) -> None:
        for r in results:
            if isinstance(r, Failed):
                self.report.errors.append(FileError(path=r.path, code=r.code, message=r.message))
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
        model = self.model
        todo = [r for r in batch if isinstance(r, Prepared) and r.pixels is not None]
        if model is not None and todo:
            vectors = self.rt.catalog.vectors_by_sha256([r.sha256 for r in todo], model.name, model.revision)
            self.report.embeddings_reused += len({r.sha256 for r in todo} & vectors.keys())
            fresh = list({r.sha256: r for r in todo if r.sha256 not in vectors}.values())
            if fresh:
                out = model.embed_images(np.stack([r.pixels for r in fresh]))
                vectors.update({r.sha256: out[i] for i, r in enumerate(fresh)})
                self.report.embedded += len(fresh)
        self._put(self.commit_q, (batch, vectors))

    # commit -----------------------------------------------------------------------------------
    def _commit_loop(self) -> None:
        for parts in _batches(self.commit_q, self.rt.settings.commit_batch_size, idle_s=0.5,
                              weight=lambda part: len(part[0])):
            self._commit(parts)

    def _commit(self, parts: list[tuple[list[Known | Prepared], dict[str, np.ndarray]]]) -> None:
        items = [r for batch, _ in parts for r in batch]
        vectors = {h: v for _, vecs in parts for h, v in vecs.items()}
        assets = [
            NewAsset(sha256=r.sha256, sha1=r.sha1, bytes=r.size, mime=r.mime, width=r.width, height=r.height,
                     exif=r.exif)
            for r in items if isinstance(r, Prepared)
        ]
        files = [FileRecord(path=r.path, size=r.size, mtime_ns=r.mtime_ns, sha256=r.sha256) for r in items]
        model = self.model
        ids = self.rt.catalog.commit_batch(
            self.coll.id, assets, files,
            ModelVectors(model.name, model.revision, vectors) if model is not None and vectors else None,
        )
        for r in items:
            if isinstance(r, Prepared) and r.sha256 not in self.seen_hashes:
                self.report.processed += 1
            elif not (isinstance(r, Known) and ids[r.sha256] in self.gone_assets):
                self.report.exact_duplicates += 1  # moves are counted by _reconcile
            self.seen_hashes.add(r.sha256)
        if model is not None:
            sync_index(self.rt, self.coll, model, {ids[h]: v for h, v in vectors.items()},
                       touched=[ids[r.sha256] for r in items if isinstance(r, Known)])
        self.progress.advance(len(items))


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
