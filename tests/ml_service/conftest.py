"""Fixtures for the ML service: the tiny model, one service for the session, clients."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ml_service.helpers import MODEL, ThreadService, service_settings
from photoindex.api.ml_app import MLServiceOptions
from photoindex.ml.clip import ImageTextEmbedder


@pytest.fixture(scope="session")
def local_model(models_dir: Path) -> ImageTextEmbedder:
    """The same model, in-process: what the service's answers are compared with."""
    return ImageTextEmbedder.load(models_dir / MODEL, name=MODEL, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[ThreadService]:
    """One service for the whole session (probed batch size, no key, an 8 MB body limit)."""
    home = tmp_path_factory.mktemp("ml-home")
    svc = ThreadService(
        service_settings(home, models_dir), MLServiceOptions(max_body_bytes=8 * 1024 * 1024)
    )
    svc.start()
    yield svc
    svc.stop()


@pytest.fixture
def client(service: ThreadService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=30.0) as c:
        yield c
