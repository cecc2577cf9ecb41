"""Fixtures for the API tests: the tiny model, real photos, servers started per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support.library import build_library


from .helpers import Server, api_settings, ingest_library


@pytest.fixture
def serve(tmp_path: Path, models_dir: Path) -> Iterator[Callable[..., Server]]:
    """Start servers for this test: serve(**settings overrides) -> Server (stopped afterwards)."""
    started: list[Server] = []

    def start(host: str = "127.0.0.1", **overrides: Any) -> Server:
        home = tmp_path / f"home{len(started)}" if "home" not in overrides else overrides.pop("home")
        server = Server(api_settings(home, models_dir, **overrides), host=host).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


class Shared:
    """One server per test module with the library ingested (SQLite catalog, in-process worker)."""

    def __init__(self, server: Server, library: Path, report: dict[str, Any]) -> None:
        self.server = server
        self.library = library
        self.report = report
        self.client = server.client()
        hits = self.client.post("/search", json={"text": "rocket", "k": 10}).json()["hits"]
        self.ids = {Path(h["path"]).stem: h["asset_id"] for h in hits}


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, models_dir: Path, photos: dict[str, Image.Image]) -> Iterator[Shared]:
    root = tmp_path_factory.mktemp("shared")
    library = root / "library"
    build_library(library, photos)
    with pytest.MonkeyPatch.context() as mp:  # module scope: the per-test environment isolation is not active yet
        for key in [k for k in os.environ if k.startswith(("PHOTOINDEX_", "QDRANT_", "ML_INFERENCE_"))]:
            if not key.startswith("PHOTOINDEX_TEST_"):
                mp.delenv(key)
        mp.setenv("PHOTOINDEX_CONFIG", str(root / "absent.toml"))
        mp.setenv("PHOTOINDEX_ENRICHERS", "")  # as the per-test isolation does: enrichment is opted into
        settings = api_settings(root / "home", models_dir, allowed_roots=[library])
    server = Server(settings).start()
    try:
        with server.client() as client:
            report = ingest_library(client, library)
        shared = Shared(server, library, report)
        yield shared
        shared.client.close()
    finally:
        server.stop()
