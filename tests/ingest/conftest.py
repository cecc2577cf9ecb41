"""Fixtures for pipeline and search tests: a real photo library and the tiny model tied to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from photoindex.runtime import Runtime
from support.runtime import make_runtime


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
