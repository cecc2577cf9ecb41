"""API keys: required off loopback (or when asked), hashed at rest, refused when unknown or revoked;
`photoindex serve` and `photoindex apikey` as a person runs them."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from photoindex.api.auth import is_loopback, keys_required
from photoindex.cli.main import app as cli
from photoindex.config import load_settings
from photoindex.store.apikeys import ApiKeyStore
from photoindex.store.models import ApiKey

from .helpers import Server, assert_error


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.168.1.20", False), ("photos.example.org", False), ("", False),
])
def test_loopback_decides(host: str, loopback: bool, tmp_path: Path) -> None:
    assert is_loopback(host) is loopback
    settings = load_settings(home=tmp_path)
    assert keys_required(settings, host) is (not loopback)
    assert keys_required(load_settings(home=tmp_path, require_api_key=True), host) is True
    assert keys_required(load_settings(home=tmp_path, require_api_key=False), host) is False
    assert keys_required(load_settings(home=tmp_path, api_host=host)) is (not loopback)


def test_key_store_hashes_and_revokes(serve: Callable[..., Server]) -> None:
    server = serve(require_api_key=True)
    store = ApiKeyStore(server.rt.catalog)
    info, secret = store.create("laptop")
    assert secret.startswith("pix_") and len(secret) > 40 and info.prefix == secret[:12]
    with server.rt.catalog.session() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.id == info.id))
        assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest() and secret not in (row.name, row.prefix)

    c = server.client()
    assert c.get("/healthz").status_code == 200  # always open
    for path in ("/readyz", "/metrics", "/collections", "/jobs"):
        r = assert_error(c.get(path), 401, "unauthorized")
        assert "apikey create" in r["hint"]
    missing = c.get("/collections")
    assert missing.headers["www-authenticate"] == 'ApiKey header="x-api-key"'
    assert_error(c.get("/collections", headers={"x-api-key": "pix_not-a-key"}), 401, "unauthorized")
    assert_error(c.get("/collections", headers={"x-api-key": secret[:-1]}), 401, "unauthorized")

    ok = c.get("/collections", headers={"x-api-key": secret})
    assert ok.status_code == 200, ok.text
    assert c.get("/readyz", headers={"x-api-key": secret}).status_code == 200
    assert c.get("/metrics", headers={"x-api-key": secret}).status_code == 200
    assert store.list()[0].last_used_at is not None

    store.revoke(info.prefix)
    r = assert_error(c.get("/collections", headers={"x-api-key": secret}), 401, "unauthorized")
    assert "revoked" in r["message"]

    schema = c.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "x-api-key",
        "description": "A key from `photoindex apikey create NAME`."}
    assert "security" not in schema["paths"]["/api/v1/healthz"]["get"]
    assert schema["paths"]["/api/v1/collections"]["get"]["security"] == [{"ApiKey": []}]


def test_loopback_server_needs_no_key(serve: Callable[..., Server]) -> None:
    server = serve()
    c = server.client()
    assert c.get("/collections").status_code == 200
    assert "securitySchemes" not in c.get("/openapi.json").json().get("components", {})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_off_loopback_requires_keys(tmp_path: Path, models_dir: Path, library: Path) -> None:
    """`photoindex serve --host 0.0.0.0` in a subprocess, reached through 127.0.0.1."""
    env = {**os.environ, "PHOTOINDEX_HOME": str(tmp_path / "home"), "PHOTOINDEX_MODELS_PATH": str(models_dir),
           "PHOTOINDEX_MODEL": "tiny-clip", "PHOTOINDEX_AUTO_PULL": "false", "PHOTOINDEX_WORKERS": "1"}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "photoindex.cli.main", "serve", "--host", "0.0.0.0",
                             "--port", str(port), "--allow", str(library)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        assert_error(httpx.get(base + "/readyz"), 401, "unauthorized")

        runner = CliRunner()
        result = runner.invoke(cli, ["apikey", "create", "ci", "--json"], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        created = json.loads(result.output)
        secret = created["secret"]
        result = runner.invoke(cli, ["apikey", "list", "--json"], env=env, catch_exceptions=False)
        listed = json.loads(result.output)
        assert [k["prefix"] for k in listed] == [created["prefix"]] and secret not in result.output

        key = {"x-api-key": secret}
        assert httpx.get(base + "/readyz", headers=key).json()["ready"] is True
        r = httpx.post(base + "/ingest/scan", json={"path": str(library)}, headers=key)
        assert r.status_code == 202, r.text

        result = runner.invoke(cli, ["apikey", "revoke", created["prefix"]], env=env, catch_exceptions=False)
        assert result.exit_code == 0 and "revoked" in result.output
        assert_error(httpx.get(base + "/readyz", headers=key), 401, "unauthorized")
        result = runner.invoke(cli, ["apikey", "revoke", "pix_nothing"], env=env)
        assert result.exit_code == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    # uvicorn shuts down cleanly, then re-raises the signal it caught (exit by SIGTERM, as a service should)
    assert proc.returncode in (0, -signal.SIGTERM), err[-3000:]
    assert "Application shutdown complete" in err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [x for x in lines if x.get("logger") == "photoindex.api" and "route" in x]
    scans = [x for x in access if x["route"] == "/api/v1/ingest/scan"]
    assert scans and scans[0]["status"] == 202 and scans[0]["method"] == "POST" and "job_id" in scans[0]
    assert all(isinstance(x["ms"], float | int) for x in access)
    start = next(x for x in lines if x.get("event") == "start")
    assert start["api_keys"] == "required" and start["host"] == "0.0.0.0"
