"""Reciprocal rank fusion: one ranking from several (vector search by image, by text, full text).

Each ranking contributes weight / (k + rank) for every id it holds, ranks counting from 1, so only
positions matter: cosine similarities and BM25 scores, which live on unrelated scales, never need to be
calibrated against each other. k (60 in the original paper) damps the head of each list so that one
ranking's first place cannot outvote agreement between the others.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from photoindex.errors import ErrorCode, PhotoindexError

DEFAULT_K = 60


def rrf(
    rankings: Sequence[Sequence[int]],
    *,
    k: float = DEFAULT_K,
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[tuple[int, float]]:
    """Fused (id, score) pairs, best first. An id repeated within one ranking counts at its first
    (best) place. Equal scores are ordered by the best place an id reached in any ranking, then by id,
    so the same input always gives the same output. `limit` None: every id; 0 or less: none."""
    _check(rankings, k, weights)
    scores: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    for index, ranking in enumerate(rankings):
        weight = 1.0 if weights is None else float(weights[index])
        seen: set[int] = set()
        for rank, raw_id in enumerate(ranking, start=1):
            item = int(raw_id)
            if item in seen:
                continue
            seen.add(item)
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    ordered = sorted(scores.items(), key=lambda kv: (-kv[1], best_rank[kv[0]], kv[0]))
    if limit is not None:
        ordered = ordered[: max(limit, 0)]
    return ordered


def _check(rankings: Sequence[Sequence[int]], k: float, weights: Sequence[float] | None) -> None:
    if not math.isfinite(k) or k < 0:
        raise PhotoindexError(f"rank fusion needs a finite k >= 0, not {k}", code=ErrorCode.INVALID_REQUEST)
    if weights is None:
        return
    if len(weights) != len(rankings):
        raise PhotoindexError(
            f"rank fusion got {len(weights)} weights for {len(rankings)} rankings",
            code=ErrorCode.INVALID_REQUEST,
        )
    bad = [w for w in weights if not math.isfinite(float(w)) or float(w) < 0]
    if bad:
        raise PhotoindexError(f"rank fusion weights must be finite and >= 0, not {bad[0]}",
                              code=ErrorCode.INVALID_REQUEST)
