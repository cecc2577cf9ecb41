"""Bad input gets a structured 4xx, never a 500; scans only read below the allowed roots."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .conftest import Shared
from .helpers import Server, assert_error


def test_bad_requests_are_structured(shared: Shared) -> None:
    c = shared.client
    cases = [
        (c.post("/collections", content=b"{not json", headers={"content-type": "application/json"}), 422),
        (c.post("/collections", content=b"\xff\xfe\x00", headers={"content-type": "application/json"}), 400),
        (c.post("/collections", json={"name": "../etc"}), 422),
        (c.post("/collections", json={"name": "ok", "distance": "Manhattan"}), 422),
        (c.post("/collections", json={"name": "ok", "vector_size": -1}), 422),
        (c.post("/collections", json=[1, 2]), 422),
        (c.post("/collections/select", json={"name": "missing"}), 404),
        (c.delete("/collections/missing"), 404),
        (c.post("/search", json={"text": ""}), 422),
        (c.post("/search", json={"text": "   "}), 422),
        (c.post("/search", json={"text": "cat", "k": 0}), 422),
        (c.post("/search", json={"text": "cat", "k": "many"}), 422),
        (c.post("/search", json={"text": "cat", "filters": {"date_from": "yesterday"}}), 422),
        (c.post("/search", json={"text": "cat", "collection": "nope"}), 404),
        (c.post("/search", content=b"text=cat", headers={"content-type": "text/plain"}), 422),
        (c.get("/jobs/-1"), 422),
        (c.get("/jobs/99999999999999999999999"), 422),
        (c.get("/ingest/status/12345"), 404),
        (c.post("/ingest/scan", json={}), 422),
        (c.post("/ingest/scan", json={"path": "relative/dir"}), 422),
        (c.post("/ingest/scan", json={"paths": ["relative"]}), 422),
        (c.get("/no/such/thing"), 404),
        (c.put("/jobs"), 405),
        (c.delete("/search"), 405),
    ]
    for r, status in cases:
        body = assert_error(r, status)
        assert body["message"], body
    assert c.put("/jobs").headers["allow"] == "GET"
    detail = c.post("/search", json={"text": "cat", "k": 0}).json()
    assert detail["code"] == "validation_error" and detail["details"]["errors"][0]["loc"] == ["body", "k"]


def test_scan_paths_must_stay_below_allowed_roots(serve: Callable[..., Server], library: Path, tmp_path: Path) -> None:
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes((library / "home" / "cat.jpg").read_bytes())
    os.symlink(outside, library / "escape")  # a link inside the root that leads out of it
    server = serve(allowed_roots=[library])
    c = server.client()

    for path in (str(outside), "/", "/etc", str(library / ".." / "private"), str(library / "escape"),
                 str(library / "escape" / "secret.jpg"), str(library) + "-sibling", "/proc/self/root/etc"):
        body = assert_error(c.post("/ingest/scan", json={"path": path}), 403, "path_not_allowed")
        assert "allowed_roots" in body["hint"]
    assert_error(c.post("/ingest/scan", json={"paths": [str(library), "/etc"]}), 403, "path_not_allowed")
    assert_error(c.post("/ingest/scan", json={"path": str(library / "missing")}), 404, "file_not_found")
    assert c.get("/jobs").json() == []  # nothing was queued

    ok = c.post("/ingest/scan", json={"path": str(library / "home" / ".." / "trips")})
    assert ok.status_code == 202 and ok.json()["roots"] == [str(library / "trips")]
    one = c.post("/ingest/scan", json={"path": str(library / "home" / "cat.jpg")})
    assert one.status_code == 202


def test_no_roots_configured_allows_only_uploads(serve: Callable[..., Server], library: Path) -> None:
    c = serve().client()
    assert_error(c.post("/ingest/scan", json={"path": str(library)}), 403, "path_not_allowed")
