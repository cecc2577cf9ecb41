"""Clusters of a collection's image embeddings, named from what their photos show, with a 2-D map;
and saving a selection or a cluster as a new collection.

Method: the vectors (L2-normalized, so Euclidean k-means on them is cosine k-means) are projected on
their first principal components — 64 for clustering, the first 2 for the map — and grouped with
mini-batch k-means, k = round(sqrt(n / 2)) unless given. Why k-means rather than HDBSCAN: its cost is
linear in n and predictable (100k vectors in seconds), every photo lands in a cluster (HDBSCAN leaves
a share as noise, which a map view then has to explain), and k is a knob a person understands. The
principal axes are fitted on at most 20k vectors: the covariance of a sample of that size is as good
for 64 axes, and it keeps the fit in milliseconds. Seeded: the same vectors give the same clusters, so
"save cluster 3" means what the person saw.

Names: the tags most typical of a cluster (`asset_tag`: frequent in the cluster, rarer outside), else
the same over caption words (`asset_text`), else the dominant camera and years, else "cluster N".
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy import select

from photoindex.errors import CatalogError, ErrorCode, PhotoindexError
from photoindex.runtime import Runtime
from photoindex.schemas import CollectionInfo
from photoindex.store.archives import ACTIVE
from photoindex.store.catalog import _chunks
from photoindex.store.collection_copy import active_assets, copy_assets
from photoindex.store.models import Asset, AssetTag, AssetText
from photoindex.store.vectors import VectorRecord, VectorSpace, payload_for

CLUSTER_DIMS = 64
PCA_SAMPLE = 20_000
MAX_K = 1000
NAME_TERMS = 3
NO_SUCH_CLUSTER = "no_such_cluster"
MIN_SHARE = 0.25  # a term names a cluster only when at least this share of its photos has it
_WORD = re.compile(r"[a-z][a-z'-]{2,}")
_STOPWORDS = frozenset(
    ["a", "an", "the", "and", "or", "of", "in", "on", "at", "to", "with", "without", "for", "from", "by", "over", "under", "near", "into", "onto", "is", "are", "was", "were", "be", "been", "this", "that", "these", "those", "there", "here", "it", "its", "his", "her", "their", "our", "your", "my", "some", "many", "several", "few", "two", "three", "four", "photo", "photograph", "picture", "image", "view", "close", "up", "closeup", "shot", "front", "back", "side", "top", "bottom", "left", "right", "very"])


class Cluster(BaseModel):
    id: int
    name: str
    label_source: str = Field(description="tags | captions | exif | none: what the name comes from")
    size: int
    terms: list[str] = Field(default_factory=list, description="the words the name is made of")
    x: float = Field(description="centre on the 2-D map")
    y: float
    examples: list[int] = Field(default_factory=list, description="asset ids nearest the centre (up to 8)")
    asset_ids: list[int] | None = None


class MapPoint(BaseModel):
    asset_id: int
    cluster: int
    x: float
    y: float


class ClusterReport(BaseModel):
    collection: str
    model: str | None
    algorithm: str = "pca64+minibatch-kmeans"
    k: int
    n: int = Field(description="photos clustered (active assets with a vector)")
    seed: int = 0
    explained_variance_2d: float = Field(default=0.0, description="share of the variance the map's two axes show")
    elapsed_s: float
    timings: dict[str, float] = Field(default_factory=dict)
    clusters: list[Cluster]
    points: list[MapPoint] | None = None


class SavedCollection(BaseModel):
    collection: str
    source: str
    assets: int = Field(description="assets in the new collection")
    files: int
    vectors: int
    enrichment_rows: int


def default_k(n: int) -> int:
    return max(1, min(n, round(math.sqrt(n / 2))))


# -- the math ---------------------------------------------------------------------------------------
def principal_axes(x: np.ndarray, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, axes [d, dims], variance share per axis) of the rows of x, fitted on a sample."""
    rng = np.random.default_rng(seed)
    sample = x if x.shape[0] <= PCA_SAMPLE else x[np.sort(rng.choice(x.shape[0], PCA_SAMPLE, replace=False))]
    mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
    centred = sample - mean
    cov = (centred.T @ centred).astype(np.float64)
    values, vectors = np.linalg.eigh(cov)  # ascending
    order = np.argsort(values)[::-1][: min(dims, x.shape[1])]
    total = float(values.sum()) or 1.0
    return mean, vectors[:, order].astype(np.float32), (values[order] / total).astype(np.float32)


def cluster_vectors(x: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """(labels [n] with 0 the largest cluster, 2-D map points [n, 2], variance share of the 2 axes)."""
    from sklearn.cluster import MiniBatchKMeans  # type: ignore[import-untyped]  # heavy: imported when used

    mean, axes, share = principal_axes(x, CLUSTER_DIMS, seed)
    reduced = x @ axes - mean @ axes  # centred projection without a centred copy of x
    if k >= x.shape[0]:
        labels = np.arange(x.shape[0])
    else:
        # one initialisation: on 100k photos three cost twice the time for no better inertia (measured)
        km = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=1, batch_size=4096, max_iter=100)
        labels = km.fit_predict(reduced)
    return _relabel_by_size(labels), reduced[:, :2].copy(), float(share[:2].sum())


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster 0 is the largest (ties: the one met first), and ids run without gaps."""
    uniq, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = sorted(range(uniq.size), key=lambda i: (-counts[i], first[i]))
    mapping = np.empty(int(uniq.max()) + 1, dtype=np.int64)
    mapping[uniq[order]] = np.arange(uniq.size)
    return mapping[labels]


# -- naming -----------------------------------------------------------------------------------------
def typical_terms(members: Mapping[int, Sequence[int]], terms: Mapping[int, Iterable[str]], n_total: int,
                  limit: int = NAME_TERMS) -> dict[int, list[str]]:
    """Per cluster, the terms that are frequent in it (≥ MIN_SHARE of its photos) and most typical of
    it: share in the cluster times the log of how much more common it is there than overall."""
    overall: Counter[str] = Counter()
    per_asset = {a: set(t) for a, t in terms.items()}
    for t in per_asset.values():
        overall.update(t)
    out: dict[int, list[str]] = {}
    for cid, assets in members.items():
        inside: Counter[str] = Counter()
        for a in assets:
            inside.update(per_asset.get(a, ()))
        size = max(1, len(assets))
        scored = []
        for term, c in inside.items():
            share = c / size
            if share < MIN_SHARE:
                continue
            lift = share / (overall[term] / max(1, n_total))
            scored.append((share * math.log1p(lift), c, term))
        out[cid] = [t for _, _, t in sorted(scored, key=lambda s: (-s[0], -s[1], s[2]))[:limit]]
    return out


def _tags(rt: Runtime, asset_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    with rt.catalog.session() as s:
        for chunk in _chunks(list(asset_ids)):
            for aid, tag in s.execute(select(AssetTag.asset_id, AssetTag.tag).where(AssetTag.asset_id.in_(chunk))):
                out.setdefault(int(aid), []).append(tag)
    return out


def _caption_words(rt: Runtime, asset_ids: Sequence[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    with rt.catalog.session() as s:
        for chunk in _chunks(list(asset_ids)):
            for aid, caption in s.execute(select(AssetText.asset_id, AssetText.caption)
                                          .where(AssetText.asset_id.in_(chunk))):
                words = [w for w in _WORD.findall((caption or "").lower()) if w not in _STOPWORDS]
                if words:
                    out[int(aid)] = words
    return out


def _exif(rt: Runtime, asset_ids: Sequence[int]) -> dict[int, tuple[str | None, int | None]]:
    out: dict[int, tuple[str | None, int | None]] = {}
    with rt.catalog.session() as s:
        for chunk in _chunks(list(asset_ids)):
            for aid, camera, taken in s.execute(select(Asset.id, Asset.camera, Asset.taken_at)
                                                .where(Asset.id.in_(chunk))):
                out[int(aid)] = (camera, taken.year if taken else None)
    return out


def _exif_name(assets: Sequence[int], exif: Mapping[int, tuple[str | None, int | None]]) -> list[str]:
    cameras: Counter[str] = Counter(cam for a in assets if (cam := exif.get(a, (None, None))[0]))
    years = sorted({y for a in assets if (y := exif.get(a, (None, None))[1]) is not None})
    parts = []
    if cameras:
        camera, c = cameras.most_common(1)[0]
        if c * 2 >= len(assets):
            parts.append(camera)
    if years and len(years) * 2 <= len(assets) + 1:
        parts.append(str(years[0]) if len(years) == 1 else f"{years[0]}–{years[-1]}")
    return parts


def name_clusters(rt: Runtime, members: Mapping[int, Sequence[int]], n_total: int) -> dict[int, tuple[str, str, list[str]]]:
    """cluster id -> (name, label source, terms); names made unique with a number."""
    ids = [a for assets in members.values() for a in assets]
    by_tags = typical_terms(members, _tags(rt, ids), n_total)
    unnamed = {c: m for c, m in members.items() if not by_tags.get(c)}
    by_words = typical_terms(unnamed, _caption_words(rt, [a for m in unnamed.values() for a in m]), n_total)
    exif = _exif(rt, [a for c, m in unnamed.items() if not by_words.get(c) for a in m])
    out: dict[int, tuple[str, str, list[str]]] = {}
    seen: Counter[str] = Counter()
    for cid in sorted(members):
        if by_tags.get(cid):
            terms, source = by_tags[cid], "tags"
        elif by_words.get(cid):
            terms, source = by_words[cid], "captions"
        else:
            terms = _exif_name(members[cid], exif)
            source = "exif" if terms else "none"
        name = " · ".join(terms) if terms else f"cluster {cid}"
        seen[name] += 1
        out[cid] = (name if seen[name] == 1 else f"{name} ({seen[name]})", source, list(terms))
    return out


# -- the service ------------------------------------------------------------------------------------
def _vectors(rt: Runtime, coll: CollectionInfo) -> tuple[str | None, np.ndarray, np.ndarray]:
    """(model, asset ids sorted, vectors) of the collection's active assets."""
    model = coll.model
    if model is None:
        return None, np.empty(0, np.int64), np.empty((0, 0), np.float32)
    chunk = rt.catalog.load_vectors(coll.id, model)
    with rt.catalog.session() as s:
        active = np.asarray(s.scalars(select(Asset.id).where(Asset.collection_id == coll.id, Asset.status == ACTIVE)
                                      ).all(), dtype=np.int64)
    keep = np.isin(chunk.ids, active)
    ids, vectors = chunk.ids[keep], chunk.vectors[keep] if chunk.ids.size else chunk.vectors
    order = np.argsort(ids, kind="stable")
    x = np.ascontiguousarray(vectors[order], dtype=np.float32) if ids.size else vectors
    if x.size:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = x / np.where(norms == 0, 1, norms)
    return model, ids[order], x


def cluster_collection(rt: Runtime, collection: str | None = None, *, k: int | None = None, seed: int = 0,
                       points: bool = True, members: bool = False) -> ClusterReport:
    """Cluster the collection's photos; `points` adds each photo's map position, `members` each
    cluster's asset ids."""
    if k is not None and not 1 <= k <= MAX_K:
        raise PhotoindexError(f"k must be between 1 and {MAX_K}", code=ErrorCode.INVALID_REQUEST)
    started = time.perf_counter()
    coll = rt.collection(collection)
    model, ids, x = _vectors(rt, coll)
    loaded = time.perf_counter()
    if ids.size == 0:
        return ClusterReport(collection=coll.name, model=model, k=0, n=0, seed=seed, clusters=[], points=[] if points else None,
                             elapsed_s=round(loaded - started, 3), timings={"load": round(loaded - started, 3)})
    kk = min(k or default_k(int(ids.size)), int(ids.size))
    labels, xy, share = cluster_vectors(x, kk, seed)
    clustered = time.perf_counter()
    groups = {c: ids[labels == c].tolist() for c in range(int(labels.max()) + 1)}
    names = name_clusters(rt, groups, int(ids.size))
    named = time.perf_counter()
    clusters = []
    for cid, assets in groups.items():
        mask = labels == cid
        cx, cy = xy[mask].mean(axis=0)
        inside = x[mask]  # the photos nearest the centre in the full space: the cluster's typical ones
        nearest = np.argsort(np.linalg.norm(inside - inside.mean(axis=0), axis=1), kind="stable")[:8]
        name, source, terms = names[cid]
        clusters.append(Cluster(id=cid, name=name, label_source=source, size=len(assets), terms=terms,
                                x=round(float(cx), 5), y=round(float(cy), 5),
                                examples=[int(ids[mask][i]) for i in nearest], asset_ids=assets if members else None))
    pts = ([MapPoint(asset_id=int(a), cluster=int(c), x=round(float(p[0]), 5), y=round(float(p[1]), 5))
            for a, c, p in zip(ids, labels, xy, strict=True)] if points else None)
    done = time.perf_counter()
    return ClusterReport(collection=coll.name, model=model, k=len(clusters), n=int(ids.size), seed=seed,
                         explained_variance_2d=round(share, 4), elapsed_s=round(done - started, 3),
                         timings={"load": round(loaded - started, 3), "cluster": round(clustered - loaded, 3),
                                  "name": round(named - clustered, 3), "output": round(done - named, 3)},
                         clusters=clusters, points=pts)


def cluster_members(rt: Runtime, collection: str | None, cluster_id: int, *, k: int | None = None,
                    seed: int = 0) -> list[int]:
    report = cluster_collection(rt, collection, k=k, seed=seed, points=False, members=True)
    for c in report.clusters:
        if c.id == cluster_id:
            return c.asset_ids or []
    raise PhotoindexError(f"no cluster {cluster_id} (the collection has {report.k} clusters at this k)",
                          code=ErrorCode.INVALID_REQUEST, details={"k": report.k, "reason": NO_SUCH_CLUSTER},
                          hint="list them with `photoindex curation clusters` using the same --k")


def save_collection(rt: Runtime, name: str, asset_ids: Sequence[int], *, source: str | None = None) -> SavedCollection:
    """A new collection holding these assets of `source`: the asset, file, vector and enrichment rows
    are copied (no model runs again; thumbnails are shared by content). Archived assets are left out."""
    src = rt.collection(source)
    if not asset_ids:
        raise PhotoindexError("no photos selected", code=ErrorCode.INVALID_REQUEST,
                              hint="give asset ids, or a cluster id")
    unknown = sorted({int(a) for a in asset_ids} - active_assets(rt.catalog, src.id, asset_ids))
    if unknown:
        raise CatalogError(f"no photo {unknown[0]} in collection {src.name!r} (or it is archived)",
                           code=ErrorCode.ASSET_NOT_FOUND, details={"asset_ids": unknown[:50]})
    new = rt.catalog.create_collection(name, vector_size=src.vector_size, distance=src.distance, model=src.model)
    counts = copy_assets(rt.catalog, src.id, new.id, asset_ids)
    _index_new(rt, rt.catalog.get_collection(name))
    return SavedCollection(collection=name, source=src.name, **counts)


def _index_new(rt: Runtime, coll: CollectionInfo) -> None:
    """Backends with their own copy (Qdrant) get the new collection's vectors; the exact index loads
    them from the catalog on first use."""
    if not rt.index.stores_vectors or coll.model is None or coll.vector_size is None:
        return
    chunk = rt.catalog.load_vectors(coll.id, coll.model)
    if not chunk.ids.size:
        return
    space = VectorSpace(coll.id, coll.name, coll.model, coll.vector_size)
    assets = rt.catalog.get_assets(chunk.ids.tolist())
    rt.index.upsert(space, [VectorRecord(int(a), v, payload_for(assets[int(a)]))
                            for a, v in zip(chunk.ids, chunk.vectors, strict=True) if int(a) in assets])
