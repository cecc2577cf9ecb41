"""Archive = move, never delete; and undo.

`archive_files` moves files of a collection into the archive folder of their library
(`<root>/<archive_dir_name>/<path below root>`) as one *batch*:

1. plan: each file's destination, chosen free (never overwriting anything);
2. snapshot: the index state of the affected assets (file rows, statuses, vectors, enrichment...),
   stored with the batch, and the items written as `planned` — all before anything moves;
3. per file: a manifest line (`<archive dir>/manifest-<batch>.jsonl`: from, to, sha256, when, why)
   is written and fsynced, the file moves (rename, or copy-verify-remove across devices), then one
   transaction marks the item moved, removes the file row and archives the asset if no present file
   of it remains.

`undo` puts every file back under the same rules and restores the snapshot's rows exactly. It also
rolls back a batch that a crash left `pending`: each file may be at its source, at its destination,
or at both (a cross-device copy whose source was not yet removed); what is on disk decides.

Which root: a file row does not record the ingest job that found it, so the root is inferred from
the collection's ingest jobs: the *outermost* folder root that contains the file (the library the
person named; hot-folder and re-ingest jobs name sub-folders, and using those would scatter archive
folders through the tree). A file under no known root uses its own folder. The walker skips folders
with the archive name at any depth, so archived files are never ingested again, whichever root.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field

from photoindex.curation.moves import (
    Manifest,
    Where,
    content_at,
    crash_point,
    free_path,
    move,
    now_iso,
    prune_empty_dirs,
    temp_name,
)
from photoindex.errors import CatalogError, ErrorCode, PhotoindexError
from photoindex.runtime import Runtime
from photoindex.schemas import CollectionInfo, UtcDateTime
from photoindex.store import archives
from photoindex.store.archives import BatchRecord, FileRow, ItemRecord, PlannedMove
from photoindex.store.vectors import VectorRecord, VectorSpace, payload_for

CONFLICT = ErrorCode.ARCHIVE_CONFLICT
NOT_FOUND = ErrorCode.BATCH_NOT_FOUND
ALREADY_UNDONE, PATHS_TAKEN = "already_undone", "paths_taken"  # details["reason"] of a refused undo

# Folders whose copy of a photo is the one to let go first (compared case-insensitively, by component)
TRANSIENT_DIRS = frozenset({"download", "downloads", "tmp", "temp", "cache", ".cache", "trash", ".trash",
                            "incoming", "inbox", "unsorted", "import", "imports", "export", "exports"})
_COPY_NAME = re.compile(r"(?:[ _-](?:copy|kopie|copie|copia)(?:[ _-]?\d+)?|\s?\(\d+\)|~\d+)$", re.IGNORECASE)


class ArchiveItemOut(BaseModel):
    id: int | None = None
    file_id: int
    asset_id: int
    src: str
    dst: str
    sha256: str
    size: int
    status: str = Field(description="planned | moved | restored | skipped")
    error: dict[str, Any] | None = None


class ArchiveBatchOut(BaseModel):
    batch_id: int | None = Field(default=None, description="absent for a dry run or when there was nothing to archive")
    collection: str
    status: str = Field(description="pending | done | undone | failed; 'planned' for a dry run")
    reason: str
    dry_run: bool = False
    created_at: UtcDateTime | None = None
    finished_at: UtcDateTime | None = None
    undone_at: UtcDateTime | None = None
    counts: dict[str, int] = Field(default_factory=dict, description="items by status")
    files: int = 0
    bytes: int = 0
    assets_archived: int = Field(default=0, description="assets with no present file left (hidden from search)")
    manifest_paths: list[str] = Field(default_factory=list)
    verified: bool | None = Field(default=None, description="undo: the assets' catalog rows hash as in the snapshot")
    error: dict[str, Any] | None = None
    items: list[ArchiveItemOut] | None = None


# -- choosing what to keep and where things go ----------------------------------------------------
def keep_rank(row: FileRow) -> tuple[Any, ...]:
    """The order in which copies of one content are kept (smallest first): outside download/tmp-like
    folders, then not named like a copy ("x copy.jpg", "x (1).jpg"), then the earliest modification
    time (the original usually predates its copies), then the shortest path, then the path."""
    parts = PurePosixPath(row.path).parts[:-1]
    transient = any(p.lower() in TRANSIENT_DIRS for p in parts)
    copy_named = bool(_COPY_NAME.search(PurePosixPath(row.path).stem))
    return (transient, copy_named, row.mtime_ns, len(row.path), row.path)


def archive_root(path: str, roots: Sequence[str]) -> str:
    """The library root a file belongs to: the outermost ingest root containing it, else its folder."""
    for root in sorted(roots, key=len):
        if path.startswith(root.rstrip("/") + "/"):
            return root
    return str(PurePosixPath(path).parent)


def destination(path: str, roots: Sequence[str], archive_dir_name: str) -> tuple[str, str]:
    """(archive folder, destination path) of a file: `<root>/<archive dir>/<path below root>`."""
    root = archive_root(path, roots)
    archive_dir = str(PurePosixPath(root) / archive_dir_name)
    return archive_dir, str(PurePosixPath(archive_dir) / PurePosixPath(path).relative_to(root))


def _archive_dir_of(dst: str, archive_dir_name: str) -> str:
    p = PurePosixPath(dst)
    for parent in p.parents:
        if parent.name == archive_dir_name:
            return str(parent)
    return str(p.parent)


def plan_moves(rt: Runtime, coll: CollectionInfo, rows: Sequence[FileRow]) -> list[PlannedMove]:
    roots = archives.ingest_roots(rt.catalog, coll.id)
    hashes = archives.asset_sha256(rt.catalog, (r.asset_id for r in rows))
    taken: set[str] = set()
    out = []
    for row in rows:
        _, dst = destination(row.path, roots, rt.settings.archive_dir_name)
        dst = free_path(dst, taken)
        taken.add(dst)
        out.append(PlannedMove(row.id, row.asset_id, row.path, dst, hashes[row.asset_id], row.size, row.mtime_ns))
    return out


# -- archiving ---------------------------------------------------------------------------------------
def archive_files(rt: Runtime, collection: str | None = None, *, file_ids: Sequence[int] = (),
                  selections: Iterable[tuple[int, int | None]] = (), reason: str = "archived",
                  dry_run: bool = False) -> ArchiveBatchOut:
    """Archive files of a collection: the files `file_ids`, and for each `(asset_id, keep)` of
    `selections` every present file of the asset but `keep` (None: all of them)."""
    coll = rt.collection(collection)
    rows = _selected_rows(rt, coll, file_ids, dict(selections))
    return _archive_rows(rt, coll, rows, reason=reason, dry_run=dry_run)


def archive_selection(rt: Runtime, collection: str | None = None, *, asset_ids: Sequence[int] = (),
                      file_ids: Sequence[int] = (), keep: Mapping[int, int] | None = None,
                      reason: str = "selection", dry_run: bool = False) -> ArchiveBatchOut:
    """Archive whole assets (every present file, but `keep[asset]` when given) and single files. An
    empty selection archives nothing (no batch)."""
    keep = keep or {}
    return archive_files(rt, collection, file_ids=file_ids, selections=[(a, keep.get(a)) for a in asset_ids],
                         reason=reason, dry_run=dry_run)


def archive_exact(rt: Runtime, collection: str | None = None, *, dry_run: bool = False,
                  reason: str = "exact duplicates") -> ArchiveBatchOut:
    """For every content present at several paths, keep one (`keep_rank`) and archive the others."""
    coll = rt.collection(collection)
    rows = []
    for files in archives.duplicate_files(rt.catalog, coll.id).values():
        rows += sorted(files, key=keep_rank)[1:]
    return _archive_rows(rt, coll, rows, reason=reason, dry_run=dry_run)


def _selected_rows(rt: Runtime, coll: CollectionInfo, file_ids: Sequence[int],
                   selections: Mapping[int, int | None]) -> list[FileRow]:
    by_id = {r.id: r for r in archives.file_rows(rt.catalog, coll.id, file_ids=file_ids)}
    unknown = sorted({int(i) for i in file_ids} - by_id.keys())
    if unknown:
        raise CatalogError(f"no file with id {unknown[0]} in collection {coll.name!r}",
                           code=ErrorCode.ASSET_NOT_FOUND, details={"file_ids": unknown[:50]},
                           hint="file ids are listed by `photoindex info` and GET /assets/{id}")
    of_assets = archives.file_rows(rt.catalog, coll.id, asset_ids=list(selections))
    found_assets = {r.asset_id for r in of_assets}
    missing_assets = sorted(set(selections) - found_assets)
    if missing_assets:
        raise CatalogError(f"no asset with id {missing_assets[0]} and files in collection {coll.name!r}",
                           code=ErrorCode.ASSET_NOT_FOUND, details={"asset_ids": missing_assets[:50]})
    for r in of_assets:
        if not r.missing and r.id != selections[r.asset_id]:
            by_id.setdefault(r.id, r)
    return [by_id[k] for k in sorted(by_id)]


def _archive_rows(rt: Runtime, coll: CollectionInfo, rows: Sequence[FileRow], *, reason: str,
                  dry_run: bool) -> ArchiveBatchOut:
    present = [r for r in rows if not r.missing]
    moves = plan_moves(rt, coll, present)
    if dry_run or not moves:
        planned = [ArchiveItemOut(file_id=m.file_id, asset_id=m.asset_id, src=m.src, dst=m.dst, sha256=m.sha256,
                                  size=m.size, status="planned") for m in moves]
        return ArchiveBatchOut(batch_id=None, collection=coll.name, status="planned" if dry_run else "done",
                               reason=reason, dry_run=dry_run, counts={"planned": len(planned)} if planned else {},
                               files=len(planned), bytes=sum(m.size for m in moves), items=planned)
    snapshot = archives.take_snapshot(rt.catalog, coll.id, {m.asset_id for m in moves})
    batch_id, items = archives.create_batch(rt.catalog, coll.id, reason, snapshot, moves)
    manifests = {item.id: Manifest(Path(_manifest_path(item.dst, rt, batch_id))) for item in items}
    archives.set_manifests(rt.catalog, batch_id, sorted({str(m.path) for m in manifests.values()}))
    try:
        for item in items:
            _archive_one(rt, item, manifests[item.id], reason)
    except Exception as exc:
        # Unexpected (the catalog went away, a disk error on the manifest...): what moved stays recorded
        # and undoable; the batch says it stopped.
        error = exc.to_dict() if isinstance(exc, PhotoindexError) else {"code": str(ErrorCode.INTERNAL),
                                                                         "message": str(exc)}
        archives.finish_batch(rt.catalog, batch_id, "failed", error)
        raise
    archives.finish_batch(rt.catalog, batch_id, "done")
    _refresh_index(rt, coll, [m.asset_id for m in moves])
    return batch_out(rt, batch_id, items=True)


def _manifest_path(dst: str, rt: Runtime, batch_id: int) -> str:
    return str(PurePosixPath(_archive_dir_of(dst, rt.settings.archive_dir_name)) / f"manifest-{batch_id}.jsonl")


def _archive_one(rt: Runtime, item: ItemRecord, manifest: Manifest, reason: str) -> None:
    where = content_at(item.src, item.sha256, item.size, item.mtime_ns)
    if where is not Where.SAME:
        what = "is gone" if where is Where.ABSENT else "changed since it was ingested"
        archives.mark_skipped(rt.catalog, item.id, {"code": str(ErrorCode.FILE_NOT_FOUND if where is Where.ABSENT
                                                                 else ErrorCode.FILE_UNREADABLE),
                                                    "message": f"{item.src} {what}; not archived"})
        return
    manifest.append({"op": "archive", "batch": item.batch_id, "item": item.id, "from": item.src, "to": item.dst,
                     "sha256": item.sha256, "size": item.size, "when": now_iso(), "why": reason})
    crash_point("after_manifest")
    try:
        move(item.src, item.dst, item.sha256, temp_name(item.dst, item.batch_id, item.id))
    except PhotoindexError as exc:
        archives.mark_skipped(rt.catalog, item.id, exc.to_dict())
        return
    except OSError as exc:
        archives.mark_skipped(rt.catalog, item.id, {"code": str(ErrorCode.FILE_UNREADABLE),
                                                    "message": f"cannot move {item.src}: {exc.strerror or exc}"})
        return
    crash_point("after_move")
    archives.commit_moved(rt.catalog, item)
    crash_point("after_commit")


# -- undo -----------------------------------------------------------------------------------------
def undo(rt: Runtime, batch_id: int) -> ArchiveBatchOut:
    """Move every file of the batch back and restore the catalog rows as the snapshot has them.
    Refuses (and changes nothing) when a source path now holds other content, or a file is nowhere."""
    batch = archives.get_batch(rt.catalog, batch_id)
    if batch.status == "undone":
        raise PhotoindexError(f"archive batch {batch_id} is already undone", code=CONFLICT,
                              details={"batch_id": batch_id, "status": batch.status, "reason": ALREADY_UNDONE})
    items = [i for i in archives.batch_items(rt.catalog, batch_id) if i.status in ("planned", "moved")]
    actions = _plan_undo(items)
    conflicts = [{"item": i.id, "src": i.src, "dst": i.dst, "problem": a} for i, a in actions if a.startswith("!")]
    if conflicts:
        raise PhotoindexError(
            f"cannot undo archive batch {batch_id}: {len(conflicts)} file(s) cannot go back",
            code=CONFLICT, details={"batch_id": batch_id, "reason": PATHS_TAKEN, "conflicts": conflicts[:100]},
            hint="move away what now occupies those paths (or put the archived files back), then undo again")
    for item, action in actions:
        _undo_one(rt, item, action)
    archives.restore(rt.catalog, batch_id, [i.id for i in items])
    snap = archives.batch_snapshot(rt.catalog, batch_id)
    assets = [int(a) for a in snap.get("assets", {})]
    verified = archives.rows_digest(rt.catalog, assets) == snap.get("digest") if assets else True
    coll_name = _collection_name(rt, batch.collection_id)
    _refresh_index(rt, rt.collection(coll_name), assets)
    out = batch_out(rt, batch_id, items=True)
    out.verified = verified
    return out


def _plan_undo(items: Sequence[ItemRecord]) -> list[tuple[ItemRecord, str]]:
    """What undo does per item, from what is on disk: "stay" (at its source), "back" (move it),
    "drop-copy" (identical at both: the archive copy goes), or "!occupied" / "!lost" (refuse)."""
    out = []
    for item in items:
        at_src = content_at(item.src, item.sha256, item.size, item.mtime_ns)
        at_dst = content_at(item.dst, item.sha256, item.size, item.mtime_ns)
        if at_dst is Where.SAME and at_src is Where.SAME:
            # verify both by their bytes before letting one of them go
            same = (content_at(item.src, item.sha256, item.size, item.mtime_ns, verify=True) is Where.SAME
                    and content_at(item.dst, item.sha256, item.size, item.mtime_ns, verify=True) is Where.SAME)
            out.append((item, "drop-copy" if same else "!occupied"))
        elif at_dst is Where.SAME:
            out.append((item, "back" if at_src is Where.ABSENT else "!occupied"))
        elif at_src is Where.SAME:
            out.append((item, "stay"))
        else:
            out.append((item, "!occupied" if at_src is Where.OTHER else "!lost"))
    return out


def _undo_one(rt: Runtime, item: ItemRecord, action: str) -> None:
    tmp_out, tmp_back = temp_name(item.dst, item.batch_id, item.id), temp_name(item.src, item.batch_id, item.id)
    for tmp in (tmp_out, tmp_back):  # half-made copies of an interrupted move are ours to remove
        if os.path.lexists(tmp):
            os.unlink(tmp)
    if action == "stay":
        return
    manifest = Manifest(Path(_manifest_path(item.dst, rt, item.batch_id)))
    if action == "drop-copy":
        manifest.append({"op": "drop-copy", "batch": item.batch_id, "item": item.id, "path": item.dst,
                         "kept": item.src, "sha256": item.sha256, "when": now_iso(), "why": "undo"})
        os.unlink(item.dst)
    else:
        manifest.append({"op": "restore", "batch": item.batch_id, "item": item.id, "from": item.dst,
                         "to": item.src, "sha256": item.sha256, "when": now_iso(), "why": "undo"})
        move(item.dst, item.src, item.sha256, tmp_back)
    prune_empty_dirs(str(PurePosixPath(item.dst).parent), _archive_dir_of(item.dst, rt.settings.archive_dir_name))


# -- reading batches --------------------------------------------------------------------------------
def _collection_name(rt: Runtime, collection_id: int) -> str:
    for c in rt.catalog.list_collections():
        if c.id == collection_id:
            return c.name
    raise CatalogError(f"no collection with id {collection_id}", code=ErrorCode.COLLECTION_NOT_FOUND)


def _out(rt: Runtime, b: BatchRecord, names: Mapping[int, str], items: list[ItemRecord] | None) -> ArchiveBatchOut:
    snap_assets = None
    archived = 0
    if items is not None:
        snap_assets = {i.asset_id for i in items if i.status == "moved"}
        archived = len(snap_assets & set(archives.hidden_asset_ids(rt.catalog, b.collection_id).tolist()))
    return ArchiveBatchOut(
        batch_id=b.id, collection=names.get(b.collection_id, str(b.collection_id)), status=b.status, reason=b.reason,
        created_at=b.created_at, finished_at=b.finished_at, undone_at=b.undone_at, counts=b.counts,
        files=sum(b.counts.values()), bytes=b.bytes, assets_archived=archived, manifest_paths=b.manifests,
        error=b.error,
        items=None if items is None else [ArchiveItemOut(id=i.id, file_id=i.file_id, asset_id=i.asset_id, src=i.src,
                                                         dst=i.dst, sha256=i.sha256, size=i.size, status=i.status,
                                                         error=i.error) for i in items])


def batch_out(rt: Runtime, batch_id: int, *, items: bool = False) -> ArchiveBatchOut:
    b = archives.get_batch(rt.catalog, batch_id)
    names = {c.id: c.name for c in rt.catalog.list_collections()}
    return _out(rt, b, names, archives.batch_items(rt.catalog, batch_id) if items else None)


def list_batches(rt: Runtime, collection: str | None = None, *, limit: int = 20,
                 all_collections: bool = False) -> list[ArchiveBatchOut]:
    """Recent batches, newest first (of one collection, the selected one by default)."""
    coll_id = None if all_collections else rt.collection(collection).id
    names = {c.id: c.name for c in rt.catalog.list_collections()}
    return [_out(rt, b, names, None) for b in archives.list_batches(rt.catalog, coll_id, limit=limit)]


# -- the vector index ----------------------------------------------------------------------------------
def _refresh_index(rt: Runtime, coll: CollectionInfo, asset_ids: Sequence[int]) -> None:
    """Backends with their own copy (Qdrant) filter on a payload of present paths: update it for the
    assets whose files moved. The exact index reads the catalog and needs nothing."""
    if not asset_ids or coll.model is None or coll.vector_size is None or not rt.index.stores_vectors:
        return
    space = VectorSpace(coll.id, coll.name, coll.model, coll.vector_size)
    assets = rt.catalog.get_assets(sorted(set(asset_ids)))
    records = []
    for asset_id, asset in assets.items():
        vector = rt.catalog.get_vector(asset_id, coll.model)
        if vector is not None:
            records.append(VectorRecord(asset_id, vector, payload_for(asset)))
    if records:
        rt.index.upsert(space, records)
