"""The curation routes through the real app (create_app + the curation router), over a real ingest:
archive exact copies and selections, undo, batches, report (JSON / CSV), clusters, save-collection;
errors keep the API's one JSON shape."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from archive_support import COPIES, N_FILES, build_with_copies, catalog_digest, ingest_ok, tree_digest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from photoindex.api.app import create_app
from photoindex.api.routers import curation
from photoindex.config import load_settings
from photoindex.ingest.scan import normalize_path
from photoindex.runtime import Runtime

API = "/api/v1"


def _app(home: Path, models_dir: Path) -> FastAPI:
    settings = load_settings(home=home, model="tiny-clip", models_path=[models_dir], auto_pull=False,
                             serve_worker=False)
    app = create_app(settings, host="127.0.0.1")
    if not any(getattr(r, "path", "").startswith(f"{API}/curation") for r in app.routes):
        app.include_router(curation.router)  # until api/app.py includes it
    return app


@pytest.fixture
def lib(tmp_path: Path, photos: dict[str, Image.Image]) -> Path:
    return build_with_copies(tmp_path / "library", photos)


@pytest.fixture
def client(tmp_path: Path, models_dir: Path, lib: Path) -> Iterator[TestClient]:
    home = tmp_path / "home"
    rt = Runtime(load_settings(home=home, model="tiny-clip", models_path=[models_dir], auto_pull=False))
    ingest_ok(rt, [lib])
    rt.close()
    with TestClient(_app(home, models_dir)) as c:
        yield c


def _rt(client: TestClient) -> Runtime:
    return client.app.state.rt  # type: ignore[attr-defined]


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"] and "details" in body
    return body


def test_archive_exact_batches_and_undo(client: TestClient, lib: Path) -> None:
    rt = _rt(client)
    disk0, rows0 = tree_digest(lib), catalog_digest(rt.catalog)
    dry = client.post(f"{API}/duplicates/archive-exact", json={"dry_run": True})
    assert dry.status_code == 200 and "batch_id" not in dry.json() and dry.json()["files"] == len(COPIES)
    assert tree_digest(lib) == disk0

    done = client.post(f"{API}/duplicates/archive-exact", json={}).json()
    assert done["status"] == "done" and done["counts"] == {"moved": len(COPIES)} and len(done["items"]) == 3
    listed = client.get(f"{API}/curation/batches").json()
    assert [b["batch_id"] for b in listed] == [done["batch_id"]] and listed[0]["items"] is None
    one = client.get(f"{API}/curation/batches/{done['batch_id']}").json()
    assert {i["status"] for i in one["items"]} == {"moved"}

    undone = client.post(f"{API}/curation/undo/{done['batch_id']}")
    assert undone.status_code == 200 and undone.json()["status"] == "undone" and undone.json()["verified"] is True
    assert tree_digest(lib, skip="photoindex-archive") == disk0 and catalog_digest(rt.catalog) == rows0
    body = _error(client.post(f"{API}/curation/undo/{done['batch_id']}"), 409, "invalid_state")
    assert body["details"]["reason"] == "already_undone"
    _error(client.post(f"{API}/curation/undo/999"), 404, "batch_not_found")
    _error(client.post(f"{API}/curation/undo/0"), 422, "validation_error")
    _error(client.post(f"{API}/duplicates/archive-exact", json={"collection": "nope"}), 404, "collection_not_found")


def test_archive_selection_keep_override_and_conflicting_undo(client: TestClient, lib: Path) -> None:
    rt = _rt(client)
    coll = rt.collection()
    rocket = rt.catalog.find_asset_by_path(coll.id, normalize_path(lib / "trips/rocket.jpg"))
    assert rocket is not None and len(rocket.files) == 3
    keep = next(f for f in rocket.files if f.path.endswith("Downloads/rocket.jpg"))
    out = client.post(f"{API}/curation/archive-selection",
                      json={"asset_ids": [rocket.id], "keep": [{"asset_id": rocket.id, "file_id": keep.id}], "reason": "keep mine"}).json()
    assert sorted(i["src"] for i in out["items"]) == sorted(f.path for f in rocket.files if f.id != keep.id)
    assert out["reason"] == "keep mine" and out["assets_archived"] == 0
    assert rt.catalog.get_asset(rocket.id).status == "active"

    whole = client.post(f"{API}/curation/archive-selection", json={"asset_ids": [rocket.id]}).json()
    assert whole["assets_archived"] == 1 and rt.catalog.get_asset(rocket.id).status == "archived"
    Path(keep.path).write_bytes(b"a different picture now")
    body = _error(client.post(f"{API}/curation/undo/{whole['batch_id']}"), 409, "archive_conflict")
    assert [c["src"] for c in body["details"]["conflicts"]] == [keep.path]
    Path(keep.path).unlink()
    assert client.post(f"{API}/curation/undo/{whole['batch_id']}").json()["status"] == "undone"
    assert client.post(f"{API}/curation/undo/{out['batch_id']}").json()["status"] == "undone"
    assert len(rt.catalog.file_states(coll.id)) == N_FILES

    empty = client.post(f"{API}/curation/archive-selection", json={}).json()
    assert "batch_id" not in empty and empty["files"] == 0
    body = _error(client.post(f"{API}/curation/archive-selection", json={"file_ids": [987654]}), 404,
                  "asset_not_found")
    assert body["details"]["file_ids"] == [987654]
    _error(client.post(f"{API}/curation/archive-selection", json={"keep": [{"asset_id": "x", "file_id": 1}]}), 422, "validation_error")
    _error(client.post(f"{API}/curation/archive-selection", json={"asset_ids": [0]}), 422, "validation_error")


def test_report_clusters_and_save_collection(client: TestClient) -> None:
    report = client.get(f"{API}/curation/report").json()
    assert report["assets"] == 5 and report["duplicates"]["exact_extra_files"] == len(COPIES)
    as_csv = client.get(f"{API}/curation/report", params={"format": "csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {"section": "summary", "key": "assets", "count": "5"}.items() <= rows[0].items()
    _error(client.get(f"{API}/curation/report", params={"format": "xml"}), 422, "validation_error")

    clusters = client.get(f"{API}/curation/clusters", params={"k": 2, "members": True}).json()
    assert clusters["k"] == 2 and clusters["n"] == 5 and len(clusters["points"]) == 5
    assert sum(c["size"] for c in clusters["clusters"]) == 5
    _error(client.get(f"{API}/curation/clusters", params={"k": 0}), 422, "validation_error")

    first = clusters["clusters"][0]
    saved = client.post(f"{API}/curation/save-collection", json={"name": "from-cluster", "cluster": first["id"], "k": 2})
    assert saved.status_code == 201 and saved.json()["assets"] == first["size"]
    picked = client.post(f"{API}/curation/save-collection", json={"name": "picked", "asset_ids": first["asset_ids"][:1]})
    assert picked.status_code == 201 and picked.json() == {"collection": "picked", "source": "default", "assets": 1,
                                                           "files": picked.json()["files"], "vectors": 1,
                                                           "enrichment_rows": 0}
    names = {c["name"]: c["asset_count"] for c in client.get(f"{API}/collections").json()}
    assert names["from-cluster"] == first["size"] and names["picked"] == 1
    _error(client.post(f"{API}/curation/save-collection", json={"name": "picked", "asset_ids": [1]}), 409,
           "collection_exists")
    _error(client.post(f"{API}/curation/save-collection", json={"name": "x", "cluster": 999, "k": 2}), 404, "not_found")
    _error(client.post(f"{API}/curation/save-collection", json={"name": "y", "asset_ids": [424242]}), 404,
           "asset_not_found")
    _error(client.post(f"{API}/curation/save-collection", json={"name": "bad name!", "asset_ids": [1]}), 422,
           "validation_error")
    assert "y" not in {c["name"] for c in client.get(f"{API}/collections").json()}  # nothing half-made
