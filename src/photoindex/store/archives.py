"""Catalog side of archiving: batches and items, the snapshot taken before a batch moves anything,
the per-file commit that follows each move, and the exact restore that undo performs.

While a file is archived its `file` row is removed (the item keeps every column, the batch's
snapshot keeps the row as it was), so an ingest scan neither sees it (the walker skips the archive
folder) nor marks it missing; undo puts the same row back, id included. An asset left without a
present file gets `status = 'archived'`: listings and filtered search only show `active` assets,
and its vectors and enrichment rows stay untouched, so undo has nothing to recompute.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from photoindex.errors import CatalogError, ErrorCode
from photoindex.store.archive_models import ArchiveBatch, ArchiveItem
from photoindex.store.catalog import Catalog, _chunks
from photoindex.store.models import (
    Asset,
    AssetTag,
    AssetText,
    Embedding,
    Enrichment,
    File,
    Job,
    Region,
    utcnow,
)

ACTIVE, ARCHIVED = "active", "archived"
HIDDEN = (ARCHIVED,)  # statuses search and listings leave out
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class FileRow:
    """A `file` row, complete, as the snapshot keeps it."""

    id: int
    collection_id: int
    asset_id: int
    path: str
    size: int
    mtime_ns: int
    seen_at: datetime
    missing: bool

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "seen_at": self.seen_at.isoformat()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FileRow:
        return cls(**{**data, "seen_at": datetime.fromisoformat(data["seen_at"])})

    @classmethod
    def of(cls, f: File) -> FileRow:
        return cls(f.id, f.collection_id, f.asset_id, f.path, f.size, f.mtime_ns, f.seen_at, bool(f.missing))


@dataclass(frozen=True)
class PlannedMove:
    file_id: int
    asset_id: int
    src: str
    dst: str
    sha256: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ItemRecord:
    id: int
    batch_id: int
    file_id: int
    asset_id: int
    src: str
    dst: str
    sha256: str
    size: int
    mtime_ns: int
    status: str
    moved_at: datetime | None
    error: dict[str, Any] | None


@dataclass(frozen=True)
class BatchRecord:
    id: int
    collection_id: int
    created_at: datetime
    finished_at: datetime | None
    undone_at: datetime | None
    reason: str
    status: str
    manifest_path: str | None
    manifests: list[str]
    error: dict[str, Any] | None
    counts: dict[str, int]  # items by status
    bytes: int  # bytes of the items that are (or were) moved


def _item(row: ArchiveItem) -> ItemRecord:
    return ItemRecord(row.id, row.batch_id, row.file_id, row.asset_id, row.src, row.dst, row.sha256, row.size,
                      row.mtime_ns, row.status, row.moved_at, row.error)


def insert_for(catalog: Catalog, table: Any) -> Any:
    """An INSERT with the dialect's ON CONFLICT support (SQLite and PostgreSQL both have it)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql.insert if catalog.dialect == "postgresql" else sqlite.insert)(table)


# -- reading the catalog -------------------------------------------------------------------------
def file_rows(catalog: Catalog, collection_id: int, *, file_ids: Sequence[int] = (),
              asset_ids: Sequence[int] = ()) -> list[FileRow]:
    """The collection's file rows with these ids, or belonging to these assets, ordered by id."""
    out: dict[int, FileRow] = {}
    with catalog.session() as s:
        for column, values in ((File.id, file_ids), (File.asset_id, asset_ids)):
            for chunk in _chunks(sorted({int(v) for v in values})):
                for f in s.scalars(select(File).where(File.collection_id == collection_id, column.in_(chunk))):
                    out[f.id] = FileRow.of(f)
    return [out[k] for k in sorted(out)]


def asset_sha256(catalog: Catalog, asset_ids: Iterable[int]) -> dict[int, str]:
    out: dict[int, str] = {}
    with catalog.session() as s:
        for chunk in _chunks(sorted(set(asset_ids))):
            out.update((int(a), h) for a, h in s.execute(select(Asset.id, Asset.sha256).where(Asset.id.in_(chunk))))
    return out


def duplicate_files(catalog: Catalog, collection_id: int) -> dict[int, list[FileRow]]:
    """Assets of the collection with two or more present files (exact copies), with those files."""
    with catalog.session() as s:
        present = (File.collection_id == collection_id, File.missing.is_(False))
        multi = (select(File.asset_id).where(*present).group_by(File.asset_id).having(func.count() > 1))
        rows = s.scalars(select(File).where(*present, File.asset_id.in_(multi)).order_by(File.asset_id, File.id))
        out: dict[int, list[FileRow]] = {}
        for f in rows:
            out.setdefault(f.asset_id, []).append(FileRow.of(f))
    return out


def ingest_roots(catalog: Catalog, collection_id: int) -> list[str]:
    """The folder roots that ingest jobs of this collection were given (single-file roots, e.g.
    uploads, are left out: they name a file, not the top of a library)."""
    roots: set[str] = set()
    with catalog.session() as s:
        for params in s.scalars(select(Job.params).where(Job.kind == "ingest", Job.collection_id == collection_id)):
            for root in (params or {}).get("roots", []) or []:
                if isinstance(root, str) and root.startswith("/"):
                    roots.add(root.rstrip("/") or "/")
    return sorted(roots)


def hidden_asset_ids(catalog: Catalog, collection_id: int) -> np.ndarray:
    """Archived assets of the collection: what unfiltered search must leave out, since the vector
    index keeps their vectors (for an exact undo). An index seek (ix_asset_collection_status)."""
    with catalog.session() as s:
        ids = s.scalars(select(Asset.id).where(Asset.collection_id == collection_id, Asset.status.in_(HIDDEN))
                        .order_by(Asset.id)).all()
    return np.asarray(ids, dtype=np.int64)


def archived_counts(catalog: Catalog, collection_id: int) -> dict[str, int]:
    """Files now in an archive folder (moved items of batches not undone) and archived assets."""
    with catalog.session() as s:
        files, size = s.execute(
            select(func.count(), func.coalesce(func.sum(ArchiveItem.size), 0))
            .join(ArchiveBatch, ArchiveBatch.id == ArchiveItem.batch_id)
            .where(ArchiveBatch.collection_id == collection_id, ArchiveItem.status == "moved")).one()
        assets = s.scalar(select(func.count()).select_from(Asset).where(
            Asset.collection_id == collection_id, Asset.status == ARCHIVED))
    return {"files": int(files or 0), "bytes": int(size or 0), "assets": int(assets or 0)}


# -- snapshot and digest -------------------------------------------------------------------------
def _canonical(value: Any) -> Any:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return value


def _rows(s: Session, table: Any, column: Any, ids: Sequence[int]) -> list[dict[str, Any]]:
    cols = [c for c in table.__table__.columns if c.name != "tsv"]
    out = []
    for chunk in _chunks(list(ids)):
        for row in s.execute(select(*cols).where(column.in_(chunk))):
            out.append({c.name: _canonical(v) for c, v in zip(cols, row, strict=True)})
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True, default=str))


_DIGEST_TABLES = ((Asset, "id"), (File, "asset_id"), (Embedding, "asset_id"), (Enrichment, "asset_id"),
                  (AssetTag, "asset_id"), (AssetText, "asset_id"), (Region, "asset_id"))


def rows_digest(catalog: Catalog, asset_ids: Iterable[int]) -> str:
    """SHA-256 over every catalog row of these assets (asset, file, embedding, enrichment, tags, text,
    regions), order-independent: equal digests mean the index state of the assets is identical."""
    ids = sorted({int(a) for a in asset_ids})
    h = hashlib.sha256()
    with catalog.session() as s:
        for table, key in _DIGEST_TABLES:
            h.update(table.__tablename__.encode())
            for row in _rows(s, table, getattr(table, key), ids):
                h.update(json.dumps(row, sort_keys=True, default=str).encode())
    return h.hexdigest()


def take_snapshot(catalog: Catalog, collection_id: int, asset_ids: Iterable[int]) -> dict[str, Any]:
    """The index state of the affected assets before anything moves: every file row (complete: undo
    re-creates them from here), each asset's status, and what hangs off it (vectors per model and
    revision, enrichment, tags, text), with a digest of all their rows to verify an undo against."""
    ids = sorted({int(a) for a in asset_ids})
    assets: dict[str, dict[str, Any]] = {}
    files: dict[str, dict[str, Any]] = {}
    with catalog.session() as s:
        for chunk in _chunks(ids):
            for a in s.scalars(select(Asset).where(Asset.id.in_(chunk))):
                assets[str(a.id)] = {"status": a.status, "sha256": a.sha256, "files": [], "vectors": {},
                                     "enrichments": 0, "tags": 0, "text": False}
            for f in s.scalars(select(File).where(File.asset_id.in_(chunk)).order_by(File.id)):
                files[str(f.id)] = FileRow.of(f).to_json()
                assets[str(f.asset_id)]["files"].append(f.id)
            for aid, model, revision in s.execute(select(Embedding.asset_id, Embedding.model, Embedding.revision)
                                                  .where(Embedding.asset_id.in_(chunk))):
                assets[str(aid)]["vectors"][model] = revision
            for table, field in ((Enrichment, "enrichments"), (AssetTag, "tags")):
                for aid, n in s.execute(select(table.asset_id, func.count()).where(table.asset_id.in_(chunk))
                                        .group_by(table.asset_id)):
                    assets[str(aid)][field] = int(n)
            for aid in s.scalars(select(AssetText.asset_id).where(AssetText.asset_id.in_(chunk))):
                assets[str(aid)]["text"] = True
    return {"version": SNAPSHOT_VERSION, "taken_at": utcnow().isoformat(), "collection_id": collection_id,
            "assets": assets, "files": files, "digest": rows_digest(catalog, ids)}


# -- batches --------------------------------------------------------------------------------------
def create_batch(catalog: Catalog, collection_id: int, reason: str, snapshot: dict[str, Any],
                 moves: Sequence[PlannedMove]) -> tuple[int, list[ItemRecord]]:
    """The batch (pending) and its items (planned), in one transaction, before anything moves."""
    with catalog.session() as s:
        batch = ArchiveBatch(collection_id=collection_id, reason=reason, status="pending", snapshot=snapshot,
                             manifests={"paths": []}, created_at=utcnow())
        s.add(batch)
        s.flush()
        rows = [ArchiveItem(batch_id=batch.id, status="planned", **asdict(m)) for m in moves]
        s.add_all(rows)
        s.flush()
        return int(batch.id), [_item(r) for r in rows]


def set_manifests(catalog: Catalog, batch_id: int, paths: Sequence[str]) -> None:
    with catalog.session() as s:
        s.execute(update(ArchiveBatch).where(ArchiveBatch.id == batch_id).values(
            manifest_path=paths[0] if paths else None, manifests={"paths": list(paths)}))


def commit_moved(catalog: Catalog, item: ItemRecord) -> None:
    """After the file reached its archive path: the item is moved, the file row goes, and the asset
    is archived when no present file of it remains. One transaction, so the catalog follows the disk
    file by file and a crash leaves at most the one file in flight to reconcile."""
    with catalog.session() as s:
        s.execute(update(ArchiveItem).where(ArchiveItem.id == item.id)
                  .values(status="moved", moved_at=utcnow(), error=None))
        s.execute(delete(File).where(File.id == item.file_id))
        present = exists().where(File.asset_id == item.asset_id, File.missing.is_(False))
        s.execute(update(Asset).where(Asset.id == item.asset_id, Asset.status == ACTIVE, ~present)
                  .values(status=ARCHIVED))


def mark_skipped(catalog: Catalog, item_id: int, error: dict[str, Any]) -> None:
    with catalog.session() as s:
        s.execute(update(ArchiveItem).where(ArchiveItem.id == item_id).values(status="skipped", error=error))


def finish_batch(catalog: Catalog, batch_id: int, status: str, error: dict[str, Any] | None = None) -> None:
    with catalog.session() as s:
        s.execute(update(ArchiveBatch).where(ArchiveBatch.id == batch_id)
                  .values(status=status, finished_at=utcnow(), error=error))


def restore(catalog: Catalog, batch_id: int, item_ids: Sequence[int]) -> None:
    """Put the catalog back as the batch's snapshot says, for these items (their files are back at
    their paths): the file rows exactly (same ids; a row that took one of the paths meanwhile, e.g.
    from a scan of a half-moved batch, gives way), the assets' statuses; then the batch is undone."""
    with catalog.session() as s:
        batch = s.get(ArchiveBatch, batch_id)
        if batch is None:
            raise CatalogError(f"no archive batch {batch_id}", code=ErrorCode.BATCH_NOT_FOUND)
        snap = batch.snapshot or {}
        items = s.scalars(select(ArchiveItem).where(ArchiveItem.batch_id == batch_id,
                                                    ArchiveItem.id.in_(list(item_ids)))).all()
        rows = [FileRow.from_json(snap["files"][str(i.file_id)]) for i in items if str(i.file_id) in snap["files"]]
        for row in rows:
            s.execute(delete(File).where(File.collection_id == row.collection_id, File.path == row.path,
                                         File.id != row.id))
            s.execute(delete(File).where(File.id == row.id))
        s.flush()
        if rows:
            s.execute(insert_for(catalog, File), [asdict(r) for r in rows])
        for asset_id in sorted({i.asset_id for i in items}):
            state = snap.get("assets", {}).get(str(asset_id))
            if state is not None:
                s.execute(update(Asset).where(Asset.id == asset_id).values(status=state["status"]))
        s.execute(update(ArchiveItem).where(ArchiveItem.batch_id == batch_id, ArchiveItem.id.in_(list(item_ids)))
                  .values(status="restored"))
        batch.status = "undone"
        batch.undone_at = utcnow()


def get_batch(catalog: Catalog, batch_id: int) -> BatchRecord:
    found = _batches(catalog, [ArchiveBatch.id == batch_id], limit=1)
    if not found:
        raise CatalogError(f"no archive batch {batch_id}", code=ErrorCode.BATCH_NOT_FOUND,
                           hint="list batches with `photoindex archive list`")
    return found[0]


def batch_snapshot(catalog: Catalog, batch_id: int) -> dict[str, Any]:
    with catalog.session() as s:
        snap = s.scalar(select(ArchiveBatch.snapshot).where(ArchiveBatch.id == batch_id))
    return snap or {}


def list_batches(catalog: Catalog, collection_id: int | None = None, limit: int = 20) -> list[BatchRecord]:
    conds = [ArchiveBatch.collection_id == collection_id] if collection_id is not None else []
    return _batches(catalog, conds, limit=limit)


def _batches(catalog: Catalog, conds: list[Any], *, limit: int) -> list[BatchRecord]:
    with catalog.session() as s:
        batches = s.scalars(select(ArchiveBatch).where(*conds).order_by(ArchiveBatch.id.desc()).limit(limit)).all()
        ids = [b.id for b in batches]
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        sizes: dict[int, int] = dict.fromkeys(ids, 0)
        if ids:
            for bid, status, n, size in s.execute(
                    select(ArchiveItem.batch_id, ArchiveItem.status, func.count(), func.sum(ArchiveItem.size))
                    .where(ArchiveItem.batch_id.in_(ids)).group_by(ArchiveItem.batch_id, ArchiveItem.status)):
                counts[bid][status] = int(n)
                if status in ("moved", "restored"):
                    sizes[bid] += int(size or 0)
        return [BatchRecord(b.id, b.collection_id, b.created_at, b.finished_at, b.undone_at, b.reason, b.status,
                            b.manifest_path, list((b.manifests or {}).get("paths", [])), b.error, counts[b.id],
                            sizes[b.id]) for b in batches]


def batch_items(catalog: Catalog, batch_id: int) -> list[ItemRecord]:
    with catalog.session() as s:
        return [_item(r) for r in s.scalars(select(ArchiveItem).where(ArchiveItem.batch_id == batch_id)
                                            .order_by(ArchiveItem.id))]


