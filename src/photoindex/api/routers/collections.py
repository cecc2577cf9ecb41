"""Collections: separate libraries, each with its own model and vectors."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path

from photoindex.api.deps import API_PREFIX, get_rt
from photoindex.api.schemas import (
    CacheCleared,
    CollectionCreate,
    CollectionDeleted,
    CollectionOut,
    CollectionSelect,
)
from photoindex.runtime import Runtime

router = APIRouter(prefix=f"{API_PREFIX}/collections", tags=["collections"])


@router.post("", response_model=CollectionOut, status_code=201, summary="Create a collection")
def create_collection(body: CollectionCreate, rt: Runtime = Depends(get_rt)) -> dict[str, Any]:
    info = rt.catalog.create_collection(body.name, vector_size=body.vector_size, distance=body.distance)
    if body.select:
        info = rt.catalog.select_collection(body.name)
    return info.model_dump()


@router.get("", response_model=list[CollectionOut], summary="List collections (the selected one has active=true)")
def list_collections(rt: Runtime = Depends(get_rt)) -> list[dict[str, Any]]:
    return [c.model_dump() for c in rt.catalog.list_collections()]


@router.post("/select", response_model=CollectionOut, summary="Make a collection the default for later requests")
def select_collection(body: CollectionSelect, rt: Runtime = Depends(get_rt)) -> dict[str, Any]:
    return rt.catalog.select_collection(body.name).model_dump()


@router.post("/cache/clear", response_model=CacheCleared,
             summary="Drop the in-memory copies of vector spaces (they reload from the catalog on next use)")
def clear_cache(rt: Runtime = Depends(get_rt)) -> CacheCleared:
    """The exact index keeps each (collection, model) space in memory; `close()` is its public way to
    drop them all (it holds no connection). A Qdrant index has no in-process copy: nothing to drop,
    and its client stays open."""
    index = rt.index
    if index.stores_vectors:
        return CacheCleared(backend=rt.settings.vector_backend, spaces_dropped=0)
    spaces = len(getattr(index, "_spaces", {}))
    index.close()
    return CacheCleared(backend=rt.settings.vector_backend, spaces_dropped=spaces)


@router.delete("/{name}", response_model=CollectionDeleted,
               summary="Delete a collection from the catalog and the vector index (files on disk are untouched)")
def delete_collection(name: str = Path(min_length=1, max_length=128), rt: Runtime = Depends(get_rt)) -> CollectionDeleted:
    info = rt.catalog.get_collection(name)
    rt.index.drop_collection(info.id, info.name)
    rt.catalog.delete_collection(name)
    return CollectionDeleted(deleted=name)
