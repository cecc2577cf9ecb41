"""Text in photos: RapidOCR's PP-OCR models (text detection, angle classifier, recognition) on ONNX Runtime.

The models ship inside the `rapidocr` wheel (3.10.0: PP-OCRv6 small detection and recognition, the
mobile v2 angle classifier), so nothing is downloaded: `TextReader.load` points RapidOCR at those files
and fails with a clear error when they are not there.

Per image the pipeline is
  1. *analysis image*: RGB, shrunk so its long side is at most `max_side_len`, padded (black, right and
     bottom) so neither side is under 32 px and the aspect ratio is at most 4:1 — the detector scales
     the short side up to 736 px, so an unpadded 1024x8 strip would become a 94208x736 tensor;
  2. *detection* (DB): a text-probability map, boxes from its connected regions, each scored by the mean
     probability inside its polygon (`score_mode: slow`, which follows the region's outline instead of
     its bounding rectangle and so separates text from textured blobs better);
  3. *gate* from the detected boxes alone (see `gate_score`);
  4. *recognition*: each box is cut out and straightened, turned upright by the angle classifier when
     it reads upside down, and recognised; lines under `min_confidence` or empty are dropped.

Detection is most of the cost on photos (~80 %), so a gate that detects at full size saves only the
recognition. `read_gated` therefore gates on a cheap detection at `gate_side_len` (480 px: ~1/5 of the
pixels), on the same ONNX session and post-processing, and only the photos that pass are detected
again at `max_side_len` and recognised. With `gate_side_len=None` the gate is the full-size detection,
which passing photos then reuse.

Thread safety: one `TextReader` may be called from several threads at once. It drives RapidOCR's
detector, classifier and recogniser objects directly (never `RapidOCR.__call__`, which stores per-call
options on the shared object): their `__call__`s keep all state in locals, the DB post-processor only
reads its settings, and ONNX Runtime sessions are safe for concurrent `run`s.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from photoindex.errors import ErrorCode, MediaError, ModelError, PhotoindexError
from photoindex.media.decode import to_rgb
from photoindex.ml.session import CUDA, default_providers
from photoindex.schemas import Box, OcrResult, TextLine

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'rapidocr==3.10.0' onnxruntime 'opencv-python-headless<5'"

# The lowest gate score worth a recognition pass, for the default gate at 480 px, measured on 17
# scikit-image / scikit-learn photos at their own size and at 1024 px wide. Without text: 0.00-0.19,
# cameraman 0.35, the 1024 px astronaut 0.55 (the name tag on her suit, which the full read does
# find); coins 0.18 and the motorcycle's small YAMAHA badge 0.00. With text drawn onto 8 of them (signs
# of 12-56 px glyphs, receipts of 14-20 px, at both sizes): 0.63-0.93, a scanned page 0.86. Receipts of
# 10 px glyphs on a 1024 px photo (under 5 px at the gate) score 0.00-0.64: below what the gate sees.
DEFAULT_GATE_THRESHOLD = 0.5
# The same for the full-size gate (`gate_side_len=None`): without text up to 0.79 (cameraman), coins
# 0.90 (rows of coins look like lines of text: a false pass, which costs one recognition and yields no
# confident line); with text 0.73-0.94: small signs on busy photos (flowers, cameraman) are missed.
FULL_SIZE_GATE_THRESHOLD = 0.82
DEFAULT_GATE_SIDE_LEN = 480

MIN_SIDE = 32  # the detector works on multiples of 32 px
MAX_ASPECT = 4.0  # wider or taller analysis images are padded to this ratio
MIN_LINE_CONFIDENCE = 0.5  # RapidOCR's own default `text_score`

_SECTIONS = ("Det", "Cls", "Rec")


# -- hints from tags and captions -----------------------------------------------------------------------

# Things that are made of text, or nearly always carry some. Plural forms are matched by stripping "s".
_TEXT_WORDS = frozenset({
    "sign", "signboard", "signage", "signpost", "receipt", "invoice", "document", "paper", "page",
    "letter", "note", "handwriting", "text", "writing", "screen", "screenshot", "menu", "poster",
    "flyer", "leaflet", "brochure", "book", "magazine", "newspaper", "whiteboard", "blackboard",
    "chalkboard", "billboard", "scoreboard", "noticeboard", "banner", "placard", "label", "ticket",
    "passport", "certificate", "diploma", "calendar", "map", "timetable", "schedule", "storefront",
    "shopfront", "graffiti", "license", "licence", "numberplate", "signature", "packaging", "manuscript",
})
# Words that only suggest text next to another word ("plate" alone is usually dinner).
_TEXT_PHRASES = frozenset({
    ("license", "plate"), ("licence", "plate"), ("number", "plate"), ("registration", "plate"),
    ("price", "tag"), ("name", "tag"), ("business", "card"), ("id", "card"), ("credit", "card"),
    ("street", "name"), ("notice", "board"), ("bulletin", "board"), ("boarding", "pass"),
})
_TOKEN = re.compile(r"[a-z0-9]+")


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def text_hint(words: Iterable[str]) -> bool:
    """Whether tags or caption words suggest that a photo shows text worth reading (a sign, a receipt,
    a screen...). Each item may be a single tag or a whole caption; matching is case-insensitive and
    ignores plurals."""
    for item in words:
        tokens = [_singular(t) for t in _TOKEN.findall(str(item).lower())]
        if any(t in _TEXT_WORDS for t in tokens):
            return True
        if any(pair in _TEXT_PHRASES for pair in pairwise(tokens)):
            return True
    return False


# -- geometry -------------------------------------------------------------------------------------------


def gate_score(quads: np.ndarray, scores: Sequence[float]) -> float:
    """How sure the detector is that a photo holds at least one line of text, from its boxes alone.

    Each box counts with its mean text probability times an elongation weight, clip(long/short - 1, 0,
    1): a line of two or more glyphs is at least twice as long as it is high, while the detector's false
    alarms on photos are compact blobs (fur, a retina, a logo) that score as high as real text. The
    photo's score is the best box's, not a sum or a noisy-or, because one confident line is enough to be
    worth reading and many weak texture boxes must not add up to a pass. 0.0 without boxes."""
    best = 0.0
    for quad, score in zip(quads, scores, strict=True):
        q = np.asarray(quad, dtype=np.float32)
        width = float(np.linalg.norm(q[0] - q[1]) + np.linalg.norm(q[3] - q[2])) / 2
        height = float(np.linalg.norm(q[0] - q[3]) + np.linalg.norm(q[1] - q[2])) / 2
        aspect = max(width, height) / max(min(width, height), 1.0)
        best = max(best, float(score) * min(1.0, max(0.0, aspect - 1.0)))
    return best


def quad_to_box(quad: np.ndarray, width: int, height: int) -> Box:
    """The axis-aligned bounds of a quadrilateral in pixels, normalised to a `width` x `height` image."""
    q = np.asarray(quad, dtype=np.float64)
    lo, hi = q.min(axis=0), q.max(axis=0)

    def norm(value: float, size: int) -> float:
        return min(1.0, max(0.0, float(value) / size))

    return Box(x0=norm(lo[0], width), y0=norm(lo[1], height), x1=norm(hi[0], width), y1=norm(hi[1], height))


def reading_order(boxes: Sequence[Box]) -> list[int]:
    """Indices of `boxes` in reading order: rows top to bottom, left to right within a row.

    A box joins the current row when its vertical centre lies within the vertical extent of the row's
    first box, so an item and its price on a receipt, or words of different heights, stay one row, and
    rows cannot creep downwards by chaining."""
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i].y0 + boxes[i].y1) / 2)
    rows: list[list[int]] = []
    for i in order:
        centre = (boxes[i].y0 + boxes[i].y1) / 2
        if rows and boxes[rows[-1][0]].y0 <= centre <= boxes[rows[-1][0]].y1:
            rows[-1].append(i)
        else:
            rows.append([i])
    return [i for row in rows for i in sorted(row, key=lambda j: (boxes[j].x0, boxes[j].y0))]


# -- the analysis image ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Analysis:
    pixels: np.ndarray  # BGR uint8, padded
    width: int  # the photo's extent inside `pixels` (before padding), for normalising boxes
    height: int


def _analysis_image(image: Image.Image, max_side: int) -> _Analysis:
    if not isinstance(image, Image.Image):
        raise MediaError(f"expected a PIL image, got {type(image).__name__}", code=ErrorCode.UNSUPPORTED_TYPE)
    if image.width < 1 or image.height < 1:
        raise MediaError(f"image has no pixels ({image.width}x{image.height})", code=ErrorCode.CORRUPT_IMAGE)
    try:
        rgb = to_rgb(image)
        scale = max_side / max(rgb.width, rgb.height)
        if scale < 1:
            size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
            rgb = rgb.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
        pixels = np.asarray(rgb, dtype=np.uint8)[:, :, ::-1]  # the PP-OCR models were trained on BGR
    except (OSError, ValueError, SyntaxError) as exc:  # a lazily loaded file that turns out truncated or bad
        raise MediaError(f"cannot read image pixels: {exc}", code=ErrorCode.CORRUPT_IMAGE) from exc
    height, width = pixels.shape[:2]
    padded_w = max(width, MIN_SIDE, int(np.ceil(height / MAX_ASPECT)))
    padded_h = max(height, MIN_SIDE, int(np.ceil(width / MAX_ASPECT)))
    if (padded_w, padded_h) != (width, height):
        canvas = np.zeros((padded_h, padded_w, 3), dtype=np.uint8)
        canvas[:height, :width] = pixels
        pixels = canvas
    return _Analysis(np.ascontiguousarray(pixels), width, height)


@dataclass(frozen=True)
class _Scale:
    """One resolution of the shared detector: how far the analysis image is shrunk, and the detector's
    resize to multiples of 32 that goes with it (stateless, so shared between threads)."""

    max_side: int
    preprocess: Any  # rapidocr DetPreProcess


@dataclass(frozen=True)
class _Detection:
    analysis: _Analysis
    quads: np.ndarray  # [K, 4, 2] float32, analysis-image pixels, clockwise from top-left
    scores: list[float]
    gate: float


# -- loading --------------------------------------------------------------------------------------------


def _rapidocr() -> Any:
    try:
        import rapidocr
    except ImportError as exc:
        raise ModelError(
            f"OCR needs the rapidocr package ({exc})",
            code=ErrorCode.BACKEND_UNAVAILABLE,
            hint=INSTALL_HINT,
        ) from exc
    return rapidocr


def _bundled_model_paths(cfg: Any) -> dict[str, Path]:
    """The model file RapidOCR would use for each stage, resolved the way RapidOCR resolves it, but
    required to be present: RapidOCR downloads missing ones, photoindex never does at run time."""
    from rapidocr.inference_engine.base import FileInfo, InferSession

    root = Path(cfg.Global.model_root_dir)
    paths: dict[str, Path] = {}
    for section in _SECTIONS:
        part = cfg[section]
        info = InferSession.get_model_url(FileInfo(
            engine_type=part.engine_type, ocr_version=part.ocr_version, task_type=part.task_type,
            lang_type=part.lang_type, model_type=part.model_type,
        ))
        path = root / Path(str(info["model_dir"])).name
        if not path.is_file():
            raise ModelError(
                f"the OCR model file {path} is missing",
                code=ErrorCode.MODEL_NOT_FOUND,
                hint=f"reinstall rapidocr, whose wheel ships the models: {INSTALL_HINT}",
                details={"file": str(path)},
            )
        paths[section] = path
    return paths


def _files_revision(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            digest.update(path.name.encode() + b"\0" + hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()[:12]


def _engine_params(max_side_len: int, device: str, intra_op_threads: int) -> dict[str, Any]:
    use_cuda = CUDA in default_providers(device)
    return {
        "Global.max_side_len": max_side_len,
        "Global.log_level": "warning",  # RapidOCR logs every model it opens at INFO
        "Det.score_mode": "slow",
        "EngineConfig.onnxruntime.use_cuda": use_cuda,
        "EngineConfig.onnxruntime.intra_op_num_threads": intra_op_threads if intra_op_threads > 0 else -1,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }


class TextReader:
    """Finds and reads text in photos. Build it with `TextReader.load`."""

    def __init__(self, *, name: str, revision: str, max_side_len: int, gate_side_len: int | None,
                 min_confidence: float, use_angle_cls: bool, detector: Any, classifier: Any,
                 recognizer: Any) -> None:
        from rapidocr.ch_ppocr_det.utils import DetPreProcess
        from rapidocr.ch_ppocr_rec import TextRecInput
        from rapidocr.utils.process_img import get_rotate_crop_image

        self.name = name
        self.revision = revision
        self.max_side_len = max_side_len
        self.gate_side_len = gate_side_len
        self.min_confidence = min_confidence
        self.use_angle_cls = use_angle_cls
        self._det = detector
        # RapidOCR's own resize (limit_type "min") scales the short side *up* to 736 px, which would
        # undo the gate's shrinking; the gate's keeps the analysis image's size (up to rounding to 32)
        self._full = _Scale(max_side_len, detector.get_preprocess())
        self._gate = self._full if gate_side_len is None else _Scale(
            gate_side_len, DetPreProcess(gate_side_len, "max", detector.mean, detector.std))
        self._cls = classifier
        self._rec = recognizer
        self._rec_input = TextRecInput
        self._crop = get_rotate_crop_image

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"

    @property
    def default_threshold(self) -> float:
        """The gate threshold measured for this reader's gate: low-resolution or full-size."""
        return FULL_SIZE_GATE_THRESHOLD if self.gate_side_len is None else DEFAULT_GATE_THRESHOLD

    @classmethod
    def load(cls, *, max_side_len: int = 1024, gate_side_len: int | None = DEFAULT_GATE_SIDE_LEN,
             device: str = "cpu", intra_op_threads: int = 0, min_confidence: float = MIN_LINE_CONFIDENCE,
             use_angle_cls: bool = True) -> TextReader:
        """Open the detection, angle-classifier and recognition models that ship in the rapidocr wheel.

        `max_side_len` bounds the long side of the image the models see (1024 is fast on photos and
        keeps text down to ~10 px tall readable); `gate_side_len` that of the cheap detection that
        `gate` and `read_gated` decide on (None, or not below `max_side_len`: the full-size detection
        decides, as `FULL_SIZE_GATE_THRESHOLD` is measured for); `device` is as for
        `photoindex.ml.session`. A missing package raises `ModelError(BACKEND_UNAVAILABLE)`, a missing
        or unloadable model file `ModelError(MODEL_NOT_FOUND / MODEL_INVALID)`."""
        if max_side_len < MIN_SIDE:
            raise ModelError(f"max_side_len must be at least {MIN_SIDE}", code=ErrorCode.CONFIG_INVALID)
        if gate_side_len is not None and gate_side_len < MIN_SIDE:
            raise ModelError(f"gate_side_len must be at least {MIN_SIDE}", code=ErrorCode.CONFIG_INVALID)
        if gate_side_len is not None and gate_side_len >= max_side_len:
            gate_side_len = None  # a gate as large as the read costs as much: decide on the read's detection
        rapidocr = _rapidocr()
        params = _engine_params(max_side_len, device, intra_op_threads)
        try:
            engine = rapidocr.RapidOCR(params=params)
            paths = _bundled_model_paths(engine.cfg)
            for section, path in paths.items():
                engine.cfg[section].model_path = str(path)
            # RapidOCR opens its sessions on first use; open them now so that a broken file fails here
            detector = engine._load_det_model()
            classifier = engine._load_cls_model()
            recognizer = engine._load_rec_model()
        except PhotoindexError:
            raise
        except Exception as exc:  # RapidOCR raises plain exceptions of many kinds for a bad setup
            raise ModelError(
                f"RapidOCR could not open its models: {type(exc).__name__}: {str(exc).strip()[:300]}",
                code=ErrorCode.MODEL_INVALID,
                hint=INSTALL_HINT,
            ) from exc
        version = str(engine.cfg.Det.ocr_version.value)  # e.g. "PP-OCRv6"
        name = "rapidocr-" + version.lower().replace("-", "")
        reader = cls(name=name, revision=_files_revision(paths[s] for s in _SECTIONS),
                     max_side_len=max_side_len, gate_side_len=gate_side_len, min_confidence=min_confidence,
                     use_angle_cls=use_angle_cls, detector=detector, classifier=classifier, recognizer=recognizer)
        log.debug("loaded %s (%s)", reader.model_id, ", ".join(str(p) for p in paths.values()))
        return reader

    # -- the stages ---------------------------------------------------------------------------------------
    def _detect(self, image: Image.Image, scale: _Scale) -> _Detection:
        # the detector's stages are called one by one because TextDetector.__call__ (rapidocr 3.10)
        # sorts the boxes into reading order but leaves their scores in the old order
        analysis = _analysis_image(image, scale.max_side)
        tensor = scale.preprocess(analysis.pixels)
        if tensor is None:
            return _Detection(analysis, np.zeros((0, 4, 2), np.float32), [], 0.0)
        probabilities = self._det.session(tensor)
        quads, scores = self._det.postprocess_op(probabilities, analysis.pixels.shape[:2])
        quads = np.asarray(quads, dtype=np.float32).reshape(-1, 4, 2)
        scores = [float(s) for s in scores]
        return _Detection(analysis, quads, scores, gate_score(quads, scores))

    def _recognize(self, detection: _Detection) -> list[TextLine]:
        if len(detection.quads) == 0:
            return []
        pixels = detection.analysis.pixels
        crops = [self._crop(pixels, quad.copy()) for quad in detection.quads]
        if self.use_angle_cls:
            crops = self._cls(crops).img_list
        recognized = self._rec(self._rec_input(img=crops))
        lines: list[TextLine] = []
        for quad, text, confidence in zip(detection.quads, recognized.txts, recognized.scores, strict=True):
            text = str(text).strip()
            if not text or float(confidence) < self.min_confidence:
                continue
            box = quad_to_box(quad, detection.analysis.width, detection.analysis.height)
            lines.append(TextLine(text=text, box=box, confidence=float(confidence)))
        return [lines[i] for i in reading_order([line.box for line in lines])]

    # -- public API ---------------------------------------------------------------------------------------
    def gate(self, images: Sequence[Image.Image]) -> list[float]:
        """The gate's text detection only (at `gate_side_len`): per image, how likely it holds text
        (`gate_score`, 0..1)."""
        return [self._detect(image, self._gate).gate for image in images]

    def read(self, images: Sequence[Image.Image]) -> list[OcrResult]:
        """Detect and recognise text in every image; lines come in reading order with boxes normalised
        to the image (0..1). `gate_score` is the full-size detection's (no gate runs)."""
        results = []
        for image in images:
            detection = self._detect(image, self._full)
            results.append(OcrResult(gate_score=detection.gate, recognized=True,
                                     lines=self._recognize(detection)))
        return results

    def read_gated(self, images: Sequence[Image.Image], *, threshold: float | None = None,
                   hints: Sequence[bool] | None = None) -> list[OcrResult]:
        """Run the gate on every image, read (detect at full size and recognise) only those whose gate
        score reaches `threshold` (None: `default_threshold`) or whose `hints[i]` is true (tags or a
        caption suggest text: `text_hint`). Every result carries the gate's score; skipped images come
        back with `recognized=False` and no lines. Without a low-resolution gate, detection runs once
        per image."""
        if hints is not None and len(hints) != len(images):
            raise PhotoindexError(
                f"got {len(hints)} hints for {len(images)} images", code=ErrorCode.INVALID_REQUEST
            )
        threshold = self.default_threshold if threshold is None else threshold
        results = []
        for i, image in enumerate(images):
            gated = self._detect(image, self._gate)
            if gated.gate >= threshold or (hints is not None and hints[i]):
                full = gated if self._gate is self._full else self._detect(image, self._full)
                results.append(OcrResult(gate_score=gated.gate, recognized=True, lines=self._recognize(full)))
            else:
                results.append(OcrResult(gate_score=gated.gate, recognized=False))
        return results

    def __repr__(self) -> str:
        return (f"TextReader({self.model_id}, max_side_len={self.max_side_len}, "
                f"gate_side_len={self.gate_side_len})")


__all__ = [
    "DEFAULT_GATE_SIDE_LEN",
    "DEFAULT_GATE_THRESHOLD",
    "FULL_SIZE_GATE_THRESHOLD",
    "TextReader",
    "gate_score",
    "quad_to_box",
    "reading_order",
    "text_hint",
]
