from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from photoindex.config import DEFAULT_MODEL, Settings
from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.registry import REVISION_FILE, ModelRegistry, is_model_dir, model_revision
from photoindex.ml.specs import KNOWN_MODELS


def _place(model: Path, folder: Path, name: str | None = None) -> Path:
    dest = folder / (name or model.name)
    shutil.copytree(model, dest)
    return dest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- resolution ----------------------------------------------------------------------------------


def test_models_path_comes_before_the_cache(make_settings, tiny_model: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    in_path = _place(tiny_model, extra)
    settings = make_settings(models_path=[tmp_path / "nothing-here", extra])
    in_cache = _place(tiny_model, settings.model_cache_dir)
    registry = ModelRegistry(settings)
    assert registry.locate("tiny-clip") == in_path
    assert registry.status("tiny-clip").source == "models_path"
    shutil.rmtree(in_path)
    assert registry.locate("tiny-clip") == in_cache
    status = registry.status("tiny-clip")
    assert (status.source, status.installed, status.path) == ("cache", True, in_cache)


def test_models_path_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tiny_model: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    in_b = _place(tiny_model, b)
    monkeypatch.setenv("PHOTOINDEX_MODELS_PATH", os.pathsep.join([str(a), str(b)]))
    assert ModelRegistry(Settings()).locate("tiny-clip") == in_b


def test_a_folder_without_the_image_encoder_does_not_count(
    make_settings, tiny_model: Path, tmp_path: Path
) -> None:
    extra = tmp_path / "extra"
    broken = _place(tiny_model, extra)
    (broken / "visual" / "model.onnx").unlink()
    assert not is_model_dir(broken)
    settings = make_settings(models_path=[extra])
    registry = ModelRegistry(settings)
    assert registry.locate("tiny-clip") is None
    with pytest.raises(ModelError) as info:
        registry.require("tiny-clip")
    assert "lacks" in info.value.message  # says what is wrong with the folder it saw
    in_cache = _place(tiny_model, settings.model_cache_dir)
    assert registry.locate("tiny-clip") == in_cache


def test_a_models_path_entry_may_be_the_model_folder_itself(make_settings, tiny_model: Path) -> None:
    registry = ModelRegistry(make_settings(models_path=[tiny_model]))
    assert registry.locate("tiny-clip") == tiny_model
    assert registry.locate("someone/tiny-clip") == tiny_model  # owner/NAME resolves by NAME


def test_require_names_the_pull_command(make_settings) -> None:
    registry = ModelRegistry(make_settings())
    with pytest.raises(ModelError) as info:
        registry.require(DEFAULT_MODEL)
    err = info.value
    assert err.code == ErrorCode.MODEL_NOT_FOUND
    assert f"photoindex models pull {DEFAULT_MODEL}" in str(err) and "PHOTOINDEX_MODELS_PATH" in str(err)
    assert err.to_dict()["details"]["command"] == f"photoindex models pull {DEFAULT_MODEL}"
    with pytest.raises(ModelError) as info:
        registry.require("my-own-model")
    assert "photoindex models pull OWNER/my-own-model" in str(info.value)


def test_list_shows_known_and_found_models(make_settings, tiny_model: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    _place(tiny_model, extra)
    (extra / "not-a-model").mkdir()
    settings = make_settings(models_path=[extra])
    _place(tiny_model, settings.model_cache_dir, "ViT-B-32__openai")
    listing = {s.name: s for s in ModelRegistry(settings).list()}
    assert set(KNOWN_MODELS) <= set(listing) and "tiny-clip" in listing and "not-a-model" not in listing
    assert listing["tiny-clip"].spec is None and listing["tiny-clip"].installed
    assert listing["tiny-clip"].size_bytes > 1000 and listing["tiny-clip"].revision
    openai = listing["ViT-B-32__openai"]
    assert openai.installed and openai.source == "cache" and openai.spec == KNOWN_MODELS["ViT-B-32__openai"]
    missing = listing[DEFAULT_MODEL]
    assert (missing.installed, missing.source, missing.path, missing.size_bytes) == (
        False,
        "missing",
        None,
        0,
    )


@pytest.mark.parametrize("name", ["../etc", "a/b/c", "", ".hidden", "x y"])
def test_bad_names_are_refused(make_settings, name: str) -> None:
    with pytest.raises(ModelError) as info:
        ModelRegistry(make_settings()).locate(name)
    assert info.value.code == ErrorCode.UNKNOWN_MODEL


# --- install / pull ------------------------------------------------------------------------------


def test_install_copies_into_the_cache_with_a_revision(make_settings, tiny_model: Path) -> None:
    registry = ModelRegistry(make_settings())
    path = registry.install(
        tiny_model, "ViT-B-32__openai", revision="0123456789abcdef0123456789abcdef01234567"
    )
    assert path == registry.settings.model_cache_dir / "ViT-B-32__openai" and is_model_dir(path)
    assert model_revision(path) == "0123456789abcdef0123456789abcdef01234567"
    assert registry.status("ViT-B-32__openai").revision == model_revision(path)
    # installing again replaces the folder in one step and leaves no staging folders behind
    registry.install(tiny_model, "ViT-B-32__openai", revision="feedface")
    assert model_revision(path) == "feedface"
    assert [p.name for p in registry.settings.model_cache_dir.iterdir()] == ["ViT-B-32__openai"]


def test_install_refuses_an_incomplete_folder(make_settings, tiny_model: Path, tmp_path: Path) -> None:
    broken = _place(tiny_model, tmp_path / "x")
    (broken / "textual" / "tokenizer.json").unlink()
    registry = ModelRegistry(make_settings())
    with pytest.raises(ModelError) as info:
        registry.install(broken)
    assert info.value.code == ErrorCode.MODEL_INVALID and "textual/tokenizer.json" in info.value.message
    assert registry.locate("tiny-clip") is None


def test_pull_unknown_model(make_settings) -> None:
    with pytest.raises(ModelError) as info:
        ModelRegistry(make_settings()).pull("no-such-model")
    assert info.value.code == ErrorCode.UNKNOWN_MODEL and DEFAULT_MODEL in str(info.value)


def test_pull_in_offline_mode_fails_fast(make_settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # (the fixture sets it too; this test is about it)
    settings = make_settings()
    start = time.monotonic()
    with pytest.raises(ModelError) as info:
        ModelRegistry(settings).pull(DEFAULT_MODEL, progress=False)
    assert time.monotonic() - start < 5
    assert info.value.code == ErrorCode.MODEL_DOWNLOAD_FAILED
    assert f"photoindex models pull {DEFAULT_MODEL}" in str(info.value) and "PHOTOINDEX_MODELS_PATH" in str(
        info.value
    )
    assert not settings.model_cache_dir.exists() or not any(settings.model_cache_dir.iterdir())


@pytest.mark.parametrize("name", [DEFAULT_MODEL, "someone/Their-CLIP__export"])
def test_pull_with_the_hub_unreachable_fails_fast(
    make_settings, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")  # nothing listens there
    settings = make_settings()
    start = time.monotonic()
    with pytest.raises(ModelError) as info:
        ModelRegistry(settings).pull(name, progress=False)
    assert time.monotonic() - start < 10
    err = info.value
    assert err.code == ErrorCode.MODEL_DOWNLOAD_FAILED and "127.0.0.1" in err.message
    assert "photoindex models pull" in str(err)
    assert ModelRegistry(settings).locate(name) is None


# --- revisions -----------------------------------------------------------------------------------


def test_revision_is_a_stable_content_hash(tiny_model: Path, tmp_path: Path) -> None:
    copy = _place(tiny_model, tmp_path / "copy")
    rev = model_revision(tiny_model)
    assert len(rev) == 12 and rev == model_revision(tiny_model) == model_revision(
        copy
    )  # content, not path or mtime
    (copy / "README.md").write_text("notes")  # not a model file
    assert model_revision(copy) == rev


@pytest.mark.parametrize(
    "rel", ["config.json", "visual/model.onnx", "textual/tokenizer.json", "visual/preprocess_cfg.json"]
)
def test_revision_changes_when_a_model_file_changes(tiny_model: Path, tmp_path: Path, rel: str) -> None:
    copy = _place(tiny_model, tmp_path / "copy")
    before = model_revision(copy)
    with (copy / rel).open("ab") as fh:
        fh.write(b" ")
    assert model_revision(copy) != before


def test_revision_file_wins(tiny_model: Path, tmp_path: Path) -> None:
    copy = _place(tiny_model, tmp_path / "copy")
    (copy / REVISION_FILE).write_text("abc123def456\n")
    assert model_revision(copy) == "abc123def456"
