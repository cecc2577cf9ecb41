"""Copying assets of one collection into another: the rows a model made are copied, never recomputed.

Assets are per collection (content unique within one), so a collection made from a selection gets
its own asset rows (new ids, same content hash and metadata), file rows for the same paths (a path
may belong to several collections), the vectors (through `Catalog.put_vectors`, which keeps the
space counters), and the enrichment rows with the tags, text and regions derived from them.
Idempotent: copying an asset the target already has adds only the file rows it lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select

from photoindex.store.archives import insert_for
from photoindex.store.catalog import Catalog, _chunks
from photoindex.store.models import Asset, AssetTag, AssetText, Embedding, Enrichment, File, Region

_ACTIVE = "active"
_DERIVED = (Enrichment, AssetTag, AssetText, Region)


def _columns(table: Any, skip: set[str]) -> list[Any]:
    return [c for c in table.__table__.columns if c.name not in skip and not c.computed]


def active_assets(catalog: Catalog, collection_id: int, asset_ids: Sequence[int]) -> set[int]:
    """Those of `asset_ids` that are active assets of the collection."""
    out: set[int] = set()
    with catalog.session() as s:
        for chunk in _chunks(sorted({int(a) for a in asset_ids})):
            out.update(int(a) for a in s.scalars(select(Asset.id).where(
                Asset.collection_id == collection_id, Asset.status == _ACTIVE, Asset.id.in_(chunk))))
    return out


def copy_assets(catalog: Catalog, src_id: int, dst_id: int, asset_ids: Sequence[int]) -> dict[str, int]:
    """Copy these active assets of collection `src_id` into `dst_id`. Returns counts of what the
    target received: assets, files, vectors, enrichment_rows."""
    counts = {"assets": 0, "files": 0, "vectors": 0, "enrichment_rows": 0}
    for chunk in _chunks(sorted({int(a) for a in asset_ids})):
        mapping = _copy_chunk(catalog, src_id, dst_id, chunk, counts)
        counts["vectors"] += _copy_vectors(catalog, dst_id, mapping)
    return counts


def _copy_chunk(catalog: Catalog, src_id: int, dst_id: int, chunk: Sequence[int],
                counts: dict[str, int]) -> dict[int, int]:
    """Assets, files and derived rows of one chunk, in one transaction; returns {old id: new id} of
    the assets created here (the ones the target had before keep their own vectors and enrichment)."""
    asset_cols = _columns(Asset, {"id", "collection_id"})
    with catalog.session() as s:
        rows = s.execute(select(Asset.id, *asset_cols).where(
            Asset.collection_id == src_id, Asset.status == _ACTIVE, Asset.id.in_(chunk))).all()
        if not rows:
            return {}
        by_sha = {r[asset_cols.index(Asset.__table__.c.sha256) + 1]: int(r[0]) for r in rows}
        existing = set(s.scalars(select(Asset.sha256).where(Asset.collection_id == dst_id,
                                                            Asset.sha256.in_(list(by_sha)))))
        fresh = [r for r in rows if r[asset_cols.index(Asset.__table__.c.sha256) + 1] not in existing]
        if fresh:
            s.execute(insert_for(catalog, Asset), [
                {"collection_id": dst_id, **{c.name: v for c, v in zip(asset_cols, r[1:], strict=True)}} for r in fresh])
        new_ids = dict(s.execute(select(Asset.sha256, Asset.id).where(Asset.collection_id == dst_id,
                                                                      Asset.sha256.in_(list(by_sha)))).all())
        all_map = {old: int(new_ids[sha]) for sha, old in by_sha.items()}
        fresh_map = {old: all_map[old] for sha, old in by_sha.items() if sha not in existing}
        counts["assets"] += len(fresh)
        counts["files"] += _copy_files(catalog, s, dst_id, all_map)
        counts["enrichment_rows"] += _copy_derived(catalog, s, dst_id, fresh_map)
    return fresh_map


def _copy_files(catalog: Catalog, s: Any, dst_id: int, mapping: dict[int, int]) -> int:
    cols = _columns(File, {"id", "collection_id", "asset_id"})
    rows = s.execute(select(File.asset_id, *cols).where(File.asset_id.in_(list(mapping)),
                                                        File.missing.is_(False))).all()
    if not rows:
        return 0
    values = [{"collection_id": dst_id, "asset_id": mapping[int(r[0])],
               **{c.name: v for c, v in zip(cols, r[1:], strict=True)}} for r in rows]
    taken = set(s.scalars(select(File.path).where(File.collection_id == dst_id,
                                                  File.path.in_([v["path"] for v in values]))))
    values = [v for v in values if v["path"] not in taken]  # a path the target has keeps its row
    if values:
        s.execute(insert_for(catalog, File), values)
    return len(values)


def _copy_derived(catalog: Catalog, s: Any, dst_id: int, mapping: dict[int, int]) -> int:
    """Enrichment results and the tags, text and regions derived from them, for new assets only."""
    total = 0
    for table in _DERIVED:
        cols = _columns(table, {"collection_id", "asset_id", "id"})
        rows = s.execute(select(table.asset_id, *cols).where(table.asset_id.in_(list(mapping)))).all()
        if rows:
            s.execute(insert_for(catalog, table), [
                {"collection_id": dst_id, "asset_id": mapping[int(r[0])],
                 **{c.name: v for c, v in zip(cols, r[1:], strict=True)}} for r in rows])
            total += len(rows)
    return total


def _copy_vectors(catalog: Catalog, dst_id: int, mapping: dict[int, int]) -> int:
    if not mapping:
        return 0
    groups: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    with catalog.session() as s:
        for old, model, revision, blob in s.execute(select(Embedding.asset_id, Embedding.model, Embedding.revision,
                                                           Embedding.vector).where(Embedding.asset_id.in_(list(mapping)))):
            groups.setdefault((model, revision), {})[mapping[int(old)]] = np.frombuffer(blob, dtype="<f4")
    for (model, revision), vectors in groups.items():
        catalog.put_vectors(dst_id, model, revision, vectors)
    return sum(len(v) for v in groups.values())
