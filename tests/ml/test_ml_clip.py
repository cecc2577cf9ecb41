from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.clip import ImageTextEmbedder, clean_text, load_embedder
from photoindex.ml.preprocess import fit_image
from photoindex.ml.registry import model_revision
from photoindex.ml.testing import build_tiny_clip

from .helpers import cosine, jpeg_roundtrip


@pytest.fixture
def embedder(tiny_model: Path) -> ImageTextEmbedder:
    return ImageTextEmbedder.load(tiny_model, batch_size=4)


def _copy(model: Path, tmp_path: Path) -> Path:
    dest = tmp_path / model.name
    shutil.copytree(model, dest)
    return dest


def test_load_reads_the_layout(embedder: ImageTextEmbedder, tiny_model: Path) -> None:
    assert embedder.name == "tiny-clip"
    assert embedder.dim == 32 and embedder.preprocess.size == 64 and embedder.context_length == 16
    assert embedder.revision == model_revision(tiny_model)
    assert embedder.model_id == f"tiny-clip@{embedder.revision}"
    assert ImageTextEmbedder.load(tiny_model, name="other").model_id.startswith("other@")


def test_sessions_load_lazily(embedder: ImageTextEmbedder, photos: dict[str, Image.Image]) -> None:
    assert not embedder.visual_loaded and not embedder.textual_loaded
    embedder.embed_pil([photos["cat"]])
    assert embedder.visual_loaded and not embedder.textual_loaded  # ingest never loads the text encoder
    embedder.embed_texts(["cat"])
    assert embedder.textual_loaded
    assert embedder.visual.providers == ["CPUExecutionProvider"]


def test_outputs_are_unit_length(embedder: ImageTextEmbedder, photos: dict[str, Image.Image]) -> None:
    images = embedder.embed_pil(list(photos.values()))
    texts = embedder.embed_texts(["cat", "a photo of a dog on the beach", "zebra unknown words", ""])
    for out, n in ((images, len(photos)), (texts, 4)):
        assert out.shape == (n, 32) and out.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_batches_equal_one_by_one(embedder: ImageTextEmbedder, photos: dict[str, Image.Image]) -> None:
    images = [p for p in photos.values()] + [jpeg_roundtrip(p) for p in photos.values()]  # 10 > batch_size 4
    batched = embedder.embed_pil(images)
    single = np.concatenate([embedder.embed_pil([img]) for img in images])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    texts = [f"{w} photo" for w in ("cat", "dog", "sea", "city", "cake", "tree", "car")]
    np.testing.assert_allclose(
        embedder.embed_texts(texts), np.concatenate([embedder.embed_texts([t]) for t in texts]), atol=1e-5
    )


def test_pixels_path_equals_pil_path(embedder: ImageTextEmbedder, photos: dict[str, Image.Image]) -> None:
    pixels = np.stack([fit_image(p, embedder.preprocess) for p in photos.values()])
    np.testing.assert_allclose(
        embedder.embed_images(pixels), embedder.embed_pil(list(photos.values())), atol=1e-6
    )
    assert embedder.embed_images(pixels[:0]).shape == (0, 32)
    assert embedder.embed_texts([]).shape == (0, 32)
    with pytest.raises(ValueError):
        embedder.embed_images(np.zeros((2, 10, 10, 3), np.uint8))


def test_anchor_words_retrieve_their_photos(
    embedder: ImageTextEmbedder, photos: dict[str, Image.Image]
) -> None:
    names = list(photos)
    images = embedder.embed_pil([photos[n] for n in names])
    texts = embedder.embed_texts(names)
    scores = texts @ images.T
    assert list(scores.argmax(axis=1)) == list(range(len(names)))
    np.testing.assert_allclose(np.diag(scores), 1.0, atol=1e-4)
    # case and surrounding whitespace don't matter
    assert cosine(embedder.embed_texts(["  ROCKET "])[0], images[names.index("rocket")]) > 0.9999


def test_near_identical_photos_are_close_different_ones_are_not(
    embedder: ImageTextEmbedder, photos: dict[str, Image.Image]
) -> None:
    a, a_jpeg, b = embedder.embed_pil(
        [photos["astronaut"], jpeg_roundtrip(photos["astronaut"], 60), photos["coffee"]]
    )
    assert cosine(a, a_jpeg) > 0.99
    assert cosine(a, b) < 0.9


def test_tokenize_pads_and_truncates(embedder: ImageTextEmbedder) -> None:
    ids = embedder.tokenize(["cat", "a " * 40, "Cat   on\n the  beach"])
    assert ids.shape == (3, 16) and ids.dtype == np.int32
    tok = embedder.tokenizer
    start, end, pad = (tok.token_to_id(t) for t in ("<start>", "<end>", "<pad>"))
    assert list(ids[0][:3]) == [start, tok.token_to_id("cat"), end] and set(ids[0][3:]) == {pad}
    assert ids[1][0] == start and ids[1][-1] == end and pad not in ids[1]  # truncated, end token kept
    assert list(ids[2][:6]) == [start] + [tok.token_to_id(w) for w in ("cat", "on", "the", "beach")] + [end]
    np.testing.assert_array_equal(embedder.tokenize("cat"), ids[:1])


def test_clean_text() -> None:
    assert clean_text("  a\tdog \n\n on  grass ") == "a dog on grass"
    assert clean_text("A Dog, on the Beach!", canonicalize=True) == "a dog on the beach"
    assert clean_text("A Dog!") == "A Dog!"


def test_canonicalize_from_config(tmp_path: Path, photos: dict[str, Image.Image]) -> None:
    plain = ImageTextEmbedder.load(build_tiny_clip(tmp_path / "plain", anchors={"cat": photos["cat"]}))
    canon = ImageTextEmbedder.load(
        build_tiny_clip(tmp_path / "canon", anchors={"cat": photos["cat"]}, canonicalize=True)
    )
    assert not plain.canonicalize and canon.canonicalize
    cat_image = canon.embed_pil([photos["cat"]])[0]
    # "Cat!!" keeps its punctuation (an unknown token) without canonicalize and loses it with it
    assert cosine(canon.embed_texts(["Cat!!"])[0], cat_image) > 0.9999
    assert cosine(plain.embed_texts(["Cat!!"])[0], cat_image) < 0.99
    unk = plain.tokenizer.token_to_id("<unk>")
    assert unk in plain.tokenize("Cat!!")[0] and unk not in canon.tokenize("Cat!!")[0]


@pytest.mark.parametrize("resize_mode", ["squash", "longest"])
def test_other_resize_modes_keep_anchor_ties(
    tmp_path: Path, photos: dict[str, Image.Image], resize_mode: str
) -> None:
    model = build_tiny_clip(
        tmp_path / "m",
        anchors=photos,
        resize_mode=resize_mode,
        interpolation="bilinear",
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    )
    emb = ImageTextEmbedder.load(model)
    assert emb.preprocess.resize_mode == resize_mode and emb.preprocess.interpolation == "bilinear"
    scores = emb.embed_texts(list(photos)) @ emb.embed_pil(list(photos.values())).T
    assert list(scores.argmax(axis=1)) == list(range(len(photos)))


def test_fixed_batch_exports_run_item_by_item(tmp_path: Path, photos: dict[str, Image.Image]) -> None:
    """Immich's newer exports fix the batch axis at 1; the embedder feeds them one item at a time."""
    model = build_tiny_clip(tmp_path / "fixed", anchors=photos, static_batch=1)
    emb = ImageTextEmbedder.load(model, batch_size=8)
    dynamic = ImageTextEmbedder.load(build_tiny_clip(tmp_path / "dyn", anchors=photos))
    images = list(photos.values())
    assert emb.visual.inputs[0].static_batch == 1
    np.testing.assert_allclose(emb.embed_pil(images), dynamic.embed_pil(images), atol=1e-5)
    np.testing.assert_allclose(emb.embed_texts(list(photos)), dynamic.embed_texts(list(photos)), atol=1e-5)


def test_static_batch_larger_than_one_pads_the_last_chunk(
    tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    emb = ImageTextEmbedder.load(build_tiny_clip(tmp_path / "fixed3", anchors=photos, static_batch=3))
    dynamic = ImageTextEmbedder.load(build_tiny_clip(tmp_path / "dyn", anchors=photos))
    images = list(photos.values())  # 5 = 3 + 2 (padded)
    np.testing.assert_allclose(emb.embed_pil(images), dynamic.embed_pil(images), atol=1e-5)


def test_threads_share_one_embedder(embedder: ImageTextEmbedder, photos: dict[str, Image.Image]) -> None:
    expected = embedder.embed_pil([photos["cat"]])  # loads nothing twice
    fresh = ImageTextEmbedder.load(embedder.path)
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(fresh.embed_pil([photos["cat"]]))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-6)


def test_warmup_loads_both(embedder: ImageTextEmbedder) -> None:
    embedder.warmup()
    assert embedder.visual_loaded and embedder.textual_loaded


def test_load_embedder_through_the_registry(make_settings, tiny_model: Path) -> None:
    settings = make_settings(models_path=[tiny_model.parent], model="tiny-clip", batch_size=2)
    emb = load_embedder(settings)
    assert emb.name == "tiny-clip" and emb.path == tiny_model and emb.batch_size == 2
    with pytest.raises(ModelError) as info:
        load_embedder(settings, "ViT-B-32__openai")
    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    assert "photoindex models pull ViT-B-32__openai" in str(info.value)


# --- broken models -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "rel",
    [
        "visual/model.onnx",
        "textual/model.onnx",
        "textual/tokenizer.json",
        "config.json",
        "visual/preprocess_cfg.json",
        "textual/tokenizer_config.json",
    ],
)
def test_missing_file_is_model_invalid_naming_it(tiny_model: Path, tmp_path: Path, rel: str) -> None:
    model = _copy(tiny_model, tmp_path)
    (model / rel).unlink()
    with pytest.raises(ModelError) as info:
        ImageTextEmbedder.load(model)
    assert info.value.code == ErrorCode.MODEL_INVALID
    assert rel.split("/")[-1] in info.value.message
    assert "photoindex models pull tiny-clip" in str(info.value)


@pytest.mark.parametrize(
    "rel,content",
    [
        ("config.json", "{not json"),
        ("config.json", json.dumps({"vision_cfg": {}, "text_cfg": {}})),  # no embed_dim
        ("visual/preprocess_cfg.json", json.dumps({"size": 64, "mean": [0.5], "std": [1, 1, 1]})),
        ("visual/model.onnx", ""),
    ],
)
def test_malformed_file_is_model_invalid_at_load(
    tiny_model: Path, tmp_path: Path, rel: str, content: str
) -> None:
    model = _copy(tiny_model, tmp_path)
    (model / rel).write_text(content)
    with pytest.raises(ModelError) as info:
        ImageTextEmbedder.load(model)
    assert info.value.code == ErrorCode.MODEL_INVALID
    assert rel.split("/")[-1] in info.value.message


def test_pad_token_comes_from_special_tokens_map_when_the_config_lacks_it(
    tiny_model: Path, tmp_path: Path
) -> None:
    model = _copy(tiny_model, tmp_path)
    (model / "textual" / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    emb = ImageTextEmbedder.load(model)
    assert emb.tokenize("cat")[0][-1] == emb.tokenizer.token_to_id("<pad>")
    (model / "textual" / "special_tokens_map.json").unlink()
    with pytest.raises(ModelError) as info:
        ImageTextEmbedder.load(model)
    assert info.value.code == ErrorCode.MODEL_INVALID and "pad_token" in info.value.message


def test_corrupt_onnx_fails_on_first_use_naming_the_file(
    tiny_model: Path, tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    model = _copy(tiny_model, tmp_path)
    (model / "visual" / "model.onnx").write_bytes(b"\x08\x07garbage that is not a protobuf" * 10)
    emb = ImageTextEmbedder.load(model)  # sessions are lazy
    assert emb.embed_texts(["cat"]).shape == (1, 32)  # the text side still works
    with pytest.raises(ModelError) as info:
        emb.embed_pil([photos["cat"]])
    assert info.value.code == ErrorCode.MODEL_INVALID
    assert "visual/model.onnx" in info.value.message


def test_corrupt_tokenizer_fails_naming_the_file(tiny_model: Path, tmp_path: Path) -> None:
    model = _copy(tiny_model, tmp_path)
    (model / "textual" / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "Nope"}}')
    emb = ImageTextEmbedder.load(model)
    with pytest.raises(ModelError) as info:
        emb.embed_texts(["cat"])
    assert info.value.code == ErrorCode.MODEL_INVALID and "tokenizer.json" in info.value.message


def test_pad_token_missing_from_vocabulary(tiny_model: Path, tmp_path: Path) -> None:
    model = _copy(tiny_model, tmp_path)
    (model / "textual" / "tokenizer_config.json").write_text(
        json.dumps({"pad_token": {"content": "<nothing>"}})
    )
    emb = ImageTextEmbedder.load(model)
    with pytest.raises(ModelError) as info:
        emb.tokenize(["cat"])
    assert info.value.code == ErrorCode.MODEL_INVALID and "<nothing>" in info.value.message


def test_dimension_mismatch_between_config_and_graph(
    tiny_model: Path, tmp_path: Path, photos: dict[str, Image.Image]
) -> None:
    model = _copy(tiny_model, tmp_path)
    cfg = json.loads((model / "config.json").read_text())
    cfg["embed_dim"] = 64
    (model / "config.json").write_text(json.dumps(cfg))
    emb = ImageTextEmbedder.load(model)
    with pytest.raises(ModelError) as info:
        emb.embed_pil([photos["cat"]])
    assert info.value.code == ErrorCode.MODEL_INVALID and "embed_dim 64" in info.value.message


def test_image_size_mismatch_between_preprocess_and_graph(tiny_model: Path, tmp_path: Path) -> None:
    model = _copy(tiny_model, tmp_path)
    cfg = json.loads((model / "visual" / "preprocess_cfg.json").read_text())
    cfg["size"] = 32
    (model / "visual" / "preprocess_cfg.json").write_text(json.dumps(cfg))
    emb = ImageTextEmbedder.load(model)
    with pytest.raises(ModelError) as info:
        emb.embed_images(np.zeros((1, 32, 32, 3), np.uint8))
    assert info.value.code == ErrorCode.MODEL_INVALID and "[N, 3, 32, 32]" in info.value.message


def test_missing_folder_is_model_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        ImageTextEmbedder.load(tmp_path / "ViT-B-32__openai")
    assert info.value.code == ErrorCode.MODEL_NOT_FOUND
    assert "photoindex models pull ViT-B-32__openai" in str(info.value)
