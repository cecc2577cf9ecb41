"""Technical quality (sharpness, exposure, noise) on real photos, and the aesthetic head over embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter
from support.tiny_aesthetic import build_tiny_aesthetic

from photoindex.errors import ErrorCode, MediaError, ModelError
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.ml.quality import (
    AestheticHead,
    analysis_gray,
    combine,
    edge_width,
    noise_sigma,
    technical_qualities,
    technical_quality,
)

# photos with ordinary exposure (the rocket is a dusk scene: brightening it is an improvement)
NORMAL = ("astronaut", "coffee", "cat", "motorcycle")


def _blurred(img: Image.Image, radius: float) -> Image.Image:
    return img.filter(ImageFilter.GaussianBlur(radius)) if radius else img


def _noisy(img: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    pixels = np.asarray(img.convert("RGB"), dtype=np.float32)
    noise = np.random.default_rng(seed).normal(0.0, sigma, pixels.shape)
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8))


def _scaled(img: Image.Image, gain: float, offset: float = 0.0) -> Image.Image:
    pixels = np.asarray(img.convert("RGB"), dtype=np.float32) * gain + offset
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _in_unit_range(result) -> bool:
    values = (result.technical, result.sharpness, result.exposure, result.noise)
    return all(0.0 <= v <= 1.0 for v in values)


# -- technical quality ----------------------------------------------------------------------------------


def test_every_measure_is_in_unit_range(photos: dict[str, Image.Image]) -> None:
    results = technical_qualities(list(photos.values()))
    assert len(results) == len(photos)
    for result in results:
        assert _in_unit_range(result)
        assert result.aesthetic is None
        assert result.technical > 0.5  # real, ordinary photos are not technically bad


def test_a_blurred_copy_is_less_sharp(photos: dict[str, Image.Image]) -> None:
    for name, photo in photos.items():
        scores = [technical_quality(_blurred(photo, r)) for r in (0, 1, 2, 4)]
        sharpness = [s.sharpness for s in scores]
        assert sharpness == sorted(sharpness, reverse=True), (name, sharpness)
        assert sharpness[0] - sharpness[2] > 0.25, (name, sharpness)
        assert scores[2].technical < scores[0].technical, name


def test_sharpness_does_not_depend_on_contrast(photos: dict[str, Image.Image]) -> None:
    for name, photo in photos.items():
        flat = ImageEnhance.Contrast(photo).enhance(0.4)
        assert abs(technical_quality(flat).sharpness - technical_quality(photo).sharpness) < 0.08, name


def test_a_step_edge_is_two_pixels_wide() -> None:
    step = np.zeros((64, 64), dtype=np.float32)
    step[:, 32:] = 1.0
    assert edge_width(step) == pytest.approx(2.0, abs=0.05)
    blurred = np.asarray(Image.fromarray((step * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2)),
                         dtype=np.float32) / 255
    assert 4.0 < edge_width(blurred) < 7.0  # about 2.5 sigma
    assert edge_width(np.full((64, 64), 0.5, np.float32)) is None


def test_over_and_under_exposed_copies_score_lower(photos: dict[str, Image.Image]) -> None:
    for name in NORMAL:
        photo = photos[name]
        original = technical_quality(photo)
        over = technical_quality(_scaled(photo, 2.5, 60))
        under = technical_quality(_scaled(photo, 0.2))
        assert over.exposure < original.exposure - 0.3, (name, original.exposure, over.exposure)
        assert under.exposure < original.exposure - 0.3, (name, original.exposure, under.exposure)
        assert over.technical < original.technical and under.technical < original.technical, name
    white = technical_quality(Image.new("RGB", (300, 200), (255, 255, 255)))
    assert white.exposure == 0.0


def test_added_noise_scores_lower(photos: dict[str, Image.Image]) -> None:
    for name, photo in photos.items():
        noise = [technical_quality(_noisy(photo, s)).noise for s in (0, 5, 15)]
        assert noise == sorted(noise, reverse=True), (name, noise)
        assert noise[0] - noise[2] > 0.4, (name, noise)


def test_noise_sigma_is_calibrated_on_a_flat_grey_image() -> None:
    for sigma in (3.0, 8.0, 15.0):
        grey = _noisy(Image.new("RGB", (400, 300), (128, 128, 128)), sigma, seed=int(sigma))
        # the grey conversion averages three channels' independent noise: sigma / sqrt(3) remains...
        expected = sigma * np.sqrt(0.299**2 + 0.587**2 + 0.114**2)  # ...weighted by the luma coefficients
        assert noise_sigma(analysis_gray(grey)) == pytest.approx(expected, rel=0.1)


def test_technical_falls_with_any_measure() -> None:
    assert combine(1.0, 1.0, 1.0) == pytest.approx(1.0)
    base = combine(0.8, 0.8, 0.8)
    assert combine(0.4, 0.8, 0.8) < combine(0.8, 0.4, 0.8) < combine(0.8, 0.8, 0.4) < base
    assert combine(0.0, 1.0, 1.0) < 0.05  # nothing in focus is bad whatever the exposure


def test_odd_and_bad_images_do_not_crash(photos: dict[str, Image.Image]) -> None:
    cat = photos["cat"]
    odd = [
        Image.new("RGB", (1, 1), (10, 20, 30)),
        Image.new("L", (640, 480), 0),
        Image.new("RGB", (4000, 3), (128, 128, 128)),
        Image.new("RGB", (3, 4000), (128, 128, 128)),
        cat.convert("RGBA"),
        cat.convert("P"),
        cat.convert("L"),
        Image.fromarray(np.asarray(cat.convert("L"), dtype=np.uint16) * 257).convert("I;16"),
        cat.resize((6000, 4000)),
    ]
    for img in odd:
        assert _in_unit_range(technical_quality(img)), img
    black = technical_quality(odd[1])
    assert black.sharpness == 0.0 and black.exposure == 0.0 and black.technical < 0.05
    big, small = technical_quality(odd[-1]), technical_quality(cat)
    assert abs(big.exposure - small.exposure) < 0.05  # measured on the same 512 px copy
    with pytest.raises(MediaError) as err:
        technical_quality(np.zeros((4, 4, 3), np.uint8))  # type: ignore[arg-type]
    assert err.value.code == ErrorCode.UNSUPPORTED_TYPE


def test_the_photo_is_not_modified(photos: dict[str, Image.Image]) -> None:
    photo = photos["coffee"].copy()
    before = photo.tobytes()
    technical_quality(photo)
    assert photo.tobytes() == before and photo.mode == "RGB"


# -- aesthetic head -------------------------------------------------------------------------------------


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def test_aesthetic_head_scores_along_its_direction(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    direction = _unit(rng.normal(size=32))
    head = AestheticHead.load(build_tiny_aesthetic(tmp_path / "head", direction))
    assert head.embedding_model == "tiny-clip" and head.dim == 32 and len(head.revision) == 12

    r = rng.normal(size=32)
    other = _unit(r - direction * np.dot(r, direction))  # orthogonal to direction
    angles = np.linspace(0.0, np.pi, 7)  # from along the direction to opposite it
    embeddings = np.stack([np.cos(a) * direction + np.sin(a) * other for a in angles]) * 3.0  # not unit
    scores = head.score(embeddings)
    assert scores.shape == (7,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, 5.0 * (np.cos(angles) + 1.0), atol=1e-4)  # [-1, 1] -> 0..10
    assert list(np.argsort(-scores)) == list(range(7))
    assert head.score(embeddings[0]).shape == (1,)
    assert head.score(np.zeros((0, 32), np.float32)).shape == (0,)


def test_aesthetic_head_without_scale_returns_the_model_output(tmp_path: Path) -> None:
    direction = _unit(np.arange(1, 9, dtype=np.float32))
    path = build_tiny_aesthetic(tmp_path / "raw", direction, scale=None, bias=6.0, flat_output=True)
    head = AestheticHead.load(path)
    scores = head.score(np.stack([direction, -direction]))
    np.testing.assert_allclose(scores, [7.0, 5.0], atol=1e-5)


def test_aesthetic_head_ranks_real_photos_by_their_embeddings(
    tmp_path: Path, tiny_model: Path, photos: dict[str, Image.Image]
) -> None:
    embedder = ImageTextEmbedder.load(tiny_model)
    names = list(photos)
    vectors = embedder.embed_pil([photos[n] for n in names])
    head = AestheticHead.load(build_tiny_aesthetic(tmp_path / "likes-coffee", vectors[names.index("coffee")],
                                                   embedding_model=embedder.name))
    assert head.embedding_model == embedder.name
    scores = head.score(vectors)
    assert names[int(np.argmax(scores))] == "coffee"
    assert scores.max() == pytest.approx(10.0, abs=1e-3)
    assert all(0.0 <= s <= 10.0 for s in scores)


def test_aesthetic_head_refuses_mismatched_dimensions(tmp_path: Path) -> None:
    direction = _unit(np.ones(16, np.float32))
    with pytest.raises(ModelError) as err:
        AestheticHead.load(build_tiny_aesthetic(tmp_path / "liar", direction, config_dim=32))
    assert err.value.code == ErrorCode.DIMENSION_MISMATCH
    head = AestheticHead.load(build_tiny_aesthetic(tmp_path / "ok", direction))
    with pytest.raises(ModelError) as err:
        head.score(np.ones((2, 32), np.float32))
    assert err.value.code == ErrorCode.DIMENSION_MISMATCH and "tiny-clip" in (err.value.hint or "")


def test_aesthetic_head_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as err:
        AestheticHead.load(tmp_path / "absent")
    assert err.value.code == ErrorCode.MODEL_NOT_FOUND

    path = build_tiny_aesthetic(tmp_path / "broken", _unit(np.ones(8, np.float32)))
    config = json.loads((path / "config.json").read_text())
    for bad in ("{not json", json.dumps({**config, "dim": "8"}), json.dumps({"dim": 8}),
                json.dumps({**config, "scale": [1, 1]})):
        (path / "config.json").write_text(bad)
        with pytest.raises(ModelError) as err:
            AestheticHead.load(path)
        assert err.value.code == ErrorCode.MODEL_INVALID, bad
    (path / "config.json").write_text(json.dumps(config))
    (path / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError) as err:
        AestheticHead.load(path)
    assert err.value.code == ErrorCode.MODEL_INVALID
