"""Archive tables: every move that curation makes, so that it can be undone.

An `ArchiveBatch` is one archive operation (what a person asked for, with why); an `ArchiveItem` is
one file of it: where it was, where it went, and how far the move got. Items are written as
`planned` before anything moves (write-ahead, like the manifest on disk), so a batch interrupted at
any point can be rolled back from what the catalog says and what is actually on disk.

The tables register on the catalog's `Base`; migration 0007 creates them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from photoindex.store.models import Asset, Base, BigId, PathText, utcnow

BATCH_STATUSES = ("pending", "done", "undone", "failed")
ITEM_STATUSES = ("planned", "moved", "restored", "skipped")


# Archived assets are looked up per search (to leave them out): migration 0007 adds this to `asset`.
Index("ix_asset_collection_status", Asset.collection_id, Asset.status)


class ArchiveBatch(Base):
    __tablename__ = "archive_batch"
    __table_args__ = (Index("ix_archive_batch_collection", "collection_id", "id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collection.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    # pending (moving) | done | undone | failed (stopped by an error; what moved stays undoable)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # The index state of the affected assets and files before anything moved (see curation/archive.py)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The first manifest; `manifests` lists every one (a batch spanning several ingest roots has several)
    manifest_path: Mapped[str | None] = mapped_column(Text)
    manifests: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ArchiveItem(Base):
    __tablename__ = "archive_item"
    __table_args__ = (Index("ix_archive_item_batch", "batch_id", "id"), Index("ix_archive_item_asset", "asset_id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("archive_batch.id", ondelete="CASCADE"))
    # No foreign keys to file/asset: the file row is removed while archived and re-created (same id) on undo
    file_id: Mapped[int] = mapped_column(BigInteger)
    asset_id: Mapped[int] = mapped_column(BigInteger)
    src: Mapped[str] = mapped_column(PathText)
    dst: Mapped[str] = mapped_column(PathText)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    moved_at: Mapped[datetime | None] = mapped_column(DateTime)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
