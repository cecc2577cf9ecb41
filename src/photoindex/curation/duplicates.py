"""Tiered duplicate detection: which files show the same picture, how sure we are, and which to keep.

Tiers, strongest first; a linked pair belongs to the strongest tier that explains it:

* `exact` — one asset (SHA-256) at several paths. File level: the extra copies can go whatever else
  is true of the picture (a burst frame stays a burst frame; its byte copies are still copies).
* `pixels` — different files whose decoded pixels are identical (a metadata-only change). Candidates
  are assets with equal size and perceptual distance 0; their originals are decoded to confirm.
* `perceptual` — the 64-bit DCT hash of one, under some rotation or mirror, is within
  `phash_max_distance` bits of the other's (re-encoded, resized, rotated, mirrored copies).
* `near` — image embeddings with cosine >= `near_duplicate_threshold` (crops, small edits).

Linked assets are grouped with union-find, strongest links first (Kruskal): a group's tier is that of
its weakest link. Bursts (see `bursts.py`) are stacks, not duplicates: a link between two different
frames of one burst is never made, directly or through other members (pixel identity aside, which two
different shots cannot have), and a burst frame is never proposed for archiving, in any group.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from photoindex.config import Settings
from photoindex.curation.bursts import BurstStack, burst_stacks, shot_index
from photoindex.curation.hashing import compute_phashes, compute_pixel_hashes
from photoindex.curation.inventory import AssetRow, load_inventory
from photoindex.curation.keep import keep_best
from photoindex.curation.models import (
    ALL_TIERS,
    DuplicateGroup,
    DuplicateParams,
    DuplicateProgress,
    DuplicateReport,
    GroupMember,
    PairEvidence,
    TierCount,
)
from photoindex.curation.neighbors import UnionFind, cosine_pairs, hamming_pairs
from photoindex.ingest.stages import NullProgress, Progress
from photoindex.media.phash import TRANSFORMS
from photoindex.runtime import Runtime
from photoindex.store.catalog import Catalog
from photoindex.store.hashes import HashTable, load_hashes, missing_phashes

TIER_RANK = {"pixels": 0, "perceptual": 1, "near": 2}
SLOW_DISTANCE = 12  # the multi-index search probes every value within distance // 4 bits of each chunk
BURST_NOTE = "burst frame: part of a burst stack, which a person reviews"


@dataclass(frozen=True)
class Options:
    tiers: frozenset[str]
    near_threshold: float
    phash_max_distance: int
    burst_window_s: float

    @classmethod
    def resolve(cls, settings: Settings, params: DuplicateParams | None) -> Options:
        p = params or DuplicateParams()
        return cls(
            tiers=frozenset(p.tiers or ALL_TIERS),
            near_threshold=settings.near_duplicate_threshold if p.near_threshold is None else p.near_threshold,
            phash_max_distance=settings.phash_max_distance if p.phash_max_distance is None else p.phash_max_distance,
            burst_window_s=settings.burst_window_s if p.burst_window_s is None else p.burst_window_s,
        )


@dataclass(frozen=True)
class Link:
    """Evidence that assets a < b show the same picture."""

    a: int
    b: int
    tier: str
    distance: int | None = None
    transform: str | None = None
    cosine: float | None = None
    pixel: str | None = None

    @property
    def order(self) -> tuple[int, int, float]:
        return (TIER_RANK[self.tier], self.distance or 0, -(self.cosine or 0.0))

    def evidence(self) -> PairEvidence:
        return PairEvidence(a=self.a, b=self.b, tier=self.tier, distance=self.distance,  # type: ignore[arg-type]
                            transform=self.transform, cosine=None if self.cosine is None else round(self.cosine, 4),
                            pixel_sha256=self.pixel)


@dataclass
class Detection:
    """A finished search: the report, and what it was built from (for tests and tools)."""

    report: DuplicateReport
    links: list[Link] = field(default_factory=list)  # the strongest link of every linked pair
    held_apart: list[Link] = field(default_factory=list)  # links refused: they would join burst frames
    stacks: list[BurstStack] = field(default_factory=list)


class _Phases:
    """Progress phases with their timings."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}
        self._name: str | None = None
        self._t = time.perf_counter()

    def start(self, name: str, total: int | None = None) -> None:
        self.stop()
        self._name, self._t = name, time.perf_counter()
        self.progress.phase(name, total)

    def stop(self) -> None:
        if self._name is not None:
            self.timings[self._name] = round(time.perf_counter() - self._t, 3)
            self._name = None


# -- links ----------------------------------------------------------------------------------------

def _strongest(links: Iterable[Link]) -> dict[tuple[int, int], Link]:
    best: dict[tuple[int, int], Link] = {}
    for link in links:
        key = (link.a, link.b)
        if key not in best or link.order < best[key].order:
            best[key] = link
    return best


def pixel_candidates(table: HashTable, by_id: dict[int, AssetRow]) -> list[list[int]]:
    """Sets of assets that could be pixel-identical: equal size and equal perceptual hash."""
    buckets: dict[tuple[int, int, int], list[int]] = defaultdict(list)
    for asset_id, h in zip(table.ids.tolist(), table.phash.tolist(), strict=True):
        a = by_id[asset_id]
        buckets[(a.width, a.height, h)].append(asset_id)
    return [ids for ids in buckets.values() if len(ids) > 1]


def pixel_links(candidates: Sequence[Sequence[int]], pixel_sha256: dict[int, str]) -> list[Link]:
    """Every pair of candidates with equal pixel hashes."""
    links = []
    for ids in candidates:
        by_pixels: dict[str, list[int]] = defaultdict(list)
        for i in ids:
            if i in pixel_sha256:
                by_pixels[pixel_sha256[i]].append(i)
        for digest, same in by_pixels.items():
            same.sort()
            links += [Link(a, b, "pixels", distance=0, pixel=digest) for n, a in enumerate(same) for b in same[n + 1:]]
    return links


def perceptual_links(table: HashTable, max_distance: int) -> list[Link]:
    i, j, dist, t = hamming_pairs(table.phash, table.variants, max_distance)
    ids = table.ids  # ascending, so i < j means ids[i] < ids[j]
    return [Link(int(ids[a]), int(ids[b]), "perceptual", distance=int(d), transform=TRANSFORMS[int(tt)])
            for a, b, d, tt in zip(i.tolist(), j.tolist(), dist.tolist(), t.tolist(), strict=True)]


def near_links(catalog: Catalog, collection_id: int, model: str, by_id: dict[int, AssetRow],
               threshold: float) -> tuple[list[Link], int]:
    """Pairs whose embeddings (of `model`) have cosine >= threshold; also how many assets had a vector."""
    chunk = catalog.load_vectors(collection_id, model)
    keep = np.fromiter((int(a) in by_id for a in chunk.ids), dtype=bool, count=chunk.ids.shape[0])
    ids, x = chunk.ids[keep], chunk.vectors[keep] if chunk.vectors.size else chunk.vectors
    if ids.shape[0] < 2:
        return [], int(ids.shape[0])
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    i, j, cos = cosine_pairs(x.astype(np.float32), threshold)
    a, b = np.minimum(ids[i], ids[j]), np.maximum(ids[i], ids[j])
    links = [Link(int(p), int(q), "near", cosine=float(c)) for p, q, c in zip(a.tolist(), b.tolist(), cos.tolist(),
                                                                                 strict=True)]
    return links, int(ids.shape[0])


# -- grouping -------------------------------------------------------------------------------------

Shots = dict[int, dict[int, set[datetime]]]  # per union-find root: burst stack -> capture times inside


def _conflict(x: dict[int, set[datetime]], y: dict[int, set[datetime]]) -> bool:
    """Joining would put different frames of one burst together (neither side's times contain the other's)."""
    return any(not (x[s] <= y[s] or y[s] <= x[s]) for s in x.keys() & y.keys())


def group_links(links: Sequence[Link], shots: dict[int, tuple[int, datetime]]
                ) -> tuple[list[tuple[list[int], list[Link]]], list[Link]]:
    """Union-find over the links, strongest first: (members, the links that joined them) per group,
    and the links held apart because they would join different frames of a burst."""
    nodes = sorted({n for link in links for n in (link.a, link.b)})
    at = {n: i for i, n in enumerate(nodes)}
    uf = UnionFind(len(nodes))
    frames: Shots = {i: ({shots[n][0]: {shots[n][1]}} if n in shots else {}) for i, n in enumerate(nodes)}
    joined: dict[int, list[Link]] = {i: [] for i in range(len(nodes))}
    held: list[Link] = []
    for link in sorted(links, key=lambda l: (l.order, l.a, l.b)):
        ra, rb = uf.find(at[link.a]), uf.find(at[link.b])
        if ra == rb:
            continue
        if link.tier != "pixels" and _conflict(frames[ra], frames[rb]):
            held.append(link)
            continue
        root = uf.union(ra, rb)
        other = rb if root == ra else ra
        for stack, times in frames.pop(other).items():
            frames[root].setdefault(stack, set()).update(times)
        joined[root] += joined.pop(other) + [link]
    groups = [([nodes[i] for i in members], joined[uf.find(members[0])]) for members in uf.groups()]
    return groups, held


# -- groups ---------------------------------------------------------------------------------------

def _member(a: AssetRow, keep: bool, archivable: bool, note: str | None = None) -> GroupMember:
    return GroupMember(asset_id=a.id, path=a.path, paths=[f.path for f in a.files], width=a.width, height=a.height,
                       bytes=a.bytes, mime=a.mime, taken_at=a.taken_at, camera=a.camera, quality=a.quality,
                       bit_depth=a.bit_depth, keep=keep, archivable=archivable, note=note)


def exact_groups(assets: Sequence[AssetRow]) -> list[DuplicateGroup]:
    """One group per asset stored at several paths; the oldest file is the one to keep."""
    out = []
    for a in assets:
        if len(a.files) < 2:
            continue
        keeper = a.files[0]
        members = [
            _member(a, keep=f is keeper, archivable=f is not keeper).model_copy(
                update={"file_id": f.id, "path": f.path, "bytes": f.size})
            for f in a.files
        ]
        reason = ("the oldest copy: the others were written after it" if keeper.mtime_ns < a.files[1].mtime_ns
                  else "copies written at the same time: the shortest path")
        out.append(DuplicateGroup(
            id=f"exact-{a.id}", tier="exact", assets=members, keep=a.id, keep_path=keeper.path, reasons=[reason],
            evidence={"sha256": a.sha256, "paths": [f.path for f in a.files]},
            archive_paths=[f.path for f in a.files[1:]]))
    return out


def _evidence(tier: str, links: Sequence[Link]) -> dict[str, object]:
    tiers = [l.tier for l in links]
    out: dict[str, object] = {"links": {t: tiers.count(t) for t in TIER_RANK if t in tiers}}
    pixels = sorted({l.pixel for l in links if l.pixel})
    if pixels:
        out["pixel_sha256"] = pixels
    distances = [l.distance for l in links if l.tier == "perceptual" and l.distance is not None]
    if distances:
        out["max_distance"] = max(distances)
        out["transforms"] = sorted({l.transform for l in links if l.tier == "perceptual" and l.transform})
    cosines = [l.cosine for l in links if l.cosine is not None]
    if cosines:
        out["min_cosine"] = round(min(cosines), 4)
    return out


def relation_to(keeper: int, links: Sequence[Link]) -> dict[int, str]:
    """For each member, the weakest tier on the path of links from the keeper (the links form a tree)."""
    near: dict[int, list[Link]] = defaultdict(list)
    for link in links:
        near[link.a].append(link)
        near[link.b].append(link)
    out: dict[int, str] = {}
    stack = [(keeper, "pixels")]
    seen = {keeper}
    while stack:
        node, weakest = stack.pop()
        for link in near[node]:
            other = link.b if link.a == node else link.a
            if other not in seen:
                seen.add(other)
                out[other] = max(weakest, link.tier, key=TIER_RANK.__getitem__)
                stack.append((other, out[other]))
    return out


def duplicate_group(members: Sequence[AssetRow], links: Sequence[Link], shots: dict[int, tuple[int, datetime]]
                    ) -> DuplicateGroup:
    tier = max((l.tier for l in links), key=TIER_RANK.__getitem__)
    keeper, reasons = keep_best(members)
    relation = relation_to(keeper.id, links)
    rows = []
    for a in sorted(members, key=lambda m: m.id):
        protected = a.id in shots and a is not keeper
        row = _member(a, keep=a is keeper, archivable=a is not keeper and not protected,
                      note=BURST_NOTE if protected else None)
        row.tier = relation.get(a.id)  # type: ignore[assignment]
        rows.append(row)
    archive = [p for r in rows if r.archivable for p in r.paths]
    return DuplicateGroup(id=f"{tier}-{min(a.id for a in members)}", tier=tier, assets=rows,  # type: ignore[arg-type]
                          keep=keeper.id, keep_path=keeper.path, reasons=reasons, evidence=_evidence(tier, links),
                          pairs=[l.evidence() for l in sorted(links, key=lambda l: (l.a, l.b))], archive_paths=archive)


def burst_group(stack: BurstStack, by_id: dict[int, AssetRow]) -> DuplicateGroup:
    members = [by_id[i] for i in stack.members]
    keeper, reasons = keep_best(members)
    rows = [_member(a, keep=a is keeper, archivable=False, note=BURST_NOTE) for a in members]
    pairs = [PairEvidence(a=min(x, y), b=max(x, y), tier="burst", seconds_apart=round((ty - tx).total_seconds(), 3))
             for (x, tx), (y, ty) in zip(zip(stack.members, stack.times), zip(stack.members[1:], stack.times[1:]))]
    return DuplicateGroup(
        id=f"burst-{min(stack.members)}", tier="burst", assets=rows, keep=keeper.id, keep_path=keeper.path,
        reasons=["suggested cover of the stack: " + r for r in reasons][:3],
        evidence={"camera": stack.camera, "frames": stack.frames, "files": len(members),
                  "span_s": round(stack.span_s, 3), "first": stack.times[0].isoformat(),
                  "last": stack.times[-1].isoformat()},
        pairs=pairs)


def _counts(groups: Sequence[DuplicateGroup], sizes: dict[str, int]) -> dict[str, TierCount]:
    out: dict[str, TierCount] = {t: TierCount() for t in ALL_TIERS}
    for g in groups:
        c = out[g.tier]
        c.groups += 1
        c.assets += len({m.asset_id for m in g.assets})
        c.archive_files += len(g.archive_paths)
        c.archive_bytes += sum(sizes.get(p, 0) for p in g.archive_paths)
    return out


# -- the search -----------------------------------------------------------------------------------

def find_duplicates(rt: Runtime, collection: str | None = None, params: DuplicateParams | None = None, *,
                    progress: Progress | None = None) -> Detection:
    """Search one collection for duplicates and bursts, here and now (the `duplicates.find` task runs
    this). Hashes missing from the catalog are computed and stored on the way."""
    started = time.perf_counter()
    coll = rt.collection(collection)
    opts = Options.resolve(rt.settings, params)
    phases = _Phases(progress or NullProgress())
    phases.start("loading")
    inventory = load_inventory(rt.catalog, coll.id)
    by_id = {a.id: a for a in inventory}
    report = DuplicateReport(collection=coll.name, tiers=[t for t in ALL_TIERS if t in opts.tiers],  # type: ignore[misc]
                             near_threshold=opts.near_threshold, phash_max_distance=opts.phash_max_distance,
                             burst_window_s=opts.burst_window_s, assets=len(inventory))
    links: list[Link] = []
    if opts.tiers & {"pixels", "perceptual"}:
        todo = [by_id[i] for i, _ in missing_phashes(rt.catalog, coll.id) if i in by_id]
        phases.start("hashing", len(todo))
        report.hashed, errors = compute_phashes(rt.catalog, rt.settings, coll.id, todo, phases.progress)
        report.errors += errors
        table = load_hashes(rt.catalog, coll.id)
        keep = np.fromiter((int(i) in by_id for i in table.ids), dtype=bool, count=len(table))
        table = HashTable(table.ids[keep], table.phash[keep], table.variants[keep],
                          {k: v for k, v in table.pixel_sha256.items() if k in by_id})
        if "pixels" in opts.tiers:
            candidates = pixel_candidates(table, by_id)
            todo = [by_id[i] for ids in candidates for i in ids if i not in table.pixel_sha256]
            phases.start("pixels", len(todo))
            computed, errors = compute_pixel_hashes(rt.catalog, rt.settings, todo, phases.progress)
            links += pixel_links(candidates, {**table.pixel_sha256, **computed})
            report.pixel_hashed = len(computed)
            report.errors += errors
        if "perceptual" in opts.tiers:
            if opts.phash_max_distance > SLOW_DISTANCE:
                report.notices.append(f"a perceptual distance of {opts.phash_max_distance} bits links unrelated "
                                      f"photos and searches slowly; {SLOW_DISTANCE} or less is advised")
            phases.start("perceptual")
            links += perceptual_links(table, opts.phash_max_distance)
    if "near" in opts.tiers:
        phases.start("near")
        report.model = rt.model_name(coll)
        found, with_vectors = near_links(rt.catalog, coll.id, report.model, by_id, opts.near_threshold)
        links += found
        if with_vectors < len(inventory):
            report.notices.append(f"{len(inventory) - with_vectors} of {len(inventory)} photos have no "
                                  f"{report.model} vector: the near-duplicate tier skipped them")
    phases.start("grouping")
    stacks = burst_stacks(inventory, opts.burst_window_s)
    shots = shot_index(stacks)
    strongest = list(_strongest(links).values())
    components, held = group_links(strongest, shots)
    groups = exact_groups(inventory) if "exact" in opts.tiers else []
    groups += [duplicate_group([by_id[i] for i in members], joined, shots) for members, joined in components]
    if "burst" in opts.tiers:
        groups += [burst_group(s, by_id) for s in stacks]
    order = {t: n for n, t in enumerate(ALL_TIERS)}
    groups.sort(key=lambda g: (order[g.tier], -len(g.archive_paths), g.id))
    report.groups = groups
    report.counts = _counts(groups, {f.path: f.size for a in inventory for f in a.files})
    phases.stop()
    report.timings = phases.timings
    report.elapsed_s = round(time.perf_counter() - started, 3)
    report.progress = DuplicateProgress(phase="done", done=len(groups), total=len(groups))
    return Detection(report=report, links=strongest, held_apart=held, stacks=stacks)


__all__ = [
    "TIER_RANK",
    "Detection",
    "Link",
    "Options",
    "burst_group",
    "duplicate_group",
    "exact_groups",
    "find_duplicates",
    "group_links",
    "near_links",
    "perceptual_links",
    "pixel_candidates",
    "pixel_links",
    "relation_to",
]
