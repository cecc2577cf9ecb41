"""Search by text, by an uploaded image, and "more like this asset"; pages are k results from offset."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from photoindex.api.deps import API_PREFIX, get_rt
from photoindex.api.schemas import DateTimeText, Hit, SearchRequest, SearchResponse
from photoindex.api.uploads import MultipartSink, multipart_body_schema
from photoindex.errors import ErrorCode, PhotoindexError
from photoindex.runtime import Runtime
from photoindex.schemas import SearchFilters, SearchHit
from photoindex.search.service import embed_file, rank, search_text

router = APIRouter(prefix=API_PREFIX, tags=["search"])


def page(hits: list[SearchHit], k: int, offset: int) -> list[Hit]:
    """Results offset..offset+k (the index was asked for k+offset), with the capture time as text:
    it is wall-clock time, with an offset only when the camera recorded one."""
    return [Hit(**h.model_dump(exclude={"taken_at"}), taken_at=h.taken_at.isoformat() if h.taken_at else None)
            for h in hits[offset : offset + k]]


@router.post("/search", response_model=SearchResponse, summary="Photos matching a text description")
def search(body: SearchRequest, rt: Runtime = Depends(get_rt)) -> SearchResponse:
    coll = rt.collection(body.collection)
    filters = SearchFilters(**body.filters.model_dump()) if body.filters else None
    hits = search_text(rt, body.text, collection=coll.name, k=body.k + body.offset, filters=filters,
                       model=body.model, mode=body.mode)
    return SearchResponse(collection=coll.name, model=body.model or rt.model_name(coll), k=body.k, offset=body.offset,
                          hits=page(hits, body.k, body.offset))


@router.post("/search/image", response_model=SearchResponse,
             summary="Photos similar to an uploaded image (multipart field `image`)",
             openapi_extra=multipart_body_schema("image", many=False, description="The query image."))
async def search_image(
    request: Request,
    k: int = Query(default=20, ge=1, le=1000),
    offset: int = Query(default=0, ge=0, le=10000),
    collection: str | None = Query(default=None, min_length=1, max_length=128),
    date_from: DateTimeText | None = Query(default=None, description="Taken at or after (wall-clock time)"),
    date_to: DateTimeText | None = Query(default=None, description="Taken at or before (wall-clock time)"),
    camera: str | None = Query(default=None, max_length=255),
    path_prefix: str | None = Query(default=None, max_length=4096),
    tags: list[str] = Query(default=[], max_length=20, description="Every one of these tags or object labels"),
    has_text: bool | None = Query(default=None, description="OCR found text in the photo (or found none)"),
    min_quality: float | None = Query(default=None, ge=0.0, le=1.0, description="Technical quality at least"),
) -> SearchResponse:
    rt: Runtime = request.app.state.rt
    coll = await run_in_threadpool(rt.collection, collection)
    model_name = rt.model_name(coll)
    model = await run_in_threadpool(rt.embedder, model_name)  # 503 before reading the body
    filters = SearchFilters(date_from=date_from, date_to=date_to, camera=camera, path_prefix=path_prefix,
                            tags=[t for t in tags if t.strip()], has_text=has_text, min_quality=min_quality)
    dest = rt.settings.uploads_dir / ".queries" / uuid.uuid4().hex
    sink = MultipartSink(dest, max_bytes=min(rt.settings.upload_max_bytes, rt.settings.max_file_bytes), max_files=1)
    await sink.receive(request)

    def run() -> SearchResponse:
        import shutil

        try:
            if not sink.files:
                raise PhotoindexError("no image in the request", code=ErrorCode.INVALID_REQUEST,
                                      hint="send it as a multipart/form-data file part named `image`")
            vector = embed_file(model, rt, sink.files[0].path)
        finally:
            shutil.rmtree(dest, ignore_errors=True)
        hits = rank(rt, coll, model, vector, k + offset, filters)
        return SearchResponse(collection=coll.name, model=model_name, k=k, offset=offset, hits=page(hits, k, offset))

    return await run_in_threadpool(run)
