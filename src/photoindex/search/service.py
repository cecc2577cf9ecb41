"""Queries over one collection's vectors: by text, by an image (a file, or an asset already in the
catalog) and by filters. Scores are cosine similarities from the collection's model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from photoindex.errors import CatalogError, ErrorCode, PhotoindexError
from photoindex.ingest.scan import normalize_path
from photoindex.media.decode import decode_image
from photoindex.media.hashing import read_and_hash
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.runtime import Runtime
from photoindex.schemas import AssetInfo, CollectionInfo, SearchFilters, SearchHit
from photoindex.search.fusion import rrf
from photoindex.store import fulltext
from photoindex.store.archives import hidden_asset_ids
from photoindex.store.vectors import VectorSpace


def search_text(rt: Runtime, text: str, *, collection: str | None = None, k: int = 20,
                filters: SearchFilters | None = None, model: str | None = None,
                mode: str = "hybrid") -> list[SearchHit]:
    """Photos for a description. `image` ranks by the image-text model alone; `hybrid` (the default)
    fuses that ranking with full-text matches over captions, OCR text and tags and with the sentence
    embedding of those words, by reciprocal rank fusion: a photo whose sign reads the words, or whose
    caption says them, rises even when its pixels alone would not place it first."""
    if not text.strip():
        raise PhotoindexError("the search text is empty", code=ErrorCode.INVALID_REQUEST,
                              hint='say what you look for, e.g. photoindex search "dog on a beach"')
    if mode not in ("hybrid", "image", "words"):
        raise PhotoindexError(f"unknown search mode {mode!r}", code=ErrorCode.INVALID_REQUEST,
                              hint="use hybrid, image or words")
    coll = rt.collection(collection)
    known = [rt.model_name(coll), *coll.options.get("extra_models", [])]
    if model is not None and model not in known:
        raise PhotoindexError(f"collection {coll.name!r} has no vectors of {model}", code=ErrorCode.NO_VECTORS,
                              hint=f"it has {', '.join(known)}; add one with `photoindex embed --model {model}`")
    image_model = rt.embedder(model or rt.model_name(coll))
    filters = _resolved(rt, coll, filters)
    vector = image_model.embed_texts([text])[0]
    if mode == "image" or not rt.catalog.has_texts(coll.id):
        return rank(rt, coll, image_model, vector, k, filters)
    depth = max(3 * k, 100)
    allowed = rt.catalog.filter_asset_ids(coll.id, filters) if filters is not None and not filters.is_empty() else None
    rankings: list[list[int]] = []
    sources: list[str] = []
    if mode == "hybrid":
        rankings.append([a for a, _ in _search(rt, coll, image_model, vector, depth, filters)])
        sources.append("image")
    rankings.append([a for a, _ in fulltext.match(rt.catalog, coll.id, text, limit=depth, asset_ids=allowed)])
    sources.append("words")
    words_model = _words_model(rt, coll)
    if words_model is not None:
        query = words_model.embed([text])[0]
        rankings.append([a for a, _ in _search(rt, coll, words_model, query, depth, filters)])
        sources.append("meaning")
    fused = rrf(rankings, limit=k)
    found_by = {a: [src for src, ranked in zip(sources, rankings, strict=True) if a in ranked] for a, _ in fused}
    return _hits(rt, fused, found_by)


def _words_model(rt: Runtime, coll: CollectionInfo) -> Any:
    """The sentence-embedding model of the collection's text vectors, when both exist."""
    from photoindex.enrich.loader import text_model

    model = text_model(rt)
    if model is None or rt.catalog.vector_space_state(coll.id, model.name)[0] == 0:
        return None
    return model


def _resolved(rt: Runtime, coll: CollectionInfo, filters: SearchFilters | None) -> SearchFilters | None:
    """Catalog-only filters (tags, text, quality) become an id list for backends with their own payload."""
    if filters is None or not filters.catalog_only() or not rt.index.stores_vectors:
        return filters
    ids = rt.catalog.filter_asset_ids(coll.id, filters)
    return SearchFilters(date_from=filters.date_from, date_to=filters.date_to, camera=filters.camera,
                         path_prefix=filters.path_prefix, asset_ids=ids.tolist())


def _search(rt: Runtime, coll: CollectionInfo, model: Any, vector: np.ndarray, k: int,
            filters: SearchFilters | None, exclude: list[int] | None = None) -> list[tuple[int, float]]:
    space = VectorSpace(coll.id, coll.name, model.name, model.dim)
    hidden = hidden_asset_ids(rt.catalog, coll.id).tolist()  # archived photos keep their vectors for undo
    return rt.index.search(space, vector, k, filters if filters and not filters.is_empty() else None,
                           exclude=[*(exclude or []), *hidden])


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
    return _hits(rt, _search(rt, coll, model, vector, k, _resolved(rt, coll, filters), exclude))


def _hits(rt: Runtime, pairs: list[tuple[int, float]], found_by: dict[int, list[str]] | None = None) -> list[SearchHit]:
    assets = rt.catalog.get_assets([a for a, _ in pairs])
    hits = []
    for asset_id, score in pairs:
        asset = assets.get(asset_id)
        if asset is None or asset.status != "active":  # deleted or archived meanwhile; words of archived photos
            continue
        live = [f.path for f in asset.files if not f.missing]
        path = live[0] if live else (asset.files[0].path if asset.files else None)
        hits.append(SearchHit(asset_id=asset_id, score=round(float(score), 6), path=path, taken_at=asset.taken_at,
                              camera=asset.camera, sha256=asset.sha256, width=asset.width, height=asset.height,
                              found_by=(found_by or {}).get(asset_id, [])))
    return hits
