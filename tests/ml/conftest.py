"""Fixtures for the model layer: an isolated data directory, real photos, tiny generated models."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from photoindex.config import Settings
from photoindex.ml.testing import build_tiny_clip


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Image.Image]) -> Path:
    """A tiny model in which the words astronaut, coffee, cat, rocket and motorcycle find the photos."""
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "tiny-clip", anchors=photos)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No test reads the user's data directory, config, model path or device choice."""
    home = tmp_path / "home"
    monkeypatch.setenv("PHOTOINDEX_HOME", str(home))
    monkeypatch.setenv("PHOTOINDEX_CONFIG", str(tmp_path / "no-config.toml"))
    for name in ("PHOTOINDEX_MODELS_PATH", "PHOTOINDEX_DEVICE", "PHOTOINDEX_MODEL", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no test reaches a model hub unless it says so
    return home


@pytest.fixture
def make_settings(isolated_env: Path):
    def make(**kwargs) -> Settings:
        return Settings(home=isolated_env, **kwargs)

    return make
