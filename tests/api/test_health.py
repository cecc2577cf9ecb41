"""/healthz, /readyz (200, and 503 with the failing check named) and /metrics (route templates)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import Shared
from .helpers import Server


def test_healthz_and_readyz(shared: Shared) -> None:
    c = shared.client
    assert c.get("/healthz").json() == {"status": "ok", "version": "0.1.0"}
    r = c.get("/readyz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True
    assert set(body["checks"]) == {"catalog", "vector_index", "model", "queue", "worker"}
    assert body["checks"]["catalog"]["detail"] == "sqlite" and "tiny-clip" in body["checks"]["model"]["detail"]


def test_readyz_503_without_model(serve: Callable[..., Server]) -> None:
    server = serve(model="not-installed-model", serve_worker=False)
    r = server.client().get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["ready"] is False and body["checks"]["model"]["ok"] is False
    assert "not installed" in body["checks"]["model"]["detail"]
    assert body["checks"]["catalog"]["ok"] and "worker" not in body["checks"]
    # and what needs the model says why, as a structured 503
    search = server.client().post("/search", json={"text": "cat"})
    assert search.status_code == 503 and search.json()["code"] == "model_not_found"
    assert "models pull" in search.json()["hint"]


def test_readyz_503_without_catalog(serve: Callable[..., Server], tmp_path: Path) -> None:
    server = serve(catalog_url="postgresql+psycopg://nobody@127.0.0.1:1/nothing", serve_worker=False)
    c = server.client()
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["checks"]["catalog"]["ok"] is False
    assert c.get("/healthz").status_code == 200
    listed = c.get("/collections")
    assert listed.status_code == 503 and listed.json()["code"] == "backend_unavailable"


def test_metrics_label_route_templates(shared: Shared) -> None:
    c = shared.client
    for asset_id in shared.ids.values():
        assert c.get(f"/assets/{asset_id}").status_code == 200
    c.get("/no/such/route")
    text = c.get("/metrics").text
    assert 'photoindex_http_seconds_count{method="GET",route="/api/v1/assets/{asset_id}",status="200"}' in text
    assert 'route="<unmatched>"' in text and f"/api/v1/assets/{shared.ids['cat']}\"" not in text
    assert "photoindex_tasks_total" in text and "photoindex_stage_seconds" in text


def test_access_log_is_json_fields(shared: Shared, caplog: pytest.LogCaptureFixture) -> None:
    def logged() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "photoindex.api" and hasattr(r, "fields")]

    with caplog.at_level(logging.INFO, logger="photoindex.api"):
        shared.client.get("/jobs/1")
        shared.client.get(f"/assets/{shared.ids['cat']}")
        deadline = time.monotonic() + 5  # the line is written once the response has gone out
        while len(logged()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    records = logged()
    job = next(r.fields for r in records if r.fields["route"] == "/api/v1/jobs/{job_id}")
    assert job["job_id"] == 1 and job["status"] == 200 and job["method"] == "GET" and job["ms"] >= 0
    asset = next(r.fields for r in records if r.fields["route"] == "/api/v1/assets/{asset_id}")
    assert "job_id" not in asset
    from photoindex.api.app import JsonLines

    line = json.loads(JsonLines().format(next(r for r in records if r.fields["route"] == "/api/v1/jobs/{job_id}")))
    assert line["logger"] == "photoindex.api" and line["route"] == "/api/v1/jobs/{job_id}" and line["job_id"] == 1
