"""`photoindex cache import`: rebuild the catalog and the vector index from the result cache alone,
without running a model. Idempotent: importing into a catalog that already has the rows changes
nothing, so it also repairs a catalog that lost some.

Order: collections → assets and files → image vectors of every model in the cache → enrichment
results (with their regions, tags and columns) → searchable text → sentence vectors of that text
(cached by the words, so they are found once the words are back) → the vector index.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from photoindex.cache.observe import ASSETS, COLLECTIONS, EMBEDDING, FILES
from photoindex.enrich.builtin import ENRICHER_TYPES, TextEnricher, compose_text, put_words, words_of
from photoindex.errors import CatalogError, ErrorCode
from photoindex.ingest.embed import sync_index
from photoindex.runtime import Runtime
from photoindex.schemas import CollectionInfo, ExifInfo
from photoindex.store import enrichments as store
from photoindex.store.catalog import FileRecord, NewAsset
from photoindex.store.enrichments import Target
from photoindex.store.vectors import VectorSpace

if TYPE_CHECKING:
    from photoindex.ingest.stages import Progress

_BATCH = 2000


class ImportReport(BaseModel):
    collections: list[str] = Field(default_factory=list)
    assets: int = 0
    files: int = 0
    vectors: dict[str, int] = Field(default_factory=dict, description="per model")
    enrichments: dict[str, int] = Field(default_factory=dict, description="per enricher")
    elapsed_s: float = 0.0


def import_cache(rt: Runtime, progress: Progress | None = None) -> ImportReport:
    from photoindex.ingest.stages import NullProgress

    started = time.perf_counter()
    progress = progress or NullProgress()
    cache = rt.result_cache
    report = ImportReport()
    files_by_coll: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in cache.latest(FILES).values():
        files_by_coll[row.payload["collection"]].append(row.payload)  # type: ignore[index]
    colls = cache.latest(COLLECTIONS)
    assets = cache.latest(ASSETS)
    for name in sorted(set(colls) | set(files_by_coll)):
        meta = colls[name].payload if name in colls else {}
        coll = _collection(rt, name, meta or {})
        report.collections.append(name)
        files = files_by_coll.get(name, [])
        progress.phase(f"importing {name}", len(files))
        ids = _files(rt, coll, files, assets, report, progress)
        _vectors(rt, coll, ids, report)
        _enrichments(rt, coll, ids, report)
    report.elapsed_s = round(time.perf_counter() - started, 3)
    return report


def _collection(rt: Runtime, name: str, meta: dict[str, Any]) -> CollectionInfo:
    catalog = rt.catalog
    try:
        coll = catalog.get_collection(name)
    except CatalogError as exc:
        if exc.code != ErrorCode.COLLECTION_NOT_FOUND:
            raise
        coll = catalog.create_collection(name, vector_size=meta.get("vector_size"),
                                         distance=meta.get("distance") or "Cosine", model=meta.get("model"))
    if meta.get("options"):
        coll = catalog.set_collection_options(name, **meta["options"])
    return coll


def _files(rt: Runtime, coll: CollectionInfo, files: list[dict[str, Any]], assets: dict[str, Any],
           report: ImportReport, progress: Progress) -> dict[str, int]:
    """Assets and files into the catalog; returns sha256 → asset id."""
    ids: dict[str, int] = {}
    for start in range(0, len(files), _BATCH):
        chunk = [f for f in files[start : start + _BATCH] if f["sha256"] in assets]
        new = []
        for sha in dict.fromkeys(f["sha256"] for f in chunk):
            a = assets[sha].payload
            new.append(NewAsset(sha256=sha, sha1=a["sha1"], bytes=a["bytes"], mime=a["mime"], width=a["width"],
                                height=a["height"], exif=ExifInfo.model_validate(a.get("exif") or {})))
        records = [FileRecord(path=f["path"], size=f["size"], mtime_ns=f["mtime_ns"], sha256=f["sha256"])
                   for f in chunk]
        ids.update(rt.catalog.commit_batch(coll.id, new, records))
        report.files += len(records)
        progress.advance(len(files[start : start + _BATCH]))
    report.assets += len(ids)
    return ids


def _vectors(rt: Runtime, coll: CollectionInfo, ids: dict[str, int], report: ImportReport) -> None:
    cache = rt.result_cache
    models = set(cache.models(EMBEDDING)) & ({coll.model} | set(coll.options.get("extra_models", [])))
    for model in sorted(m for m in models if m):
        rows = cache.latest(EMBEDDING, model=model, keys=ids)
        by_revision: dict[str, dict[int, np.ndarray]] = defaultdict(dict)
        for sha, row in rows.items():
            by_revision[row.revision][ids[sha]] = row.vector  # type: ignore[assignment]
        for revision, vectors in by_revision.items():
            rt.catalog.put_vectors(coll.id, model, revision, vectors)
        n = sum(len(v) for v in by_revision.values())
        report.vectors[model] = report.vectors.get(model, 0) + n
        _index(rt, coll, model, {a: v for vecs in by_revision.values() for a, v in vecs.items()})


def _enrichments(rt: Runtime, coll: CollectionInfo, ids: dict[str, int], report: ImportReport) -> None:
    cache, catalog = rt.result_cache, rt.catalog
    for name, kind in ENRICHER_TYPES.items():
        if name == TextEnricher.name or name not in cache.kinds():
            continue
        rows = cache.latest(name, keys=ids)
        grouped: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for sha, row in rows.items():
            grouped[(row.model, row.revision)].append(kind.write_for(ids[sha], kind.parse(row.payload or {})))
        for (model, revision), writes in grouped.items():
            store.put(catalog, coll.id, Target(name, model, revision, kind.region_kind, kind.tag_source), writes)
        report.enrichments[name] = len(rows)
    asset_ids = sorted(ids.values())
    words = words_of(catalog, asset_ids)
    put_words(catalog, coll.id, {a: w for a, w in words.items() if any(w)})
    if TextEnricher.name not in cache.kinds():
        return
    by_key = {hashlib.sha256(compose_text(w).encode()).hexdigest(): a for a, w in words.items() if any(w)}
    rows = cache.latest(TextEnricher.name, keys=by_key)
    grouped_vectors: dict[tuple[str, str], dict[int, np.ndarray]] = defaultdict(dict)
    writes: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for key, row in rows.items():
        a = by_key[key]
        writes[(row.model, row.revision)].append(TextEnricher.write_for(a, TextEnricher.parse(row.payload or {})))
        if row.vector is not None:
            grouped_vectors[(row.model, row.revision)][a] = row.vector
    for (model, revision), batch in writes.items():
        store.put(catalog, coll.id, Target(TextEnricher.name, model, revision), batch)
        vectors = grouped_vectors.get((model, revision), {})
        if vectors:
            catalog.put_vectors(coll.id, model, revision, vectors)
            _index(rt, coll, model, vectors)
    report.enrichments[TextEnricher.name] = len(rows)


def _index(rt: Runtime, coll: CollectionInfo, model: str, vectors: dict[int, np.ndarray]) -> None:
    if vectors:
        dim = int(next(iter(vectors.values())).shape[0])
        sync_index(rt, VectorSpace(coll.id, coll.name, model, dim), vectors)
