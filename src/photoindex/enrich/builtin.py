"""The enrichers photoindex ships: objects, scene tags, OCR, captions, technical quality, aesthetic
score and the sentence embedding of a photo's words. Each wraps one engine from `photoindex.ml`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from photoindex.enrich.base import Enricher, Item, Needs
from photoindex.schemas import (
    AestheticResult,
    CaptionResult,
    ObjectsResult,
    OcrResult,
    QualityResult,
    TagsResult,
    TextEmbeddingResult,
)
from photoindex.store import enrichments as store
from photoindex.store import fulltext
from photoindex.store.catalog import Catalog
from photoindex.store.enrichments import EnrichmentWrite, RegionRow

Labels = Callable[[], Sequence[str]]  # read at call time: labels change without a restart


def labels_revision(labels: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(labels).encode()).hexdigest()[:8]


class ObjectsEnricher(Enricher):
    """Boxes from the detector (COCO, or open-vocabulary over `labels`), re-ranked over `labels` by the
    image-text model when one is given, captioned per region when a captioner is given."""

    name = "objects"
    needs = frozenset({Needs.IMAGE})
    region_kind = "object"
    tag_source = "objects"
    result_type = ObjectsResult

    def __init__(self, detector: Any, *, labels: Labels, embedder: Any = None, captioner: Any = None,
                 open_vocab: bool = False, batch_size: int = 8, device: str = "cpu") -> None:
        self.detector, self.labels, self.embedder, self.captioner = detector, labels, embedder, captioner
        self.open_vocab, self.batch_size, self.device = open_vocab, batch_size, device
        self.model = detector.name
        parts = [detector.revision]
        if embedder is not None:
            parts.append(f"{embedder.name}@{embedder.revision}")
        if captioner is not None:
            parts.append(f"{captioner.name}@{captioner.revision}")
        if open_vocab or embedder is not None:
            parts.append(labels_revision(self.labels()))
        self.revision = hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def run(self, items: list[Item]) -> list[BaseModel]:
        from photoindex.ml.zeroshot import rerank_regions

        images = [it.image for it in items]
        labels = list(self.labels())
        found = self.detector.detect(images, labels) if self.open_vocab else self.detector.detect(images)
        out: list[BaseModel] = []
        for image, regions in zip(images, found, strict=True):
            if self.embedder is not None and regions and labels:
                regions = rerank_regions(image, regions, self.embedder, labels)
            if self.captioner is not None and regions:
                from photoindex.ml.caption import caption_regions

                regions = caption_regions(self.captioner, image, regions)
            out.append(ObjectsResult(regions=regions))
        return out

    @classmethod
    def write_for(cls, asset_id: int, result: BaseModel) -> EnrichmentWrite:
        assert isinstance(result, ObjectsResult)
        write = super().write_for(asset_id, result)
        write.regions = [RegionRow("object", r.box.x0, r.box.y0, r.box.x1, r.box.y1, r.score, label=r.label,
                                   caption=r.caption) for r in result.regions]
        write.tags = [(r.label, r.score) for r in result.regions]
        return write


class TagsEnricher(Enricher):
    """Whole-photo tags: zero-shot over `labels` from the stored image embedding (no image decode)."""

    name = "tags"
    needs = frozenset({Needs.EMBEDDING})
    tag_source = "scene"
    result_type = TagsResult

    def __init__(self, embedder: Any, *, labels: Labels, threshold: float, batch_size: int = 256) -> None:
        self.embedder, self.labels, self.threshold, self.batch_size = embedder, labels, threshold, batch_size
        self.model = embedder.name
        self.revision = f"{embedder.revision[:8]}-{labels_revision(labels())}-{threshold:g}"

    def run(self, items: list[Item]) -> list[BaseModel]:
        from photoindex.ml.zeroshot import zero_shot_tags

        vectors = np.stack([it.embedding for it in items])
        found = zero_shot_tags(vectors, self.embedder, list(self.labels()), threshold=self.threshold)
        return [TagsResult(tags=[(t, float(s)) for t, s in tags]) for tags in found]

    @classmethod
    def write_for(cls, asset_id: int, result: BaseModel) -> EnrichmentWrite:
        assert isinstance(result, TagsResult)
        write = super().write_for(asset_id, result)
        write.tags = list(result.tags)
        return write


class OcrEnricher(Enricher):
    """Text detection on every photo; recognition only where the detector is confident enough or the
    photo's tags suggest text (the gate); a result with `recognized` False is a photo it spared."""

    name = "ocr"
    needs = frozenset({Needs.IMAGE})
    region_kind = "text"
    result_type = OcrResult
    depends_on = ("objects", "tags")  # their labels are the gate's hints

    def __init__(self, reader: Any, *, threshold: float, batch_size: int = 8) -> None:
        self.reader, self.threshold, self.batch_size = reader, threshold, batch_size
        self.model = reader.name
        self.revision = f"{reader.revision}-{reader.max_side_len}-{reader.gate_side_len}-{threshold:g}"

    def run(self, items: list[Item]) -> list[BaseModel]:
        from photoindex.ml.ocr import text_hint

        hints = [text_hint(it.tags) for it in items]
        return self.reader.read_gated([it.image for it in items], threshold=self.threshold, hints=hints)

    @classmethod
    def write_for(cls, asset_id: int, result: BaseModel) -> EnrichmentWrite:
        assert isinstance(result, OcrResult)
        write = super().write_for(asset_id, result)
        write.regions = [RegionRow("text", ln.box.x0, ln.box.y0, ln.box.x1, ln.box.y1, ln.confidence, text=ln.text)
                         for ln in result.lines]
        write.columns = {"has_text": bool(result.lines)}
        return write


class CaptionEnricher(Enricher):
    name = "caption"
    needs = frozenset({Needs.IMAGE})
    result_type = CaptionResult

    def __init__(self, captioner: Any, *, batch_size: int = 8, device: str = "cpu") -> None:
        self.captioner, self.batch_size, self.device = captioner, batch_size, device
        # a changed prompt or length limit makes other captions: part of the revision
        self.model = captioner.name
        self.revision = f"{captioner.revision}+{getattr(captioner, 'options_key', '')}"[:64]

    def run(self, items: list[Item]) -> list[BaseModel]:
        texts = self.captioner.caption([it.image for it in items])
        return [CaptionResult(text=t) for t in texts]


class QualityEnricher(Enricher):
    name = "quality"
    needs = frozenset({Needs.IMAGE})
    result_type = QualityResult
    batch_size = 16

    def __init__(self) -> None:
        from photoindex.ml.quality import TECHNICAL_MODEL, TECHNICAL_REVISION

        self.model, self.revision = TECHNICAL_MODEL, TECHNICAL_REVISION

    def run(self, items: list[Item]) -> list[BaseModel]:
        from photoindex.ml.quality import technical_quality

        return [technical_quality(it.image) for it in items]

    @classmethod
    def write_for(cls, asset_id: int, result: BaseModel) -> EnrichmentWrite:
        assert isinstance(result, QualityResult)
        write = super().write_for(asset_id, result)
        write.columns = {"quality": result.technical}
        return write


class AestheticEnricher(Enricher):
    name = "aesthetic"
    needs = frozenset({Needs.EMBEDDING})
    result_type = AestheticResult
    batch_size = 256

    def __init__(self, head: Any, *, name: str, revision: str) -> None:
        self.head, self.model, self.revision = head, name, revision

    def run(self, items: list[Item]) -> list[BaseModel]:
        scores = self.head.score(np.stack([it.embedding for it in items]))
        return [AestheticResult(aesthetic=float(s)) for s in np.ravel(scores)]

    @classmethod
    def write_for(cls, asset_id: int, result: BaseModel) -> EnrichmentWrite:
        assert isinstance(result, AestheticResult)
        write = super().write_for(asset_id, result)
        write.columns = {"aesthetic": result.aesthetic}
        return write


def compose_text(texts: tuple[str, str, str]) -> str:
    caption, ocr, tags = texts
    return ". ".join(part for part in (caption.strip(), tags.strip(), ocr.strip()) if part)


class TextEnricher(Enricher):
    """The sentence embedding of a photo's words, for semantic text search over captions, OCR text and
    tags. Cached by the words, not the photo: the same words give the same vector."""

    name = "text"
    needs = frozenset({Needs.TEXTS})
    result_type = TextEmbeddingResult
    depends_on = ("objects", "tags", "ocr", "caption")
    batch_size = 64
    writes_vectors: ClassVar[bool] = True

    def __init__(self, embedder: Any) -> None:
        self.embedder, self.model, self.revision = embedder, embedder.name, embedder.revision

    def cache_key(self, item: Item) -> str:
        return hashlib.sha256(compose_text(item.texts).encode()).hexdigest()

    def run(self, items: list[Item]) -> list[BaseModel]:
        texts = [compose_text(it.texts) for it in items]
        worded = [i for i, t in enumerate(texts) if t]  # a photo without words gets no vector
        vectors = dict(zip(worded, self.embedder.embed([texts[i] for i in worded]), strict=True)) if worded else {}
        return [TextEmbeddingResult(text_sha256=self.cache_key(it), chars=len(t),
                                    vector=vectors[i].tolist() if i in vectors else None)
                for i, (it, t) in enumerate(zip(items, texts, strict=True))]

    @classmethod
    def write_for(cls, asset_id: int, result: BaseModel) -> EnrichmentWrite:
        assert isinstance(result, TextEmbeddingResult)
        return EnrichmentWrite(asset_id=asset_id, result=result.model_dump(mode="json", exclude={"vector"}))


ENRICHER_TYPES: dict[str, type[Enricher]] = {cls.name: cls for cls in (
    ObjectsEnricher, TagsEnricher, OcrEnricher, CaptionEnricher, QualityEnricher, AestheticEnricher, TextEnricher)}


def words_of(catalog: Catalog, asset_ids: Sequence[int]) -> dict[int, tuple[str, str, str]]:
    """(caption, OCR text, tags) of assets, from the stored results: what text search reads."""
    captions = store.results(catalog, asset_ids, "caption")
    ocr = store.results(catalog, asset_ids, "ocr")
    tags = store.tags_of(catalog, asset_ids)
    return {
        a: ((captions.get(a) or {}).get("text", ""),
            "\n".join(line["text"] for line in (ocr.get(a) or {}).get("lines", [])),
            " ".join(tags.get(a, [])))
        for a in asset_ids
    }


def put_words(catalog: Catalog, collection_id: int, words: dict[int, tuple[str, str, str]]) -> None:
    """Make these words what full-text search finds the assets by."""
    fulltext.put_texts(catalog, [fulltext.AssetTextRow(asset_id=a, collection_id=collection_id, caption=c, ocr=o,
                                                       tags=t) for a, (c, o, t) in words.items()])
