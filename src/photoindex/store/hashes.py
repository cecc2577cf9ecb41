"""Read and write the `asset_hash` table in batches: perceptual hashes with their variants, pixel hashes.

The perceptual hash is an unsigned 64-bit value; SQL BIGINT is signed, so it is stored with the same
bits reinterpreted (`to_signed` / `to_unsigned`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select, update

from photoindex.media.phash import to_signed, to_unsigned, variants_from_bytes, variants_to_bytes
from photoindex.store.catalog import Catalog, _chunks
from photoindex.store.hash_models import PHASH_ALGO, AssetHash
from photoindex.store.models import Asset, utcnow


@dataclass(frozen=True)
class HashTable:
    """The hashes of a set of assets, as arrays aligned on `ids`."""

    ids: np.ndarray  # int64 asset ids, ascending
    phash: np.ndarray  # uint64 (n,)
    variants: np.ndarray  # uint64 (n, 8)
    pixel_sha256: dict[int, str]  # only assets whose pixel hash has been computed

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def missing_phashes(catalog: Catalog, collection_id: int) -> list[tuple[int, str]]:
    """(asset id, sha256) of the collection's active assets without a hash of the current recipe."""
    have = select(AssetHash.asset_id).where(AssetHash.collection_id == collection_id, AssetHash.algo == PHASH_ALGO)
    with catalog.session() as s:
        rows = s.execute(select(Asset.id, Asset.sha256).where(
            Asset.collection_id == collection_id, Asset.status == "active", Asset.id.not_in(have)
        ).order_by(Asset.id))
        return [(int(i), str(h)) for i, h in rows]


def put_phashes(catalog: Catalog, collection_id: int, variants_by_asset: Mapping[int, np.ndarray]) -> int:
    """Store perceptual hashes (8 variants per asset; [0] is the hash). Idempotent upsert; a pixel
    hash already stored is kept (it does not depend on the perceptual recipe)."""
    if not variants_by_asset:
        return 0
    now = utcnow()
    rows = []
    for asset_id, variants in variants_by_asset.items():
        v = np.asarray(variants, dtype=np.uint64).reshape(-1)
        rows.append({"asset_id": int(asset_id), "collection_id": collection_id, "phash": int(to_signed(v[0])),
                     "phash_variants": variants_to_bytes(v), "algo": PHASH_ALGO, "computed_at": now})
    with catalog.session() as s:
        for chunk in _chunks(rows):
            stmt = catalog._insert(AssetHash)
            s.execute(stmt.on_conflict_do_update(
                index_elements=["asset_id"],
                set_={k: stmt.excluded[k] for k in ("phash", "phash_variants", "algo", "computed_at")},
            ), list(chunk))
    return len(rows)


def put_pixel_hashes(catalog: Catalog, by_asset: Mapping[int, str]) -> None:
    """Record pixel hashes of assets that already have a row (pixel hashes are only computed for
    assets whose perceptual hash is known)."""
    with catalog.session() as s:
        for asset_id, digest in by_asset.items():
            s.execute(update(AssetHash).where(AssetHash.asset_id == int(asset_id)).values(pixel_sha256=digest))


def load_hashes(catalog: Catalog, collection_id: int, asset_ids: Sequence[int] | None = None) -> HashTable:
    """The current-recipe hashes of a collection (or of some of its assets)."""
    query = select(AssetHash.asset_id, AssetHash.phash, AssetHash.phash_variants, AssetHash.pixel_sha256).where(
        AssetHash.collection_id == collection_id, AssetHash.algo == PHASH_ALGO)
    with catalog.session() as s:
        if asset_ids is None:
            rows = s.execute(query.order_by(AssetHash.asset_id)).all()
        else:
            rows = []
            for chunk in _chunks(sorted({int(a) for a in asset_ids})):
                rows.extend(s.execute(query.where(AssetHash.asset_id.in_(chunk))).all())
            rows.sort(key=lambda r: r[0])
    n = len(rows)
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    phash = to_unsigned(np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)).copy()
    variants = (np.stack([variants_from_bytes(r[2]) for r in rows]) if n
                else np.empty((0, 8), dtype=np.uint64))
    pixels = {int(r[0]): str(r[3]) for r in rows if r[3]}
    return HashTable(ids, phash, variants, pixels)


__all__ = ["HashTable", "load_hashes", "missing_phashes", "put_phashes", "put_pixel_hashes"]
