"""Pydantic models that cross layer boundaries (media → store → services → faces)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

from photoindex.errors import ErrorCode


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# The catalog keeps its own timestamps as naive UTC; models that leave the process say so (RFC 3339
# needs an offset).
UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
# A capture time as the camera recorded it: wall-clock time, with an offset only when the file states
# one. Not an RFC 3339 instant, so the schema says "string".
WallClockTime = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str, when_used="json"),
                          WithJsonSchema({"type": "string", "description": "capture time (ISO 8601, wall clock)"})]


class ExifInfo(BaseModel):
    """The EXIF fields photoindex understands; `taken_at` carries a UTC offset when the file states one."""

    taken_at: datetime | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    exposure_time: float | None = Field(default=None, description="seconds")
    f_number: float | None = None
    iso: int | None = None
    focal_length: float | None = Field(default=None, description="millimetres")
    gps_lat: float | None = None
    gps_lon: float | None = None
    gps_alt: float | None = None
    orientation: int | None = None
    raw: dict[str, Any] = Field(default_factory=dict, description="Other tags, JSON-safe, keyed by tag name.")

    @property
    def camera(self) -> str | None:
        """'Make Model', without the make when the model already names it ('NIKON CORPORATION' +
        'NIKON Z 6' is 'NIKON Z 6'; 'Apple' + 'iPhone 13' is 'Apple iPhone 13')."""
        make, model = (self.make or "").strip(), (self.model or "").strip()
        if make and model and model.split()[0].lower() == make.split()[0].lower():
            make = ""
        label = f"{make} {model}".strip()
        return label or None


class FileError(BaseModel):
    """One file that could not be ingested, and why."""

    path: str
    code: ErrorCode
    message: str


class CollectionInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    created_at: datetime
    vector_size: int | None = None
    distance: str = "Cosine"
    model: str | None = None
    active: bool = False
    asset_count: int = 0
    options: dict[str, Any] = Field(default_factory=dict)


class FileInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    path: str
    size: int
    mtime_ns: int
    missing: bool = False


class AssetInfo(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    collection_id: int
    sha256: str
    sha1: str
    bytes: int
    mime: str
    width: int
    height: int
    taken_at: datetime | None = None
    camera: str | None = None
    lens: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    exif: dict[str, Any] = Field(default_factory=dict)
    status: str = "active"
    files: list[FileInfo] = Field(default_factory=list)
    embedded_models: list[str] = Field(default_factory=list)
    quality: float | None = Field(default=None, description="technical quality 0..1 (enrichment)")
    aesthetic: float | None = None
    has_text: bool | None = None


class SearchFilters(BaseModel):
    """Restrictions applied before ranking. `path_prefix` is a folder: only files below it match."""

    date_from: datetime | None = None
    date_to: datetime | None = None
    camera: str | None = Field(default=None, description="case-insensitive substring of 'Make Model'")
    path_prefix: str | None = None
    tags: list[str] = Field(default_factory=list, description="every one of these tags or object labels")
    has_text: bool | None = Field(default=None, description="OCR found text (true) or found none (false)")
    min_quality: float | None = Field(default=None, ge=0.0, le=1.0, description="technical quality at least")
    min_aesthetic: float | None = None
    asset_ids: list[int] | None = Field(default=None, description="only these assets (a selection)")

    def is_empty(self) -> bool:
        return not any((self.date_from, self.date_to, self.camera, self.path_prefix)) and not self.catalog_only()

    def catalog_only(self) -> bool:
        """Filters only the catalog can resolve (backends with their own payload don't carry them)."""
        return bool(self.tags) or any(v is not None for v in (self.has_text, self.min_quality, self.min_aesthetic,
                                                               self.asset_ids))


class SearchHit(BaseModel):
    asset_id: int
    score: float
    path: str | None
    taken_at: datetime | None = None
    camera: str | None = None
    sha256: str
    width: int
    height: int
    found_by: list[str] = Field(default_factory=list, description="hybrid search: image, words, meaning")


class IngestReport(BaseModel):
    """What one ingest run did; the CLI prints it and `--json` emits it verbatim."""

    job_id: int | None = None
    collection: str
    roots: list[str]
    model: str | None = None
    files_seen: int = 0
    processed: int = Field(default=0, description="new assets decoded and catalogued")
    skipped_unchanged: int = Field(default=0, description="same path, size and mtime: not read at all")
    exact_duplicates: int = Field(default=0, description="new paths whose content was already known")
    moved: int = Field(default=0, description="files recognised by hash at a new path")
    missing: int = Field(default=0, description="files under the roots that are gone from disk")
    failed: int = 0
    embedded: int = 0
    embeddings_reused: int = Field(default=0, description="vectors copied from the same content elsewhere")
    embeddings_pending: int = 0
    enriched: dict[str, int] = Field(default_factory=dict, description="results per enricher (computed or cached)")
    enrich_failed: int = 0
    ocr_gate_skipped: int = Field(default=0, description="photos whose text detection ruled out OCR recognition")
    elapsed_s: float = 0.0
    interrupted: bool = False
    notices: list[str] = Field(default_factory=list)
    errors: list[FileError] = Field(default_factory=list)


# -- enrichment results (what models say about a photo) ------------------------------------------
# Boxes are normalised to the image they were computed on (0..1, origin top-left), so they overlay any
# rendition of the photo (thumbnail, preview, original) without knowing its pixel size.


class Box(BaseModel):
    model_config = ConfigDict(frozen=True)

    x0: float = Field(ge=0.0, le=1.0)
    y0: float = Field(ge=0.0, le=1.0)
    x1: float = Field(ge=0.0, le=1.0)
    y1: float = Field(ge=0.0, le=1.0)

    @property
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)


class Region(BaseModel):
    """One detected object. `label` is the final label (after zero-shot re-ranking when that ran);
    `detector_label` what the detector itself said."""

    box: Box
    label: str
    score: float
    detector_label: str | None = None
    detector_score: float | None = None
    caption: str | None = None


class TextLine(BaseModel):
    """One line of text found in a photo; `box` bounds the (possibly rotated) quadrilateral."""

    text: str
    box: Box
    confidence: float


class OcrResult(BaseModel):
    """`gate_score` is the text-detection confidence that decided whether recognition ran;
    `recognized` is False when the gate skipped the photo (then `lines` is empty)."""

    gate_score: float = 0.0
    recognized: bool = False
    lines: list[TextLine] = Field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


class CaptionResult(BaseModel):
    text: str
    regions: list[Region] = Field(default_factory=list, description="regions with their own captions")


class QualityResult(BaseModel):
    """Higher is better everywhere. `technical` combines sharpness, exposure and noise (0..1);
    `aesthetic` comes from a head over the image embedding, when its weights are installed."""

    technical: float
    sharpness: float
    exposure: float
    noise: float
    aesthetic: float | None = None


class ObjectsResult(BaseModel):
    regions: list[Region] = Field(default_factory=list)


class TagsResult(BaseModel):
    tags: list[tuple[str, float]] = Field(default_factory=list, description="(label, probability), best first")


class AestheticResult(BaseModel):
    aesthetic: float


class TextEmbeddingResult(BaseModel):
    """A sentence embedding of a photo's words (caption, OCR text, tags); the vector itself goes to the
    embedding table, `text_sha256` says which words it encodes."""

    text_sha256: str
    chars: int
    vector: list[float] | None = None
