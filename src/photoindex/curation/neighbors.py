"""Finding close pairs without comparing every pair.

* `cosine_pairs`: all pairs of unit vectors with cosine >= a threshold. Small sets are compared
  exactly in blocks. Larger ones are partitioned with spherical k-means (an inverted file): every
  vector lives in the list of its nearest centroid, and is compared with the lists of its `probes`
  nearest centroids, by one matrix product per list, in a 64-d principal projection first (a filter
  that cannot lose a true pair), then exactly. A near-duplicate pair (cosine >= 0.9 means an angle
  under 26 degrees) almost always shares one of those lists; the work is about probes * n * LIST_SIZE
  projected dot products instead of n^2 / 2 full ones. Every reported pair is verified exactly.
* `hamming_pairs`: all (a, b, transform) with Hamming(variant_t(a), hash(b)) <= d, by multi-index
  hashing: the 64 bits are cut into 4 chunks of 16; if two hashes differ in at most d bits, some
  chunk differs in at most d // 4 bits (pigeonhole), so probing each chunk's table with every value
  within that radius finds every candidate. Candidates are verified on all 64 bits.
* `cosine_pairs_exact` / `hamming_pairs_exact`: the all-pairs ways, for small inputs and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from photoindex.media.phash import INVERSE, hamming

EXACT_BELOW = 6000  # below this many vectors the exact blocked product is as fast as the index
BLOCK_ROWS = 2048
LIST_SIZE = 200  # vectors per inverted list on average: each vector meets about probes x LIST_SIZE others
LIST_MAX = 8192


@dataclass
class SearchStats:
    """What a search did, for benchmarks and the job report."""

    method: str = ""
    lists: int = 0
    probes: int = 0
    dot_products: int = 0  # pairs of vectors compared (or hash pairs verified)
    seconds: dict[str, float] = field(default_factory=dict)


# -- cosine ---------------------------------------------------------------------------------------

def _unique_pairs(i: np.ndarray, j: np.ndarray, value: np.ndarray, prefer_max: bool) -> tuple[np.ndarray, ...]:
    """Unordered pairs (lo < hi) without repeats, keeping the best value of each."""
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    keep = lo != hi
    lo, hi, value = lo[keep], hi[keep], value[keep]
    if lo.size == 0:
        return lo.astype(np.int64), hi.astype(np.int64), value
    order = np.lexsort((-value if prefer_max else value, hi, lo))
    lo, hi, value = lo[order], hi[order], value[order]
    first = np.ones(lo.size, dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return lo[first].astype(np.int64), hi[first].astype(np.int64), value[first]


def cosine_pairs_exact(x: np.ndarray, threshold: float, *, block: int = BLOCK_ROWS,
                       stats: SearchStats | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair i < j with x[i]·x[j] >= threshold, by blocked matrix products over the upper triangle."""
    n = x.shape[0]
    out_i, out_j, out_c = [], [], []
    for start in range(0, n, block):
        rows = x[start : start + block]
        sims = rows @ x[start:].T
        r, c = np.nonzero(sims >= threshold)
        keep = c > r  # upper triangle: j > i
        r, c = r[keep], c[keep]
        out_i.append(r + start)
        out_j.append(c + start)
        out_c.append(sims[r, c])
        if stats is not None:
            stats.dot_products += rows.shape[0] * (n - start)
    if stats is not None:
        stats.method = "exact"
    if not out_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return (np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64),
            np.concatenate(out_c).astype(np.float32))


def coarse_projection(x: np.ndarray, dims: int = 64, *, sample: int = 10_000, seed: int = 0) -> np.ndarray | None:
    """A d x dims projection onto the top principal directions (of the uncentred second moment, which
    suits unit vectors compared by cosine), or None when x is small-dimensional already. The lists are
    built in this smaller space: k-means and assignment cost dims/d of the full work, and close pairs stay
    close under a projection (it only shortens their difference)."""
    d = x.shape[1]
    if d <= dims * 3 // 2:
        return None
    rng = np.random.default_rng(seed)
    s = x[rng.choice(x.shape[0], size=min(sample, x.shape[0]), replace=False)]
    _, vectors = np.linalg.eigh((s.T @ s).astype(np.float64))
    return np.ascontiguousarray(vectors[:, ::-1][:, :dims], dtype=np.float32)


def _matmul_blocks(x: np.ndarray, p: np.ndarray, block: int = 65_536) -> np.ndarray:
    out = np.empty((x.shape[0], p.shape[1]), dtype=np.float32)
    for start in range(0, x.shape[0], block):
        out[start : start + block] = x[start : start + block] @ p
    return out


def _project(x: np.ndarray, p: np.ndarray | None) -> np.ndarray:
    """Rows projected and made unit length again (the space the lists are built in)."""
    if p is None:
        return x
    y = _matmul_blocks(x, p)
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def spherical_kmeans(x: np.ndarray, k: int, *, iterations: int = 6, sample: int = 20_000,
                     seed: int = 0) -> np.ndarray:
    """k unit centroids for unit vectors x (trained on a sample; empty lists get a random point)."""
    rng = np.random.default_rng(seed)
    n = x.shape[0]
    train = x[rng.choice(n, size=min(n, max(sample, 4 * k)), replace=False)]
    centroids = train[rng.choice(train.shape[0], size=k, replace=False)].copy()
    for _ in range(iterations):
        assign = np.argmax(train @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, train)
        counts = np.bincount(assign, minlength=k)
        empty = counts == 0
        if empty.any():
            sums[empty] = train[rng.choice(train.shape[0], size=int(empty.sum()), replace=False)]
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
    return centroids


def _nearest_lists(x: np.ndarray, centroids: np.ndarray, probes: int, block: int = 16_384) -> np.ndarray:
    """For each vector, its `probes` nearest centroids, nearest first: (n, probes) int. A few rounds of
    argmax beat a partial sort here (probes is small, the centroid count large)."""
    out = np.empty((x.shape[0], probes), dtype=np.int32)
    for start in range(0, x.shape[0], block):
        sims = x[start : start + block] @ centroids.T
        rows = np.arange(sims.shape[0])
        for r in range(probes):
            best = np.argmax(sims, axis=1)
            out[start : start + block, r] = best
            sims[rows, best] = -np.inf
    return out


def _groups(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions sorted by key, and where each key's run starts (k + 1 offsets)."""
    order = np.argsort(keys, kind="stable")
    offsets = np.zeros(k + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=k), out=offsets[1:])
    return order, offsets


def _list_pairs(q: np.ndarray, m: np.ndarray, yq: np.ndarray, ym: np.ndarray, x: np.ndarray, threshold: float,
                filtered: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs between query vectors q and list members m with cosine >= threshold. With a projection
    (filtered), candidates are those whose projected distance allows it, then verified in full."""
    if not filtered:
        sims = yq @ ym.T
        r, c = np.nonzero(sims >= threshold)
        return q[r], m[c], sims[r, c]
    # |a - b|^2 = 2 - 2 cos for unit vectors; an orthogonal projection only shortens a - b, so a pair
    # with cos >= t has a projected squared distance <= 2 (1 - t): no true pair is filtered out
    d2 = (yq * yq).sum(axis=1)[:, None] + (ym * ym).sum(axis=1)[None, :] - 2 * (yq @ ym.T)
    r, c = np.nonzero(d2 <= 2 * (1 - threshold) + 1e-5)
    qi, mi = q[r], m[c]
    cos = np.einsum("ij,ij->i", x[qi], x[mi])
    keep = cos >= threshold
    return qi[keep], mi[keep], cos[keep]


def cosine_pairs(x: np.ndarray, threshold: float, *, probes: int = 6, lists: int | None = None,
                 exact_below: int = EXACT_BELOW, seed: int = 0,
                 stats: SearchStats | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j, cosine) of rows of `x` (unit float32 vectors) with cosine >= threshold.

    Exact below `exact_below` rows. Above, an inverted file: `lists` spherical k-means lists (default
    n / LIST_SIZE) built on a 64-d principal projection of the vectors; each vector is compared with
    the members of its `probes` nearest lists, first by the projected distance (a filter that never
    drops a true pair), then exactly. Recall on planted near-duplicates: bench/bench_duplicates.py."""
    import time

    stats = stats if stats is not None else SearchStats()
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[0]
    if n < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    if n < exact_below:
        return cosine_pairs_exact(x, threshold, stats=stats)
    k = lists or int(min(LIST_MAX, max(16, n // LIST_SIZE)))
    probes = max(1, min(probes, k))
    t0 = time.perf_counter()
    projection = coarse_projection(x, seed=seed)
    y = x if projection is None else _matmul_blocks(x, projection)  # unnormalised: the distance filter
    coarse = _project(x, projection)
    centroids = spherical_kmeans(coarse, k, seed=seed)
    t1 = time.perf_counter()
    near = _nearest_lists(coarse, centroids, probes)
    del coarse
    members, member_at = _groups(near[:, 0], k)  # each vector listed once, under its nearest centroid
    queries, query_at = _groups(near.reshape(-1), k)  # each vector asks `probes` lists
    queries //= probes  # flattened position -> vector
    t2 = time.perf_counter()
    out_i, out_j, out_c = [], [], []
    listed = y[members]  # in list order: each list's members are one contiguous slice
    for lst in range(k):
        lo, hi = member_at[lst], member_at[lst + 1]
        q = queries[query_at[lst] : query_at[lst + 1]]
        if hi == lo or q.size == 0:
            continue
        for start in range(0, q.size, BLOCK_ROWS):
            qb = q[start : start + BLOCK_ROWS]
            i, j, c = _list_pairs(qb, members[lo:hi], y[qb], listed[lo:hi], x, threshold, projection is not None)
            out_i.append(i)
            out_j.append(j)
            out_c.append(c)
            stats.dot_products += qb.size * (hi - lo)
    t3 = time.perf_counter()
    stats.method, stats.lists, stats.probes = "ivf", k, probes
    stats.seconds.update({"train": t1 - t0, "assign": t2 - t1, "search": t3 - t2})
    if not out_i:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    i, j, c = _unique_pairs(np.concatenate(out_i), np.concatenate(out_j), np.concatenate(out_c), prefer_max=True)
    return i, j, c.astype(np.float32)


# -- Hamming --------------------------------------------------------------------------------------

CHUNKS = 4
CHUNK_BITS = 64 // CHUNKS
HammingPairs = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # i < j, distance, transform


def _no_pairs() -> HammingPairs:
    return tuple(np.empty(0, np.int64) for _ in range(4))  # type: ignore[return-value]
_CHUNK_MASK = np.uint64((1 << CHUNK_BITS) - 1)


def _flip_masks(radius: int) -> np.ndarray:
    """Every 16-bit value with at most `radius` bits set (XOR masks for probing a chunk table)."""
    masks = [sum(1 << b for b in bits) for r in range(radius + 1) for bits in combinations(range(CHUNK_BITS), r)]
    return np.asarray(masks, dtype=np.int64)


def _chunk(h: np.ndarray, c: int) -> np.ndarray:
    return ((h >> np.uint64(c * CHUNK_BITS)) & _CHUNK_MASK).astype(np.int64)


def hamming_pairs(hashes: np.ndarray, variants: np.ndarray, max_distance: int, *, query_block: int = 4096,
                  stats: SearchStats | None = None) -> HammingPairs:
    """Pairs (i < j, distance, transform) with min over transforms t of Hamming(variants[i, t],
    hashes[j]) <= max_distance, where `transform` says which t turns i into j (as i < j; a pair found
    from j's side is reported with the inverse transform). hashes: uint64 (n,); variants: (n, T)
    uint64 with variants[:, 0] == hashes. Ties go to the lowest transform index ("none" first)."""
    stats = stats if stats is not None else SearchStats()
    hashes = np.asarray(hashes, dtype=np.uint64)
    variants = np.asarray(variants, dtype=np.uint64)
    n, t_count = variants.shape
    stats.method = "multi-index"
    if n < 2:
        return _no_pairs()
    radius = max_distance // CHUNKS
    masks = _flip_masks(radius)
    stats.probes = int(masks.size) * CHUNKS
    tables = []
    for c in range(CHUNKS):
        order, offsets = _groups(_chunk(hashes, c), 1 << CHUNK_BITS)
        tables.append((order, offsets))
    out: tuple[list[np.ndarray], ...] = ([], [], [], [])
    flat_variants = variants.reshape(-1)
    for start in range(0, flat_variants.size, query_block):
        q = flat_variants[start : start + query_block]
        q_pos = np.arange(start, start + q.size)
        for c, (order, offsets) in enumerate(tables):
            probe = (_chunk(q, c)[:, None] ^ masks[None, :]).reshape(-1)  # (Q * P,)
            lo, hi = offsets[probe], offsets[probe + 1]
            counts = hi - lo
            total = int(counts.sum())
            if total == 0:
                continue
            owner = np.repeat(np.repeat(q_pos, masks.size), counts)  # flattened (row, t) of each candidate
            run_start = np.repeat(lo - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
            cand = order[run_start + np.arange(total)]
            dist = hamming(flat_variants[owner], hashes[cand]).astype(np.int64)
            ok = dist <= max_distance
            row, t = np.divmod(owner[ok], t_count)
            out[0].append(row)
            out[1].append(cand[ok].astype(np.int64))
            out[2].append(dist[ok])
            out[3].append(t)
            stats.dot_products += total
    if not out[0]:
        return _no_pairs()
    return _orient(*(np.concatenate(a) for a in out))


def _orient(row: np.ndarray, cand: np.ndarray, dist: np.ndarray, t: np.ndarray) -> HammingPairs:
    """Unordered pairs with the smallest distance; the transform expressed from the lower index."""
    keep = row != cand
    row, cand, dist, t = row[keep], cand[keep], dist[keep], t[keep]
    swapped = row > cand
    inverse = np.asarray(INVERSE, dtype=np.int64)
    t = np.where(swapped, inverse[t], t)
    lo, hi = np.minimum(row, cand), np.maximum(row, cand)
    if lo.size == 0:
        return lo, hi, dist, t
    order = np.lexsort((t, dist, hi, lo))
    lo, hi, dist, t = lo[order], hi[order], dist[order], t[order]
    first = np.ones(lo.size, dtype=bool)
    first[1:] = (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
    return lo[first], hi[first], dist[first], t[first]


def hamming_pairs_exact(hashes: np.ndarray, variants: np.ndarray, max_distance: int, *, block: int = 512,
                        stats: SearchStats | None = None) -> HammingPairs:
    """The all-pairs way (every variant of every row against every hash); same result as `hamming_pairs`."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    variants = np.asarray(variants, dtype=np.uint64)
    n = hashes.shape[0]
    out: tuple[list[np.ndarray], ...] = ([], [], [], [])
    for start in range(0, n, block):
        v = variants[start : start + block]  # (B, T)
        d = hamming(v[:, None, :], hashes[None, :, None]).astype(np.int64)  # (B, n, T)
        best_t = np.argmin(d, axis=2)
        best = np.take_along_axis(d, best_t[..., None], axis=2)[..., 0]
        r, c = np.nonzero(best <= max_distance)
        out[0].append(r + start)
        out[1].append(c.astype(np.int64))
        out[2].append(best[r, c])
        out[3].append(best_t[r, c].astype(np.int64))
        if stats is not None:
            stats.dot_products += v.shape[0] * n
    if stats is not None:
        stats.method = "all-pairs"
    return _orient(*(np.concatenate(a) for a in out))


# -- grouping -------------------------------------------------------------------------------------

class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(self, a: int, b: int) -> int:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra

    def groups(self) -> list[list[int]]:
        """Sets with more than one member, members ascending."""
        by_root: dict[int, list[int]] = {}
        for a in range(len(self.parent)):
            by_root.setdefault(self.find(a), []).append(a)
        return [m for m in by_root.values() if len(m) > 1]


__all__ = [
    "EXACT_BELOW", "SearchStats", "UnionFind", "cosine_pairs", "cosine_pairs_exact", "hamming_pairs",
    "hamming_pairs_exact", "spherical_kmeans",
]
