"""Acceptance: ingest through the remote model host.

1. The vectors are the ones an in-process ingest stores.
2. Killing the service (SIGKILL) mid-ingest and starting it again a moment later: the ingest waits, carries
   on and finishes with every photo embedded.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.library import build_library, jpeg_bytes
from support.runtime import make_runtime

from ml_service.helpers import ProcessService, ThreadService, free_port
from photoindex.ingest.pipeline import ingest
from photoindex.ingest.scan import normalize_path
from photoindex.ml.remote import RemoteEmbedder
from photoindex.runtime import Runtime
from photoindex.schemas import IngestReport

pytestmark = pytest.mark.timeout(90)


def write_photos(
    root: Path, photos: dict[str, Image.Image], n: int, size: tuple[int, int] = (240, 180)
) -> list[Path]:
    """`n` distinct small JPEGs: crops of the real photos at different places, with a little noise."""
    rng = np.random.default_rng(42)
    sources = [np.asarray(p.convert("RGB")) for p in photos.values()]
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        ch, cw = min(h, 3 * size[1]), min(w, 3 * size[0])
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = src[y : y + ch, x : x + cw].astype(np.int16) + rng.integers(-6, 7, (ch, cw, 3))
        img = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize(size)
        path = root / f"batch{i // 50}" / f"photo_{i:04d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg_bytes(img, quality=85))
        out.append(path)
    return out


def stored_vectors(rt: Runtime, paths: list[Path]) -> np.ndarray:
    coll = rt.collection()
    rows = []
    for p in paths:
        asset = rt.catalog.find_asset_by_path(coll.id, normalize_path(p))
        assert asset is not None, p
        vector = rt.catalog.get_vector(asset.id, "tiny-clip")
        assert vector is not None, p
        rows.append(vector)
    return np.stack(rows)


def test_ingest_through_the_service_stores_the_in_process_vectors(
    tmp_path: Path,
    service: ThreadService,
    models_dir: Path,
    photos: dict[str, Image.Image],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library = tmp_path / "library"
    paths = list(build_library(library, photos).values()) + write_photos(library / "more", photos, 20)

    monkeypatch.setenv("PHOTOINDEX_ML_URL", service.url)
    remote_rt = make_runtime(tmp_path / "remote-home", None, workers=2)  # no model on this side at all
    monkeypatch.delenv("PHOTOINDEX_ML_URL")
    local_rt = make_runtime(tmp_path / "local-home", models_dir, workers=2)
    try:
        assert remote_rt.settings.ml_url == service.url and local_rt.settings.ml_url is None
        remote_report = ingest(remote_rt, [library])
        local_report = ingest(local_rt, [library])
        assert isinstance(remote_rt.embedder("tiny-clip"), RemoteEmbedder)
        for report in (remote_report, local_report):
            assert report.processed == len(paths) and report.failed == 0 and report.errors == []
            assert report.embedded == len(paths) and report.embeddings_pending == 0
        np.testing.assert_allclose(
            stored_vectors(remote_rt, paths), stored_vectors(local_rt, paths), atol=1e-5
        )
        # stored under the same model name and revision, so either home would reuse the other's vectors
        coll = remote_rt.collection()
        assert (
            remote_rt.catalog.count_assets_needing_vectors(
                coll.id, "tiny-clip", local_rt.embedder("tiny-clip").revision
            )
            == 0
        )
    finally:
        remote_rt.close()
        local_rt.close()


def test_killing_and_restarting_the_service_mid_ingest_loses_nothing(
    tmp_path: Path, models_dir: Path, photos: dict[str, Image.Image]
) -> None:
    total = 150
    library = tmp_path / "library"
    write_photos(library, photos, total, size=(480, 360))
    port = free_port()
    svc = ProcessService(
        tmp_path / "ml-home", models_dir, port, tmp_path / "serve-ml.log", "--max-batch", "8"
    )
    svc.start()
    home = tmp_path / "home"
    settings = {"ml_url": svc.url, "batch_size": 8, "commit_batch_size": 8, "task_files": 50, "workers": 2}
    rt = make_runtime(home, None, **settings)
    watcher = make_runtime(home, None, **settings)
    result: dict[str, IngestReport] = {}
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result["report"] = ingest(rt, [library])
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    try:
        coll_id = rt.collection().id  # catalog created (and migrated) before two runtimes share it
        thread.start()
        deadline = time.monotonic() + 40
        committed = 0
        while time.monotonic() < deadline and thread.is_alive():
            committed = watcher.catalog.vector_space_state(coll_id, "tiny-clip")[0]
            if committed > 0:
                break
            time.sleep(0.01)
        assert not failure, failure
        assert committed > 0, f"no vector was committed: {result.get('report')}"
        svc.kill()  # SIGKILL: requests in flight are cut off
        at_kill = watcher.catalog.vector_space_state(coll_id, "tiny-clip")[0]
        assert at_kill < total, "the ingest finished before the service could be killed"
        time.sleep(1.5)
        svc.start()  # same port
        thread.join(60)
        assert not thread.is_alive(), "the ingest did not finish"
        assert not failure, failure
        report = result["report"]
        assert report.failed == 0 and report.errors == []
        assert report.processed == total
        assert report.embeddings_pending == 0
        assert report.embedded + report.embeddings_reused == total
        assert watcher.catalog.vector_space_state(coll_id, "tiny-clip")[0] == total
        assert watcher.catalog.count_assets_needing_vectors(coll_id, "tiny-clip") == 0
        model = rt.embedder("tiny-clip")
        assert isinstance(model, RemoteEmbedder) and model.outages >= 1
    finally:
        svc.kill()
        thread.join(5)
        watcher.close()
        rt.close()


def test_serve_ml_command_exits_with_a_clear_error_without_the_model(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PHOTOINDEX_HOME": str(tmp_path),
        "PHOTOINDEX_MODEL": "tiny-clip",
        "PHOTOINDEX_AUTO_PULL": "false",
        "PHOTOINDEX_CONFIG": str(tmp_path / "none.toml"),
        "HF_HUB_OFFLINE": "1",
    }
    out = subprocess.run(
        [sys.executable, "-m", "photoindex.cli.main", "serve-ml", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert "model_not_found" in out.stderr and "tiny-clip" in out.stderr


def test_serve_ml_refuses_to_listen_off_loopback_without_a_key(tmp_path: Path, models_dir: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "PHOTOINDEX_HOME": str(tmp_path),
        "PHOTOINDEX_MODEL": "tiny-clip",
        "PHOTOINDEX_MODELS_PATH": str(models_dir),
        "PHOTOINDEX_CONFIG": str(tmp_path / "none.toml"),
    }
    cmd = [
        sys.executable,
        "-m",
        "photoindex.cli.main",
        "serve-ml",
        "--host",
        "0.0.0.0",
        "--port",
        str(free_port()),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 1
    assert "config_invalid" in out.stderr and "PHOTOINDEX_ML_API_KEY" in out.stderr
