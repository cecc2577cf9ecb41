"""Fixtures shared by the curation tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.runtime import make_runtime

from photoindex.runtime import Runtime


@pytest.fixture
def curation_runtime(tmp_path: Path, models_dir: Path) -> Iterator[Callable[..., Runtime]]:
    """make(**settings) -> a Runtime on a fresh data directory with the tiny model, one decode process
    and only the cheap quality enricher (closed afterwards)."""
    made: list[Runtime] = []

    def make(**overrides: Any) -> Runtime:
        values: dict[str, Any] = {"workers": 1, "enrichers": ["quality"], **overrides}
        rt = make_runtime(tmp_path / f"home{len(made)}", models_dir, **values)
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.close()
