"""Library order and keyset pages (`store.browse`) on SQLite and PostgreSQL, and the
`/api/v1/library` routes over them."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from api.helpers import Server, assert_error
from sqlalchemy import update

from photoindex.errors import PhotoindexError
from photoindex.schemas import ExifInfo
from photoindex.store import browse
from photoindex.store.catalog import Catalog, FileRecord, NewAsset
from photoindex.store.models import Asset

from .synthetic import fill_library

TIE = datetime(2020, 6, 1, 12, 0)


def add(catalog: Catalog, collection_id: int, name: str, taken: datetime | None, camera: tuple[str, str] | None = None,
        size: tuple[int, int] = (400, 300)) -> int:
    sha = hashlib.sha256(name.encode()).hexdigest()
    exif = ExifInfo(taken_at=taken, make=camera[0] if camera else None, model=camera[1] if camera else None)
    ids = catalog.commit_batch(collection_id, [NewAsset(sha256=sha, sha1=sha[:40], bytes=1, mime="image/jpeg",
                                                        width=size[0], height=size[1], exif=exif)],
                               [FileRecord(path=f"/photos/{name}.jpg", size=1, mtime_ns=1, sha256=sha)])
    return ids[sha]


def expected_order(catalog: Catalog, collection_id: int) -> list[int]:
    """The library order computed the slow, obvious way."""
    with catalog.session() as s:
        rows = s.query(Asset.id, Asset.taken_at).filter(Asset.collection_id == collection_id,
                                                       Asset.status == "active").all()
    dated = sorted((r for r in rows if r.taken_at is not None), key=lambda r: (r.taken_at, r.id), reverse=True)
    undated = sorted((r.id for r in rows if r.taken_at is None), reverse=True)
    return [r.id for r in dated] + undated


def walk(catalog: Catalog, collection_id: int, limit: int) -> tuple[list[int], list[int | None]]:
    ids: list[int] = []
    totals: list[int | None] = []
    cursor = None
    while True:
        page = browse.library_page(catalog, collection_id, limit=limit, cursor=cursor)
        assert len(page.items) <= limit
        ids += [i.id for i in page.items]
        totals.append(page.total)
        if page.next_cursor is None:
            return ids, totals
        assert len(page.items) == limit
        cursor = page.next_cursor


@pytest.fixture
def filled(catalog: Catalog, tmp_path: Path) -> tuple[Catalog, int]:
    fill_library(catalog, tmp_path / "thumbs", 60, thumb_sizes=(), undated_every=6)
    coll = catalog.get_collection("default")
    for i in range(5):  # capture-time ties, ordered by id
        add(catalog, coll.id, f"tie{i}", TIE)
    add(catalog, coll.id, "offset", datetime(2020, 6, 1, 11, 0, tzinfo=timezone(timedelta(hours=2))))
    return catalog, coll.id


def test_pages_follow_the_library_order(filled: tuple[Catalog, int]) -> None:
    catalog, cid = filled
    order = expected_order(catalog, cid)
    assert len(order) == 66
    for limit in (1, 7, 66, 500):
        ids, totals = walk(catalog, cid, limit)
        assert ids == order, limit
        assert totals[0] == 66 and all(t is None for t in totals[1:])
    first = browse.library_page(catalog, cid, limit=500).items
    offset = next(i for i in first if i.path == "/photos/offset.jpg")
    assert offset.taken_at == datetime(2020, 6, 1, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    ties = [i.id for i in first if i.taken_at == TIE]
    assert ties == sorted(ties, reverse=True) and len(ties) == 5
    assert [i.taken_at for i in first[-10:]] == [None] * 10 and first[-11].taken_at  # undated last


def test_hidden_assets_leave_pages_counts_neighbours_and_facets(filled: tuple[Catalog, int]) -> None:
    catalog, cid = filled
    order = expected_order(catalog, cid)
    archived = order[3::4]
    with catalog.session() as s:
        s.execute(update(Asset).where(Asset.id.in_(archived)).values(status="archived"))
    visible = [i for i in order if i not in archived]
    assert walk(catalog, cid, 9)[0] == visible
    assert browse.count_visible(catalog, cid) == len(visible)
    for i, asset_id in enumerate(visible):
        newer, older = browse.neighbours(catalog, asset_id)
        assert newer == (visible[i - 1] if i else None) and older == (visible[i + 1] if i + 1 < len(visible) else None)
    facets = browse.facets(catalog, cid)
    assert facets.total == len(visible)
    assert facets.undated == sum(1 for i in browse.library_page(catalog, cid, limit=500).items if i.taken_at is None)
    assert sum(n for _, n in facets.cameras) == sum(
        1 for i in browse.library_page(catalog, cid, limit=500).items if i.camera)
    counts = [n for _, n in facets.cameras]
    assert counts == sorted(counts, reverse=True)
    dated = [i.taken_at.replace(tzinfo=None) for i in browse.library_page(catalog, cid, limit=500).items if i.taken_at]
    assert facets.first_taken == min(dated) and facets.last_taken == max(dated)


def test_other_collections_and_bad_cursors(filled: tuple[Catalog, int]) -> None:
    catalog, cid = filled
    other = catalog.create_collection("other")
    only = add(catalog, other.id, "elsewhere", None)
    assert [i.id for i in browse.library_page(catalog, other.id).items] == [only]
    assert browse.neighbours(catalog, only) == (None, None)
    empty = catalog.create_collection("empty")
    page = browse.library_page(catalog, empty.id)
    assert page.items == [] and page.total == 0 and page.next_cursor is None
    assert browse.facets(catalog, empty.id).cameras == []
    for bad in ("x", "n-", "-5", "1.5-3", "n-5 ", "1234567890123456789-1"):
        with pytest.raises(PhotoindexError) as err:
            browse.library_page(catalog, cid, cursor=bad)
        assert err.value.code == "invalid_request"
    # every well-formed cursor is a position: out-of-range numbers are clamped, never refused
    order = expected_order(catalog, cid)
    assert [i.id for i in browse.library_page(catalog, cid, limit=500, cursor="999999999999999999-0").items] == order
    assert browse.library_page(catalog, cid, cursor="0-0").items[0].taken_at is None
    assert browse.library_page(catalog, cid, cursor="n-0").items == []
    assert browse.library_page(catalog, cid, cursor="n-9999999999999999999").items[0].id == order[-10]
    with pytest.raises(PhotoindexError):
        browse.library_page(catalog, cid, limit=0)
    with pytest.raises(PhotoindexError) as missing:
        browse.neighbours(catalog, 10**9)
    assert missing.value.code == "asset_not_found"


def test_library_routes(start_server: Callable[..., Server]) -> None:
    server = start_server(serve_worker=False)
    fill_library(server.rt.catalog, server.settings.thumbnails_dir, 25, undated_every=5)
    with server.client() as c:
        first = c.get("/library", params={"limit": 10})
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["collection"] == "default" and body["total"] == 25 and body["limit"] == 10
        item = body["items"][0]
        assert set(item) == {"id", "thumbnail_url", "width", "height", "taken_at", "camera", "path"}
        assert item["thumbnail_url"] == f"/api/v1/assets/{item['id']}/thumbnail?size=256"
        assert httpx.get(server.base + item["thumbnail_url"]).status_code == 200
        seen = [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        while cursor:
            page = c.get("/library", params={"limit": 10, "cursor": cursor}).json()
            assert page["total"] is None
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
        assert seen == expected_order(server.rt.catalog, server.rt.collection(None).id)
        around = c.get(f"/library/{seen[1]}/neighbours").json()
        assert around == {"asset_id": seen[1], "newer": seen[0], "older": seen[2]}
        facets = c.get("/library/facets").json()
        assert facets["total"] == 25 and facets["undated"] == 5 and facets["cameras"][0]["count"] >= 1

        assert_error(c.get("/library", params={"cursor": "e30"}), 422)
        assert c.get("/library", params={"cursor": "n-0"}).json()["items"] == []
        assert_error(c.get("/library", params={"limit": 501}), 422)
        assert_error(c.get("/library", params={"collection": "nope"}), 404, "collection_not_found")
        assert_error(c.get("/library/facets", params={"collection": "nope"}), 404, "collection_not_found")
        assert_error(c.get("/library/123456/neighbours"), 404, "asset_not_found")
