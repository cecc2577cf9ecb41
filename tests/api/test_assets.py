"""Asset metadata, thumbnails (ETag / 304 / immutable caching), the original with Range requests,
similar photos with pages."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .conftest import Shared
from .helpers import assert_error


def test_asset_metadata(shared: Shared) -> None:
    c = shared.client
    r = c.get(f"/assets/{shared.ids['coffee']}")
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["camera"] == "Apple iPhone 13" and a["mime"] == "image/jpeg" and a["collection"] == "default"
    assert a["exif"]["make"] == "Apple" and a["taken_at"].startswith("2023-01-02T08:15")
    assert [Path(f["path"]).name for f in a["files"]] == ["coffee.jpg"] and a["files"][0]["missing"] is False
    assert a["embedded_models"] == ["tiny-clip"]
    assert [(v["model"], v["dim"]) for v in a["vectors"]] == [("tiny-clip", 32)] and a["vectors"][0]["revision"]
    assert_error(c.get("/assets/999999"), 404, "asset_not_found")
    assert_error(c.get("/assets/0"), 422, "validation_error")
    assert_error(c.get("/assets/abc"), 422, "validation_error")


def test_thumbnail_etag_and_304(shared: Shared) -> None:
    c = shared.client
    asset_id = shared.ids["rocket"]
    sha = c.get(f"/assets/{asset_id}").json()["sha256"]
    r = c.get(f"/assets/{asset_id}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["etag"] == f'"{sha}-256"'
    assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
    import io

    assert max(Image.open(io.BytesIO(r.content)).size) == 256

    big = c.get(f"/assets/{asset_id}/thumbnail", params={"size": 1024})
    assert big.status_code == 200 and big.headers["etag"] == f'"{sha}-1024"' and len(big.content) > len(r.content)

    for header in (f'"{sha}-256"', f'W/"{sha}-256"', f'"other", "{sha}-256"', "*"):
        nm = c.get(f"/assets/{asset_id}/thumbnail", headers={"If-None-Match": header})
        assert nm.status_code == 304 and nm.content == b"", header
        assert nm.headers["etag"] == f'"{sha}-256"' and "immutable" in nm.headers["cache-control"]
    stale = c.get(f"/assets/{asset_id}/thumbnail", headers={"If-None-Match": f'"{sha}-1024"'})
    assert stale.status_code == 200 and stale.content == r.content

    assert_error(c.get(f"/assets/{asset_id}/thumbnail", params={"size": 77}), 422, "validation_error")
    assert_error(c.get("/assets/999999/thumbnail"), 404, "asset_not_found")


def test_original_with_ranges(shared: Shared) -> None:
    c = shared.client
    asset_id = shared.ids["cat"]
    data = (shared.library / "home" / "cat.jpg").read_bytes()
    size = len(data)

    full = c.get(f"/assets/{asset_id}/original")
    assert full.status_code == 200 and full.content == data
    assert full.headers["content-type"] == "image/jpeg" and full.headers["accept-ranges"] == "bytes"
    assert 'inline; filename="cat.jpg"' in full.headers["content-disposition"]

    part = c.get(f"/assets/{asset_id}/original", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{size}" and part.headers["content-length"] == "100"
    tail = c.get(f"/assets/{asset_id}/original", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    open_end = c.get(f"/assets/{asset_id}/original", headers={"Range": f"bytes={size - 5}-"})
    assert open_end.status_code == 206 and open_end.content == data[-5:]
    multi = c.get(f"/assets/{asset_id}/original", headers={"Range": "bytes=0-1, 10-11"})
    assert multi.status_code == 206 and multi.headers["content-type"].startswith("multipart/byteranges")

    bad = c.get(f"/assets/{asset_id}/original", headers={"Range": f"bytes={size}-{size + 10}"})
    assert_error(bad, 416, "range_not_satisfiable")
    assert bad.headers["content-range"] == f"bytes */{size}"
    assert_error(c.get(f"/assets/{asset_id}/original", headers={"Range": "pages=1-2"}), 400, "invalid_request")
    assert_error(c.get(f"/assets/{asset_id}/original", headers={"Range": "bytes=20-10"}), 400, "invalid_request")


def test_similar_pages(shared: Shared) -> None:
    c = shared.client
    asset_id = shared.ids["astronaut"]
    r = c.get(f"/assets/{asset_id}/similar", params={"k": 10})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert len(hits) == 4 and asset_id not in [h["asset_id"] for h in hits]  # itself left out
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    page = c.get(f"/assets/{asset_id}/similar", params={"k": 2, "offset": 1}).json()
    assert page["k"] == 2 and page["offset"] == 1
    assert [h["asset_id"] for h in page["hits"]] == [h["asset_id"] for h in hits[1:3]]
    assert_error(c.get("/assets/999999/similar"), 404, "asset_not_found")
    assert_error(c.get(f"/assets/{asset_id}/similar", params={"k": 0}), 422, "validation_error")


def test_search_by_uploaded_image(shared: Shared) -> None:
    c = shared.client
    data = (shared.library / "home" / "cat.jpg").read_bytes()
    r = c.post("/search/image", params={"k": 2}, files={"image": ("query.jpg", data, "image/jpeg")})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits[0]["asset_id"] == shared.ids["cat"] and hits[0]["score"] > 0.99 and len(hits) == 2
    nikon = c.post("/search/image", params={"camera": "nikon"}, files={"image": ("q.jpg", data, "image/jpeg")})
    assert {Path(h["path"]).name for h in nikon.json()["hits"]} == {"rocket.jpg", "astronaut.jpg"}
    paged = c.post("/search/image", params={"k": 1, "offset": 1}, files={"image": ("q.jpg", data, "image/jpeg")})
    assert [h["asset_id"] for h in paged.json()["hits"]] == [hits[1]["asset_id"]]

    assert_error(c.post("/search/image", files={"image": ("q.jpg", b"plain text, no photo" * 5, "image/jpeg")}),
                 415, "unsupported_type")
    assert_error(c.post("/search/image", files={"image": ("q.jpg", data[: len(data) // 3], "image/jpeg")}),
                 422)  # a truncated JPEG is a photo that cannot be decoded
    assert_error(c.post("/search/image", files={"note": (None, "no file here")}), 400, "invalid_request")
    assert_error(c.post("/search/image", json={"image": "x"}), 415, "unsupported_media_type")
    leftovers = list((shared.server.settings.uploads_dir / ".queries").glob("*"))
    assert leftovers == []  # query images are not kept
