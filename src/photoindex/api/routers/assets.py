"""Assets: metadata, thumbnails (content-addressed, cached forever), the original file (with
ranges) and similar photos.

(No `from __future__ import annotations` here: the thumbnail size type is built at runtime from the
settings, and FastAPI must see it as a type, not as a name to resolve.)"""

import enum
import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from sqlalchemy import select
from starlette.responses import MalformedRangeHeader, RangeNotSatisfiable

from photoindex.api.deps import API_PREFIX, get_rt
from photoindex.api.errors import RANGE_NOT_SATISFIABLE, THUMBNAIL_NOT_FOUND, ApiError
from photoindex.api.routers.search import page
from photoindex.api.schemas import AssetDetail, SearchResponse, VectorInfo
from photoindex.config import Settings
from photoindex.errors import CatalogError, ErrorCode, PhotoindexError
from photoindex.media.thumbnails import thumbnail_path
from photoindex.runtime import Runtime
from photoindex.schemas import AssetInfo
from photoindex.search.service import search_similar
from photoindex.store import enrichments
from photoindex.store.models import Embedding

ASSET_ID = PathParam(ge=1, le=2**62)
IMMUTABLE = "public, max-age=31536000, immutable"
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _collection_name(rt: Runtime, collection_id: int) -> str | None:
    return next((c.name for c in rt.catalog.list_collections() if c.id == collection_id), None)


def _vectors(rt: Runtime, asset_id: int) -> list[VectorInfo]:
    with rt.catalog.session() as s:
        rows = s.execute(select(Embedding.model, Embedding.revision, Embedding.dim, Embedding.created_at)
                         .where(Embedding.asset_id == asset_id).order_by(Embedding.model)).all()
    return [VectorInfo(model=m, revision=r, dim=d, created_at=c) for m, r, d, c in rows]


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match uses the weak comparison: W/"x" matches "x"; `*` matches anything."""
    if not header:
        return False
    if header.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in header.split(","))


def live_file(asset: AssetInfo) -> Path:
    for f in asset.files:
        if not f.missing and os.path.isfile(f.path):
            return Path(f.path)
    raise PhotoindexError(f"asset {asset.id} has no file on disk any more", code=ErrorCode.FILE_NOT_FOUND,
                          details={"paths": [f.path for f in asset.files]})


def check_range(header: str | None, size: int) -> None:
    """Refuse, as structured errors, the Range headers that FileResponse would answer in plain text."""
    if not header:
        return
    try:
        FileResponse._parse_range_header(header, size)
    except MalformedRangeHeader as exc:
        raise ApiError(400, str(ErrorCode.INVALID_REQUEST), f"malformed Range header: {exc.content}") from exc
    except RangeNotSatisfiable as exc:
        raise ApiError(416, RANGE_NOT_SATISFIABLE, f"the range is outside the file ({size} bytes)",
                       headers={"Content-Range": f"bytes */{size}"}) from exc


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(prefix=f"{API_PREFIX}/assets", tags=["assets"])
    sizes = sorted({int(s) for s in settings.thumbnail_sizes})
    # the schema lists exactly the sizes this server makes (an int enum also parses "1024" from a query)
    Size = enum.IntEnum("ThumbnailSize", {f"px{s}": s for s in sizes})  # type: ignore[misc]

    @router.get("/{asset_id}", response_model=AssetDetail, summary="Metadata: hashes, EXIF, files, vectors")
    def get_asset(asset_id: int = ASSET_ID, rt: Runtime = Depends(get_rt)) -> AssetDetail:
        asset = rt.catalog.get_asset(asset_id)
        fields = asset.model_dump(exclude={"taken_at"})
        return AssetDetail(**fields, taken_at=asset.taken_at.isoformat() if asset.taken_at else None,
                           collection=_collection_name(rt, asset.collection_id), vectors=_vectors(rt, asset_id),
                           **enrichments.detail(rt.catalog, asset_id))

    @router.get("/{asset_id}/thumbnail", response_class=FileResponse,
                summary="JPEG thumbnail; strong ETag (content hash + size), cacheable forever",
                responses={200: {"content": {"image/jpeg": _BINARY}, "description": "The thumbnail"},
                           304: {"description": "Not modified (If-None-Match matched)"}})
    def thumbnail(request: Request, asset_id: int = ASSET_ID, size: Size = Query(default=Size(sizes[0])),  # type: ignore[valid-type]
                  rt: Runtime = Depends(get_rt)) -> Response:
        asset = rt.catalog.get_asset(asset_id)
        etag = f'"{asset.sha256}-{int(size)}"'
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
        if etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        path = thumbnail_path(rt.settings.thumbnails_dir, asset.sha256, int(size))
        if not path.is_file():
            raise ApiError(404, THUMBNAIL_NOT_FOUND, f"asset {asset_id} has no {int(size)} px thumbnail yet",
                           details={"asset_id": asset_id, "size": int(size)})
        return FileResponse(path, media_type="image/jpeg", headers=headers)

    @router.get("/{asset_id}/original", response_class=FileResponse,
                summary="The photo file as ingested (its first file still on disk); supports Range requests",
                responses={200: {"content": {"*/*": _BINARY}, "description": "The whole file"},
                           206: {"content": {"*/*": _BINARY}, "description": "The requested byte range(s)"}})
    def original(request: Request, asset_id: int = ASSET_ID, rt: Runtime = Depends(get_rt)) -> Response:
        asset = rt.catalog.get_asset(asset_id)
        path = live_file(asset)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise PhotoindexError(f"cannot read the file of asset {asset_id}: {exc.strerror}",
                                  code=ErrorCode.FILE_NOT_FOUND) from exc
        check_range(request.headers.get("range"), size)
        return FileResponse(path, media_type=asset.mime, filename=path.name, content_disposition_type="inline")

    @router.get("/{asset_id}/similar", response_model=SearchResponse, summary="Photos like this one")
    def similar(asset_id: int = ASSET_ID, k: int = Query(default=20, ge=1, le=1000),
                offset: int = Query(default=0, ge=0, le=10000), rt: Runtime = Depends(get_rt)) -> SearchResponse:
        asset = rt.catalog.get_asset(asset_id)
        name = _collection_name(rt, asset.collection_id)
        if name is None:
            raise CatalogError(f"no asset with id {asset_id}", code=ErrorCode.ASSET_NOT_FOUND)
        coll = rt.collection(name)
        hits = search_similar(rt, asset_id, collection=name, k=k + offset)
        return SearchResponse(collection=name, model=rt.model_name(coll), k=k, offset=offset,
                              hits=page(hits, k, offset))

    return router


__all__: list[Any] = ["build_router", "etag_matches"]
