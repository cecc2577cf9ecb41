"""A Runtime on a throwaway data directory with the tiny test model."""

from __future__ import annotations

from pathlib import Path

from photoindex.config import load_settings
from photoindex.runtime import Runtime


def make_runtime(home: Path, models_dir: Path | None, **overrides) -> Runtime:  # noqa: ANN003
    settings = load_settings(home=home, model="tiny-clip", models_path=[models_dir] if models_dir else [],
                             auto_pull=False, **overrides)
    return Runtime(settings)
