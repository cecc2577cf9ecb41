"""The ML service's HTTP API against the real app on a loopback port."""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from support.library import jpeg_bytes

from ml_service.helpers import ThreadService, service_settings, thread_service
from photoindex.api.ml_app import MLServiceOptions
from photoindex.media.decode import decode_image
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.ml.preprocess import fit_image

pytestmark = pytest.mark.timeout(60)

SIZE = 64  # the tiny model's input size


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def object_npy() -> bytes:
    """A .npy file of Python objects (a pickle inside): must never be loaded."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    return buf.getvalue() + b"\x80\x04garbage"


def vectors(body: dict) -> np.ndarray:
    rows = []
    for item in body["items"]:
        v = item["vector"]
        rows.append(
            np.frombuffer(base64.b64decode(v), "<f4") if isinstance(v, str) else np.asarray(v, np.float32)
        )
    return np.stack(rows)


def pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def heic_bytes(img: Image.Image) -> bytes | None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    try:
        img.convert("RGB").save(buf, format="HEIF", quality=85)
    except Exception:  # an install without an HEVC encoder
        return None
    return buf.getvalue()


def test_health_and_metrics(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    client.post("/api/v1/embed", json={"texts": ["a dog"]})
    text = client.get("/metrics").text
    assert "photoindex_ml_batches_total" in text
    assert "photoindex_ml_batch_items_bucket" in text
    assert 'photoindex_http_seconds_count{method="POST",route="/api/v1/embed",status="200"}' in text


def test_capabilities_report_the_model_and_a_probed_batch_size(
    client: httpx.Client, local_model: ImageTextEmbedder
) -> None:
    caps = client.get("/api/v1/capabilities").json()
    assert caps["default_model"] == "tiny-clip"
    assert caps["max_batch"] > 1
    assert caps["device"] == "cpu" and "CPUExecutionProvider" in caps["providers"]
    assert caps["version"]
    (model,) = caps["models"]
    assert model["name"] == "tiny-clip"
    assert model["revision"] == local_model.revision
    assert model["model_id"] == local_model.model_id
    assert model["dim"] == local_model.dim == 32
    assert model["image_size"] == SIZE
    assert model["preprocess"]["size"] == SIZE and model["preprocess"]["resize_mode"] == "shortest"
    probe = model["probe"]
    assert probe["max_batch"] == model["max_batch"] == caps["max_batch"]
    assert [s["batch"] for s in probe["steps"]][:2] == [1, 2]  # growing batches were tried
    assert caps["captioners"] == {"loaded": [], "configurable": ["configured"]}


def test_embed_texts_matches_in_process(client: httpx.Client, local_model: ImageTextEmbedder) -> None:
    texts = ["a photo of a cat", "rocket", "coffee on a table"]
    r = client.post("/api/v1/embed", json={"texts": texts})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "tiny-clip" and body["dim"] == 32 and body["model_id"] == local_model.model_id
    assert [i["kind"] for i in body["items"]] == ["text"] * 3
    got = vectors(body)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, local_model.embed_texts(texts), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # texts as multipart fields too, vectors as lists
    r = client.post("/api/v1/embed", data={"texts": texts, "encoding": "list"})
    assert r.status_code == 200 and isinstance(r.json()["items"][0]["vector"], list)
    np.testing.assert_allclose(vectors(r.json()), got, atol=1e-6)


def test_embed_raw_files_of_several_formats(
    client: httpx.Client, local_model: ImageTextEmbedder, photos: dict[str, Image.Image]
) -> None:
    cat, rocket = photos["cat"], photos["rocket"]
    jpeg = jpeg_bytes(cat)
    png = io.BytesIO()
    rocket.save(png, "PNG")
    webp = io.BytesIO()
    cat.save(webp, "WEBP", quality=90)
    files = [
        ("files", ("cat.jpg", jpeg, "image/jpeg")),
        ("files", ("rocket.png", png.getvalue(), "image/png")),
        ("files", ("broken.jpg", jpeg[: len(jpeg) // 3][:200] + b"garbage", "image/jpeg")),
        ("files", ("cat.webp", webp.getvalue(), "image/webp")),
        ("files", ("empty.png", b"", "image/png")),
        ("files", ("notes.txt", b"hello, not a photo", "text/plain")),
    ]
    heic = heic_bytes(rocket)
    if heic is not None:
        files.append(("files", ("rocket.heic", heic, "image/heic")))
    r = client.post("/api/v1/embed", files=files)
    assert r.status_code == 200
    body = r.json()
    items = {i["filename"]: i for i in body["items"]}
    assert [i["index"] for i in body["items"]] == list(range(len(files)))
    assert body["errors"] == 3
    assert items["broken.jpg"]["error"]["code"] in ("corrupt_image", "truncated_image")
    assert items["empty.png"]["error"]["code"] == "file_empty"
    assert items["notes.txt"]["error"]["code"] == "unsupported_type"
    for name in ("broken.jpg", "empty.png", "notes.txt"):
        assert "vector" not in items[name] and items[name]["error"]["message"]

    def expected(data: bytes, name: str) -> np.ndarray:  # what ingest computes for the same bytes
        decoded = decode_image(data, path=name, target=1024)
        return local_model.embed_images(fit_image(decoded.image, local_model.preprocess)[None])[0]

    def got(name: str) -> np.ndarray:
        return np.frombuffer(base64.b64decode(items[name]["vector"]), "<f4")

    np.testing.assert_allclose(got("cat.jpg"), expected(jpeg, "cat.jpg"), atol=1e-5)
    np.testing.assert_allclose(got("rocket.png"), expected(png.getvalue(), "rocket.png"), atol=1e-5)
    np.testing.assert_allclose(got("cat.webp"), expected(webp.getvalue(), "cat.webp"), atol=1e-5)
    assert float(got("cat.jpg") @ got("cat.webp")) > 0.98  # the same photo in two formats
    if heic is not None:
        np.testing.assert_allclose(got("rocket.heic"), expected(heic, "rocket.heic"), atol=1e-5)
        assert float(got("rocket.heic") @ got("rocket.png")) > 0.98


def test_embed_pixels_equals_in_process(client: httpx.Client, local_model: ImageTextEmbedder) -> None:
    px = pixels(37, seed=3)
    want = local_model.embed_images(px)
    r = client.post("/api/v1/embed", content=npy(px), headers={"content-type": "application/x-npy"})
    assert r.status_code == 200
    assert r.json()["count"] == 37
    np.testing.assert_allclose(vectors(r.json()), want, atol=1e-5)
    # the multipart form, mixed with a text, in part order
    r = client.post(
        "/api/v1/embed",
        files=[("pixels", ("a.npy", npy(px[:5]), "application/octet-stream"))],
        data={"texts": "cat", "model": "tiny-clip"},
    )
    assert r.status_code == 200
    body = r.json()
    kinds = [i["kind"] for i in body["items"]]
    assert sorted(kinds) == ["image"] * 5 + ["text"]
    images = np.stack(
        [np.frombuffer(base64.b64decode(i["vector"]), "<f4") for i in body["items"] if i["kind"] == "image"]
    )
    np.testing.assert_allclose(images, want[:5], atol=1e-5)
    # one image without the batch axis
    r = client.post("/api/v1/embed", content=npy(px[0]), headers={"content-type": "application/x-npy"})
    np.testing.assert_allclose(vectors(r.json()), want[:1], atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        (
            {"content": npy(pixels(2).astype(np.float32)), "headers": {"content-type": "application/x-npy"}},
            422,
        ),
        (
            {
                "content": npy(np.zeros((2, 32, 32, 3), np.uint8)),
                "headers": {"content-type": "application/x-npy"},
            },
            422,
        ),
        (
            {
                "content": npy(np.zeros((0, SIZE, SIZE, 3), np.uint8)),
                "headers": {"content-type": "application/x-npy"},
            },
            422,
        ),
        ({"content": npy(pixels(2))[:-10], "headers": {"content-type": "application/x-npy"}}, 422),
        ({"content": b"not an npy file at all", "headers": {"content-type": "application/x-npy"}}, 422),
        ({"content": object_npy(), "headers": {"content-type": "application/x-npy"}}, 422),  # pickles refused
        ({"content": b"{", "headers": {"content-type": "application/json"}}, 422),
        ({"json": {"texts": []}}, 422),
        ({"json": {"texts": "a dog"}}, 422),
        ({"json": {"texts": ["a"], "colour": "red"}}, 422),
        ({"json": {"texts": ["a"], "model": "no-such-model"}}, 404),
        ({"json": {"texts": ["a"], "encoding": "hex"}}, 422),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415),
        ({"data": {"model": "tiny-clip"}, "files": [("other", ("x.bin", b"1"))]}, 422),
        ({"data": {"pixels": "not a file"}, "files": [("files", ("a.jpg", b"x"))]}, 422),
        ({"data": {"model": "tiny-clip"}}, 422),  # nothing to embed
    ],
)
def test_malformed_requests_get_structured_4xx(client: httpx.Client, kwargs: dict, status: int) -> None:
    r = client.post("/api/v1/embed", **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] and err["message"]


def test_bodies_over_the_limit_get_413(client: httpx.Client, service: ThreadService) -> None:
    limit = service.host.max_body_bytes
    big = np.zeros((limit // (SIZE * SIZE * 3) + 2, SIZE, SIZE, 3), np.uint8)
    r = client.post("/api/v1/embed", content=npy(big), headers={"content-type": "application/x-npy"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"

    def chunks():  # no Content-Length: the limit is enforced while reading
        data = npy(big)
        for i in range(0, len(data), 1 << 20):
            yield data[i : i + (1 << 20)]

    r = client.post("/api/v1/embed", content=chunks(), headers={"content-type": "application/x-npy"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "file_too_large"
    assert client.get("/health").status_code == 200


def test_caption_is_not_available_yet(client: httpx.Client, photos: dict[str, Image.Image]) -> None:
    jpeg = jpeg_bytes(photos["coffee"])
    r = client.post("/api/v1/caption", files=[("files", ("coffee.jpg", jpeg))])
    assert r.status_code == 501
    err = r.json()["error"]
    assert err["code"] == "not_available"
    assert err["details"] == {"loaded": [], "configurable": ["configured"]}
    assert "captioner" in err["message"]

    r = client.post(
        "/api/v1/batch_embed_and_caption",
        files=[
            ("files", ("coffee.jpg", jpeg)),
            ("files", ("bad.jpg", b"\xff\xd8\xffbad")),
            ("pixels", ("p.npy", npy(pixels(2)))),
        ],
    )
    assert r.status_code == 200
    body = r.json()
    assert body["captioner"] is None and "no captioner" in body["notice"]
    assert [i.get("caption", "absent") for i in body["items"]] == [None, "absent", None, None]
    assert "error" in body["items"][1] and "vector" in body["items"][0]


def test_api_key(tmp_path: Path, models_dir: Path) -> None:
    settings = service_settings(tmp_path, models_dir, ml_api_key="s3cret")
    with thread_service(settings, MLServiceOptions(max_batch=8)) as svc, httpx.Client(base_url=svc.url) as c:
        assert c.get("/health").json() == {"status": "ok"}  # open
        for path in ("/api/v1/capabilities", "/metrics"):
            r = c.get(path)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = c.post("/api/v1/embed", json={"texts": ["cat"]}, headers={"x-api-key": "wrong"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
        r = c.post("/api/v1/embed", json={"texts": ["cat"]}, headers={"x-api-key": "s3cret"})
        assert r.status_code == 200 and r.json()["count"] == 1
        assert c.get("/api/v1/capabilities", headers={"x-api-key": "s3cret"}).json()["max_batch"] == 8


def test_concurrent_requests_are_merged_into_shared_batches(
    tmp_path: Path, models_dir: Path, local_model: ImageTextEmbedder
) -> None:
    settings = service_settings(tmp_path, models_dir)
    clients, per_request = 12, 3
    opts = MLServiceOptions(max_batch=64, batch_wait_ms=50)
    with thread_service(settings, opts) as svc:
        batcher = svc.host.models["tiny-clip"].images
        before = batcher.stats.batches
        barrier = threading.Barrier(clients)
        results: dict[int, np.ndarray] = {}
        errors: list[BaseException] = []

        def call(i: int) -> None:
            try:
                with httpx.Client(base_url=svc.url, timeout=30) as c:
                    c.get("/health")  # connect first, so that the posts leave together
                    barrier.wait(10)
                    r = c.post(
                        "/api/v1/embed",
                        content=npy(pixels(per_request, seed=i)),
                        headers={"content-type": "application/x-npy"},
                    )
                    results[i] = vectors(r.json())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not errors
        batches = batcher.stats.batches - before
        assert batches < clients, f"{clients} requests ran as {batches} model calls"
        assert batcher.stats.largest_batch > per_request
        for i in range(clients):  # and everybody got their own rows back
            np.testing.assert_allclose(
                results[i], local_model.embed_images(pixels(per_request, seed=i)), atol=1e-5
            )
        caps = httpx.get(f"{svc.url}/api/v1/capabilities").json()
        assert caps["models"][0]["stats"]["image"]["batches"] == batcher.stats.batches


def test_caption_with_the_configured_vlm(tmp_path: Path, models_dir: Path, photos: dict[str, Image.Image]) -> None:
    """`serve-ml --captioner configured` serves the captioner of the settings: here an OpenAI-compatible
    endpoint (the stub follows the chat-completions contract and describes the pixels it receives)."""
    from support.vlm_stub import VlmStub, describe

    with VlmStub() as vlm:
        settings = service_settings(tmp_path / "home", models_dir, captioner="vlm:stub-vision-1", vlm_url=vlm.url)
        with ThreadService(settings, MLServiceOptions(captioners=["configured"])) as service:
            with httpx.Client(base_url=service.url, timeout=30) as client:
                r = client.post("/api/v1/caption", files=[("files", ("coffee.jpg", jpeg_bytes(photos["coffee"])))])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["captioner"] == "vlm:stub-vision-1" and body["errors"] == 0
    assert body["items"][0]["caption"] == describe(vlm.images[0])
