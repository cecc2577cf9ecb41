"""The command line as a person and a script use it: real commands, real catalog, tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from photoindex.cli.main import app
from support.library import LIBRARY, build_library
from photoindex.ml.testing import build_tiny_clip

N = len(LIBRARY)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    from support.library import skimage_photos

    photos = skimage_photos()
    build_tiny_clip(tmp_path / "models" / "tiny-clip", anchors=photos)
    build_library(tmp_path / "lib", photos)
    values = {
        "PHOTOINDEX_HOME": str(tmp_path / "home"),
        "PHOTOINDEX_MODELS_PATH": str(tmp_path / "models"),
        "PHOTOINDEX_MODEL": "tiny-clip",
        "PHOTOINDEX_AUTO_PULL": "false",
        "LIB": str(tmp_path / "lib"),
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_ingest_search_similar_info_status_json(env: dict[str, str]) -> None:
    code, out = run("ingest", env["LIB"], "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["processed"] == N and report["failed"] == 0 and report["embedded"] == N

    code, out = run("search", "rocket", "--json", "-k", "2")
    hits = json.loads(out)
    assert code == 0 and len(hits) == 2 and hits[0]["path"].endswith("trips/rocket.jpg")

    code, out = run("search", "cat", "--json", "--camera", "nikon")
    assert {Path(h["path"]).name for h in json.loads(out)} == {"rocket.jpg", "astronaut.jpg"}
    code, out = run("search", "cat", "--json", "--from", "2023-01-01", "--to", "2023-01-02")
    assert [Path(h["path"]).name for h in json.loads(out)] == ["coffee.jpg"]  # --to covers the whole day
    code, out = run("search", "cat", "--json", "--in", str(Path(env["LIB"]) / "home" / "garage"))
    assert [Path(h["path"]).name for h in json.loads(out)] == ["motorcycle.jpg"]

    code, out = run("similar", str(Path(env["LIB"]) / "home/cat.jpg"), "--json")
    assert code == 0 and len(json.loads(out)) == N - 1

    code, out = run("info", str(Path(env["LIB"]) / "home/coffee.jpg"), "--json")
    info = json.loads(out)
    assert code == 0 and info["camera"] == "Apple iPhone 13" and info["embedded_models"] == ["tiny-clip"]

    code, out = run("status", "--json")
    status = json.loads(out)
    assert status["assets"] == N and status["vectors_pending"] == 0 and status["recent_jobs"][0]["kind"] == "ingest"

    code, out = run("search", "rocket")  # the human rendering
    assert code == 0 and "rocket.jpg" in out and "score" in out


def test_collections_commands(env: dict[str, str]) -> None:
    assert run("collections", "create", "trips", "--select")[0] == 0
    code, out = run("collections", "list", "--json")
    listed = {c["name"]: c for c in json.loads(out)}
    assert listed["trips"]["active"]
    code, out = run("collections", "create", "trips", "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "collection_exists"
    code, out = run("collections", "select", "nope")
    assert code == 1 and "no collection named 'nope'" in out and "hint" in out
    assert run("collections", "delete", "trips", "--yes")[0] == 0
    assert "trips" not in {c["name"] for c in json.loads(run("collections", "list", "--json")[1])}


def test_models_commands(env: dict[str, str]) -> None:
    code, out = run("models", "list", "--json")
    models = {m["name"]: m for m in json.loads(out)}
    assert code == 0 and models["tiny-clip"]["installed"]
    assert "ViT-B-16-SigLIP2__webli" in models and "ViT-B-32__openai" in models
    code, out = run("models", "info", "tiny-clip", "--json")
    assert code == 0 and json.loads(out)["source"] == "models_path"
    code, out = run("models", "pull", "ViT-B-32__openai", "--json")  # HF_HUB_OFFLINE=1 in tests
    assert code == 1 and json.loads(out)["error"]["code"] == "model_download_failed"


def test_ingest_without_model_tells_the_pull_command(env: dict[str, str], monkeypatch) -> None:
    monkeypatch.setenv("PHOTOINDEX_MODEL", "ViT-B-32__openai")
    code, out = run("ingest", env["LIB"])
    assert code == 0 and "photoindex models pull ViT-B-32__openai" in " ".join(out.split())
    code, out = run("search", "cat")
    assert code == 1 and "photoindex models pull" in out


def test_help_teaches() -> None:
    code, out = run("--help")
    assert code == 0 and "photoindex search" in out
    for cmd in ("ingest", "search", "similar", "info", "status", "init"):
        code, out = run(cmd, "--help")
        assert code == 0 and "--json" in out, cmd


def test_console_script_end_to_end(env: dict[str, str]) -> None:
    """The installed `photoindex` command, as the README runs it."""
    exe = Path(sys.executable).parent / "photoindex"
    environ = {**os.environ, **env}
    out = subprocess.run([str(exe), "init"], env=environ, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (Path(env["PHOTOINDEX_HOME"]) / "config.toml").exists()
    out = subprocess.run([str(exe), "ingest", env["LIB"]], env=environ, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"{N} new" in out.stdout
    out = subprocess.run([str(exe), "search", "coffee", "-k", "1", "--json"], env=environ, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and json.loads(out.stdout)[0]["path"].endswith("coffee.jpg")


def test_invalid_configuration_is_a_clear_error(env: dict[str, str], monkeypatch) -> None:
    monkeypatch.setenv("PHOTOINDEX_BATCH_SIZE", "zero")
    code, out = run("status")
    assert code == 1 and "invalid configuration" in out and "batch_size" in out
