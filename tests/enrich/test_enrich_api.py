"""Enrichment through the REST API: a job that computes only what is missing, the asset detail with
boxes, tags, OCR text and quality, search with the new filters, labels changed at run time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from api.helpers import Server, api_settings, wait_job

from .conftest import ENRICHERS


@pytest.fixture
def server(tmp_path: Path, models_path: Path, enrich_library: Path, monkeypatch: pytest.MonkeyPatch) -> Server:
    monkeypatch.setenv("PHOTOINDEX_ENRICHERS", "quality")  # the ingest runs one; the job adds the rest
    settings = api_settings(tmp_path / "home", models_path, allowed_roots=[enrich_library], rerank_regions=False)
    server = Server(settings).start()
    yield server
    server.stop()


def wait_done(client, job_id: int, timeout: float = 120.0) -> dict:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["finished"] or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_enrich_job_detail_filters_and_labels(server: Server, enrich_library: Path) -> None:
    with server.client() as client:
        accepted = client.post("/ingest/scan", json={"paths": [str(enrich_library)]}).json()
        assert wait_job(client, accepted["job_id"])["result"]["report"]["enriched"] == {"quality": 6}
        bad = client.post("/enrich", json={"only": ["telepathy"]})
        assert bad.status_code == 422
        job = client.post("/enrich", json={"only": ENRICHERS.split(",")})
        assert job.status_code == 202, job.text
        done = wait_done(client, job.json()["job_id"])
        assert done["status"] == "completed", done
        assert done["counts"]["objects"] == 6 and done["counts"]["ocr"] == 6
        assert done["report"]["ocr_gate_skipped"] == 4  # see test_enrich.py: the astronaut passes the gate
        hits = client.post("/search", json={"text": "open 24 hours", "k": 1, "mode": "words"}).json()["hits"]
        sign_id = hits[0]["asset_id"]
        assert hits[0]["path"].endswith("sign.jpg") and "words" in hits[0]["found_by"]
        detail = client.get(f"/assets/{sign_id}").json()
        assert "OPEN 24 HOURS" in detail["ocr_text"].upper()
        text_boxes = [r for r in detail["regions"] if r["kind"] == "text"]
        assert text_boxes and all(0 <= r["box"]["x0"] < r["box"]["x1"] <= 1 for r in text_boxes)
        assert detail["quality"] is not None and detail["has_text"] is True
        cat = client.post("/search", json={"text": "cat", "k": 1, "mode": "image",
                                           "filters": {"tags": ["cat"]}}).json()["hits"]
        assert cat and cat[0]["path"].endswith("cat.jpg")
        none = client.post("/search", json={"text": "cat", "k": 5, "filters": {"has_text": True, "tags": ["cat"]}})
        assert none.status_code == 200 and none.json()["hits"] == []
        assert client.get("/settings/labels").json()["labels"]
        put = client.put("/settings/labels", json={"labels": ["rocket", " rocket ", "cat"]})
        assert put.json() == {"labels": ["rocket", "cat"]}
        assert client.put("/settings/labels", json={"labels": []}).status_code == 422
        again = wait_done(client, client.post("/enrich", json={"only": ["tags"]}).json()["job_id"])
        assert again["counts"] == {"tags": 6}  # new labels: the tags are recomputed, nothing else ran
        unknown_model = client.post("/search", json={"text": "cat", "model": "no-such-model"})
        assert unknown_model.status_code == 404 and unknown_model.json()["code"] == "no_vectors"
