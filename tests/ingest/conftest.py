"""Fixtures for pipeline and search tests: a real photo library and the tiny model tied to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from photoindex.ml.testing import build_tiny_clip
from photoindex.runtime import Runtime
from support.library import build_library, skimage_photos
from support.runtime import make_runtime


@pytest.fixture(scope="session")
def photos() -> dict[str, Image.Image]:
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
    root = tmp_path / "library"
    build_library(root, photos)
    return root


@pytest.fixture
def rt(tmp_path: Path, models_dir: Path, catalog_url: str) -> Iterator[Runtime]:
    """A runtime on each catalog backend (SQLite, PostgreSQL) with the tiny model installed."""
    runtime = make_runtime(tmp_path / "home", models_dir, catalog_url=catalog_url)
    yield runtime
    runtime.close()


@pytest.fixture
def rt_sqlite(tmp_path: Path, models_dir: Path) -> Iterator[Runtime]:
    runtime = make_runtime(tmp_path / "home", models_dir)
    yield runtime
    runtime.close()
