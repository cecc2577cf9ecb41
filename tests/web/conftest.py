"""Fixtures for the web UI tests: Debian's Chromium driven by Playwright, real `photoindex serve`
servers (uvicorn in a thread, as the API tests run them) with the tiny model and real photos.

Without /usr/bin/chromium the module is skipped, except under CI (env CI), where that is a failure
(`.ci/chromium.sh` installs it)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from api.helpers import Server, api_settings, ingest_library
from PIL import Image
from support.library import build_library

from .browser import CHROMIUM_ARGS, Tab, chromium_path, open_tab


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    exe = chromium_path()
    if not os.path.exists(exe):
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {exe} under CI (run .ci/chromium.sh)")
        pytest.skip(f"no Chromium at {exe} (apt-get install chromium, or run .ci/chromium.sh)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: PHOTOINDEX_TEST_ARTIFACTS, or a temporary folder."""
    folder = os.environ.get("PHOTOINDEX_TEST_ARTIFACTS")
    path = Path(folder) / "web" if folder else tmp_path_factory.mktemp("web-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def tab(browser: Any, artifacts: Path, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """tab(server_base_url, **context options) -> a context manager yielding a `Tab`; it fails the test
    on any console error or uncaught exception that the test did not `allow`."""

    def make(base: str, label: str | None = None, **options: Any) -> Any:
        return open_tab(browser, base, artifacts, label or request.node.name, **options)

    return make


def _clean_environment(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Module-scoped servers start before the per-test environment isolation is active."""
    for key in [k for k in os.environ if k.startswith(("PHOTOINDEX_", "QDRANT_", "ML_INFERENCE_"))]:
        if not key.startswith("PHOTOINDEX_TEST_"):
            mp.delenv(key)
    mp.setenv("PHOTOINDEX_CONFIG", str(root / "absent.toml"))
    mp.setenv("HF_HUB_OFFLINE", "1")


@contextmanager
def served_library(root: Path, library: Path, models_dir: Path) -> Iterator[Server]:
    """A server (without enrichment: tests that want it start their own) with `library` ingested."""
    with pytest.MonkeyPatch.context() as mp:
        _clean_environment(mp, root)
        settings = api_settings(root / "home", models_dir, allowed_roots=[library], enrichers=[])
    server = Server(settings).start()
    try:
        with server.client() as client:
            ingest_library(client, library)
        yield server
    finally:
        server.stop()


class Site:
    """A server with the test library ingested, shared by a module's tests."""

    def __init__(self, server: Server, library: Path) -> None:
        self.server = server
        self.library = library
        self.base = server.base
        with server.client() as client:
            self.ids = {Path(h["path"]).stem: h["asset_id"]
                        for h in client.post("/search", json={"text": "rocket", "k": 10}).json()["hits"]}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, photos: dict[str, Image.Image]) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("site")
    library = root / "library"
    build_library(library, photos)
    with served_library(root, library, models_dir) as server:
        yield Site(server, library)


@pytest.fixture
def start_server(tmp_path: Path, models_dir: Path) -> Iterator[Callable[..., Server]]:
    """start_server(**settings overrides) -> a running Server, stopped after the test."""
    started: list[Server] = []

    def start(**overrides: Any) -> Server:
        server = Server(api_settings(tmp_path / f"home{len(started)}", models_dir, **overrides)).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


__all__ = ["Tab"]
