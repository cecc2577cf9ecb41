"""The API test harness: a real uvicorn server in a thread on 127.0.0.1, and request helpers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from photoindex.api.app import create_app
from photoindex.config import Settings, load_settings

API = "/api/v1"


def api_settings(home: Path, models_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"home": home, "model": "tiny-clip", "models_path": [models_dir], "auto_pull": False,
                              "workers": 1, "retry_base_s": 0.05, "retry_max_s": 0.2, "reap_interval_s": 1.0}
    values.update(overrides)
    return load_settings(**values)


class Server:
    """uvicorn serving `create_app(settings)` in a thread, on a socket bound before it starts."""

    def __init__(self, settings: Settings, host: str = "127.0.0.1", connect_host: str = "127.0.0.1") -> None:
        self.settings = settings
        self.app = create_app(settings, host=host)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]
        self.base = f"http://{connect_host}:{self.port}"
        self.url = self.base + API
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="on",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def rt(self) -> Any:
        return self.app.state.rt

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=40)
        self.sock.close()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)


@contextmanager
def running(settings: Settings, **kwargs: Any) -> Iterator[Server]:
    server = Server(settings, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def wait_job(client: httpx.Client, job_id: int, timeout: float = 60.0) -> dict[str, Any]:
    """Poll GET /ingest/status/{id} until the job has finished; returns the last status."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/ingest/status/{job_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["finished"]:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not finish: {body}")
        time.sleep(0.2)


def ingest_library(client: httpx.Client, root: Path, **body: Any) -> dict[str, Any]:
    r = client.post("/ingest/scan", json={"path": str(root), **body})
    assert r.status_code == 202, r.text
    return wait_job(client, r.json()["job_id"])


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body["code"], str) and isinstance(body["message"], str) and isinstance(body["details"], dict)
    if code is not None:
        assert body["code"] == code, body
    return body

