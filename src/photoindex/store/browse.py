"""Browsing a collection in date order: keyset pages for the library grid, a photo's neighbours in
that order, and the facets (cameras, date span) that search filters offer.

The order is capture time descending (newest first), then asset id descending; photos without a
capture time come after all dated ones, newest id first. Pages are keyset pages: a cursor names the
last item shown, and the next page starts strictly after it, so a page costs the same at the start
and at the end of 100k photos (no OFFSET), and photos added meanwhile never shift a page.

Dated and undated photos are queried separately. Each part is then a plain range over the
`ix_asset_collection_taken` index (collection, taken_at, and the row id SQLite appends), walked
backwards; one query with NULLS LAST would defeat the index on PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, and_, func, select, tuple_

from photoindex.errors import CatalogError, ErrorCode, PhotoindexError
from photoindex.store.catalog import Catalog
from photoindex.store.models import Asset, File

VISIBLE = "active"  # archived or otherwise retired assets stay out of the library
MAX_PAGE = 500
MAX_CAMERAS = 100


@dataclass(frozen=True)
class Key:
    """Where an asset sits in the library order: (capture time, id); `taken_at` None = undated."""

    taken_at: datetime | None
    asset_id: int


@dataclass(frozen=True)
class LibraryItem:
    id: int
    sha256: str
    width: int
    height: int
    taken_at: datetime | None  # wall-clock time, with its UTC offset when the file states one
    camera: str | None
    path: str | None  # a file of the asset still on disk first, else its last known path

    @property
    def key(self) -> Key:
        return Key(self.taken_at.replace(tzinfo=None) if self.taken_at else None, self.id)


@dataclass(frozen=True)
class LibraryPage:
    items: list[LibraryItem]
    next_cursor: str | None  # None on the last page
    total: int | None  # counted on the first page only (a scan of the collection's rows)


@dataclass(frozen=True)
class Facets:
    cameras: list[tuple[str, int]]  # most frequent first
    first_taken: datetime | None
    last_taken: datetime | None
    undated: int
    total: int


# -- cursors -------------------------------------------------------------------------------------
# A cursor is `<capture time as microseconds since 0001-01-01>-<asset id>`, or `n-<asset id>` past the
# dated photos. Clients treat it as opaque. Every string of this shape names a position (numbers out
# of range are clamped), so a well-formed cursor is never refused: it just starts somewhere.
CURSOR_PATTERN = r"^(?:[0-9]{1,18}|n)-[0-9]{1,19}$"
_CURSOR_RE = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1, 1, 1)
_MICRO = timedelta(microseconds=1)
_MAX_MICROS = (datetime.max - _EPOCH) // _MICRO
_MAX_ID = 2**63 - 1


def encode_cursor(key: Key) -> str:
    when = "n" if key.taken_at is None else str((key.taken_at - _EPOCH) // _MICRO)
    return f"{when}-{key.asset_id}"


def decode_cursor(cursor: str) -> Key:
    match = _CURSOR_RE.match(cursor)
    if match is None:
        raise PhotoindexError("invalid cursor", code=ErrorCode.INVALID_REQUEST,
                              hint="pass back the next_cursor of a previous page unchanged",
                              details={"cursor": cursor[:100]})
    when, asset_id = cursor.split("-")
    taken = None if when == "n" else _EPOCH + min(int(when), _MAX_MICROS) * _MICRO
    return Key(taken, min(int(asset_id), _MAX_ID))


# -- queries -------------------------------------------------------------------------------------
def _path_of_asset() -> Any:
    """A live file's path when there is one (correlated, one probe of ix_file_asset per row)."""
    return (select(File.path).where(File.asset_id == Asset.id)
            .order_by(File.missing, File.path).limit(1).scalar_subquery())


def _items_query(collection_id: int) -> Select[Any]:
    return select(Asset.id, Asset.sha256, Asset.width, Asset.height, Asset.taken_at, Asset.tz_offset_min,
                  Asset.camera, _path_of_asset().label("path")).where(
        Asset.collection_id == collection_id, Asset.status == VISIBLE)


def _wall_clock(taken: datetime | None, offset_min: int | None) -> datetime | None:
    if taken is None or offset_min is None:
        return taken
    return taken.replace(tzinfo=timezone(timedelta(minutes=offset_min)))


def _item(row: Any) -> LibraryItem:
    return LibraryItem(id=int(row.id), sha256=row.sha256, width=int(row.width), height=int(row.height),
                       taken_at=_wall_clock(row.taken_at, row.tz_offset_min), camera=row.camera, path=row.path)


def _key_columns() -> Any:
    """(taken_at, id) as one row value: SQLite seeks the index straight to a row-value bound, while the
    equivalent `taken_at < t OR (taken_at = t AND id < i)` makes it filter a long range (40x slower at 100k)."""
    return tuple_(Asset.taken_at, Asset.id)


def _dated_after(collection_id: int, key: Key | None) -> Select[Any]:
    """Dated assets after `key` in library order (all of them when `key` is None)."""
    query = _items_query(collection_id).where(Asset.taken_at.is_not(None))
    if key is not None and key.taken_at is not None:
        query = query.where(_key_columns() < tuple_(key.taken_at, key.asset_id))
    return query.order_by(Asset.taken_at.desc(), Asset.id.desc())


def _undated_after(collection_id: int, key: Key | None) -> Select[Any]:
    """Undated assets after `key` (all of them when `key` is None or a dated asset)."""
    query = _items_query(collection_id).where(Asset.taken_at.is_(None))
    if key is not None and key.taken_at is None:
        query = query.where(Asset.id < key.asset_id)
    return query.order_by(Asset.id.desc())


def count_visible(catalog: Catalog, collection_id: int) -> int:
    with catalog.session() as s:
        return int(s.scalar(select(func.count()).select_from(Asset).where(
            Asset.collection_id == collection_id, Asset.status == VISIBLE)) or 0)


def library_page(catalog: Catalog, collection_id: int, *, limit: int = 100, cursor: str | None = None,
                 with_total: bool | None = None) -> LibraryPage:
    """Up to `limit` assets after `cursor` (from the start without one), newest first. The total is
    counted when `with_total` says so, by default on the first page only: counting visible assets
    reads every row of the collection (status is not indexed), which a page must not pay each time."""
    if not 1 <= limit <= MAX_PAGE:
        raise PhotoindexError(f"limit must be between 1 and {MAX_PAGE}", code=ErrorCode.INVALID_REQUEST)
    key = decode_cursor(cursor) if cursor else None
    rows: list[Any] = []
    with catalog.session() as s:
        # one row more than asked tells whether another page follows, without counting
        if key is None or key.taken_at is not None:
            rows = list(s.execute(_dated_after(collection_id, key).limit(limit + 1)).all())
        if len(rows) <= limit:
            rows += s.execute(_undated_after(collection_id, key).limit(limit + 1 - len(rows))).all()
    items = [_item(r) for r in rows[:limit]]
    more = len(rows) > limit
    if with_total is None:
        with_total = cursor is None
    return LibraryPage(items=items, next_cursor=encode_cursor(items[-1].key) if more and items else None,
                       total=count_visible(catalog, collection_id) if with_total else None)


def asset_key(catalog: Catalog, asset_id: int) -> tuple[int, Key]:
    """(collection id, library key) of an asset; ASSET_NOT_FOUND when there is none."""
    with catalog.session() as s:
        row = s.execute(select(Asset.collection_id, Asset.taken_at).where(Asset.id == asset_id)).first()
    if row is None:
        raise CatalogError(f"no asset with id {asset_id}", code=ErrorCode.ASSET_NOT_FOUND)
    return int(row.collection_id), Key(row.taken_at, asset_id)


def _newer_than(collection_id: int, key: Key) -> Select[Any]:
    """The asset just before `key` in library order is the first one after it in reverse order."""
    base = select(Asset.id).where(Asset.collection_id == collection_id, Asset.status == VISIBLE)
    if key.taken_at is None:
        return base.where(Asset.taken_at.is_(None), Asset.id > key.asset_id).order_by(Asset.id.asc()).limit(1)
    return (base.where(Asset.taken_at.is_not(None), _key_columns() > tuple_(key.taken_at, key.asset_id))
            .order_by(Asset.taken_at.asc(), Asset.id.asc()).limit(1))


def _oldest_dated(collection_id: int) -> Select[Any]:
    return (select(Asset.id).where(Asset.collection_id == collection_id, Asset.status == VISIBLE,
                                   Asset.taken_at.is_not(None))
            .order_by(Asset.taken_at.asc(), Asset.id.asc()).limit(1))


def neighbours(catalog: Catalog, asset_id: int) -> tuple[int | None, int | None]:
    """(the newer, the older) asset next to `asset_id` in its collection's library order."""
    collection_id, key = asset_key(catalog, asset_id)
    with catalog.session() as s:
        newer = s.scalar(_newer_than(collection_id, key))
        if newer is None and key.taken_at is None:  # the first undated photo follows the oldest dated one
            newer = s.scalar(_oldest_dated(collection_id))
        older_rows = [] if key.taken_at is None else s.execute(_dated_after(collection_id, key).limit(1)).all()
        if not older_rows:
            older_rows = s.execute(_undated_after(collection_id, key).limit(1)).all()
    older = older_rows[0].id if older_rows else None
    return (int(newer) if newer is not None else None), (int(older) if older is not None else None)


def facets(catalog: Catalog, collection_id: int) -> Facets:
    """What the search filters can offer: the cameras (most frequent first) and the capture-time span."""
    visible = and_(Asset.collection_id == collection_id, Asset.status == VISIBLE)
    with catalog.session() as s:
        cameras = s.execute(select(Asset.camera, func.count()).where(visible, Asset.camera.is_not(None))
                            .group_by(Asset.camera).order_by(func.count().desc(), Asset.camera)
                            .limit(MAX_CAMERAS)).all()
        first, last, dated, total = s.execute(
            select(func.min(Asset.taken_at), func.max(Asset.taken_at), func.count(Asset.taken_at), func.count())
            .where(visible)).one()
    return Facets(cameras=[(str(c), int(n)) for c, n in cameras], first_taken=first, last_taken=last,
                  undated=int(total or 0) - int(dated or 0), total=int(total or 0))
