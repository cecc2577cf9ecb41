"""RemoteEmbedder against the real service: same answers as in-process, waiting out outages, deadlines."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.runtime import make_runtime

from ml_service.helpers import ThreadService, free_port, service_settings, thread_service
from photoindex.api.ml_app import MLServiceOptions
from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.ml.remote import RemoteEmbedder
from photoindex.search.service import search_text

pytestmark = pytest.mark.timeout(60)


def pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_remote_embedder_is_a_drop_in_for_the_in_process_model(
    service: ThreadService, local_model: ImageTextEmbedder, photos: dict[str, Image.Image]
) -> None:
    remote = RemoteEmbedder(service.url)
    try:
        assert remote.name == local_model.name
        assert remote.revision == local_model.revision
        assert remote.model_id == local_model.model_id
        assert remote.dim == local_model.dim
        assert remote.preprocess == local_model.preprocess
        assert remote.batch_size == service.host.models["tiny-clip"].max_batch > 1
        px = pixels(70, seed=5)
        np.testing.assert_allclose(remote.embed_images(px), local_model.embed_images(px), atol=1e-5)
        np.testing.assert_allclose(remote.embed_images(px[0]), local_model.embed_images(px[:1]), atol=1e-5)
        photos = list(photos.values())
        np.testing.assert_allclose(remote.embed_pil(photos), local_model.embed_pil(photos), atol=1e-5)
        texts = ["cat", "a rocket at night", "coffee"]
        np.testing.assert_allclose(remote.embed_texts(texts), local_model.embed_texts(texts), atol=1e-6)
        assert remote.embed_texts([]).shape == (0, 32)
        assert remote.embed_texts("cat").shape == (1, 32)
        remote.warmup()
        with pytest.raises(ValueError, match="shape"):
            remote.embed_images(np.zeros((2, 32, 32, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            remote.embed_images(np.zeros((2, 64, 64, 3), np.float32))
    finally:
        remote.close()


def test_ml_batch_size_wins_and_chunks_requests(
    service: ThreadService, local_model: ImageTextEmbedder
) -> None:
    settings = service_settings(
        Path("/nonexistent-home"), Path("/nonexistent-models"), ml_url=service.url, ml_batch_size=7
    )
    remote = RemoteEmbedder.from_settings(settings)
    try:
        assert remote.batch_size == 7
        submissions = service.host.models["tiny-clip"].images.stats.submissions
        px = pixels(20, seed=9)
        np.testing.assert_allclose(remote.embed_images(px), local_model.embed_images(px), atol=1e-5)
        assert service.host.models["tiny-clip"].images.stats.submissions - submissions == 3  # 7 + 7 + 6
    finally:
        remote.close()


def test_runtime_uses_the_service_when_ml_url_is_set(
    tmp_path: Path, service: ThreadService, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ML_INFERENCE_SERVICE_URL", service.url)  # the seed deployment's name for it
    rt = make_runtime(tmp_path / "home", None)  # no local model at all
    try:
        model = rt.embedder("tiny-clip")
        assert isinstance(model, RemoteEmbedder) and rt.embedder("tiny-clip") is model
        found, notice = rt.try_embedder("tiny-clip")
        assert found is model and notice is None
        missing, notice = rt.try_embedder("ViT-B-32__openai")
        assert missing is None and "does not serve" in (notice or "")
    finally:
        rt.close()


def test_waits_while_the_service_is_down_and_carries_on(
    tmp_path: Path, models_dir: Path, local_model: ImageTextEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    settings = service_settings(tmp_path, models_dir)
    port = free_port()
    opts = MLServiceOptions(max_batch=16)
    started: list[ThreadService] = []

    def start_later(delay: float) -> threading.Thread:
        def run() -> None:
            time.sleep(delay)
            started.append(ThreadService(settings, opts, port).start())

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    caplog.set_level(logging.WARNING, logger="photoindex.ml.remote")
    t = start_later(1.0)  # not up yet when the embedder is made: it waits
    remote = RemoteEmbedder(
        f"http://127.0.0.1:{port}", backoff_base_s=0.05, backoff_max_s=0.5, connect_deadline_s=30
    )
    try:
        t.join(10)
        assert remote.outages == 1 and remote.dim == 32
        px = pixels(10, seed=1)
        started.pop().stop()  # down mid-run ...
        t = start_later(1.5)  # ... and back 1.5 s later
        t0 = time.monotonic()
        out = remote.embed_images(px)  # ingest's call: waits as long as it takes
        assert time.monotonic() - t0 >= 1.0
        np.testing.assert_allclose(out, local_model.embed_images(px), atol=1e-5)
        assert remote.outages == 2 and remote.retries >= 2
        messages = [r.getMessage() for r in caplog.records]
        assert sum("unavailable" in m for m in messages) == 2  # logged once per outage, not per retry
        assert sum("is back" in m for m in messages) == 2
    finally:
        t.join(10)
        for svc in started:
            svc.stop()
        remote.close()


def test_interactive_calls_give_up_after_their_deadline(tmp_path: Path, models_dir: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(ModelError) as info:
        RemoteEmbedder(dead, connect_deadline_s=0.5, backoff_base_s=0.05)
    assert info.value.code == ErrorCode.BACKEND_UNAVAILABLE and dead in info.value.message
    assert time.monotonic() - t0 < 5

    settings = service_settings(tmp_path, models_dir)
    with thread_service(settings, MLServiceOptions(max_batch=8)) as svc:
        remote = RemoteEmbedder(
            svc.url, interactive_deadline_s=1.0, ingest_deadline_s=1.5, backoff_base_s=0.05
        )
    try:
        for call in (lambda: remote.embed_texts(["cat"]), lambda: remote.embed_images(pixels(1))):
            t0 = time.monotonic()
            with pytest.raises(ModelError) as info:
                call()
            assert info.value.code == ErrorCode.BACKEND_UNAVAILABLE
            assert "did not answer" in info.value.message and info.value.hint
            assert time.monotonic() - t0 < 5
    finally:
        remote.close()


def test_wrong_key_and_unknown_model_are_clear_errors(tmp_path: Path, models_dir: Path) -> None:
    settings = service_settings(tmp_path, models_dir, ml_api_key="k1")
    with thread_service(settings, MLServiceOptions(max_batch=8)) as svc:
        with pytest.raises(ModelError) as info:
            RemoteEmbedder(svc.url, api_key="k2")
        assert info.value.code == ErrorCode.CONFIG_INVALID and "PHOTOINDEX_ML_API_KEY" in (
            info.value.hint or ""
        )
        with pytest.raises(ModelError) as info:
            RemoteEmbedder(svc.url, api_key="k1", name="ViT-B-32__openai")
        assert info.value.code == ErrorCode.UNKNOWN_MODEL
        remote = RemoteEmbedder(svc.url, api_key="k1")
        try:
            assert remote.embed_texts(["cat"]).shape == (1, 32)
        finally:
            remote.close()


def test_search_through_the_service(
    tmp_path: Path, service: ThreadService, models_dir: Path, photos: dict[str, Image.Image]
) -> None:
    from support.library import build_library

    from photoindex.ingest.pipeline import ingest

    library = tmp_path / "library"
    build_library(library, photos)
    rt = make_runtime(tmp_path / "home", None, ml_url=service.url, workers=1)
    try:
        report = ingest(rt, [library])
        assert report.embedded == 5 and report.embeddings_pending == 0
        hits = search_text(rt, "rocket", k=1)
        assert Path(hits[0].path).name == "rocket.jpg"
    finally:
        rt.close()
