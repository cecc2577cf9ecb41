"""Vectors for assets that have none yet (ingested before the model was installed, or after a model
change), computed from the 1024 px thumbnails, and the one place that hands vectors to the index."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from photoindex.cache import observe
from photoindex.errors import ErrorCode, ModelError, PhotoindexError
from photoindex.media.decode import decode_image
from photoindex.media.hashing import read_and_hash
from photoindex.media.thumbnails import thumbnail_path, write_thumbnails
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.ml.preprocess import fit_image
from photoindex.schemas import CollectionInfo
from photoindex.store.vectors import VectorRecord, VectorSpace, payload_for

if TYPE_CHECKING:
    from photoindex.ingest.stages import Progress
    from photoindex.runtime import Runtime


def sync_index(rt: Runtime, space: VectorSpace, vectors: dict[int, np.ndarray], touched: Sequence[int] = ()) -> None:
    """Tell the vector index about new vectors of one space (and, for backends with their own copy,
    about assets whose paths changed, since filters read paths from the payload)."""
    index = rt.index
    if not index.stores_vectors:
        index.upsert(space, [VectorRecord(a, v) for a, v in vectors.items()])
        return
    ids = set(vectors) | set(touched)
    if not ids:
        return
    assets = rt.catalog.get_assets(sorted(ids))
    records = []
    for asset_id in sorted(ids):
        vec = vectors.get(asset_id)
        if vec is None:
            vec = rt.catalog.get_vector(asset_id, space.model)
        if vec is not None and asset_id in assets:
            records.append(VectorRecord(asset_id, vec, payload_for(assets[asset_id])))
    index.upsert(space, records)


def embed_pending(rt: Runtime, coll: CollectionInfo, model: ImageTextEmbedder, progress: Progress) -> int:
    """Embed every active asset of the collection that has no vector from this model revision."""
    todo = rt.catalog.assets_needing_vectors(coll.id, model.name, model.revision)
    if not todo:
        return 0
    progress.phase("embedding", len(todo))
    done = _from_cache(rt, coll, model, todo)
    if done:
        progress.advance(done)
        todo = rt.catalog.assets_needing_vectors(coll.id, model.name, model.revision)
    if not todo:
        return done
    with ThreadPoolExecutor(max_workers=rt.settings.prepare_workers) as pool:  # Pillow decodes without the GIL
        for start in range(0, len(todo), model.batch_size):
            chunk = todo[start : start + model.batch_size]
            pixels = list(pool.map(lambda item: _model_input(rt, model, *item), chunk))
            ready = [(asset_id, px) for (asset_id, _), px in zip(chunk, pixels, strict=True) if px is not None]
            if ready:
                out = model.embed_images(np.stack([px for _, px in ready]))
                vectors = {asset_id: out[i] for i, (asset_id, _) in enumerate(ready)}
                hashes = dict(chunk)
                observe.vectors(rt.result_cache, model.name, model.revision,
                                {hashes[a]: v for a, v in vectors.items()})
                rt.catalog.put_vectors(coll.id, model.name, model.revision, vectors)
                sync_index(rt, rt.space(coll, model), vectors)
                done += len(ready)
            progress.advance(len(chunk))
    return done


def _from_cache(rt: Runtime, coll: CollectionInfo, model: ImageTextEmbedder, todo: list[tuple[int, str]]) -> int:
    """Vectors the result cache already holds for this model revision (a rebuilt catalog, a model
    switched back): stored without running the model."""
    if "embedding" not in rt.result_cache.kinds():
        return 0
    by_sha = {h: a for a, h in todo}
    rows = rt.result_cache.latest("embedding", model=model.name, revision=model.revision, keys=by_sha)
    vectors = {by_sha[h]: row.vector for h, row in rows.items() if row.vector is not None}
    if vectors:
        rt.catalog.put_vectors(coll.id, model.name, model.revision, vectors)
        sync_index(rt, rt.space(coll, model), vectors)
    return len(vectors)


def add_model(rt: Runtime, coll: CollectionInfo, name: str, progress: Progress) -> int:
    """Give a collection the vectors of one more image-text model (kept beside the others; search picks
    one with `model`). Computes only what is missing for it; returns how many vectors were stored."""
    model, notice = rt.try_embedder(name)
    if model is None:
        raise ModelError(notice or f"model {name} is not available", code=ErrorCode.MODEL_NOT_FOUND)
    if name != rt.model_name(coll):
        extra = list(coll.options.get("extra_models", []))
        if name not in extra:
            coll = rt.catalog.set_collection_options(coll.name, extra_models=[*extra, name])
    observe.collection(rt.result_cache, coll, coll.model, coll.vector_size)
    return embed_pending(rt, coll, model, progress)


def _model_input(rt: Runtime, model: ImageTextEmbedder, asset_id: int, sha256: str) -> np.ndarray | None:
    image = load_preview(rt, asset_id, sha256)
    return None if image is None else fit_image(image, model.preprocess)


def load_preview(rt: Runtime, asset_id: int, sha256: str) -> Image.Image | None:
    """The asset's largest thumbnail as RGB, for models that run after ingest. Without a thumbnail (data
    directory moved or cleaned) the original is decoded again and the thumbnails are repaired."""
    settings = rt.settings
    thumb = thumbnail_path(settings.thumbnails_dir, sha256, max(settings.thumbnail_sizes))
    try:
        with Image.open(thumb) as img:
            return img.convert("RGB")
    except OSError:
        pass
    for f in rt.catalog.get_asset(asset_id).files:
        if f.missing:
            continue
        try:
            data = read_and_hash(f.path, max_bytes=settings.max_file_bytes)
            if data.sha256 != sha256:
                continue
            decoded = decode_image(data.data, path=f.path, target=max(settings.thumbnail_sizes),
                                   max_pixels=settings.max_image_pixels,
                                   raw_preview_min=settings.raw_preview_min_size)
            write_thumbnails(decoded.image, sha256, settings.thumbnails_dir, settings.thumbnail_sizes,
                             settings.thumbnail_quality)
            return decoded.image.convert("RGB")
        except PhotoindexError:
            continue
    return None
