"""Benchmark: duplicate search over 100k photos, the indexed way against the all-pairs way, in one run.

    python bench/bench_duplicates.py                        # 100k x 768-d vectors and 100k hashes
    python bench/bench_duplicates.py --n 20000 --runs 1     # a quick look
    python bench/bench_duplicates.py --baseline-n 0 --hash-baseline-n 0   # all-pairs on all n (long)

What it does
- vectors: n unit vectors in `--dim` dimensions drawn around 3,000 "scenes" (photos of one scene are
  related: cosine about 0.5 with each other, as image embeddings of a library are), plus planted
  near-duplicates: pairs and groups of 3-5 with cosine 0.955-0.995 to their source, and planted near
  misses at cosine 0.85-0.93 that must not be reported;
- times `cosine_pairs` (spherical k-means inverted file on a 64-d principal projection, multi-probe,
  exact verification) on all n, the median of --runs;
- times the all-pairs way (`cosine_pairs_exact`: blocked float32 matrix products over the upper
  triangle, what a straightforward implementation does) on the first --baseline-n vectors and
  extrapolates to n quadratically (its work is n^2/2 dot products; it says so in the table), and
  runs the index on that same subset to compare their pairs exactly (recall against all-pairs);
  hashes use --hash-baseline-n (the all-pairs way over 8 variants costs 8 n^2 popcounts);
- hashes: n 64-bit DCT hashes with their 8 rotation / mirror variants, from synthetic 32x32 grey
  squares around 2,000 smooth "scenes" (hashes of one scene share bits, as those of a library do),
  plus planted copies (noise, rotations, mirrors); times `hamming_pairs` (multi-index hashing) against
  `hamming_pairs_exact` (every variant against every hash) the same way.
Recall of planted pairs counts those whose true similarity passes the threshold. Timings on a shared
machine vary; the ratio of the two ways measured in the same run is the number to read. On a machine
whose cores are busy with other work, OPENBLAS_NUM_THREADS=1 gives steadier (and here faster) numbers
for both ways.

Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from photoindex.curation.neighbors import (
    SearchStats,
    cosine_pairs,
    cosine_pairs_exact,
    hamming_pairs,
    hamming_pairs_exact,
)
from photoindex.media.phash import min_distance, variants_gray


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, list[float], Any]:
    """Median seconds over `runs`, all the timings, and the last result."""
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _towards(x: np.ndarray, cos: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors at exactly cosine `cos` from the unit rows of x."""
    noise = rng.standard_normal(x.shape).astype(np.float32)
    noise -= np.einsum("ij,ij->i", noise, x)[:, None] * x
    noise = _unit(noise)
    c = cos[:, None].astype(np.float32)
    return _unit(c * x + np.sqrt(1 - c * c) * noise)


def make_vectors(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, set[tuple[int, int]], set[tuple[int, int]]]:
    """(vectors, planted near-duplicate pairs, planted near misses)."""
    rng = np.random.default_rng(seed)
    scenes = _unit(rng.standard_normal((3000, dim)).astype(np.float32))
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 20_000):
        m = min(20_000, n - start)
        noise = _unit(rng.standard_normal((m, dim)).astype(np.float32))
        x[start : start + m] = _unit(scenes[rng.integers(0, scenes.shape[0], m)] + noise)
    slots = rng.permutation(n)
    used = 0
    planted: set[tuple[int, int]] = set()
    for size, count in ((2, n // 50), (3, n // 400), (5, n // 1000)):  # 2 %, 0.25 %, 0.1 % of n
        for _ in range(count):
            members = slots[used : used + size]
            used += size
            x[members[1:]] = _towards(np.repeat(x[members[:1]], size - 1, axis=0),
                                      rng.uniform(0.955, 0.995, size - 1), rng)
            planted |= {(int(min(a, b)), int(max(a, b))) for a in members for b in members if a != b}
    misses: set[tuple[int, int]] = set()
    for _ in range(n // 200):
        a, b = slots[used : used + 2]
        used += 2
        x[b] = _towards(x[a : a + 1], rng.uniform(0.85, 0.93, 1), rng)[0]
        misses.add((int(min(a, b)), int(max(a, b))))
    return x, planted, misses


def _smooth_fields(count: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random 32x32 images: a few soft blobs each, bright and dark, at random places (the coarse
    layout of a photo; no symmetry, which a sum of cosines would have)."""
    grid = np.arange(32, dtype=np.float32)
    out = np.full((count, 32, 32), 128, dtype=np.float32)
    for _ in range(8):
        cy, cx = rng.uniform(-4, 36, (2, count, 1, 1)).astype(np.float32)
        sigma = rng.uniform(3, 12, (count, 1, 1)).astype(np.float32)
        amp = rng.uniform(-70, 70, (count, 1, 1)).astype(np.float32)
        out += amp * np.exp(-((grid[None, :, None] - cy) ** 2 + (grid[None, None, :] - cx) ** 2) / (2 * sigma**2))
    return out


def make_hashes(n: int, seed: int = 1) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """(variants (n, 8) uint64, planted copy pairs)."""
    rng = np.random.default_rng(seed)
    scenes = _smooth_fields(2000, rng)
    variants = np.empty((n, 8), dtype=np.uint64)
    for start in range(0, n, 20_000):
        m = min(20_000, n - start)
        gray = 0.5 * scenes[rng.integers(0, scenes.shape[0], m)] + _smooth_fields(m, rng) - 64
        gray += rng.normal(0, 4, gray.shape).astype(np.float32)
        variants[start : start + m] = variants_gray(gray)
    # planted copies: re-encoding noise, and rotations / mirrors of it
    count = n // 50
    slots = rng.permutation(n)[: 2 * count]
    sources, copies = slots[:count], slots[count:]
    base = _smooth_fields(count, rng)
    kinds = rng.integers(0, 4, count)
    moved = np.stack([np.rot90(b, 1) if k == 1 else b[:, ::-1] if k == 2 else np.rot90(b, 2) if k == 3 else b
                      for b, k in zip(base, kinds, strict=True)])
    variants[sources] = variants_gray(base)
    variants[copies] = variants_gray(moved + rng.normal(0, 1, moved.shape).astype(np.float32))
    planted = {(int(min(a, b)), int(max(a, b))) for a, b in zip(sources, copies, strict=True)}
    return variants, planted


def _pairs(result: tuple[np.ndarray, ...]) -> set[tuple[int, int]]:
    return set(zip(result[0].tolist(), result[1].tolist(), strict=True))


def _subset_pairs(pairs: set[tuple[int, int]], m: int) -> set[tuple[int, int]]:
    return {p for p in pairs if p[1] < m}


def bench_vectors(args: argparse.Namespace) -> list[str]:
    n, dim, t = args.n, args.dim, args.threshold
    t0 = time.perf_counter()
    x, planted, misses = make_vectors(n, dim)
    made = time.perf_counter() - t0
    cos = {p: float(x[p[0]] @ x[p[1]]) for p in planted}
    wanted = {p for p, c in cos.items() if c >= t}
    stats = SearchStats()

    def search() -> Any:
        nonlocal stats
        stats = SearchStats()  # the last run's
        return cosine_pairs(x, t, probes=args.probes, stats=stats)

    med, runs, result = timed(search, args.runs)
    found = _pairs(result)
    m = n if args.baseline_n <= 0 else min(args.baseline_n, n)
    sub = np.ascontiguousarray(x[:m])
    base_s, _, exact = timed(lambda: cosine_pairs_exact(sub, t), 1)
    sub_med, _, sub_result = timed(lambda: cosine_pairs(sub, t, probes=args.probes), args.runs)
    truth = _pairs(exact)
    got = _pairs(sub_result)
    scale = (n / m) ** 2
    ours = f"inverted file, {stats.lists} lists x {stats.probes} probes (ours)"
    lines = [
        (f"\n== {n:,} x {dim}-d vectors, cosine >= {t} ({len(planted):,} planted near-duplicate pairs, "
        f"{len(misses):,} planted near misses; data made in {made:.1f} s) =="),
        f"  {'method':<46} {'n':>9} {'seconds':>10} {'pairs':>9} {'recall':>8}",
        f"  {ours:<46} {n:>9,} {med:>10.2f} "
        f"{len(found):>9,} {len(found & wanted) / max(1, len(wanted)):>8.4f}   (of planted pairs; runs: "
        + ", ".join(f"{r:.2f}" for r in runs) + ")",
        f"  {'  its phases (last run)':<46} {'':>9} " + ", ".join(f"{k} {v:.2f} s" for k, v in stats.seconds.items()),
        f"  {'  planted near misses reported':<46} {'':>9} {'':>10} {len(found & misses):>9}",
        f"  {'all-pairs, blocked matrix products':<46} {m:>9,} {base_s:>10.2f} {len(truth):>9,} {1.0:>8.4f}",
        (f"  {'inverted file on the same subset':<46} {m:>9,} {sub_med:>10.2f} {len(got):>9,} "
        f"{len(got & truth) / max(1, len(truth)):>8.4f}   (of all-pairs' pairs; extra: {len(got - truth)})"),
    ]
    if m < n:
        lines.append(f"  {f'all-pairs, extrapolated x{scale:.0f} (n^2 work)':<46} {n:>9,} {base_s * scale:>10.1f}")
    lines.append(f"  speed-up at {n:,}: {base_s * scale / med:.0f}x  (dot products: index {stats.dot_products:,.0f}, "
                 f"all-pairs {n * (n + 1) // 2:,})")
    return lines


def bench_hashes(args: argparse.Namespace) -> list[str]:
    n, d = args.n, args.distance
    t0 = time.perf_counter()
    variants, planted = make_hashes(n)
    made = time.perf_counter() - t0
    hashes = variants[:, 0].copy()
    dist = {p: int(min_distance(variants[p[0]], hashes[p[1]])[0]) for p in planted}
    wanted = {p for p, v in dist.items() if v <= d}
    stats = SearchStats()

    def search() -> Any:
        nonlocal stats
        stats = SearchStats()
        return hamming_pairs(hashes, variants, d, stats=stats)

    med, runs, result = timed(search, args.runs)
    found = _pairs(result)
    m = n if args.hash_baseline_n <= 0 else min(args.hash_baseline_n, n)
    base_s, _, exact = timed(lambda: hamming_pairs_exact(hashes[:m], variants[:m], d), 1)
    sub_med, _, sub = timed(lambda: hamming_pairs(hashes[:m], variants[:m], d), args.runs)
    truth, got = _pairs(exact), _pairs(sub)
    scale = (n / m) ** 2
    lines = [
        (f"\n== {n:,} perceptual hashes x 8 rotations/mirrors, distance <= {d} ({len(planted):,} planted copies, "
        f"{len(wanted):,} within {d} bits; data made in {made:.1f} s) =="),
        f"  {'method':<46} {'n':>9} {'seconds':>10} {'pairs':>9} {'recall':>8}",
        f"  {'multi-index hashing, 4 x 16-bit tables (ours)':<46} {n:>9,} {med:>10.2f} {len(found):>9,} "
        f"{len(found & wanted) / max(1, len(wanted)):>8.4f}   (of planted; runs: " + ", ".join(f"{r:.2f}" for r in runs) + ")",
        f"  {'  candidates verified':<46} {'':>9} {'':>10} {stats.dot_products:>9,}",
        f"  {'all-pairs, every variant vs every hash':<46} {m:>9,} {base_s:>10.2f} {len(truth):>9,} {1.0:>8.4f}",
        (f"  {'multi-index hashing on the same subset':<46} {m:>9,} {sub_med:>10.2f} {len(got):>9,} "
        f"{len(got & truth) / max(1, len(truth)):>8.4f}   (of all-pairs' pairs; identical: {got == truth})"),
    ]
    if m < n:
        lines.append(f"  {f'all-pairs, extrapolated x{scale:.0f} (n^2 work)':<46} {n:>9,} {base_s * scale:>10.1f}")
    lines.append(f"  speed-up at {n:,}: {base_s * scale / med:.0f}x")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="photos (vectors and hashes)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--runs", type=int, default=3, help="runs of the indexed searches (median)")
    parser.add_argument("--baseline-n", type=int, default=20_000,
                        help="all-pairs runs on this many and is extrapolated (0: on all n)")
    parser.add_argument("--hash-baseline-n", type=int, default=10_000,
                        help="all-pairs on hashes runs on this many and is extrapolated (0: on all n)")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--distance", type=int, default=6)
    parser.add_argument("--probes", type=int, default=6)
    parser.add_argument("--skip", choices=("vectors", "hashes"), default=None)
    args = parser.parse_args()
    threads = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}
    print(f"numpy {np.__version__}, {os.cpu_count()} CPUs, BLAS threads: {threads or 'library default'}; "
          f"load average {os.getloadavg()[0]:.1f}")
    lines: list[str] = []
    if args.skip != "vectors":
        lines += bench_vectors(args)
        print("\n".join(lines), flush=True)
    if args.skip != "hashes":
        more = bench_hashes(args)
        print("\n".join(more), flush=True)


if __name__ == "__main__":
    main()
