"""Vector index backends: one interface, an exact in-process default and Qdrant for scale-out.

A *vector space* is one model's vectors inside one collection. The catalog is the source of truth
for vectors (principle 2: indexes are derived), so every backend can be rebuilt from it:

- `ExactIndex` (`exact_index.py`, the embedded default) keeps no copy of its own on disk. It loads a
  space from the catalog into memory on first use and refreshes it incrementally before each query.
  `stores_vectors` is False: the pipeline commits vectors to the catalog and the index follows.
- `QdrantIndex` (`qdrant_index.py`) keeps its own copy in a Qdrant server, so the pipeline must
  `upsert` what it commits (with a payload for filtering). `stores_vectors` is True.

Scores are "higher is better" similarities for Cosine and Dot (cosine similarity in [-1, 1] for
Cosine); results come best first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Self

import numpy as np

from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.schemas import AssetInfo, SearchFilters

if TYPE_CHECKING:
    from photoindex.config import Settings
    from photoindex.store.catalog import Catalog


@dataclass(frozen=True)
class VectorSpace:
    """One model's vectors in one collection."""

    collection_id: int
    collection: str
    model: str
    dim: int


@dataclass(frozen=True)
class VectorPayload:
    """What the filters need to know about an asset, for backends that filter on their own."""

    taken_at: datetime | None  # naive wall-clock time, as the catalog compares it
    camera: str | None  # 'Make Model'
    paths: tuple[str, ...]  # normalized absolute POSIX paths of the files that are not missing


@dataclass(frozen=True)
class VectorRecord:
    asset_id: int
    vector: np.ndarray = field(repr=False)
    payload: VectorPayload | None = None


def payload_for(asset: AssetInfo) -> VectorPayload:
    """The filter payload of a catalog asset (wall-clock capture time, camera, present paths)."""
    taken = asset.taken_at.replace(tzinfo=None) if asset.taken_at is not None else None
    paths = tuple(sorted(f.path for f in asset.files if not f.missing))
    return VectorPayload(taken_at=taken, camera=asset.camera, paths=paths)


def as_query_vector(vector: np.ndarray | Sequence[float], dim: int) -> np.ndarray:
    """A 1-d float32 copy of `vector`, checked against the space's dimension."""
    q = np.asarray(vector, dtype=np.float32).ravel()
    if q.shape[0] != dim:
        raise PhotoindexError(
            f"query vector has {q.shape[0]} dimensions, the vector space has {dim}",
            code=ErrorCode.DIMENSION_MISMATCH,
            hint="embed the query with the same model as the collection",
        )
    return q


class VectorIndex(ABC):
    """A searchable store of vectors, one space per (collection, model)."""

    #: False: the vectors live in the catalog and the index follows it (exact).
    #: True: the backend keeps its own copy and must be upserted after each catalog commit (qdrant).
    stores_vectors: bool = False

    @abstractmethod
    def upsert(self, space: VectorSpace, records: Sequence[VectorRecord]) -> None:
        """Add or replace the vectors (and payloads) of these assets."""

    @abstractmethod
    def delete(self, space: VectorSpace, asset_ids: Sequence[int]) -> None:
        """Forget these assets' vectors in this space."""

    @abstractmethod
    def search(
        self,
        space: VectorSpace,
        vector: np.ndarray,
        k: int = 20,
        filters: SearchFilters | None = None,
        *,
        exclude: Sequence[int] = (),
    ) -> list[tuple[int, float]]:
        """The `k` nearest assets as (asset id, score), best first; `exclude` drops asset ids (e.g.
        the query asset itself for "similar to")."""

    @abstractmethod
    def count(self, space: VectorSpace) -> int:
        """Number of vectors in the space."""

    @abstractmethod
    def scroll(self, space: VectorSpace, batch_size: int = 1000) -> Iterator[list[VectorRecord]]:
        """Every vector of the space, in batches (ascending asset id for the exact index)."""

    @abstractmethod
    def drop_collection(self, collection_id: int, collection: str) -> None:
        """Forget every space of a collection (the catalog deletes its own rows)."""

    def close(self) -> None:
        """Release connections and memory."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sync_from_catalog(index: VectorIndex, catalog: Catalog, space: VectorSpace, *, batch_size: int = 1000) -> int:
    """Copy a space's vectors, with filter payloads, from the catalog into a backend that keeps its
    own copy (rebuilding a Qdrant collection: indexes are derived). Returns the number of vectors
    written; 0 for backends that read the catalog themselves."""
    if not index.stores_vectors:
        return 0
    chunk = catalog.load_vectors(space.collection_id, space.model)
    written = 0
    for start in range(0, chunk.ids.size, batch_size):
        ids = [int(i) for i in chunk.ids[start : start + batch_size]]
        assets = catalog.get_assets(ids)
        records = [
            VectorRecord(aid, chunk.vectors[start + j], payload_for(assets[aid]) if aid in assets else None)
            for j, aid in enumerate(ids)
        ]
        index.upsert(space, records)
        written += len(records)
    return written


def open_vector_index(settings: Settings, catalog: Catalog) -> VectorIndex:
    """The backend named by `settings.vector_backend` ("exact" or "qdrant")."""
    if settings.vector_backend == "exact":
        from photoindex.store.exact_index import ExactIndex

        return ExactIndex(catalog)
    if settings.vector_backend == "qdrant":
        from photoindex.store.qdrant_index import QdrantIndex

        return QdrantIndex.from_settings(settings)
    raise PhotoindexError(
        f"unknown vector backend {settings.vector_backend!r}",
        code=ErrorCode.CONFIG_INVALID,
        hint="set vector_backend to 'exact' or 'qdrant'",
    )
