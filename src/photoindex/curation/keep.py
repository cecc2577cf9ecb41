"""Which copy of a picture to keep: a lexicographic order over documented criteria, with reasons.

Criteria are applied in order, each keeping only the members at the best value among those still in
the running; the last one standing is the keeper. Values within a criterion's tolerance of the best
count as the best (a RAW's sensor size and its camera JPEG differ by a few rows; a metadata edit adds
a few bytes; quality scores are noisy):

1. resolution (pixel count; within 2 % of the largest is full resolution);
2. RAW over other formats;
3. bit depth (stated by the file; 8 when it says nothing);
4. technical quality score (within 0.05 of the best), only when every member has one (a missing
   score is not a bad one);
5. file size (within 1 % of the largest: at equal resolution and format, fewer bits thrown away);
6. earliest capture date (unknown dates last);
7. oldest file (a copy is written after its original), then the lowest asset id, so the choice is
   stable from run to run.

The keeper is a suggestion: the person overrides it when archiving.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from photoindex.curation.inventory import AssetRow

FULL_RESOLUTION = 0.98
QUALITY_TOLERANCE = 0.05
SIZE_TOLERANCE = 0.01
_EPOCH = datetime(1970, 1, 1)  # wall-clock times: compared as they are, no time zone


@dataclass(frozen=True)
class Criterion:
    name: str
    key: Callable[[AssetRow], float]  # larger is better
    near_best: Callable[[float, float], bool] | None  # (value, best) -> counts as the best; None: equal only
    reason: Callable[[AssetRow, AssetRow], str]  # why the keeper won over a member this criterion ruled out


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _criteria() -> list[Criterion]:
    def date_key(a: AssetRow) -> float:
        return -(a.taken_at - _EPOCH).total_seconds() if a.taken_at else float("-inf")

    return [
        Criterion("resolution", lambda a: a.pixels, lambda v, best: v >= FULL_RESOLUTION * best,
                  lambda k, o: f"higher resolution {k.width}x{k.height} (other: {o.width}x{o.height})"),
        Criterion("raw", lambda a: a.is_raw, None, lambda k, o: f"RAW original ({k.mime}) over {o.mime}"),
        Criterion("bit_depth", lambda a: a.bit_depth or 8, None,
                  lambda k, o: f"{k.bit_depth or 8}-bit over {o.bit_depth or 8}-bit"),
        Criterion("quality", lambda a: a.quality or 0.0,
                  lambda v, best: v >= best - QUALITY_TOLERANCE,
                  lambda k, o: f"better quality score {k.quality:.2f} (other: {o.quality:.2f})"),
        Criterion("file_size", lambda a: a.bytes, lambda v, best: v >= (1 - SIZE_TOLERANCE) * best,
                  lambda k, o: f"larger file {_size(k.bytes)} (other: {_size(o.bytes)})"),
        Criterion("date", date_key, None,
                  lambda k, o: f"earlier capture date {k.taken_at} (other: {o.taken_at or 'unknown'})"),
        Criterion("oldest_file", lambda a: -a.files[0].mtime_ns if a.files else 0, None,
                  lambda k, o: "older file (copies are written after their original)"),
        Criterion("id", lambda a: -a.id, None, lambda k, o: "catalogued first"),
    ]


CRITERIA = _criteria()


def keep_best(group: Sequence[AssetRow]) -> tuple[AssetRow, list[str]]:
    """The member to keep, and why: criteria in order, each keeping the members at (or within its
    tolerance of) the best of those still in the running; the reason of each criterion that ruled a
    member out is given once. Quality is skipped when a member has no score."""
    if not group:
        raise ValueError("an empty group has nothing to keep")
    alive = list(group)
    out: list[tuple[Criterion, AssetRow]] = []
    for c in CRITERIA:
        if len(alive) == 1:
            break
        if c.name == "quality" and any(a.quality is None for a in group):
            continue
        values = {a.id: c.key(a) for a in alive}
        best = max(values.values())
        near = c.near_best or (lambda v, b: v == b)
        survivors = [a for a in alive if near(values[a.id], best)]
        if len(survivors) < len(alive):
            runner_up = max((a for a in alive if a not in survivors), key=lambda a: values[a.id])
            out.append((c, runner_up))
        alive = survivors
    keeper = alive[0]
    return keeper, [c.reason(keeper, other) for c, other in out]


__all__ = ["CRITERIA", "FULL_RESOLUTION", "QUALITY_TOLERANCE", "SIZE_TOLERANCE", "Criterion", "keep_best"]
