"""COCO object detection with small ONNX detectors: YOLOX (Megvii) and NanoDet (RangiLyu) exports.

A detector is a folder holding one `*.onnx` graph and its class names, one per line, in the model's
output order (`coco80_classes.txt`, `classes.txt` or another single `*classes.txt`):

    yolox-nano-coco/yolox_nano_416x416.onnx      "images" [1,3,H,W] -> "output" [1,N,5+C]
    yolox-nano-coco/coco80_classes.txt
    nanodet-m-coco/nanodet_m_320.onnx            "input.1" [1,3,H,W] -> cls_pred_stride_{8,16,32},
    nanodet-m-coco/coco80_classes.txt                                  dis_pred_stride_{8,16,32}

Which family a graph belongs to is read from its outputs, and the input size from its input shape.
The two families differ in everything around the graph, so each has a small "head" that builds the
input tensor and turns raw outputs into candidate boxes; letterbox undo, clipping, per-class NMS and
normalisation are shared. Decoding is vectorised over all anchors; NMS is greedy, in numpy.

Resizing uses Pillow (as the rest of photoindex does) rather than OpenCV, which the exports' reference
code uses: Pillow's bilinear filter antialiases large downscales where OpenCV's does not. On the
photos the weights' manifests list, scores differ from the reference ones by at most 0.01.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

from photoindex.errors import ErrorCode, ModelError
from photoindex.ml.registry import model_revision
from photoindex.ml.session import OrtSession
from photoindex.schemas import Box, Region

CLASS_FILES = ("coco80_classes.txt", "classes.txt")
#: images per run for graphs whose batch axis is free
BATCH_SIZE = 8
#: candidates kept (by score) before NMS, so a very low threshold cannot make NMS quadratic in anchors
MAX_CANDIDATES = 2000
#: exp() of a box-size logit above this would overflow float32; real outputs stay far below
_MAX_LOG_SIZE = 20.0


# --- revisions ------------------------------------------------------------------------------------



# --- shared box maths -----------------------------------------------------------------------------


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, classes: np.ndarray | None = None
) -> np.ndarray:
    """Greedy non-maximum suppression: indices of the boxes kept, best score first.

    `boxes` is (N, 4) x0, y0, x1, y1. With `classes`, only boxes of the same class suppress each other
    (done in one pass by moving each class to its own far-apart coordinate range).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if boxes.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    if classes is not None:
        span = float(np.abs(boxes).max()) * 2.0 + 1.0
        boxes = boxes + (np.asarray(classes, dtype=np.float64).reshape(-1, 1) * span)
    x0, y0, x1, y1 = boxes.T
    areas = np.maximum(x1 - x0, 0.0) * np.maximum(y1 - y0, 0.0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]), 0.0)
        h = np.maximum(np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]), 0.0)
        inter = w * h
        union = areas[best] + areas[rest] - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


@dataclass(frozen=True)
class Letterbox:
    """Where a photo sits in the network input: input = original * scale + (pad_x, pad_y)."""

    width: int
    height: int
    scale: float
    pad_x: int
    pad_y: int

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        offset = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], dtype=np.float32)
        return (boxes - offset) / np.float32(self.scale)


def letterbox(
    img: Image.Image, size: tuple[int, int], *, fill: int, center: bool, resample: Image.Resampling
) -> tuple[np.ndarray, Letterbox]:
    """Scale `img` (RGB) to fit `size` (width, height) keeping its aspect ratio and paste it on a canvas
    of `fill`: centred, or at the top-left. Returns the uint8 (H, W, 3) canvas and its placement."""
    width, height = img.size
    in_w, in_h = size
    scale = min(in_w / width, in_h / height)
    new_w = min(in_w, max(1, int(width * scale)))
    new_h = min(in_h, max(1, int(height * scale)))
    scaled = (
        img if (new_w, new_h) == (width, height) else img.resize((new_w, new_h), resample, reducing_gap=3.0)
    )
    pad_x, pad_y = ((in_w - new_w) // 2, (in_h - new_h) // 2) if center else (0, 0)
    canvas = np.full((in_h, in_w, 3), fill, dtype=np.uint8)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = np.asarray(scaled, dtype=np.uint8)
    return canvas, Letterbox(width, height, scale, pad_x, pad_y)


def _as_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # transparent areas become white, as photoindex's decoder renders them
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


@dataclass
class Candidates:
    """Raw detections of one image, in network-input pixels."""

    boxes: np.ndarray  # (N, 4) float32 x0, y0, x1, y1
    scores: np.ndarray  # (N,) float32
    classes: np.ndarray  # (N,) int64


# --- model families -------------------------------------------------------------------------------


class Head(Protocol):
    """What one detector family knows: its input tensor and how to read its outputs."""

    family: str
    default_nms_iou: float
    size: tuple[int, int]  # (width, height) of the network input

    def prepare(self, img: Image.Image) -> tuple[np.ndarray, Letterbox]:
        """RGB image -> float32 (3, H, W) input and its placement."""
        ...

    def candidates(self, outputs: Mapping[str, np.ndarray], index: int, threshold: float) -> Candidates:
        """Detections of image `index` of the batch scoring above `threshold`."""
        ...


def _strides_fit(size: tuple[int, int], strides: Sequence[int]) -> bool:
    return all(size[0] % s == 0 and size[1] % s == 0 for s in strides)


def _grid(size: tuple[int, int], stride: int) -> np.ndarray:
    """(cells, 2) x, y cell indices of one stride's feature map, row-major (y, then x)."""
    w, h = size[0] // stride, size[1] // stride
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


class YoloxHead:
    """YOLOX: BGR, 0..255, top-left letterbox on 114; rows `[dx, dy, log_w, log_h, obj, p_c...]` for the
    grids of strides 8, 16, 32; score = objectness * class probability, every class above threshold."""

    family = "yolox"
    default_nms_iou = 0.45
    strides = (8, 16, 32)

    def __init__(self, size: tuple[int, int], output: str) -> None:
        self.size = size
        self.output = output
        grids = [_grid(size, s) for s in self.strides]
        self.grid = np.concatenate(grids)
        self.stride = np.concatenate(
            [np.full((len(g), 1), s, np.float32) for g, s in zip(grids, self.strides)]
        )

    @property
    def anchors(self) -> int:
        return len(self.grid)

    def prepare(self, img: Image.Image) -> tuple[np.ndarray, Letterbox]:
        canvas, box = letterbox(img, self.size, fill=114, center=False, resample=Image.Resampling.BILINEAR)
        return np.ascontiguousarray(canvas[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32), box

    def candidates(self, outputs: Mapping[str, np.ndarray], index: int, threshold: float) -> Candidates:
        rows = outputs[self.output][index]
        centres = (rows[:, :2] + self.grid) * self.stride
        sizes = np.exp(np.minimum(rows[:, 2:4], _MAX_LOG_SIZE)) * self.stride
        scores = rows[:, 4:5] * rows[:, 5:]
        anchor, cls = np.nonzero(scores > threshold)
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)[anchor]
        return Candidates(
            boxes.astype(np.float32), scores[anchor, cls].astype(np.float32), cls.astype(np.int64)
        )


class NanoDetHead:
    """NanoDet (the 2021 exports): BGR, ImageNet mean/std, centred letterbox on 0; per stride a class
    score map and 4 sides x (reg_max+1) bins of distances from the cell centre; argmax class."""

    family = "nanodet"
    default_nms_iou = 0.6
    strides = (8, 16, 32)
    mean = np.array([103.53, 116.28, 123.675], dtype=np.float32).reshape(3, 1, 1)
    std = np.array([57.375, 57.12, 58.395], dtype=np.float32).reshape(3, 1, 1)

    def __init__(self, size: tuple[int, int], bins: int) -> None:
        self.size = size
        self.bins = bins
        self.centres = {s: _grid(size, s) * s + (s - 1) / 2.0 for s in self.strides}

    def prepare(self, img: Image.Image) -> tuple[np.ndarray, Letterbox]:
        shrink = img.width > self.size[0] or img.height > self.size[1]
        # OpenCV's INTER_AREA (the reference) is a box filter when shrinking, bilinear when enlarging
        resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
        canvas, box = letterbox(img, self.size, fill=0, center=True, resample=resample)
        chw = canvas[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)
        return np.ascontiguousarray((chw - self.mean) / self.std), box

    def candidates(self, outputs: Mapping[str, np.ndarray], index: int, threshold: float) -> Candidates:
        parts = [self._level(outputs, index, s, threshold) for s in self.strides]
        return Candidates(*(np.concatenate(arrays) for arrays in zip(*parts)))

    def _level(
        self, outputs: Mapping[str, np.ndarray], index: int, stride: int, threshold: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        cls_map = outputs[f"cls_pred_stride_{stride}"][index]
        cls = cls_map.argmax(axis=1)
        score = cls_map[np.arange(len(cls)), cls]
        keep = np.nonzero(score > threshold)[0]
        logits = outputs[f"dis_pred_stride_{stride}"][index][keep].reshape(len(keep), 4, self.bins)
        logits = logits - logits.max(axis=2, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=2, keepdims=True)
        dist = (probs @ np.arange(self.bins, dtype=np.float32)) * stride  # (n, 4): left, top, right, bottom
        c = self.centres[stride][keep]
        boxes = np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1)
        return boxes.astype(np.float32), score[keep].astype(np.float32), cls[keep].astype(np.int64)


# --- loading --------------------------------------------------------------------------------------


def _hint(folder: Path) -> str:
    return (
        f"put a YOLOX or NanoDet ONNX export and its class names (coco80_classes.txt or classes.txt, one "
        f"per line) in {folder}"
    )


def _invalid(folder: Path, message: str, file: Path | None = None) -> ModelError:
    return ModelError(
        message,
        code=ErrorCode.MODEL_INVALID,
        hint=_hint(folder),
        details={"path": str(file or folder)},
    )


def _find_files(path: Path) -> tuple[Path, Path, Path]:
    """(folder, graph, classes file) for a model folder, or for the .onnx file itself."""
    path = Path(path)
    folder = path.parent if path.suffix == ".onnx" else path
    if not folder.is_dir() or (path.suffix == ".onnx" and not path.is_file()):
        raise ModelError(
            f"detector model {path} does not exist",
            code=ErrorCode.MODEL_NOT_FOUND,
            hint=_hint(folder),
            details={"path": str(path)},
        )
    graphs = [path] if path.suffix == ".onnx" else sorted(folder.glob("*.onnx"))
    if not graphs:
        raise ModelError(
            f"{folder} holds no .onnx file",
            code=ErrorCode.MODEL_NOT_FOUND,
            hint=_hint(folder),
            details={"path": str(folder)},
        )
    if len(graphs) > 1:
        names = ", ".join(g.name for g in graphs)
        raise _invalid(folder, f"{folder} holds several .onnx files ({names}); keep one per folder")
    named = [folder / n for n in CLASS_FILES if (folder / n).is_file()]
    others = sorted(p for p in folder.glob("*classes.txt") if p not in named)
    found = named or others
    if not found or (not named and len(others) > 1):
        raise _invalid(folder, f"{folder} holds no class names file (coco80_classes.txt or classes.txt)")
    return folder, graphs[0], found[0]


def _read_classes(folder: Path, file: Path) -> list[str]:
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _invalid(folder, f"cannot read class names from {file}: {exc}", file) from exc
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    if not names or not all(names):
        raise _invalid(folder, f"{file} should list one class name per line, with no blank lines", file)
    return names


def _input_size(folder: Path, session: OrtSession, file: Path) -> tuple[int, int]:
    if len(session.inputs) != 1:
        raise _invalid(folder, f"{file.name} should take one image input, takes {session.input_names}", file)
    shape = session.inputs[0].shape
    channels_ok = len(shape) == 4 and (shape[1] == 3 or not isinstance(shape[1], int))
    if not channels_ok:
        raise _invalid(folder, f"{file.name} takes input of shape {list(shape)}, expected [N, 3, H, W]", file)
    height, width = shape[2], shape[3]
    if not (isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0):
        raise _invalid(folder, f"{file.name} has no fixed input size (shape {list(shape)})", file)
    return width, height


def _make_head(folder: Path, session: OrtSession, file: Path, num_classes: int) -> Head:
    size = _input_size(folder, session, file)
    outputs = {o.name: o.shape for o in session.outputs}
    nanodet = {f"{kind}_pred_stride_{s}" for kind in ("cls", "dis") for s in NanoDetHead.strides}
    if nanodet <= outputs.keys():
        if not _strides_fit(size, NanoDetHead.strides):
            raise _invalid(folder, f"{file.name}: input size {size} is not a multiple of 32", file)
        cls_last = outputs["cls_pred_stride_8"][-1]
        dis_last = outputs["dis_pred_stride_8"][-1]
        if isinstance(cls_last, int) and cls_last != num_classes:
            raise _invalid(
                folder, f"{file.name} scores {cls_last} classes, the class file names {num_classes}"
            )
        if not isinstance(dis_last, int) or dis_last % 4:
            raise _invalid(folder, f"{file.name}: distance output of width {dis_last} is not 4 x bins", file)
        return NanoDetHead(size, dis_last // 4)
    if len(session.outputs) == 1 and len(session.outputs[0].shape) in (2, 3):
        if not _strides_fit(size, YoloxHead.strides):
            raise _invalid(folder, f"{file.name}: input size {size} is not a multiple of 32", file)
        head = YoloxHead(size, session.outputs[0].name)
        rows, width = session.outputs[0].shape[-2:]
        if isinstance(width, int) and width != 5 + num_classes:
            raise _invalid(
                folder,
                f"{file.name} outputs rows of {width} values; {num_classes} classes need {5 + num_classes}",
            )
        if isinstance(rows, int) and rows != head.anchors:
            raise _invalid(
                folder, f"{file.name} outputs {rows} anchors; strides 8/16/32 at {size} give {head.anchors}"
            )
        return head
    raise _invalid(
        folder, f"{file.name} is neither a YOLOX nor a NanoDet export (outputs {session.output_names})", file
    )


# --- the detector ---------------------------------------------------------------------------------


class ObjectDetector:
    """A closed-vocabulary object detector. `detect` may be called from several threads at once."""

    def __init__(
        self,
        *,
        path: Path,
        name: str,
        revision: str,
        session: OrtSession,
        head: Head,
        classes: list[str],
        score_threshold: float,
        nms_iou: float,
        max_regions: int,
    ) -> None:
        self.path = path
        self.name = name
        self.revision = revision
        self.session = session
        self.head = head
        self.classes = classes
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.max_regions = max(0, int(max_regions))
        self._input = session.input_names[0]
        self._batch = session.inputs[0].static_batch

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        providers: Sequence[str] | None = None,
        intra_op_threads: int = 0,
        score_threshold: float = 0.35,
        nms_iou: float | None = None,
        max_regions: int = 50,
    ) -> ObjectDetector:
        """Load the detector in folder `path` (or the `.onnx` file itself, next to its class file).

        `nms_iou` defaults to the family's own (YOLOX 0.45, NanoDet 0.6). A missing folder or graph
        raises `ModelError(MODEL_NOT_FOUND)`; an unreadable, empty or unrecognised graph or a bad class
        file `ModelError(MODEL_INVALID)`, each with a hint.
        """
        folder, graph, class_file = _find_files(Path(path))
        if graph.stat().st_size == 0:
            raise _invalid(folder, f"model file {graph} is empty", graph)
        classes = _read_classes(folder, class_file)
        try:
            session = OrtSession(graph, providers=providers, intra_op_threads=intra_op_threads)
        except ModelError as exc:
            if exc.code != ErrorCode.MODEL_INVALID:  # e.g. a device that is not available
                raise
            raise _invalid(folder, exc.message, graph) from exc
        head = _make_head(folder, session, graph, len(classes))
        return cls(
            path=folder,
            name=folder.name,
            revision=model_revision(folder, [graph, class_file]),
            session=session,
            head=head,
            classes=classes,
            score_threshold=score_threshold,
            nms_iou=head.default_nms_iou if nms_iou is None else nms_iou,
            max_regions=max_regions,
        )

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"

    @property
    def family(self) -> str:
        return self.head.family

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the network input, in pixels."""
        return self.head.size

    def warmup(self) -> None:
        """Run once on a blank image (the first run of a session is slow)."""
        self.detect([Image.new("RGB", self.input_size)])

    def detect(self, images: Sequence[Image.Image]) -> list[list[Region]]:
        """Regions per image, best first, boxes normalised to the image. Any Pillow mode is accepted;
        an image without pixels has no regions."""
        results: list[list[Region]] = [[] for _ in images]
        todo = [i for i, img in enumerate(images) if img.width > 0 and img.height > 0]
        step = self._batch or BATCH_SIZE
        for start in range(0, len(todo), step):
            chunk = todo[start : start + step]
            prepared = [self.head.prepare(_as_rgb(images[i])) for i in chunk]
            outputs = self._run(np.stack([tensor for tensor, _ in prepared]))
            for row, (i, (_, placement)) in enumerate(zip(chunk, prepared, strict=True)):
                results[i] = self._regions(outputs, row, placement)
        return results

    def _run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        n = batch.shape[0]
        if self._batch and n < self._batch:  # a graph with a fixed batch > 1: pad the last chunk
            batch = np.concatenate([batch, np.zeros((self._batch - n, *batch.shape[1:]), batch.dtype)])
        arrays = self.session.run({self._input: batch})
        outputs: dict[str, np.ndarray] = {}
        for name, array in zip(self.session.output_names, arrays, strict=True):
            array = np.asarray(array, dtype=np.float32)
            outputs[name] = array[None] if array.ndim == 2 else array  # exports that drop the batch axis
        return outputs

    def _regions(self, outputs: Mapping[str, np.ndarray], index: int, placement: Letterbox) -> list[Region]:
        found = self.head.candidates(outputs, index, self.score_threshold)
        if len(found.scores) > MAX_CANDIDATES:
            top = np.argpartition(-found.scores, MAX_CANDIDATES)[:MAX_CANDIDATES]
            found = Candidates(found.boxes[top], found.scores[top], found.classes[top])
        boxes = placement.to_original(found.boxes)
        limits = np.array([placement.width, placement.height] * 2, dtype=np.float32)
        boxes = np.clip(boxes, 0.0, limits)
        real = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, scores, classes = boxes[real], found.scores[real], found.classes[real]
        keep = nms(boxes, scores, self.nms_iou, classes)[: self.max_regions]
        normalised = boxes[keep] / limits
        return [self._region(b, float(scores[k]), int(classes[k])) for b, k in zip(normalised, keep)]

    def _region(self, box: np.ndarray, score: float, cls: int) -> Region:
        x0, y0, x1, y1 = (min(1.0, max(0.0, float(v))) for v in box)
        label = self.classes[cls]
        return Region(
            box=Box(x0=x0, y0=y0, x1=x1, y1=y1),
            label=label,
            score=score,
            detector_label=label,
            detector_score=score,
        )

    def __repr__(self) -> str:
        return f"ObjectDetector({self.model_id}, {self.family}, input={self.input_size}, {self.path})"
