"""Uploads: several files streamed to disk and ingested as one job; limits (413), sniffing (415),
safe file names."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from photoindex.api.uploads import fit_extension, sanitize_filename
from photoindex.media.formats import MediaFormat

from .helpers import Server, assert_error, wait_job


@pytest.mark.parametrize(("raw", "safe"), [
    ("../../etc/passwd.jpg", "passwd.jpg"),
    ("..\\..\\windows\\win.ini", "win.ini"),
    (".hidden.jpg", "hidden.jpg"),
    ("..", "upload"),
    ("", "upload"),
    ("a/b/../../..", "upload"),
    ("\u2024\u2024\uff0fetc\uff0fshadow.png", "shadow.png"),  # one-dot leaders and a fullwidth slash (NFKC)
    ("Cafe\u0301 photo.JPG", "Café photo.JPG"),  # combining accent composed
    ("bad\x00na\x1fme?.jpg", "bad_na_me_.jpg"),
    ("  spaced   out .jpg ", "spaced out .jpg"),
])
def test_sanitize_filename(raw: str, safe: str) -> None:
    assert sanitize_filename(raw) == safe


def test_long_names_keep_their_extension() -> None:
    name = sanitize_filename("x" * 500 + ".jpeg")
    assert name.endswith(".jpeg") and len(name.encode()) <= 180
    assert len(sanitize_filename("é" * 300).encode()) <= 180


def test_extension_follows_content() -> None:
    assert fit_extension("IMG_0001", MediaFormat.JPEG, b"") == "IMG_0001.jpg"
    assert fit_extension("photo.png", MediaFormat.JPEG, b"") == "photo.png.jpg"
    assert fit_extension("photo.JPG", MediaFormat.JPEG, b"") == "photo.JPG"
    assert fit_extension("scan.nef", MediaFormat.RAW, b"II*\x00") == "scan.nef"


def _upload(c: httpx.Client, files: list[tuple[str, bytes]], **params: str) -> httpx.Response:
    return c.post("/ingest/upload", params=params, files=[("files", (name, data, "application/octet-stream"))
                                                         for name, data in files])


def test_upload_many_files(serve: Callable[..., Server], library: Path) -> None:
    server = serve(upload_max_bytes=100_000)
    c = server.client()
    cat = (library / "home" / "cat.jpg").read_bytes()
    coffee = (library / "home" / "coffee.jpg").read_bytes()
    rocket = (library / "trips" / "rocket.jpg").read_bytes()
    r = _upload(c, [("../../outside/.sneaky.jpg", cat), ("IMG_0002", coffee), ("rocket.png", rocket),
                    ("sneaky.jpg", cat)])  # same name after sanitising, same content: both kept
    assert r.status_code == 202, r.text
    body = r.json()
    stored = [Path(f["stored_as"]) for f in body["files"]]
    assert [p.name for p in stored] == ["sneaky.jpg", "IMG_0002.jpg", "rocket.png.jpg", "sneaky-1.jpg"]
    uploads = server.settings.uploads_dir.resolve()
    assert all(p.parent.parent == uploads and p.is_file() for p in stored)
    assert [f["sha256"] for f in body["files"]] == [hashlib.sha256(d).hexdigest() for d in (cat, coffee, rocket, cat)]
    assert [f["bytes"] for f in body["files"]] == [len(cat), len(coffee), len(rocket), len(cat)]
    assert body["files"][0]["filename"] == "../../outside/.sneaky.jpg" and body["files"][0]["format"] == "jpeg"
    assert not (uploads.parent / "outside").exists()

    done = wait_job(c, body["job_id"])
    totals = done["result"]["totals"]
    assert done["status"] == "completed" and totals["processed"] == 3 and totals["exact_duplicates"] == 1
    assert totals["from_cache"] == 1 and totals["failed"] == 0
    sources = sorted(f["source"] for f in done["result"]["processed_files"])
    assert sources == ["duplicate", "new", "new", "new"]
    hits = c.post("/search", json={"text": "rocket", "k": 1}).json()["hits"]
    assert hits[0]["path"].endswith("rocket.png.jpg")

    # the upload folder is an allowed root for a later rescan
    rescan = c.post("/ingest/scan", json={"path": str(stored[0].parent)})
    assert rescan.status_code == 202, rescan.text
    assert wait_job(c, rescan.json()["job_id"])["result"]["totals"]["skipped_unchanged"] == 4


def test_upload_refusals(serve: Callable[..., Server], library: Path) -> None:
    server = serve(upload_max_bytes=100_000, serve_worker=False)
    c = server.client()
    cat = (library / "home" / "cat.jpg").read_bytes()
    big = (library / "home" / "garage" / "motorcycle.jpg").read_bytes()
    assert len(big) > 100_000 > len(cat)

    too_large = assert_error(_upload(c, [("cat.jpg", cat), ("motorcycle.jpg", big)]), 413, "payload_too_large")
    assert too_large["details"]["limit"] == 100_000
    assert_error(_upload(c, [("notes.jpg", b"just some text, not a photo at all " * 4)]), 415, "unsupported_type")
    assert_error(_upload(c, [("cat.jpg", cat), ("movie.jpg", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 80)]),
                 415, "unsupported_type")
    assert_error(_upload(c, [("empty.jpg", b"")]), 415, "file_empty")
    assert_error(_upload(c, [("tiny.jpg", b"\xff\xd8")]), 415)  # too short to be anything
    assert_error(c.post("/ingest/upload", files={"comment": (None, "no files")}), 400, "invalid_request")
    assert_error(c.post("/ingest/upload", json={"files": []}), 415, "unsupported_media_type")
    assert_error(c.post("/ingest/upload", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"}),
                 400, "invalid_request")
    assert_error(c.post("/ingest/upload", content=b"garbage without parts",
                        headers={"content-type": "multipart/form-data; boundary=abc"}), 400, "invalid_request")
    assert_error(_upload(c, [("cat.jpg", cat)], collection="nope"), 404, "collection_not_found")

    uploads = server.settings.uploads_dir
    assert not uploads.exists() or list(uploads.iterdir()) == []  # refused uploads leave nothing behind
    assert c.get("/jobs").json() == []


def test_large_upload_streams(serve: Callable[..., Server], library: Path, tmp_path: Path) -> None:
    """A 24 MB photo file (JPEG plus trailing bytes, which decoders ignore) is streamed in chunks."""
    server = serve(upload_max_bytes=32 * 1024**2, serve_worker=False)
    c = server.client()
    data = (library / "home" / "cat.jpg").read_bytes() + bytes(24 * 1024**2)
    r = c.post("/ingest/upload", files={"files": ("big.jpg", data, "image/jpeg")})
    assert r.status_code == 202, r.text
    f = r.json()["files"][0]
    assert f["bytes"] == len(data) and Path(f["stored_as"]).stat().st_size == len(data)
    refused = c.post("/ingest/upload", files={"files": ("big.jpg", data + bytes(9 * 1024**2), "image/jpeg")})
    assert_error(refused, 413, "payload_too_large")
