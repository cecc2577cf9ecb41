"""Ingest: scan server-side folders below the allowed roots, or upload photos; follow the job."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from sqlalchemy import and_, or_, select
from starlette.concurrency import run_in_threadpool

from photoindex.api.deps import API_PREFIX, get_rt, job_urls, note_job
from photoindex.api.errors import PATH_NOT_ALLOWED, ApiError
from photoindex.api.schemas import (
    IngestResult,
    IngestStatus,
    IngestTotals,
    JobAccepted,
    ProcessedFile,
    ScanRequest,
    UploadedFile,
)
from photoindex.api.uploads import MultipartSink, multipart_body_schema
from photoindex.errors import CatalogError, ErrorCode, PhotoindexError
from photoindex.ingest.tasks import FINALIZE, job_report, submit_ingest
from photoindex.jobs.service import progress
from photoindex.runtime import Runtime
from photoindex.store.catalog import folder_range
from photoindex.store.jobs import FINISHED_JOB, JobStore
from photoindex.store.models import Asset, File

router = APIRouter(prefix=f"{API_PREFIX}/ingest", tags=["ingest"])
MAX_UPLOAD_FILES = 1000


def allowed_roots(rt: Runtime) -> list[str]:
    roots = [*rt.settings.allowed_roots, rt.settings.uploads_dir]
    return [os.path.realpath(os.path.expanduser(os.fspath(r))) for r in roots]


def check_allowed(rt: Runtime, raw: str) -> str:
    """The real path of `raw` (symlinks and '..' resolved) when it lies below an allowed root;
    403 otherwise, 404 when it is allowed but does not exist."""
    if not raw.startswith("/") or "\x00" in raw:
        raise ApiError(403, PATH_NOT_ALLOWED, "scan paths must be absolute paths on the server")
    try:
        real = os.path.realpath(raw)
    except (OSError, ValueError) as exc:
        raise ApiError(403, PATH_NOT_ALLOWED, f"cannot resolve {raw!r}: {exc}") from exc
    for root in allowed_roots(rt):
        if real == root or real.startswith(root.rstrip("/") + "/"):
            break
    else:
        raise ApiError(403, PATH_NOT_ALLOWED, f"{raw!r} is not below a folder this server may read",
                       hint="add its folder to allowed_roots (PHOTOINDEX_ALLOWED_ROOTS) on the server",
                       details={"path": raw})
    if not os.path.exists(real):
        raise PhotoindexError(f"{raw!r} does not exist on the server", code=ErrorCode.FILE_NOT_FOUND)
    return real


def _accepted(request: Request, job_id: int, roots: list[str], files: list[UploadedFile] | None = None) -> JobAccepted:
    note_job(request, job_id)
    dispatcher = request.app.state.dispatcher
    dispatcher(job_id)
    return JobAccepted(job_id=job_id, status="queued", roots=roots, files=files or [], **job_urls(job_id))


@router.post("/scan", response_model=JobAccepted, status_code=202,
             summary="Ingest folders on the server (below the allowed roots); returns the job at once")
def scan(body: ScanRequest, request: Request, rt: Runtime = Depends(get_rt)) -> JobAccepted:
    roots = list(dict.fromkeys(check_allowed(rt, p) for p in body.all_paths()))
    job_id = submit_ingest(rt, roots, collection=body.collection, embed=body.embed, priority=body.priority)
    return _accepted(request, job_id, roots)


@router.post("/upload", response_model=JobAccepted, status_code=202,
             summary="Upload photos (multipart, field `files`, one or many); they are ingested as one job",
             openapi_extra=multipart_body_schema("files", many=True, description="The photos."))
async def upload(request: Request, collection: str | None = Query(default=None, min_length=1, max_length=128),
                 embed: bool = Query(default=True)) -> JobAccepted:
    rt: Runtime = request.app.state.rt
    await run_in_threadpool(rt.collection, collection)  # 404 before reading a byte of the body
    batch = uuid.uuid4().hex
    uploads = rt.settings.uploads_dir
    incoming = uploads / f".incoming-{batch}"
    sink = MultipartSink(incoming, max_bytes=rt.settings.upload_max_bytes, max_files=MAX_UPLOAD_FILES)
    await sink.receive(request)
    if not sink.files:
        await run_in_threadpool(_remove_tree, incoming)
        raise ApiError(400, str(ErrorCode.INVALID_REQUEST), "no files in the upload",
                       hint="send them as multipart/form-data file parts named `files`")
    final = uploads / batch
    os.replace(incoming, final)  # the job sees a complete folder, never a half-written one
    files = [UploadedFile(filename=f.filename, stored_as=str(final / f.path.name), bytes=f.bytes, sha256=f.sha256,
                          format=str(f.format)) for f in sink.files]
    try:
        job_id = await run_in_threadpool(
            lambda: submit_ingest(rt, [final], collection=collection, embed=embed))
    except BaseException:
        await run_in_threadpool(_remove_tree, final)
        raise
    return await run_in_threadpool(_accepted, request, job_id, [str(final)], files)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def processed_files(rt: Runtime, job: dict[str, Any], moved_assets: set[int],
                    limit: int) -> tuple[list[ProcessedFile], bool]:
    """The files this job catalogued, from the catalog: paths below the job's roots that the job
    committed (seen since it was created). An asset created by the job is `new` for its first path and
    `duplicate` for any other; an older asset is `moved` when the finalizer recognised a move,
    `duplicate` otherwise."""
    params = job["params"]
    collection_id, since = params.get("collection_id"), job["created_at"]
    if collection_id is None or not params.get("roots"):
        return [], False
    ranges = []
    for root in params["roots"]:
        lo, hi = folder_range(root)
        ranges.append(or_(File.path == root, and_(File.path >= lo, File.path < hi)))
    query = (select(File.path, File.size, Asset.id, Asset.sha256, Asset.mime, Asset.created_at)
             .join(Asset, Asset.id == File.asset_id)
             .where(File.collection_id == collection_id, File.missing.is_(False), File.seen_at >= since, or_(*ranges))
             .order_by(File.id).limit(limit + 1))
    with rt.catalog.session() as s:
        rows = s.execute(query).all()
    out: list[ProcessedFile] = []
    firsts: set[int] = set()
    for path, size, asset_id, sha256, mime, created in rows[:limit]:
        if created is not None and created >= since and asset_id not in firsts:
            source = "new"
            firsts.add(asset_id)
        elif asset_id in moved_assets:
            source = "moved"
        else:
            source = "duplicate"
        out.append(ProcessedFile(path=path, source=source, asset_id=asset_id, sha256=sha256, size=size, mime=mime))
    out.sort(key=lambda f: f.path)
    return out, len(rows) > limit


def ingest_status(rt: Runtime, job_id: int, files_limit: int) -> IngestStatus:
    state = progress(rt, job_id)
    if state["kind"] != "ingest":
        raise CatalogError(f"job {job_id} is a {state['kind']} job, not an ingest", code=ErrorCode.JOB_NOT_FOUND)
    finished = state["status"] in FINISHED_JOB
    result, notice = None, None
    if finished and state["collection_id"] is None:
        notice = "the job's collection was deleted, and its report with it"
    elif finished:
        report = job_report(rt, job_id)
        fin = next(iter(JobStore(rt.catalog).results(job_id, FINALIZE)), {})
        files, truncated = processed_files(rt, state, set(fin.get("moved_assets", [])), files_limit)
        totals = IngestTotals(
            files_seen=report.files_seen, processed=report.processed, failed=report.failed,
            from_cache=report.skipped_unchanged + report.exact_duplicates + report.embeddings_reused,
            skipped_unchanged=report.skipped_unchanged, exact_duplicates=report.exact_duplicates,
            embeddings_reused=report.embeddings_reused, moved=report.moved, missing=report.missing,
            embedded=report.embedded, embeddings_pending=report.embeddings_pending)
        result = IngestResult(totals=totals, processed_files=files, processed_files_truncated=truncated,
                              failed_files=report.errors, report=report)
    return IngestStatus(job_id=job_id, status=state["status"], finished=finished, created_at=state["created_at"],
                        started_at=state["started_at"], finished_at=state["finished_at"], tasks=state["tasks"],
                        files=state["files"], result=result, notice=notice)


@router.get("/status/{job_id}", response_model=IngestStatus,
            summary="Progress of an ingest job and, once it has finished, its report")
def status(request: Request, job_id: int = PathParam(ge=1, le=2**62),
           files_limit: int = Query(default=1000, ge=0, le=100_000, description="Most processed files listed"),
           rt: Runtime = Depends(get_rt)) -> IngestStatus:
    note_job(request, job_id)
    return ingest_status(rt, job_id, files_limit)
