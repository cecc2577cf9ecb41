"""What the ingest writes to the result cache besides model outputs, so that `cache import` can
rebuild a catalog from the cache alone: collections (name, model), assets (content metadata), files
(where content lives, moves and missing files) and image vectors.

Kinds and keys: `collections` by name; `assets` by SHA-256; `files` by "<collection>\\0<path>" (a
drop row when a file moved away); `embedding` by SHA-256, with model and revision.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from photoindex.schemas import CollectionInfo
from photoindex.store.catalog import FileRecord, NewAsset
from photoindex.store.result_cache import CacheRow, ResultCache

COLLECTIONS, ASSETS, FILES, EMBEDDING = "collections", "assets", "files", "embedding"


def file_key(collection: str, path: str) -> str:
    return f"{collection}\0{path}"


def collection(cache: ResultCache, coll: CollectionInfo, model: str | None, vector_size: int | None) -> None:
    cache.write(COLLECTIONS, [CacheRow(key=coll.name, payload={
        "model": model or coll.model, "vector_size": vector_size or coll.vector_size, "distance": coll.distance,
        "options": coll.options})])


def assets(cache: ResultCache, new: Sequence[NewAsset]) -> None:
    cache.write(ASSETS, [CacheRow(key=a.sha256, payload={
        "sha1": a.sha1, "bytes": a.bytes, "mime": a.mime, "width": a.width, "height": a.height,
        "exif": a.exif.model_dump(mode="json", exclude_none=True)}) for a in new])


def files(cache: ResultCache, coll: str, records: Iterable[FileRecord], *, missing: bool = False) -> None:
    cache.write(FILES, [CacheRow(key=file_key(coll, f.path), payload={
        "collection": coll, "path": f.path, "size": f.size, "mtime_ns": f.mtime_ns, "sha256": f.sha256,
        "missing": missing}) for f in records])


def files_gone(cache: ResultCache, coll: str, paths: Iterable[str]) -> None:
    cache.write(FILES, [CacheRow(key=file_key(coll, p), op="drop") for p in paths])


def vectors(cache: ResultCache, model: str, revision: str, by_sha256: dict[str, np.ndarray]) -> None:
    cache.write(EMBEDDING, [CacheRow(key=h, model=model, revision=revision, vector=v) for h, v in by_sha256.items()])
