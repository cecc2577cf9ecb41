"""Catalog tables (SQLAlchemy 2 declarative). Alembic migrations under `migrations/` create them.

Content addressing: an `Asset` is unique content (SHA-256) within a collection; a `File` is a path
where that content lives. Per-model outputs hang off the asset and carry the model name and revision.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, dict[str, Any] | None: JSON}


PathText = Text().with_variant(Text(collation="C"), "postgresql")

# BigInteger primary keys autoincrement on PostgreSQL; SQLite only treats INTEGER as rowid alias.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Setting(Base):
    """Small key/value state shared by every process (e.g. the active collection)."""

    __tablename__ = "setting"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSON)


class Collection(Base):
    __tablename__ = "collection"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    vector_size: Mapped[int | None] = mapped_column(Integer)
    distance: Mapped[str] = mapped_column(String(16), default="Cosine")
    model: Mapped[str | None] = mapped_column(String(128))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Asset(Base):
    __tablename__ = "asset"
    __table_args__ = (
        UniqueConstraint("collection_id", "sha256", name="uq_asset_collection_sha256"),
        Index("ix_asset_collection_taken", "collection_id", "taken_at"),
        Index("ix_asset_sha256", "sha256"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    sha1: Mapped[str] = mapped_column(String(40))
    bytes: Mapped[int] = mapped_column(BigInteger)
    mime: Mapped[str] = mapped_column(String(64))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    # Wall-clock time as the camera recorded it; the UTC offset separately when the file states one.
    # Date filters compare wall-clock times, which is what "photos from July" means to a person.
    taken_at: Mapped[datetime | None] = mapped_column(DateTime)
    tz_offset_min: Mapped[int | None] = mapped_column(Integer)
    camera: Mapped[str | None] = mapped_column(String(255))
    lens: Mapped[str | None] = mapped_column(String(255))
    gps_lat: Mapped[float | None] = mapped_column(Float)
    gps_lon: Mapped[float | None] = mapped_column(Float)
    gps_alt: Mapped[float | None] = mapped_column(Float)
    exif: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    phash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Filterable summaries of enrichment results (NULL: not computed yet).
    quality: Mapped[float | None] = mapped_column(Float)  # technical quality 0..1
    aesthetic: Mapped[float | None] = mapped_column(Float)
    has_text: Mapped[bool | None] = mapped_column(Boolean)

    files: Mapped[list[File]] = relationship(back_populates="asset", passive_deletes=True)


class File(Base):
    __tablename__ = "file"
    __table_args__ = (
        UniqueConstraint("collection_id", "path", name="uq_file_collection_path"),
        Index("ix_file_asset", "asset_id"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    # Absolute, normalized POSIX path. Byte-order collation on PostgreSQL so that folder-prefix range
    # queries (path >= 'dir/' AND path < 'dir0') use the index and mean what they say.
    path: Mapped[str] = mapped_column(PathText)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    missing: Mapped[bool] = mapped_column(Boolean, default=False)

    asset: Mapped[Asset] = relationship(back_populates="files")


class Embedding(Base):
    """One vector per (asset, model). Replaced rows get a new id, so `id` doubles as a change counter
    that in-memory indexes use to refresh incrementally."""

    __tablename__ = "embedding"
    __table_args__ = (
        UniqueConstraint("asset_id", "model", name="uq_embedding_asset_model"),
        Index("ix_embedding_space", "collection_id", "model", "id"),
        # Without AUTOINCREMENT SQLite hands a deleted top row id out again, and a re-embedded newest
        # vector would look unchanged to an index that refreshes by row id.
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(128))
    revision: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32 little-endian, L2-normalized
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Enrichment(Base):
    """The result of one enricher for one asset, with the model revision that made it. A row means
    "done for this revision" (status ok, skipped or failed), so re-runs compute only what is missing.
    `result` is the enricher's pydantic result as JSON; region, asset_tag and asset_text are indexes
    derived from it for filters, overlays and full-text search."""

    __tablename__ = "enrichment"
    __table_args__ = (Index("ix_enrichment_space", "collection_id", "enricher", "revision"),)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True)
    enricher: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(128))
    revision: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="ok")  # ok | skipped | failed
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Region(Base):
    """A box on a photo: a detected object (kind 'object') or a line of text (kind 'text')."""

    __tablename__ = "region"
    __table_args__ = (
        Index("ix_region_asset", "asset_id"),
        Index("ix_region_label", "collection_id", "kind", "label"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"))
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    label: Mapped[str | None] = mapped_column(String(128))
    text: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float] = mapped_column(Float)
    x0: Mapped[float] = mapped_column(Float)
    y0: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    caption: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(128))


class AssetTag(Base):
    """What a photo shows, as words to filter on: object labels and whole-image (zero-shot) tags."""

    __tablename__ = "asset_tag"
    __table_args__ = (Index("ix_asset_tag_tag", "collection_id", "tag"),)
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(128), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    score: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))  # objects | scene


class AssetText(Base):
    """The words of a photo for full-text search. SQLite indexes it with an FTS5 external-content
    table (asset_text_fts, kept in step by triggers); PostgreSQL with a generated tsvector column."""

    __tablename__ = "asset_text"
    asset_id: Mapped[int] = mapped_column(ForeignKey("asset.id", ondelete="CASCADE"), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"), index=True)
    caption: Mapped[str] = mapped_column(Text, default="")
    ocr: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[str] = mapped_column(Text, default="")


class VectorSpace(Base):
    """Row count and highest row id of each (collection, model) vector space, kept in the same
    transaction as every vector write, so an in-memory index checks for changes in O(1)."""

    __tablename__ = "vector_space"
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    rows: Mapped[int] = mapped_column(BigInteger, default=0)
    top_id: Mapped[int] = mapped_column(BigInteger, default=0)


class Job(Base):
    """What a person asked for (an ingest run, later reprocessing, duplicate search...) and its report."""

    __tablename__ = "job"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    collection_id: Mapped[int | None] = mapped_column(ForeignKey("collection.id", ondelete="SET NULL"))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class Task(Base):
    """A unit of a job's work, delivered at least once: a worker holds it under a lease that it
    renews; an expired lease puts it back in the queue. `status = 'dead'` is the dead-letter queue."""

    __tablename__ = "task"
    __table_args__ = (
        UniqueConstraint("key", name="uq_task_key"),
        Index("ix_task_job_status", "job_id", "status"),
        Index("ix_task_status_due", "status", "next_run_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))  # idempotency key: enqueueing it twice is a no-op
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # queued | leased | done | dead | blocked (waits for the job's other tasks) | cancelled
    status: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    next_run_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiKey(Base):
    """A key for the REST API. Only the SHA-256 of the secret is kept (the secret is shown once, at
    creation); `prefix` is the secret's first characters, enough to tell keys apart in a listing."""

    __tablename__ = "api_key"
    __table_args__ = (
        UniqueConstraint("key_hash", name="uq_api_key_hash"),
        Index("ix_api_key_prefix", "prefix"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))  # sha256 hex of the whole secret
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
