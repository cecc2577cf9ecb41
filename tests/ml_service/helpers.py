"""The real ML service on a loopback port, for tests: uvicorn in a thread, or `photoindex serve-ml` in a
subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from photoindex.api.ml_app import MLServiceOptions, create_ml_app
from photoindex.config import Settings

MODEL = "tiny-clip"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_settings(home: Path, models_dir: Path, **overrides) -> Settings:
    """Settings for a service, independent of the environment (session fixtures run outside the per-test
    isolation)."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("PHOTOINDEX_") and not key.startswith("PHOTOINDEX_TEST_"):
                mp.delenv(key)
        mp.delenv("ML_INFERENCE_SERVICE_URL", raising=False)
        mp.setenv("PHOTOINDEX_CONFIG", str(home / "no-config.toml"))
        mp.setenv("PHOTOINDEX_ENRICHERS", "")
        return Settings(home=home, model=MODEL, models_path=[models_dir], auto_pull=False, **overrides)


class ThreadService:
    """`create_ml_app` served by uvicorn in a thread of the test process."""

    def __init__(
        self, settings: Settings, options: MLServiceOptions | None = None, port: int | None = None
    ) -> None:
        self.app = create_ml_app(settings, options)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"ml-service-{self.port}")

    @property
    def host(self):
        return self.app.state.host

    def start(self, timeout: float = 30.0) -> ThreadService:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ML service did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def __enter__(self) -> ThreadService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ProcessService:
    """`photoindex serve-ml` as a subprocess (killable with SIGKILL)."""

    def __init__(self, home: Path, models_dir: Path, port: int, log: Path, *args: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "PHOTOINDEX_HOME": str(home),
            "PHOTOINDEX_MODELS_PATH": str(models_dir),
            "PHOTOINDEX_MODEL": MODEL,
            "PHOTOINDEX_AUTO_PULL": "false",
            "PHOTOINDEX_CONFIG": str(home / "no-config.toml"),
        }
        self.args = args
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ProcessService:
        cmd = [sys.executable, "-m", "photoindex.cli.main", "serve-ml", "--port", str(self.port), *self.args]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"serve-ml exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"serve-ml did not come up in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def thread_service(
    settings: Settings, options: MLServiceOptions | None = None, port: int | None = None
) -> Iterator[ThreadService]:
    svc = ThreadService(settings, options, port)
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
