"""Request and response bodies of the REST API. Every route names its response model, so the
OpenAPI schema at /openapi.json describes exactly what the server sends."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from photoindex.schemas import AssetInfo, Box, FileError, IngestReport, UtcDateTime

COLLECTION_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
ABSOLUTE_PATH = r"^/[^\x00]*$"


_DATE_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_text(value: Any) -> Any:
    """Dates come as RFC 3339 text only (pydantic alone would read "1700000000" as a Unix time)."""
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _DATE_TEXT.match(value):
        raise ValueError("expected an RFC 3339 date-time such as 2024-07-01T00:00:00")
    return value


def _json_int(value: Any) -> Any:
    """What JSON Schema calls an integer: 3 or 3.0, never true or "3" (pydantic's lax mode takes both)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expected an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("expected an integer")
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_json_int)]

DateTimeText = Annotated[datetime, BeforeValidator(_iso_text)]
WallClock = Annotated[str | None, Field(
    description="Capture time as the camera recorded it (ISO 8601), with its UTC offset when the file states one")]
JobStatus = Literal["queued", "running", "paused", "completed", "failed", "cancelled", "interrupted"]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str
    hint: str | None = Field(default=None, description="What to do about it, when there is something.")
    details: dict[str, Any] = Field(default_factory=dict)


# -- collections ---------------------------------------------------------------------------------
class CollectionCreate(BaseModel):
    name: str = Field(pattern=COLLECTION_NAME, description="Letters, digits, '_', '-', '.'; 1-128 characters.")
    vector_size: Annotated[int, Field(ge=1, le=65536), BeforeValidator(_json_int)] | None = Field(default=None,
                                    description="Expected embedding size, checked against the model.")
    distance: Literal["Cosine", "Dot", "Euclid"] = "Cosine"
    select: StrictBool = Field(default=False, description="Also make it the selected collection.")


class CollectionOut(BaseModel):
    id: int
    name: str
    created_at: UtcDateTime
    vector_size: int | None = None
    distance: str = "Cosine"
    model: str | None = Field(default=None, description="Set by the first ingest that embeds into it.")
    active: bool = Field(default=False, description="The selected collection (the default for requests).")
    asset_count: int = 0


class CollectionSelect(BaseModel):
    name: str = Field(min_length=1, max_length=128)


class CollectionDeleted(BaseModel):
    deleted: str


class CacheCleared(BaseModel):
    backend: str
    spaces_dropped: int = Field(description="In-memory vector spaces dropped (reloaded from the catalog on next use).")


# -- jobs ----------------------------------------------------------------------------------------
class FilesProgress(BaseModel):
    done: int
    total: int


class JobOut(BaseModel):
    id: int
    kind: str
    status: str
    collection_id: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    created_at: UtcDateTime
    started_at: UtcDateTime | None = None
    finished_at: UtcDateTime | None = None
    finished: bool = False
    counts: dict[str, Any] = Field(default_factory=dict)
    report: dict[str, Any] = Field(default_factory=dict)
    tasks: dict[str, int] = Field(default_factory=dict, description="Task counts by status.")
    files: FilesProgress | None = None


class RetryResult(BaseModel):
    job_id: int
    requeued: list[int] = Field(description="Ids of the dead tasks put back in the queue.")
    status: str


# -- ingest --------------------------------------------------------------------------------------
ServerPath = Annotated[str, Field(min_length=1, max_length=4096, pattern=ABSOLUTE_PATH)]


class ScanRequest(BaseModel):
    """`path`, `paths` or both (at least one path in all)."""

    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["path"]}, {"required": ["paths"], "properties": {"paths": {"minItems": 1}}}]})

    path: ServerPath | SkipJsonSchema[None] = Field(
        default=None, description="A folder (or file) on the server, below one of the allowed roots.")
    paths: Annotated[list[ServerPath], Field(max_length=100)] | SkipJsonSchema[None] = Field(
        default=None, description="Several folders at once.")
    collection: str | None = Field(default=None, min_length=1, max_length=128)
    embed: StrictBool = True
    priority: JsonInt = Field(default=0, ge=-100, le=100)

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("path", "paths"):
                if key in data and data[key] is None:
                    raise ValueError(f"`{key}` must not be null (leave it out)")
        return data

    @model_validator(mode="after")
    def _some_path(self) -> ScanRequest:
        if not self.all_paths():
            raise ValueError("give `path` or `paths`")
        return self

    def all_paths(self) -> list[str]:
        return ([self.path] if self.path else []) + list(self.paths or [])


class UploadedFile(BaseModel):
    filename: str = Field(description="The name the client sent.")
    stored_as: str = Field(description="Where the server keeps it (sanitised name).")
    bytes: int
    sha256: str
    format: str


class JobAccepted(BaseModel):
    job_id: int
    status: str
    status_url: str
    events_url: str
    roots: list[str] = Field(default_factory=list)
    files: list[UploadedFile] = Field(default_factory=list, description="Uploads only: the files received.")


class IngestTotals(BaseModel):
    files_seen: int = 0
    processed: int = Field(default=0, description="New content decoded and catalogued.")
    failed: int = 0
    from_cache: int = Field(default=0, description="skipped_unchanged + exact_duplicates + embeddings_reused")
    skipped_unchanged: int = 0
    exact_duplicates: int = 0
    embeddings_reused: int = 0
    moved: int = 0
    missing: int = 0
    embedded: int = 0
    embeddings_pending: int = 0


class ProcessedFile(BaseModel):
    path: str
    source: Literal["new", "duplicate", "moved"] = Field(
        description="new: decoded and catalogued; duplicate: content already known (linked); moved: a known "
        "file found at a new path")
    asset_id: int
    sha256: str
    size: int
    mime: str


class IngestResult(BaseModel):
    totals: IngestTotals
    processed_files: list[ProcessedFile]
    processed_files_truncated: bool = False
    failed_files: list[FileError]
    report: IngestReport


class IngestStatus(BaseModel):
    job_id: int
    status: str
    finished: bool
    created_at: UtcDateTime
    started_at: UtcDateTime | None = None
    finished_at: UtcDateTime | None = None
    tasks: dict[str, int] = Field(default_factory=dict)
    files: FilesProgress
    result: IngestResult | None = Field(default=None, description="The report, once the job has finished.")
    notice: str | None = Field(default=None, description="Why a finished job has no report (its collection is gone).")


# -- search and assets ---------------------------------------------------------------------------
class SearchFiltersIn(BaseModel):
    """Restrictions applied before ranking."""

    date_from: DateTimeText | None = Field(default=None, description="Taken at or after (wall-clock time)")
    date_to: DateTimeText | None = Field(default=None, description="Taken at or before (wall-clock time)")
    camera: str | None = Field(default=None, max_length=255, description="Case-insensitive part of 'Make Model'")
    path_prefix: str | None = Field(default=None, max_length=4096, description="Only files below this folder")
    tags: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=20, description="Every one of these tags or object labels")
    has_text: bool | None = Field(default=None, description="OCR found text in the photo (or found none)")
    min_quality: float | None = Field(default=None, ge=0.0, le=1.0, description="Technical quality at least")


class SearchRequest(BaseModel):
    text: str = Field(min_length=1, max_length=1000, pattern=r"\S", description="What to look for.")
    k: JsonInt = Field(default=20, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=10000)
    collection: str | None = Field(default=None, min_length=1, max_length=128)
    filters: SearchFiltersIn | None = None
    mode: Literal["hybrid", "image", "words"] = Field(
        default="hybrid", description="hybrid: the image model fused with words found in photos (captions, OCR "
        "text, tags); image: the image model alone; words: found words alone")
    model: str | None = Field(default=None, max_length=128, description="Another model the collection has vectors of")


class Hit(BaseModel):
    asset_id: int
    score: float = Field(description="Cosine similarity (higher is closer)")
    path: str | None = Field(description="A file of the asset that is still on disk (or its last known path)")
    taken_at: WallClock = None
    camera: str | None = None
    sha256: str
    width: int
    height: int
    found_by: list[str] = Field(default_factory=list, description="hybrid search: image, words, meaning")


class SearchResponse(BaseModel):
    collection: str
    model: str
    k: int
    offset: int
    hits: list[Hit]


class VectorInfo(BaseModel):
    model: str
    revision: str
    dim: int
    created_at: UtcDateTime


class RegionOut(BaseModel):
    kind: Literal["object", "text"]
    label: str | None = None
    text: str | None = None
    score: float
    caption: str | None = None
    model: str
    box: Box = Field(description="Normalised to the image: 0..1 from the top-left corner")


class TagOut(BaseModel):
    tag: str
    score: float
    source: str


class AssetDetail(AssetInfo):
    taken_at: WallClock = None  # type: ignore[assignment]
    collection: str | None = None
    vectors: list[VectorInfo] = Field(default_factory=list)
    regions: list[RegionOut] = Field(default_factory=list, description="Detected objects and lines of text")
    tags: list[TagOut] = Field(default_factory=list)
    caption: str | None = None
    ocr_text: str | None = None
    enrichments: dict[str, Any] = Field(default_factory=dict, description="Per enricher: model, revision, status")


class Labels(BaseModel):
    labels: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(min_length=1, max_length=1000)


# -- health --------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class Check(BaseModel):
    ok: bool
    detail: str | None = None


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, Check]
