"""Zero-shot re-ranking of regions and whole-photo tags, with the tiny image-text model whose words
astronaut, coffee, cat, rocket and motorcycle are tied to those photos."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.clip import ImageTextEmbedder
from photoindex.ml.zeroshot import crop_region, label_vectors, rerank_regions, zero_shot_tags
from photoindex.schemas import Box, Region

WORDS = ["astronaut", "coffee", "cat", "rocket", "motorcycle"]


@pytest.fixture(scope="module")
def embedder(models_dir: Path) -> ImageTextEmbedder:
    return ImageTextEmbedder.load(models_dir / "tiny-clip", name="tiny-clip", intra_op_threads=1)


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: ImageTextEmbedder) -> None:
        self.inner = inner
        self.model_id = f"{inner.model_id}-counted-{id(self)}"  # a cache of its own
        self.texts: list[str] = []

    def embed_pil(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.inner.embed_pil(images)

    def embed_texts(self, texts: Sequence[str] | str) -> np.ndarray:
        self.texts.extend([texts] if isinstance(texts, str) else texts)
        return self.inner.embed_texts(texts)


def region(x0: float, y0: float, x1: float, y1: float, label: str = "animal", score: float = 0.4) -> Region:
    return Region(
        box=Box(x0=x0, y0=y0, x1=x1, y1=y1),
        label=label,
        score=score,
        detector_label=label,
        detector_score=score,
    )


def collage(left: Image.Image, right: Image.Image, size: int = 300) -> Image.Image:
    out = Image.new("RGB", (2 * size, size))
    out.paste(left.resize((size, size)), (0, 0))
    out.paste(right.resize((size, size)), (size, 0))
    return out


def test_crop_of_the_cat_is_a_cat(embedder: ImageTextEmbedder, photos: dict[str, Image.Image]) -> None:
    cat = photos["cat"]
    [out] = rerank_regions(
        cat, [region(0.1, 0.05, 0.9, 0.95, label="dog", score=0.42)], embedder, ["cat", "rocket", "coffee"]
    )
    assert out.label == "cat" and out.score > 0.9
    assert out.detector_label == "dog" and out.detector_score == 0.42
    assert out.box == Box(x0=0.1, y0=0.05, x1=0.9, y1=0.95)


def test_each_region_is_judged_on_its_own_crop(
    embedder: ImageTextEmbedder, photos: dict[str, Image.Image]
) -> None:
    image = collage(photos["rocket"], photos["cat"])
    regions = [region(0.5, 0.0, 1.0, 1.0), region(0.0, 0.0, 0.5, 1.0)]
    out = rerank_regions(image, regions, embedder, ["cat", "rocket", "coffee"], pad=0.0)
    assert [r.label for r in out] == ["cat", "rocket"]  # order of the input kept
    probs = [r.score for r in out]
    assert all(0.5 < p <= 1.0 for p in probs)


def test_labels_change_between_calls(embedder: ImageTextEmbedder, photos: dict[str, Image.Image]) -> None:
    counted = CountingEmbedder(embedder)
    image = collage(photos["coffee"], photos["motorcycle"])
    regions = [region(0.0, 0.0, 0.5, 1.0), region(0.5, 0.0, 1.0, 1.0)]
    first = rerank_regions(image, regions, counted, ["coffee", "cat"])
    again = rerank_regions(image, regions, counted, ["coffee", "cat"])
    assert [r.label for r in first] == [r.label for r in again] == ["coffee", "cat"]
    assert counted.texts == ["a photo of a coffee", "a photo of a cat"]  # second call: from the cache
    changed = rerank_regions(image, regions, counted, ["rocket", "motorcycle", "coffee"])
    assert [r.label for r in changed] == ["coffee", "motorcycle"]
    assert len(counted.texts) == 5


def test_low_confidence_keeps_the_detector_label(
    embedder: ImageTextEmbedder, photos: dict[str, Image.Image]
) -> None:
    [out] = rerank_regions(
        photos["cat"],
        [region(0.1, 0.1, 0.9, 0.9, "cat", 0.61)],
        embedder,
        ["rocket", "coffee"],
        min_score=1.01,
    )
    assert (out.label, out.score, out.detector_label, out.detector_score) == ("cat", 0.61, "cat", 0.61)


def test_rerank_twice_keeps_the_first_detector_label(
    embedder: ImageTextEmbedder, photos: dict[str, Image.Image]
) -> None:
    plain = Region(box=Box(x0=0.0, y0=0.0, x1=1.0, y1=1.0), label="bird", score=0.3)  # no detector fields
    once = rerank_regions(photos["cat"], [plain], embedder, ["cat", "rocket"])
    twice = rerank_regions(photos["cat"], once, embedder, ["coffee", "cat"])
    assert twice[0].label == "cat" and (twice[0].detector_label, twice[0].detector_score) == ("bird", 0.3)


def test_nothing_to_rerank(embedder: ImageTextEmbedder, photos: dict[str, Image.Image]) -> None:
    assert rerank_regions(photos["cat"], [], embedder, ["cat"]) == []
    regions = [region(0.1, 0.1, 0.5, 0.5)]
    assert rerank_regions(photos["cat"], regions, embedder, []) == regions
    assert rerank_regions(Image.new("RGB", (0, 3)), regions, embedder, ["cat"]) == regions


def test_degenerate_and_edge_boxes(embedder: ImageTextEmbedder, photos: dict[str, Image.Image]) -> None:
    img = photos["cat"].convert("L")  # any mode
    regions = [region(0.5, 0.5, 0.5, 0.5), region(0.99, 0.99, 1.0, 1.0), region(0.0, 0.0, 1.0, 1.0)]
    out = rerank_regions(img, regions, embedder, ["cat", "rocket"], pad=0.5)
    assert len(out) == 3 and all(r.label in ("cat", "rocket") for r in out)
    crop = crop_region(photos["cat"], region(0.2, 0.2, 0.4, 0.6), pad=0.5)
    w, h = photos["cat"].size
    assert crop.size == pytest.approx((0.4 * w, 0.8 * h), abs=2)


def test_whole_photo_tags_from_stored_vectors(
    embedder: ImageTextEmbedder, photos: dict[str, Image.Image]
) -> None:
    vectors = embedder.embed_pil([photos[w] for w in WORDS])
    tags = zero_shot_tags(vectors, embedder, WORDS, threshold=0.5)
    assert [t[0][0] for t in tags] == WORDS
    assert all(len(t) == 1 and t[0][1] > 0.5 for t in tags)
    everything = zero_shot_tags(vectors, embedder, WORDS, threshold=0.0)
    for row in everything:
        assert len(row) == len(WORDS)
        assert [p for _, p in row] == sorted((p for _, p in row), reverse=True)
        assert sum(p for _, p in row) == pytest.approx(1.0, abs=1e-4)
    assert zero_shot_tags(vectors[0], embedder, WORDS, threshold=0.5)[0][0][0] == "astronaut"


def test_tags_edge_cases(embedder: ImageTextEmbedder) -> None:
    assert zero_shot_tags(np.empty((0, embedder.dim), np.float32), embedder, WORDS, threshold=0.1) == []
    assert zero_shot_tags(np.ones((2, embedder.dim), np.float32), embedder, [], threshold=0.1) == [[], []]
    with pytest.raises(ModelError) as info:
        zero_shot_tags(np.ones((1, embedder.dim + 1), np.float32), embedder, WORDS, threshold=0.1)
    assert info.value.code == ErrorCode.DIMENSION_MISMATCH


def test_label_vectors_are_cached_per_label_list(embedder: ImageTextEmbedder) -> None:
    counted = CountingEmbedder(embedder)
    a = label_vectors(counted, ["cat", "rocket"])
    assert label_vectors(counted, ("cat", "rocket")) is a
    b = label_vectors(counted, ["rocket", "cat"])
    assert np.allclose(a[::-1], b)
    assert len(counted.texts) == 4
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
