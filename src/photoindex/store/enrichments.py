"""Enrichment results in the catalog: one `enrichment` row per (asset, enricher) with the model
revision that made it, and the indexes derived from it (regions, tags, quality columns, the text that
full-text search reads). Every write of one enricher's batch is one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update

from photoindex.store.catalog import Catalog, _chunks
from photoindex.store.models import Asset, AssetTag, AssetText, Enrichment, Region


@dataclass(frozen=True)
class RegionRow:
    kind: str  # object | text
    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    label: str | None = None
    text: str | None = None
    caption: str | None = None


@dataclass
class EnrichmentWrite:
    """What one enricher found for one asset. `regions` / `tags` None leaves those untouched; a list
    (also an empty one) replaces what this enricher wrote before."""

    asset_id: int
    status: str = "ok"  # ok | skipped | failed
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    regions: list[RegionRow] | None = None
    tags: list[tuple[str, float]] | None = None
    columns: dict[str, Any] = field(default_factory=dict)  # asset columns: quality, aesthetic, has_text


@dataclass(frozen=True)
class Target:
    """How an enricher's output lands: which region kind and tag source it owns."""

    enricher: str
    model: str
    revision: str
    region_kind: str | None = None
    tag_source: str | None = None


def pending(catalog: Catalog, collection_id: int, enricher: str, revision: str,
            asset_ids: Sequence[int] | None = None) -> list[tuple[int, str]]:
    """(asset id, sha256) of active assets with no result from this enricher at this revision."""
    have = select(Enrichment.asset_id).where(
        Enrichment.collection_id == collection_id, Enrichment.enricher == enricher, Enrichment.revision == revision)
    base = select(Asset.id, Asset.sha256).where(
        Asset.collection_id == collection_id, Asset.status == "active", Asset.id.not_in(have))
    out: list[tuple[int, str]] = []
    with catalog.session() as s:
        if asset_ids is None:
            out = [(int(i), h) for i, h in s.execute(base.order_by(Asset.id))]
        else:
            for chunk in _chunks(sorted(set(asset_ids))):
                out += [(int(i), h) for i, h in s.execute(base.where(Asset.id.in_(chunk)).order_by(Asset.id))]
    return out


def put(catalog: Catalog, collection_id: int, target: Target, writes: Sequence[EnrichmentWrite]) -> None:
    if not writes:
        return
    ids = [w.asset_id for w in writes]
    with catalog.session() as s:
        for chunk in _chunks(ids):
            s.execute(delete(Enrichment).where(Enrichment.asset_id.in_(chunk), Enrichment.enricher == target.enricher))
        s.execute(catalog._insert(Enrichment), [
            {"asset_id": w.asset_id, "enricher": target.enricher, "collection_id": collection_id,
             "model": target.model, "revision": target.revision, "status": w.status, "result": w.result,
             "error": w.error}
            for w in writes
        ])
        with_regions = [w for w in writes if w.regions is not None]
        if target.region_kind and with_regions:
            for chunk in _chunks([w.asset_id for w in with_regions]):
                s.execute(delete(Region).where(Region.asset_id.in_(chunk), Region.kind == target.region_kind))
            rows = [
                {"asset_id": w.asset_id, "collection_id": collection_id, "kind": r.kind, "label": r.label,
                 "text": r.text, "score": r.score, "x0": r.x0, "y0": r.y0, "x1": r.x1, "y1": r.y1,
                 "caption": r.caption, "model": target.model}
                for w in with_regions for r in w.regions or ()
            ]
            if rows:
                s.execute(catalog._insert(Region), rows)
        with_tags = [w for w in writes if w.tags is not None]
        if target.tag_source and with_tags:
            for chunk in _chunks([w.asset_id for w in with_tags]):
                s.execute(delete(AssetTag).where(AssetTag.asset_id.in_(chunk), AssetTag.source == target.tag_source))
            best: dict[tuple[int, str], float] = {}
            for w in with_tags:
                for tag, score in w.tags or ():
                    key = (w.asset_id, tag.strip().lower()[:128])
                    best[key] = max(best.get(key, 0.0), float(score))
            if best:
                # a tag another source already gave this asset keeps the other source's row
                stmt = catalog._insert(AssetTag).on_conflict_do_nothing(index_elements=["asset_id", "tag"])
                s.execute(stmt, [{"asset_id": a, "tag": t, "collection_id": collection_id, "score": sc,
                                  "source": target.tag_source} for (a, t), sc in best.items()])
        for w in writes:
            if w.columns:
                s.execute(update(Asset).where(Asset.id == w.asset_id).values(**w.columns))


def forget(catalog: Catalog, asset_ids: Sequence[int], enricher: str) -> None:
    """Drop an enricher's done-marks so it runs again for these assets (its inputs changed)."""
    with catalog.session() as s:
        for chunk in _chunks(list(asset_ids)):
            s.execute(delete(Enrichment).where(Enrichment.asset_id.in_(chunk), Enrichment.enricher == enricher))


def results(catalog: Catalog, asset_ids: Sequence[int], enricher: str) -> dict[int, dict[str, Any]]:
    """The stored `ok` results of one enricher."""
    out: dict[int, dict[str, Any]] = {}
    with catalog.session() as s:
        for chunk in _chunks(list(asset_ids)):
            rows = s.execute(select(Enrichment.asset_id, Enrichment.result).where(
                Enrichment.asset_id.in_(chunk), Enrichment.enricher == enricher, Enrichment.status == "ok"))
            out.update({int(a): r for a, r in rows if r is not None})
    return out


def tags_of(catalog: Catalog, asset_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    with catalog.session() as s:
        for chunk in _chunks(list(asset_ids)):
            rows = s.execute(select(AssetTag.asset_id, AssetTag.tag).where(AssetTag.asset_id.in_(chunk))
                             .order_by(AssetTag.asset_id, AssetTag.score.desc()))
            for a, tag in rows:
                out.setdefault(int(a), []).append(tag)
    return out


def detail(catalog: Catalog, asset_id: int) -> dict[str, Any]:
    """Everything the enrichers said about one asset, for the API and the UI."""
    with catalog.session() as s:
        regions = s.scalars(select(Region).where(Region.asset_id == asset_id).order_by(Region.kind, Region.score.desc())).all()
        tags = s.execute(select(AssetTag.tag, AssetTag.score, AssetTag.source).where(AssetTag.asset_id == asset_id)
                         .order_by(AssetTag.score.desc())).all()
        rows = s.execute(select(Enrichment.enricher, Enrichment.model, Enrichment.revision, Enrichment.status,
                                Enrichment.result, Enrichment.error).where(Enrichment.asset_id == asset_id)).all()
        text = s.get(AssetText, asset_id)
    return {
        "regions": [
            {"kind": r.kind, "label": r.label, "text": r.text, "score": r.score, "caption": r.caption,
             "model": r.model, "box": {"x0": r.x0, "y0": r.y0, "x1": r.x1, "y1": r.y1}}
            for r in regions
        ],
        "tags": [{"tag": t, "score": sc, "source": src} for t, sc, src in tags],
        "caption": text.caption if text is not None and text.caption else None,
        "ocr_text": text.ocr if text is not None and text.ocr else None,
        "enrichments": {
            name: {"model": model, "revision": rev, "status": status, "result": result, "error": error}
            for name, model, rev, status, result, error in rows
        },
    }
