"""Settings: defaults < config.toml < environment < arguments; seed names accepted as aliases."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from photoindex.config import DEFAULT_MODEL, load_settings


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOINDEX_HOME", str(tmp_path))
    s = load_settings()
    assert s.home == tmp_path and s.model == DEFAULT_MODEL and s.vector_backend == "exact"
    assert s.resolved_catalog_url == f"sqlite:///{tmp_path.as_posix()}/catalog.db"
    assert s.thumbnail_sizes == (256, 1024) and s.prepare_workers >= 1


def test_config_file_then_env_then_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOINDEX_HOME", str(tmp_path))
    (tmp_path / "config.toml").write_text('model = "ViT-B-32__openai"\nbatch_size = 8\nworkers = 3\n'
                                          'models_path = ["/srv/models"]\n')
    s = load_settings()
    assert (s.model, s.batch_size, s.workers, s.models_path) == ("ViT-B-32__openai", 8, 3, [Path("/srv/models")])
    monkeypatch.setenv("PHOTOINDEX_BATCH_SIZE", "16")
    assert load_settings().batch_size == 16
    assert load_settings(batch_size=4).batch_size == 4


def test_explicit_config_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('vector_backend = "qdrant"\nqdrant_url = "http://127.0.0.1:6333"\n')
    monkeypatch.setenv("PHOTOINDEX_CONFIG", str(cfg))
    s = load_settings()
    assert s.vector_backend == "qdrant" and s.qdrant_url == "http://127.0.0.1:6333"


def test_seed_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_INFERENCE_BATCH_SIZE", "12")
    monkeypatch.setenv("QDRANT_HOST", "qdrant.local")
    monkeypatch.setenv("QDRANT_PORT", "7000")
    monkeypatch.setenv("QDRANT_VECTOR_SIZE", "768")
    monkeypatch.setenv("QDRANT_DISTANCE_METRIC", "cosine")
    monkeypatch.setenv("QDRANT_UPSERT_BATCH_SIZE", "64")
    s = load_settings()
    assert (s.batch_size, s.qdrant_host, s.qdrant_port, s.qdrant_vector_size, s.qdrant_distance,
            s.qdrant_upsert_batch_size) == (12, "qdrant.local", 7000, 768, "Cosine", 64)


def test_lists_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOINDEX_MODELS_PATH", "/a:/b")
    monkeypatch.setenv("PHOTOINDEX_EXCLUDE_DIRS", "Trash, tmp")
    s = load_settings()
    assert s.models_path == [Path("/a"), Path("/b")] and s.exclude_dirs == ["Trash", "tmp"]


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOINDEX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError):
        load_settings()
