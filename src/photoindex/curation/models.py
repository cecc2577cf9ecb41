"""Duplicate detection results and requests (pydantic: they cross into the API, the CLI and job reports)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictFloat, StrictInt

from photoindex.schemas import FileError, WallClockTime

Tier = Literal["exact", "pixels", "perceptual", "near", "burst"]
DUPLICATE_TIERS: tuple[Tier, ...] = ("exact", "pixels", "perceptual", "near")
ALL_TIERS: tuple[Tier, ...] = (*DUPLICATE_TIERS, "burst")
TIER_HELP = {
    "exact": "the same file content (SHA-256) at several paths",
    "pixels": "different files whose decoded pixels are identical (metadata-only changes)",
    "perceptual": "re-encoded, resized, rotated or mirrored copies (perceptual hash)",
    "near": "near-identical pictures (image embedding cosine at or above the threshold)",
    "burst": "shots from one camera within seconds: a stack to review, never archived automatically",
}


class GroupMember(BaseModel):
    asset_id: int
    file_id: int | None = Field(default=None, description="exact groups: the file this member stands for")
    path: str = Field(description="exact groups: this copy; other tiers: the asset's main (oldest) file")
    paths: list[str] = Field(default_factory=list, description="every present file of the asset")
    width: int
    height: int
    bytes: int
    mime: str
    taken_at: WallClockTime | None = None
    camera: str | None = None
    quality: float | None = None
    bit_depth: int | None = None
    keep: bool = False
    tier: Tier | None = Field(default=None, description="how this member relates to the keeper: the weakest "
                              "link on the way between them (None for the keeper)")
    archivable: bool = Field(default=False, description="proposed for archiving (never the keeper, never a burst frame)")
    note: str | None = Field(default=None, description="why a member is not proposed (e.g. it is a burst frame)")


class PairEvidence(BaseModel):
    """Why two members belong together (asset ids; a < b)."""

    a: int
    b: int
    tier: Tier
    distance: int | None = Field(default=None, description="perceptual: differing hash bits (of 64)")
    transform: str | None = Field(default=None, description="perceptual: how a turns into b (rotate_90, mirror...)")
    cosine: float | None = Field(default=None, description="near: embedding cosine")
    pixel_sha256: str | None = Field(default=None, description="pixels: the shared pixel hash")
    seconds_apart: float | None = Field(default=None, description="burst: capture times apart")


class DuplicateGroup(BaseModel):
    id: str = Field(description="stable within a report: tier and the lowest member id")
    tier: Tier
    assets: list[GroupMember]
    keep: int = Field(description="asset id suggested to keep")
    keep_path: str = Field(description="the file suggested to keep")
    reasons: list[str] = Field(default_factory=list, description="why that one, against the others")
    evidence: dict[str, Any] = Field(default_factory=dict, description="the tier's summary (hash, distances...)")
    pairs: list[PairEvidence] = Field(default_factory=list, description="the links that make the group")
    archive_paths: list[str] = Field(default_factory=list,
                                     description="files proposed for archiving; empty for burst stacks")


class TierCount(BaseModel):
    groups: int = 0
    assets: int = 0
    archive_files: int = 0
    archive_bytes: int = 0


class DuplicateProgress(BaseModel):
    phase: str = "queued"
    done: int = 0
    total: int | None = None


class DuplicateParams(BaseModel):
    """What a search looks for; unset values come from the settings."""

    tiers: list[Tier] = Field(default_factory=lambda: list(ALL_TIERS))
    near_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    phash_max_distance: int | None = Field(default=None, ge=0, le=32)
    burst_window_s: StrictFloat | None = Field(default=None, ge=0.0, le=3600.0)


class DuplicateReport(BaseModel):
    task_id: int | None = Field(default=None, description="the duplicate job's id (GET /duplicates/report/{task_id})")
    job_id: int | None = None
    collection: str
    status: str = "completed"
    finished: bool = True
    progress: DuplicateProgress = Field(default_factory=DuplicateProgress)
    tiers: list[Tier] = Field(default_factory=lambda: list(ALL_TIERS))
    near_threshold: float | None = None
    phash_max_distance: int | None = None
    burst_window_s: float | None = None
    model: str | None = Field(default=None, description="the embedding model of the near tier")
    assets: int = Field(default=0, description="assets looked at (active, with a present file)")
    hashed: int = Field(default=0, description="perceptual hashes computed by this run (the rest were stored)")
    pixel_hashed: int = 0
    counts: dict[str, TierCount] = Field(default_factory=dict)
    groups: list[DuplicateGroup] = Field(default_factory=list)
    notices: list[str] = Field(default_factory=list)
    errors: list[FileError] = Field(default_factory=list)
    elapsed_s: float = 0.0
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per phase")
    error: dict[str, Any] | None = Field(default=None, description="why a failed job failed")


# -- API ------------------------------------------------------------------------------------------

class FindSimilarRequest(BaseModel):
    collection: str | None = Field(default=None, min_length=1, max_length=128,
                                   description="default: the selected collection")
    tiers: list[Tier] | None = Field(default=None, min_length=1, description="default: all tiers")
    threshold: StrictFloat | None = Field(default=None, ge=0.5, le=1.0,
                                    description="near-duplicate cosine threshold (default: near_duplicate_threshold)")
    phash_max_distance: StrictInt | None = Field(default=None, ge=0, le=12,
                                           description="perceptual-hash bits that may differ (default: phash_max_distance)")
    burst_window_s: StrictFloat | None = Field(default=None, ge=0.0, le=3600.0)


class FindSimilarAccepted(BaseModel):
    task_id: int = Field(description="what GET /duplicates/report/{task_id} takes (the job's id)")
    job_id: int
    status: str
    status_url: str
    events_url: str


__all__ = [
    "ALL_TIERS", "DUPLICATE_TIERS", "TIER_HELP", "DuplicateGroup", "DuplicateParams", "DuplicateProgress",
    "DuplicateReport", "FindSimilarAccepted", "FindSimilarRequest", "GroupMember", "PairEvidence", "Tier",
    "TierCount",
]
