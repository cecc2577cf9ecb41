"""Burst stacks: shots from one camera within seconds of each other.

Photos of one camera sorted by capture time are cut wherever two consecutive shots are more than
`window_s` apart; a run is a stack when it holds at least two *different* capture times. Times are
the camera's wall clock (one camera, one clock), compared to the sub-second when the file records
it. Files with the very same capture time are one shot stored twice (a RAW and its JPEG, an export,
a re-encoded copy), not a burst: they join a stack only when it has other frames.

A camera that shoots several frames within one second and records no sub-seconds gives them equal
times; they then look like one shot stored twice. Cameras and phones of the last decade record
sub-seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from photoindex.curation.inventory import AssetRow


@dataclass(frozen=True)
class BurstStack:
    camera: str
    members: tuple[int, ...]  # asset ids in capture order
    times: tuple[datetime, ...]  # aligned with members

    @property
    def span_s(self) -> float:
        return (self.times[-1] - self.times[0]).total_seconds()

    @property
    def frames(self) -> int:
        """Distinct capture times: the shots of the burst."""
        return len(set(self.times))


def burst_stacks(assets: Sequence[AssetRow], window_s: float) -> list[BurstStack]:
    """The collection's burst stacks (see the module doc)."""
    timed = sorted((a.camera.strip().lower(), a.taken_at, a.id, a.camera) for a in assets
                   if a.camera and a.camera.strip() and a.taken_at is not None)
    stacks: list[BurstStack] = []
    run: list[tuple[str, datetime, int, str]] = []

    def close() -> None:
        if len({t for _, t, _, _ in run}) >= 2:
            stacks.append(BurstStack(run[0][3], tuple(r[2] for r in run), tuple(r[1] for r in run)))

    for item in timed:
        if run and (item[0] != run[-1][0] or (item[1] - run[-1][1]).total_seconds() > window_s):
            close()
            run = []
        run.append(item)
    if run:
        close()
    return stacks


def shot_index(stacks: Sequence[BurstStack]) -> dict[int, tuple[int, datetime]]:
    """asset id -> (stack number, capture time): two assets are different frames of one burst exactly
    when their stack numbers are equal and their times are not."""
    return {asset: (n, t) for n, s in enumerate(stacks) for asset, t in zip(s.members, s.times, strict=True)}


__all__ = ["BurstStack", "burst_stacks", "shot_index"]
