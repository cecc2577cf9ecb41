"""Library: a collection's photos newest first, in keyset pages (what the web UI's grid scrolls
through), a photo's neighbours in that order, and the facets search filters offer."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from photoindex.api.deps import API_PREFIX, get_rt
from photoindex.api.schemas import WallClock
from photoindex.runtime import Runtime
from photoindex.store import browse

router = APIRouter(prefix=f"{API_PREFIX}/library", tags=["library"])
COLLECTION = Query(default=None, min_length=1, max_length=128, description="Default: the selected collection")


class LibraryItem(BaseModel):
    id: int
    thumbnail_url: str = Field(description="The smallest thumbnail (immutable: cache it forever)")
    width: int = Field(description="Upright width of the photo in pixels (for layout before it loads)")
    height: int
    taken_at: WallClock = None
    camera: str | None = None
    path: str | None = Field(description="A file of the photo still on disk, or its last known path")


class LibraryPage(BaseModel):
    collection: str
    total: int | None = Field(description="Photos in the collection; on the first page only (null after)")
    limit: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page")
    items: list[LibraryItem]


class CameraCount(BaseModel):
    camera: str
    count: int


class Facets(BaseModel):
    collection: str
    total: int
    undated: int = Field(description="Photos without a capture time")
    first_taken: WallClock = None
    last_taken: WallClock = None
    cameras: list[CameraCount] = Field(description=f"Most frequent first, at most {browse.MAX_CAMERAS}")


class Neighbours(BaseModel):
    asset_id: int
    newer: int | None = Field(description="The photo before this one in library order (newer), if any")
    older: int | None = Field(description="The photo after this one (older), if any")


def _thumb_url(asset_id: int, size: int) -> str:
    return f"{API_PREFIX}/assets/{asset_id}/thumbnail?size={size}"


@router.get("", response_model=LibraryPage, summary="The collection's photos, newest first, one page at a time")
def library(collection: str | None = COLLECTION,
            limit: int = Query(default=100, ge=1, le=browse.MAX_PAGE),
            cursor: str | None = Query(default=None, max_length=40, pattern=browse.CURSOR_PATTERN,
                                       description="next_cursor of the previous page (opaque)"),
            rt: Runtime = Depends(get_rt)) -> LibraryPage:
    coll = rt.collection(collection)
    page = browse.library_page(rt.catalog, coll.id, limit=limit, cursor=cursor)
    size = min(int(s) for s in rt.settings.thumbnail_sizes)
    items = [LibraryItem(id=i.id, thumbnail_url=_thumb_url(i.id, size), width=i.width, height=i.height,
                         taken_at=i.taken_at.isoformat() if i.taken_at else None, camera=i.camera, path=i.path)
             for i in page.items]
    return LibraryPage(collection=coll.name, total=page.total, limit=limit, next_cursor=page.next_cursor, items=items)


@router.get("/facets", response_model=Facets, summary="Cameras and the capture-time span, for search filters")
def library_facets(collection: str | None = COLLECTION, rt: Runtime = Depends(get_rt)) -> Facets:
    coll = rt.collection(collection)
    f = browse.facets(rt.catalog, coll.id)
    return Facets(collection=coll.name, total=f.total, undated=f.undated,
                  first_taken=f.first_taken.isoformat() if f.first_taken else None,
                  last_taken=f.last_taken.isoformat() if f.last_taken else None,
                  cameras=[CameraCount(camera=c, count=n) for c, n in f.cameras])


@router.get("/{asset_id}/neighbours", response_model=Neighbours,
            summary="The photos before and after this one in its collection's library order")
def library_neighbours(asset_id: int = PathParam(ge=1, le=2**62), rt: Runtime = Depends(get_rt)) -> Neighbours:
    newer, older = browse.neighbours(rt.catalog, asset_id)
    return Neighbours(asset_id=asset_id, newer=newer, older=older)
