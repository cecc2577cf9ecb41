"""Run a collection's enrichers over the assets that lack their results.

Per chunk of assets: previews are decoded once (in threads, the next chunk while models run on this
one) and handed to every enricher that still needs that asset, in dependency order. Results come
from the result cache when it has them for this model revision (no model call), otherwise from the
model; new results are written to the cache first, then to the catalog, one transaction per
enricher and chunk. A photo that fails an enricher is recorded as failed for that revision and the
run goes on; an enricher whose backend goes away (a VLM server down) stops for this run with a
notice, and its photos stay pending for the next run.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field

from photoindex import metrics
from photoindex.enrich.base import Enricher, Item, Needs
from photoindex.enrich.builtin import TextEnricher, put_words, words_of
from photoindex.enrich.loader import load_enrichers
from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.ingest.embed import load_preview, sync_index
from photoindex.runtime import Runtime
from photoindex.schemas import CollectionInfo, TextEmbeddingResult
from photoindex.store import enrichments as store
from photoindex.store.enrichments import EnrichmentWrite
from photoindex.store.result_cache import CacheRow

if TYPE_CHECKING:
    from photoindex.ingest.stages import Progress

CHUNK = 32


class EnricherStats(BaseModel):
    model: str
    revision: str
    computed: int = 0
    cached: int = Field(default=0, description="results taken from the result cache, no model call")
    failed: int = 0
    infer_s: float = 0.0


class EnrichReport(BaseModel):
    collection: str
    assets: int = 0
    enrichers: dict[str, EnricherStats] = Field(default_factory=dict)
    ocr_gate_skipped: int = Field(default=0, description="photos whose text detection ruled out recognition")
    notices: list[str] = Field(default_factory=list)
    elapsed_s: float = 0.0


class _Run:
    def __init__(self, rt: Runtime, coll: CollectionInfo, enrichers: list[Enricher], report: EnrichReport) -> None:
        self.rt, self.coll, self.enrichers, self.report = rt, coll, enrichers, report
        self.image_model = rt.model_name(coll)
        self.stopped: set[str] = set()
        # what the cache held for each enricher when the run began: content it has never seen is not
        # looked up chunk after chunk (what this run writes it computed itself)
        self.cached_keys = {e.name: rt.result_cache.keys(e.name, model=e.model, revision=e.revision)
                            for e in enrichers}
        for e in enrichers:
            report.enrichers[e.name] = EnricherStats(model=e.model, revision=e.revision)

    def chunk(self, chunk: list[tuple[int, str]], pending: dict[str, set[int]], images: dict[int, object]) -> None:
        ids = [a for a, _ in chunk]
        sha = dict(chunk)
        worded: set[int] = set()
        text: Enricher | None = None
        for e in self.enrichers:
            if isinstance(e, TextEnricher):
                text = e  # last: it encodes the words the others found
                continue
            todo = [a for a in ids if a in pending[e.name]] if e.name not in self.stopped else []
            done = self._apply(e, self._items(e, todo, sha, images)) if todo else []
            if e.name in TextEnricher.depends_on:  # its results are words a photo can be found by
                worded.update(done)
        if worded:
            self._refresh_texts(sorted(worded))
        if text is not None and text.name not in self.stopped:
            if worded:  # the words changed: the stored sentence vector is stale until recomputed
                store.forget(self.rt.catalog, sorted(worded), text.name)
            todo = sorted({a for a in ids if a in pending[text.name]} | worded)
            self._apply(text, self._items(text, todo, sha, images))

    def _items(self, e: Enricher, todo: list[int], sha: dict[int, str], images: dict[int, object]) -> list[Item]:
        catalog = self.rt.catalog
        vectors = catalog.get_vectors(todo, self.image_model) if Needs.EMBEDDING in e.needs else {}
        tags = store.tags_of(catalog, todo) if e.name == "ocr" else {}
        texts = words_of(catalog, todo) if Needs.TEXTS in e.needs else {}
        items = []
        for a in todo:
            item = Item(asset_id=a, sha256=sha[a], tags=tags.get(a, []), texts=texts.get(a, ("", "", "")))
            if Needs.IMAGE in e.needs:
                item.image = images.get(a)  # type: ignore[assignment]
                if item.image is None:
                    continue  # no preview and no readable original: stays pending
            if Needs.EMBEDDING in e.needs:
                item.embedding = vectors.get(a)
                if item.embedding is None:
                    continue  # not embedded yet (model missing): stays pending
            items.append(item)
        return items

    def _apply(self, e: Enricher, items: list[Item]) -> list[int]:
        """Cached or computed results of one enricher for these items, stored; returns the asset ids done."""
        if not items:
            return []
        stats = self.report.enrichers[e.name]
        keys = {it.asset_id: e.cache_key(it) for it in items}
        wanted = set(keys.values()) & self.cached_keys[e.name]
        hits = self.rt.result_cache.latest(e.name, model=e.model, revision=e.revision, keys=wanted) if wanted else {}
        results: dict[int, BaseModel] = {}
        for it in items:
            row = hits.get(keys[it.asset_id])
            if row is not None and row.payload is not None:
                payload = dict(row.payload)
                if row.vector is not None:
                    payload["vector"] = row.vector.tolist()
                results[it.asset_id] = e.parse(payload)
        stats.cached += len(results)
        metrics.cache_total.labels(e.name, "hit").inc(len(results))
        fresh = [it for it in items if it.asset_id not in results]
        failures: dict[int, PhotoindexError] = {}
        computed: dict[int, BaseModel] = {}
        for start in range(0, len(fresh), e.batch_size):
            batch = fresh[start : start + e.batch_size]
            try:
                computed.update(self._run(e, batch, failures))
            except _Stop as stop:
                self.stopped.add(e.name)
                self.report.notices.append(f"{e.name}: stopped for this run: {stop.error}")
                break
        metrics.cache_total.labels(e.name, "miss").inc(len(computed))
        stats.computed += len(computed)
        stats.failed += len(failures)
        self._store(e, items, computed, {**results, **computed}, failures)
        return [a for a in keys if a in results or a in computed]

    def _run(self, e: Enricher, batch: list[Item], failures: dict[int, PhotoindexError]) -> dict[int, BaseModel]:
        stats = self.report.enrichers[e.name]
        started = time.perf_counter()
        try:
            metrics.model_calls_total.labels(e.model).inc()
            out = e.run(batch)
            return {it.asset_id: r for it, r in zip(batch, out, strict=True)}
        except Exception as exc:
            if _backend_down(exc):
                raise _Stop(exc) from exc
            if len(batch) == 1:
                failures[batch[0].asset_id] = _as_error(exc)
                return {}
            # one photo may have failed the whole batch: find it by running them one by one
            results: dict[int, BaseModel] = {}
            for it in batch:
                results.update(self._run(e, [it], failures))
            return results
        finally:
            elapsed = time.perf_counter() - started
            stats.infer_s += elapsed
            metrics.stage_seconds.labels(f"enrich.{e.name}").observe(elapsed)

    def _store(self, e: Enricher, items: list[Item], computed: dict[int, BaseModel], results: dict[int, BaseModel],
               failures: dict[int, PhotoindexError]) -> None:
        by_id = {it.asset_id: it for it in items}
        rows = []
        for a, r in computed.items():
            payload = r.model_dump(mode="json")
            vector = payload.pop("vector", None)
            rows.append(CacheRow(key=e.cache_key(by_id[a]), model=e.model, revision=e.revision, payload=payload,
                                 vector=np.asarray(vector, np.float32) if vector is not None else None))
        self.rt.result_cache.write(e.name, rows)  # the cache first: the catalog can be rebuilt from it
        writes = [e.write_for(a, r) for a, r in results.items()]
        writes += [EnrichmentWrite(asset_id=a, status="failed", error=err.to_dict()) for a, err in failures.items()]
        store.put(self.rt.catalog, self.coll.id, e.target, writes)
        if isinstance(e, TextEnricher):
            vectors = {a: np.asarray(r.vector, np.float32) for a, r in results.items()
                       if isinstance(r, TextEmbeddingResult) and r.vector is not None}
            if vectors:
                self.rt.catalog.put_vectors(self.coll.id, e.model, e.revision, vectors)
                sync_index(self.rt, self.rt.space(self.coll, e.embedder), vectors)
        if e.name == "ocr":
            self.report.ocr_gate_skipped += sum(
                1 for a in computed if not getattr(computed[a], "recognized", True))

    def _refresh_texts(self, asset_ids: Sequence[int]) -> None:
        put_words(self.rt.catalog, self.coll.id, words_of(self.rt.catalog, asset_ids))


class _Stop(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _backend_down(exc: BaseException) -> bool:
    return isinstance(exc, PhotoindexError) and exc.code == ErrorCode.BACKEND_UNAVAILABLE


def _as_error(exc: BaseException) -> PhotoindexError:
    if isinstance(exc, PhotoindexError):
        return exc
    return PhotoindexError(f"{type(exc).__name__}: {exc}"[:500], code=ErrorCode.INTERNAL)


def enrich_collection(rt: Runtime, coll: CollectionInfo, *, asset_ids: Sequence[int] | None = None,
                      only: Sequence[str] | None = None, progress: Progress | None = None) -> EnrichReport:
    """Compute what is missing for the collection's enrichers (for `asset_ids` when given)."""
    from photoindex.ingest.stages import NullProgress

    started = time.perf_counter()
    progress = progress or NullProgress()
    report = EnrichReport(collection=coll.name)
    enrichers, report.notices = load_enrichers(rt, coll, only)
    run = _Run(rt, coll, enrichers, report)
    pending: dict[str, set[int]] = {}
    todo: dict[int, str] = {}
    for e in enrichers:
        rows = store.pending(rt.catalog, coll.id, e.name, e.revision, asset_ids)
        pending[e.name] = {a for a, _ in rows}
        todo.update(rows)
    order = sorted(todo.items())
    report.assets = len(order)
    if not order:
        report.elapsed_s = round(time.perf_counter() - started, 3)
        return report
    progress.phase("enriching", len(order))
    wants_image = {e.name for e in enrichers if Needs.IMAGE in e.needs}
    chunks = [order[i : i + CHUNK] for i in range(0, len(order), CHUNK)]

    def load(chunk: list[tuple[int, str]]) -> dict[int, object]:
        need = [(a, h) for a, h in chunk if any(a in pending[n] for n in wants_image)]
        return dict(zip((a for a, _ in need), pool.map(lambda ah: load_preview(rt, *ah), need), strict=True))

    with ThreadPoolExecutor(max_workers=rt.settings.prepare_workers) as pool, \
            ThreadPoolExecutor(max_workers=1) as ahead:
        upcoming: Future = ahead.submit(load, chunks[0])
        for i, chunk in enumerate(chunks):
            images = upcoming.result()
            if i + 1 < len(chunks):
                upcoming = ahead.submit(load, chunks[i + 1])  # decode the next chunk while models run
            run.chunk(chunk, pending, images)
            progress.advance(len(chunk))
    report.elapsed_s = round(time.perf_counter() - started, 3)
    return report
