"""Zero-shot labels from the image-text model: re-ranking detector regions, tagging whole photos.

Both compare image vectors with the text vectors of prompts ("a photo of a {label}") and turn cosine
similarities into probabilities over the candidate labels with a softmax at CLIP's logit scale (100).
The probabilities compete: they say which of the *given* labels fits best, not whether any fits.

The candidate labels come from configuration and may change while a worker runs, so their text
vectors are cached by (model, template, labels tuple): a new list is embedded once, on first use.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from photoindex.errors import ErrorCode, ModelError
from photoindex.schemas import Region

DEFAULT_TEMPLATE = "a photo of a {}"
#: CLIP's learned temperature (exp(4.6052)); SigLIP's is larger, but ranking is what matters here
LOGIT_SCALE = 100.0
#: label lists whose text vectors are kept; configurations rarely hold more than a few
_CACHE_SIZE = 32


class TextImageEmbedder(Protocol):
    """What zero-shot labelling needs of an embedder (`ImageTextEmbedder`, `RemoteEmbedder`)."""

    @property
    def model_id(self) -> str: ...

    def embed_pil(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str] | str) -> np.ndarray: ...


_text_cache: OrderedDict[tuple[str, str, tuple[str, ...]], np.ndarray] = OrderedDict()
_text_lock = threading.Lock()


def prompts(labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    return [template.format(label) for label in labels]


def label_vectors(
    embedder: TextImageEmbedder, labels: Sequence[str], *, template: str = DEFAULT_TEMPLATE
) -> np.ndarray:
    """L2-normalised text vectors (len(labels), D) of the labels' prompts, cached per label list."""
    key = (embedder.model_id, template, tuple(labels))
    with _text_lock:
        cached = _text_cache.get(key)
        if cached is not None:
            _text_cache.move_to_end(key)
            return cached
    vectors = _normalise(embedder.embed_texts(prompts(labels, template)))
    vectors.setflags(write=False)  # shared between callers
    with _text_lock:
        _text_cache[key] = vectors
        while len(_text_cache) > _CACHE_SIZE:
            _text_cache.popitem(last=False)
    return vectors


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), np.float32(1e-12))


def label_probabilities(
    image_vectors: np.ndarray, text_vectors: np.ndarray, *, logit_scale: float = LOGIT_SCALE
) -> np.ndarray:
    """Softmax over labels of cosine * logit_scale: (N images, L labels), rows sum to 1."""
    images = _normalise(np.atleast_2d(image_vectors))
    if images.shape[1] != text_vectors.shape[1]:
        raise ModelError(
            f"image vectors have {images.shape[1]} dimensions, the text model's {text_vectors.shape[1]}",
            code=ErrorCode.DIMENSION_MISMATCH,
            hint="use the image-text model the vectors were computed with",
        )
    logits = (images @ text_vectors.T) * np.float32(logit_scale)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


def crop_region(image: Image.Image, region: Region, *, pad: float = 0.1) -> Image.Image:
    """The region's box grown by `pad` of its width/height on each side, clipped to the image."""
    width, height = image.size
    box = region.box
    grow_x = (box.x1 - box.x0) * pad
    grow_y = (box.y1 - box.y0) * pad
    x0 = int(np.floor(max(0.0, box.x0 - grow_x) * width))
    y0 = int(np.floor(max(0.0, box.y0 - grow_y) * height))
    x1 = int(np.ceil(min(1.0, box.x1 + grow_x) * width))
    y1 = int(np.ceil(min(1.0, box.y1 + grow_y) * height))
    # a degenerate box still yields a 1-pixel crop, which the embedder can take
    x0, y0 = min(x0, width - 1), min(y0, height - 1)
    return image.crop((x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)))


def rerank_regions(
    image: Image.Image,
    regions: list[Region],
    embedder: TextImageEmbedder,
    labels: Sequence[str],
    *,
    min_score: float = 0.0,
    pad: float = 0.1,
    template: str = DEFAULT_TEMPLATE,
    logit_scale: float = LOGIT_SCALE,
) -> list[Region]:
    """Relabel each region with the candidate label its crop matches best.

    The crops are embedded in one batch. `label`/`score` become the best label and its probability;
    `detector_label`/`detector_score` keep what the detector said. A region whose best probability is
    below `min_score` keeps the detector's label and score. The order of `regions` is kept.
    """
    if not regions or not labels or image.width < 1 or image.height < 1:
        return list(regions)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    crops = [crop_region(rgb, region, pad=pad) for region in regions]
    probs = label_probabilities(
        embedder.embed_pil(crops), label_vectors(embedder, labels, template=template), logit_scale=logit_scale
    )
    best = probs.argmax(axis=1)
    out: list[Region] = []
    for region, index, row in zip(regions, best, probs, strict=True):
        detector_label = region.detector_label if region.detector_label is not None else region.label
        detector_score = region.detector_score if region.detector_score is not None else region.score
        score = float(row[index])
        label, score = (labels[index], score) if score >= min_score else (detector_label, detector_score)
        out.append(
            region.model_copy(
                update={
                    "label": label,
                    "score": score,
                    "detector_label": detector_label,
                    "detector_score": detector_score,
                }
            )
        )
    return out


def zero_shot_tags(
    image_vectors: np.ndarray,
    embedder: TextImageEmbedder,
    labels: Sequence[str],
    *,
    threshold: float,
    template: str = DEFAULT_TEMPLATE,
    logit_scale: float = LOGIT_SCALE,
) -> list[list[tuple[str, float]]]:
    """Whole-photo tags from stored image vectors (N, D): per photo, the labels whose probability is at
    least `threshold`, best first. No pixels are needed."""
    vectors = np.asarray(image_vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None]
    if vectors.shape[0] == 0:
        return []
    if not labels:
        return [[] for _ in range(vectors.shape[0])]
    probs = label_probabilities(
        vectors, label_vectors(embedder, labels, template=template), logit_scale=logit_scale
    )
    tags: list[list[tuple[str, float]]] = []
    for row in probs:
        order = np.argsort(-row, kind="stable")
        tags.append([(labels[i], float(row[i])) for i in order if row[i] >= threshold])
    return tags
