"""Shared fixtures: isolated data directories, catalogs on SQLite and PostgreSQL, the tiny model.

PostgreSQL: tests use PHOTOINDEX_TEST_PG_URL when set (`.ci/run` starts a server and sets it);
otherwise they start a throwaway server with Debian's binaries via `.ci/postgres.sh` when those
exist, and skip the PostgreSQL variants when they don't — except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from photoindex.ml.testing import build_tiny_clip
from photoindex.store.catalog import Catalog
from support.library import build_library, skimage_photos
from support.databases import fresh_pg_database

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test reads the developer's own settings or data directory."""
    for key in list(os.environ):
        if key.startswith(("PHOTOINDEX_", "QDRANT_")) and not key.startswith("PHOTOINDEX_TEST_"):
            monkeypatch.delenv(key)
    for seed_name in ("ML_INFERENCE_BATCH_SIZE", "ML_INFERENCE_SERVICE_URL"):
        monkeypatch.delenv(seed_name, raising=False)
    monkeypatch.setenv("PHOTOINDEX_HOME", str(tmp_path_factory.mktemp("home")))
    # Enrichment (detection, OCR, captions...) is opted into by the tests about it; elsewhere it would
    # only slow every ingest down.
    monkeypatch.setenv("PHOTOINDEX_ENRICHERS", "")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _service_url(variable: str, script: str, installed: bool) -> str | None:
    """The server URL from `variable`, or from starting a throwaway server with `.ci/<script>` when its
    Debian binaries are installed; None when neither (a failure under CI, where .ci/run starts it)."""
    url = os.environ.get(variable)
    if not url and installed:
        out = subprocess.run(["bash", str(REPO / ".ci" / script)], capture_output=True, text=True)
        if out.returncode == 0 and f"{variable}=" in out.stdout:
            url = out.stdout.strip().split(f"{variable}=", 1)[1]
    if not url and os.environ.get("CI"):
        pytest.fail(f"these tests need {variable} under CI (.ci/run starts the server)")
    return url


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
    """Real photos that scikit-image ships, keyed by a word the tiny model can tie them to."""
    return skimage_photos()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Image.Image]) -> Path:
    """A models folder holding `tiny-clip`, whose words rocket, coffee, cat, astronaut and motorcycle
    are tied to those photos."""
    root = tmp_path_factory.mktemp("models")
    build_tiny_clip(root / "tiny-clip", anchors=photos)
    return root


@pytest.fixture
def library(tmp_path: Path, photos: dict[str, Image.Image]) -> Path:
    """A small library of real photos with EXIF (support.library.LIBRARY)."""
    root = tmp_path / "library"
    build_library(root, photos)
    return root


@pytest.fixture(scope="session")
def shared_models() -> Path:
    """The real pretrained models shipped beside the repository (`../shared/models`, or the folder
    PHOTOINDEX_TEST_SHARED_MODELS names): YOLOX-Nano, NanoDet. Missing is a failure under CI."""
    root = Path(os.environ.get("PHOTOINDEX_TEST_SHARED_MODELS") or REPO.parent / "shared" / "models")
    if not (root / "yolox-nano-coco").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"no shared models at {root} (set PHOTOINDEX_TEST_SHARED_MODELS)")
        pytest.skip(f"no shared models at {root}")
    return root


@pytest.fixture(scope="session")
def pg_url() -> str | None:
    return _service_url("PHOTOINDEX_TEST_PG_URL", "postgres.sh",
                        bool(list(Path("/usr/lib/postgresql").glob("*/bin/initdb"))))


@pytest.fixture(scope="session")
def redis_server_url() -> str | None:
    return _service_url("PHOTOINDEX_TEST_REDIS_URL", "redis.sh", shutil.which("redis-server") is not None)


@pytest.fixture
def redis_url(redis_server_url: str | None) -> str:
    """A Redis URL whose database is empty (flushed) for this test."""
    if not redis_server_url:
        pytest.skip("no Redis server (set PHOTOINDEX_TEST_REDIS_URL or install Debian's redis-server)")
    import redis

    redis.Redis.from_url(redis_server_url).flushdb()
    return redis_server_url


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str | None) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    if not pg_url:
        pytest.skip("no PostgreSQL server (set PHOTOINDEX_TEST_PG_URL or install Debian's postgresql)")
    url, drop = fresh_pg_database(pg_url)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    cat = Catalog.open(catalog_url)
    try:
        yield cat
    finally:
        cat.close()
