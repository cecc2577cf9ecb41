"""The seeds' curl flow against a live server, on SQLite and PostgreSQL: create a collection, select
it, scan an allowed folder, poll the status until done, search (pages, filters), clear the cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from support.library import LIBRARY

from .helpers import Server, assert_error, wait_job

N = len(LIBRARY)


def test_curl_flow(serve: Callable[..., Server], library: Path, catalog_url: str) -> None:
    server = serve(catalog_url=catalog_url, allowed_roots=[library])
    c = server.client()

    r = c.post("/collections", json={"name": "trips"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "trips" and r.json()["asset_count"] == 0
    assert_error(c.post("/collections", json={"name": "trips"}), 409, "collection_exists")

    r = c.post("/collections/select", json={"name": "trips"})
    assert r.status_code == 200 and r.json()["active"] is True
    assert [x["name"] for x in c.get("/collections").json() if x["active"]] == ["trips"]

    r = c.post("/ingest/scan", json={"path": str(library)})
    assert r.status_code == 202, r.text
    accepted = r.json()
    job_id = accepted["job_id"]
    assert accepted["status_url"] == f"/api/v1/ingest/status/{job_id}" and accepted["roots"] == [str(library)]

    status = wait_job(c, job_id)
    assert status["status"] == "completed" and status["files"] == {"done": N, "total": N}
    result = status["result"]
    assert result["totals"]["processed"] == N and result["totals"]["failed"] == 0
    assert result["totals"]["from_cache"] == 0 and result["totals"]["embedded"] == N
    assert result["failed_files"] == [] and result["report"]["collection"] == "trips"
    listed = {Path(f["path"]).relative_to(library).as_posix(): f for f in result["processed_files"]}
    assert set(listed) == set(LIBRARY)
    assert {f["source"] for f in listed.values()} == {"new"} and all(f["mime"] == "image/jpeg" for f in listed.values())

    r = c.post("/search", json={"text": "rocket", "k": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["collection"] == "trips" and body["model"] == "tiny-clip" and len(body["hits"]) == 3
    assert body["hits"][0]["path"].endswith("trips/rocket.jpg")
    everything = c.post("/search", json={"text": "rocket", "k": N}).json()["hits"]
    second_page = c.post("/search", json={"text": "rocket", "k": 2, "offset": 2}).json()["hits"]
    assert [h["asset_id"] for h in second_page] == [h["asset_id"] for h in everything[2:4]]
    assert c.post("/search", json={"text": "rocket", "k": 5, "offset": N}).json()["hits"] == []

    nikon = c.post("/search", json={"text": "cat", "filters": {"camera": "nikon"}}).json()["hits"]
    assert {Path(h["path"]).name for h in nikon} == {"rocket.jpg", "astronaut.jpg"}
    dated = c.post("/search", json={"text": "cat", "filters": {"date_from": "2023-01-01T00:00:00",
                                                                "date_to": "2023-01-02T23:59:59"}}).json()["hits"]
    assert [Path(h["path"]).name for h in dated] == ["coffee.jpg"]
    folder = c.post("/search", json={"text": "cat", "filters": {"path_prefix": str(library / "home" / "garage")}})
    assert [Path(h["path"]).name for h in folder.json()["hits"]] == ["motorcycle.jpg"]

    r = c.post("/collections/cache/clear")
    assert r.status_code == 200 and r.json() == {"backend": "exact", "spaces_dropped": 1}
    again = c.post("/search", json={"text": "rocket", "k": 3}).json()["hits"]  # reloaded from the catalog
    assert [h["asset_id"] for h in again] == [h["asset_id"] for h in body["hits"]]

    # a second scan reads nothing: every file comes from the cache
    rescan = c.post("/ingest/scan", json={"paths": [str(library)], "collection": "trips"}).json()
    second = wait_job(c, rescan["job_id"])["result"]
    assert second["totals"]["skipped_unchanged"] == N and second["totals"]["from_cache"] == N
    assert second["totals"]["processed"] == 0 and second["processed_files"] == []

    trips = next(x for x in c.get("/collections").json() if x["name"] == "trips")
    assert trips["asset_count"] == N and trips["model"] == "tiny-clip"
    jobs = c.get("/jobs").json()
    assert [j["id"] for j in jobs][:2] == [rescan["job_id"], job_id] and all(j["finished"] for j in jobs)

    r = c.delete("/collections/trips")
    assert r.status_code == 200 and r.json() == {"deleted": "trips"}
    assert_error(c.delete("/collections/trips"), 404, "collection_not_found")
    assert_error(c.post("/search", json={"text": "rocket", "collection": "trips"}), 404, "collection_not_found")
    gone = c.get(f"/ingest/status/{job_id}").json()  # the job's history stays, without the collection
    assert gone["status"] == "completed" and gone["result"] is None and "deleted" in gone["notice"]
