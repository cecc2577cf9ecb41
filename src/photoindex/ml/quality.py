"""Photo quality: technical measures from the pixels, and an aesthetic score from the image embedding.

Technical measures are computed on a grey-level copy shrunk (area-averaged) to at most 512 px on its
long side: that is the scale at which people judge a photo in a grid or on a phone, it makes the
measures comparable across resolutions, and it keeps them at a few milliseconds per photo. Each is
mapped to 0..1, higher is better:

* sharpness — the median *edge width* at the strongest edges: local contrast (max - min in a 9x9
  window) divided by the gradient there. A step edge is 2 px wide, a Gaussian blur of sigma widens it
  to about 2.5 sigma. Unlike the variance of the Laplacian or Tenengrad it does not depend on
  contrast, so a misty or dim but focused photo is not called blurred. Mapped by
  1 / (1 + ((w - 2) / 2.5)^2): 2 px scores 1, 4.5 px (sigma ~1.5 px at 512 px) 0.5, 8 px 0.15.
  No edges at all (a flat image) scores 0.
* exposure — how far the median luminance is from mid-grey (sRGB 0.46, 18 % reflectance), and how much
  of the frame is clipped: balance = 1 - d^2 with d the distance to mid-grey as a fraction of the way
  to black or white; clipping penalty = (share of pixels at <= 2 or >= 253 beyond a 1 % allowance for
  each end) / 0.25, capped at 1; exposure = balance * (1 - penalty).
* noise — Immerkaer's fast noise estimate (a 3x3 kernel that cancels planes and linear ramps; its mean
  absolute response is sigma * 6 * sqrt(2/pi) for white Gaussian noise) over the flatter half of the
  frame (lower half of gradient magnitudes), so edges and texture inflate it less. Sigma in 8-bit
  levels is mapped by 1 / (1 + (sigma / 5)^2): sigma 1 scores 0.96, 5 scores 0.5, 15 scores 0.1.
* technical — the weighted geometric mean sharpness^0.5 * exposure^0.3 * noise^0.2: the worst defect
  dominates (a blurred photo is not rescued by good exposure), sharpness matters most for curation.

`AestheticHead` is a small ONNX model over the photo's CLIP embedding (like the LAION aesthetic
predictor): a folder with `model.onnx` (input [N, D] float32 → output [N, 1] or [N]) and `config.json`
{"embedding_model": ..., "dim": D, "scale": [lo, hi] (optional), "normalize": true (optional)}.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from photoindex.errors import ErrorCode, MediaError, ModelError
from photoindex.media.decode import to_rgb
from photoindex.ml.session import OrtSession
from photoindex.schemas import QualityResult

# What the enrichment cache keys technical results on; bump the revision when a measure or curve changes.
TECHNICAL_MODEL = "photoindex-technical"
TECHNICAL_REVISION = "1"

ANALYSIS_SIDE = 512

# sharpness
EDGE_WINDOW = 9  # px; widths up to about this are measurable, wider edges already score low
EDGE_QUANTILE = 0.95  # the strongest 5 % of gradients are the edges we measure
MIN_EDGE_GRADIENT = 0.02  # per px on a 0..1 scale: weaker "edges" are noise or shading
STEP_WIDTH = 2.0  # the width a perfect step edge measures with these filters
HALF_SHARP_EXTRA_WIDTH = 2.5

# exposure
MID_GREY = 0.46
CLIP_LOW, CLIP_HIGH = 2 / 255, 253 / 255
CLIP_ALLOWANCE = 0.01  # specular highlights and deep shadows are normal in a small share of the frame
CLIP_SPAN = 0.25

# noise
HALF_NOISE_SIGMA = 5.0  # 8-bit levels
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)

WEIGHTS = {"sharpness": 0.5, "exposure": 0.3, "noise": 0.2}
_FLOOR = 1e-3  # keeps the geometric mean defined; a zero measure still drags technical to ~0


# -- the analysis image ---------------------------------------------------------------------------------


def analysis_gray(image: Image.Image, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """Luminance as float32 in 0..1, area-averaged down to at most `side` px on the long side."""
    if not isinstance(image, Image.Image):
        raise MediaError(f"expected a PIL image, got {type(image).__name__}", code=ErrorCode.UNSUPPORTED_TYPE)
    if image.width < 1 or image.height < 1:
        raise MediaError(f"image has no pixels ({image.width}x{image.height})", code=ErrorCode.CORRUPT_IMAGE)
    try:
        gray = image if image.mode == "L" else to_rgb(image).convert("L")
        scale = side / max(gray.width, gray.height)
        if scale < 1:
            size = (max(1, round(gray.width * scale)), max(1, round(gray.height * scale)))
            gray = gray.resize(size, Image.Resampling.BOX, reducing_gap=3.0)
        return np.asarray(gray, dtype=np.float32) / 255.0
    except (OSError, ValueError, SyntaxError) as exc:  # a lazily loaded file that turns out truncated or bad
        raise MediaError(f"cannot read image pixels: {exc}", code=ErrorCode.CORRUPT_IMAGE) from exc


def _quantile(values: np.ndarray, q: float) -> float:
    """A quantile from an even subsample of at most ~65k values: as good for a threshold, 4-16x faster."""
    flat = values.reshape(-1)
    step = max(1, flat.size // 65536)
    return float(np.quantile(flat[::step], q))


def _gradient_magnitude(gray: np.ndarray) -> np.ndarray:
    # Sobel / 8 is the central difference smoothed across: a true derivative per pixel
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=0.125, borderType=cv2.BORDER_REFLECT)
    return np.asarray(cv2.magnitude(gx, gy), dtype=np.float32)


# -- the measures ---------------------------------------------------------------------------------------


def edge_width(gray: np.ndarray, gradient: np.ndarray | None = None) -> float | None:
    """Median width in px of the strongest edges, or None when the image has no edges."""
    gradient = _gradient_magnitude(gray) if gradient is None else gradient
    threshold = max(_quantile(gradient, EDGE_QUANTILE), MIN_EDGE_GRADIENT)
    edges = gradient >= threshold
    if not edges.any():
        return None
    kernel = np.ones((EDGE_WINDOW, EDGE_WINDOW), np.uint8)
    contrast = cv2.dilate(gray, kernel) - cv2.erode(gray, kernel)
    return float(np.median(contrast[edges] / gradient[edges]))


def sharpness_score(width: float | None) -> float:
    if width is None:
        return 0.0
    extra = max(0.0, width - STEP_WIDTH) / HALF_SHARP_EXTRA_WIDTH
    return 1.0 / (1.0 + extra * extra)


def exposure_score(gray: np.ndarray) -> float:
    levels = np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)
    share = np.cumsum(np.bincount(levels.reshape(-1), minlength=256)) / levels.size
    median = float(np.searchsorted(share, 0.5)) / 255.0
    span = MID_GREY if median < MID_GREY else 1.0 - MID_GREY
    balance = 1.0 - ((median - MID_GREY) / span) ** 2
    low = max(0.0, float(share[round(CLIP_LOW * 255)]) - CLIP_ALLOWANCE)
    high = max(0.0, 1.0 - float(share[round(CLIP_HIGH * 255) - 1]) - CLIP_ALLOWANCE)
    penalty = min(1.0, (low + high) / CLIP_SPAN)
    return max(0.0, balance) * (1.0 - penalty)


def noise_sigma(gray: np.ndarray, gradient: np.ndarray | None = None) -> float:
    """Immerkaer's noise sigma in 8-bit levels, over the flatter half of the image."""
    if min(gray.shape) < 3:
        return 0.0
    gradient = _gradient_magnitude(gray) if gradient is None else gradient
    response = np.abs(cv2.filter2D(gray, cv2.CV_32F, _IMMERKAER))[1:-1, 1:-1]
    inner = gradient[1:-1, 1:-1]
    flat = inner <= _quantile(inner, 0.5)
    return float(math.sqrt(math.pi / 2) * response[flat].mean() / 6.0 * 255.0)


def noise_score(sigma: float) -> float:
    ratio = sigma / HALF_NOISE_SIGMA
    return 1.0 / (1.0 + ratio * ratio)


def combine(sharpness: float, exposure: float, noise: float) -> float:
    values = {"sharpness": sharpness, "exposure": exposure, "noise": noise}
    log_sum = sum(w * math.log(max(values[k], _FLOOR)) for k, w in WEIGHTS.items())
    return float(min(1.0, math.exp(log_sum / sum(WEIGHTS.values()))))


def technical_quality(image: Image.Image) -> QualityResult:
    """Sharpness, exposure and noise of one photo, each 0..1 (higher is better), and their combination."""
    gray = analysis_gray(image)
    gradient = _gradient_magnitude(gray)
    sharpness = sharpness_score(edge_width(gray, gradient))
    exposure = exposure_score(gray)
    noise = noise_score(noise_sigma(gray, gradient))
    return QualityResult(technical=combine(sharpness, exposure, noise), sharpness=sharpness,
                         exposure=exposure, noise=noise)


def technical_qualities(images: Sequence[Image.Image]) -> list[QualityResult]:
    return [technical_quality(image) for image in images]


# -- aesthetic head -------------------------------------------------------------------------------------

MODEL_FILE = "model.onnx"
CONFIG_FILE = "config.json"
AESTHETIC_RANGE = (0.0, 10.0)


def _invalid(path: Path, what: str) -> ModelError:
    return ModelError(f"aesthetic model {path} {what}", code=ErrorCode.MODEL_INVALID,
                      hint="replace the folder with a complete aesthetic head (model.onnx + config.json)",
                      details={"path": str(path)})


def _read_config(path: Path) -> dict[str, Any]:
    file = path / CONFIG_FILE
    if not file.is_file():
        raise _invalid(path, f"has no {CONFIG_FILE}")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(path, f"has an unreadable {CONFIG_FILE}: {exc}") from exc
    if not isinstance(config, dict):
        raise _invalid(path, f"has a {CONFIG_FILE} that is not an object")
    if not isinstance(config.get("embedding_model"), str) or not config["embedding_model"]:
        raise _invalid(path, f"names no embedding_model in {CONFIG_FILE}")
    dim = config.get("dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise _invalid(path, f"has no valid dim in {CONFIG_FILE} (got {dim!r})")
    scale = config.get("scale")
    if scale is not None and not (isinstance(scale, list) and len(scale) == 2
                                  and all(isinstance(v, int | float) for v in scale) and scale[0] != scale[1]):
        raise _invalid(path, f"has an invalid scale in {CONFIG_FILE} (want [lo, hi], got {scale!r})")
    return config


def _folder_revision(files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        with file.open("rb") as fh:
            digest.update(file.name.encode() + b"\0" + hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()[:12]


class AestheticHead:
    """Scores photos 0..10 from their image embeddings. `embedding_model` names the CLIP model whose
    embeddings it was trained on: the caller checks it against the collection's model."""

    def __init__(self, path: Path, *, session: OrtSession, embedding_model: str, dim: int,
                 scale: tuple[float, float] | None, normalize: bool, revision: str) -> None:
        self.path = path
        self.name = path.name
        self.revision = revision
        self.embedding_model = embedding_model
        self.dim = dim
        self.scale = scale
        self.normalize = normalize
        self._session = session
        self._input = session.inputs[0].name

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.revision}"

    @classmethod
    def load(cls, path: Path, *, providers: Sequence[str] | None = None) -> AestheticHead:
        path = Path(path)
        if not path.is_dir():
            raise ModelError(f"aesthetic model folder {path} does not exist", code=ErrorCode.MODEL_NOT_FOUND,
                             hint="install an aesthetic head there (model.onnx + config.json)",
                             details={"path": str(path)})
        config = _read_config(path)
        model_file = path / MODEL_FILE
        if not model_file.is_file():
            raise _invalid(path, f"has no {MODEL_FILE}")
        session = OrtSession(model_file, providers=providers, intra_op_threads=1)
        dim = int(config["dim"])
        if len(session.inputs) != 1 or len(session.outputs) != 1:
            raise _invalid(path, "must have one input and one output")
        shape = session.inputs[0].shape
        declared = shape[-1] if len(shape) == 2 else None
        if len(shape) != 2 or (isinstance(declared, int) and declared != dim):
            raise ModelError(
                f"aesthetic model {path} takes input {list(shape)} but its config says dim {dim}",
                code=ErrorCode.DIMENSION_MISMATCH, details={"path": str(path)},
            )
        scale = config.get("scale")
        return cls(path, session=session, embedding_model=config["embedding_model"], dim=dim,
                   scale=(float(scale[0]), float(scale[1])) if scale else None,
                   normalize=bool(config.get("normalize", True)),
                   revision=_folder_revision([path / CONFIG_FILE, model_file]))

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """One score per row of `embeddings` ([N, D], or a single [D] vector), float32. With a `scale`
        in the config the model's [lo, hi] is mapped linearly onto 0..10 (and clipped); without, the
        model's own output is returned."""
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim == 1:
            x = x[None, :]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ModelError(
                f"aesthetic model {self.name} takes {self.dim}-d embeddings, got shape {list(x.shape)}",
                code=ErrorCode.DIMENSION_MISMATCH,
                hint=f"it was trained on {self.embedding_model} embeddings",
            )
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float32)
        if self.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))
        raw = self._session.run({self._input: x})[0]
        raw = np.asarray(raw, dtype=np.float32).reshape(x.shape[0], -1)
        if raw.shape[1] != 1:
            raise _invalid(self.path, f"returns {raw.shape[1]} values per embedding, expected 1")
        out = raw[:, 0]
        if self.scale is not None:
            lo, hi = self.scale
            span = AESTHETIC_RANGE[1] - AESTHETIC_RANGE[0]
            out = np.clip(AESTHETIC_RANGE[0] + (out - lo) / (hi - lo) * span, *AESTHETIC_RANGE)
        return out.astype(np.float32)

    def __repr__(self) -> str:
        return f"AestheticHead({self.model_id}, embedding_model={self.embedding_model}, dim={self.dim})"


__all__ = [
    "TECHNICAL_MODEL",
    "TECHNICAL_REVISION",
    "AestheticHead",
    "analysis_gray",
    "combine",
    "edge_width",
    "exposure_score",
    "noise_score",
    "noise_sigma",
    "sharpness_score",
    "technical_qualities",
    "technical_quality",
]
