"""Captioners: a tiny generated BLIP through transformers' real loader, and the OpenAI-compatible VLM
client against a local stub server that follows the chat-completions contract."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support.vlm_stub import COLOURS, VlmStub, decode_data_url, describe

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.caption import (
    BlipCaptioner,
    Captioner,
    VlmCaptioner,
    caption_regions,
    chat_endpoint,
    clean_caption,
    jpeg_data_url,
    trim_caption,
)
from photoindex.schemas import Box, Region

# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Image.Image]) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from support.tiny_blip import build_tiny_blip

    return build_tiny_blip(tmp_path_factory.mktemp("blip") / "tiny-blip", anchors=photos)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """A model this small runs fastest on one thread; on a loaded machine more threads only wait on each
    other (seconds instead of milliseconds per batch)."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def blip(tiny_blip: Path) -> BlipCaptioner:
    return BlipCaptioner.load(tiny_blip)


@pytest.fixture(scope="module")
def stub_server() -> Iterator[VlmStub]:
    with VlmStub() as server:
        yield server


@pytest.fixture
def stub(stub_server: VlmStub) -> VlmStub:
    stub_server.reset()
    return stub_server


def vlm(stub: VlmStub, **kwargs) -> VlmCaptioner:
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("timeout_s", 10)
    return VlmCaptioner(stub.url, kwargs.pop("model", stub.model), **kwargs)


def solid(colour: str, size: tuple[int, int] = (64, 48)) -> Image.Image:
    return Image.new("RGB", size, COLOURS[colour])


def side_by_side(left: Image.Image, right: Image.Image, gap: int = 16) -> tuple[Image.Image, Box, Box]:
    """Both images on a grey canvas with a gap between them, and their boxes."""
    h = max(left.height, right.height) + 2 * gap
    w = left.width + right.width + 3 * gap
    canvas = Image.new("RGB", (w, h), (128, 128, 128))
    canvas.paste(left, (gap, gap))
    canvas.paste(right, (2 * gap + left.width, gap))
    lbox = Box(x0=gap / w, y0=gap / h, x1=(gap + left.width) / w, y1=(gap + left.height) / h)
    rx0 = 2 * gap + left.width
    rbox = Box(x0=rx0 / w, y0=gap / h, x1=(rx0 + right.width) / w, y1=(gap + right.height) / h)
    return canvas, lbox, rbox


# --- BLIP ----------------------------------------------------------------------------------------------


def test_blip_captions_real_photos_through_the_real_loader(blip: BlipCaptioner, tiny_blip: Path,
                                                           photos: dict[str, Image.Image]) -> None:
    from support.tiny_blip import caption_for

    assert isinstance(blip, Captioner)
    assert blip.name == "tiny-blip" and len(blip.revision) == 12
    assert blip.model_id == f"tiny-blip@{blip.revision}"
    captions = blip.caption(list(photos.values()))
    assert captions == [caption_for(word) for word in photos]
    assert blip.caption([]) == []


def test_blip_is_deterministic_across_loads_and_batches(blip: BlipCaptioner, tiny_blip: Path,
                                                         photos: dict[str, Image.Image]) -> None:
    images = list(photos.values())
    first = blip.caption(images)
    assert blip.caption(images) == first
    again = BlipCaptioner.load(tiny_blip, batch_size=2)
    assert again.revision == blip.revision
    assert again.caption(images) == first
    assert [blip.caption([img])[0] for img in images] == first


def test_blip_max_new_tokens_is_respected(blip: BlipCaptioner, tiny_blip: Path,
                                          photos: dict[str, Image.Image]) -> None:
    images = list(photos.values())
    full = blip.caption(images)
    short = BlipCaptioner.load(tiny_blip, max_new_tokens=3)
    assert short.options_key != blip.options_key
    for cut, whole in zip(short.caption(images), full, strict=True):
        assert 1 <= len(cut.split()) <= 3 < len(whole.split())
        assert whole.startswith(cut)


def test_blip_conditional_prompt_is_stripped_from_the_caption(blip: BlipCaptioner,
                                                               photos: dict[str, Image.Image]) -> None:
    images = list(photos.values())
    full = blip.caption(images)
    prompted = blip.caption(images, prompt="A photo of")  # the uncased tokenizer lowercases it
    for word, cont, whole in zip(photos, prompted, full, strict=True):
        assert cont == f"a {word}"
        assert whole == f"a photo of {cont}"
    assert blip.caption(images, prompt="   ") == full


def test_blip_takes_any_image_mode(blip: BlipCaptioner, photos: dict[str, Image.Image]) -> None:
    cat = photos["cat"]
    odd = [cat.convert("L"), cat.convert("RGBA"), cat.convert("P"), cat.resize((5, 3)), cat.convert("I;16")]
    captions = blip.caption(odd)
    assert len(captions) == len(odd) and all(isinstance(c, str) and c for c in captions)


def test_blip_regional_captions_come_from_the_crops(blip: BlipCaptioner,
                                                    photos: dict[str, Image.Image]) -> None:
    from support.tiny_blip import caption_for

    cat, rocket = photos["cat"].resize((160, 120)), photos["rocket"].resize((160, 120))
    canvas, cat_box, rocket_box = side_by_side(cat, rocket)
    regions = [
        Region(box=rocket_box, label="rocket", score=0.9),
        Region(box=Box(x0=0.0, y0=0.0, x1=0.05, y1=0.05), label="speck", score=0.5),
        Region(box=cat_box, label="cat", score=0.8),
    ]
    out = caption_regions(blip, canvas, regions, pad=0.05, min_area=0.01)
    assert [r.caption for r in out] == [caption_for("rocket"), None, caption_for("cat")]
    assert [r.box for r in out] == [r.box for r in regions] and all(r.caption is None for r in regions)


def test_blip_revision_follows_the_files(tiny_blip: Path, tmp_path: Path) -> None:
    from support.tiny_blip import build_tiny_blip

    copy = tmp_path / "copy"
    shutil.copytree(tiny_blip, copy)
    base = BlipCaptioner.load(tiny_blip).revision
    assert BlipCaptioner.load(copy).revision == base  # content, not location
    other = build_tiny_blip(tmp_path / "other", seed=1, steps=0)
    assert BlipCaptioner.load(other).revision != base
    (copy / "REVISION").write_text("82597a7ed6e0d8b1a7db2e5cdd5b5e8a2cad7f6e\n")
    assert BlipCaptioner.load(copy).revision == "82597a7ed6e0d8b1a7db2e5cdd5b5e8a2cad7f6e"


def test_blip_missing_folder_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        BlipCaptioner.load(tmp_path / "nowhere")
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND
    assert "nowhere" in err.value.message and err.value.hint


def _break_weights(folder: Path) -> None:
    from safetensors.torch import load_file, save_file

    weights = load_file(folder / "model.safetensors")
    del weights[next(k for k in weights if k.startswith("text_decoder.bert.encoder."))]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def _other_model_type(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "clip"
    (folder / "config.json").write_text(json.dumps(config))


def _retrieval_checkpoint(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["BlipForImageTextRetrieval"]
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda f: (f / "model.safetensors").unlink(), "model.safetensors"),
        (lambda f: (f / "preprocessor_config.json").unlink(), "preprocessor_config.json"),
        (lambda f: [(f / n).unlink() for n in ("tokenizer.json", "vocab.txt")], "tokenizer.json"),
        (lambda f: (f / "config.json").write_text("{not json"), "config.json"),
        (_other_model_type, "clip"),
        (_retrieval_checkpoint, "BlipForImageTextRetrieval"),
        (lambda f: (f / "model.safetensors").write_bytes(b"\0" * 64), "model"),
        (_break_weights, "missing"),
    ],
    ids=["no-weights", "no-preprocessor", "no-tokenizer", "bad-config", "not-blip", "retrieval",
         "corrupt-weights", "missing-weights"],
)
def test_blip_invalid_folder_is_model_invalid(tiny_blip: Path, tmp_path: Path, damage, words: str) -> None:
    folder = tmp_path / "broken"
    shutil.copytree(tiny_blip, folder)
    damage(folder)
    with pytest.raises(ModelError) as err:
        BlipCaptioner.load(folder)
    assert err.value.code == ErrorCode.MODEL_INVALID
    assert words in err.value.message and str(folder) in err.value.message


def test_blip_without_transformers_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "blip"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "blip"}))
    for name in ("model.safetensors", "preprocessor_config.json", "tokenizer.json"):
        (folder / name).write_text("{}")
    monkeypatch.setitem(sys.modules, "transformers", None)  # what a missing package looks like to import
    with pytest.raises(ModelError) as err:
        BlipCaptioner.load(folder)
    assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert err.value.hint == "pip install 'photoindex[hf]'"


def test_blip_devices(tiny_blip: Path, blip: BlipCaptioner, photos: dict[str, Image.Image]) -> None:
    import torch

    with pytest.raises(ModelError) as err:
        BlipCaptioner.load(tiny_blip, device="tpu")
    assert err.value.code == ErrorCode.CONFIG_INVALID
    if not torch.cuda.is_available():
        with pytest.raises(ModelError) as err:
            BlipCaptioner.load(tiny_blip, device="cuda")
        assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE
        assert BlipCaptioner.load(tiny_blip, device="auto").device == "cpu"
        return
    gpu = BlipCaptioner.load(tiny_blip, device="cuda")  # float16 on the GPU
    assert gpu.device == "cuda"
    assert gpu.caption(list(photos.values())) == blip.caption(list(photos.values()))


# --- VLM over the chat-completions contract ------------------------------------------------------------


def test_vlm_caption_is_derived_from_the_image_sent(stub: VlmStub) -> None:
    colours = ["red", "green", "blue", "yellow", "white", "black"]
    with vlm(stub, concurrency=3, max_tokens=40) as cap:
        assert isinstance(cap, Captioner)
        assert (cap.name, cap.revision) == ("vlm:stub-vision-1", "stub-vision-1")
        captions = cap.caption([solid(c) for c in colours])
    assert captions == [f"A mostly {c} photo." for c in colours]
    assert len(stub.requests) == len(colours)
    for body in stub.requests:
        assert body["model"] == "stub-vision-1" and body["temperature"] == 0 and body["max_tokens"] == 40
        (message,) = body["messages"]
        assert message["role"] == "user"
        text, image = message["content"]
        assert text == {"type": "text", "text": "Describe this photo in one sentence."}
        assert image["type"] == "image_url"
        assert image["image_url"]["url"].startswith("data:image/jpeg;base64,")
    assert cap.served_model == "stub-vision-1"


def test_vlm_sends_real_photos_downscaled(stub: VlmStub, photos: dict[str, Image.Image]) -> None:
    stub.reset(sentences=2)
    images = list(photos.values())
    with vlm(stub, image_side=128, concurrency=4) as cap:
        captions = cap.caption(images)
    expected = [describe(decode_data_url(jpeg_data_url(img, 128)), 2) for img in images]
    assert captions == expected
    received = sorted(stub.images, key=lambda i: expected.index(describe(i, 2)))  # they arrive in any order
    for img, sent in zip(images, received, strict=True):
        assert max(sent.size) == 128
        assert abs(sent.width / sent.height - img.width / img.height) < 0.02
    small = solid("red", (40, 30))
    with vlm(stub, image_side=128) as cap:
        cap.caption([small])
    assert stub.images[-1].size == (40, 30)  # never upscaled


def test_vlm_prompt_template_and_hint(stub: VlmStub) -> None:
    with vlm(stub, prompt_template="Describe this photo in one sentence. {hint}") as cap:
        cap.caption([solid("red")])
        cap.caption([solid("red")], prompt="Mention the colours.")
    assert stub.prompts == ["Describe this photo in one sentence.",
                            "Describe this photo in one sentence. Mention the colours."]
    with vlm(stub, prompt_template="What is in this picture?") as cap:
        cap.caption([solid("red")])
        cap.caption([solid("red")], prompt="Name the main colour.")
    assert stub.prompts[2:] == ["What is in this picture?", "Name the main colour."]
    with pytest.raises(ModelError) as err:
        vlm(stub, prompt_template="Describe the {labels}.")
    assert err.value.code == ErrorCode.CONFIG_INVALID and "{hint}" in (err.value.hint or "")


def test_vlm_max_chars_trims_at_sentence_or_word(stub: VlmStub) -> None:
    stub.reset(sentences=3)
    image = solid("red", (64, 64))
    with vlm(stub) as cap:
        full = cap.caption([image])[0]
    first, second, _ = (s + "." for s in full.rstrip(".").split(". "))
    assert full.startswith(f"{first} {second} ") and len(full) > 90
    for limit, expected in [(len(first) + len(second) + 10, f"{first} {second}"), (len(first) + 5, first)]:
        with vlm(stub, max_chars=limit) as cap:
            assert cap.caption([image]) == [expected]
    with vlm(stub, max_chars=15) as cap:
        (cut,) = cap.caption([image])
    assert len(cut) <= 15 and cut.endswith("\u2026")
    assert full.startswith(cut[:-1]) and full[len(cut) - 1] == " "  # whole words only


def test_vlm_max_tokens_is_sent_and_bounds_the_answer(stub: VlmStub) -> None:
    stub.reset(sentences=3)
    with vlm(stub, max_tokens=3) as cap:
        (text,) = cap.caption([solid("blue")])
    assert stub.requests[0]["max_tokens"] == 3
    assert text == "A mostly blue"


def test_vlm_api_key_is_sent_as_bearer(stub: VlmStub) -> None:
    stub.reset(api_key="s3cret")
    with vlm(stub) as cap, pytest.raises(ModelError) as err:
        cap.caption([solid("red")])
    assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert err.value.details["status"] == 401 and "api_key" in (err.value.hint or "")
    with vlm(stub, api_key="s3cret") as cap:
        assert cap.caption([solid("red")]) == ["A mostly red photo."]
    assert stub.headers[-1]["authorization"] == "Bearer s3cret"


@pytest.mark.parametrize(("status", "retry_after"), [(503, None), (429, "0"), (502, None)])
def test_vlm_retries_transient_failures(stub: VlmStub, status: int, retry_after: str | None) -> None:
    stub.fail_next(status, times=2, retry_after=retry_after)
    with vlm(stub, retries=2) as cap:
        assert cap.caption([solid("green")]) == ["A mostly green photo."]
    assert stub.calls == 3


def test_vlm_gives_up_after_the_retries(stub: VlmStub) -> None:
    stub.fail_next(503, times=3)
    with vlm(stub, retries=2) as cap, pytest.raises(ModelError) as err:
        cap.caption([solid("green")])
    assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert cap.endpoint in err.value.message and "503" in err.value.message
    assert err.value.details == {"endpoint": cap.endpoint, "model": "stub-vision-1", "status": 503}
    assert stub.calls == 3


def test_vlm_server_error_is_not_retried(stub: VlmStub) -> None:
    stub.fail_next(500)
    with vlm(stub) as cap, pytest.raises(ModelError) as err:
        cap.caption([solid("green")])
    assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE and stub.calls == 1


def test_vlm_timeout_is_a_model_error(stub: VlmStub) -> None:
    stub.delay_s = 2.0
    started = time.monotonic()
    with vlm(stub, timeout_s=0.3) as cap, pytest.raises(ModelError) as err:
        cap.caption([solid("red")])
    assert time.monotonic() - started < 1.5  # not retried: a slow model is not asked twice
    assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert cap.endpoint in err.value.message and "0.3 s" in err.value.message


def test_vlm_malformed_or_empty_answers_are_model_errors(stub: VlmStub) -> None:
    stub.malformed_next()
    with vlm(stub) as cap:
        with pytest.raises(ModelError) as err:
            cap.caption([solid("red")])
        assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE and "not JSON" in err.value.message
        stub.empty_next()
        with pytest.raises(ModelError) as err:
            cap.caption([solid("red")])
        assert "without choices" in err.value.message and cap.endpoint in err.value.message
        assert cap.caption([solid("red")]) == ["A mostly red photo."]  # the client is still usable


def test_vlm_one_failure_fails_the_batch(stub: VlmStub) -> None:
    stub.fail_next(500)
    with vlm(stub, concurrency=2) as cap, pytest.raises(ModelError):
        cap.caption([solid("red"), solid("blue"), solid("green")])


def test_vlm_unknown_model_is_model_not_found(stub: VlmStub) -> None:
    with vlm(stub, model="llava:404") as cap, pytest.raises(ModelError) as err:
        cap.caption([solid("red")])
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND and "ollama pull llava:404" in (err.value.hint or "")


def test_vlm_unreachable_server(stub: VlmStub) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cap = VlmCaptioner(f"http://127.0.0.1:{port}", "m", retries=1, backoff_s=0.01)
    with cap, pytest.raises(ModelError) as err:
        cap.caption([solid("red")])
    assert err.value.code == ErrorCode.BACKEND_UNAVAILABLE
    assert f"127.0.0.1:{port}/v1/chat/completions" in err.value.message


@pytest.mark.parametrize("suffix", ["", "/", "/v1", "/v1/", "/v1/chat/completions"])
def test_vlm_base_url_forms(stub: VlmStub, suffix: str) -> None:
    assert chat_endpoint(stub.url + suffix) == f"{stub.url}/v1/chat/completions"
    with vlm(stub) if not suffix else VlmCaptioner(stub.url + suffix, stub.model) as cap:
        assert cap.caption([solid("red")]) == ["A mostly red photo."]


def test_vlm_rejects_bad_settings() -> None:
    for url in ("localhost:11434", "ftp://host", ""):
        with pytest.raises(ModelError) as err:
            VlmCaptioner(url, "m")
        assert err.value.code == ErrorCode.CONFIG_INVALID
    with pytest.raises(ModelError):
        VlmCaptioner("http://localhost:1", "m", max_chars=0)
    with pytest.raises(ModelError):
        VlmCaptioner("http://localhost:1", " ")


def test_vlm_regional_captions_come_from_the_crops(stub: VlmStub) -> None:
    canvas, red_box, blue_box = side_by_side(solid("red", (120, 90)), solid("blue", (120, 90)))
    regions = [Region(box=blue_box, label="b", score=0.5), Region(box=red_box, label="r", score=0.6),
               Region(box=Box(x0=0.5, y0=0.5, x1=0.52, y1=0.52), label="tiny", score=0.9)]
    with vlm(stub) as cap:
        out = caption_regions(cap, canvas, regions, pad=0.1)
    assert [r.caption for r in out] == ["A mostly blue photo.", "A mostly red photo.", None]
    assert len(stub.requests) == 2
    with vlm(stub) as cap:
        assert caption_regions(cap, canvas, [], pad=0.1) == []


# --- text helpers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("A dog on a beach.", 100, "A dog on a beach."),
        ("A dog on a beach. The sky is blue and clear.", 30, "A dog on a beach."),
        ("A dog running along a sandy beach at sunset", 20, "A dog running\u2026"),
        ("Supercalifragilistic", 10, "Supercali\u2026"),
        ("Is it a dog? Maybe a wolf, or a fox.", 25, "Is it a dog?"),
    ],
)
def test_trim_caption(text: str, limit: int, expected: str) -> None:
    assert trim_caption(text, limit) == expected
    assert len(trim_caption(text, limit)) <= limit


def test_clean_caption() -> None:
    assert clean_caption('  "A red\n\n car  parked."  ') == "A red car parked."
    assert clean_caption("<think>the user wants a caption</think>\nA cat asleep.") == "A cat asleep."
    assert clean_caption("<think>never finished") == ""
