"""Open-vocabulary detection with OWL-ViT / OWLv2 through Hugging Face transformers (optional extra).

A model is a Hugging Face model folder (`config.json` with model_type `owlvit` or `owlv2`, the
weights, the tokenizer and the image processor files), loaded with `from_pretrained` from disk only.
The text queries are the labels, passed at each call, so a changed label list applies at once.

OWL-ViT resizes the photo to its square input, so its relative boxes are already relative to the photo.
OWLv2 first pads the photo at the bottom and right to a square, so its boxes are relative to that
square and are rescaled here. OWL-ViT proposes one box per image patch, many of them overlapping, so
boxes of the same label go through NMS.

transformers and torch are imported on load: without them `load` raises
`ModelError(BACKEND_UNAVAILABLE)` with the extra to install.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.detect import nms
from photoindex.ml.registry import model_revision
from photoindex.schemas import Box, Region

MODEL_TYPES = ("owlvit", "owlv2")
DEFAULT_TEMPLATE = "a photo of a {}"
INSTALL_HINT = "pip install 'photoindex[hf]' (transformers and torch)"
#: files that make up a model's revision, when present
_REVISION_GLOBS = (
    "config.json",
    "*.safetensors",
    "*.bin",
    "*processor_config.json",
    "tokenizer*.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
)
#: images per forward pass; each image is paired with every query, so memory grows with both
BATCH_SIZE = 4


def _import_backend() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ModelError(
            f"open-vocabulary detection needs transformers and torch ({exc.name or exc} is not installed)",
            code=ErrorCode.BACKEND_UNAVAILABLE,
            hint=INSTALL_HINT,
        ) from exc
    return torch, transformers


def _not_found(path: Path) -> ModelError:
    return ModelError(
        f"open-vocabulary model folder {path} does not exist",
        code=ErrorCode.MODEL_NOT_FOUND,
        hint=f"download an OWL-ViT or OWLv2 model (e.g. google/owlv2-base-patch16-ensemble) into {path}",
        details={"path": str(path)},
    )


def _invalid(path: Path, message: str) -> ModelError:
    return ModelError(
        message,
        code=ErrorCode.MODEL_INVALID,
        hint=f"download the model folder again into {path} (config.json, weights, tokenizer, processor files)",
        details={"path": str(path)},
    )


def _model_type(path: Path) -> str:
    config = path / "config.json"
    if not config.is_file():
        raise _invalid(path, f"{path} holds no config.json")
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"{config} is not valid JSON: {exc}") from exc
    model_type = data.get("model_type") if isinstance(data, dict) else None
    if model_type not in MODEL_TYPES:
        raise _invalid(path, f"{config} describes a {model_type!r} model, not OWL-ViT or OWLv2")
    return str(model_type)


def _pick_device(torch: Any, device: str) -> str:
    """photoindex's device names (as for ONNX Runtime) in torch's terms: `auto` and `tensorrt` (which
    ONNX Runtime lets fall back) take the GPU when there is one; `cuda`/`gpu` insist on it."""
    choice = device.strip().lower()
    if choice in ("auto", "tensorrt"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice in ("cuda", "gpu") or choice.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ModelError(
                f"device {device!r} was asked for but torch sees no CUDA GPU",
                code=ErrorCode.BACKEND_UNAVAILABLE,
                hint="install a CUDA build of torch, or use device='cpu'",
            )
        return "cuda" if choice == "gpu" else choice
    if choice != "cpu":
        raise ModelError(
            f"unknown device {device!r}", code=ErrorCode.CONFIG_INVALID, hint="use cpu, cuda, gpu or auto"
        )
    return "cpu"


class OpenVocabDetector:
    """Finds boxes for free-text labels. `detect` may be called from several threads at once."""

    def __init__(
        self,
        *,
        path: Path,
        name: str,
        revision: str,
        model_type: str,
        model: Any,
        processor: Any,
        device: str,
        score_threshold: float,
        nms_iou: float,
        max_regions: int,
        template: str,
    ) -> None:
        self.path = path
        self.name = name
        self.revision = revision
        self.model_type = model_type
        self.model = model
        self.processor = processor
        self.device = device
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_regions = max(0, int(max_regions))
        self.template = template
        # the processor's tokenizer keeps per-call state (padding, truncation) that threads would share
        self._prepare_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        device: str = "cpu",
        score_threshold: float = 0.1,
        nms_iou: float = 0.3,
        max_regions: int = 50,
        template: str = DEFAULT_TEMPLATE,
    ) -> OpenVocabDetector:
        """Load an OWL-ViT / OWLv2 folder from disk (never from a hub). `template` turns a label into its
        text query ("{}" alone queries the bare label)."""
        path = Path(path)
        if not path.is_dir():
            raise _not_found(path)
        model_type = _model_type(path)
        torch, transformers = _import_backend()
        try:
            processor = transformers.AutoProcessor.from_pretrained(path, local_files_only=True)
            model = transformers.AutoModelForZeroShotObjectDetection.from_pretrained(
                path, local_files_only=True
            )
        except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for broken folders
            text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise _invalid(path, f"transformers cannot load {path}: {text}") from exc
        chosen = _pick_device(torch, device)
        model = model.to(chosen).eval()
        files = sorted({f for pattern in _REVISION_GLOBS for f in path.glob(pattern) if f.is_file()})
        return cls(
            path=path,
            name=path.name,
            revision=model_revision(path, files),
            model_type=model_type,
            model=model,
            processor=processor,
            device=chosen,
            score_threshold=score_threshold,
            nms_iou=nms_iou,
            max_regions=max_regions,
            template=template,
        )

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"

    def detect(self, images: Sequence[Image.Image], labels: Sequence[str]) -> list[list[Region]]:
        """Regions per image for the given labels, best first, boxes normalised to the image. An image
        without pixels has no regions."""
        labels = [label.strip() for label in labels if label and label.strip()]
        results: list[list[Region]] = [[] for _ in images]
        todo = [i for i, img in enumerate(images) if img.width > 0 and img.height > 0]
        if not labels:
            return results
        queries = [self.template.format(label) for label in labels]
        for start in range(0, len(todo), BATCH_SIZE):
            chunk = todo[start : start + BATCH_SIZE]
            rgb = [images[i] if images[i].mode == "RGB" else images[i].convert("RGB") for i in chunk]
            for i, regions in zip(chunk, self._detect_batch(rgb, labels, queries), strict=True):
                results[i] = regions
        return results

    def _detect_batch(
        self, images: list[Image.Image], labels: list[str], queries: list[str]
    ) -> list[list[Region]]:
        import torch

        with self._prepare_lock:
            inputs = self.processor(text=[queries] * len(images), images=images, return_tensors="pt")
        inputs = inputs.to(self.device)
        with torch.inference_mode():
            outputs = self.model(**inputs)
        found = self._post_process(outputs, len(images))
        return [self._regions(img, item, labels) for img, item in zip(images, found, strict=True)]

    def _post_process(self, outputs: Any, n: int) -> list[dict[str, Any]]:
        # relative boxes (no target sizes): the frame is the processor's input, handled in _regions.
        # transformers 4.4x+ names it post_process_grounded_object_detection; older, post_process_object_detection
        post = getattr(self.processor, "post_process_grounded_object_detection", None)
        if post is None:
            post = self.processor.post_process_object_detection
        return list(post(outputs=outputs, threshold=self.score_threshold, target_sizes=None))[:n]

    def _regions(self, image: Image.Image, found: dict[str, Any], labels: list[str]) -> list[Region]:
        boxes = found["boxes"].detach().float().cpu().numpy().reshape(-1, 4)
        scores = found["scores"].detach().float().cpu().numpy().reshape(-1)
        classes = found["labels"].detach().cpu().numpy().reshape(-1).astype(np.int64)
        if self.model_type == "owlv2":  # relative to the padded square, whose side is the longer one
            side = max(image.size)
            boxes = boxes * np.array([side / image.width, side / image.height] * 2, dtype=np.float32)
        boxes = np.clip(boxes, 0.0, 1.0)
        real = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & (classes < len(labels))
        boxes, scores, classes = boxes[real], scores[real], classes[real]
        keep = nms(boxes, scores, self.nms_iou, classes)[: self.max_regions]
        regions = []
        for k in keep:
            x0, y0, x1, y1 = (float(v) for v in boxes[k])
            label, score = labels[int(classes[k])], float(scores[k])
            regions.append(
                Region(
                    box=Box(x0=x0, y0=y0, x1=x1, y1=y1),
                    label=label,
                    score=score,
                    detector_label=label,
                    detector_score=score,
                )
            )
        return regions

    def __repr__(self) -> str:
        return f"OpenVocabDetector({self.model_id}, {self.model_type}, device={self.device}, {self.path})"
