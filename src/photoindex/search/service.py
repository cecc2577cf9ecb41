"""Queries over one collection's vectors: by text, by an image (a file, or an asset already in the
catalog) and by filters. Scores are cosine similarities from the collection's model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from photoindex.errors import CatalogError, ErrorCode, PhotoindexError
from photoindex.ingest.scan import normalize_path
from photoindex.media.decode import decode_image
from photoindex.media.hashing import read_and_hash
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.runtime import Runtime
from photoindex.schemas import AssetInfo, CollectionInfo, SearchFilters, SearchHit


def search_text(rt: Runtime, text: str, *, collection: str | None = None, k: int = 20,
                filters: SearchFilters | None = None) -> list[SearchHit]:
    if not text.strip():
        raise PhotoindexError("the search text is empty", code=ErrorCode.INVALID_REQUEST,
                              hint='say what you look for, e.g. photoindex search "dog on a beach"')
    coll = rt.collection(collection)
    model = rt.embedder(rt.model_name(coll))
    vector = model.embed_texts([text])[0]
    return rank(rt, coll, model, vector, k, filters)


def search_similar(rt: Runtime, target: str | Path | int, *, collection: str | None = None, k: int = 20,
                   filters: SearchFilters | None = None) -> list[SearchHit]:
    """Photos like `target`: an asset id, a path in the catalog (its stored vector is used and the
    asset itself is left out), or any image file (embedded on the fly)."""
    coll = rt.collection(collection)
    model = rt.embedder(rt.model_name(coll))
    asset = resolve_asset(rt, coll, target, must_exist=False)
    if asset is not None:
        vector = rt.catalog.get_vector(asset.id, model.name)
        if vector is not None:
            return rank(rt, coll, model, vector, k, filters, exclude=[asset.id])
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit() and not Path(target).exists()):
        raise PhotoindexError(f"asset {target} has no {model.name} vector yet", code=ErrorCode.ASSET_NOT_FOUND,
                              hint="run `photoindex ingest` with the model installed to embed pending photos")
    vector = embed_file(model, rt, Path(target))
    return rank(rt, coll, model, vector, k, filters, exclude=[asset.id] if asset else [])


def embed_file(model: ImageTextEmbedder, rt: Runtime, path: Path) -> np.ndarray:
    data = read_and_hash(path, max_bytes=rt.settings.max_file_bytes)
    decoded = decode_image(data.data, path=path, target=max(rt.settings.thumbnail_sizes),
                           max_pixels=rt.settings.max_image_pixels, raw_preview_min=rt.settings.raw_preview_min_size)
    return model.embed_pil([decoded.image])[0]


def resolve_asset(rt: Runtime, coll: CollectionInfo, ref: str | Path | int, *, must_exist: bool = True) -> AssetInfo | None:
    """An asset by id, by a path of one of its files, or by its SHA-256 (a unique prefix of 8+ hex digits)."""
    found: AssetInfo | None = None
    text = str(ref)
    if isinstance(ref, int) or text.isdigit() and not Path(text).exists():
        try:
            found = rt.catalog.get_asset(int(text))
        except CatalogError:
            found = None
        if found is not None and found.collection_id != coll.id:
            found = None
    elif Path(text).exists():
        found = rt.catalog.find_asset_by_path(coll.id, normalize_path(text))
        if found is None:
            data = read_and_hash(text, max_bytes=rt.settings.max_file_bytes)
            found = rt.catalog.find_asset_by_sha256(coll.id, data.sha256)
    elif len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower()):
        found = rt.catalog.find_asset_by_sha256(coll.id, text.lower())
    if found is None and must_exist:
        raise CatalogError(f"no photo {text!r} in collection {coll.name!r}", code=ErrorCode.ASSET_NOT_FOUND,
                           hint="give an asset id, a path that was ingested, or a SHA-256")
    return found


def rank(rt: Runtime, coll: CollectionInfo, model: ImageTextEmbedder, vector: np.ndarray, k: int,
         filters: SearchFilters | None, exclude: list[int] | None = None) -> list[SearchHit]:
    """The k best assets of the collection for a query vector, as hits with their first live path."""
    if k < 1:
        raise PhotoindexError("k must be at least 1", code=ErrorCode.INVALID_REQUEST)
    space = rt.space(coll, model)
    pairs = rt.index.search(space, vector, k, filters if filters and not filters.is_empty() else None,
                            exclude=exclude or [])
    assets = rt.catalog.get_assets([a for a, _ in pairs])
    hits = []
    for asset_id, score in pairs:
        asset = assets.get(asset_id)
        if asset is None:  # deleted between index and catalog reads
            continue
        live = [f.path for f in asset.files if not f.missing]
        path = live[0] if live else (asset.files[0].path if asset.files else None)
        hits.append(SearchHit(asset_id=asset_id, score=round(float(score), 6), path=path, taken_at=asset.taken_at,
                              camera=asset.camera, sha256=asset.sha256, width=asset.width, height=asset.height))
    return hits
